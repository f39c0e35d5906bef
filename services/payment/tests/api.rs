//! The payment service started for real (port 0, fresh database, the test broker with a
//! topic prefix of its own per test), driven by order events published to Kafka, signed
//! HTTP callbacks and its generated gRPC client.

mod common;

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use common::{
    JWT_SECRET, NEVER, SANDBOX_SECRET, TestPayment, WAIT, spawn_payment, spawn_payment_on,
    with_token,
};
use hmac::{Hmac, Mac as _};
use ocop_events::CloudEvent;
use ocop_grpc_kit::validation::violations;
use ocop_payment::store;
use ocop_proto::{order::v1 as order_pb, payment::v1 as pb};
use ocop_testkit::{
    eventually, find_record, fresh_database_url, header, key_text, stock_client::assert_invalid,
    unique,
};
use rdkafka::Message as _;
use serde_json::{Value, json};
use sha2::Sha256;
use tonic::Code;
use uuid::Uuid;

const AMOUNT: i64 = 525_000;

/// A request to pay with the sandbox's own method.
fn payment_requested(order_id: Uuid, amount_vnd: i64, deadline: TimeDelta) -> CloudEvent {
    payment_requested_with(
        order_id,
        amount_vnd,
        deadline,
        order_pb::PaymentMethod::Sandbox,
    )
}

fn payment_requested_with(
    order_id: Uuid,
    amount_vnd: i64,
    deadline: TimeDelta,
    method: order_pb::PaymentMethod,
) -> CloudEvent {
    let deadline = Utc::now() + deadline;
    CloudEvent::new(
        "/ocop/order",
        order_id.to_string(),
        Some(format!("order/{order_id}")),
        &order_pb::PaymentRequested {
            order_id: order_id.to_string(),
            order_code: format!("QN-{}", &order_id.simple().to_string()[..8]),
            amount_vnd,
            payment_method: method as i32,
            deadline: Some(prost_types::Timestamp {
                seconds: deadline.timestamp(),
                nanos: 0,
            }),
            occurred_at: None,
        },
    )
}

fn order_cancelled(order_id: Uuid) -> CloudEvent {
    CloudEvent::new(
        "/ocop/order",
        order_id.to_string(),
        Some(format!("order/{order_id}")),
        &order_pb::OrderCancelled {
            order_id: order_id.to_string(),
            lines: Vec::new(),
            reason: 0,
            detail: "khách đổi ý".into(),
            previous_status: 0,
            occurred_at: None,
        },
    )
}

