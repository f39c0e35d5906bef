//! Follows the saga from its events, not by polling: a consumer of the order and payment
//! topics, assigned at their high watermarks before the first order is placed (nothing
//! older is read, nothing newer is missed), with no consumer group membership and no
//! commits. Each event about one of our orders goes to the tracker, stamped with the
//! moment it was observed; what the shopper does about it goes to the shop.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::Context as _;
use ocop_events::{CloudEvent, KafkaConfig};
use ocop_proto::contract::topics;
use ocop_proto::{
    order::v1 as order,
    payment::v1::{self as payment, PaymentProvider},
};
use rdkafka::{
    Message as _, Offset, TopicPartitionList,
    consumer::{Consumer as _, StreamConsumer},
};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::{
    broker::{Broker, Partition},
    tracker::{Action, SagaEvent, Tracker},
};

/// Where the follower is: the offset of the last record read per partition.
pub type Positions = Arc<Mutex<HashMap<Partition, i64>>>;

#[derive(Debug)]
pub struct Follower {
    pub positions: Positions,
    /// The partitions followed and the offsets they were assigned at.
    pub start: BTreeMap<Partition, i64>,
    task: tokio::task::JoinHandle<()>,
}

impl Follower {
    /// Records behind the given high watermarks, over the followed partitions.
    pub fn lag(&self, highs: &BTreeMap<Partition, i64>) -> i64 {
        let positions = self.positions.lock().unwrap_or_else(|p| p.into_inner());
        self.start
            .iter()
            .map(|(partition, start)| {
                let next = positions.get(partition).map_or(*start, |last| last + 1);
                highs.get(partition).map_or(0, |high| (high - next).max(0))
            })
            .sum()
    }

    pub fn stop(&self) {
        self.task.abort();
    }
}

/// Assigns a consumer at the current end of the order and payment topics and follows
/// them until stopped.
pub async fn start(
    config: &KafkaConfig,
    broker: Arc<Broker>,
    run_id: &str,
    tracker: Arc<Tracker>,
    actions: mpsc::UnboundedSender<Action>,
) -> anyhow::Result<Follower> {
    let topics = [
        broker.topic(topics::ORDERS.name),
        broker.topic(topics::PAYMENTS.name),
    ];
    let start = tokio::task::spawn_blocking({
        let topics = topics.clone();
        move || -> anyhow::Result<BTreeMap<Partition, i64>> {
            let all = broker.platform_topics()?;
            let mut followed = BTreeMap::new();
            for topic in &topics {
                let partitions = all.get(topic).with_context(|| {
                    format!(
                        "the broker has no topic {topic}: is the platform running, and is \
                         --topic-prefix right?"
                    )
                })?;
                followed.insert(topic.clone(), partitions.clone());
            }
            broker.high_watermarks(&followed)
        }
    })
    .await
    .context("read the topics")??;

    let consumer: StreamConsumer = config
        .client_config("ocop-loadgen")
        .set("group.id", format!("ocop-loadgen-{run_id}"))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "latest")
        // Latency is measured when an event is seen: do not let the broker sit on a fetch.
        .set("fetch.wait.max.ms", "20")
        .create()
        .context("create the kafka consumer")?;
    let mut assignment = TopicPartitionList::new();
    for ((topic, partition), high) in &start {
        assignment
            .add_partition_offset(topic, *partition, Offset::Offset(*high))
            .context("assign a partition")?;
    }
    consumer
        .assign(&assignment)
        .context("assign the partitions")?;

    let positions: Positions = Arc::default();
    let task = tokio::spawn(follow(consumer, Arc::clone(&positions), tracker, actions));
    Ok(Follower {
        positions,
        start,
        task,
    })
}

