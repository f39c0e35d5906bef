//! `ocopctl dlq`: list the dead letters with why each one failed, and send a consumer
//! group's dead letters back to the topic they came from once the cause is fixed. The
//! consumers' inbox makes a replay of an event that was applied after all harmless.

use std::{collections::HashMap, time::Duration};

use anyhow::Context as _;
use ocop_events::KafkaConfig;
use ocop_proto::contract::consumer_groups;
use rdkafka::{
    Message as _, Offset, TopicPartitionList,
    consumer::{CommitMode, Consumer as _, StreamConsumer},
    message::{BorrowedMessage, Header, Headers as _, OwnedHeaders},
    producer::{FutureProducer, FutureRecord},
};

#[derive(Debug, clap::Subcommand)]
pub enum DlqCommand {
    /// List every dead letter (of one group, or of all) with the reason it failed.
    List {
        /// The consumer group, e.g. ocop.catalog.orders (all groups when omitted).
        group: Option<String>,
        #[command(flatten)]
        kafka: KafkaConfig,
    },
    /// Replay the records of `<group>.dlq` that no earlier replay has sent.
    Replay {
        /// The consumer group, e.g. ocop.catalog.orders.
        group: String,
        /// Stop when no record arrives for this long.
        #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
        idle: Duration,
        #[command(flatten)]
        kafka: KafkaConfig,
    },
}

pub async fn run(command: &DlqCommand) -> anyhow::Result<()> {
    match command {
        DlqCommand::List { group, kafka } => {
            print!("{}", render(&dead_letters(kafka, group.as_deref()).await?));
            Ok(())
        }
        DlqCommand::Replay { group, idle, kafka } => replay(group, *idle, kafka).await,
    }
}

/// A record of a dead-letter topic, as the consumer that gave up on it described it.
#[derive(Debug)]
pub struct DeadLetter {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub event_type: String,
    pub event_id: String,
    pub original_topic: String,
    pub attempts: String,
    pub error: String,
}

impl DeadLetter {
    fn from_message(message: &BorrowedMessage<'_>) -> Self {
        let header = |name: &str| {
            message
                .headers()
                .and_then(|all| all.iter().find(|header| header.key == name))
                .and_then(|header| header.value)
                .map_or_else(
                    || "?".to_owned(),
                    |value| String::from_utf8_lossy(value).into_owned(),
                )
        };
        Self {
            topic: message.topic().to_owned(),
            partition: message.partition(),
            offset: message.offset(),
            event_type: header("ce_type"),
            event_id: header("ce_id"),
            original_topic: header("dlq_original_topic"),
            attempts: header("dlq_attempts"),
            error: header("dlq_error"),
        }
    }
}

/// Every record of the dead-letter topics (`<group>.dlq`, under the configured topic
/// prefix) of `group`, or of every group, read without joining any group.
pub async fn dead_letters(
    kafka: &KafkaConfig,
    group: Option<&str>,
) -> anyhow::Result<Vec<DeadLetter>> {
    const TIMEOUT: Duration = Duration::from_secs(10);
    let consumer: StreamConsumer = kafka
        .client_config("ocopctl-dlq")
        // Partitions are assigned, never subscribed: the group is not joined.
        .set("group.id", "ocopctl-dlq-list")
        .set("enable.auto.commit", "false")
        .create()
        .context("create kafka consumer")?;
    let wanted = |topic: &str| match group {
        Some(group) => topic == kafka.topic(&consumer_groups::dead_letter_topic(group)),
        None => {
            topic.starts_with(&kafka.topic(""))
                && topic.ends_with(consumer_groups::DEAD_LETTER_SUFFIX)
        }
    };
    let metadata = consumer
        .fetch_metadata(None, TIMEOUT)
        .with_context(|| format!("read the topics of {}", kafka.brokers))?;
    let mut assignment = TopicPartitionList::new();
    // The offset just past the last record of each partition, as it stood.
    let mut ends = HashMap::new();
    for topic in metadata
        .topics()
        .iter()
        .filter(|topic| wanted(topic.name()))
    {
        for partition in topic.partitions() {
            let (low, high) = consumer
                .fetch_watermarks(topic.name(), partition.id(), TIMEOUT)
                .with_context(|| format!("watermarks of {}", topic.name()))?;
            if high > low {
                assignment.add_partition_offset(
                    topic.name(),
                    partition.id(),
                    Offset::Offset(low),
                )?;
                ends.insert((topic.name().to_owned(), partition.id()), high);
            }
        }
    }
    let mut letters = Vec::new();
    if ends.is_empty() {
        return Ok(letters);
    }
    consumer.assign(&assignment).context("assign")?;
    while !ends.is_empty() {
        let message = tokio::time::timeout(TIMEOUT, consumer.recv())
            .await
            .context("the dead-letter topics stopped delivering before their last record")?
            .context("receive")?;
        let partition = (message.topic().to_owned(), message.partition());
        let Some(&end) = ends.get(&partition) else {
            continue;
        };
        if message.offset() < end {
            letters.push(DeadLetter::from_message(&message));
        }
        if message.offset() + 1 >= end {
            ends.remove(&partition);
        }
    }
    letters
        .sort_by(|a, b| (&a.topic, a.partition, a.offset).cmp(&(&b.topic, b.partition, b.offset)));
    Ok(letters)
}