/// HMAC-SHA256 of `body` in hex, computed here independently of the service's code.
fn sign(secret: &str, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

fn callback_body(payment_id: &str, amount_vnd: i64, status: &str, transaction: &str) -> Value {
    json!({
        "payment_id": payment_id,
        "order_code": "QN-TEST",
        "amount_vnd": amount_vnd,
        "status": status,
        "provider_transaction_id": transaction,
        "timestamp": Utc::now().timestamp(),
    })
}

impl TestPayment {
    /// Publishes a payment request and waits for its pending intent.
    async fn pending_payment(&self, deadline: TimeDelta) -> (Uuid, pb::Payment) {
        let order_id = Uuid::now_v7();
        self.publish(&payment_requested(order_id, AMOUNT, deadline))
            .await;
        let payment = self
            .wait_payment(order_id, "the payment intent", |_| true)
            .await;
        (order_id, payment)
    }

    /// The first payment event of type `M` about `order_id` on the prefixed topic.
    async fn payment_event<M: prost::Name + Default>(&self, order_id: Uuid) -> M {
        let topic = format!("{}ocop.payments.v1", self.prefix);
        let key = order_id.to_string();
        let record = find_record(&topic, WAIT, |message| {
            key_text(message) == key && header(message, "ce_type") == Some(M::full_name())
        })
        .await;
        assert_eq!(
            header(&record, "ce_source").as_deref(),
            Some("/ocop/payment")
        );
        M::decode(record.payload().expect("event has a value")).expect("event decodes")
    }

    async fn stored_status(&self, order_id: Uuid) -> String {
        sqlx::query_scalar("SELECT status FROM payment_intents WHERE order_id = $1")
            .bind(order_id)
            .fetch_one(self.payments.pool())
            .await
            .unwrap()
    }

    /// The verdicts and signature flags of stored callbacks, oldest first.
    async fn callbacks(&self) -> Vec<(String, bool, Option<Uuid>)> {
        sqlx::query_as(
            "SELECT verdict, signature_valid, payment_id FROM provider_callbacks ORDER BY received_at, id",
        )
        .fetch_all(self.payments.pool())
        .await
        .unwrap()
    }

    /// POSTs `body` to the callback endpoint with `signature` as is.
    async fn post_callback(&self, body: &str, signature: Option<&str>) -> (u16, Value) {
        let mut request = reqwest::Client::new()
            .post(format!("{}/callbacks/sandbox", self.http))
            .header("content-type", "application/json")
            .body(body.to_owned());
        if let Some(signature) = signature {
            request = request.header("X-Sandbox-Signature", signature);
        }
        let response = request.send().await.expect("callback request");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let reply = serde_json::from_str(&text).unwrap_or_else(|_| panic!("JSON reply: {text}"));
        (status, reply)
    }

    /// POSTs `body` signed with the sandbox secret.
    async fn post_signed(&self, body: &Value) -> (u16, Value) {
        let body = body.to_string();
        self.post_callback(&body, Some(&sign(SANDBOX_SECRET, &body)))
            .await
    }

    async fn http_get(&self, path: &str) -> (u16, String) {
        let response = reqwest::get(format!("{}{path}", self.http))
            .await
            .expect("http get");
        (response.status().as_u16(), response.text().await.unwrap())
    }

    async fn http_post(&self, path: &str) -> u16 {
        reqwest::Client::new()
            .post(format!("{}{path}", self.http))
            .send()
            .await
            .expect("http post")
            .status()
            .as_u16()
    }
}

#[tokio::test]
async fn payment_request_creates_a_pending_intent_and_publishes_payment_initiated() {
    let payment = spawn_payment(NEVER).await;
    let (order_id, intent) = payment.pending_payment(TimeDelta::minutes(15)).await;
    assert_eq!(intent.order_id, order_id.to_string());
    assert_eq!(intent.status, pb::PaymentStatus::Pending as i32);
    assert_eq!(intent.provider, pb::PaymentProvider::Sandbox as i32);
    assert_eq!(intent.amount_vnd, AMOUNT);
    assert_eq!(intent.captured_vnd, 0);
    assert_eq!(
        intent.pay_url,
        format!("{}/sandbox/pay/{}", payment.http, intent.id)
    );

    let initiated: pb::PaymentInitiated = payment.payment_event(order_id).await;
    assert_eq!(initiated.payment_id, intent.id);
    assert_eq!(initiated.amount_vnd, AMOUNT);
    assert_eq!(
        initiated.instructions,
        Some(pb::payment_initiated::Instructions::PayUrl(
            intent.pay_url.clone()
        ))
    );
    assert_eq!(initiated.expires_at, intent.expires_at);
    let method: String = sqlx::query_scalar("SELECT method FROM payment_intents WHERE id = $1")
        .bind(Uuid::parse_str(&intent.id).unwrap())
        .fetch_one(payment.payments.pool())
        .await
        .unwrap();
    assert_eq!(method, "sandbox", "the requested method is recorded");

    let (status, page) = payment
        .http_get(&format!("/sandbox/pay/{}", intent.id))
        .await;
    assert_eq!(status, 200);
    for expected in [
        "525.000 ₫",
        "QN-",
        "Thanh toán",
        "Từ chối",
        "/succeed",
        "/fail",
    ] {
        assert!(page.contains(expected), "{expected} missing from {page}");
    }
    let (status, _) = payment
        .http_get(&format!("/sandbox/pay/{}", Uuid::now_v7()))
        .await;
    assert_eq!(status, 404);
    payment.stop().await;
}

#[tokio::test]
async fn sandbox_settles_a_payment_by_itself_after_the_delay() {
    let payment = spawn_payment(&["--sandbox-delay=100ms", "--sandbox-outcome=success"]).await;
    let order_id = Uuid::now_v7();
    payment
        .publish(&payment_requested(order_id, AMOUNT, TimeDelta::minutes(15)))
        .await;
    let succeeded: pb::PaymentSucceeded = payment.payment_event(order_id).await;
    assert_eq!(succeeded.amount_vnd, AMOUNT);
    assert_eq!(succeeded.captured_vnd, AMOUNT);
    assert!(
        succeeded.provider_transaction_id.starts_with("SBX"),
        "{}",
        succeeded.provider_transaction_id
    );
    let settled = payment
        .wait_payment(order_id, "the payment to succeed", |payment| {
            payment.status == pb::PaymentStatus::Succeeded as i32
        })
        .await;
    assert_eq!(settled.captured_vnd, AMOUNT);
    assert_eq!(
        settled.provider_transaction_id,
        succeeded.provider_transaction_id
    );
    // It came through the signed HTTP callback, like any provider's.
    assert_eq!(
        payment.callbacks().await,
        vec![(
            "accepted".to_owned(),
            true,
            Some(Uuid::parse_str(&settled.id).unwrap())
        )]
    );
    let (_, metrics) = payment.http_get("/metrics").await;
    assert!(
        metrics
            .lines()
            .any(|line| line.starts_with("ocop_payments_total")
                && line.contains(r#"outcome="succeeded""#)
                && line.contains(r#"provider="sandbox""#)),
        "{metrics}"
    );
    payment.stop().await;
}

#[tokio::test]
async fn unpaid_payment_expires_at_its_deadline() {
    let payment = spawn_payment(NEVER).await;
    let (order_id, intent) = payment.pending_payment(TimeDelta::seconds(2)).await;
    let expired: pb::PaymentExpired = payment.payment_event(order_id).await;
    assert_eq!(expired.payment_id, intent.id);
    assert_eq!(expired.expires_at, intent.expires_at);
    let payment_now = payment
        .wait_payment(order_id, "the payment to expire", |payment| {
            payment.status == pb::PaymentStatus::Expired as i32
        })
        .await;
    assert_eq!(payment_now.captured_vnd, 0);

    // A success reported afterwards (the shopper paid on a page that outlived our
    // deadline) does not revive the payment: the money is recorded and all of it
    // refunded, once, however often the provider tells it.
    for _ in 0..2 {
        let (status, reply) = payment
            .post_signed(&callback_body(&intent.id, AMOUNT, "success", "SBXLATE"))
            .await;
        assert_eq!(status, 409, "{reply}");
        assert_eq!(reply["verdict"], "closed");
    }
    assert_eq!(payment.stored_status(order_id).await, "expired");
    assert_eq!(
        payment
            .outbox_count("ocop.payment.v1.PaymentSucceeded")
            .await,
        0
    );
    let refunds: Vec<(i64, String)> =
        sqlx::query_as("SELECT amount_vnd, idempotency_key FROM refunds WHERE order_id = $1")
            .bind(order_id)
            .fetch_all(payment.payments.pool())
            .await
            .unwrap();
    assert_eq!(
        refunds,
        vec![(AMOUNT, format!("late-capture:{}", intent.id))]
    );
    let flagged: Vec<bool> = sqlx::query_scalar(
        "SELECT flagged FROM provider_callbacks WHERE payment_id = $1 ORDER BY received_at, id",
    )
    .bind(Uuid::parse_str(&intent.id).unwrap())
    .fetch_all(payment.payments.pool())
    .await
    .unwrap();
    assert_eq!(flagged, vec![true, true], "money reported after the close");
    payment.stop().await;
}

#[tokio::test]
async fn a_method_not_offered_fails_at_once_and_is_never_handed_to_the_sandbox() {
    // This service offers the sandbox's method only (and MoMo has no credentials here).
    let payment = spawn_payment(NEVER).await;
    let order_id = Uuid::now_v7();
    payment
        .publish(&payment_requested_with(
            order_id,
            AMOUNT,
            TimeDelta::minutes(15),
            order_pb::PaymentMethod::Momo,
        ))
        .await;
    let failed: pb::PaymentFailed = payment.payment_event(order_id).await;
    assert_eq!(failed.reason_code, "method_unavailable");
    assert_eq!(failed.provider, pb::PaymentProvider::Momo as i32);
    assert_eq!(payment.stored_status(order_id).await, "failed");
    payment.stop().await;
}

#[tokio::test]
async fn offering_a_method_without_credentials_stops_the_service_at_start_naming_its_settings() {
    use clap::Parser as _;
    let args = ocop_testkit::service_args(
        "payment",
        &fresh_database_url().await,
        &format!("{}.", unique("p")),
        JWT_SECRET,
    )
    .into_iter()
    .chain([
        format!("--sandbox-secret={SANDBOX_SECRET}"),
        "--payment-methods=sandbox,momo".to_owned(),
    ]);
    let config = ocop_payment::Config::try_parse_from(args).unwrap();
    let Err(err) = ocop_payment::App::build(config).await else {
        panic!("the service started without MoMo's credentials");
    };
    let err = format!("{err:#}");
    assert!(
        err.contains("momo (needs MOMO_PARTNER_CODE, MOMO_ACCESS_KEY, MOMO_SECRET_KEY)"),
        "{err}"
    );
    assert!(!err.contains("sandbox (needs"), "the gateway is on: {err}");
}

#[tokio::test]
async fn declining_in_the_sandbox_fails_the_payment() {
    let payment = spawn_payment(NEVER).await;
    let (order_id, intent) = payment.pending_payment(TimeDelta::minutes(15)).await;
    let status = payment
        .http_post(&format!("/sandbox/payments/{}/fail", intent.id))
        .await;
    assert_eq!(status, 200);
    let failed: pb::PaymentFailed = payment.payment_event(order_id).await;
    assert_eq!(failed.payment_id, intent.id);
    assert_eq!(failed.reason_code, "declined");
    payment
        .wait_payment(order_id, "the payment to fail", |payment| {
            payment.status == pb::PaymentStatus::Failed as i32
        })
        .await;

    // The sandbox settles a payment once: paying after declining is refused.
    let status = payment
        .http_post(&format!("/sandbox/payments/{}/succeed", intent.id))
        .await;
    assert_eq!(status, 409);
    let status = payment
        .http_post(&format!("/sandbox/payments/{}/succeed", Uuid::now_v7()))
        .await;
    assert_eq!(status, 404);
    assert_eq!(payment.stored_status(order_id).await, "failed");
    payment.stop().await;
}

#[tokio::test]
async fn repeated_payment_request_creates_one_intent() {
    let payment = spawn_payment(NEVER).await;
    let order_id = Uuid::now_v7();
    let first = payment_requested(order_id, AMOUNT, TimeDelta::minutes(15));
    let second = payment_requested(order_id, AMOUNT, TimeDelta::minutes(15));
    assert_ne!(first.id, second.id, "two distinct events, not a redelivery");
    payment.publish(&first).await;
    payment.publish(&second).await;
    eventually("both requests to be consumed", WAIT, || async {
        let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM inbox WHERE event_id = ANY($1)")
            .bind(vec![first.id, second.id])
            .fetch_one(payment.payments.pool())
            .await
            .unwrap();
        (seen == 2).then_some(())
    })
    .await;
    let intents: i64 = sqlx::query_scalar("SELECT count(*) FROM payment_intents")
        .fetch_one(payment.payments.pool())
        .await
        .unwrap();
    assert_eq!(intents, 1);
    assert_eq!(
        payment
            .outbox_count("ocop.payment.v1.PaymentInitiated")
            .await,
        1
    );
    payment.stop().await;
}

#[tokio::test]
async fn forged_callback_is_refused_recorded_and_changes_nothing() {
    let payment = spawn_payment(NEVER).await;
    let (order_id, intent) = payment.pending_payment(TimeDelta::minutes(15)).await;
    let body = callback_body(&intent.id, AMOUNT, "success", "SBXFORGED").to_string();

    let forged = sign("someone-elses-secret-0123456789", &body);
    let (status, reply) = payment.post_callback(&body, Some(&forged)).await;
    assert_eq!(status, 400, "{reply}");
    assert_eq!(reply["verdict"], "invalid_signature");
    assert!(
        reply["reason"].as_str().unwrap().contains("signature"),
        "{reply}"
    );
    let (status, reply) = payment.post_callback(&body, None).await;
    assert_eq!(status, 400);
    assert_eq!(reply["verdict"], "missing_signature");
    let (status, _) = payment.post_callback(&body, Some("not-hex")).await;
    assert_eq!(status, 400);

    assert_eq!(payment.stored_status(order_id).await, "pending");
    assert_eq!(
        payment.callbacks().await,
        vec![
            ("invalid_signature".to_owned(), false, None),
            ("missing_signature".to_owned(), false, None),
            ("invalid_signature".to_owned(), false, None),
        ]
    );
    let raw: String = sqlx::query_scalar("SELECT raw_body FROM provider_callbacks LIMIT 1")
        .fetch_one(payment.payments.pool())
        .await
        .unwrap();
    assert_eq!(raw, body, "the raw body is kept as evidence");
    payment.stop().await;
}

#[tokio::test]
async fn callback_for_another_amount_is_refused_and_changes_nothing() {
    let payment = spawn_payment(NEVER).await;
    let (order_id, intent) = payment.pending_payment(TimeDelta::minutes(15)).await;
    let (status, reply) = payment
        .post_signed(&callback_body(&intent.id, AMOUNT - 1, "success", "SBXLOW"))
        .await;
    assert_eq!(status, 400, "{reply}");
    assert_eq!(reply["verdict"], "wrong_amount");
    assert_eq!(payment.stored_status(order_id).await, "pending");
    assert_eq!(
        payment.callbacks().await,
        vec![(
            "wrong_amount".to_owned(),
            true,
            Some(Uuid::parse_str(&intent.id).unwrap())
        )]
    );
    payment.stop().await;
}

#[tokio::test]
async fn stale_or_malformed_callbacks_are_refused() {
    let payment = spawn_payment(NEVER).await;
    let (order_id, intent) = payment.pending_payment(TimeDelta::minutes(15)).await;

    let mut stale = callback_body(&intent.id, AMOUNT, "success", "SBXOLD");
    stale["timestamp"] = json!(Utc::now().timestamp() - 6 * 60);
    let (status, reply) = payment.post_signed(&stale).await;
    assert_eq!(status, 400, "{reply}");
    assert_eq!(reply["verdict"], "stale");

    let malformed = "{\"payment_id\": 42";
    let (status, reply) = payment
        .post_callback(malformed, Some(&sign(SANDBOX_SECRET, malformed)))
        .await;
    assert_eq!(status, 400, "{reply}");
    assert_eq!(reply["verdict"], "malformed");
    let bad_status = callback_body(&intent.id, AMOUNT, "maybe", "SBXODD");
    let (status, reply) = payment.post_signed(&bad_status).await;
    assert_eq!(status, 400, "{reply}");
    assert_eq!(reply["verdict"], "malformed");

    // Nothing this big is a callback: refused before it is read, and not stored.
    let huge = "x".repeat(64 * 1024);
    let response = reqwest::Client::new()
        .post(format!("{}/callbacks/sandbox", payment.http))
        .header("X-Sandbox-Signature", sign(SANDBOX_SECRET, &huge))
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 413);

    assert_eq!(payment.stored_status(order_id).await, "pending");
    let verdicts: Vec<String> = payment
        .callbacks()
        .await
        .into_iter()
        .map(|(verdict, valid, _)| {
            assert!(valid, "these were signed correctly");
            verdict
        })
        .collect();
    assert_eq!(verdicts, vec!["stale", "malformed", "malformed"]);
    // The stale one said money was taken: it waits for an operator, flagged.
    let flagged: Vec<(String, bool)> =
        sqlx::query_as("SELECT verdict, flagged FROM provider_callbacks ORDER BY received_at, id")
            .fetch_all(payment.payments.pool())
            .await
            .unwrap();
    assert_eq!(flagged[0], ("stale".to_owned(), true));
    payment.stop().await;
}

#[tokio::test]
async fn callback_for_an_unknown_payment_is_not_found() {
    let payment = spawn_payment(NEVER).await;
    let (status, reply) = payment
        .post_signed(&callback_body(
            &Uuid::now_v7().to_string(),
            AMOUNT,
            "success",
            "SBXNOBODY",
        ))
        .await;
    assert_eq!(status, 404, "{reply}");
    assert_eq!(reply["verdict"], "unknown_payment");
    assert_eq!(
        payment.callbacks().await,
        vec![("unknown_payment".to_owned(), true, None)]
    );
    payment.stop().await;
}

#[tokio::test]
async fn replayed_callback_is_already_processed_and_publishes_once() {
    let payment = spawn_payment(NEVER).await;
    let (order_id, intent) = payment.pending_payment(TimeDelta::minutes(15)).await;
    let body = callback_body(&intent.id, AMOUNT, "success", "SBXPAID1");
    let (status, reply) = payment.post_signed(&body).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["result"], "accepted");
    let (status, reply) = payment.post_signed(&body).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["result"], "already processed");
    // Even a failure report afterwards cannot move a settled payment.
    let (status, reply) = payment
        .post_signed(&callback_body(&intent.id, AMOUNT, "failure", "SBXPAID2"))
        .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["result"], "already processed");

    let settled = payment.get_payment(order_id).await.unwrap();
    assert_eq!(settled.status, pb::PaymentStatus::Succeeded as i32);
    assert_eq!(settled.provider_transaction_id, "SBXPAID1");
    assert_eq!(settled.captured_vnd, AMOUNT);
    assert_eq!(
        payment
            .outbox_count("ocop.payment.v1.PaymentSucceeded")
            .await,
        1
    );
    assert_eq!(
        payment.outbox_count("ocop.payment.v1.PaymentFailed").await,
        0
    );
    let succeeded: pb::PaymentSucceeded = payment.payment_event(order_id).await;
    assert_eq!(succeeded.provider_transaction_id, "SBXPAID1");
    let verdicts: Vec<String> = payment
        .callbacks()
        .await
        .into_iter()
        .map(|(verdict, _, _)| verdict)
        .collect();
    assert_eq!(
        verdicts,
        vec!["accepted", "already_processed", "already_processed"]
    );
    payment.stop().await;
}

