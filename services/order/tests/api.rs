//! The order service started for real next to a real catalog (both on port 0, fresh
//! databases, the test broker under a topic prefix of the test's own), called through
//! the generated gRPC clients.

use std::time::Duration;

use clap::Parser as _;
use ocop_grpc_kit::{
    auth::{Grant, PARTNER_SCOPE, audience},
    validation::violations,
};
use ocop_proto::{
    catalog::v1::{self as catalog, catalog_service_client::CatalogServiceClient},
    order::v1::{
        self as pb, order_service_client::OrderServiceClient,
        partner_service_client::PartnerServiceClient,
    },
};
use ocop_testkit::{
    ORDER_LIMITS_OFF, eventually, find_record,
    fixtures::{
        PlacedOrder, SHOPPER_PERSONAL_DATA, place_order, place_request, seed_product,
        wait_for_status,
    },
    fresh_database_url, key_text, service_args,
    stock_client::{assert_invalid, expected_reflection, reflected_services},
    unique,
};
use prost::Message as _;
use rdkafka::Message as _;
use tokio_util::sync::CancellationToken;
use tonic::{Code, Request, transport::Channel};

const SECRET: &str = "order-test-secret-order-test-secret-x";
const WAIT: Duration = Duration::from_secs(30);

struct Stack {
    prefix: String,
    order_http: std::net::SocketAddr,
    order_database_url: String,
    order_addr: String,
    orders: OrderServiceClient<Channel>,
    partners: PartnerServiceClient<Channel>,
    catalog: CatalogServiceClient<Channel>,
    stop: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// A catalog and an order service; `catalog_url` overrides where orders ask for quotes.
async fn stack_with(catalog_url: Option<&str>) -> Stack {
    stack_limited(catalog_url, ORDER_LIMITS_OFF).await
}

/// As [`stack_with`], the order service started with `flags` (abuse limits, payment
/// methods); the test platform's payment methods unless `flags` names others.
async fn stack_limited(catalog_url: Option<&str>, flags: &[&str]) -> Stack {
    let prefix = format!("{}.", unique("t"));
    let stop = CancellationToken::new();
    let mut tasks = Vec::new();

    let args = service_args("catalog", &fresh_database_url().await, &prefix, SECRET);
    let catalog_app = ocop_catalog::App::build(ocop_catalog::Config::try_parse_from(args).unwrap())
        .await
        .unwrap();
    let catalog_addr = format!("http://{}", catalog_app.grpc_addr());
    let stopped = stop.clone();
    tasks.push(tokio::spawn(
        catalog_app.run_until_stopped(async move { stopped.cancelled().await }),
    ));

    let order_database_url = fresh_database_url().await;
    let mut args = service_args("order", &order_database_url, &prefix, SECRET);
    args.push(format!(
        "--catalog-url={}",
        catalog_url.unwrap_or(&catalog_addr)
    ));
    args.push("--quote-timeout=1s".into());
    if !flags
        .iter()
        .any(|flag| flag.starts_with("--payment-methods"))
    {
        args.push(ocop_testkit::EVERY_PAYMENT_METHOD.into());
    }
    args.extend(flags.iter().map(|flag| (*flag).to_owned()));
    let order_app = ocop_order::App::build(ocop_order::Config::try_parse_from(args).unwrap())
        .await
        .unwrap();
    let order_addr = format!("http://{}", order_app.grpc_addr());
    let order_http = order_app.http_addr();
    let stopped = stop.clone();
    tasks.push(tokio::spawn(
        order_app.run_until_stopped(async move { stopped.cancelled().await }),
    ));

    Stack {
        prefix,
        order_http,
        order_database_url,
        orders: OrderServiceClient::connect(order_addr.clone())
            .await
            .unwrap(),
        partners: PartnerServiceClient::connect(order_addr.clone())
            .await
            .unwrap(),
        order_addr,
        catalog: CatalogServiceClient::connect(catalog_addr).await.unwrap(),
        stop,
        tasks,
    }
}

fn authorized<T>(message: T, scopes: &[&str]) -> Request<T> {
    ocop_testkit::authorized(message, SECRET, scopes)
}

impl Stack {
    /// One product with `stock` units at 120.000 ₫.
    async fn product(&mut self, stock: i64) -> String {
        seed_product(&mut self.catalog, SECRET, stock, 120_000).await
    }

    async fn wait_for(&self, order_id: &str, status: pb::OrderStatus) -> pb::Order {
        wait_for_status(&self.orders, SECRET, order_id, status, WAIT).await
    }

    /// The orders listed for the fixture shopper's phone.
    async fn orders_of_shopper(&mut self, phone: &str) -> Vec<pb::Order> {
        self.orders
            .list_orders(authorized(
                pb::ListOrdersRequest {
                    customer_phone: phone.into(),
                    ..Default::default()
                },
                &["order:read"],
            ))
            .await
            .unwrap()
            .into_inner()
            .orders
    }