/// A count per topic, then one line per dead letter with its reason.
pub fn render(letters: &[DeadLetter]) -> String {
    if letters.is_empty() {
        return "dead letters: none\n".to_owned();
    }
    let mut per_topic: Vec<(&str, usize)> = Vec::new();
    for letter in letters {
        match per_topic
            .iter_mut()
            .find(|(topic, _)| *topic == letter.topic)
        {
            Some((_, count)) => *count += 1,
            None => per_topic.push((&letter.topic, 1)),
        }
    }
    let counts: Vec<String> = per_topic
        .iter()
        .map(|(topic, count)| format!("{topic} {count}"))
        .collect();
    let mut text = format!("dead letters: {} ({})\n", letters.len(), counts.join(", "));
    for letter in letters {
        text.push_str(&format!(
            "  {} p{}@{}  {} {} from {} after {} attempt(s): {}\n",
            letter.topic,
            letter.partition,
            letter.offset,
            letter.event_type,
            letter.event_id,
            letter.original_topic,
            letter.attempts,
            letter.error
        ));
    }
    text
}

async fn replay(group: &str, idle: Duration, kafka: &KafkaConfig) -> anyhow::Result<()> {
    let dead_letters = kafka.topic(&consumer_groups::dead_letter_topic(group));
    // A group of the replayer's own remembers what was already replayed.
    let consumer: StreamConsumer = kafka
        .client_config("ocopctl-dlq")
        .set(
            "group.id",
            kafka.topic(&format!("ocopctl.dlq-replay.{group}")),
        )
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .context("create kafka consumer")?;
    consumer.subscribe(&[&dead_letters]).context("subscribe")?;
    let producer: FutureProducer = kafka
        .client_config("ocopctl-dlq")
        .set("enable.idempotence", "true")
        .create()
        .context("create kafka producer")?;
    let mut replayed = 0;
    loop {
        let message = match tokio::time::timeout(idle, consumer.recv()).await {
            Err(_) => break,
            Ok(message) => message.context("receive")?,
        };
        let mut original_topic = None;
        let mut headers = OwnedHeaders::new();
        if let Some(all) = message.headers() {
            for header in all.iter() {
                if header.key == "dlq_original_topic" {
                    original_topic = header
                        .value
                        .map(|value| String::from_utf8_lossy(value).into_owned());
                } else if !header.key.starts_with("dlq_") {
                    headers = headers.insert(Header {
                        key: header.key,
                        value: header.value,
                    });
                }
            }
        }
        let topic = original_topic.context("a dead letter without dlq_original_topic")?;
        let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&topic).headers(headers);
        if let Some(key) = message.key() {
            record = record.key(key);
        }
        if let Some(payload) = message.payload() {
            record = record.payload(payload);
        }
        producer
            .send(record, Duration::from_secs(10))
            .await
            .map_err(|(err, _)| err)
            .with_context(|| format!("replay offset {} to {topic}", message.offset()))?;
        consumer
            .commit_message(&message, CommitMode::Sync)
            .context("commit")?;
        replayed += 1;
        eprintln!("replayed {dead_letters}@{} → {topic}", message.offset());
    }
    println!("{replayed} dead letters replayed from {dead_letters}");
    Ok(())
}