#[tokio::test]
async fn order_cancellation_cancels_a_pending_payment_without_an_event() {
    let payment = spawn_payment(NEVER).await;
    let (order_id, intent) = payment.pending_payment(TimeDelta::minutes(15)).await;
    payment.publish(&order_cancelled(order_id)).await;
    eventually("the payment to be cancelled", WAIT, || async {
        (payment.stored_status(order_id).await == "cancelled").then_some(())
    })
    .await;
    let (status, reply) = payment
        .post_signed(&callback_body(&intent.id, AMOUNT, "success", "SBXTOOLATE"))
        .await;
    assert_eq!(status, 409, "{reply}");
    assert_eq!(payment.stored_status(order_id).await, "cancelled");
    let types: Vec<String> = sqlx::query_scalar("SELECT ce_type FROM outbox ORDER BY seq")
        .fetch_all(payment.payments.pool())
        .await
        .unwrap();
    assert_eq!(types, vec!["ocop.payment.v1.PaymentInitiated"]);
    payment.stop().await;
}

#[tokio::test]
async fn order_cancelled_after_its_payment_succeeded_is_refunded_in_full_once() {
    let payment = spawn_payment(&["--sandbox-delay=100ms", "--sandbox-outcome=success"]).await;
    let order_id = Uuid::now_v7();
    payment
        .publish(&payment_requested(order_id, AMOUNT, TimeDelta::minutes(15)))
        .await;
    let _: pb::PaymentSucceeded = payment.payment_event(order_id).await;
    // The order service cancels a paid order when its stock was sold after the
    // reservation expired; a second cancellation (another event) refunds nothing more.
    payment.publish(&order_cancelled(order_id)).await;
    payment.publish(&order_cancelled(order_id)).await;
    let refunds = || async {
        sqlx::query_as::<_, (i64, String, String)>(
            "SELECT amount_vnd, reason, idempotency_key FROM refunds WHERE order_id = $1",
        )
        .bind(order_id)
        .fetch_all(payment.payments.pool())
        .await
        .unwrap()
    };
    eventually("the automatic refund", WAIT, || async {
        (!refunds().await.is_empty()).then_some(())
    })
    .await;
    eventually("both cancellations applied", WAIT, || async {
        let applied: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM inbox WHERE event_type = 'ocop.order.v1.OrderCancelled'",
        )
        .fetch_one(payment.payments.pool())
        .await
        .unwrap();
        (applied == 2).then_some(())
    })
    .await;
    assert_eq!(
        refunds().await,
        vec![(
            AMOUNT,
            "order cancelled after payment".to_owned(),
            format!("order-cancelled:{order_id}")
        )]
    );
    assert_eq!(payment.stored_status(order_id).await, "succeeded");
    payment.stop().await;
}

