//! PostgreSQL access for payment intents, their transitions and provider callbacks.
//! Writes take the caller's transaction so that a state change and its outbox event
//! commit together. (The sandbox gateway's own table is in `sandbox/settlements.rs`.)

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Postgres, Transaction};
use uuid::Uuid;

use crate::domain::{
    intent::{PaymentRequest, PaymentStatus, Provider},
    refund::{RefundRequest, RefundStatus},
};

type Tx = Transaction<'static, Postgres>;

/// A payment intent row.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct IntentRecord {
    pub id: Uuid,
    pub order_id: Uuid,
    pub order_code: String,
    /// The method the shopper chose (`vnpay`, `momo`, …).
    pub method: String,
    #[sqlx(try_from = "String")]
    pub provider: Provider,
    #[sqlx(try_from = "String")]
    pub status: PaymentStatus,
    pub amount_vnd: i64,
    pub captured_vnd: i64,
    pub provider_transaction_id: Option<String>,
    pub pay_url: String,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The VietQR payload (VietQR payments only).
    pub vietqr_payload: Option<String>,
    /// The provider's payment page once its create API answered (MoMo, ZaloPay).
    pub checkout_url: Option<String>,
    /// Sum of the succeeded refunds.
    pub refunded_vnd: i64,
}

/// The intent columns, in `IntentRecord` order, followed by `$tail` (a literal, so
/// queries stay `&'static str`).
macro_rules! intent_columns {
    ($head:literal, $tail:literal) => {
        concat!(
            $head,
            " id, order_id, order_code, method, provider, status, amount_vnd, captured_vnd,
              provider_transaction_id, pay_url, expires_at, created_at, updated_at,
              vietqr_payload, checkout_url, refunded_vnd ",
            $tail
        )
    };
}

/// Creates the intent of `request` unless the order has one. `None`: it had one, and
/// nothing was written.
#[tracing::instrument(name = "INSERT payment_intents", skip_all, fields(otel.kind = "client", db.system.name = "postgresql", db.collection.name = "payment_intents"))]
pub async fn insert_intent(
    tx: &mut Tx,
    id: Uuid,
    request: &PaymentRequest,
    provider: Provider,
    pay_url: &str,
    vietqr_payload: Option<&str>,
) -> Result<Option<IntentRecord>, sqlx::Error> {
    let created: Option<IntentRecord> = sqlx::query_as(intent_columns!(
        "INSERT INTO payment_intents
            (id, order_id, order_code, method, provider, status, amount_vnd, pay_url, expires_at,
             trace_headers, vietqr_payload)
         VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7, $8, $9, $10)
         ON CONFLICT (order_id) DO NOTHING
         RETURNING",
        ""
    ))
    .bind(id)
    .bind(request.order_id)
    .bind(&request.order_code)
    .bind(request.method.as_str())
    .bind(provider.as_str())
    .bind(request.amount.get())
    .bind(pay_url)
    .bind(request.deadline)
    .bind(
        serde_json::to_value(ocop_telemetry::propagation::current_context_headers())
            .expect("string pairs serialise"),
    )
    .bind(vietqr_payload)
    .fetch_optional(&mut **tx)
    .await?;
    if let Some(intent) = &created {
        record_transition(
            tx,
            intent.id,
            None,
            PaymentStatus::Pending,
            "payment requested",
        )
        .await?;
    }
    Ok(created)
}

/// The intent of `order_id`.
#[tracing::instrument(name = "SELECT payment_intents", skip_all, fields(otel.kind = "client", db.system.name = "postgresql", db.collection.name = "payment_intents"))]
pub async fn intent_by_order(
    conn: &mut PgConnection,
    order_id: Uuid,
) -> Result<Option<IntentRecord>, sqlx::Error> {
    sqlx::query_as(intent_columns!(
        "SELECT",
        "FROM payment_intents WHERE order_id = $1"
    ))
    .bind(order_id)
    .fetch_optional(conn)
    .await
}

