//! Consumer lag as the broker sees it: for every partition of a group's topics, the high
//! watermark minus the group's committed offset (minus the low watermark while the group
//! has committed nothing there). It is computed from the group's committed offsets, not
//! from what a member has fetched, so a member that receives nothing — no assignment, a
//! fetch that never returns — still shows its lag growing.

use std::time::Duration;

use rdkafka::{
    Offset, TopicPartitionList,
    consumer::{BaseConsumer, Consumer as _},
};
use tokio_util::sync::CancellationToken;

use crate::KafkaConfig;

/// How long one metadata, offset or watermark request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Measures the lag of `group` (the broker-side name) on `topics` (broker-side names)
/// every `interval` until `stop`, and publishes it as
/// `ocop_consumer_lag{group=label,topic,partition}`. Runs on a blocking thread: the
/// admin requests of librdkafka block.
pub(crate) fn spawn(
    kafka: &KafkaConfig,
    group: &str,
    label: &str,
    topics: Vec<String>,
    interval: Duration,
    stop: CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    // A client of the group that never subscribes: it reads the group's offsets without
    // joining it.
    let client: BaseConsumer = kafka
        .client_config(&format!("{group}-lag"))
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()?;
    let label = label.to_owned();
    Ok(tokio::task::spawn_blocking(move || {
        while !stop.is_cancelled() {
            match measure(&client, &topics) {
                Ok(lags) => {
                    for (topic, partition, lag) in lags {
                        metrics::gauge!(
                            "ocop_consumer_lag",
                            "group" => label.clone(),
                            "topic" => topic,
                            "partition" => partition.to_string(),
                        )
                        .set(lag as f64);
                    }
                }
                Err(err) => {
                    tracing::debug!(group = %label, error = %err, "consumer lag not measured")
                }
            }
            let next = std::time::Instant::now() + interval;
            while !stop.is_cancelled() && std::time::Instant::now() < next {
                std::thread::sleep(Duration::from_millis(50).min(interval));
            }
        }
    }))
}

/// `(topic, partition, lag)` for every partition of `topics`.
fn measure(
    client: &BaseConsumer,
    topics: &[String],
) -> Result<Vec<(String, i32, i64)>, rdkafka::error::KafkaError> {
    let metadata = client.fetch_metadata(None, REQUEST_TIMEOUT)?;
    let mut partitions = TopicPartitionList::new();
    for topic in metadata
        .topics()
        .iter()
        .filter(|topic| topics.iter().any(|name| name == topic.name()))
    {
        for partition in topic.partitions() {
            partitions.add_partition(topic.name(), partition.id());
        }
    }
    let committed = client.committed_offsets(partitions, REQUEST_TIMEOUT)?;
    committed
        .elements()
        .iter()
        .map(|element| {
            let (low, high) =
                client.fetch_watermarks(element.topic(), element.partition(), REQUEST_TIMEOUT)?;
            let from = match element.offset() {
                Offset::Offset(offset) => offset,
                _ => low,
            };
            Ok((
                element.topic().to_owned(),
                element.partition(),
                (high - from).max(0),
            ))
        })
        .collect()
}
