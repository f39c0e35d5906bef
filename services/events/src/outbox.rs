//! The transactional outbox and its relay.
//!
//! A service calls [`enqueue`] inside the transaction that changes its state, so the
//! event exists if and only if the change committed. [`Relay`] publishes unsent rows in
//! `seq` order with the idempotent producer and stamps them sent. While the broker is
//! down, rows simply wait: nothing is lost, and the relay catches up when it returns.
//! The relay is woken by `LISTEN/NOTIFY` (a trigger on `outbox` notifies at commit), so
//! an event leaves within milliseconds of its transaction; a slow poll is the safety net.

use std::time::Duration;

use anyhow::Context as _;
use futures::{FutureExt as _, future::join_all};
use rdkafka::producer::{FutureProducer, FutureRecord};
use sqlx::{PgPool, Postgres, Transaction, postgres::PgListener};
use tokio_util::sync::CancellationToken;

use crate::{CloudEvent, KafkaConfig};

/// The channel the `outbox_notify` trigger notifies on commit.
const NOTIFY_CHANNEL: &str = "ocop_outbox";

/// The pause after a first failed round; doubled up to `max_backoff` while they fail.
const FIRST_RETRY: Duration = Duration::from_millis(100);

/// Only one relay per database publishes at a time, so events of one key never overtake
/// each other across replicas; the others wait for the lock.
const RELAY_LOCK_KEY: i64 = 0x6f63_6f70_6f75_7462; // "ocopoutb"

/// Writes `event` for the logical `topic` in the caller's transaction (the relay applies
/// the configured prefix).
#[tracing::instrument(name = "INSERT outbox", skip_all, fields(otel.kind = "client", db.system.name = "postgresql", db.collection.name = "outbox"))]
pub async fn enqueue(
    tx: &mut Transaction<'static, Postgres>,
    topic: &str,
    event: &CloudEvent,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO outbox (id, topic, key, ce_type, ce_source, ce_subject, ce_time, payload, trace_headers)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(event.id)
    .bind(topic)
    .bind(&event.key)
    .bind(&event.event_type)
    .bind(&event.source)
    .bind(&event.subject)
    .bind(event.time)
    .bind(&event.data)
    .bind(serde_json::to_value(&event.trace_headers).expect("string pairs serialise"))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Writes `events` for the logical `topic` in the caller's transaction, in one statement
/// and in the order given (their `seq` follows it).
#[tracing::instrument(name = "INSERT outbox", skip_all, fields(otel.kind = "client", db.system.name = "postgresql", db.collection.name = "outbox", rows = events.len()))]
pub async fn enqueue_all(
    tx: &mut Transaction<'static, Postgres>,
    topic: &str,
    events: &[CloudEvent],
) -> Result<(), sqlx::Error> {
    if events.is_empty() {
        return Ok(());
    }
    let column = |field: fn(&CloudEvent) -> String| events.iter().map(field).collect::<Vec<_>>();
    sqlx::query(
        "INSERT INTO outbox (id, topic, key, ce_type, ce_source, ce_subject, ce_time, payload, trace_headers)
         SELECT id, $1, key, ce_type, ce_source, ce_subject, ce_time, payload, trace_headers::jsonb
         FROM UNNEST($2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::timestamptz[], $8::bytea[], $9::text[])
              WITH ORDINALITY AS e (id, key, ce_type, ce_source, ce_subject, ce_time, payload, trace_headers, position)
         ORDER BY position",
    )
    .bind(topic)
    .bind(events.iter().map(|event| event.id).collect::<Vec<_>>())
    .bind(column(|event| event.key.clone()))
    .bind(column(|event| event.event_type.clone()))
    .bind(column(|event| event.source.clone()))
    .bind(events.iter().map(|event| event.subject.clone()).collect::<Vec<_>>())
    .bind(events.iter().map(|event| event.time).collect::<Vec<_>>())
    .bind(events.iter().map(|event| event.data.clone()).collect::<Vec<_>>())
    .bind(column(|event| {
        serde_json::to_string(&event.trace_headers).expect("string pairs serialise")
    }))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Builds the idempotent producer every service publishes with: acks from all
/// in-sync replicas, no duplicates on retry, per-partition order kept.
pub fn idempotent_producer(
    config: &KafkaConfig,
    client_id: &str,
    delivery_timeout: Duration,
) -> anyhow::Result<FutureProducer> {
    config
        .client_config(client_id)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        // Rows of one round are sent together anyway; a short linger keeps each hop fast.
        .set("linger.ms", "2")
        .set(
            "message.timeout.ms",
            delivery_timeout.as_millis().to_string(),
        )
        .create()
        .context("create idempotent kafka producer")
}

/// Relay settings.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// How often to look for new rows when no notification came (the safety net for a
    /// lost `LISTEN` connection).
    pub poll_interval: Duration,
    /// Rows published per round.
    pub batch_size: i64,
    /// How long one record may take to be acknowledged before the round is retried.
    pub delivery_timeout: Duration,
    /// The longest pause between retries while the broker is unreachable.
    pub max_backoff: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(1),
            batch_size: 200,
            delivery_timeout: Duration::from_secs(10),
            max_backoff: Duration::from_secs(5),
        }
    }
}