/// The intent of `order_id`, locked for update.
#[tracing::instrument(name = "SELECT payment_intents", skip_all, fields(otel.kind = "client", db.system.name = "postgresql", db.collection.name = "payment_intents"))]
pub async fn intent_by_order_for_update(
    tx: &mut Tx,
    order_id: Uuid,
) -> Result<Option<IntentRecord>, sqlx::Error> {
    sqlx::query_as(intent_columns!(
        "SELECT",
        "FROM payment_intents WHERE order_id = $1 FOR UPDATE"
    ))
    .bind(order_id)
    .fetch_optional(&mut **tx)
    .await
}

/// The intent `id`, locked for update.
#[tracing::instrument(name = "SELECT payment_intents", skip_all, fields(otel.kind = "client", db.system.name = "postgresql", db.collection.name = "payment_intents"))]
pub async fn intent_for_update(tx: &mut Tx, id: Uuid) -> Result<Option<IntentRecord>, sqlx::Error> {
    sqlx::query_as(intent_columns!(
        "SELECT",
        "FROM payment_intents WHERE id = $1 FOR UPDATE"
    ))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await
}

/// The VietQR intent whose order code the transfer memo contains (compared without
/// punctuation or case, as banks rewrite memos), locked for update. The newest wins if
/// several match.
#[tracing::instrument(name = "SELECT payment_intents", skip_all, fields(otel.kind = "client", db.system.name = "postgresql", db.collection.name = "payment_intents"))]
pub async fn vietqr_intent_by_memo_for_update(
    tx: &mut Tx,
    memo: &str,
) -> Result<Option<IntentRecord>, sqlx::Error> {
    sqlx::query_as(intent_columns!(
        "SELECT",
        "FROM payment_intents
         WHERE provider = 'vietqr'
           AND strpos($1, upper(regexp_replace(order_code, '[^A-Za-z0-9]', '', 'g'))) > 0
         ORDER BY created_at DESC
         LIMIT 1
         FOR UPDATE"
    ))
    .bind(ocop_payment_schemes::vietqr::normalize_memo(memo))
    .fetch_optional(&mut **tx)
    .await
}

/// Remembers the provider's payment page of `id`.
#[tracing::instrument(name = "UPDATE payment_intents", skip_all, fields(otel.kind = "client", db.system.name = "postgresql", db.collection.name = "payment_intents"))]
pub async fn set_checkout_url(
    conn: &mut PgConnection,
    id: Uuid,
    url: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE payment_intents SET checkout_url = $2 WHERE id = $1")
        .bind(id)
        .bind(url)
        .execute(conn)
        .await?;
    Ok(())
}

