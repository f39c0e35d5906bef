//! Retention: rows that only matter for a while are deleted once older than their
//! retention period — published outbox rows, inbox rows, and whatever a service adds
//! (the payment service's stored provider callbacks) — by a background [`Pruner`].
//!
//! - An outbox row is pruned only once published; an unpublished row is never touched.
//! - An inbox row is the record that an event was applied: a redelivered event whose
//!   inbox row is gone would be applied twice. So `INBOX_RETENTION` must be longer than
//!   the retention of every topic the service consumes (7 days in `deploy/k8s`); the
//!   pruner asks the broker at start and does not prune the inbox when a consumed topic
//!   keeps records as long or longer.
//! - Rows go in batches of `RETENTION_BATCH`, each its own statement and transaction,
//!   so no lock is held for long and the relay and consumers never wait on the pruner.
//!
//! After each round `ocop_rows_kept{service,table}` reports the rows each table holds.

use std::time::Duration;

use anyhow::Context as _;
use rdkafka::{
    admin::{AdminClient, AdminOptions, ResourceSpecifier},
    client::DefaultClientContext,
};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::KafkaConfig;

/// The retention settings every service shares (flags or environment variables).
#[derive(Debug, Clone, clap::Args)]
pub struct RetentionConfig {
    /// How long a published outbox row is kept (unpublished rows are always kept).
    #[arg(long, env = "OUTBOX_RETENTION", default_value = "7d", value_parser = humantime::parse_duration)]
    pub outbox_retention: Duration,

    /// How long an inbox row (an applied event's id) is kept. Must be longer than the
    /// retention of every topic the service consumes, or a redelivered event could be
    /// applied twice: the inbox is not pruned if a consumed topic keeps records longer.
    #[arg(long, env = "INBOX_RETENTION", default_value = "14d", value_parser = humantime::parse_duration)]
    pub inbox_retention: Duration,

    /// How often old rows are pruned.
    #[arg(long, env = "RETENTION_INTERVAL", default_value = "10m", value_parser = humantime::parse_duration)]
    pub retention_interval: Duration,

    /// Rows deleted per statement.
    #[arg(long, env = "RETENTION_BATCH", default_value_t = 1000,
          value_parser = clap::value_parser!(i64).range(1..))]
    pub retention_batch: i64,
}

/// Which rows of a table may go, and when.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub table: &'static str,
    /// The row's age is measured from this `timestamptz` column.
    pub age_column: &'static str,
    /// An SQL condition that a row must also meet to be pruned (`true` for none).
    pub prunable: &'static str,
    pub retention: Duration,
}

impl Rule {
    /// Published outbox rows, by their publication time.
    pub fn outbox(retention: Duration) -> Self {
        Self {
            table: "outbox",
            age_column: "published_at",
            prunable: "published_at IS NOT NULL",
            retention,
        }
    }

    /// Inbox rows, by the time their event was applied.
    pub fn inbox(retention: Duration) -> Self {
        Self {
            table: "inbox",
            age_column: "processed_at",
            prunable: "true",
            retention,
        }
    }

    /// One batch: the ctids of at most `$2` old rows, deleted in one statement. The
    /// rows it picks are never updated again, so their ctids hold.
    fn delete_batch(&self) -> String {
        format!(
            "DELETE FROM {table} WHERE ctid = ANY(ARRAY(
                 SELECT ctid FROM {table}
                 WHERE {age} < now() - $1 * interval '1 second' AND {prunable}
                 LIMIT $2))",
            table = self.table,
            age = self.age_column,
            prunable = self.prunable,
        )
    }
}

/// Prunes a service's tables by their rules, every `RETENTION_INTERVAL`.
#[derive(Debug)]
pub struct Pruner {
    service: &'static str,
    pool: PgPool,
    rules: Vec<Rule>,
    interval: Duration,
    batch: i64,
    /// The broker and the topics whose retention the inbox must outlive.
    consumed: Option<(KafkaConfig, Vec<String>)>,
}

impl Pruner {
    /// The outbox and inbox rules of `config`.
    pub fn new(service: &'static str, pool: PgPool, config: &RetentionConfig) -> Self {
        Self {
            service,
            pool,
            rules: vec![
                Rule::outbox(config.outbox_retention),
                Rule::inbox(config.inbox_retention),
            ],
            interval: config.retention_interval,
            batch: config.retention_batch,
            consumed: None,
        }
    }

    /// Also prunes by `rule` (a service's own table).
    pub fn with_rule(mut self, rule: Rule) -> Self {
        self.rules.push(rule);
        self
    }

    /// Checks at start that the inbox outlives the logical `topics` (prefixed by
    /// `kafka`), which the service consumes.
    pub fn checking_topics(mut self, kafka: &KafkaConfig, topics: &[&str]) -> Self {
        let names = topics.iter().map(|topic| kafka.topic(topic)).collect();
        self.consumed = Some((kafka.clone(), names));
        self
    }