/// Publishes outbox rows to Kafka.
pub struct Relay {
    pool: PgPool,
    kafka: KafkaConfig,
    producer: FutureProducer,
    config: RelayConfig,
    service: &'static str,
}

#[derive(sqlx::FromRow)]
struct OutboxRow {
    seq: i64,
    id: uuid::Uuid,
    topic: String,
    key: String,
    ce_type: String,
    ce_source: String,
    ce_subject: Option<String>,
    ce_time: chrono::DateTime<chrono::Utc>,
    payload: Vec<u8>,
    trace_headers: serde_json::Value,
}

impl OutboxRow {
    fn into_event(self) -> (i64, String, CloudEvent) {
        let trace_headers = serde_json::from_value(self.trace_headers).unwrap_or_default();
        let event = CloudEvent {
            id: self.id,
            source: self.ce_source,
            event_type: self.ce_type,
            subject: self.ce_subject,
            time: self.ce_time,
            key: self.key,
            data: self.payload,
            trace_headers,
        };
        (self.seq, self.topic, event)
    }
}

impl Relay {
    /// A relay for `service`'s outbox in `pool`.
    pub fn new(
        service: &'static str,
        pool: PgPool,
        kafka: &KafkaConfig,
        config: RelayConfig,
    ) -> anyhow::Result<Self> {
        let producer =
            idempotent_producer(kafka, &format!("{service}-outbox"), config.delivery_timeout)?;
        Ok(Self {
            pool,
            kafka: kafka.clone(),
            producer,
            config,
            service,
        })
    }

    /// Publishes until `stop` is cancelled, then returns after the round in flight.
    pub async fn run(self, stop: CancellationToken) {
        // Exported from the start, so `rate()` and alerts see a zero, not a gap.
        metrics::counter!("ocop_outbox_publish_failures_total", "service" => self.service)
            .increment(0);
        // Measured beside the publishing loop, so a round stuck on an unreachable broker
        // still shows up as a growing backlog.
        let gauges = report_backlog(self.pool.clone(), self.service, stop.clone());
        tokio::join!(self.publish_until(stop), gauges);
    }

    async fn publish_until(mut self, stop: CancellationToken) {
        let mut wake = Wake::new(self.pool.clone(), self.service).await;
        let mut backoff = FIRST_RETRY;
        loop {
            if stop.is_cancelled() {
                break;
            }
            let pause = match self.publish_round().await {
                // A full round: more rows may be waiting.
                Ok(published) if published as i64 >= self.config.batch_size => {
                    backoff = FIRST_RETRY;
                    continue;
                }
                // Everything unsent was sent. Rows committed since then have notified,
                // so the wait below returns at once for them: no empty round to find out.
                Ok(_) => {
                    backoff = FIRST_RETRY;
                    None
                }
                Err(err) => {
                    metrics::counter!("ocop_outbox_publish_failures_total", "service" => self.service)
                        .increment(1);
                    tracing::warn!(
                        error = format!("{err:#}"),
                        retry_in_ms = backoff.as_millis() as u64,
                        "outbox round failed; rows stay queued"
                    );
                    self.renew_producer();
                    let pause = backoff;
                    backoff = (backoff * 2).min(self.config.max_backoff);
                    Some(pause)
                }
            };
            match pause {
                // Idle: until a writer commits, or the safety-net poll.
                None => wake.wait(self.config.poll_interval, &stop).await,
                Some(pause) => {
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => {}
                        _ = stop.cancelled() => {}
                    }
                }
            }
        }
        tracing::info!(service = self.service, "outbox relay stopped");
    }

    /// After a failed round the idempotent producer may be unusable for good: a producer
    /// whose messages timed out bumps its epoch, and a broker may then fence it forever
    /// (tansu does). A new producer gets a new producer id and starts clean; the rows it
    /// sends again are deduplicated by consumers on `ce_id`.
    fn renew_producer(&mut self) {
        match idempotent_producer(
            &self.kafka,
            &format!("{}-outbox", self.service),
            self.config.delivery_timeout,
        ) {
            Ok(producer) => self.producer = producer,
            Err(err) => tracing::warn!(
                error = format!("{err:#}"),
                "could not renew the outbox producer"
            ),
        }
    }

    /// One round: lock, read a batch in order, publish it, stamp what was acknowledged.
    /// Returns how many rows were published.
    pub async fn publish_round(&self) -> anyhow::Result<usize> {
        let mut tx = self.pool.begin().await.context("begin outbox round")?;
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
            .bind(RELAY_LOCK_KEY)
            .fetch_one(&mut *tx)
            .await
            .context("take relay lock")?;
        if !locked {
            return Ok(0);
        }
        let rows: Vec<OutboxRow> = sqlx::query_as(
            "SELECT seq, id, topic, key, ce_type, ce_source, ce_subject, ce_time, payload, trace_headers
             FROM outbox WHERE published_at IS NULL ORDER BY seq LIMIT $1",
        )
        .bind(self.config.batch_size)
        .fetch_all(&mut *tx)
        .await
        .context("read unsent outbox rows")?;
        if rows.is_empty() {
            return Ok(0);
        }

        let events: Vec<_> = rows.into_iter().map(OutboxRow::into_event).collect();
        // Sent together: the idempotent producer keeps per-partition order and
        // de-duplicates its own retries.
        let topics: Vec<String> = events
            .iter()
            .map(|(_, topic, _)| self.kafka.topic(topic))
            .collect();
        let deliveries = join_all(events.iter().zip(&topics).map(|((_, _, event), topic)| {
            let record = FutureRecord::to(topic)
                .key(event.key.as_bytes())
                .payload(event.data.as_slice())
                .headers(event.headers());
            self.producer.send(record, self.config.delivery_timeout)
        }))
        .await;

        // Stamp only the acknowledged prefix: a later row is never marked sent before an
        // earlier one, so a retry republishes in the original order (consumers dedupe).
        let acknowledged: Vec<i64> = events
            .iter()
            .zip(&deliveries)
            .take_while(|(_, delivery)| delivery.is_ok())
            .map(|((seq, _, _), _)| *seq)
            .collect();
        if !acknowledged.is_empty() {
            sqlx::query("UPDATE outbox SET published_at = now() WHERE seq = ANY($1)")
                .bind(&acknowledged)
                .execute(&mut *tx)
                .await
                .context("stamp published rows")?;
        }
        tx.commit().await.context("commit outbox round")?;
        metrics::counter!("ocop_outbox_published_total", "service" => self.service)
            .increment(acknowledged.len() as u64);

        if let Some((_, Err((err, _)))) = deliveries
            .iter()
            .enumerate()
            .find(|(_, delivery)| delivery.is_err())
            .map(|(index, delivery)| (index, delivery.as_ref().map(|_| ())))
        {
            anyhow::bail!(
                "published {} of {} rows; then: {err}",
                acknowledged.len(),
                events.len()
            );
        }
        Ok(acknowledged.len())
    }
}

