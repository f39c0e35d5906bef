//! The consumer loop every service runs for the events it reacts to.
//!
//! Records are taken in batches: whatever the client has fetched, up to
//! [`ConsumerConfig::max_batch`]. Records the handler does not accept (another service's
//! events on a shared topic) are passed over. The rest of each partition's records are
//! applied in one transaction, in order, the partitions side by side: record the event
//! in the inbox (a redelivery stops there), apply the handler's effect; then one commit
//! per partition, and only after them the records' offsets are stored
//! (librdkafka commits stored offsets to the broker every `auto.commit.interval.ms` and
//! on shutdown). One commit and one offset commit per batch instead of per record is
//! what lets the saga keep up (CONVENTIONS, "Per-record round trips").
//!
//! When anything in a batch fails, its transaction rolls back and the batch is applied
//! again record by record, each in its own transaction: a failing handler is retried
//! with backoff a bounded number of times; after that, or at once for a record that
//! cannot be decoded, the record goes to the group's dead-letter topic and the partition
//! moves on. Nothing is dropped silently: either the effect commits, or the record is in
//! the dead-letter topic. A record waiting for its next try does not hold up the rest:
//! its partition is paused and sought back to it while the member goes on serving the
//! other partitions and topics (see `deferral`); a database outage spends no attempt.

use std::{
    future::Future,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use futures::{FutureExt as _, StreamExt as _, future::join_all};
use rdkafka::{
    Message as _, Offset, TopicPartitionList,
    consumer::{Consumer as _, StreamConsumer},
    message::{BorrowedMessage, Header, OwnedHeaders},
    producer::FutureRecord,
};
use sqlx::{PgPool, Postgres, Transaction};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::{
    CloudEvent, KafkaConfig, Recovering,
    cloudevent::DecodeError,
    deferral::{Deferrals, Failed},
    inbox, lag,
    outbox::idempotent_producer,
    stall::{StallWatch, group_moves},
};

/// What went wrong while handling an event.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// Worth another try (database busy, a dependency briefly away).
    #[error("{0:#}")]
    Retry(anyhow::Error),
    /// Will never succeed (malformed payload, impossible request): dead-letter at once.
    #[error("{0:#}")]
    Reject(anyhow::Error),
}

impl From<sqlx::Error> for HandlerError {
    fn from(err: sqlx::Error) -> Self {
        Self::Retry(err.into())
    }
}

impl From<DecodeError> for HandlerError {
    fn from(err: DecodeError) -> Self {
        Self::Reject(err.into())
    }
}

impl From<anyhow::Error> for HandlerError {
    fn from(err: anyhow::Error) -> Self {
        Self::Retry(err)
    }
}

/// Applies one event inside the transaction that also records it in the inbox.
pub trait Handler: Send + Sync + 'static {
    /// Whether `event` can have an effect here. Records it declines are passed over
    /// without a transaction or an inbox row (their offsets advance all the same): most
    /// records of a shared topic are another service's business.
    fn accepts(&self, event: &CloudEvent) -> bool {
        let _ = event;
        true
    }

    /// Called in a transaction before several records are applied in it, with their
    /// events. A handler whose effects lock rows locks them all here, in one global
    /// order, so that partitions applied side by side never deadlock on each other.
    fn prepare<'a>(
        &'a self,
        tx: &'a mut Transaction<'static, Postgres>,
        events: &'a [&'a CloudEvent],
    ) -> impl Future<Output = Result<(), HandlerError>> + Send + 'a {
        let _ = (tx, events);
        async { Ok(()) }
    }

    fn handle<'a>(
        &'a self,
        tx: &'a mut Transaction<'static, Postgres>,
        event: &'a CloudEvent,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send + 'a;
}

/// Consumer settings.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// The consumer group, also the inbox's consumer name, e.g. `ocop.catalog.orders`.
    pub group: String,
    /// Where a record that cannot be applied goes (the owner's naming rule, e.g.
    /// `<group>.dlq`; logical, the prefix is added like any topic's).
    pub dead_letter_topic: String,
    pub topics: Vec<String>,
    /// Attempts before a record is dead-lettered.
    pub max_attempts: u32,
    /// Pause before the second attempt; doubled each time.
    pub initial_backoff: Duration,
    /// How often the group's lag gauge is refreshed.
    pub lag_interval: Duration,
    /// Records applied in one transaction at most.
    pub max_batch: usize,
    /// How long a member may receive nothing while its group is behind and nobody in the
    /// group commits, before it is recreated (see `stall`). Above the session timeout
    /// (30 s), which an ordinary rebalance after a lost member takes.
    pub stall_after: Duration,
}