    async fn available(&mut self, product_id: &str) -> i64 {
        self.catalog
            .get_product(catalog::GetProductRequest {
                id: product_id.into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .product
            .unwrap()
            .available
    }

    async fn stop(self) {
        self.stop.cancel();
        for task in self.tasks {
            task.await.unwrap().unwrap();
        }
    }
}

#[tokio::test]
async fn placed_order_is_priced_by_the_catalog_and_reserved_before_payment() {
    let mut stack = stack_with(None).await;
    let product = stack.product(10).await;
    let placed = stack
        .orders
        .place_order(place_request("k1", &product, 3))
        .await
        .unwrap()
        .into_inner();
    assert!(placed.created);
    let order = placed.order.unwrap();
    assert_eq!(order.status, pb::OrderStatus::Pending as i32);
    assert_eq!(order.lines[0].unit_price_vnd, 120_000);
    assert_eq!(order.subtotal_vnd, 360_000);
    assert_eq!(order.shipping_fee_vnd, 30_000);
    assert_eq!(order.total_vnd, 390_000);
    assert!(order.code.starts_with("OCOP"));

    let awaiting = stack
        .wait_for(&order.id, pb::OrderStatus::AwaitingPayment)
        .await;
    let causes: Vec<_> = awaiting
        .history
        .iter()
        .map(|change| change.cause.as_str())
        .collect();
    assert_eq!(causes, vec!["PlaceOrder", "ocop.catalog.v1.StockReserved"]);
    assert_eq!(stack.available(&product).await, 7);

    let requested = find_record(
        &format!("{}ocop.orders.v1", stack.prefix),
        WAIT,
        |message| {
            key_text(message) == order.id
                && pb::PaymentRequested::decode(message.payload().unwrap_or_default()).is_ok_and(
                    |event| event.amount_vnd == 390_000 && event.order_code == order.code,
                )
        },
    )
    .await;
    assert_eq!(
        ocop_testkit::header(&requested, "ce_type").as_deref(),
        Some("ocop.order.v1.PaymentRequested")
    );
    stack.stop().await;
}

#[tokio::test]
async fn same_key_and_request_returns_the_same_order_and_a_different_request_is_refused() {
    let mut stack = stack_with(None).await;
    let product = stack.product(10).await;
    let first = stack
        .orders
        .place_order(place_request("same", &product, 1))
        .await
        .unwrap()
        .into_inner();
    let again = stack
        .orders
        .place_order(place_request("same", &product, 1))
        .await
        .unwrap()
        .into_inner();
    assert!(!again.created);
    assert_eq!(again.order.unwrap().id, first.order.unwrap().id);

    let status = stack
        .orders
        .place_order(place_request("same", &product, 2))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists);
    stack.stop().await;
}

#[tokio::test]
async fn concurrent_duplicates_create_exactly_one_order() {
    let mut stack = stack_with(None).await;
    let product = stack.product(100).await;
    let attempts: Vec<_> = (0..8)
        .map(|_| {
            let mut client = stack.orders.clone();
            let request = place_request("raced", &product, 1);
            tokio::spawn(async move { client.place_order(request).await.unwrap().into_inner() })
        })
        .collect();
    let mut ids = Vec::new();
    let mut created = 0;
    for attempt in attempts {
        let response = attempt.await.unwrap();
        created += usize::from(response.created);
        ids.push(response.order.unwrap().id);
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "one order for one key");
    assert_eq!(created, 1);
    let listed = stack.orders_of_shopper("+84912345678").await;
    assert_eq!(listed.len(), 1);
    stack.stop().await;
}

#[tokio::test]
async fn invalid_requests_name_the_field_and_store_nothing() {
    let mut stack = stack_with(None).await;
    let product = stack.product(10).await;
    let mut bad_phone = place_request("a", &product, 1);
    bad_phone.customer.as_mut().unwrap().phone = "12345".into();
    let mut zero = place_request("b", &product, 0);
    zero.lines[0].quantity = 0;
    let unknown = place_request("c", &uuid::Uuid::new_v4().to_string(), 1);
    let mut no_key = place_request("", &product, 1);
    no_key.idempotency_key.clear();
    for (field, request) in [
        ("customer.phone", bad_phone),
        ("lines[0].quantity", zero),
        ("lines[0].product_id", unknown),
        ("idempotency_key", no_key),
    ] {
        let status = stack.orders.place_order(request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{field}: {status:?}");
        assert_eq!(violations(&status)[0].field, field);
    }
    let listed = stack.orders_of_shopper("0912345678").await;
    assert!(listed.is_empty());
    stack.stop().await;
}

#[tokio::test]
async fn silent_catalog_is_unavailable_and_nothing_is_stored() {
    // A listener that accepts and never answers: the quote deadline must fire.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", silent.local_addr().unwrap());
    let _held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            open.push(socket);
        }
    });
    let mut stack = stack_with(Some(&address)).await;
    let status = stack
        .orders
        .place_order(place_request("k", &uuid::Uuid::new_v4().to_string(), 1))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    let listed = stack.orders_of_shopper("0912345678").await;
    assert!(listed.is_empty());
    stack.stop().await;
}

#[tokio::test]
async fn out_of_stock_order_is_cancelled_with_nothing_reserved() {
    let mut stack = stack_with(None).await;
    let product = stack.product(2).await;
    let order = place_order(&stack.orders, place_request("k", &product, 5)).await;
    let cancelled = stack.wait_for(&order.id, pb::OrderStatus::Cancelled).await;
    assert_eq!(
        cancelled.cancellation_reason,
        pb::CancellationReason::OutOfStock as i32
    );
    assert!(
        cancelled
            .cancellation_detail
            .contains("5 requested, 2 available"),
        "{}",
        cancelled.cancellation_detail
    );
    assert_eq!(stack.available(&product).await, 2);
    stack.stop().await;
}

