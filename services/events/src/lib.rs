//! Events for ocop-market services, the same way everywhere (DESIGN §4):
//!
//! - [`CloudEvent`]: a protobuf payload with CloudEvents 1.0 attributes, carried in Kafka
//!   binary mode (`ce_*` headers, `content-type`, W3C `traceparent`);
//! - [`outbox`]: write an event in the caller's transaction; [`outbox::Relay`] publishes
//!   it with the idempotent producer, in order, and survives broker outages;
//! - [`consumer`]: a consumer loop that applies each event once (inbox), commits offsets
//!   only after the effect commits, retries a bounded number of times and then sends the
//!   record to the group's dead-letter topic;
//! - [`retention`]: published outbox rows, inbox rows and a service's own old rows are
//!   pruned after their retention period, with a gauge of the rows kept;
//! - [`KafkaConfig`] and [`topics`]: connection settings and topic creation for local
//!   stacks (production topics are Strimzi resources).

pub mod cloudevent;
pub mod config;
pub mod consumer;
pub mod database;
mod deferral;
pub mod inbox;
pub mod lag;
pub mod outbox;
mod recovering;
pub mod retention;
mod stall;
pub mod topics;

pub use cloudevent::CloudEvent;
pub use config::KafkaConfig;
pub use database::DatabaseConfig;
pub use recovering::Recovering;

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

/// The outbox/inbox migrations together with the service's own, as one migrator
/// (versions are timestamps and never collide), so `_sqlx_migrations` records both and
/// neither looks "missing" to the other. Applied migrations this build does not know are
/// let be: an older image rolled back onto a newer schema still starts (migrations only
/// ever add, so the older code finds everything it uses).
fn migrator(service: &sqlx::migrate::Migrator) -> sqlx::migrate::Migrator {
    let mut migrator = sqlx::migrate::Migrator::with_migrations(
        MIGRATOR.iter().chain(service.iter()).cloned().collect(),
    );
    migrator.set_ignore_missing(true);
    migrator
}

/// Runs the outbox/inbox migrations together with the service's own on `pool`.
pub async fn migrate(
    pool: &sqlx::PgPool,
    service: &sqlx::migrate::Migrator,
) -> Result<(), sqlx::migrate::MigrateError> {
    migrator(service).run(pool).await
}

/// Checks, without changing anything, that `pool`'s schema has every migration this
/// build needs, as this build has them: for a service that does not migrate at start
/// (its migrations run once per release). A newer schema is fine; an older one, or a
/// migration applied with other contents, is refused with the versions named.
pub async fn check_schema(
    pool: &sqlx::PgPool,
    service: &sqlx::migrate::Migrator,
) -> anyhow::Result<()> {
    let applied: Vec<(i64, Vec<u8>)> =
        match sqlx::query_as("SELECT version, checksum FROM _sqlx_migrations WHERE success")
            .fetch_all(pool)
            .await
        {
            Ok(applied) => applied,
            // No migration table: nothing was ever applied.
            Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("42P01") => Vec::new(),
            Err(err) => return Err(err.into()),
        };
    let applied: std::collections::HashMap<i64, Vec<u8>> = applied.into_iter().collect();
    let (mut missing, mut changed) = (Vec::new(), Vec::new());
    for migration in migrator(service)
        .iter()
        .filter(|migration| !migration.migration_type.is_down_migration())
    {
        match applied.get(&migration.version) {
            None => missing.push(migration.version),
            Some(checksum) if checksum.as_slice() != &*migration.checksum => {
                changed.push(migration.version)
            }
            Some(_) => {}
        }
    }
    anyhow::ensure!(
        changed.is_empty(),
        "migrations {changed:?} were applied with other contents than this build's"
    );
    anyhow::ensure!(
        missing.is_empty(),
        "the database schema is older than this build: migrations {missing:?} are not \
         applied; run this release's migrations first (the same binary with MIGRATE_ONLY=true)"
    );
    Ok(())
}
