//! The partner contract from the partner's side: the example in `tools/partner-example`
//! mirrors the whole seeded catalogue and follows an order to CONFIRMED, a full replay
//! changes nothing in its store, and no personal data ever reaches a public topic.

use std::{collections::HashMap, time::Duration};

use ocop_e2e::{Platform, SECRET, Settings, WAIT, place_request};
use ocop_partner_example::Config;
use ocop_proto::contract::topics::{PARTNER_ORDERS, PRODUCTS};
use ocop_proto::order::v1 as order;
use ocop_testkit::{eventually, fixtures::place_order, fresh_database_url, kafka_brokers, unique};
use rdkafka::{
    Message as _, Offset, TopicPartitionList,
    consumer::{BaseConsumer, Consumer as _},
};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

const SEED_FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../services/catalog/seed/catalog.toml"
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partner_mirrors_the_catalogue_follows_an_order_and_replays_idempotently() {
    let mut platform = Platform::start(Settings::default()).await;
    let seeded = seed_catalogue(&platform.catalog_addr);
    assert!(seeded >= 393, "the seed has only {seeded} products");

    let product = first_product(&mut platform).await;
    let placed = DistinctShopper::new()
        .place(&platform, &product, order::SalesChannel::Postmart)
        .await;
    platform
        .wait_for(&placed, order::OrderStatus::Confirmed)
        .await;

    // The partner, from an empty store and a new group.
    let store_url = fresh_database_url().await;
    let group = unique("partner.e2e");
    let partner = start_partner(&platform.prefix, &store_url, &group);
    let store = PgPool::connect(&store_url).await.unwrap();
    eventually("the whole catalogue mirrored", WAIT, || async {
        let mirrored: i64 = sqlx::query_scalar("SELECT count(*) FROM mirrored_products")
            .fetch_one(&store)
            .await
            .ok()?;
        (mirrored == seeded as i64).then_some(())
    })
    .await;
    eventually("the order followed to CONFIRMED", WAIT, || async {
        let status: Option<String> =
            sqlx::query_scalar("SELECT status FROM followed_orders WHERE id = $1")
                .bind(&placed)
                .fetch_optional(&store)
                .await
                .ok()?;
        (status.as_deref() == Some("ORDER_STATUS_CONFIRMED")).then_some(())
    })
    .await;
    wait_until_caught_up(&platform.prefix, &group).await;
    stop(partner).await;
    let before = store_contents(&store).await;

    // A replay of both topics from the beginning (a new group) into the same store.
    let replay_group = unique("partner.replay");
    let replay = start_partner(&platform.prefix, &store_url, &replay_group);
    wait_until_caught_up(&platform.prefix, &replay_group).await;
    stop(replay).await;
    assert_eq!(
        store_contents(&store).await,
        before,
        "a replay changed the partner's store"
    );

    platform.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_personal_data_reaches_a_public_topic() {
    let mut platform = Platform::start(Settings::default()).await;
    let product = platform.product(10).await;
    let shopper = DistinctShopper::new();
    let mut order_ids = Vec::new();
    // Orders through a partner channel and through the web shop.
    for channel in [order::SalesChannel::Postmart, order::SalesChannel::Web] {
        order_ids.push(shopper.place(&platform, &product, channel).await);
    }
    platform
        .wait_for(&order_ids[0], order::OrderStatus::Confirmed)
        .await;
    platform
        .wait_for(&order_ids[1], order::OrderStatus::Confirmed)
        .await;

    let mut seen_for_orders = 0;
    for logical in [PRODUCTS.name, PARTNER_ORDERS.name] {
        let topic = platform.topic(logical);
        let records = read_whole_topic(&topic);
        assert!(!records.is_empty(), "{topic} is empty");
        for (key, headers, value) in &records {
            let text = format!(
                "{key} {headers} {}",
                String::from_utf8_lossy(value.as_deref().unwrap_or_default())
            );
            for personal in shopper.personal_data() {
                assert!(
                    !text.contains(&personal),
                    "{topic} carries {personal:?} in record {key}"
                );
            }
            if order_ids.contains(key) {
                seen_for_orders += 1;
            }
        }
    }
    // Placed and confirmed for each order: the scan really covered them.
    assert!(
        seen_for_orders >= 4,
        "only {seen_for_orders} partner records for the orders"
    );
    platform.stop().await;
}

/// A shopper whose every personal detail is unique to one test run, so finding one of
/// them anywhere can only mean a leak.
struct DistinctShopper {
    name: String,
    phone_digits: String,
    email: String,
    street: String,
}

impl DistinctShopper {
    fn new() -> Self {
        let tag = uuid::Uuid::new_v4().simple().to_string();
        let digits: String = tag
            .bytes()
            .filter(u8::is_ascii_digit)
            .chain(std::iter::repeat(b'7'))
            .take(8)
            .map(char::from)
            .collect();
        Self {
            name: format!("Lưu Thị Riêng {}", &tag[..6]),
            phone_digits: format!("09{digits}"),
            email: format!("rieng.{}@example.vn", &tag[..10]),
            street: format!("{} ngõ Riêng Tư", &tag[..5]),
        }
    }

    /// Places an order of one `product_id` through `channel`; returns its id.
    async fn place(
        &self,
        platform: &Platform,
        product_id: &str,
        channel: order::SalesChannel,
    ) -> String {
        let mut request = place_request(&unique("pii"), product_id, 1);
        request.sales_channel = channel as i32;
        request.note = format!("Gọi {} trước khi giao", self.phone_digits);
        let customer = request.customer.as_mut().unwrap();
        customer.name = self.name.clone();
        customer.phone = self.phone_digits.clone();
        customer.email = self.email.clone();
        customer.address.as_mut().unwrap().street = self.street.clone();
        place_order(&platform.orders, request).await.order.id
    }

    /// Every form a detail could leak in (the phone also as +84…).
    fn personal_data(&self) -> Vec<String> {
        vec![
            self.name.clone(),
            self.phone_digits.clone(),
            self.phone_digits[1..].to_owned(),
            self.email.clone(),
            self.street.clone(),
        ]
    }
}

/// Seeds the catalogue with the real operator tool; returns how many products it holds.
fn seed_catalogue(catalog_addr: &str) -> usize {
    let bin_dir = std::env::var("OCOP_TEST_BIN_DIR").expect("OCOP_TEST_BIN_DIR (make test)");
    let output = std::process::Command::new(format!("{bin_dir}/ocopctl"))
        .args(["--catalog", catalog_addr, "--jwt-secret", SECRET])
        .args(["seed", "--file", SEED_FILE])
        .output()
        .expect("run ocopctl seed");
    assert!(
        output.status.success(),
        "ocopctl seed failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::read_to_string(SEED_FILE)
        .unwrap()
        .lines()
        .filter(|line| line.trim() == "[[products]]")
        .count()
}

async fn first_product(platform: &mut Platform) -> String {
    use ocop_proto::catalog::v1 as catalog;
    platform
        .catalog
        .list_products(catalog::ListProductsRequest {
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .products
        .remove(0)
        .id
}

struct RunningPartner {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

fn start_partner(prefix: &str, store_url: &str, group: &str) -> RunningPartner {
    let config = Config {
        brokers: kafka_brokers(),
        security_protocol: "plaintext".into(),
        sasl_username: None,
        sasl_password: None,
        ssl_ca_location: None,
        group: group.into(),
        topic_prefix: prefix.into(),
        database_url: store_url.into(),
    };
    let stop = CancellationToken::new();
    let task = tokio::spawn(ocop_partner_example::run(config, stop.clone()));
    RunningPartner { stop, task }
}

async fn stop(partner: RunningPartner) {
    partner.stop.cancel();
    tokio::time::timeout(WAIT, partner.task)
        .await
        .expect("the partner stops within WAIT")
        .unwrap()
        .expect("the partner stopped cleanly");
}

/// Waits until `group` has committed up to the end of every partition of both topics.
async fn wait_until_caught_up(prefix: &str, group: &str) {
    let topics: Vec<String> = [PRODUCTS.name, PARTNER_ORDERS.name]
        .iter()
        .map(|topic| format!("{prefix}{topic}"))
        .collect();
    let group = group.to_owned();
    eventually(&format!("{group} to catch up"), WAIT, || {
        let topics = topics.clone();
        let group = group.clone();
        async move {
            tokio::task::spawn_blocking(move || behind(&topics, &group) == Some(0))
                .await
                .unwrap()
                .then_some(())
        }
    })
    .await;
}

/// How many records `group` has yet to commit on `topics` (None: not known yet).
fn behind(topics: &[String], group: &str) -> Option<i64> {
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", kafka_brokers())
        .set("group.id", group)
        .create()
        .ok()?;
    let timeout = Duration::from_secs(5);
    let mut partitions = TopicPartitionList::new();
    let mut ends = HashMap::new();
    for topic in topics {
        let metadata = consumer.fetch_metadata(Some(topic), timeout).ok()?;
        for partition in metadata.topics().first()?.partitions() {
            let (_, high) = consumer
                .fetch_watermarks(topic, partition.id(), timeout)
                .ok()?;
            partitions.add_partition(topic, partition.id());
            ends.insert((topic.clone(), partition.id()), high);
        }
    }
    let committed = consumer.committed_offsets(partitions, timeout).ok()?;
    let mut behind = 0;
    for element in committed.elements() {
        let high = ends[&(element.topic().to_owned(), element.partition())];
        let at = match element.offset() {
            Offset::Offset(offset) => offset,
            _ if high == 0 => 0,
            _ => return None,
        };
        // The local broker sometimes reports a high watermark a record or two below
        // the offset after the last record delivered; past the end is caught up.
        behind += (high - at).max(0);
    }
    Some(behind)
}

/// Both tables of the partner's store, as text, for comparison.
async fn store_contents(store: &PgPool) -> (Vec<String>, Vec<String>, i64) {
    let products = sqlx::query_scalar("SELECT row(p.*)::text FROM mirrored_products p ORDER BY id")
        .fetch_all(store)
        .await
        .unwrap();
    let orders = sqlx::query_scalar("SELECT row(o.*)::text FROM followed_orders o ORDER BY id")
        .fetch_all(store)
        .await
        .unwrap();
    let applied = sqlx::query_scalar("SELECT count(*) FROM applied_events")
        .fetch_one(store)
        .await
        .unwrap();
    (products, orders, applied)
}

/// A record as (key, headers as text, value).
fn text_of(message: &rdkafka::message::BorrowedMessage<'_>) -> (String, String, Option<Vec<u8>>) {
    use rdkafka::message::Headers as _;
    let headers = message
        .headers()
        .map(|headers| {
            headers
                .iter()
                .map(|header| {
                    format!(
                        "{}={}",
                        header.key,
                        String::from_utf8_lossy(header.value.unwrap_or_default())
                    )
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    (
        String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned(),
        headers,
        message.payload().map(<[u8]>::to_vec),
    )
}

/// Every record of `topic` up to its current end: (key, headers as text, value).
fn read_whole_topic(topic: &str) -> Vec<(String, String, Option<Vec<u8>>)> {
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", kafka_brokers())
        .set("group.id", unique("scan"))
        .create()
        .unwrap();
    let timeout = Duration::from_secs(10);
    let metadata = consumer.fetch_metadata(Some(topic), timeout).unwrap();
    let mut assignment = TopicPartitionList::new();
    // Per partition, the offset its end is at; a compacted topic may skip offsets, so
    // a partition is done once a record at or past its end - 1 is read.
    let mut ends = HashMap::new();
    for partition in metadata.topics()[0].partitions() {
        let (low, high) = consumer
            .fetch_watermarks(topic, partition.id(), timeout)
            .unwrap();
        if high > low {
            ends.insert(partition.id(), high);
        }
        assignment
            .add_partition_offset(topic, partition.id(), Offset::Offset(low))
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let mut records = Vec::new();
    let deadline = std::time::Instant::now() + WAIT;
    // The local broker may report an end a record or two early: once every partition
    // is at its end, go on until the topic has been quiet for a second.
    let mut quiet = false;
    while !(ends.is_empty() && quiet) {
        assert!(
            std::time::Instant::now() < deadline,
            "{topic}: partitions {:?} not read to the end",
            ends.keys()
        );
        let Some(message) = consumer.poll(Duration::from_secs(1)) else {
            quiet = true;
            continue;
        };
        quiet = false;
        let message = message.unwrap();
        if ends
            .get(&message.partition())
            .is_some_and(|end| message.offset() + 1 >= *end)
        {
            ends.remove(&message.partition());
        }
        records.push(text_of(&message));
    }
    records
}