#[tokio::test]
async fn a_stale_pending_refund_is_claimed_by_one_retrier_at_a_time() {
    let payment = spawn_payment(&["--sandbox-delay=100ms", "--sandbox-outcome=success"]).await;
    let order_id = Uuid::now_v7();
    payment
        .publish(&payment_requested(order_id, AMOUNT, TimeDelta::minutes(15)))
        .await;
    let _: pb::PaymentSucceeded = payment.payment_event(order_id).await;
    payment.publish(&order_cancelled(order_id)).await;
    let pool = payment.payments.pool();
    let refund: Uuid = eventually("the automatic refund", WAIT, || async {
        sqlx::query_scalar("SELECT id FROM refunds WHERE order_id = $1")
            .bind(order_id)
            .fetch_optional(pool)
            .await
            .unwrap()
    })
    .await;
    // As if its provider call was interrupted an hour ago.
    sqlx::query("UPDATE refunds SET updated_at = now() - interval '1 hour' WHERE id = $1")
        .bind(refund)
        .execute(pool)
        .await
        .unwrap();

    // Two retriers (two replicas) asking one after the other within the idle time.
    let idle_millis = 30_000;
    let mut conn = pool.acquire().await.unwrap();
    let first = store::claim_stale_pending_refunds(&mut conn, idle_millis, 20)
        .await
        .unwrap();
    let second = store::claim_stale_pending_refunds(&mut conn, idle_millis, 20)
        .await
        .unwrap();
    // The service's own retrier may have claimed it in between the two statements above
    // and this test's update: then neither claim gets it, which is the same rule.
    assert!(
        first
            .iter()
            .chain(&second)
            .filter(|id| **id == refund)
            .count()
            <= 1,
        "claimed twice: {first:?} then {second:?}"
    );
    assert!(
        !second.contains(&refund),
        "claimed again at once: {second:?}"
    );
    drop(conn);
    payment.stop().await;
}