#[tokio::test]
async fn cancelling_before_payment_gives_the_stock_back_and_shipping_it_is_refused() {
    let mut stack = stack_with(None).await;
    let product = stack.product(10).await;
    let order = place_order(&stack.orders, place_request("k", &product, 4)).await;
    stack
        .wait_for(&order.id, pb::OrderStatus::AwaitingPayment)
        .await;
    assert_eq!(stack.available(&product).await, 6);

    let cancelled = stack
        .orders
        .cancel_order(pb::CancelOrderRequest {
            order_id: order.id.clone(),
            reason: "đổi ý".into(),
            access_token: order.access_token.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .order
        .unwrap();
    assert_eq!(
        cancelled.cancellation_reason,
        pb::CancellationReason::CustomerRequest as i32
    );
    let catalog = stack.catalog.clone();
    let product_id = product.clone();
    eventually("the stock to come back", WAIT, || {
        let mut catalog = catalog.clone();
        let id = product_id.clone();
        async move {
            let available = catalog
                .get_product(catalog::GetProductRequest {
                    id,
                    ..Default::default()
                })
                .await
                .ok()?
                .into_inner()
                .product?
                .available;
            (available == 10).then_some(())
        }
    })
    .await;

    // Cancelling again is a no-op; shipping a cancelled order is refused.
    stack
        .orders
        .cancel_order(pb::CancelOrderRequest {
            order_id: order.id.clone(),
            reason: String::new(),
            access_token: order.access_token.clone(),
        })
        .await
        .unwrap();
    let status = stack
        .orders
        .mark_shipped(authorized(
            pb::MarkShippedRequest {
                order_id: order.id.clone(),
                carrier: "VNPost".into(),
                tracking_code: "EB123".into(),
            },
            &["order:write"],
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    let anonymous = stack
        .orders
        .mark_shipped(pb::MarkShippedRequest {
            order_id: order.id.clone(),
            carrier: "VNPost".into(),
            tracking_code: "EB123".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);
    stack.stop().await;
}

fn get_request(order: &PlacedOrder, access_token: &str) -> pb::GetOrderRequest {
    pb::GetOrderRequest {
        order_id: order.id.clone(),
        access_token: access_token.into(),
    }
}

fn cancel_request(order: &PlacedOrder, access_token: &str) -> pb::CancelOrderRequest {
    pb::CancelOrderRequest {
        order_id: order.id.clone(),
        reason: String::new(),
        access_token: access_token.into(),
    }
}

/// A call with a partner's token for `channel` (`postmart`, …).
fn as_partner<T>(message: T, channel: &str) -> Request<T> {
    ocop_testkit::with_grant(
        message,
        SECRET,
        &Grant {
            audiences: &[audience::ORDER],
            subject: "partner:test",
            scopes: &[PARTNER_SCOPE],
            channel: Some(channel),
            ttl: Duration::from_secs(300),
        },
    )
}

#[tokio::test]
async fn reflection_lists_the_order_and_partner_services_alone() {
    let stack = stack_with(None).await;
    let channel = Channel::from_shared(stack.order_addr.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut expected = expected_reflection("ocop.order.v1.OrderService");
    expected.push("ocop.order.v1.PartnerService".to_owned());
    expected.sort();
    assert_eq!(reflected_services(channel).await.unwrap(), expected);
    stack.stop().await;
}

#[tokio::test]
async fn a_payment_method_the_platform_does_not_offer_is_refused_and_nothing_is_stored() {
    let mut stack = stack_limited(None, &["--payment-methods=vietqr,momo"]).await;
    let product = stack.product(10).await;
    // The fixture pays with the sandbox: not offered here.
    let refused = stack
        .orders
        .place_order(place_request("k-sandbox", &product, 1))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    let violations = violations(&refused);
    assert_eq!(violations.len(), 1, "{refused:?}");
    assert_eq!(violations[0].field, "payment_method");
    assert!(
        violations[0].description.contains("vietqr, momo"),
        "{violations:?}"
    );
    let mut request = place_request("k-momo", &product, 1);
    request.payment_method = pb::PaymentMethod::Momo as i32;
    place_order(&stack.orders, request).await;
    let phone = place_request("x", &product, 1).customer.unwrap().phone;
    let stored = stack.orders_of_shopper(&phone).await;
    assert_eq!(stored.len(), 1, "only the MoMo order is stored");
    stack.stop().await;
}

#[tokio::test]
async fn an_order_opens_only_to_its_access_token_or_an_operator_and_only_its_hash_is_kept() {
    let mut stack = stack_with(None).await;
    let product = stack.product(10).await;
    let order = place_order(&stack.orders, place_request("k-1", &product, 1)).await;
    let other = place_order(&stack.orders, place_request("k-2", &product, 1)).await;
    assert!(
        order.access_token.starts_with("ocop_oat_") && order.access_token.len() > 40,
        "{}",
        order.access_token
    );
    let mut orders = stack.orders.clone();

    let without = orders.get_order(get_request(&order, "")).await.unwrap_err();
    assert_eq!(without.code(), Code::PermissionDenied, "{without:?}");
    assert!(without.message().contains("access_token"), "{without:?}");
    for wrong in [other.access_token.as_str(), "ocop_oat_guess"] {
        let refused = orders
            .get_order(get_request(&order, wrong))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::NotFound, "{refused:?}");
    }
    // A bearer token without `order:read` opens nothing either.
    let wrong_scope = orders
        .get_order(authorized(get_request(&order, ""), &["catalog:write"]))
        .await
        .unwrap_err();
    assert_eq!(wrong_scope.code(), Code::NotFound);
    let shopper = orders
        .get_order(get_request(&order, &order.access_token))
        .await
        .unwrap()
        .into_inner()
        .order
        .unwrap();
    assert_eq!(shopper.id, order.id);
    let operator = orders
        .get_order(authorized(get_request(&order, ""), &["order:read"]))
        .await
        .unwrap()
        .into_inner()
        .order
        .unwrap();
    assert_eq!(operator.id, order.id);

    // A retry answers a new token; the first one keeps working.
    let retried = place_order(&stack.orders, place_request("k-1", &product, 1)).await;
    assert_eq!(retried.id, order.id);
    assert_ne!(retried.access_token, order.access_token);
    for token in [&order.access_token, &retried.access_token] {
        orders.get_order(get_request(&order, token)).await.unwrap();
    }

    // Only hashes are kept: no column of any order holds a token.
    let mut db = <sqlx::PgConnection as sqlx::Connection>::connect(&stack.order_database_url)
        .await
        .unwrap();
    let (rows_with_token, hashes): (i64, i32) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE strpos(o::text, $2) > 0 OR strpos(o::text, $3) > 0),
                max(cardinality(access_token_hashes)) FILTER (WHERE id = $1::uuid)
         FROM orders o",
    )
    .bind(&order.id)
    .bind(&order.access_token)
    .bind(&retried.access_token)
    .fetch_one(&mut db)
    .await
    .unwrap();
    assert_eq!((rows_with_token, hashes), (0, 2));

    // Retrying without end keeps 16 tokens: the oldest stops working, the newest works.
    let mut newest = retried.access_token.clone();
    for _ in 0..15 {
        newest = place_order(&stack.orders, place_request("k-1", &product, 1))
            .await
            .access_token;
    }
    let first = orders
        .get_order(get_request(&order, &order.access_token))
        .await
        .unwrap_err();
    assert_eq!(first.code(), Code::NotFound);
    orders
        .get_order(get_request(&order, &newest))
        .await
        .unwrap();
    let kept: i32 = sqlx::query_scalar(
        "SELECT cardinality(access_token_hashes) FROM orders WHERE id = $1::uuid",
    )
    .bind(&order.id)
    .fetch_one(&mut db)
    .await
    .unwrap();
    assert_eq!(kept, 16);

    // Cancelling: a wrong token finds no order and changes nothing; the right one cancels.
    let refused = orders
        .cancel_order(cancel_request(&order, &other.access_token))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::NotFound);
    let without = orders
        .cancel_order(cancel_request(&order, ""))
        .await
        .unwrap_err();
    assert_eq!(without.code(), Code::PermissionDenied);
    let unchanged = orders
        .get_order(get_request(&order, &newest))
        .await
        .unwrap()
        .into_inner()
        .order
        .unwrap();
    assert_ne!(unchanged.status, pb::OrderStatus::Cancelled as i32);
    let cancelled = orders
        .cancel_order(cancel_request(&order, &newest))
        .await
        .unwrap()
        .into_inner()
        .order
        .unwrap();
    assert_eq!(
        cancelled.cancellation_reason,
        pb::CancellationReason::CustomerRequest as i32
    );
    stack.stop().await;
}

#[tokio::test]
async fn a_partner_sees_its_own_channels_orders_without_personal_data_and_cancels_only_those() {
    let mut stack = stack_with(None).await;
    let product = stack.product(10).await;
    let mut request = place_request("k-postmart", &product, 1);
    request.sales_channel = pb::SalesChannel::Postmart as i32;
    let postmart = place_order(&stack.orders, request).await;
    let web = place_order(&stack.orders, place_request("k-web", &product, 1)).await;
    let get = |order: &PlacedOrder| pb::GetPartnerOrderRequest {
        order_id: order.id.clone(),
    };

    let seen = stack
        .partners
        .get_partner_order(as_partner(get(&postmart), "postmart"))
        .await
        .unwrap()
        .into_inner()
        .order
        .unwrap();
    assert_eq!(seen.order_id, postmart.id);
    assert_eq!(seen.sales_channel, pb::SalesChannel::Postmart as i32);
    assert_eq!(seen.total_vnd, postmart.total_vnd);
    assert_eq!(seen.lines.len(), 1);
    assert_eq!(seen.delivery_province, "Quảng Ninh");
    let bytes = seen.encode_to_vec();
    for personal in SHOPPER_PERSONAL_DATA {
        assert!(
            !String::from_utf8_lossy(&bytes).contains(personal),
            "the partner view leaks {personal}"
        );
    }

    // Another channel's order, or one through the shopper's API, is not found.
    let other_channel = stack
        .partners
        .get_partner_order(as_partner(get(&web), "postmart"))
        .await
        .unwrap_err();
    assert_eq!(other_channel.code(), Code::NotFound);
    let personal_view = stack
        .orders
        .get_order(as_partner(get_request(&postmart, ""), "postmart"))
        .await
        .unwrap_err();
    assert_eq!(personal_view.code(), Code::NotFound);
    // The partner API needs a partner's token, even an operator's will not do.
    let operator = stack
        .partners
        .get_partner_order(authorized(get(&postmart), &["order:read", "order:write"]))
        .await
        .unwrap_err();
    assert_eq!(operator.code(), Code::PermissionDenied);

    let not_theirs = stack
        .orders
        .cancel_order(as_partner(cancel_request(&web, ""), "postmart"))
        .await
        .unwrap_err();
    assert_eq!(not_theirs.code(), Code::NotFound);
    let cancelled = stack
        .orders
        .cancel_order(as_partner(cancel_request(&postmart, ""), "postmart"))
        .await
        .unwrap()
        .into_inner()
        .order
        .unwrap();
    assert_eq!(cancelled.status, pb::OrderStatus::Cancelled as i32);
    stack.stop().await;
}

#[tokio::test]
async fn partner_feed_carries_the_lifecycle_without_personal_data() {
    let mut stack = stack_with(None).await;
    let product = stack.product(10).await;
    let mut request = place_request("k", &product, 1);
    request.sales_channel = pb::SalesChannel::Postmart as i32;
    let order = place_order(&stack.orders, request).await;
    stack
        .orders
        .cancel_order(pb::CancelOrderRequest {
            order_id: order.id.clone(),
            reason: String::new(),
            access_token: order.access_token.clone(),
        })
        .await
        .unwrap();
    let topic = format!("{}ocop.partner.orders.v1", stack.prefix);
    let record = find_record(&topic, WAIT, |message| {
        key_text(message) == order.id
            && pb::PartnerOrderEvent::decode(message.payload().unwrap_or_default())
                .is_ok_and(|event| event.kind == pb::PartnerOrderEventKind::Cancelled as i32)
    })
    .await;
    let bytes = record.payload().unwrap();
    let text = String::from_utf8_lossy(bytes);
    for personal in SHOPPER_PERSONAL_DATA {
        assert!(
            !text.contains(personal),
            "partner record leaks {personal:?}"
        );
    }
    let event = pb::PartnerOrderEvent::decode(bytes).unwrap();
    assert_eq!(event.delivery_province, "Quảng Ninh");
    assert_eq!(event.sales_channel, pb::SalesChannel::Postmart as i32);
    stack.stop().await;
}

#[tokio::test]
async fn metrics_expose_orders_by_status_and_pool_usage() {
    let mut stack = stack_with(None).await;
    let product = stack.product(10).await;
    let order = place_order(&stack.orders, place_request("k", &product, 1)).await;
    stack
        .wait_for(&order.id, pb::OrderStatus::AwaitingPayment)
        .await;
    let address = stack.order_http;
    let body = eventually("the order gauges to be exported", WAIT, || async move {
        let body = ocop_testkit::scrape_metrics(address).await.ok()?;
        (body.contains(r#"ocop_orders{status="awaiting_payment"}"#)
            && body.contains(r#"ocop_db_pool_connections{service="order",state="in_use"}"#))
        .then_some(body)
    })
    .await;
    assert!(body.contains("ocop_order_transitions_total"), "{body}");
    assert!(body.contains("ocop_outbox_backlog_rows"), "{body}");
    stack.stop().await;
}

/// Publishes a payment-service event about `order_id` on the test's payments topic.
async fn publish_payment_event(stack: &Stack, event: &ocop_events::CloudEvent) {
    let topic = format!("{}ocop.payments.v1", stack.prefix);
    ocop_testkit::produce(&topic, &event.key, &event.data, event.headers()).await;
}

fn payment_event<M: prost::Name>(order_id: &str, message: &M) -> ocop_events::CloudEvent {
    ocop_events::CloudEvent::new(
        "/ocop/payment",
        order_id.to_owned(),
        Some(format!("order/{order_id}")),
        message,
    )
}

fn refund_succeeded(
    order_id: &str,
    amount: i64,
    captured: i64,
    refunded: i64,
) -> ocop_events::CloudEvent {
    use ocop_proto::payment::v1 as payment;
    payment_event(
        order_id,
        &payment::RefundSucceeded {
            order_id: order_id.to_owned(),
            payment_id: uuid::Uuid::now_v7().to_string(),
            refund_id: uuid::Uuid::now_v7().to_string(),
            provider: payment::PaymentProvider::Vnpay as i32,
            amount_vnd: amount,
            captured_vnd: captured,
            refunded_vnd: refunded,
            provider_refund_id: "RF1".into(),
            occurred_at: None,
        },
    )
}

#[tokio::test]
async fn refund_events_move_a_paid_order_to_partially_refunded_then_refunded_once_each() {
    use ocop_proto::payment::v1 as payment;
    let mut stack = stack_with(None).await;
    let product = stack.product(10).await;
    let order = place_order(&stack.orders, place_request("refunds", &product, 2)).await;
    stack
        .wait_for(&order.id, pb::OrderStatus::AwaitingPayment)
        .await;
    // A refund before any payment is refused: the order does not move.
    publish_payment_event(&stack, &refund_succeeded(&order.id, 10_000, 0, 10_000)).await;
    let total = order.total_vnd;
    publish_payment_event(
        &stack,
        &payment_event(
            &order.id,
            &payment::PaymentSucceeded {
                order_id: order.id.clone(),
                payment_id: uuid::Uuid::now_v7().to_string(),
                provider: payment::PaymentProvider::Vnpay as i32,
                provider_transaction_id: "14226112".into(),
                amount_vnd: total,
                captured_vnd: total,
                occurred_at: None,
            },
        ),
    )
    .await;
    stack.wait_for(&order.id, pb::OrderStatus::Confirmed).await;

    let partial = refund_succeeded(&order.id, 50_000, total, 50_000);
    publish_payment_event(&stack, &partial).await;
    // Delivered twice (same ce_id): applied once.
    publish_payment_event(&stack, &partial).await;
    stack
        .wait_for(&order.id, pb::OrderStatus::PartiallyRefunded)
        .await;
    publish_payment_event(
        &stack,
        &refund_succeeded(&order.id, total - 50_000, total, total),
    )
    .await;
    let refunded = stack.wait_for(&order.id, pb::OrderStatus::Refunded).await;
    // A late partial refund event cannot take it back.
    publish_payment_event(&stack, &refund_succeeded(&order.id, 1_000, total, 51_000)).await;
    publish_payment_event(
        &stack,
        &payment_event(
            &order.id,
            &payment::RefundFailed {
                order_id: order.id.clone(),
                amount_vnd: 1_000,
                captured_vnd: total,
                refunded_vnd: total,
                reason_code: "94".into(),
                ..Default::default()
            },
        ),
    )
    .await;
    // Then a sentinel on the same key (so the same partition, consumed after them):
    // once its pay URL shows, the late events have been consumed too.
    publish_payment_event(
        &stack,
        &payment_event(
            &order.id,
            &payment::PaymentInitiated {
                order_id: order.id.clone(),
                payment_id: uuid::Uuid::now_v7().to_string(),
                provider: payment::PaymentProvider::Vnpay as i32,
                amount_vnd: total,
                instructions: Some(payment::payment_initiated::Instructions::PayUrl(
                    "https://sentinel.example/pay".into(),
                )),
                expires_at: None,
                occurred_at: None,
            },
        ),
    )
    .await;
    let later = eventually(
        "the events before the sentinel to be consumed",
        WAIT,
        || async {
            let order = stack
                .orders
                .clone()
                .get_order(pb::GetOrderRequest {
                    order_id: order.id.clone(),
                    access_token: order.access_token.clone(),
                })
                .await
                .ok()?
                .into_inner()
                .order?;
            let sentinel = matches!(
                order.payment_instructions.as_ref().and_then(|i| i.method.as_ref()),
                Some(pb::payment_instructions::Method::PayUrl(url)) if url.contains("sentinel")
            );
            sentinel.then_some(order)
        },
    )
    .await;
    assert_eq!(later.status, pb::OrderStatus::Refunded as i32);
    let causes: Vec<&str> = later
        .history
        .iter()
        .map(|change| change.cause.as_str())
        .collect();
    assert_eq!(
        causes,
        [
            "PlaceOrder",
            "ocop.catalog.v1.StockReserved",
            "ocop.payment.v1.PaymentSucceeded",
            "ocop.payment.v1.RefundSucceeded",
            "ocop.payment.v1.RefundSucceeded"
        ],
        "the refund before payment, the duplicate and the late events changed nothing"
    );
    assert_eq!(refunded.status, pb::OrderStatus::Refunded as i32);
    stack.stop().await;
}

// Bad input (issue 12): every refusal is a small INVALID_ARGUMENT naming the field, and
// nothing is stored.

#[tokio::test]
async fn nul_and_control_characters_are_invalid_argument_naming_the_field_and_store_nothing() {
    let mut stack = stack_with(None).await;
    let product = stack.product(10).await;
    type Edit = fn(&mut pb::PlaceOrderRequest);
    let cases: [(&str, Edit); 12] = [
        ("idempotency_key", |r| r.idempotency_key = "k\0".into()),
        ("customer.name", |r| customer(r).name = "Minh\0".into()),
        ("customer.name", |r| {
            customer(r).name = "Minh\u{7}\u{1b}[2J".into()
        }),
        ("customer.name", |r| customer(r).name = "Minh\nTrần".into()),
        // A right-to-left override shows other text than the name holds.
        ("customer.name", |r| {
            customer(r).name = "Minh\u{202E}nahT".into()
        }),
        ("customer.email", |r| {
            customer(r).email = "minh\0@example.com".into()
        }),
        ("customer.address.street", |r| {
            address(r).street = "25\0 Lê".into()
        }),
        ("customer.address.ward", |r| {
            address(r).ward = "Hồng\rGai".into()
        }),
        ("customer.address.district", |r| {
            address(r).district = "Hạ\u{9c}Long".into()
        }),
        ("customer.address.province", |r| {
            address(r).province = "\u{7f}".into()
        }),
        ("note", |r| r.note = "gọi trước\0".into()),
        ("note", |r| r.note = "dòng một\r\ndòng hai".into()),
    ];
    for (field, edit) in cases {
        let mut request = place_request(&unique("key"), &product, 1);
        edit(&mut request);
        let status = stack.orders.place_order(request).await.unwrap_err();
        assert_invalid(&status, field);
    }
    assert!(stack.orders_of_shopper("0912345678").await.is_empty());

    // A note may have line feeds.
    let mut request = place_request("multi-line-note", &product, 1);
    request.note = "gọi trước\ngiao giờ hành chính".into();
    let order = place_order(&stack.orders, request).await;
    assert_eq!(order.note, "gọi trước\ngiao giờ hành chính");

    let status = stack
        .orders
        .cancel_order(pb::CancelOrderRequest {
            order_id: order.id.clone(),
            reason: "đổi ý\0".into(),
            access_token: order.access_token.clone(),
        })
        .await
        .unwrap_err();
    assert_invalid(&status, "reason");
    for (field, carrier, tracking_code) in [
        ("carrier", "VNPost\0", "EB123"),
        ("tracking_code", "VNPost", "EB\u{1b}123"),
    ] {
        let status = stack
            .orders
            .mark_shipped(authorized(
                pb::MarkShippedRequest {
                    order_id: order.id.clone(),
                    carrier: carrier.into(),
                    tracking_code: tracking_code.into(),
                },
                &["order:write"],
            ))
            .await
            .unwrap_err();
        assert_invalid(&status, field);
    }
    let unchanged = stack
        .orders
        .get_order(pb::GetOrderRequest {
            order_id: order.id.clone(),
            access_token: order.access_token.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .order
        .unwrap();
    assert_ne!(unchanged.status, pb::OrderStatus::Cancelled as i32);
    assert_ne!(unchanged.status, pb::OrderStatus::Shipped as i32);
    stack.stop().await;
}

fn customer(request: &mut pb::PlaceOrderRequest) -> &mut pb::Customer {
    request.customer.as_mut().unwrap()
}

fn address(request: &mut pb::PlaceOrderRequest) -> &mut pb::Address {
    customer(request).address.as_mut().unwrap()
}

#[tokio::test]
async fn a_huge_phone_email_or_id_gives_a_small_invalid_argument() {
    let mut stack = stack_with(None).await;
    let product = stack.product(10).await;
    let huge = "9".repeat(10_000);
    type Edit = fn(&mut pb::PlaceOrderRequest, &str);
    let cases: [(&str, Edit); 3] = [
        ("customer.phone", |r, huge| customer(r).phone = huge.into()),
        ("customer.email", |r, huge| {
            customer(r).email = format!("{huge}@")
        }),
        ("lines[0].product_id", |r, huge| {
            r.lines[0].product_id = huge.into()
        }),
    ];
    for (field, edit) in cases {
        let mut request = place_request("huge", &product, 1);
        edit(&mut request, &huge);
        let status = stack.orders.place_order(request).await.unwrap_err();
        let message = assert_invalid(&status, field);
        assert!(message.contains("…"), "a short prefix is quoted: {message}");
    }
    let status = stack
        .orders
        .get_order(pb::GetOrderRequest {
            order_id: huge.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_invalid(&status, "order_id");
    let status = stack
        .orders
        .list_orders(authorized(
            pb::ListOrdersRequest {
                customer_phone: huge.clone(),
                ..Default::default()
            },
            &["order:read"],
        ))
        .await
        .unwrap_err();
    assert_invalid(&status, "customer_phone");
    stack.stop().await;
}

#[tokio::test]
async fn crafted_list_orders_page_tokens_are_invalid_argument() {
    let mut stack = stack_with(None).await;
    let catalog_token = ocop_grpc_kit::page_token::encode("catalog.products", "BLI-MIEN-DONG");
    let untagged: String = format!("1.{}", uuid::Uuid::nil())
        .bytes()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    for token in ["aéa", "zz", "%%", &catalog_token, &untagged] {
        let status = stack
            .orders
            .list_orders(authorized(
                pb::ListOrdersRequest {
                    customer_phone: "0912345678".into(),
                    page_size: 1,
                    page_token: token.to_owned(),
                },
                &["order:read"],
            ))
            .await
            .unwrap_err();
        assert_invalid(&status, "page_token");
    }
    // Real tokens still page.
    let product = stack.product(10).await;
    for key in ["page-1", "page-2"] {
        place_order(&stack.orders, place_request(key, &product, 1)).await;
    }
    let first = stack
        .orders
        .list_orders(authorized(
            pb::ListOrdersRequest {
                customer_phone: "0912345678".into(),
                page_size: 1,
                page_token: String::new(),
            },
            &["order:read"],
        ))
        .await
        .unwrap()
        .into_inner();
    let second = stack
        .orders
        .list_orders(authorized(
            pb::ListOrdersRequest {
                customer_phone: "0912345678".into(),
                page_size: 1,
                page_token: first.next_page_token.clone(),
            },
            &["order:read"],
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.orders.len(), 1);
    assert_ne!(second.orders[0].id, first.orders[0].id);
    stack.stop().await;
}

#[tokio::test]
async fn vietqr_instructions_carry_the_bank_bin_and_account_number_of_the_payload() {
    use ocop_proto::payment::v1 as payment;
    let mut stack = stack_with(None).await;
    let product = stack.product(10).await;
    let order = place_order(&stack.orders, place_request("vietqr", &product, 1)).await;
    stack
        .wait_for(&order.id, pb::OrderStatus::AwaitingPayment)
        .await;
    let payload = ocop_payment_schemes::vietqr::Transfer {
        bank_bin: "970436".into(),
        account_number: "0011001234567".into(),
        amount_vnd: Some(order.total_vnd),
        memo: order.code.clone(),
    }
    .payload()
    .unwrap();
    publish_payment_event(
        &stack,
        &payment_event(
            &order.id,
            &payment::PaymentInitiated {
                order_id: order.id.clone(),
                payment_id: uuid::Uuid::now_v7().to_string(),
                provider: payment::PaymentProvider::Vietqr as i32,
                amount_vnd: order.total_vnd,
                // Only the payload: the bank and account are read back from it.
                instructions: Some(payment::payment_initiated::Instructions::Vietqr(
                    payment::VietQrTransfer {
                        payload: payload.clone(),
                        ..Default::default()
                    },
                )),
                expires_at: None,
                occurred_at: None,
            },
        ),
    )
    .await;
    let transfer = eventually("the VietQR instructions", WAIT, || async {
        let order = stack
            .orders
            .clone()
            .get_order(pb::GetOrderRequest {
                order_id: order.id.clone(),
                access_token: order.access_token.clone(),
            })
            .await
            .ok()?
            .into_inner()
            .order?;
        match order.payment_instructions?.method? {
            pb::payment_instructions::Method::Vietqr(transfer) => Some(transfer),
            pb::payment_instructions::Method::PayUrl(_) => None,
        }
    })
    .await;
    assert_eq!(transfer.payload, payload);
    assert_eq!(transfer.bank_bin, "970436");
    assert_eq!(transfer.account_number, "0011001234567");
    assert_eq!(transfer.memo, order.code);
    stack.stop().await;
}

// --- Abuse limits (`limits.rs`) --------------------------------------------------------

/// A request of the fixture shopper's phone number with one line per `(product, units)`.
fn lines_request(key: &str, lines: &[(&str, i32)]) -> pb::PlaceOrderRequest {
    let mut request = place_request(key, lines[0].0, lines[0].1);
    request.lines = lines
        .iter()
        .map(|(product_id, quantity)| pb::LineItem {
            product_id: (*product_id).into(),
            quantity: *quantity,
        })
        .collect();
    request
}

/// The `QuotaFailure` violations of a refusal, as `(subject, description)`.
fn quota_violations(status: &tonic::Status) -> Vec<(String, String)> {
    use tonic_types::StatusExt as _;
    status
        .get_details_quota_failure()
        .map(|failure| {
            failure
                .violations
                .into_iter()
                .map(|violation| (violation.subject, violation.description))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn lines_and_units_over_the_configured_caps_are_invalid_and_store_nothing() {
    let mut stack = stack_limited(
        None,
        &[
            "--max-order-lines=1",
            "--max-line-quantity=5",
            "--place-order-rate=0",
        ],
    )
    .await;
    let (first, second) = (stack.product(100).await, stack.product(100).await);

    let status = stack
        .orders
        .place_order(lines_request("two-lines", &[(&first, 1), (&second, 1)]))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(status.message(), "lines: 2 lines; the limit is 1");
    assert_eq!(violations(&status)[0].field, "lines");

    let status = stack
        .orders
        .place_order(place_request("six-units", &first, 6))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(status.message(), "lines[0].quantity: 6 is outside 1..=5");
    assert_eq!(violations(&status)[0].field, "lines[0].quantity");

    assert!(stack.orders_of_shopper("0912345678").await.is_empty());
    assert_eq!(stack.available(&first).await, 100);
    stack
        .orders
        .place_order(place_request("five-units", &first, 5))
        .await
        .expect("an order within the caps is placed");
    stack.stop().await;
}

#[tokio::test]
async fn unpaid_orders_per_phone_over_the_cap_are_resource_exhausted_but_retries_are_answered() {
    let mut stack = stack_limited(
        None,
        &[
            "--max-open-orders-per-phone=2",
            "--max-open-units-per-phone=0",
            "--place-order-rate=0",
        ],
    )
    .await;
    let product = stack.product(100).await;
    let mut placed = Vec::new();
    for key in ["open-1", "open-2"] {
        placed.push(place_order(&stack.orders, place_request(key, &product, 1)).await);
    }

    let status = stack
        .orders
        .place_order(place_request("open-3", &product, 1))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    let expected = "this phone number has 2 unpaid orders open; the limit is 2: pay or cancel \
                    one, or wait for it to expire";
    assert_eq!(status.message(), expected);
    assert_eq!(
        quota_violations(&status),
        vec![("customer.phone".to_owned(), expected.to_owned())]
    );
    assert_eq!(stack.orders_of_shopper("0912345678").await.len(), 2);

    // A retry of an order already placed is answered with that order, cap or not.
    let retry = stack
        .orders
        .place_order(place_request("open-1", &product, 1))
        .await
        .expect("a retry is not refused by the cap")
        .into_inner();
    assert!(!retry.created);
    assert_eq!(retry.order.unwrap().id, placed[0].id);

    // Another phone number has its own quota.
    let mut other = place_request("other-phone", &product, 1);
    other.customer.as_mut().unwrap().phone = "0987 654 321".into();
    place_order(&stack.orders, other).await;

    let metrics = ocop_testkit::scrape_metrics(stack.order_http)
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"ocop_limit_refusals_total{limit="open_orders_per_phone"}"#),
        "{metrics}"
    );
    stack.stop().await;
}

#[tokio::test]
async fn unpaid_units_per_phone_over_the_cap_are_resource_exhausted() {
    let mut stack = stack_limited(
        None,
        &[
            "--max-open-orders-per-phone=0",
            "--max-open-units-per-phone=5",
            "--place-order-rate=0",
        ],
    )
    .await;
    let product = stack.product(100).await;
    place_order(&stack.orders, place_request("units-1", &product, 3)).await;
    let status = stack
        .orders
        .place_order(place_request("units-2", &product, 3))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert_eq!(
        status.message(),
        "this order would hold 6 units unpaid for this phone number (3 already held); the limit is 5"
    );
    assert_eq!(quota_violations(&status)[0].0, "customer.phone");
    place_order(&stack.orders, place_request("units-3", &product, 2)).await;
    assert_eq!(stack.orders_of_shopper("0912345678").await.len(), 2);
    stack.stop().await;
}

#[tokio::test]
async fn concurrent_orders_of_one_phone_do_not_both_slip_under_a_cap_of_one() {
    let mut stack = stack_limited(
        None,
        &[
            "--max-open-orders-per-phone=1",
            "--max-open-units-per-phone=0",
            "--place-order-rate=0",
        ],
    )
    .await;
    let product = stack.product(100).await;
    let attempts: Vec<_> = (0..6)
        .map(|attempt| {
            let mut orders = stack.orders.clone();
            let request = place_request(&format!("race-{attempt}"), &product, 1);
            tokio::spawn(async move { orders.place_order(request).await })
        })
        .collect();
    let mut placed = 0;
    for attempt in attempts {
        match attempt.await.unwrap() {
            Ok(_) => placed += 1,
            Err(status) => assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}"),
        }
    }
    assert_eq!(placed, 1);
    assert_eq!(stack.orders_of_shopper("0912345678").await.len(), 1);
    stack.stop().await;
}

#[tokio::test]
async fn place_order_beyond_the_client_rate_is_resource_exhausted_with_retry_info() {
    use tonic_types::StatusExt as _;
    let mut stack = stack_limited(
        None,
        &[
            "--place-order-rate=0.01",
            "--place-order-burst=2",
            "--max-open-orders-per-phone=0",
            "--max-open-units-per-phone=0",
        ],
    )
    .await;
    let product = stack.product(100).await;
    for key in ["rate-1", "rate-2"] {
        place_order(&stack.orders, place_request(key, &product, 1)).await;
    }
    let status = stack
        .orders
        .place_order(place_request("rate-3", &product, 1))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert!(
        status
            .message()
            .starts_with("too many requests from this client; retry in "),
        "{}",
        status.message()
    );
    let delay = status
        .get_details_retry_info()
        .and_then(|info| info.retry_delay)
        .expect("a RetryInfo with a delay");
    assert!(
        delay > Duration::from_secs(90) && delay <= Duration::from_secs(100),
        "{delay:?}"
    );
    assert_eq!(stack.orders_of_shopper("0912345678").await.len(), 2);

    // A caller with a verified token is limited by its subject, not by its address.
    stack
        .orders
        .place_order(authorized(place_request("rate-token", &product, 1), &[]))
        .await
        .expect("the token's subject has a bucket of its own");

    let metrics = ocop_testkit::scrape_metrics(stack.order_http)
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"ocop_rate_limited_total{limit="place_order"} 1"#),
        "{metrics}"
    );
    stack.stop().await;
}