impl ConsumerConfig {
    /// Five attempts, from 100 ms apart; lag refreshed every 5 s; batches of up to 256.
    pub fn new(
        group: impl Into<String>,
        dead_letter_topic: impl Into<String>,
        topics: &[&str],
    ) -> Self {
        Self {
            group: group.into(),
            dead_letter_topic: dead_letter_topic.into(),
            topics: topics.iter().map(|topic| (*topic).to_owned()).collect(),
            max_attempts: 5,
            initial_backoff: Duration::from_millis(100),
            lag_interval: Duration::from_secs(5),
            max_batch: 256,
            stall_after: Duration::from_secs(45),
        }
    }
}

/// A running consumer group member.
pub struct EventConsumer {
    consumer: StreamConsumer,
    /// The broker-side group and topic names.
    group: String,
    topics: Vec<String>,
    kafka: KafkaConfig,
    pool: PgPool,
    config: ConsumerConfig,
    recovering: Recovering,
}

/// The longest pause between two tries of a record (a database outage can take many).
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Whether a handler's failure is the database being away (a connection lost or refused,
/// the pool exhausted, the server shutting down or out of connections, a transaction
/// that lost a serialization or deadlock race), which a later try outlives; anything else
/// (a constraint, a bad query, a bug) spends an attempt.
fn database_unavailable(err: &anyhow::Error) -> bool {
    err.chain()
        .any(|cause| match cause.downcast_ref::<sqlx::Error>() {
            Some(
                sqlx::Error::Io(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed,
            ) => true,
            Some(sqlx::Error::Database(db)) => db.code().is_some_and(|code| {
                code.starts_with("08")
                    || matches!(
                        &*code,
                        "57P01" | "57P02" | "57P03" | "53300" | "40001" | "40P01"
                    )
            }),
            _ => false,
        })
}

/// Why [`EventConsumer::serve`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Served {
    Stopped,
    Stalled,
}

enum Outcome {
    Applied,
    Duplicate,
    DeadLettered,
    Skipped,
}

/// What one try of a record came to.
enum Tried {
    Done(Outcome),
    /// Failed, worth another try; the attempts spent on it so far.
    Again {
        attempts: u32,
    },
}

/// A fetched record with its decoded event and its processing span.
type Record<'m> = (
    &'m BorrowedMessage<'m>,
    Result<CloudEvent, DecodeError>,
    tracing::Span,
);

impl EventConsumer {
    /// Joins the group and subscribes; records are read from the earliest offset when the
    /// group has none committed.
    pub fn new(kafka: &KafkaConfig, pool: PgPool, config: ConsumerConfig) -> anyhow::Result<Self> {
        let group = kafka.topic(&config.group);
        let topics: Vec<String> = config
            .topics
            .iter()
            .map(|topic| kafka.topic(topic))
            .collect();
        let consumer = member(kafka, &group, &topics)?;
        Ok(Self {
            consumer,
            group,
            topics,
            kafka: kafka.clone(),
            pool,
            config,
            recovering: Recovering::default(),
        })
    }

    /// Counts this consumer in `recovering` while it recreates its member, so that the
    /// service reports NOT_SERVING meanwhile.
    pub fn reporting_to(mut self, recovering: &Recovering) -> Self {
        self.recovering = recovering.clone();
        self
    }