#[tokio::test]
async fn pending_settlement_survives_a_restart() {
    let first = spawn_payment(NEVER).await;
    let (order_id, _) = first.pending_payment(TimeDelta::minutes(15)).await;
    let (database_url, prefix) = (first.database_url.clone(), first.prefix.clone());
    first.stop().await;

    // Nothing was scheduled in memory: the new process finds the due intent itself.
    let second = spawn_payment_on(
        &database_url,
        &prefix,
        &["--sandbox-delay=100ms", "--sandbox-outcome=success"],
    )
    .await;
    let succeeded: pb::PaymentSucceeded = second.payment_event(order_id).await;
    assert_eq!(succeeded.captured_vnd, AMOUNT);
    second.stop().await;
}

#[tokio::test]
async fn get_payment_and_refund_need_their_scopes_and_valid_input_free_of_control_characters() {
    let mut payment = spawn_payment(NEVER).await;
    let anonymous = payment
        .client
        .get_payment(pb::GetPaymentRequest {
            order_id: Uuid::now_v7().to_string(),
        })
        .await
        .unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);
    let wrong_scope = payment
        .client
        .get_payment(with_token(
            pb::GetPaymentRequest {
                order_id: Uuid::now_v7().to_string(),
            },
            &["catalog:write"],
        ))
        .await
        .unwrap_err();
    assert_eq!(wrong_scope.code(), Code::PermissionDenied);

    let unknown = payment.get_payment(Uuid::now_v7()).await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    let bad = payment
        .client
        .get_payment(with_token(
            pb::GetPaymentRequest {
                order_id: "42".into(),
            },
            &["payment:read"],
        ))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert_eq!(violations(&bad)[0].field, "order_id");

    let refund = |order_id: String, amount_vnd: i64, key: &str, scopes: &[&str]| {
        let mut client = payment.client.clone();
        let request = with_token(
            pb::RefundRequest {
                order_id,
                amount_vnd,
                reason: "thiếu hàng".into(),
                idempotency_key: key.into(),
            },
            scopes,
        );
        async move { client.refund(request).await.unwrap_err() }
    };
    let reader = refund(Uuid::now_v7().to_string(), 1_000, "k1", &["payment:read"]).await;
    assert_eq!(reader.code(), Code::PermissionDenied);
    let unknown = refund(Uuid::now_v7().to_string(), 1_000, "k1", &["payment:write"]).await;
    assert_eq!(unknown.code(), Code::NotFound);
    let bad_order = refund("42".into(), 1_000, "k1", &["payment:write"]).await;
    assert_eq!(violations(&bad_order)[0].field, "order_id");
    let negative = refund(Uuid::now_v7().to_string(), -1, "k1", &["payment:write"]).await;
    assert_eq!(negative.code(), Code::InvalidArgument);
    assert_eq!(violations(&negative)[0].field, "amount_vnd");
    let no_key = refund(Uuid::now_v7().to_string(), 1_000, "", &["payment:write"]).await;
    assert_eq!(violations(&no_key)[0].field, "idempotency_key");
    // Bad input never reaches the database (NUL) or floods the trailers (10 kB).
    let nul_key = refund(Uuid::now_v7().to_string(), 1_000, "k\0", &["payment:write"]).await;
    assert_invalid(&nul_key, "idempotency_key");
    let huge = refund("9".repeat(10_000), 1_000, "k1", &["payment:write"]).await;
    assert_invalid(&huge, "order_id");
    let nul_reason = payment
        .client
        .clone()
        .refund(with_token(
            pb::RefundRequest {
                order_id: Uuid::now_v7().to_string(),
                amount_vnd: 1_000,
                reason: "thiếu\0hàng\u{1b}".into(),
                idempotency_key: "k2".into(),
            },
            &["payment:write"],
        ))
        .await
        .unwrap_err();
    assert_invalid(&nul_reason, "reason");
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM refunds")
        .fetch_one(payment.payments.pool())
        .await
        .unwrap();
    assert_eq!(count, 0, "a refused refund writes nothing");
    payment.stop().await;
}

