//! The database settings every service shares, and connecting with migrations.

use std::fmt;

use anyhow::Context as _;

/// Where a service's own PostgreSQL database is and how to use it. The URL may hold a
/// password, so `Debug` shows only whether it is set.
#[derive(Clone, clap::Args)]
pub struct DatabaseConfig {
    /// PostgreSQL URL of the service's own database (may hold a password; environment
    /// only in production).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,

    /// Most connections in the database pool.
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..=200))]
    pub database_max_connections: u32,

    /// Run the migrations and exit: for a Kubernetes init container or a release job.
    /// (sqlx holds an advisory lock meanwhile, so several starting together are safe.)
    #[arg(long, env = "MIGRATE_ONLY", default_value_t = false)]
    pub migrate_only: bool,

    /// Migrate at every start (local stacks). With `false` the service only checks that
    /// its schema has every migration it needs — run them once per release with
    /// MIGRATE_ONLY=true — and refuses to start on an older schema; a newer one (after a
    /// rollback) is fine either way.
    #[arg(long, env = "MIGRATE_AT_START", default_value_t = true, action = clap::ArgAction::Set)]
    pub migrate_at_start: bool,
}

impl fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("database_url", &"<redacted>")
            .field("database_max_connections", &self.database_max_connections)
            .field("migrate_only", &self.migrate_only)
            .field("migrate_at_start", &self.migrate_at_start)
            .finish()
    }
}

impl DatabaseConfig {
    /// Connects to the database and brings the schema up to date (the outbox and inbox
    /// tables plus the service's own migrations), or with `migrate_at_start` off checks
    /// that it is. `service` names the database in errors.
    pub async fn connect(
        &self,
        service: &str,
        migrations: &sqlx::migrate::Migrator,
    ) -> anyhow::Result<sqlx::PgPool> {
        let pool = self.pool(service).await?;
        if self.migrate_at_start || self.migrate_only {
            crate::migrate(&pool, migrations)
                .await
                .with_context(|| format!("run {service} migrations"))?;
        } else {
            crate::check_schema(&pool, migrations)
                .await
                .with_context(|| format!("check the {service} database's schema"))?;
        }
        Ok(pool)
    }

    async fn pool(&self, service: &str) -> anyhow::Result<sqlx::PgPool> {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(self.database_max_connections)
            .acquire_timeout(std::time::Duration::from_secs(5))
            .connect(&self.database_url)
            .await
            .with_context(|| format!("connect to the {service} database"))?;
        Ok(pool)
    }

    /// With `--migrate-only`: migrates, logs it and returns `true` (the caller exits).
    pub async fn migrate_only(
        &self,
        service: &str,
        migrations: &sqlx::migrate::Migrator,
    ) -> anyhow::Result<bool> {
        if !self.migrate_only {
            return Ok(false);
        }
        self.connect(service, migrations).await?.close().await;
        tracing::info!(service, "migrations applied; exiting (--migrate-only)");
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: &str, migrate_only: bool) -> DatabaseConfig {
        DatabaseConfig {
            database_url: url.to_owned(),
            database_max_connections: 2,
            migrate_only,
            migrate_at_start: true,
        }
    }

    /// A service's migrations: the first `count` of two.
    fn service_migrations(count: usize) -> sqlx::migrate::Migrator {
        use sqlx::{
            SqlSafeStr as _,
            migrate::{Migration, MigrationType},
        };
        let all = [
            (
                20990101000000,
                "CREATE TABLE widgets (id BIGINT PRIMARY KEY)",
            ),
            (20990102000000, "ALTER TABLE widgets ADD COLUMN colour TEXT"),
        ];
        sqlx::migrate::Migrator::with_migrations(
            all.into_iter()
                .take(count)
                .map(|(version, sql)| {
                    Migration::new(
                        version,
                        "widgets".into(),
                        MigrationType::Simple,
                        sql.into_sql_str(),
                        false,
                    )
                })
                .collect(),
        )
    }

    #[tokio::test]
    async fn an_older_build_starts_against_a_newer_schema() {
        let url = ocop_testkit::fresh_database_url().await;
        config(&url, false)
            .connect("test", &service_migrations(2))
            .await
            .unwrap();
        // The rollback: the previous release, which knows only the first migration.
        let older = config(&url, false);
        older.connect("test", &service_migrations(1)).await.unwrap();
        let checking = DatabaseConfig {
            migrate_at_start: false,
            ..older
        };
        checking
            .connect("test", &service_migrations(1))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_service_that_does_not_migrate_refuses_an_older_schema() {
        let url = ocop_testkit::fresh_database_url().await;
        let checking = DatabaseConfig {
            migrate_at_start: false,
            ..config(&url, false)
        };
        let refused = checking
            .connect("test", &service_migrations(2))
            .await
            .unwrap_err();
        assert!(
            format!("{refused:#}").contains("older than this build"),
            "{refused:#}"
        );
        // The release's migration job, then the service starts.
        assert!(
            config(&url, true)
                .migrate_only("test", &service_migrations(1))
                .await
                .unwrap()
        );
        let refused = checking
            .connect("test", &service_migrations(2))
            .await
            .unwrap_err();
        assert!(
            format!("{refused:#}").contains("[20990102000000]"),
            "names the missing migration: {refused:#}"
        );
        config(&url, true)
            .migrate_only("test", &service_migrations(2))
            .await
            .unwrap();
        checking
            .connect("test", &service_migrations(2))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn migrate_only_applies_the_migrations_and_asks_the_caller_to_exit() {
        let url = ocop_testkit::fresh_database_url().await;
        let no_service_migrations = sqlx::migrate::Migrator::with_migrations(Vec::new());
        let exit = config(&url, true)
            .migrate_only("test", &no_service_migrations)
            .await
            .unwrap();
        assert!(exit);
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        let outbox: Option<String> = sqlx::query_scalar("SELECT to_regclass('outbox')::text")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(outbox.as_deref(), Some("outbox"));
    }

    #[tokio::test]
    async fn without_the_flag_nothing_is_touched() {
        // An unreachable URL proves no connection is even attempted.
        let exit = config("postgres://nobody@127.0.0.1:1/none", false)
            .migrate_only("test", &crate::MIGRATOR)
            .await
            .unwrap();
        assert!(!exit);
    }

    #[test]
    fn debug_output_never_shows_the_url() {
        let shown = format!("{:?}", config("postgres://app:hunter2@db/app", false));
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
