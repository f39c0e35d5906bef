//! What the load generator asks the broker: the saga's topics, their high watermarks
//! (records written, before and after) and how far the services' consumer groups are
//! behind. Every call here blocks: run it on a blocking thread.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    sync::Mutex,
    time::Duration,
};

use anyhow::Context as _;
use ocop_events::KafkaConfig;
use ocop_proto::contract::{consumer_groups::DEAD_LETTER_SUFFIX, topics::PLATFORM_PREFIX};
use rdkafka::{
    Offset, TopicPartitionList,
    consumer::{BaseConsumer, Consumer as _},
};

/// A loaded local broker can take seconds to answer.
const TIMEOUT: Duration = Duration::from_secs(15);

/// A topic partition.
pub type Partition = (String, i32);

pub struct Broker {
    config: KafkaConfig,
    client: BaseConsumer,
    /// Clients named after each service consumer group, to read its committed offsets.
    groups: Mutex<HashMap<String, BaseConsumer>>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("config", &self.config)
            .finish()
    }
}

impl Broker {
    pub fn connect(config: &KafkaConfig) -> anyhow::Result<Self> {
        let client = config
            .client_config("ocop-loadgen-probe")
            .set(
                "group.id",
                format!("ocop-loadgen-probe-{}", uuid::Uuid::new_v4()),
            )
            .set("enable.auto.commit", "false")
            .create()
            .context("create the kafka client")?;
        Ok(Self {
            config: config.clone(),
            client,
            groups: Mutex::new(HashMap::new()),
        })
    }

    /// The broker-side name of a logical topic.
    pub fn topic(&self, logical: &str) -> String {
        self.config.topic(logical)
    }

    /// The platform's topics (`<prefix>ocop.…`) and their partitions.
    pub fn platform_topics(&self) -> anyhow::Result<BTreeMap<String, Vec<i32>>> {
        let metadata = self
            .client
            .fetch_metadata(None, TIMEOUT)
            .with_context(|| format!("read the topics of the broker at {}", self.config.brokers))?;
        let prefix = self.topic(PLATFORM_PREFIX);
        Ok(metadata
            .topics()
            .iter()
            .filter(|topic| topic.name().starts_with(&prefix) && topic.error().is_none())
            .map(|topic| {
                (
                    topic.name().to_owned(),
                    topic.partitions().iter().map(|p| p.id()).collect(),
                )
            })
            .collect())
    }

    /// The high watermark (next offset) of every partition of `topics`: one ListOffsets
    /// request for them all, or one request per partition when that fails.
    pub fn high_watermarks(
        &self,
        topics: &BTreeMap<String, Vec<i32>>,
    ) -> anyhow::Result<BTreeMap<Partition, i64>> {
        let mut latest = TopicPartitionList::new();
        for (topic, partitions) in topics {
            for &partition in partitions {
                // In a ListOffsets query the "offset" is a timestamp; End (-1) is "latest".
                latest
                    .add_partition_offset(topic, partition, Offset::End)
                    .context("list a partition")?;
            }
        }
        if let Ok(answer) = self.client.offsets_for_times(latest, TIMEOUT) {
            let highs: BTreeMap<Partition, i64> = answer
                .elements()
                .iter()
                .filter_map(|element| match element.offset() {
                    Offset::Offset(high) if element.error().is_ok() => {
                        Some(((element.topic().to_owned(), element.partition()), high))
                    }
                    _ => None,
                })
                .collect();
            if highs.len() == topics.values().map(Vec::len).sum::<usize>() {
                return Ok(highs);
            }
        }
        let mut highs = BTreeMap::new();
        for (topic, partitions) in topics {
            for &partition in partitions {
                let (_, high) = self
                    .client
                    .fetch_watermarks(topic, partition, TIMEOUT)
                    .with_context(|| format!("read the watermarks of {topic}/{partition}"))?;
                highs.insert((topic.clone(), partition), high);
            }
        }
        Ok(highs)
    }

    /// The services' consumer groups, named by their dead-letter topics
    /// (`<group>.dlq`, one per group). The broker's group list is not asked: tansu's
    /// answer to ListGroups fails on groups its sqlite storage holds.
    pub fn service_groups(&self, topics: &BTreeMap<String, Vec<i32>>) -> BTreeSet<String> {
        topics
            .keys()
            .filter_map(|topic| topic.strip_suffix(DEAD_LETTER_SUFFIX))
            .map(str::to_owned)
            .collect()
    }

    /// The largest lag of any service group: for each group, the sum over the partitions
    /// it has committed offsets for of high watermark − committed offset. `None` when no
    /// group's offsets could be read.
    pub fn max_group_lag(
        &self,
        groups: &BTreeSet<String>,
        highs: &BTreeMap<Partition, i64>,
    ) -> Option<i64> {
        let mut list = TopicPartitionList::new();
        for (topic, partition) in highs.keys() {
            if !topic.ends_with(DEAD_LETTER_SUFFIX) {
                list.add_partition(topic, *partition);
            }
        }
        let mut clients = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        let mut max = None;
        for group in groups {
            if !clients.contains_key(group) {
                // Never subscribes or assigns: it only reads the group's committed offsets.
                let Ok(client) = self
                    .config
                    .client_config("ocop-loadgen-lag")
                    .set("group.id", group)
                    .set("enable.auto.commit", "false")
                    .create::<BaseConsumer>()
                else {
                    continue;
                };
                clients.insert(group.clone(), client);
            }
            let Ok(committed) = clients[group].committed_offsets(list.clone(), TIMEOUT) else {
                continue;
            };
            let mut lag = 0;
            let mut known = false;
            for element in committed.elements() {
                if let Offset::Offset(offset) = element.offset() {
                    let high = highs
                        .get(&(element.topic().to_owned(), element.partition()))
                        .copied()
                        .unwrap_or(offset);
                    lag += (high - offset).max(0);
                    known = true;
                }
            }
            if known {
                max = max.max(Some(lag));
            }
        }
        max
    }
}

/// Sum of high watermarks per topic.
pub fn records_by_topic(highs: &BTreeMap<Partition, i64>) -> BTreeMap<String, i64> {
    let mut by_topic = BTreeMap::new();
    for ((topic, _), high) in highs {
        *by_topic.entry(topic.clone()).or_default() += high;
    }
    by_topic
}
