//! The order saga end to end (issue: "The saga's guarantees"): four real services, the
//! real PostgreSQL and the real broker. Every wait is a condition with a timeout.

use ocop_proto::contract::{consumer_groups, topics};
use std::time::Duration;

use ocop_e2e::{Outcome, Platform, Settings, WAIT, authorized, place_request, start_catalog};
use ocop_proto::{
    notification::v1::{self as notification, list_notifications_request::Filter},
    order::v1::{self as order, OrderStatus},
    payment::v1::{self as payment, payment_service_client::PaymentServiceClient},
};
use ocop_testkit::{eventually, fixtures::place_order};
use rdkafka::{
    Offset, TopicPartitionList,
    consumer::{BaseConsumer, CommitMode, Consumer as _},
};
use tonic::Code;

async fn notifications_for(
    platform: &Platform,
    order_id: &str,
    at_least: usize,
) -> Vec<notification::Notification> {
    let client = platform.notifications.clone();
    eventually(
        &format!("{at_least} notifications sent for {order_id}"),
        WAIT,
        || {
            let mut client = client.clone();
            let order_id = order_id.to_owned();
            async move {
                let listed = client
                    .list_notifications(authorized(
                        notification::ListNotificationsRequest {
                            filter: Some(Filter::OrderId(order_id)),
                            page_size: 100,
                            page_token: String::new(),
                        },
                        &["notification:read"],
                    ))
                    .await
                    .ok()?
                    .into_inner()
                    .notifications;
                let sent = listed
                    .iter()
                    .filter(|n| n.status == notification::NotificationStatus::Sent as i32)
                    .count();
                (sent >= at_least).then_some(listed)
            }
        },
    )
    .await
}

/// The payment database's double-entry ledger holds its invariants (every transaction
/// balanced; per order, balance = captured − refunded, never negative).
async fn ledger_holds(platform: &Platform) {
    let (_, payment) = platform
        .services
        .iter()
        .find(|(name, _)| *name == "payment")
        .expect("the payment service runs in-process");
    let pool = sqlx::PgPool::connect(&payment.database_url).await.unwrap();
    ocop_payment::ledger::assert_balanced(&pool).await;
    pool.close().await;
}

/// Every scenario ends here: the ledger is checked, then the platform stops.
async fn stop_checked(platform: Platform) {
    ledger_holds(&platform).await;
    platform.stop().await;
}

async fn refund(
    platform: &Platform,
    order_id: &str,
    amount_vnd: i64,
    key: &str,
) -> Result<payment::Refund, tonic::Status> {
    let mut client = PaymentServiceClient::connect(platform.payment_addr.clone())
        .await
        .unwrap();
    client
        .refund(authorized(
            payment::RefundRequest {
                order_id: order_id.to_owned(),
                amount_vnd,
                reason: "thiếu hàng khi đóng gói".into(),
                idempotency_key: key.to_owned(),
            },
            &["payment:write"],
        ))
        .await
        .map(|response| response.into_inner().refund.unwrap())
}

fn causes(order: &order::Order) -> Vec<&str> {
    order
        .history
        .iter()
        .map(|change| change.cause.as_str())
        .collect()
}

#[tokio::test]
async fn happy_path_ends_confirmed_with_stock_sold_and_the_shopper_told() {
    let mut platform = Platform::start(Settings::default()).await;
    let product = platform.product(10).await;
    let placed = platform.place(&product, 2).await;
    let confirmed = platform.wait_for(&placed.id, OrderStatus::Confirmed).await;
    assert_eq!(
        causes(&confirmed),
        vec![
            "PlaceOrder",
            "ocop.catalog.v1.StockReserved",
            "ocop.payment.v1.PaymentSucceeded"
        ]
    );
    assert!(
        confirmed.payment_instructions.is_some(),
        "GetOrder shows how to pay"
    );
    platform.wait_for_stock(&product, (8, 0)).await;

    // Order received, payment instructions, confirmed.
    let sent = notifications_for(&platform, &placed.id, 3).await;
    let bodies: Vec<&str> = sent.iter().map(|n| n.body.as_str()).collect();
    assert!(
        bodies.iter().any(|body| body.contains("330.000 ₫")),
        "{bodies:#?}"
    );
    assert!(
        bodies.iter().all(|body| body.contains(&placed.code)),
        "{bodies:#?}"
    );
    stop_checked(platform).await;
}