    /// Handles records until `stop` is cancelled; the batch in hand is finished first.
    pub async fn run<H: Handler>(mut self, handler: H, stop: CancellationToken) {
        tracing::info!(group = %self.config.group, topics = ?self.config.topics, "consumer started");
        // Exported from the start, so `increase()` and alerts see a zero, not a gap.
        for name in [
            "ocop_consumer_retries_total",
            "ocop_consumer_dead_letters_total",
            "ocop_consumer_recreated_total",
        ] {
            metrics::counter!(name, "group" => self.config.group.clone()).increment(0);
        }
        // The measurer runs on a blocking thread, which a runtime waits for when it shuts
        // down: it stops when this loop ends, and also when the loop is dropped unfinished
        // (its task aborted, or a test that panicked), through the guard.
        let progress = lag::GroupProgress::new();
        let lag_stop = stop.child_token();
        let lag = lag::spawn(
            &self.kafka,
            &self.group,
            &self.config.group,
            self.topics.clone(),
            self.config.lag_interval,
            progress.clone(),
            lag_stop.clone(),
        )
        .inspect_err(|err| tracing::warn!(group = %self.config.group, error = format!("{err:#}"), "consumer lag not measured"))
        .ok();
        let lag_stop = lag_stop.drop_guard();
        // While a recreated member has not moved yet: the group's committed offsets when
        // it was recreated. The service reports NOT_SERVING meanwhile.
        let mut recovery: Option<Option<i64>> = None;
        while self.serve(&handler, &stop, &progress, &mut recovery).await == Served::Stalled {
            if recovery.is_none() {
                self.recovering.begin();
            }
            recovery = Some(progress.read().map(|(_, committed)| committed));
            tracing::warn!(
                group = %self.config.group,
                stall_after_s = self.config.stall_after.as_secs(),
                "consumer stalled: its group is behind, yet this member received nothing and the group committed nothing; recreating the member"
            );
            metrics::counter!("ocop_consumer_recreated_total", "group" => self.config.group.clone())
                .increment(1);
            match member(&self.kafka, &self.group, &self.topics) {
                Ok(fresh) => {
                    let stalled = std::mem::replace(&mut self.consumer, fresh);
                    // Closing a member waits on the broker (leave, final commit): on a
                    // thread of its own, so that neither this loop nor a shutdown waits.
                    std::thread::spawn(move || drop(stalled));
                }
                Err(err) => {
                    tracing::warn!(group = %self.config.group, error = format!("{err:#}"), "consumer not recreated; will try again");
                }
            }
        }
        // Offsets stored so far are committed when the consumer closes (librdkafka does
        // that with auto-commit on): no blocking commit here, which would hang on a broker
        // that is already gone.
        drop(lag_stop);
        if let Some(lag) = lag {
            let _ = lag.await;
        }
        if recovery.is_some() {
            self.recovering.end();
        }
        tracing::info!(group = %self.config.group, "consumer stopped");
    }