/// The intent `id`.
#[tracing::instrument(name = "SELECT payment_intents", skip_all, fields(otel.kind = "client", db.system.name = "postgresql", db.collection.name = "payment_intents"))]
pub async fn intent(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<IntentRecord>, sqlx::Error> {
    sqlx::query_as(intent_columns!(
        "SELECT",
        "FROM payment_intents WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// What a settlement or an expiry writes on the intent.
#[derive(Debug, Clone, Copy)]
pub struct StatusChange<'a> {
    pub from: PaymentStatus,
    pub to: PaymentStatus,
    pub captured_vnd: i64,
    pub provider_transaction_id: Option<&'a str>,
    pub reason: &'a str,
}

/// Moves a locked intent (the caller checked the transition) and records the move.
#[tracing::instrument(name = "UPDATE payment_intents", skip_all, fields(otel.kind = "client", db.system.name = "postgresql", db.collection.name = "payment_intents"))]
pub async fn change_status(
    tx: &mut Tx,
    id: Uuid,
    change: StatusChange<'_>,
) -> Result<IntentRecord, sqlx::Error> {
    let record = sqlx::query_as(intent_columns!(
        "UPDATE payment_intents
            SET status = $2, captured_vnd = $3,
                provider_transaction_id = COALESCE($4, provider_transaction_id),
                updated_at = now()
          WHERE id = $1
          RETURNING",
        ""
    ))
    .bind(id)
    .bind(change.to.as_str())
    .bind(change.captured_vnd)
    .bind(change.provider_transaction_id)
    .fetch_one(&mut **tx)
    .await?;
    record_transition(tx, id, Some(change.from), change.to, change.reason).await?;
    Ok(record)
}

#[tracing::instrument(name = "INSERT payment_transitions", skip_all, fields(otel.kind = "client", db.system.name = "postgresql", db.collection.name = "payment_transitions"))]
async fn record_transition(
    tx: &mut Tx,
    id: Uuid,
    from: Option<PaymentStatus>,
    to: PaymentStatus,
    reason: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO payment_transitions (payment_id, from_status, to_status, reason)
         VALUES ($1, $2, $3, $4)",
    )
    .bind(id)
    .bind(from.map(PaymentStatus::as_str))
    .bind(to.as_str())
    .bind(reason)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Pending intents past their deadline, locked; rows another replica is already
/// expiring (or a callback is settling) are skipped.
pub async fn due_expiries(tx: &mut Tx, limit: i64) -> Result<Vec<IntentRecord>, sqlx::Error> {
    sqlx::query_as(intent_columns!(
        "SELECT",
        "FROM payment_intents
         WHERE status = 'pending' AND expires_at <= now()
         ORDER BY expires_at
         LIMIT $1
         FOR UPDATE SKIP LOCKED"
    ))
    .bind(limit)
    .fetch_all(&mut **tx)
    .await
}

/// One received provider callback and what was made of it.
#[derive(Debug, Clone)]
pub struct CallbackRecord<'a> {
    pub provider: Provider,
    pub payment_id: Option<Uuid>,
    pub provider_transaction_id: Option<&'a str>,
    pub raw_body: &'a str,
    pub signature_valid: bool,
    /// A code from the `verdict` column's list.
    pub verdict: &'static str,
    pub reason: &'a str,
    pub http_status: u16,
    /// Money was reported taken but not applied: an operator must look.
    pub flagged: bool,
}

/// Stores a callback with its verdict (in the transaction of its effect, if any).
#[tracing::instrument(name = "INSERT provider_callbacks", skip_all, fields(otel.kind = "client", db.system.name = "postgresql", db.collection.name = "provider_callbacks"))]
pub async fn record_callback(
    conn: &mut PgConnection,
    callback: &CallbackRecord<'_>,
) -> Result<Uuid, sqlx::Error> {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO provider_callbacks
            (id, provider, payment_id, provider_transaction_id, raw_body, signature_valid,
             verdict, reason, http_status, flagged)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(id)
    .bind(callback.provider.as_str())
    .bind(callback.payment_id)
    .bind(callback.provider_transaction_id)
    .bind(callback.raw_body)
    .bind(callback.signature_valid)
    .bind(callback.verdict)
    .bind(callback.reason)
    .bind(i16::try_from(callback.http_status).unwrap_or(i16::MAX))
    .bind(callback.flagged)
    .execute(conn)
    .await?;
    Ok(id)
}

/// A refund row.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RefundRecord {
    pub id: Uuid,
    pub payment_id: Uuid,
    pub order_id: Uuid,
    pub amount_vnd: i64,
    pub reason: String,
    pub idempotency_key: String,
    #[sqlx(try_from = "String")]
    pub status: RefundStatus,
    pub provider_refund_id: Option<String>,
    pub failure_code: Option<String>,
    pub failure_message: Option<String>,
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

macro_rules! refund_columns {
    ($head:literal, $tail:literal) => {
        concat!(
            $head,
            " id, payment_id, order_id, amount_vnd, reason, idempotency_key, status,
              provider_refund_id, failure_code, failure_message, attempts, created_at,
              updated_at ",
            $tail
        )
    };
}

/// The refund asked with `idempotency_key`, if any.
#[tracing::instrument(name = "SELECT refunds", skip_all, fields(otel.kind = "client", db.system.name = "postgresql", db.collection.name = "refunds"))]
pub async fn refund_by_key(
    conn: &mut PgConnection,
    idempotency_key: &str,
) -> Result<Option<RefundRecord>, sqlx::Error> {
    sqlx::query_as(refund_columns!(
        "SELECT",
        "FROM refunds WHERE idempotency_key = $1"
    ))
    .bind(idempotency_key)
    .fetch_optional(conn)
    .await
}

/// The refunds of a payment, oldest first.
#[tracing::instrument(name = "SELECT refunds", skip_all, fields(otel.kind = "client", db.system.name = "postgresql", db.collection.name = "refunds"))]
pub async fn refunds_of(
    conn: &mut PgConnection,
    payment_id: Uuid,
) -> Result<Vec<RefundRecord>, sqlx::Error> {
    sqlx::query_as(refund_columns!(
        "SELECT",
        "FROM refunds WHERE payment_id = $1 ORDER BY created_at, id"
    ))
    .bind(payment_id)
    .fetch_all(conn)
    .await
}

/// Refunded or being refunded (succeeded + pending) for a payment.
#[tracing::instrument(name = "SELECT refunds", skip_all, fields(otel.kind = "client", db.system.name = "postgresql", db.collection.name = "refunds"))]
pub async fn committed_refunds(tx: &mut Tx, payment_id: Uuid) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT COALESCE(sum(amount_vnd), 0)::bigint FROM refunds
         WHERE payment_id = $1 AND status IN ('pending', 'succeeded')",
    )
    .bind(payment_id)
    .fetch_one(&mut **tx)
    .await
}

