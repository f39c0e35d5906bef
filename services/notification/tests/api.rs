//! The notification service started for real (port 0, fresh database, the test broker
//! under a topic prefix of its own), fed real CloudEvents on the prefixed topics, and
//! called through its generated gRPC client.

use ocop_proto::contract::{consumer_groups, topics};
use std::{path::PathBuf, time::Duration};

use clap::Parser as _;
use ocop_events::CloudEvent;
use ocop_grpc_kit::{
    auth::{Grant, TokenIssuer, audience},
    validation::violations,
};
use ocop_notification::{App, Config, service::Notifications};
use ocop_proto::{
    notification::v1::{
        self as pb, list_notifications_request::Filter,
        notification_service_client::NotificationServiceClient,
    },
    order::v1 as order_pb,
    payment::v1 as payment_pb,
};
use ocop_testkit::{
    eventually, find_record, fresh_database_url, header, key_text, stock_client::assert_invalid,
    unique,
};
use prost::Message as _;
use rdkafka::Message as _;
use tokio::sync::oneshot;
use tonic::{Code, Request, transport::Channel};
use uuid::Uuid;

const SECRET: &str = "notification-test-secret-notification-test";
const WAIT: Duration = Duration::from_secs(60);
const PHONE: &str = "+84 912 345 123";

struct TestService {
    client: NotificationServiceClient<Channel>,
    notifications: Notifications,
    prefix: String,
    spool: PathBuf,
    http_addr: std::net::SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    running: tokio::task::JoinHandle<anyhow::Result<()>>,
}

async fn spawn_service_with(extra: &[&str]) -> TestService {
    let prefix = format!("{}.", unique("t"));
    let spool = std::env::temp_dir().join(unique("ocop_spool"));
    let mut args =
        ocop_testkit::service_args("notification", &fresh_database_url().await, &prefix, SECRET);
    args.extend([
        format!("--notification-spool-dir={}", spool.display()),
        "--dispatch-interval=50ms".to_owned(),
    ]);
    args.extend(extra.iter().map(|arg| (*arg).to_owned()));
    let config = Config::try_parse_from(args).expect("test config parses");
    let app = App::build(config)
        .await
        .expect("notification service builds");
    let grpc_addr = app.grpc_addr();
    let http_addr = app.http_addr();
    let notifications = app.notifications();
    let (shutdown, stopped) = oneshot::channel();
    let running = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    let client = NotificationServiceClient::connect(format!("http://{grpc_addr}"))
        .await
        .expect("connect to the notification service");
    TestService {
        client,
        notifications,
        prefix,
        spool,
        http_addr,
        shutdown: Some(shutdown),
        running,
    }
}

async fn spawn_service() -> TestService {
    spawn_service_with(&[]).await
}

