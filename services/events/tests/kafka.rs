//! The outbox relay and the consumer loop against the real PostgreSQL and broker.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU32, Ordering},
    },
    time::Duration,
};

use ocop_events::{
    CloudEvent, KafkaConfig,
    consumer::{ConsumerConfig, EventConsumer, Handler, HandlerError},
    outbox::{self, Relay, RelayConfig},
    topics::{TopicSpec, ensure_topics},
};
use ocop_testkit::{
    PrivateBroker, eventually, find_record, fresh_pool, header, kafka_brokers, key_text, produce,
    unique,
};
use rdkafka::{Message as _, message::OwnedHeaders};
use sqlx::{PgPool, Postgres, Transaction};
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(30);

fn kafka() -> KafkaConfig {
    KafkaConfig::plaintext(kafka_brokers())
}

async fn migrated_pool() -> PgPool {
    let pool = fresh_pool().await;
    ocop_events::migrate(&pool, &sqlx::migrate::Migrator::with_migrations(Vec::new()))
        .await
        .expect("migrate");
    pool
}

/// A fresh topic name; topics are created for the test.
async fn fresh_topic(prefix: &str) -> &'static str {
    let name: &'static str = Box::leak(unique(prefix).replace('_', "-").into_boxed_str());
    ensure_topics(&kafka(), &[TopicSpec::log(name, 1)])
        .await
        .expect("create topic");
    name
}

fn event(key: &str, seconds: i64) -> CloudEvent {
    CloudEvent::new(
        "/ocop/test",
        key,
        Some(format!("thing/{key}")),
        &prost_types::Duration { seconds, nanos: 0 },
    )
}