#[tokio::test]
async fn the_provider_callback_continues_the_trace_of_the_payment_request() {
    // A real tracer (no exporter), as the binary installs, so contexts are propagated.
    let _guard = ocop_telemetry::init(
        "payment-test",
        &ocop_telemetry::TelemetryConfig {
            log_filter: "off".into(),
            ..Default::default()
        },
    );
    let payment = spawn_payment(&["--sandbox-delay=100ms", "--sandbox-outcome=success"]).await;
    let order_id = Uuid::now_v7();
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let mut requested = payment_requested(order_id, AMOUNT, TimeDelta::minutes(15));
    requested.trace_headers = vec![(
        "traceparent".to_owned(),
        format!("00-{trace_id}-00f067aa0ba902b7-01"),
    )];
    payment.publish(&requested).await;
    let succeeded = ocop_testkit::find_record(
        &format!("{}ocop.payments.v1", payment.prefix),
        Duration::from_secs(30),
        |message| {
            ocop_testkit::key_text(message) == order_id.to_string()
                && ocop_testkit::header(message, "ce_type").as_deref()
                    == Some("ocop.payment.v1.PaymentSucceeded")
        },
    )
    .await;
    let traceparent =
        ocop_testkit::header(&succeeded, "traceparent").expect("traceparent on the event");
    assert!(
        traceparent.contains(trace_id),
        "PaymentSucceeded left the order's trace: {traceparent}"
    );
    payment.stop().await;
}