#[tokio::test]
async fn out_of_stock_order_is_rejected_with_nothing_reserved_and_the_shopper_told() {
    let mut platform = Platform::start(Settings::default()).await;
    let product = platform.product(1).await;
    let placed = platform.place(&product, 3).await;
    let cancelled = platform.wait_for(&placed.id, OrderStatus::Cancelled).await;
    assert_eq!(
        cancelled.cancellation_reason,
        order::CancellationReason::OutOfStock as i32
    );
    assert_eq!(platform.stock(&product).await, (1, 0));
    // Order received, then cancelled for want of stock.
    notifications_for(&platform, &placed.id, 2).await;
    stop_checked(platform).await;
}

#[tokio::test]
async fn failed_payment_cancels_the_order_and_releases_the_stock() {
    let mut platform = Platform::start(Settings {
        outcome: Outcome::Failure,
        ..Settings::default()
    })
    .await;
    let product = platform.product(10).await;
    let placed = platform.place(&product, 4).await;
    let cancelled = platform.wait_for(&placed.id, OrderStatus::Cancelled).await;
    assert_eq!(
        cancelled.cancellation_reason,
        order::CancellationReason::PaymentFailed as i32
    );
    platform.wait_for_stock(&product, (10, 0)).await;
    stop_checked(platform).await;
}

#[tokio::test]
async fn payment_that_never_arrives_expires_and_releases_the_stock() {
    let mut platform = Platform::start(Settings {
        outcome: Outcome::Never,
        payment_ttl: "2s",
        ..Settings::default()
    })
    .await;
    let product = platform.product(10).await;
    let placed = platform.place(&product, 4).await;
    platform
        .wait_for(&placed.id, OrderStatus::AwaitingPayment)
        .await;
    assert_eq!(platform.stock(&product).await, (10, 4));
    let cancelled = platform.wait_for(&placed.id, OrderStatus::Cancelled).await;
    assert_eq!(
        cancelled.cancellation_reason,
        order::CancellationReason::PaymentExpired as i32
    );
    platform.wait_for_stock(&product, (10, 0)).await;
    stop_checked(platform).await;
}

