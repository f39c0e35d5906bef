//! The inbox: which events a consumer group has already applied.

use sqlx::{Postgres, Transaction};
use uuid::Uuid;

/// Records that `consumer` applies `event_id` in `tx`. Returns `false` when the event
/// was applied before: the caller must then skip its effect.
#[tracing::instrument(name = "INSERT inbox", skip_all, fields(otel.kind = "client", db.system.name = "postgresql", db.collection.name = "inbox"))]
pub async fn record(
    tx: &mut Transaction<'static, Postgres>,
    consumer: &str,
    event_id: Uuid,
    event_type: &str,
) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO inbox (consumer, event_id, event_type) VALUES ($1, $2, $3)
         ON CONFLICT (consumer, event_id) DO NOTHING",
    )
    .bind(consumer)
    .bind(event_id)
    .bind(event_type)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}
