//! Consumer lag as the consumer itself sees it: librdkafka's periodic statistics carry,
//! per assigned partition, the high watermark from its last fetch minus the group's
//! committed offset. Reading them costs no broker round trip.

use rdkafka::{ClientContext, Statistics, consumer::ConsumerContext};

/// A consumer context that publishes `ocop_consumer_lag{group,topic,partition}` from
/// every statistics report (`statistics.interval.ms`).
pub struct LagReporter {
    group: String,
}

impl LagReporter {
    /// `group` is the logical group name, as on the other consumer metrics.
    pub fn new(group: impl Into<String>) -> Self {
        Self {
            group: group.into(),
        }
    }
}

impl ClientContext for LagReporter {
    fn stats(&self, statistics: Statistics) {
        for (topic, report) in statistics.topics {
            for (partition, state) in report.partitions {
                // Partition -1 is librdkafka's internal "unassigned" queue; a negative lag
                // means the high watermark or the committed offset isn't known yet.
                if partition < 0 || !state.desired || state.consumer_lag < 0 {
                    continue;
                }
                metrics::gauge!(
                    "ocop_consumer_lag",
                    "group" => self.group.clone(),
                    "topic" => topic.clone(),
                    "partition" => partition.to_string(),
                )
                .set(state.consumer_lag as f64);
            }
        }
    }
}

impl ConsumerContext for LagReporter {}
