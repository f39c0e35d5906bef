//! Events for ocop-market services, the same way everywhere (DESIGN §4):
//!
//! - [`CloudEvent`]: a protobuf payload with CloudEvents 1.0 attributes, carried in Kafka
//!   binary mode (`ce_*` headers, `content-type`, W3C `traceparent`);
//! - [`outbox`]: write an event in the caller's transaction; [`outbox::Relay`] publishes
//!   it with the idempotent producer, in order, and survives broker outages;
//! - [`consumer`]: a consumer loop that applies each event once (inbox), commits offsets
//!   only after the effect commits, retries a bounded number of times and then sends the
//!   record to the group's dead-letter topic;
//! - [`KafkaConfig`] and [`topics`]: connection settings and topic creation for local
//!   stacks (production topics are Strimzi resources).

pub mod cloudevent;
pub mod config;
pub mod consumer;
pub mod database;
pub mod inbox;
pub mod lag;
pub mod outbox;
mod stall;
pub mod topics;

pub use cloudevent::CloudEvent;
pub use config::KafkaConfig;
pub use database::DatabaseConfig;

/// The migrations of the outbox and inbox tables. Every producing or consuming service
/// runs them with its own (see [`migrator_with`]).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

/// Reports the database pool every few seconds until `stop`: connections open and idle
/// (`ocop_db_pool_connections{service,state}`), for the pool-saturation dashboards.
pub async fn report_pool(
    service: &'static str,
    pool: sqlx::PgPool,
    stop: tokio_util::sync::CancellationToken,
) {
    loop {
        let open = f64::from(pool.size());
        let idle = pool.num_idle() as f64;
        metrics::gauge!("ocop_db_pool_connections", "service" => service, "state" => "idle")
            .set(idle);
        metrics::gauge!("ocop_db_pool_connections", "service" => service, "state" => "in_use")
            .set((open - idle).max(0.0));
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(5)) => {}
            _ = stop.cancelled() => return,
        }
    }
}

/// Runs the outbox/inbox migrations together with the service's own on `pool`.
///
/// They form one migrator (versions are timestamps and never collide), so
/// `_sqlx_migrations` records both and neither looks "missing" to the other.
pub async fn migrate(
    pool: &sqlx::PgPool,
    service: &sqlx::migrate::Migrator,
) -> Result<(), sqlx::migrate::MigrateError> {
    sqlx::migrate::Migrator::with_migrations(
        MIGRATOR.iter().chain(service.iter()).cloned().collect(),
    )
    .run(pool)
    .await
}