#[tokio::test]
async fn cancel_before_payment_releases_the_stock() {
    let mut platform = Platform::start(Settings {
        outcome: Outcome::Never,
        ..Settings::default()
    })
    .await;
    let product = platform.product(10).await;
    let placed = platform.place(&product, 3).await;
    platform
        .wait_for(&placed.id, OrderStatus::AwaitingPayment)
        .await;
    let cancelled = platform
        .orders
        .cancel_order(order::CancelOrderRequest {
            order_id: placed.id.clone(),
            reason: "đặt nhầm".into(),
            access_token: placed.access_token.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .order
        .unwrap();
    assert_eq!(
        cancelled.cancellation_reason,
        order::CancellationReason::CustomerRequest as i32
    );
    platform.wait_for_stock(&product, (10, 0)).await;
    stop_checked(platform).await;
}

#[tokio::test]
async fn cancel_after_payment_is_refused() {
    let mut platform = Platform::start(Settings::default()).await;
    let product = platform.product(10).await;
    let placed = platform.place(&product, 1).await;
    platform.wait_for(&placed.id, OrderStatus::Confirmed).await;
    let status = platform
        .orders
        .cancel_order(order::CancelOrderRequest {
            order_id: placed.id.clone(),
            reason: String::new(),
            access_token: placed.access_token.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(
        platform.order(&placed.id).await.status,
        OrderStatus::Confirmed as i32
    );
    platform.wait_for_stock(&product, (9, 0)).await;
    stop_checked(platform).await;
}

/// Offsets of `group` on `topic` per partition, and the topic's high watermarks.
fn group_progress(brokers: &str, group: &str, topic: &str) -> (Vec<i64>, Vec<i64>) {
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .create()
        .unwrap();
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(5))
        .unwrap();
    let partitions: Vec<i32> = metadata.topics()[0]
        .partitions()
        .iter()
        .map(|p| p.id())
        .collect();
    let mut list = TopicPartitionList::new();
    for partition in &partitions {
        list.add_partition(topic, *partition);
    }
    let committed = consumer
        .committed_offsets(list, Duration::from_secs(5))
        .unwrap();
    let offsets = partitions
        .iter()
        .map(|partition| {
            match committed
                .find_partition(topic, *partition)
                .map(|e| e.offset())
            {
                Some(Offset::Offset(offset)) => offset,
                _ => 0,
            }
        })
        .collect();
    let highs = partitions
        .iter()
        .map(|partition| {
            consumer
                .fetch_watermarks(topic, *partition, Duration::from_secs(5))
                .unwrap()
                .1
        })
        .collect();
    (offsets, highs)
}

#[tokio::test]
async fn replaying_the_order_topic_for_the_catalog_changes_nothing() {
    let mut platform = Platform::start(Settings::default()).await;
    let product = platform.product(10).await;
    let placed = platform.place(&product, 2).await;
    platform.wait_for(&placed.id, OrderStatus::Confirmed).await;
    platform.wait_for_stock(&product, (8, 0)).await;

    let brokers = ocop_testkit::kafka_brokers();
    let group = platform.topic(consumer_groups::CATALOG_ORDERS.name);
    let topic = platform.topic(topics::ORDERS.name);
    let index = platform
        .services
        .iter()
        .position(|(name, _)| *name == "catalog")
        .unwrap();
    let (_, catalog) = platform.services.remove(index);
    let database_url = catalog.database_url.clone();
    let pool = sqlx::PgPool::connect(&database_url).await.unwrap();
    // The snapshots of the saga's changes go out a round later: let them, so that what
    // the replay might publish is all that can follow.
    eventually("no product snapshot due", WAIT, || async {
        let due: i64 = sqlx::query_scalar("SELECT count(*) FROM product_snapshots_due")
            .fetch_one(&pool)
            .await
            .ok()?;
        (due == 0).then_some(())
    })
    .await;
    catalog.stop().await;
    let events_before: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(&pool)
        .await
        .unwrap();

    // Rewind the catalog's group to the start of the topic, as an operator replaying it.
    let (_, highs) = group_progress(&brokers, &group, &topic);
    let rewind: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", &group)
        .create()
        .unwrap();
    let mut list = TopicPartitionList::new();
    for partition in 0..highs.len() as i32 {
        list.add_partition_offset(&topic, partition, Offset::Offset(0))
            .unwrap();
    }
    rewind.commit(&list, CommitMode::Sync).unwrap();
    drop(rewind);
    assert!(
        group_progress(&brokers, &group, &topic)
            .0
            .iter()
            .all(|offset| *offset == 0)
    );

    let (address, restarted) = start_catalog(&platform.prefix, &database_url).await;
    platform.services.push(("catalog", restarted));
    platform.catalog =
        ocop_proto::catalog::v1::catalog_service_client::CatalogServiceClient::connect(address)
            .await
            .unwrap();
    eventually("the catalog to re-read the whole topic", WAIT, || {
        let (brokers, group, topic) = (brokers.clone(), group.clone(), topic.clone());
        async move {
            let (offsets, highs) =
                tokio::task::spawn_blocking(move || group_progress(&brokers, &group, &topic))
                    .await
                    .ok()?;
            (offsets == highs).then_some(())
        }
    })
    .await;
    let events_after: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        events_after, events_before,
        "a replay publishes nothing new"
    );
    assert_eq!(
        platform.stock(&product).await,
        (8, 0),
        "a replay reserves and sells nothing again"
    );
    assert_eq!(
        platform.order(&placed.id).await.status,
        OrderStatus::Confirmed as i32
    );
    stop_checked(platform).await;
}

#[tokio::test]
async fn order_service_killed_mid_saga_and_restarted_still_settles_every_order_once() {
    let mut platform = Platform::start(Settings {
        order_as_process: true,
        ..Settings::default()
    })
    .await;
    let product = platform.product(100).await;
    let mut ids = Vec::new();
    for _ in 0..10 {
        ids.push(platform.place(&product, 2).await.order.id);
    }
    // Kill while the saga is in flight: some orders pending, some awaiting payment.
    let (process, port) = platform.order_process.as_mut().unwrap();
    let port = *port;
    process.kill();
    process.start(port).await;
    platform.orders = order::order_service_client::OrderServiceClient::connect(format!(
        "http://127.0.0.1:{port}"
    ))
    .await
    .unwrap();

    for id in &ids {
        let confirmed = platform.wait_for(id, OrderStatus::Confirmed).await;
        let mut seen = std::collections::HashSet::new();
        for change in &confirmed.history {
            assert!(
                seen.insert(change.to),
                "order {id} entered {:?} twice: {:?}",
                change.to,
                causes(&confirmed)
            );
        }
    }
    platform.wait_for_stock(&product, (80, 0)).await;
    stop_checked(platform).await;
}

#[tokio::test]
async fn two_hundred_concurrent_orders_for_fifty_units_sell_exactly_fifty() {
    let mut platform = Platform::start(Settings::default()).await;
    let product = platform.product(50).await;
    let placing: Vec<_> = (0..200)
        .map(|n| {
            let orders = platform.orders.clone();
            let request = place_request(&format!("rush-{n}"), &product, 1);
            tokio::spawn(async move { place_order(&orders, request).await.order.id })
        })
        .collect();
    let mut ids = Vec::new();
    for task in placing {
        ids.push(task.await.unwrap());
    }
    let mut confirmed = 0;
    let mut cancelled = 0;
    for id in &ids {
        let client = platform.orders.clone();
        let status = eventually(
            &format!("order {id} to settle"),
            Duration::from_secs(180),
            || {
                let mut client = client.clone();
                let id = id.clone();
                async move {
                    let status = client
                        .get_order(authorized(
                            order::GetOrderRequest {
                                order_id: id,
                                ..Default::default()
                            },
                            &["order:read"],
                        ))
                        .await
                        .ok()?
                        .into_inner()
                        .order?
                        .status;
                    (status == OrderStatus::Confirmed as i32
                        || status == OrderStatus::Cancelled as i32)
                        .then_some(status)
                }
            },
        )
        .await;
        if status == OrderStatus::Confirmed as i32 {
            confirmed += 1;
        } else {
            cancelled += 1;
        }
    }
    assert_eq!((confirmed, cancelled), (50, 150));
    platform.wait_for_stock(&product, (0, 0)).await;
    stop_checked(platform).await;
}

#[tokio::test]
async fn partial_then_full_refund_moves_a_confirmed_order_to_partially_refunded_then_refunded() {
    let mut platform = Platform::start(Settings::default()).await;
    let product = platform.product(10).await;
    let placed = platform.place(&product, 2).await;
    let confirmed = platform.wait_for(&placed.id, OrderStatus::Confirmed).await;
    let first = refund(&platform, &placed.id, 100_000, "saga-refund-1")
        .await
        .unwrap();
    assert_eq!(first.status, payment::RefundStatus::Succeeded as i32);
    platform
        .wait_for(&placed.id, OrderStatus::PartiallyRefunded)
        .await;
    ledger_holds(&platform).await;
    // Beyond what is left: refused; the order does not move.
    let beyond = refund(&platform, &placed.id, confirmed.total_vnd, "saga-refund-x")
        .await
        .unwrap_err();
    assert_eq!(beyond.code(), Code::InvalidArgument);
    let rest = refund(
        &platform,
        &placed.id,
        confirmed.total_vnd - 100_000,
        "saga-refund-2",
    )
    .await
    .unwrap();
    assert_eq!(rest.status, payment::RefundStatus::Succeeded as i32);
    let refunded = platform.wait_for(&placed.id, OrderStatus::Refunded).await;
    assert_eq!(
        causes(&refunded)[3..],
        [
            "ocop.payment.v1.RefundSucceeded",
            "ocop.payment.v1.RefundSucceeded"
        ]
    );
    stop_checked(platform).await;
}

#[tokio::test]
async fn refund_beyond_what_was_paid_is_refused_and_the_order_stays_confirmed() {
    let mut platform = Platform::start(Settings::default()).await;
    let product = platform.product(10).await;
    let placed = platform.place(&product, 1).await;
    platform.wait_for(&placed.id, OrderStatus::Confirmed).await;
    let refused = refund(&platform, &placed.id, 200_000, "too-much")
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "more than was paid");
    assert_eq!(
        platform.order(&placed.id).await.status,
        OrderStatus::Confirmed as i32
    );
    stop_checked(platform).await;
}

/// Orders paid by each real method settle through that provider's own scheme (the
/// sandbox gateway playing VietQR, VNPay, MoMo and ZaloPay), and can be refunded
/// through it.
#[tokio::test]
async fn orders_paid_by_each_provider_are_confirmed_and_refunded_through_it() {
    let mut platform = Platform::start(Settings::default()).await;
    let product = platform.product(20).await;
    let mut ids = Vec::new();
    for method in [
        order::PaymentMethod::Vietqr,
        order::PaymentMethod::Vnpay,
        order::PaymentMethod::Momo,
        order::PaymentMethod::Zalopay,
    ] {
        let mut request = place_request(&uuid::Uuid::new_v4().to_string(), &product, 1);
        request.payment_method = method as i32;
        let placed = platform
            .orders
            .place_order(request)
            .await
            .unwrap()
            .into_inner()
            .order
            .unwrap();
        ids.push((method, placed.id));
    }
    for (method, id) in &ids {
        let confirmed = platform.wait_for(id, OrderStatus::Confirmed).await;
        let instructions = confirmed.payment_instructions.unwrap();
        match (method, instructions.method) {
            (
                order::PaymentMethod::Vietqr,
                Some(order::payment_instructions::Method::Vietqr(qr)),
            ) => {
                assert!(qr.payload.starts_with("000201"), "{}", qr.payload);
            }
            (_, Some(order::payment_instructions::Method::PayUrl(url))) => {
                assert!(url.contains("/pay/"), "{url}");
            }
            other => panic!("unexpected instructions {other:?}"),
        }
        if *method == order::PaymentMethod::Vietqr {
            // A bank transfer has no refund API: refused by the provider, order unchanged.
            let manual = refund(&platform, id, 50_000, &format!("{id}-r"))
                .await
                .unwrap();
            assert_eq!(manual.status, payment::RefundStatus::Failed as i32);
        } else {
            let partial = refund(&platform, id, 50_000, &format!("{id}-r"))
                .await
                .unwrap();
            assert_eq!(
                partial.status,
                payment::RefundStatus::Succeeded as i32,
                "{method:?}"
            );
            platform.wait_for(id, OrderStatus::PartiallyRefunded).await;
        }
    }
    platform.wait_for_stock(&product, (16, 0)).await;
    stop_checked(platform).await;
}