// --- Limits of the callback endpoints ---------------------------------------------------

#[tokio::test]
async fn oversized_callback_is_413_with_a_reason_read_no_further_and_not_stored() {
    let payment = spawn_payment(&["--sandbox-outcome=never", "--callback-max-body=1024"]).await;
    let (order_id, intent) = payment.pending_payment(TimeDelta::minutes(15)).await;
    let mut body = callback_body(&intent.id, AMOUNT, "success", "SBXBIG");
    body["padding"] = Value::String("x".repeat(2048));
    let (status, reply) = payment.post_signed(&body).await;
    assert_eq!(status, 413, "{reply}");
    assert_eq!(reply["verdict"], "too_large");
    assert_eq!(
        reply["reason"],
        "the body is larger than 1024 bytes; no callback is that big"
    );
    assert!(payment.callbacks().await.is_empty());
    assert_eq!(payment.stored_status(order_id).await, "pending");

    // A callback within the limit is read as before.
    let (status, reply) = payment
        .post_signed(&callback_body(&intent.id, AMOUNT, "success", "SBXSMALL"))
        .await;
    assert_eq!(status, 200, "{reply}");
    let (_, metrics) = payment.http_get("/metrics").await;
    assert!(
        metrics.contains(r#"ocop_limit_refusals_total{limit="callback_body"}"#),
        "{metrics}"
    );
    payment.stop().await;
}

#[tokio::test]
async fn callbacks_beyond_the_address_rate_are_429_with_retry_after_and_not_stored() {
    let payment = spawn_payment(&[
        "--sandbox-outcome=never",
        "--callback-rate=0.01",
        "--callback-burst=2",
    ])
    .await;
    let (order_id, intent) = payment.pending_payment(TimeDelta::minutes(15)).await;
    let body = callback_body(&intent.id, AMOUNT, "success", "SBXRATE").to_string();
    for _ in 0..2 {
        let (status, _) = payment.post_callback(&body, None).await;
        assert_eq!(status, 400, "within the burst, the callback is judged");
    }
    let response = reqwest::Client::new()
        .post(format!("{}/callbacks/sandbox", payment.http))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 429);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((90..=100).contains(&retry_after), "{retry_after}");
    let reply: Value = response.json().await.unwrap();
    assert_eq!(reply["verdict"], "rate_limited");
    assert_eq!(
        reply["reason"],
        format!("too many callbacks from this address; retry in {retry_after} s")
    );
    assert_eq!(
        payment.callbacks().await.len(),
        2,
        "the refused one is not stored"
    );
    assert_eq!(payment.stored_status(order_id).await, "pending");

    // The limit covers the callback endpoints only: metrics still answer.
    let (status, metrics) = payment.http_get("/metrics").await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains(r#"ocop_rate_limited_total{limit="callbacks"}"#),
        "{metrics}"
    );
    payment.stop().await;
}

