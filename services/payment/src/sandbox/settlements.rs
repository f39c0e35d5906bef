//! The sandbox gateway's own table: which payments it settled, how, and whether the
//! payment service has acknowledged the callback.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::domain::intent::Provider;
use ocop_payment_schemes::sandbox::CallbackStatus;

type Tx = Transaction<'static, Postgres>;

/// A settlement to deliver, with what its callback must say.
#[derive(Debug, Clone)]
pub struct Claim {
    pub payment_id: Uuid,
    /// Whose callback to send.
    pub provider: Provider,
    pub outcome: CallbackStatus,
    pub provider_transaction_id: String,
    pub order_code: String,
    pub amount_vnd: i64,
    /// Delivery attempts so far, this one included.
    pub attempts: i32,
    /// The order's trace context, sent as `traceparent` like any instrumented client.
    pub trace_headers: Vec<(String, String)>,
    /// When the payment was created (ZaloPay's `app_trans_id` carries its date).
    pub intent_created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct ClaimRow {
    payment_id: Uuid,
    #[sqlx(try_from = "String")]
    provider: Provider,
    intent_created_at: DateTime<Utc>,
    outcome: String,
    provider_transaction_id: String,
    order_code: String,
    amount_vnd: i64,
    attempts: i32,
    trace_headers: serde_json::Value,
}

impl From<ClaimRow> for Claim {
    fn from(row: ClaimRow) -> Self {
        Self {
            payment_id: row.payment_id,
            provider: row.provider,
            intent_created_at: row.intent_created_at,
            // The column is constrained to these two values.
            outcome: if row.outcome == "failure" {
                CallbackStatus::Failure
            } else {
                CallbackStatus::Success
            },
            provider_transaction_id: row.provider_transaction_id,
            order_code: row.order_code,
            amount_vnd: row.amount_vnd,
            attempts: row.attempts,
            trace_headers: serde_json::from_value(row.trace_headers).unwrap_or_default(),
        }
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// Pending intents of the `played` providers created at least `delay` ago that the
/// gateway has not settled yet, locked; rows another replica holds are skipped.
pub async fn due_intents(
    tx: &mut Tx,
    delay: Duration,
    limit: i64,
    played: &[String],
) -> Result<Vec<(Uuid, Provider)>, sqlx::Error> {
    let rows: Vec<(Uuid, String)> = sqlx::query_as(
        "SELECT i.id, i.provider FROM payment_intents i
         WHERE i.status = 'pending' AND i.provider = ANY($3)
           AND i.created_at <= now() - $1::bigint * interval '1 millisecond'
           AND NOT EXISTS (SELECT 1 FROM sandbox_settlements s WHERE s.payment_id = i.id)
         ORDER BY i.created_at
         LIMIT $2
         FOR UPDATE OF i SKIP LOCKED",
    )
    .bind(millis(delay))
    .bind(limit)
    .bind(played)
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, provider)| Provider::parse(&provider).map(|p| (id, p)))
        .collect())
}

/// The settlement of `payment_id` as it is (no attempt counted).
pub async fn peek(conn: &mut PgConnection, payment_id: Uuid) -> Result<Option<Claim>, sqlx::Error> {
    let row: Option<ClaimRow> = sqlx::query_as(
        "SELECT s.payment_id, i.provider, i.created_at AS intent_created_at, s.outcome,
                s.provider_transaction_id, i.order_code, i.amount_vnd, s.attempts, i.trace_headers
           FROM sandbox_settlements s JOIN payment_intents i ON i.id = s.payment_id
          WHERE s.payment_id = $1",
    )
    .bind(payment_id)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(Claim::from))
}

/// Settles `payment_id` with `outcome` unless it was settled before (then nothing
/// changes). The first delivery is due after `not_before`.
pub async fn insert(
    tx: &mut Tx,
    payment_id: Uuid,
    outcome: &str,
    provider_transaction_id: &str,
    not_before: Duration,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO sandbox_settlements (payment_id, outcome, provider_transaction_id, next_attempt_at)
         VALUES ($1, $2, $3, now() + $4::bigint * interval '1 millisecond')
         ON CONFLICT (payment_id) DO NOTHING",
    )
    .bind(payment_id)
    .bind(outcome)
    .bind(provider_transaction_id)
    .bind(millis(not_before))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The settlement of `payment_id`, counting one more delivery attempt.
pub async fn claim(tx: &mut Tx, payment_id: Uuid) -> Result<Option<Claim>, sqlx::Error> {
    let row: Option<ClaimRow> = sqlx::query_as(
        "UPDATE sandbox_settlements s
            SET attempts = s.attempts + 1, updated_at = now()
           FROM payment_intents i
          WHERE i.id = s.payment_id AND s.payment_id = $1
          RETURNING s.payment_id, i.provider, i.created_at AS intent_created_at, s.outcome,
                    s.provider_transaction_id, i.order_code, i.amount_vnd, s.attempts,
                    i.trace_headers",
    )
    .bind(payment_id)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.map(Claim::from))
}

/// Claims up to `limit` undelivered settlements that are due, leasing them for `lease`
/// so that no other replica delivers them meanwhile.
pub async fn claim_due(
    pool: &PgPool,
    limit: i64,
    lease: Duration,
) -> Result<Vec<Claim>, sqlx::Error> {
    let rows: Vec<ClaimRow> = sqlx::query_as(
        "UPDATE sandbox_settlements s
            SET attempts = s.attempts + 1,
                next_attempt_at = now() + $2::bigint * interval '1 millisecond',
                updated_at = now()
           FROM payment_intents i
          WHERE i.id = s.payment_id
            AND s.payment_id IN (
                SELECT payment_id FROM sandbox_settlements
                 WHERE state = 'pending' AND next_attempt_at <= now()
                 ORDER BY next_attempt_at
                 LIMIT $1
                 FOR UPDATE SKIP LOCKED)
          RETURNING s.payment_id, i.provider, i.created_at AS intent_created_at, s.outcome,
                    s.provider_transaction_id, i.order_code, i.amount_vnd, s.attempts,
                    i.trace_headers",
    )
    .bind(limit)
    .bind(millis(lease))
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(Claim::from).collect())
}

/// What happens to a settlement after a delivery attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Delivered,
    Abandoned,
    RetryIn(Duration),
}

/// Records the outcome of a delivery attempt.
pub async fn finish(
    pool: &PgPool,
    payment_id: Uuid,
    next: Next,
    last_response: &str,
) -> Result<(), sqlx::Error> {
    let (state, retry_in) = match next {
        Next::Delivered => ("delivered", Duration::ZERO),
        Next::Abandoned => ("abandoned", Duration::ZERO),
        Next::RetryIn(after) => ("pending", after),
    };
    sqlx::query(
        "UPDATE sandbox_settlements
            SET state = $2, last_response = $3,
                next_attempt_at = now() + $4::bigint * interval '1 millisecond',
                updated_at = now()
          WHERE payment_id = $1",
    )
    .bind(payment_id)
    .bind(state)
    .bind(truncate(last_response, 1_000))
    .bind(millis(retry_in))
    .execute(pool)
    .await?;
    Ok(())
}

/// The settlement outcome of `payment_id`, if the gateway settled it.
pub async fn outcome(
    conn: &mut PgConnection,
    payment_id: Uuid,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT outcome FROM sandbox_settlements WHERE payment_id = $1")
        .bind(payment_id)
        .fetch_optional(conn)
        .await
}

fn truncate(text: &str, max_chars: usize) -> &str {
    match text.char_indices().nth(max_chars) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}