    /// Prunes every table once and reports the rows kept; returns the rows deleted.
    pub async fn prune(&self) -> anyhow::Result<u64> {
        let mut deleted = 0;
        for rule in &self.rules {
            deleted += self.prune_table(rule).await?;
            // Rules name tables and columns with `&'static str`s of our own code only.
            let count = sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {}", rule.table));
            let kept: i64 = sqlx::query_scalar(count)
                .fetch_one(&self.pool)
                .await
                .with_context(|| format!("count {} rows", rule.table))?;
            metrics::gauge!("ocop_rows_kept", "service" => self.service, "table" => rule.table)
                .set(kept as f64);
        }
        Ok(deleted)
    }

    async fn prune_table(&self, rule: &Rule) -> anyhow::Result<u64> {
        let sql = rule.delete_batch();
        let mut deleted = 0;
        loop {
            // Rules name tables and columns with `&'static str`s of our own code only.
            let batch = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(rule.retention.as_secs_f64())
                .bind(self.batch)
                .execute(&self.pool)
                .await
                .with_context(|| format!("prune {}", rule.table))?
                .rows_affected();
            deleted += batch;
            if batch < self.batch as u64 {
                break;
            }
        }
        if deleted > 0 {
            metrics::counter!("ocop_rows_pruned_total", "service" => self.service, "table" => rule.table)
                .increment(deleted);
            tracing::info!(table = rule.table, rows = deleted, "old rows pruned");
        }
        Ok(deleted)
    }

    /// Prunes every `RETENTION_INTERVAL` until `stop` (the first round at once).
    pub async fn run(mut self, stop: CancellationToken) {
        if let Some((kafka, topics)) = self.consumed.take() {
            let inbox = self
                .rules
                .iter()
                .find(|rule| rule.table == "inbox")
                .copied();
            if let Some(inbox) = inbox {
                match topic_retentions(&kafka, &topics).await {
                    Ok(retentions) => {
                        if let Err(reason) = inbox_outlives(inbox.retention, &retentions) {
                            tracing::error!(%reason, "INBOX_RETENTION is too short; the inbox is not pruned");
                            self.rules.retain(|rule| rule.table != "inbox");
                        }
                    }
                    Err(err) => tracing::warn!(
                        error = format!("{err:#}"),
                        "could not read the consumed topics' retention; INBOX_RETENTION is trusted"
                    ),
                }
            }
        }
        loop {
            if let Err(err) = self.prune().await {
                tracing::warn!(error = format!("{err:#}"), "pruning old rows failed");
            }
            tokio::select! {
                _ = tokio::time::sleep(self.interval) => {}
                _ = stop.cancelled() => return,
            }
        }
    }
}

/// `retention.ms` of each topic as the broker reports it (`None`: not reported).
async fn topic_retentions(
    kafka: &KafkaConfig,
    topics: &[String],
) -> anyhow::Result<Vec<(String, Option<i64>)>> {
    let admin: AdminClient<DefaultClientContext> = kafka
        .client_config("ocop-admin")
        .create()
        .context("create kafka admin client")?;
    let specifiers: Vec<ResourceSpecifier<'_>> = topics
        .iter()
        .map(|topic| ResourceSpecifier::Topic(topic))
        .collect();
    let options = AdminOptions::new().request_timeout(Some(Duration::from_secs(10)));
    let results = admin
        .describe_configs(&specifiers, &options)
        .await
        .context("describe topic configs")?;
    Ok(topics
        .iter()
        .zip(results)
        .map(|(topic, result)| {
            let retention = result.ok().and_then(|resource| {
                resource
                    .get("retention.ms")
                    .and_then(|entry| entry.value.as_deref())
                    .and_then(|value| value.parse().ok())
            });
            (topic.clone(), retention)
        })
        .collect())
}

/// Whether inbox rows kept for `inbox` outlive every topic's records; `retention.ms`
/// -1 keeps records forever.
fn inbox_outlives(inbox: Duration, topics: &[(String, Option<i64>)]) -> Result<(), String> {
    for (topic, retention_ms) in topics {
        let Some(retention_ms) = *retention_ms else {
            continue;
        };
        if retention_ms < 0 || Duration::from_millis(retention_ms as u64) >= inbox {
            let kept = if retention_ms < 0 {
                "forever".to_owned()
            } else {
                humantime::format_duration(Duration::from_millis(retention_ms as u64)).to_string()
            };
            return Err(format!(
                "topic {topic} keeps records {kept}, INBOX_RETENTION is {}: a redelivered \
                 record could find its inbox row gone",
                humantime::format_duration(inbox)
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn the_inbox_must_outlive_every_consumed_topic() {
        let week = Some(7 * 86_400_000);
        assert!(inbox_outlives(14 * DAY, &[("a".into(), week), ("b".into(), None)]).is_ok());
        let err = inbox_outlives(7 * DAY, &[("a".into(), week)]).unwrap_err();
        assert!(err.starts_with("topic a keeps records 7days"), "{err}");
        assert!(inbox_outlives(100 * DAY, &[("a".into(), Some(-1))]).is_err());
    }

    #[test]
    fn an_outbox_row_must_be_published_to_be_pruned() {
        let sql = Rule::outbox(DAY).delete_batch();
        assert!(sql.contains("published_at < now()"), "{sql}");
        assert!(sql.contains("AND published_at IS NOT NULL"), "{sql}");
    }
}
