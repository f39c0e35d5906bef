//! The inbox: which events a consumer group has already applied.

use std::collections::HashSet;

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

/// Records that `consumer` applies each of `events` (`(id, type)` pairs) in `tx`, in one
/// statement. Returns the ids that were new; an id already in the inbox, or repeated in
/// `events`, is returned once at most.
#[tracing::instrument(name = "INSERT inbox", skip_all, fields(otel.kind = "client", db.system.name = "postgresql", db.collection.name = "inbox"))]
pub async fn record_all(
    tx: &mut Transaction<'static, Postgres>,
    consumer: &str,
    events: &[(Uuid, &str)],
) -> Result<HashSet<Uuid>, sqlx::Error> {
    let ids: Vec<Uuid> = events.iter().map(|(id, _)| *id).collect();
    let types: Vec<&str> = events.iter().map(|(_, event_type)| *event_type).collect();
    let inserted: Vec<Uuid> = sqlx::query_scalar(
        "INSERT INTO inbox (consumer, event_id, event_type)
         SELECT $1, id, event_type FROM UNNEST($2::uuid[], $3::text[]) AS batch (id, event_type)
         ON CONFLICT (consumer, event_id) DO NOTHING
         RETURNING event_id",
    )
    .bind(consumer)
    .bind(&ids)
    .bind(&types)
    .fetch_all(&mut **tx)
    .await?;
    Ok(inserted.into_iter().collect())
}