    /// Handles records with the current member until `stop` is cancelled, or until the
    /// member is stalled (see `stall`).
    async fn serve<H: Handler>(
        &self,
        handler: &H,
        stop: &CancellationToken,
        progress: &lag::GroupProgress,
        recovery: &mut Option<Option<i64>>,
    ) -> Served {
        let mut stream = self.consumer.stream();
        let mut watch = StallWatch::new(self.config.stall_after, Instant::now());
        let mut check = tokio::time::interval(self.config.lag_interval);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut deferrals = Deferrals::new(self.config.initial_backoff, MAX_BACKOFF);
        loop {
            let next_due = deferrals.next_due();
            let first = tokio::select! {
                _ = stop.cancelled() => return Served::Stopped,
                _ = check.tick() => {
                    if let Some(committed_before) = *recovery
                        && group_moves(progress.read(), committed_before)
                    {
                        self.recovered(recovery);
                    }
                    // A member whose partitions wait for a retry receives nothing on
                    // purpose: that is not a stall.
                    if !deferrals.any_paused() && watch.stalled(progress.read(), Instant::now()) {
                        return Served::Stalled;
                    }
                    continue;
                }
                _ = tokio::time::sleep_until(next_due.unwrap_or_else(Instant::now).into()), if next_due.is_some() => {
                    self.resume(deferrals.due(Instant::now()));
                    continue;
                }
                message = stream.next() => message.expect("kafka streams never end"),
            };
            let mut batch = match first {
                Ok(message) => vec![message],
                Err(err) => {
                    tracing::warn!(group = %self.config.group, error = %err, "kafka receive failed");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            watch.received(Instant::now());
            if recovery.is_some() {
                self.recovered(recovery);
            }
            // Whatever else the client has already fetched joins the batch, without waiting.
            while batch.len() < self.config.max_batch {
                match stream.next().now_or_never() {
                    Some(Some(Ok(message))) => batch.push(message),
                    Some(Some(Err(err))) => {
                        tracing::warn!(group = %self.config.group, error = %err, "kafka receive failed");
                        break;
                    }
                    Some(None) | None => break,
                }
            }
            // Records of a paused partition were fetched before its pause, or a rebalance
            // gave the partition back (unpaused, from its committed offset): they are
            // passed over and the partition paused again at the record that waits, so
            // they come again, in order, after it.
            let mut repause: Vec<(String, i32, i64)> = Vec::new();
            batch.retain(|message| {
                let Some(offset) = deferrals.paused_at(message.topic(), message.partition()) else {
                    return true;
                };
                let partition = (message.topic().to_owned(), message.partition(), offset);
                if !repause.contains(&partition) {
                    repause.push(partition);
                }
                false
            });
            for (topic, partition, offset) in repause {
                self.pause_at(&topic, partition, offset);
            }
            let failed = self.handle_batch(handler, &batch, &deferrals).await;
            for message in &batch {
                let held_back = failed.iter().any(|failed| {
                    failed.topic == message.topic()
                        && failed.partition == message.partition()
                        && message.offset() >= failed.offset
                });
                if held_back {
                    continue;
                }
                deferrals.handled(message.topic(), message.partition(), message.offset());
                if let Err(err) = self.consumer.store_offset_from_message(message) {
                    // The partition was revoked meanwhile: its new owner starts from the
                    // last committed offset, and the inbox folds the redelivery.
                    tracing::debug!(error = %err, "offset not stored");
                }
            }
            for failed in failed {
                let wait = deferrals.defer(&failed, Instant::now());
                tracing::debug!(topic = %failed.topic, partition = failed.partition, offset = failed.offset, wait_ms = wait.as_millis() as u64, "partition paused until the record's next try");
                self.pause_at(&failed.topic, failed.partition, failed.offset);
            }
        }
    }

    /// A recreated member moves again: the service may report SERVING (as far as this
    /// consumer goes).
    fn recovered(&self, recovery: &mut Option<Option<i64>>) {
        *recovery = None;
        self.recovering.end();
        tracing::info!(group = %self.config.group, "the recreated consumer moves again");
    }

    /// Pauses a partition and seeks it back to the record at `offset`, to be fetched
    /// again when the partition resumes.
    fn pause_at(&self, topic: &str, partition: i32, offset: i64) {
        let mut list = TopicPartitionList::new();
        list.add_partition(topic, partition);
        if let Err(err) = self.consumer.pause(&list) {
            // Revoked meanwhile: its next owner starts from the committed offset.
            tracing::debug!(error = %err, "partition not paused");
            return;
        }
        let seek = self.consumer.seek(
            topic,
            partition,
            Offset::Offset(offset),
            Duration::from_secs(1),
        );
        if let Err(err) = seek {
            tracing::warn!(group = %self.config.group, topic, partition, error = %err, "could not seek back to a record that waits for a retry");
        }
    }

    fn resume(&self, due: Vec<(String, i32)>) {
        for (topic, partition) in due {
            let mut list = TopicPartitionList::new();
            list.add_partition(&topic, partition);
            if let Err(err) = self.consumer.resume(&list) {
                tracing::debug!(error = %err, "partition not resumed (revoked meanwhile)");
            }
        }
    }

    /// Applies a batch: the records of each partition in one transaction, the
    /// partitions side by side (each keeps its order). A partition's records whose
    /// transaction fails are applied one by one instead (bounded retries, dead letters).
    /// Returns the records that wait for another try, one per partition at most (its
    /// later records are left for then).
    async fn handle_batch<'m, H: Handler>(
        &self,
        handler: &H,
        batch: &'m [BorrowedMessage<'m>],
        deferrals: &Deferrals,
    ) -> Vec<Failed> {
        let mut partitions: Vec<Vec<Record<'m>>> = Vec::new();
        for message in batch {
            let event = CloudEvent::from_message(message);
            if matches!(&event, Ok(event) if !handler.accepts(event)) {
                self.count(message, Outcome::Skipped);
                continue;
            }
            let span = consume_span(message, &self.config.group, event.as_ref().ok());
            let same_partition = |records: &&mut Vec<Record<'m>>| {
                let (first, _, _) = &records[0];
                first.topic() == message.topic() && first.partition() == message.partition()
            };
            match partitions.iter_mut().find(same_partition) {
                Some(records) => records.push((message, event, span)),
                None => partitions.push(vec![(message, event, span)]),
            }
        }
        join_all(
            partitions
                .into_iter()
                .map(|records| self.handle_partition(handler, records, deferrals)),
        )
        .await
        .into_iter()
        .flatten()
        .collect()
    }

    /// One partition's records of a batch, in order, up to one that waits for another
    /// try.
    async fn handle_partition<H: Handler>(
        &self,
        handler: &H,
        records: Vec<Record<'_>>,
        deferrals: &Deferrals,
    ) -> Option<Failed> {
        if records.len() > 1 && records.iter().all(|(_, event, _)| event.is_ok()) {
            let started = std::time::Instant::now();
            match self.apply_all(handler, &records).await {
                Ok(applied) => {
                    metrics::histogram!("ocop_consumer_batch_size", "group" => self.config.group.clone())
                        .record(records.len() as f64);
                    let elapsed = started.elapsed().as_secs_f64() / records.len() as f64;
                    for ((message, _, _), fresh) in records.iter().zip(applied) {
                        metrics::histogram!("ocop_consumer_handler_seconds", "group" => self.config.group.clone())
                            .record(elapsed);
                        let outcome = if fresh {
                            Outcome::Applied
                        } else {
                            Outcome::Duplicate
                        };
                        self.count(message, outcome);
                    }
                    return None;
                }
                Err(err) => tracing::debug!(
                    group = %self.config.group,
                    records = records.len(),
                    error = %err,
                    "batch failed; applying its records one by one"
                ),
            }
        }
        for (message, event, span) in records {
            let attempts =
                deferrals.attempts(message.topic(), message.partition(), message.offset());
            match self
                .try_once(handler, message, event, attempts)
                .instrument(span)
                .await
            {
                Tried::Done(outcome) => self.count(message, outcome),
                Tried::Again { attempts } => {
                    return Some(Failed {
                        topic: message.topic().to_owned(),
                        partition: message.partition(),
                        offset: message.offset(),
                        attempts,
                    });
                }
            }
        }
        None
    }

    /// Records of one partition in one transaction. Returns, per record, whether it was
    /// new.
    async fn apply_all<H: Handler>(
        &self,
        handler: &H,
        records: &[Record<'_>],
    ) -> Result<Vec<bool>, HandlerError> {
        let events: Vec<&CloudEvent> = records
            .iter()
            .map(|(_, event, _)| event.as_ref().expect("only decoded batches come here"))
            .collect();
        let mut tx = self.pool.begin().await?;
        // One inbox statement for the whole batch; a repeated id is applied once.
        let ids: Vec<(uuid::Uuid, &str)> = events
            .iter()
            .map(|event| (event.id, event.event_type.as_str()))
            .collect();
        let mut fresh = inbox::record_all(&mut tx, &self.config.group, &ids).await?;
        handler.prepare(&mut tx, &events).await?;
        let mut applied = Vec::with_capacity(records.len());
        for ((_, _, span), event) in records.iter().zip(events.iter().copied()) {
            let new = fresh.remove(&event.id);
            if new {
                handler
                    .handle(&mut tx, event)
                    .instrument(span.clone())
                    .await?;
            }
            applied.push(new);
        }
        tx.commit().await?;
        Ok(applied)
    }

    fn count(&self, message: &BorrowedMessage<'_>, outcome: Outcome) {
        metrics::counter!(
            "ocop_consumer_messages_total",
            "group" => self.config.group.clone(),
            "topic" => message.topic().to_owned(),
            "outcome" => match outcome {
                Outcome::Applied => "applied",
                Outcome::Duplicate => "duplicate",
                Outcome::DeadLettered => "dead_lettered",
                Outcome::Skipped => "skipped",
            },
        )
        .increment(1);
    }

    /// One try of a record that has had `attempts` failed tries: applied, a duplicate,
    /// dead-lettered (undecodable, rejected, or out of attempts), or to be tried again.
    async fn try_once<H: Handler>(
        &self,
        handler: &H,
        message: &BorrowedMessage<'_>,
        event: Result<CloudEvent, DecodeError>,
        attempts: u32,
    ) -> Tried {
        let event = match event {
            Ok(event) => event,
            Err(err) => {
                self.dead_letter(message, &err.to_string(), 1).await;
                return Tried::Done(Outcome::DeadLettered);
            }
        };
        let started = std::time::Instant::now();
        let result = self.apply(handler, &event).await;
        metrics::histogram!("ocop_consumer_handler_seconds", "group" => self.config.group.clone())
            .record(started.elapsed().as_secs_f64());
        match result {
            Ok(true) => Tried::Done(Outcome::Applied),
            Ok(false) => {
                tracing::debug!(event_id = %event.id, "event already applied; skipped");
                Tried::Done(Outcome::Duplicate)
            }
            Err(HandlerError::Reject(err)) => {
                tracing::warn!(event_id = %event.id, error = format!("{err:#}"), "event rejected");
                self.dead_letter(message, &format!("{err:#}"), attempts + 1)
                    .await;
                Tried::Done(Outcome::DeadLettered)
            }
            // The database is away (restarting, unreachable, out of connections): the
            // record is fine and waits for it, spending no attempt. Dead-lettering it
            // would lose its effect for good.
            Err(HandlerError::Retry(err)) if database_unavailable(&err) => {
                metrics::counter!("ocop_consumer_retries_total", "group" => self.config.group.clone())
                    .increment(1);
                tracing::warn!(event_id = %event.id, error = format!("{err:#}"), "database unavailable; the event waits");
                Tried::Again { attempts }
            }
            Err(HandlerError::Retry(err)) => {
                let attempts = attempts + 1;
                if attempts >= self.config.max_attempts {
                    tracing::error!(event_id = %event.id, attempts, error = format!("{err:#}"), "event failed every attempt");
                    self.dead_letter(message, &format!("{err:#}"), attempts)
                        .await;
                    return Tried::Done(Outcome::DeadLettered);
                }
                metrics::counter!("ocop_consumer_retries_total", "group" => self.config.group.clone())
                    .increment(1);
                tracing::warn!(event_id = %event.id, attempt = attempts, error = format!("{err:#}"), "event failed; retrying");
                Tried::Again { attempts }
            }
        }
    }

    /// One attempt in one transaction. `Ok(false)`: the inbox already had the event.
    async fn apply<H: Handler>(
        &self,
        handler: &H,
        event: &CloudEvent,
    ) -> Result<bool, HandlerError> {
        let mut tx = self.pool.begin().await?;
        if !inbox::record(&mut tx, &self.config.group, event.id, &event.event_type).await? {
            return Ok(false);
        }
        handler.handle(&mut tx, event).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Copies the record to the dead-letter topic with why it failed. Retries until the
    /// broker takes it: the offset must not move past a record that is nowhere. Each
    /// attempt uses a new producer: dead letters are rare, and a producer whose send
    /// failed may have been fenced for good.
    async fn dead_letter(&self, message: &BorrowedMessage<'_>, error: &str, attempts: u32) {
        let topic = self.kafka.topic(&self.config.dead_letter_topic);
        let partition = message.partition().to_string();
        let offset = message.offset().to_string();
        let attempts = attempts.to_string();
        let mut backoff = Duration::from_millis(200);
        loop {
            let mut headers = OwnedHeaders::new();
            if let Some(original) = message.headers() {
                use rdkafka::message::Headers as _;
                for header in original.iter() {
                    headers = headers.insert(header);
                }
            }
            for (key, value) in [
                ("dlq_original_topic", message.topic()),
                ("dlq_original_partition", partition.as_str()),
                ("dlq_original_offset", offset.as_str()),
                ("dlq_error", error),
                ("dlq_attempts", attempts.as_str()),
            ] {
                headers = headers.insert(Header {
                    key,
                    value: Some(value.as_bytes()),
                });
            }
            let mut record: FutureRecord<'_, [u8], [u8]> =
                FutureRecord::to(&topic).headers(headers);
            if let Some(key) = message.key() {
                record = record.key(key);
            }
            if let Some(payload) = message.payload() {
                record = record.payload(payload);
            }
            let sent = match idempotent_producer(
                &self.kafka,
                &format!("{}-dlq", self.config.group),
                Duration::from_secs(10),
            ) {
                Ok(producer) => producer
                    .send(record, Duration::from_secs(10))
                    .await
                    .map(|_| ())
                    .map_err(|(err, _)| anyhow::Error::new(err)),
                Err(err) => Err(err),
            };
            match sent {
                Ok(()) => {
                    metrics::counter!("ocop_consumer_dead_letters_total", "group" => self.config.group.clone())
                        .increment(1);
                    tracing::error!(dead_letter_topic = %topic, error, "record dead-lettered");
                    return;
                }
                Err(err) => {
                    tracing::warn!(
                        error = format!("{err:#}"),
                        "dead-letter publish failed; retrying"
                    );
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}

/// The span of one record's processing, a child of the trace its writer started.
fn consume_span(
    message: &BorrowedMessage<'_>,
    group: &str,
    event: Option<&CloudEvent>,
) -> tracing::Span {
    let span = tracing::info_span!(
        "consume",
        otel.name = format!("{} process", message.topic()),
        otel.kind = "consumer",
        messaging.system = "kafka",
        messaging.operation.type = "process",
        messaging.destination.name = message.topic(),
        messaging.consumer.group.name = %group,
        messaging.destination.partition.id = message.partition(),
        messaging.kafka.offset = message.offset(),
        event_id = tracing::field::Empty,
        event_type = tracing::field::Empty,
    );
    if let Some(event) = event {
        // Before the span is first entered: a started span can't take a parent.
        ocop_telemetry::propagation::set_parent_from_pairs(
            &span,
            event
                .trace_headers
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_str())),
        );
        span.record("event_id", tracing::field::display(event.id));
        span.record("event_type", event.event_type.as_str());
    }
    span
}

/// A member of `group` subscribed to `topics`; records are read from the earliest offset
/// when the group has none committed.
fn member(kafka: &KafkaConfig, group: &str, topics: &[String]) -> anyhow::Result<StreamConsumer> {
    let mut client = kafka.client_config(group);
    if let Some(instance) = &kafka.group_instance_id {
        // One static member per group: a process may consume in several groups.
        client.set("group.instance.id", format!("{instance}.{group}"));
    }
    let consumer: StreamConsumer = client
        .set("group.id", group)
        // Offsets are stored by hand once a batch's effects have committed, and the
        // client commits what is stored every second (and on shutdown): one broker
        // write per second per member, not one per record.
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false")
        .set("auto.commit.interval.ms", "1000")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        // A busy broker answers heartbeats late; 10 s was seen to expire every
        // session of a group under a burst, and a group that rejoins under load
        // can stay broken on some brokers.
        .set("session.timeout.ms", "30000")
        .set("heartbeat.interval.ms", "3000")
        // Bounds how long a rebalance waits for a member that died without leaving
        // (SIGKILL, OOM): some brokers wait the whole rebalance timeout, which is this
        // (librdkafka requires it to be at least the session timeout). A record's
        // retries stay well below it.
        .set("max.poll.interval.ms", "30000")
        // A saga step waits on each hop for the fetch in flight: Apache Kafka answers
        // a fetch as soon as a record arrives, but some brokers (tansu) always wait
        // the full time, so this bounds each hop's latency.
        .set("fetch.wait.max.ms", kafka.fetch_wait_max_ms.to_string())
        .create()
        .context("create kafka consumer")?;
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer
        .subscribe(&names)
        .with_context(|| format!("subscribe to {names:?}"))?;
    Ok(consumer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_that_is_away_is_waited_for_and_a_bug_is_not() {
        assert!(database_unavailable(&sqlx::Error::PoolTimedOut.into()));
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert!(database_unavailable(
            &anyhow::Error::from(sqlx::Error::Io(refused)).context("reserve stock")
        ));
        assert!(!database_unavailable(&sqlx::Error::RowNotFound.into()));
        assert!(!database_unavailable(&anyhow::anyhow!("unlucky payload")));
    }
}
