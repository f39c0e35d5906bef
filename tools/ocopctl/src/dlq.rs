//! `ocopctl dlq replay`: send a consumer group's dead letters back to the topic they
//! came from, once the cause is fixed. The consumers' inbox makes a replay of an event
//! that was applied after all harmless.

use std::time::Duration;

use anyhow::Context as _;
use ocop_events::KafkaConfig;
use rdkafka::{
    Message as _,
    consumer::{CommitMode, Consumer as _, StreamConsumer},
    message::{Header, Headers as _, OwnedHeaders},
    producer::{FutureProducer, FutureRecord},
};

#[derive(Debug, clap::Subcommand)]
pub enum DlqCommand {
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
    let DlqCommand::Replay { group, idle, kafka } = command;
    let dead_letters = kafka.topic(&ocop_events::topics::dead_letter_topic(group));
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
        let message = match tokio::time::timeout(*idle, consumer.recv()).await {
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