/// A new pending refund.
#[tracing::instrument(name = "INSERT refunds", skip_all, fields(otel.kind = "client", db.system.name = "postgresql", db.collection.name = "refunds"))]
pub async fn insert_refund(
    tx: &mut Tx,
    id: Uuid,
    intent: &IntentRecord,
    request: &RefundRequest,
) -> Result<RefundRecord, sqlx::Error> {
    sqlx::query_as(refund_columns!(
        "INSERT INTO refunds (id, payment_id, order_id, amount_vnd, reason, idempotency_key, status)
         VALUES ($1, $2, $3, $4, $5, $6, 'pending')
         RETURNING",
        ""
    ))
    .bind(id)
    .bind(intent.id)
    .bind(intent.order_id)
    .bind(request.amount_vnd)
    .bind(&request.reason)
    .bind(&request.idempotency_key)
    .fetch_one(&mut **tx)
    .await
}

/// The refund `id`, locked for update.
#[tracing::instrument(name = "SELECT refunds", skip_all, fields(otel.kind = "client", db.system.name = "postgresql", db.collection.name = "refunds"))]
pub async fn refund_for_update(tx: &mut Tx, id: Uuid) -> Result<Option<RefundRecord>, sqlx::Error> {
    sqlx::query_as(refund_columns!(
        "SELECT",
        "FROM refunds WHERE id = $1 FOR UPDATE"
    ))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await
}

