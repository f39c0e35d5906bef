//! Consumer lag as the broker sees it: for every partition of a group's topics, the high
//! watermark minus the group's committed offset (minus the low watermark while the group
//! has committed nothing there). It is computed from the group's committed offsets, not
//! from what a member has fetched, so a member that receives nothing — no assignment, a
//! fetch that never returns — still shows its lag growing.

use std::{
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
    time::Duration,
};

use rdkafka::{
    Offset, TopicPartitionList,
    consumer::{BaseConsumer, Consumer as _},
};
use tokio_util::sync::CancellationToken;

use crate::KafkaConfig;

/// How long one metadata, offset or watermark request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// What the measurer last saw of the whole group, for the consumer's stall watch: the
/// records behind (−1 until measured) and the sum of the committed positions (which
/// moves whenever any member of the group makes progress).
#[derive(Debug)]
pub(crate) struct GroupProgress {
    behind: AtomicI64,
    committed: AtomicI64,
}

impl GroupProgress {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            behind: AtomicI64::new(-1),
            committed: AtomicI64::new(0),
        })
    }

    /// `(records behind, committed positions)`, once measured.
    pub(crate) fn read(&self) -> Option<(i64, i64)> {
        let behind = self.behind.load(Ordering::Relaxed);
        (behind >= 0).then(|| (behind, self.committed.load(Ordering::Relaxed)))
    }

    fn record(&self, behind: i64, committed: i64) {
        self.committed.store(committed, Ordering::Relaxed);
        self.behind.store(behind, Ordering::Relaxed);
    }
}

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
    progress: Arc<GroupProgress>,
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
                    progress.record(
                        lags.iter().map(|lag| lag.behind).sum(),
                        lags.iter().map(|lag| lag.committed).sum(),
                    );
                    for PartitionLag {
                        topic,
                        partition,
                        behind: lag,
                        ..
                    } in lags
                    {
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

/// One partition as the group stands on it.
struct PartitionLag {
    topic: String,
    partition: i32,
    /// Records after the group's committed position.
    behind: i64,
    /// The committed position (the low watermark while nothing is committed).
    committed: i64,
}

/// Every partition of `topics`.
fn measure(
    client: &BaseConsumer,
    topics: &[String],
) -> Result<Vec<PartitionLag>, rdkafka::error::KafkaError> {
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
            Ok(PartitionLag {
                topic: element.topic().to_owned(),
                partition: element.partition(),
                behind: (high - from).max(0),
                committed: from,
            })
        })
        .collect()
}