/// What wakes an idle relay: the `outbox_notify` trigger's notifications.
struct Wake {
    pool: PgPool,
    service: &'static str,
    listener: Option<PgListener>,
}

impl Wake {
    async fn new(pool: PgPool, service: &'static str) -> Self {
        let mut wake = Self {
            pool,
            service,
            listener: None,
        };
        wake.listen().await;
        wake
    }

    async fn listen(&mut self) {
        let listener = async {
            let mut listener = PgListener::connect_with(&self.pool).await?;
            listener.listen(NOTIFY_CHANNEL).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        self.listener = match listener.await {
            Ok(listener) => Some(listener),
            Err(err) => {
                tracing::warn!(service = self.service, error = %err, "outbox relay cannot listen; polling");
                None
            }
        };
    }

    /// Returns at the first notification, after `timeout`, or when `stop` is cancelled.
    async fn wait(&mut self, timeout: Duration, stop: &CancellationToken) {
        if self.listener.is_none() {
            self.listen().await;
        }
        let Some(listener) = self.listener.as_mut() else {
            tokio::select! {
                _ = tokio::time::sleep(timeout) => {}
                _ = stop.cancelled() => {}
            }
            return;
        };
        let received = tokio::select! {
            received = listener.recv() => received,
            _ = tokio::time::sleep(timeout) => return,
            _ = stop.cancelled() => return,
        };
        match received {
            // Notifications that queued meanwhile are covered by the round about to run.
            Ok(_) => while let Some(Ok(_)) = listener.recv().now_or_never() {},
            Err(err) => {
                tracing::warn!(service = self.service, error = %err, "outbox listener lost; reconnecting");
                self.listener = None;
            }
        }
    }
}

/// Every few seconds: unsent rows and the age of the oldest, as gauges.
async fn report_backlog(pool: PgPool, service: &'static str, stop: CancellationToken) {
    loop {
        let backlog: Result<(i64, Option<f64>), _> = sqlx::query_as(
            "SELECT count(*), EXTRACT(EPOCH FROM now() - min(created_at))::float8
             FROM outbox WHERE published_at IS NULL",
        )
        .fetch_one(&pool)
        .await;
        match backlog {
            Ok((rows, oldest)) => {
                metrics::gauge!("ocop_outbox_backlog_rows", "service" => service).set(rows as f64);
                metrics::gauge!("ocop_outbox_oldest_age_seconds", "service" => service)
                    .set(oldest.unwrap_or(0.0));
            }
            Err(err) => tracing::warn!(error = %err, "could not measure outbox backlog"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            _ = stop.cancelled() => return,
        }
    }
}