fn with_token<T>(message: T, scopes: &[&str]) -> Request<T> {
    let token = TokenIssuer::from_secret(SECRET.as_bytes()).mint(&Grant {
        audiences: &[audience::NOTIFICATION],
        subject: "test-operator",
        scopes,
        channel: None,
        ttl: Duration::from_secs(300),
    });
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

fn reader<T>(message: T) -> Request<T> {
    with_token(message, &["notification:read"])
}

fn order_event<M: prost::Name>(source: &str, order_id: Uuid, message: &M) -> CloudEvent {
    CloudEvent::new(
        source,
        order_id.to_string(),
        Some(format!("order/{order_id}")),
        message,
    )
}

/// Three units of miến dong and two of trà hoa vàng, 25.000 ₫ shipping: 1.250.000 ₫.
fn order_placed(order_id: Uuid, email: &str) -> CloudEvent {
    let line = |name: &str, unit: &str, quantity: i32, price: i64| order_pb::OrderLine {
        product_id: Uuid::new_v4().to_string(),
        sku: "SKU".into(),
        name: name.into(),
        unit: unit.into(),
        quantity,
        unit_price_vnd: price,
        line_total_vnd: price * i64::from(quantity),
    };
    order_event(
        "/ocop/order",
        order_id,
        &order_pb::OrderPlaced {
            order_id: order_id.to_string(),
            order_code: "OCOP7K2QF9".into(),
            lines: vec![
                line("Miến dong Bình Liêu", "gói 500g", 3, 75_000),
                line("Trà hoa vàng Ba Chẽ", "hộp 100g", 2, 500_000),
            ],
            subtotal_vnd: 1_225_000,
            shipping_fee_vnd: 25_000,
            total_vnd: 1_250_000,
            delivery_method: order_pb::DeliveryMethod::Standard as i32,
            payment_method: order_pb::PaymentMethod::Vietqr as i32,
            sales_channel: order_pb::SalesChannel::Web as i32,
            customer: Some(order_pb::CustomerContact {
                name: "Nguyễn Thị Hoa".into(),
                phone: PHONE.into(),
                email: email.into(),
            }),
            occurred_at: None,
        },
    )
}

fn payment_initiated(
    order_id: Uuid,
    instructions: payment_pb::payment_initiated::Instructions,
) -> CloudEvent {
    let provider = match instructions {
        payment_pb::payment_initiated::Instructions::Vietqr(_) => {
            payment_pb::PaymentProvider::Vietqr
        }
        payment_pb::payment_initiated::Instructions::PayUrl(_) => {
            payment_pb::PaymentProvider::Vnpay
        }
    };
    order_event(
        "/ocop/payment",
        order_id,
        &payment_pb::PaymentInitiated {
            order_id: order_id.to_string(),
            payment_id: Uuid::new_v4().to_string(),
            provider: provider as i32,
            amount_vnd: 1_250_000,
            instructions: Some(instructions),
            // 2026-12-05 07:30 UTC = 14:30 in Vietnam.
            expires_at: Some(prost_types_timestamp(1_796_455_800)),
            occurred_at: None,
        },
    )
}

fn vietqr() -> payment_pb::payment_initiated::Instructions {
    payment_pb::payment_initiated::Instructions::Vietqr(payment_pb::VietQrTransfer {
        payload: "00020101021238570010A000000727".into(),
        image_url: String::new(),
        bank_bin: "970436".into(),
        account_number: "0011004455667".into(),
        account_name: "HTX OCOP QUANG NINH".into(),
        memo: "OCOP7K2QF9".into(),
    })
}

fn prost_types_timestamp(seconds: i64) -> ::prost_types::Timestamp {
    ::prost_types::Timestamp { seconds, nanos: 0 }
}

fn order_confirmed(order_id: Uuid) -> CloudEvent {
    order_event(
        "/ocop/order",
        order_id,
        &order_pb::OrderConfirmed {
            order_id: order_id.to_string(),
            lines: vec![],
            total_vnd: 1_250_000,
            occurred_at: None,
        },
    )
}

fn order_shipped(order_id: Uuid) -> CloudEvent {
    order_event(
        "/ocop/order",
        order_id,
        &order_pb::OrderShipped {
            order_id: order_id.to_string(),
            lines: vec![],
            carrier: "Viettel Post".into(),
            tracking_code: "VTP123456789".into(),
            occurred_at: None,
        },
    )
}

fn order_delivered(order_id: Uuid) -> CloudEvent {
    order_event(
        "/ocop/order",
        order_id,
        &order_pb::OrderDelivered {
            order_id: order_id.to_string(),
            lines: vec![],
            occurred_at: None,
        },
    )
}

impl TestService {
    fn topic(&self, logical: &str) -> String {
        format!("{}{logical}", self.prefix)
    }

    async fn publish(&self, logical_topic: &str, event: &CloudEvent) {
        let topic = self.topic(logical_topic);
        ocop_testkit::produce(&topic, &event.key, &event.data, event.headers()).await;
    }

    async fn list(
        &mut self,
        filter: Filter,
        page_size: i32,
        page_token: &str,
    ) -> pb::ListNotificationsResponse {
        self.client
            .list_notifications(reader(pb::ListNotificationsRequest {
                filter: Some(filter),
                page_size,
                page_token: page_token.into(),
            }))
            .await
            .expect("list notifications")
            .into_inner()
    }

    async fn of_order(&mut self, order_id: Uuid) -> Vec<pb::Notification> {
        self.list(Filter::OrderId(order_id.to_string()), 100, "")
            .await
            .notifications
    }

    /// Waits until the order has `count` notifications and none is pending.
    async fn settled(&mut self, order_id: Uuid, count: usize) -> Vec<pb::Notification> {
        let client = self.client.clone();
        eventually(
            &format!("{count} settled notifications of order {order_id}"),
            WAIT,
            || {
                let mut client = client.clone();
                async move {
                    let listed = client
                        .list_notifications(reader(pb::ListNotificationsRequest {
                            filter: Some(Filter::OrderId(order_id.to_string())),
                            page_size: 100,
                            page_token: String::new(),
                        }))
                        .await
                        .ok()?
                        .into_inner()
                        .notifications;
                    let pending = pb::NotificationStatus::Pending as i32;
                    (listed.len() == count && listed.iter().all(|n| n.status != pending))
                        .then_some(listed)
                }
            },
        )
        .await
    }

    /// The spool file's lines, as JSON.
    fn spool_lines(&self) -> Vec<serde_json::Value> {
        let path = self.spool.join("notifications.jsonl");
        std::fs::read_to_string(&path)
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str(line).expect("spool line is JSON"))
            .collect()
    }

    fn spooled(&self, template: &str) -> serde_json::Value {
        let lines = self.spool_lines();
        let found: Vec<_> = lines
            .iter()
            .filter(|line| line["template"] == template)
            .collect();
        assert_eq!(found.len(), 1, "one {template} line in {lines:#?}");
        found[0].clone()
    }

    async fn stop(mut self) {
        let _ = self.shutdown.take().unwrap().send(());
        tokio::time::timeout(WAIT, self.running)
            .await
            .expect("service stops within the grace period")
            .expect("service task did not panic")
            .expect("service stopped cleanly");
        let _ = std::fs::remove_dir_all(&self.spool);
    }
}