async fn unpublished(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn outbox_rows_are_published_in_order_with_cloudevents_headers() {
    let pool = migrated_pool().await;
    let topic = fresh_topic("outbox-order").await;
    let key = unique("order");
    let events: Vec<CloudEvent> = (1..=5).map(|n| event(&key, n)).collect();
    let mut tx = pool.begin().await.unwrap();
    for event in &events {
        outbox::enqueue(&mut tx, topic, event).await.unwrap();
    }
    tx.commit().await.unwrap();

    let relay = Relay::new("test", pool.clone(), &kafka(), RelayConfig::default()).unwrap();
    assert_eq!(relay.publish_round().await.unwrap(), 5);
    assert_eq!(unpublished(&pool).await, 0);

    let last = events.last().unwrap().id.to_string();
    let record = find_record(topic, WAIT, |m| {
        header(m, "ce_id").as_deref() == Some(&last)
    })
    .await;
    assert_eq!(key_text(&record), key);
    assert_eq!(header(&record, "ce_specversion").as_deref(), Some("1.0"));
    assert_eq!(
        header(&record, "ce_type").as_deref(),
        Some("google.protobuf.Duration")
    );
    assert_eq!(header(&record, "ce_source").as_deref(), Some("/ocop/test"));
    assert_eq!(
        header(&record, "content-type").as_deref(),
        Some("application/protobuf")
    );
    assert!(header(&record, "ce_time").is_some());

    // All five, in the order they were written.
    let first = events[0].id.to_string();
    let first_record = find_record(topic, WAIT, |m| {
        header(m, "ce_id").as_deref() == Some(&first)
    })
    .await;
    assert_eq!(record.offset() - first_record.offset(), 4);
}

#[tokio::test]
async fn event_of_a_rolled_back_transaction_is_never_published() {
    let pool = migrated_pool().await;
    let mut tx = pool.begin().await.unwrap();
    outbox::enqueue(&mut tx, "never", &event("k", 1))
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(rows, 0);
}

#[tokio::test]
async fn rows_wait_while_the_broker_is_unreachable_and_are_published_when_it_returns() {
    let pool = migrated_pool().await;
    let topic = fresh_topic("outbox-outage").await;
    let written = event(&unique("order"), 42);
    let mut tx = pool.begin().await.unwrap();
    outbox::enqueue(&mut tx, topic, &written).await.unwrap();
    tx.commit().await.unwrap();

    // A broker address where nothing listens: the round fails, the row stays queued.
    let dead_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let outage = Relay::new(
        "test",
        pool.clone(),
        &KafkaConfig::plaintext(format!("127.0.0.1:{dead_port}")),
        RelayConfig {
            delivery_timeout: Duration::from_secs(2),
            ..RelayConfig::default()
        },
    )
    .unwrap();
    assert!(outage.publish_round().await.is_err());
    assert_eq!(unpublished(&pool).await, 1);

    let recovered = Relay::new("test", pool.clone(), &kafka(), RelayConfig::default()).unwrap();
    assert_eq!(recovered.publish_round().await.unwrap(), 1);
    assert_eq!(unpublished(&pool).await, 0);
    let id = written.id.to_string();
    find_record(topic, WAIT, |m| header(m, "ce_id").as_deref() == Some(&id)).await;
}

#[tokio::test]
async fn stopped_broker_delays_events_and_the_relay_catches_up_when_it_resumes() {
    let broker = PrivateBroker::start().await;
    let kafka = KafkaConfig::plaintext(broker.brokers());
    let topic = "ocop.test.outage.v1";
    ensure_topics(&kafka, &[TopicSpec::log(topic, 1)])
        .await
        .unwrap();
    let pool = migrated_pool().await;
    let relay = Relay::new(
        "test",
        pool.clone(),
        &kafka,
        RelayConfig {
            delivery_timeout: Duration::from_secs(3),
            poll_interval: Duration::from_millis(50),
            max_backoff: Duration::from_millis(500),
            ..RelayConfig::default()
        },
    )
    .unwrap();
    let stop = CancellationToken::new();
    let relay = tokio::spawn(relay.run(stop.clone()));

    let before = event("k", 1);
    let mut tx = pool.begin().await.unwrap();
    outbox::enqueue(&mut tx, topic, &before).await.unwrap();
    tx.commit().await.unwrap();
    eventually("the first event published", WAIT, || async {
        (unpublished(&pool).await == 0).then_some(())
    })
    .await;

    broker.freeze();
    let during: Vec<CloudEvent> = (2..=4).map(|n| event("k", n)).collect();
    for written in &during {
        let mut tx = pool.begin().await.unwrap();
        outbox::enqueue(&mut tx, topic, written).await.unwrap();
        tx.commit().await.unwrap();
    }
    // An absence cannot be awaited: give the relay a few failed rounds, then check that
    // nothing was marked sent.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(unpublished(&pool).await, 3);

    broker.thaw();
    eventually(
        "the queued events published after the broker resumes",
        Duration::from_secs(60),
        || async { (unpublished(&pool).await == 0).then_some(()) },
    )
    .await;
    stop.cancel();
    relay.await.unwrap();

    let consumer: rdkafka::consumer::StreamConsumer = kafka
        .client_config("outage-reader")
        .set("group.id", unique("outage_reader"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    rdkafka::consumer::Consumer::subscribe(&consumer, &[topic]).unwrap();
    // At least once: a record sent just before the freeze may be sent again by the next
    // round, so duplicates are folded (consumers dedupe on ce_id the same way).
    let mut seen = Vec::new();
    while seen.len() < 4 {
        let message = tokio::time::timeout(WAIT, consumer.recv())
            .await
            .expect("records arrive")
            .unwrap();
        let id = header(&message.detach(), "ce_id").unwrap();
        if !seen.contains(&id) {
            seen.push(id);
        }
    }
    let expected: Vec<String> = std::iter::once(&before)
        .chain(&during)
        .map(|e| e.id.to_string())
        .collect();
    assert_eq!(seen, expected, "every event, in order, none lost");
}

/// Records each applied event in `effects`; an event whose payload says 13 always fails;
/// one whose payload says 7 finds the database unavailable on its first
/// `UNAVAILABLE_TRIES` tries (more than the consumer's attempts); one that says 99 finds
/// it unavailable for as long as `held` is set.
struct RecordingHandler {
    unavailable_left: AtomicU32,
    held: Arc<AtomicBool>,
}

const UNAVAILABLE_TRIES: u32 = 8;

impl RecordingHandler {
    fn new() -> Self {
        Self::holding(Arc::new(AtomicBool::new(false)))
    }

    fn holding(held: Arc<AtomicBool>) -> Self {
        Self {
            unavailable_left: AtomicU32::new(UNAVAILABLE_TRIES),
            held,
        }
    }
}

impl Handler for RecordingHandler {
    async fn handle(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        event: &CloudEvent,
    ) -> Result<(), HandlerError> {
        let payload = event.decode::<prost_types::Duration>()?;
        if payload.seconds == 13 {
            return Err(HandlerError::Retry(anyhow::anyhow!("unlucky payload")));
        }
        if payload.seconds == 7
            && self
                .unavailable_left
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                    left.checked_sub(1)
                })
                .is_ok()
        {
            return Err(sqlx::Error::PoolTimedOut.into());
        }
        if payload.seconds == 99 && self.held.load(Ordering::SeqCst) {
            return Err(sqlx::Error::PoolTimedOut.into());
        }
        sqlx::query("INSERT INTO effects (event_id, seconds) VALUES ($1, $2)")
            .bind(event.id)
            .bind(payload.seconds)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }
}

struct RunningConsumer {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

/// The dead-letter topic these tests give a group (the kit takes whatever name its
/// owner chooses; the platform's rule is the contract's).
fn dead_letter_topic(group: &str) -> String {
    format!("{group}.dlq")
}

async fn start_consumer(pool: &PgPool, group: &str, topic: &str) -> RunningConsumer {
    start_consumer_with(pool, group, &[topic], RecordingHandler::new()).await
}

async fn start_consumer_with(
    pool: &PgPool,
    group: &str,
    topics: &[&str],
    handler: RecordingHandler,
) -> RunningConsumer {
    let mut config = ConsumerConfig::new(group, dead_letter_topic(group), topics);
    config.max_attempts = 3;
    config.initial_backoff = Duration::from_millis(10);
    ensure_topics(
        &kafka(),
        &[TopicSpec::log(
            Box::leak(dead_letter_topic(group).into_boxed_str()),
            1,
        )],
    )
    .await
    .unwrap();
    let consumer = EventConsumer::new(&kafka(), pool.clone(), config).unwrap();
    let stop = CancellationToken::new();
    let task = tokio::spawn(consumer.run(handler, stop.clone()));
    RunningConsumer { stop, task }
}

async fn publish_raw(topic: &str, key: &str, event: Option<&CloudEvent>, payload: &[u8]) {
    let headers = event.map_or_else(OwnedHeaders::new, CloudEvent::headers);
    produce(topic, key, payload, headers).await;
}

async fn effects(pool: &PgPool) -> Vec<(uuid::Uuid, i64)> {
    sqlx::query_as("SELECT event_id, seconds FROM effects ORDER BY seconds")
        .fetch_all(pool)
        .await
        .unwrap()
}

async fn pool_with_effects() -> PgPool {
    let pool = migrated_pool().await;
    sqlx::query(
        "CREATE TABLE effects (event_id UUID NOT NULL, seconds BIGINT NOT NULL, applied BIGSERIAL)",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool
}

#[tokio::test]
async fn redelivered_event_is_applied_once() {
    let pool = pool_with_effects().await;
    let topic = fresh_topic("inbox").await;
    let group = unique("group");
    let first = event("k", 1);
    let second = event("k", 2);
    // The same event twice (as after a lost offset commit), then another.
    for sent in [&first, &first, &second] {
        publish_raw(topic, "k", Some(sent), &sent.data).await;
    }
    let consumer = start_consumer(&pool, &group, topic).await;
    let applied = eventually("both events applied", WAIT, || async {
        let rows = effects(&pool).await;
        (rows.len() >= 2).then_some(rows)
    })
    .await;
    consumer.stop.cancel();
    consumer.task.await.unwrap();
    assert_eq!(applied, vec![(first.id, 1), (second.id, 2)]);
    let inbox: i64 = sqlx::query_scalar("SELECT count(*) FROM inbox WHERE consumer = $1")
        .bind(&group)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(inbox, 2);
}

#[tokio::test]
async fn an_event_waits_out_a_database_outage_and_is_applied_not_dead_lettered() {
    let pool = pool_with_effects().await;
    let topic = fresh_topic("outage").await;
    let group = unique("group");
    // Its first 8 tries find the database unavailable; the consumer allows 3 attempts.
    let waits = event("k", 7);
    let next = event("k", 8);
    for sent in [&waits, &next] {
        publish_raw(topic, "k", Some(sent), &sent.data).await;
    }
    let consumer = start_consumer(&pool, &group, topic).await;
    let applied = eventually("both events applied", WAIT, || async {
        let rows = effects(&pool).await;
        (rows.len() >= 2).then_some(rows)
    })
    .await;
    consumer.stop.cancel();
    consumer.task.await.unwrap();
    assert_eq!(
        applied,
        vec![(waits.id, 7), (next.id, 8)],
        "in order, each once"
    );
}

#[tokio::test]
async fn a_record_waiting_for_the_database_holds_up_only_its_own_partition() {
    let pool = pool_with_effects().await;
    let waiting_topic = fresh_topic("held").await;
    let other_topic = fresh_topic("flowing").await;
    let group = unique("group");
    let held = Arc::new(AtomicBool::new(true));
    // On one topic, a record that finds the database away for as long as `held` is set,
    // and one behind it on the same partition, which must wait its turn.
    let waits = event("k", 99);
    let behind = event("k", 100);
    for sent in [&waits, &behind] {
        publish_raw(waiting_topic, "k", Some(sent), &sent.data).await;
    }
    let consumer = start_consumer_with(
        &pool,
        &group,
        &[waiting_topic, other_topic],
        RecordingHandler::holding(held.clone()),
    )
    .await;
    // The same consumer's other topic goes on meanwhile.
    let flows = event("k", 1);
    publish_raw(other_topic, "k", Some(&flows), &flows.data).await;
    eventually(
        "the other topic's record applied while one waits",
        WAIT,
        || async {
            effects(&pool)
                .await
                .iter()
                .any(|(id, _)| *id == flows.id)
                .then_some(())
        },
    )
    .await;
    assert_eq!(
        effects(&pool).await,
        vec![(flows.id, 1)],
        "the waiting record and the one behind it are not applied yet"
    );
    // The database back, the waiting record is applied (no attempt was spent on the
    // outage: it is not dead-lettered), then the one behind it.
    held.store(false, Ordering::SeqCst);
    eventually("the waiting records applied", WAIT, || async {
        (effects(&pool).await.len() >= 3).then_some(())
    })
    .await;
    consumer.stop.cancel();
    consumer.task.await.unwrap();
    let in_applied_order: Vec<i64> =
        sqlx::query_scalar("SELECT seconds FROM effects ORDER BY applied")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(in_applied_order, [1, 99, 100]);
}

#[tokio::test]
async fn poison_records_go_to_the_dead_letter_topic_and_the_partition_moves_on() {
    let pool = pool_with_effects().await;
    let topic = fresh_topic("poison").await;
    let group = unique("group");
    let failing = event("k", 13);
    let after = event("k", 7);
    publish_raw(topic, "k", None, b"not a cloudevent").await;
    publish_raw(topic, "k", Some(&failing), &failing.data).await;
    publish_raw(topic, "k", Some(&after), &after.data).await;

    let consumer = start_consumer(&pool, &group, topic).await;
    eventually("the event after the poison applied", WAIT, || async {
        effects(&pool)
            .await
            .iter()
            .any(|(id, _)| *id == after.id)
            .then_some(())
    })
    .await;
    consumer.stop.cancel();
    consumer.task.await.unwrap();

    let dead_letters = dead_letter_topic(&group);
    let undecodable = find_record(&dead_letters, WAIT, |m| header(m, "ce_id").is_none()).await;
    assert_eq!(undecodable.payload(), Some(&b"not a cloudevent"[..]));
    assert!(
        header(&undecodable, "dlq_error")
            .unwrap()
            .contains("ce_specversion")
    );
    assert_eq!(
        header(&undecodable, "dlq_original_topic").as_deref(),
        Some(topic)
    );

    let failing_id = failing.id.to_string();
    let exhausted = find_record(&dead_letters, WAIT, |m| {
        header(m, "ce_id").as_deref() == Some(&failing_id)
    })
    .await;
    assert_eq!(header(&exhausted, "dlq_attempts").as_deref(), Some("3"));
    assert!(
        header(&exhausted, "dlq_error")
            .unwrap()
            .contains("unlucky payload")
    );
    assert_eq!(effects(&pool).await, vec![(after.id, 7)]);
}

/// Takes its time over every event, so that a consumer falls behind its topic.
struct SlowHandler;

impl Handler for SlowHandler {
    async fn handle(
        &self,
        _tx: &mut Transaction<'static, Postgres>,
        _event: &CloudEvent,
    ) -> Result<(), HandlerError> {
        tokio::time::sleep(Duration::from_millis(250)).await;
        Ok(())
    }
}

/// The group's `ocop_consumer_lag` on partition 0, as `/metrics` would show it.
fn reported_lag(group: &str) -> Option<f64> {
    let needle = format!("ocop_consumer_lag{{group=\"{group}\",");
    ocop_telemetry::metrics::handle()
        .render()
        .lines()
        .find(|line| line.starts_with(&needle) && line.contains("partition=\"0\""))
        .and_then(|line| line.rsplit(' ').next()?.parse().ok())
}

#[tokio::test]
async fn lag_gauge_shows_a_consumer_behind_its_topic_and_returns_to_zero() {
    ocop_telemetry::metrics::handle();
    let pool = migrated_pool().await;
    let topic = fresh_topic("lag").await;
    let group = unique("group");
    for seconds in 0..12 {
        let sent = event("k", seconds);
        publish_raw(topic, "k", Some(&sent), &sent.data).await;
    }
    let mut config = ConsumerConfig::new(group.as_str(), dead_letter_topic(&group), &[topic]);
    config.lag_interval = Duration::from_millis(100);
    let consumer = EventConsumer::new(&kafka(), pool.clone(), config).unwrap();
    let stop = CancellationToken::new();
    let task = tokio::spawn(consumer.run(SlowHandler, stop.clone()));

    let behind = eventually("a lag above zero", WAIT, || async {
        reported_lag(&group).filter(|lag| *lag > 0.0)
    })
    .await;
    assert!(behind <= 12.0, "lag {behind} exceeds the records published");
    eventually("the lag back at zero", WAIT, || async {
        reported_lag(&group).filter(|lag| *lag == 0.0)
    })
    .await;
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn a_batch_records_each_new_event_once_in_the_inbox() {
    let pool = migrated_pool().await;
    let group = unique("group");
    let (seen, new) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    let mut tx = pool.begin().await.unwrap();
    assert!(
        ocop_events::inbox::record(&mut tx, &group, seen, "t")
            .await
            .unwrap()
    );
    // Already applied, new, and new again in the same batch (a republished record).
    let fresh =
        ocop_events::inbox::record_all(&mut tx, &group, &[(seen, "t"), (new, "t"), (new, "t")])
            .await
            .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(fresh, std::collections::HashSet::from([new]));
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM inbox WHERE consumer = $1")
        .bind(&group)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(rows, 2);
}
