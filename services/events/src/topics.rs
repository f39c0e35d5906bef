//! Topic creation for local stacks and tests. On Kubernetes the topics are Strimzi
//! `KafkaTopic` resources and services do not create them.

use std::time::Duration;

use anyhow::Context as _;
use rdkafka::{
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
    types::RDKafkaErrorCode,
};

use crate::KafkaConfig;

/// A topic a service needs.
#[derive(Debug, Clone, Copy)]
pub struct TopicSpec {
    pub name: &'static str,
    pub partitions: i32,
    /// Compacted topics keep the newest record per key (product snapshots).
    pub compacted: bool,
}

impl TopicSpec {
    /// A topic as its owner describes it (a service, from the contract's topic list).
    pub const fn new(name: &'static str, partitions: i32, compacted: bool) -> Self {
        Self {
            name,
            partitions,
            compacted,
        }
    }

    /// An append-only topic.
    pub const fn log(name: &'static str, partitions: i32) -> Self {
        Self {
            name,
            partitions,
            compacted: false,
        }
    }

    /// A compacted topic.
    pub const fn compacted(name: &'static str, partitions: i32) -> Self {
        Self {
            name,
            partitions,
            compacted: true,
        }
    }
}

/// Creates the topics that do not exist yet (with the configured prefix); existing ones
/// are left as they are.
pub async fn ensure_topics(config: &KafkaConfig, topics: &[TopicSpec]) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = config
        .client_config("ocop-admin")
        .create()
        .context("create kafka admin client")?;
    let names: Vec<String> = topics
        .iter()
        .map(|topic| config.topic(topic.name))
        .collect();
    let new_topics: Vec<NewTopic<'_>> = topics
        .iter()
        .zip(&names)
        .map(|(topic, name)| {
            let new = NewTopic::new(name, topic.partitions, TopicReplication::Fixed(1));
            if topic.compacted {
                new.set("cleanup.policy", "compact")
            } else {
                new
            }
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = admin
        .create_topics(&new_topics, &options)
        .await
        .context("create topics")?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => anyhow::bail!("create topic {name}: {code}"),
        }
    }
    Ok(())
}