fn templates(notifications: &[pb::Notification]) -> Vec<&str> {
    let mut names: Vec<_> = notifications.iter().map(|n| n.template.as_str()).collect();
    names.sort_unstable();
    names
}

#[tokio::test]
async fn shopper_hears_each_step_in_vietnamese_with_exact_amounts() {
    let mut service = spawn_service().await;
    let order_id = Uuid::now_v7();
    service
        .publish(topics::ORDERS.name, &order_placed(order_id, ""))
        .await;
    service
        .publish(
            topics::PAYMENTS.name,
            &payment_initiated(order_id, vietqr()),
        )
        .await;
    for event in [
        order_confirmed(order_id),
        order_shipped(order_id),
        order_delivered(order_id),
    ] {
        service.publish(topics::ORDERS.name, &event).await;
    }

    let listed = service.settled(order_id, 5).await;
    assert_eq!(
        templates(&listed),
        vec![
            "order_confirmed",
            "order_delivered",
            "order_received",
            "order_shipped",
            "payment_instructions"
        ]
    );
    for notification in &listed {
        assert_eq!(notification.status, pb::NotificationStatus::Sent as i32);
        assert_eq!(notification.channel, pb::NotificationChannel::Log as i32);
        assert_eq!(notification.recipient, "09xx xxx 123");
        assert_eq!(notification.attempts, 1);
        assert!(notification.sent_at.is_some());
        assert!(notification.last_error.is_empty());
    }

    let received = service.spooled("order_received");
    assert_eq!(received["to"], "0912345123");
    assert_eq!(
        received["subject"],
        "Đã nhận đơn hàng OCOP7K2QF9 – OCOP Quảng Ninh"
    );
    let body = received["body"].as_str().unwrap();
    for expected in [
        "Xin chào Nguyễn Thị Hoa,",
        "- Miến dong Bình Liêu (gói 500g): 3 × 75.000 ₫ = 225.000 ₫",
        "- Trà hoa vàng Ba Chẽ (hộp 100g): 2 × 500.000 ₫ = 1.000.000 ₫",
        "Phí vận chuyển: 25.000 ₫",
        "Tổng cộng: 1.250.000 ₫",
    ] {
        assert!(body.contains(expected), "{expected:?} missing in {body}");
    }
    let payment = service.spooled("payment_instructions");
    let body = payment["body"].as_str().unwrap();
    for expected in [
        "Vui lòng thanh toán 1.250.000 ₫ trước 14:30 ngày 05/12/2026.",
        "- Ngân hàng: Vietcombank – mã BIN 970436",
        "- Số tài khoản: 0011004455667",
        "- Nội dung chuyển khoản: OCOP7K2QF9",
    ] {
        assert!(body.contains(expected), "{expected:?} missing in {body}");
    }
    assert!(
        service.spooled("order_confirmed")["body"]
            .as_str()
            .unwrap()
            .contains("khoản thanh toán 1.250.000 ₫ cho đơn hàng OCOP7K2QF9")
    );
    let shipped = service.spooled("order_shipped");
    assert!(
        shipped["body"]
            .as_str()
            .unwrap()
            .contains("đơn vị vận chuyển Viettel Post.\nMã vận đơn: VTP123456789")
    );

    // The same notifications by recipient, however the number is written.
    let by_phone = service
        .list(Filter::Recipient("0912.345.123".into()), 100, "")
        .await
        .notifications;
    assert_eq!(
        by_phone.iter().map(|n| &n.id).collect::<Vec<_>>(),
        listed.iter().map(|n| &n.id).collect::<Vec<_>>()
    );

    // Pages of two, newest first, no repeats.
    let mut paged = Vec::new();
    let mut token = String::new();
    loop {
        let page = service
            .list(Filter::OrderId(order_id.to_string()), 2, &token)
            .await;
        assert!(page.notifications.len() <= 2);
        paged.extend(page.notifications.into_iter().map(|n| n.id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let mut newest_first = paged.clone();
    newest_first.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(paged, newest_first);
    assert_eq!(paged.len(), 5);

    // Each delivery is announced, keyed by order, with the recipient masked.
    let sent = find_record(
        &service.topic(topics::NOTIFICATIONS.name),
        WAIT,
        |message| {
            key_text(message) == order_id.to_string()
                && header(message, "ce_type").as_deref()
                    == Some("ocop.notification.v1.NotificationSent")
                && pb::NotificationSent::decode(message.payload().unwrap_or_default())
                    .is_ok_and(|sent| sent.template == "order_delivered")
        },
    )
    .await;
    assert_eq!(
        header(&sent, "ce_source").as_deref(),
        Some("/ocop/notification")
    );
    let sent = pb::NotificationSent::decode(sent.payload().unwrap()).unwrap();
    assert_eq!(sent.recipient, "09xx xxx 123");
    assert_eq!(sent.channel, pb::NotificationChannel::Log as i32);
    assert_eq!(sent.attempts, 1);
    assert_eq!(sent.order_id, order_id.to_string());

    let metrics = http_get(service.http_addr, "/metrics").await;
    assert!(
        metrics.contains(r#"ocop_notifications_total{channel="log",outcome="sent"}"#),
        "{metrics}"
    );
    service.stop().await;
}

async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: test\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut body = String::new();
    stream.read_to_string(&mut body).await.unwrap();
    body
}

/// The value of a Prometheus sample, 0 when absent.
async fn metric(addr: std::net::SocketAddr, sample: &str) -> f64 {
    http_get(addr, "/metrics")
        .await
        .lines()
        .find_map(|line| line.strip_prefix(sample)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn payment_instructions_that_overtake_their_order_wait_for_it() {
    let mut service = spawn_service().await;
    let order_id = Uuid::now_v7();
    // Payments and orders are different topics: nothing orders them. Here the payment
    // event comes first and is retried (the counter is process-wide, so another test's
    // retry may satisfy the wait; the outcome asserted below holds either way) until
    // OrderPlaced delivers the contact.
    const RETRIES: &str =
        r#"ocop_consumer_retries_total{group="ocop.notification.events.payments"}"#;
    let retries_before = metric(service.http_addr, RETRIES).await;
    let pay_url = "http://sandbox.ocop.local/pay/abc".to_owned();
    service
        .publish(
            topics::PAYMENTS.name,
            &payment_initiated(
                order_id,
                payment_pb::payment_initiated::Instructions::PayUrl(pay_url.clone()),
            ),
        )
        .await;
    eventually("the payment event to be retried", WAIT, || async {
        (metric(service.http_addr, RETRIES).await > retries_before).then_some(())
    })
    .await;
    service
        .publish(topics::ORDERS.name, &order_placed(order_id, ""))
        .await;
    let listed = service.settled(order_id, 2).await;
    assert_eq!(
        templates(&listed),
        vec!["order_received", "payment_instructions"]
    );
    let body = service.spooled("payment_instructions")["body"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        body.contains(&format!("Thanh toán qua VNPay tại đường dẫn:\n{pay_url}")),
        "{body}"
    );
    service.stop().await;
}

#[tokio::test]
async fn the_same_event_twice_notifies_once_and_other_types_notify_nobody() {
    let mut service = spawn_service().await;
    let order_id = Uuid::now_v7();
    let placed = order_placed(order_id, "");
    service.publish(topics::ORDERS.name, &placed).await;
    service.publish(topics::ORDERS.name, &placed).await;
    // An event type the shopper need not hear about.
    service
        .publish(
            topics::ORDERS.name,
            &order_event(
                "/ocop/order",
                order_id,
                &order_pb::PaymentRequested {
                    order_id: order_id.to_string(),
                    order_code: "OCOP7K2QF9".into(),
                    amount_vnd: 1_250_000,
                    ..Default::default()
                },
            ),
        )
        .await;
    // Last on the same partition: once it is handled, everything before it was too.
    service
        .publish(topics::ORDERS.name, &order_confirmed(order_id))
        .await;

    let listed = service.settled(order_id, 2).await;
    assert_eq!(
        templates(&listed),
        vec!["order_confirmed", "order_received"]
    );
    assert_eq!(service.spool_lines().len(), 2);
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM notifications")
        .fetch_one(service.notifications.pool())
        .await
        .unwrap();
    assert_eq!(rows, 2);
    service.stop().await;
}

#[tokio::test]
async fn unreachable_email_ends_failed_after_the_last_attempt_with_an_event() {
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut service = spawn_service_with(&[
        "--notification-channels=log,email",
        "--smtp-host=127.0.0.1",
        &format!("--smtp-port={closed_port}"),
        "--smtp-from=OCOP Quảng Ninh <no-reply@ocop.example.vn>",
        "--notification-max-attempts=3",
        "--notification-retry-backoff=20ms",
    ])
    .await;
    let order_id = Uuid::now_v7();
    service
        .publish(
            topics::ORDERS.name,
            &order_placed(order_id, "Hoa.Nguyen@Example.com"),
        )
        .await;

    let listed = service.settled(order_id, 2).await;
    let email = listed
        .iter()
        .find(|n| n.channel == pb::NotificationChannel::Email as i32)
        .expect("an e-mail notification");
    assert_eq!(email.status, pb::NotificationStatus::Failed as i32);
    assert_eq!(email.attempts, 3);
    assert_eq!(email.recipient, "h***@example.com");
    assert_eq!(
        email.subject,
        "Đã nhận đơn hàng OCOP7K2QF9 – OCOP Quảng Ninh"
    );
    assert!(!email.last_error.is_empty());
    assert!(
        !email.last_error.contains("hoa.nguyen@"),
        "{}",
        email.last_error
    );
    assert!(email.sent_at.is_none());
    let log = listed
        .iter()
        .find(|n| n.channel == pb::NotificationChannel::Log as i32)
        .expect("a log notification");
    assert_eq!(log.status, pb::NotificationStatus::Sent as i32);

    let attempts: Vec<(i32, String)> = sqlx::query_as(
        "SELECT attempt, outcome FROM notification_attempts WHERE notification_id = $1 ORDER BY attempt",
    )
    .bind(Uuid::parse_str(&email.id).unwrap())
    .fetch_all(service.notifications.pool())
    .await
    .unwrap();
    assert_eq!(
        attempts,
        vec![
            (1, "retry".to_owned()),
            (2, "retry".to_owned()),
            (3, "failed".to_owned())
        ]
    );

    // The e-mail address finds it too, in any case.
    let by_email = service
        .list(Filter::Recipient("HOA.NGUYEN@example.com".into()), 10, "")
        .await
        .notifications;
    assert_eq!(by_email.len(), 1);
    assert_eq!(by_email[0].id, email.id);

    let failed = find_record(
        &service.topic(topics::NOTIFICATIONS.name),
        WAIT,
        |message| {
            key_text(message) == order_id.to_string()
                && header(message, "ce_type").as_deref()
                    == Some("ocop.notification.v1.NotificationFailed")
        },
    )
    .await;
    let failed = pb::NotificationFailed::decode(failed.payload().unwrap()).unwrap();
    assert_eq!(failed.notification_id, email.id);
    assert_eq!(failed.channel, pb::NotificationChannel::Email as i32);
    assert_eq!(failed.attempts, 3);
    assert_eq!(failed.recipient, "h***@example.com");
    assert_eq!(failed.template, "order_received");
    assert_eq!(failed.last_error, email.last_error);
    service.stop().await;
}

#[tokio::test]
async fn an_event_for_an_order_never_placed_is_dead_lettered_after_retries() {
    let mut service =
        spawn_service_with(&["--event-max-attempts=2", "--event-retry-backoff=10ms"]).await;
    let order_id = Uuid::now_v7();
    service
        .publish(topics::ORDERS.name, &order_shipped(order_id))
        .await;
    let dead = find_record(
        &service.topic(consumer_groups::NOTIFICATION_ORDERS.dead_letters.name),
        WAIT,
        |message| key_text(message) == order_id.to_string(),
    )
    .await;
    let error = header(&dead, "dlq_error").unwrap_or_default();
    assert!(error.contains("OrderPlaced not seen"), "{error}");
    assert_eq!(header(&dead, "dlq_attempts").as_deref(), Some("2"));
    assert!(service.of_order(order_id).await.is_empty());
    service.stop().await;
}

#[tokio::test]
async fn listing_needs_the_read_scope_and_names_bad_fields() {
    let mut service = spawn_service().await;
    let request = || pb::ListNotificationsRequest {
        filter: Some(Filter::OrderId(Uuid::now_v7().to_string())),
        page_size: 0,
        page_token: String::new(),
    };
    let anonymous = service
        .client
        .list_notifications(request())
        .await
        .unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);
    let wrong_scope = service
        .client
        .list_notifications(with_token(request(), &["order:read"]))
        .await
        .unwrap_err();
    assert_eq!(wrong_scope.code(), Code::PermissionDenied);
    assert!(
        service
            .client
            .list_notifications(reader(request()))
            .await
            .unwrap()
            .into_inner()
            .notifications
            .is_empty()
    );

    let cases = [
        ("filter", None, 0, ""),
        ("order_id", Some(Filter::OrderId("42".into())), 0, ""),
        ("recipient", Some(Filter::Recipient("hoa".into())), 0, ""),
        ("recipient", Some(Filter::Recipient("  ".into())), 0, ""),
        ("page_size", Some(Filter::Recipient(PHONE.into())), 101, ""),
        (
            "page_token",
            Some(Filter::Recipient(PHONE.into())),
            0,
            "not-a-token",
        ),
    ];
    for (field, filter, page_size, page_token) in cases {
        let status = service
            .client
            .list_notifications(reader(pb::ListNotificationsRequest {
                filter,
                page_size,
                page_token: page_token.into(),
            }))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{field}: {status:?}");
        assert_eq!(violations(&status)[0].field, field);
    }
    service.stop().await;
}

#[tokio::test]
async fn nul_huge_or_crafted_list_input_is_a_small_invalid_argument() {
    let mut service = spawn_service().await;
    let huge = "9".repeat(10_000);
    let other_list = ocop_grpc_kit::page_token::encode("order.orders", &Uuid::now_v7().to_string());
    let untagged = Uuid::now_v7().simple().to_string();
    let cases = [
        ("recipient", Filter::Recipient("0912\x00345123".into()), ""),
        (
            "recipient",
            Filter::Recipient("hoa\0@example.com".into()),
            "",
        ),
        ("recipient", Filter::Recipient(huge.clone()), ""),
        (
            "recipient",
            Filter::Recipient(format!("{huge}@example.com")),
            "",
        ),
        ("order_id", Filter::OrderId(huge.clone()), ""),
        ("page_token", Filter::Recipient(PHONE.into()), "aéa"),
        (
            "page_token",
            Filter::Recipient(PHONE.into()),
            untagged.as_str(),
        ),
        (
            "page_token",
            Filter::Recipient(PHONE.into()),
            other_list.as_str(),
        ),
    ];
    for (field, filter, page_token) in cases {
        let status = service
            .client
            .list_notifications(reader(pb::ListNotificationsRequest {
                filter: Some(filter),
                page_size: 0,
                page_token: page_token.into(),
            }))
            .await
            .unwrap_err();
        assert_invalid(&status, field);
    }
    service.stop().await;
}
