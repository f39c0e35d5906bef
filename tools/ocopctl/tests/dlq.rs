//! `ocopctl dlq replay` against the real broker.

use ocop_proto::contract::{consumer_groups::CATALOG_ORDERS, topics};
use std::{process::Command, time::Duration};

use ocop_events::{
    CloudEvent, KafkaConfig,
    topics::{TopicSpec, ensure_topics},
};
use ocop_testkit::{find_record, header, kafka_brokers, unique};
use rdkafka::{Message as _, message::Header};

#[tokio::test]
async fn replay_sends_dead_letters_back_to_their_topic_once_without_dlq_headers() {
    let prefix = format!("{}.", unique("t"));
    let mut kafka = KafkaConfig::plaintext(kafka_brokers());
    kafka.topic_prefix = prefix.clone();
    ensure_topics(
        &kafka,
        &[
            TopicSpec::log(topics::ORDERS.name, 1),
            TopicSpec::log(CATALOG_ORDERS.dead_letters.name, 1),
        ],
    )
    .await
    .unwrap();

    // A dead letter as the consumer loop writes it.
    let event = CloudEvent::new(
        "/ocop/test",
        "order-1",
        None,
        &prost_types::Duration {
            seconds: 5,
            nanos: 0,
        },
    );
    let mut headers = event.headers();
    for (key, value) in [
        (
            "dlq_original_topic",
            format!("{prefix}{}", topics::ORDERS.name),
        ),
        ("dlq_error", "catalog database unavailable".to_owned()),
    ] {
        headers = headers.insert(Header {
            key,
            value: Some(value.as_bytes()),
        });
    }
    let dead_letters = format!("{prefix}{}", CATALOG_ORDERS.dead_letters.name);
    ocop_testkit::produce(&dead_letters, "order-1", &event.data, headers).await;

    let replay = |kafka_prefix: String| {
        Command::new(env!("CARGO_BIN_EXE_ocopctl"))
            .args(["dlq", "replay", CATALOG_ORDERS.name, "--idle", "3s"])
            .args([
                "--kafka-brokers",
                &kafka_brokers(),
                "--kafka-topic-prefix",
                &kafka_prefix,
            ])
            .output()
            .unwrap()
    };
    let first = tokio::task::spawn_blocking({
        let prefix = prefix.clone();
        move || replay(prefix)
    })
    .await
    .unwrap();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(String::from_utf8_lossy(&first.stdout).contains("1 dead letters replayed"));

    let id = event.id.to_string();
    let replayed = find_record(
        &format!("{prefix}{}", topics::ORDERS.name),
        Duration::from_secs(30),
        |message| header(message, "ce_id").as_deref() == Some(id.as_str()),
    )
    .await;
    assert_eq!(replayed.payload(), Some(event.data.as_slice()));
    assert_eq!(
        header(&replayed, "ce_type").as_deref(),
        Some("google.protobuf.Duration")
    );
    assert!(
        header(&replayed, "dlq_error").is_none(),
        "dlq_* headers are stripped"
    );

    let second = tokio::task::spawn_blocking(move || replay(prefix))
        .await
        .unwrap();
    assert!(
        String::from_utf8_lossy(&second.stdout).contains("0 dead letters replayed"),
        "a replay is not repeated"
    );
}
