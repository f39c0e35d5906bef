//! The retention pruner against the real PostgreSQL: old published outbox rows and old
//! inbox rows go, unpublished and recent rows stay, and the gauge reports what is kept.

use std::time::Duration;

use ocop_events::retention::{Pruner, RetentionConfig, Rule};
use ocop_testkit::fresh_pool;
use sqlx::PgPool;
use uuid::Uuid;

const DAY: Duration = Duration::from_secs(86_400);

async fn migrated_pool() -> PgPool {
    let pool = fresh_pool().await;
    ocop_events::migrate(&pool, &sqlx::migrate::Migrator::with_migrations(Vec::new()))
        .await
        .expect("migrate");
    pool
}

/// An outbox row created `age_days` ago, published then (or never).
async fn outbox_row(pool: &PgPool, age_days: i32, published: bool) -> Uuid {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO outbox (id, topic, key, ce_type, ce_source, ce_time, payload, created_at, published_at)
         VALUES ($1, 't', 'k', 'test', '/ocop/test', now(), '', now() - make_interval(days => $2),
                 CASE WHEN $3 THEN now() - make_interval(days => $2) END)",
    )
    .bind(id)
    .bind(age_days)
    .bind(published)
    .execute(pool)
    .await
    .unwrap();
    id
}

async fn inbox_row(pool: &PgPool, age_days: i32) -> Uuid {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO inbox (consumer, event_id, event_type, processed_at)
         VALUES ('test', $1, 'test', now() - make_interval(days => $2))",
    )
    .bind(id)
    .bind(age_days)
    .execute(pool)
    .await
    .unwrap();
    id
}

async fn ids(pool: &PgPool, sql: &'static str) -> Vec<Uuid> {
    let mut ids: Vec<Uuid> = sqlx::query_scalar(sql).fetch_all(pool).await.unwrap();
    ids.sort();
    ids
}

fn config(batch: i64) -> RetentionConfig {
    RetentionConfig {
        outbox_retention: 7 * DAY,
        inbox_retention: 14 * DAY,
        retention_interval: Duration::from_secs(600),
        retention_batch: batch,
    }
}

#[tokio::test]
async fn old_published_outbox_and_old_inbox_rows_go_unpublished_and_recent_rows_stay() {
    let handle = ocop_telemetry::metrics::handle();
    let pool = migrated_pool().await;
    for _ in 0..5 {
        outbox_row(&pool, 10, true).await;
        inbox_row(&pool, 20).await;
    }
    let mut kept_outbox = vec![
        outbox_row(&pool, 10, false).await,
        outbox_row(&pool, 30, false).await,
        outbox_row(&pool, 1, true).await,
    ];
    kept_outbox.sort();
    let kept_inbox = vec![inbox_row(&pool, 13).await];

    // Batches of two: the pruner goes on until a batch comes back short.
    let pruner = Pruner::new("retention-test", pool.clone(), &config(2));
    assert_eq!(pruner.prune().await.unwrap(), 10);
    assert_eq!(ids(&pool, "SELECT id FROM outbox").await, kept_outbox);
    assert_eq!(ids(&pool, "SELECT event_id FROM inbox").await, kept_inbox);
    assert_eq!(
        pruner.prune().await.unwrap(),
        0,
        "nothing more is old enough"
    );

    let metrics = handle.render();
    assert!(
        metrics.contains(r#"ocop_rows_kept{service="retention-test",table="outbox"} 3"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"ocop_rows_kept{service="retention-test",table="inbox"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_service_rule_prunes_its_own_table_and_only_what_it_allows() {
    let pool = migrated_pool().await;
    sqlx::query(
        "CREATE TABLE evidence (id INT PRIMARY KEY, received_at TIMESTAMPTZ NOT NULL, keep BOOLEAN NOT NULL)",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO evidence VALUES (1, now() - interval '100 days', false),
                                     (2, now() - interval '100 days', true),
                                     (3, now() - interval '1 day', false)",
    )
    .execute(&pool)
    .await
    .unwrap();
    let pruner = Pruner::new("retention-test-rule", pool.clone(), &config(100)).with_rule(Rule {
        table: "evidence",
        age_column: "received_at",
        prunable: "NOT keep",
        retention: 90 * DAY,
    });
    assert_eq!(pruner.prune().await.unwrap(), 1);
    let left: Vec<i32> = sqlx::query_scalar("SELECT id FROM evidence ORDER BY id")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(left, vec![2, 3]);
}