/// Counts one more attempt at asking the provider.
#[tracing::instrument(name = "UPDATE refunds", skip_all, fields(otel.kind = "client", db.system.name = "postgresql", db.collection.name = "refunds"))]
pub async fn count_refund_attempt(conn: &mut PgConnection, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE refunds SET attempts = attempts + 1, updated_at = now() WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Claims up to `limit` pending refunds not touched for `idle_millis` (their provider
/// call was interrupted) by touching them: another replica's retrier, or this one's next
/// round, passes over a claimed refund for `idle_millis`, so one refund is not sent
/// twice at once.
pub async fn claim_stale_pending_refunds(
    conn: &mut PgConnection,
    idle_millis: i64,
    limit: i64,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE refunds SET updated_at = now() WHERE id IN (
             SELECT id FROM refunds
             WHERE status = 'pending'
               AND updated_at <= now() - $1::bigint * interval '1 millisecond'
             ORDER BY updated_at LIMIT $2 FOR UPDATE SKIP LOCKED)
         RETURNING id",
    )
    .bind(idle_millis)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Settles a locked pending refund.
#[tracing::instrument(name = "UPDATE refunds", skip_all, fields(otel.kind = "client", db.system.name = "postgresql", db.collection.name = "refunds"))]
pub async fn finish_refund(
    tx: &mut Tx,
    id: Uuid,
    status: RefundStatus,
    provider_refund_id: Option<&str>,
    failure: Option<(&str, &str)>,
) -> Result<RefundRecord, sqlx::Error> {
    sqlx::query_as(refund_columns!(
        "UPDATE refunds
            SET status = $2, provider_refund_id = $3, failure_code = $4, failure_message = $5,
                updated_at = now()
          WHERE id = $1
          RETURNING",
        ""
    ))
    .bind(id)
    .bind(status.as_str())
    .bind(provider_refund_id)
    .bind(failure.map(|(code, _)| code))
    .bind(failure.map(|(_, message)| message))
    .fetch_one(&mut **tx)
    .await
}

/// Adds a succeeded refund to its (locked) intent. The table's check refuses a total
/// above what was captured.
#[tracing::instrument(name = "UPDATE payment_intents", skip_all, fields(otel.kind = "client", db.system.name = "postgresql", db.collection.name = "payment_intents"))]
pub async fn add_refunded(
    tx: &mut Tx,
    payment_id: Uuid,
    amount_vnd: i64,
) -> Result<IntentRecord, sqlx::Error> {
    sqlx::query_as(intent_columns!(
        "UPDATE payment_intents SET refunded_vnd = refunded_vnd + $2, updated_at = now()
          WHERE id = $1
          RETURNING",
        ""
    ))
    .bind(payment_id)
    .bind(amount_vnd)
    .fetch_one(&mut **tx)
    .await
}

/// Records money a provider took for a closed (expired or cancelled) payment, if the
/// intent holds no capture yet; `None` when it already does.
pub async fn record_late_capture(
    tx: &mut Tx,
    payment_id: Uuid,
    amount_vnd: i64,
    provider_transaction_id: &str,
) -> Result<Option<IntentRecord>, sqlx::Error> {
    sqlx::query_as(intent_columns!(
        "UPDATE payment_intents
            SET captured_vnd = $2, provider_transaction_id = $3, updated_at = now()
          WHERE id = $1 AND captured_vnd = 0 AND status IN ('expired', 'cancelled')
          RETURNING",
        ""
    ))
    .bind(payment_id)
    .bind(amount_vnd)
    .bind(provider_transaction_id)
    .fetch_optional(&mut **tx)
    .await
}

/// Pending payments of `providers` created more than `after_millis` ago and not asked
/// about in the last `every_millis`, marked as asked now (so replicas share the work).
pub async fn claim_queries(
    conn: &mut PgConnection,
    providers: &[String],
    after_millis: i64,
    every_millis: i64,
    limit: i64,
) -> Result<Vec<IntentRecord>, sqlx::Error> {
    sqlx::query_as(intent_columns!(
        "UPDATE payment_intents SET last_queried_at = now()
          WHERE id IN (
                SELECT id FROM payment_intents
                 WHERE status = 'pending' AND provider = ANY($1)
                   AND created_at <= now() - $2::bigint * interval '1 millisecond'
                   AND (last_queried_at IS NULL
                        OR last_queried_at <= now() - $3::bigint * interval '1 millisecond')
                 ORDER BY created_at
                 LIMIT $4
                 FOR UPDATE SKIP LOCKED)
          RETURNING",
        ""
    ))
    .bind(providers)
    .bind(after_millis)
    .bind(every_millis)
    .bind(limit)
    .fetch_all(conn)
    .await
}