async fn follow(
    consumer: StreamConsumer,
    positions: Positions,
    tracker: Arc<Tracker>,
    actions: mpsc::UnboundedSender<Action>,
) {
    let mut warned = false;
    loop {
        let message = match consumer.recv().await {
            Ok(message) => message,
            Err(err) => {
                if !warned {
                    eprintln!("ocop-loadgen: reading the saga's events failed: {err} (retrying)");
                    warned = true;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let at = Instant::now();
        positions.lock().unwrap_or_else(|p| p.into_inner()).insert(
            (message.topic().to_owned(), message.partition()),
            message.offset(),
        );
        let Ok(event) = CloudEvent::from_message(&message) else {
            continue;
        };
        if let Some((order_id, saga)) = decode(&event) {
            for action in tracker.observe(order_id, saga, at) {
                let _ = actions.send(action);
            }
        }
    }
}

fn system_time(timestamp: Option<(i64, i32)>) -> Option<SystemTime> {
    let (seconds, nanos) = timestamp?;
    Some(UNIX_EPOCH + Duration::new(u64::try_from(seconds).ok()?, u32::try_from(nanos).ok()?))
}

/// The order an event is about and what it says, for the events a shopper cares about.
pub fn decode(event: &CloudEvent) -> Option<(Uuid, SagaEvent)> {
    let (order_id, saga) = if event.is::<payment::PaymentInitiated>() {
        let message: payment::PaymentInitiated = event.decode().ok()?;
        (
            message.order_id,
            SagaEvent::PaymentInitiated {
                payment_id: message.payment_id.parse().ok()?,
                provider: PaymentProvider::try_from(message.provider)
                    .unwrap_or(PaymentProvider::Unspecified),
                expires_at: system_time(message.expires_at.map(|t| (t.seconds, t.nanos))),
            },
        )
    } else if event.is::<order::OrderConfirmed>() {
        let message: order::OrderConfirmed = event.decode().ok()?;
        (message.order_id, SagaEvent::Confirmed)
    } else if event.is::<order::OrderCancelled>() {
        let message: order::OrderCancelled = event.decode().ok()?;
        let reason = order::CancellationReason::try_from(message.reason)
            .map(|reason| {
                reason
                    .as_str_name()
                    .trim_start_matches("CANCELLATION_REASON_")
                    .to_ascii_lowercase()
            })
            .unwrap_or_else(|_| message.reason.to_string());
        (message.order_id, SagaEvent::Cancelled(reason))
    } else if event.is::<payment::PaymentSucceeded>() {
        let message: payment::PaymentSucceeded = event.decode().ok()?;
        (message.order_id, SagaEvent::PaymentSucceeded)
    } else if event.is::<payment::PaymentFailed>() {
        let message: payment::PaymentFailed = event.decode().ok()?;
        (message.order_id, SagaEvent::PaymentFailed)
    } else if event.is::<payment::PaymentExpired>() {
        let message: payment::PaymentExpired = event.decode().ok()?;
        (message.order_id, SagaEvent::PaymentExpired)
    } else {
        return None;
    };
    Some((order_id.parse().ok()?, saga))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_decode_to_what_the_shopper_sees() {
        let order_id = Uuid::now_v7();
        let payment_id = Uuid::now_v7();
        let initiated = CloudEvent::new(
            "/ocop/payment",
            order_id.to_string(),
            None,
            &payment::PaymentInitiated {
                order_id: order_id.to_string(),
                payment_id: payment_id.to_string(),
                provider: PaymentProvider::Zalopay as i32,
                amount_vnd: 150_000,
                ..Default::default()
            },
        );
        assert_eq!(
            decode(&initiated),
            Some((
                order_id,
                SagaEvent::PaymentInitiated {
                    payment_id,
                    provider: PaymentProvider::Zalopay,
                    expires_at: None
                }
            ))
        );
        let cancelled = CloudEvent::new(
            "/ocop/order",
            order_id.to_string(),
            None,
            &order::OrderCancelled {
                order_id: order_id.to_string(),
                reason: order::CancellationReason::PaymentExpired as i32,
                ..Default::default()
            },
        );
        assert_eq!(
            decode(&cancelled),
            Some((order_id, SagaEvent::Cancelled("payment_expired".into())))
        );
        let placed = CloudEvent::new(
            "/ocop/order",
            order_id.to_string(),
            None,
            &order::OrderPlaced::default(),
        );
        assert_eq!(decode(&placed), None);
    }

    #[test]
    fn timestamps_become_system_times() {
        assert_eq!(
            system_time(Some((10, 5))),
            Some(UNIX_EPOCH + Duration::new(10, 5))
        );
        assert_eq!(system_time(Some((-1, 0))), None);
        assert_eq!(system_time(None), None);
    }
}