#[tokio::test]
async fn stored_callbacks_past_their_retention_are_pruned_but_flagged_ones_are_kept() {
    let payment = spawn_payment(&[
        "--sandbox-outcome=never",
        "--callback-retention=90d",
        "--retention-interval=100ms",
    ])
    .await;
    let pool = payment.payments.pool();
    let stored = |age_days: i32, flagged: bool| {
        sqlx::query(
            "INSERT INTO provider_callbacks (id, provider, raw_body, signature_valid, verdict, reason,
                 http_status, received_at, flagged)
             VALUES ($1, 'sandbox', '{}', false, 'invalid_signature', 'test', 400,
                 now() - make_interval(days => $2), $3)",
        )
        .bind(Uuid::now_v7())
        .bind(age_days)
        .bind(flagged)
        .execute(pool)
    };
    stored(91, false).await.unwrap();
    stored(91, true).await.unwrap();
    stored(89, false).await.unwrap();

    let left: Vec<(i32, bool)> = eventually("the old callback to be pruned", WAIT, || async {
        let left: Vec<(i32, bool)> = sqlx::query_as(
            "SELECT EXTRACT(DAY FROM now() - received_at)::int, flagged
             FROM provider_callbacks ORDER BY received_at",
        )
        .fetch_all(pool)
        .await
        .unwrap();
        (left.len() == 2).then_some(left)
    })
    .await;
    assert_eq!(left, vec![(91, true), (89, false)]);
    let (_, metrics) = payment.http_get("/metrics").await;
    assert!(
        metrics.contains(r#"ocop_rows_kept{service="payment",table="provider_callbacks"}"#),
        "{metrics}"
    );
    payment.stop().await;
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_address_has_its_own_callback_rate() {
    let payment = spawn_payment(&[
        "--sandbox-outcome=never",
        "--callback-rate=0.01",
        "--callback-burst=1",
        "--trusted-proxies=127.0.0.0/8",
    ])
    .await;
    let post_from = |client: &'static str| {
        reqwest::Client::new()
            .post(format!("{}/callbacks/sandbox", payment.http))
            .header("content-type", "application/json")
            .header("x-forwarded-for", client)
            .body("{}")
            .send()
    };
    assert_eq!(post_from("198.51.100.1").await.unwrap().status(), 400);
    assert_eq!(post_from("198.51.100.1").await.unwrap().status(), 429);
    assert_eq!(
        post_from("198.51.100.2").await.unwrap().status(),
        400,
        "another client behind the same proxy"
    );
    payment.stop().await;
}
