//! `ocopctl audit` (the real binary) against a real platform: the books of a settled saga
//! pass, and its dead letters are listed with their reasons; books broken behind the
//! services' backs fail, naming what and where.

use ocop_proto::contract::{consumer_groups, topics};
use std::process::Command;

use ocop_e2e::{Platform, Settings};
use ocop_proto::order::v1::OrderStatus;
use ocop_testkit::{kafka_brokers, produce};
use rdkafka::message::{Header, OwnedHeaders};

/// Runs `ocopctl audit` on the platform's three databases (nothing in flight is left
/// out: the settle grace is zero) and its topics' dead letters.
fn audit(platform: &Platform) -> (bool, String) {
    let url = |service: &str| {
        platform
            .services
            .iter()
            .find(|(name, _)| *name == service)
            .map(|(_, running)| running.database_url.clone())
            .unwrap()
    };
    let bin_dir = std::env::var("OCOP_TEST_BIN_DIR")
        .expect("OCOP_TEST_BIN_DIR is not set: run the tests with `make test`");
    let output = Command::new(std::path::Path::new(&bin_dir).join("ocopctl"))
        .args(["audit", "--settle-grace=0s", "--dead-letters"])
        .arg(format!("--kafka-brokers={}", kafka_brokers()))
        .arg(format!("--kafka-topic-prefix={}", platform.prefix))
        .env("OCOP_CATALOG_DATABASE_URL", url("catalog"))
        .env("OCOP_ORDER_DATABASE_URL", url("order"))
        .env("OCOP_PAYMENT_DATABASE_URL", url("payment"))
        .env_remove("OCOP_DATABASE_URL")
        .output()
        .expect("run ocopctl audit");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// Runs `statement` with `$1` = `id` in a service's database, behind its back.
async fn execute(platform: &Platform, service: &str, statement: &'static str, id: &str) {
    let (_, running) = platform
        .services
        .iter()
        .find(|(name, _)| *name == service)
        .unwrap();
    let pool = sqlx::PgPool::connect(&running.database_url).await.unwrap();
    let changed = sqlx::query(statement)
        .bind(id)
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(changed.rows_affected(), 1, "{statement}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_passes_settled_books_and_names_what_breaks_them() {
    let mut platform = Platform::start(Settings::default()).await;
    let product = platform.product(10).await;
    let placed = platform.place(&product, 2).await;
    platform.wait_for(&placed.id, OrderStatus::Confirmed).await;
    platform.wait_for_stock(&product, (8, 0)).await;
    // The last snapshot round and the last events settle within moments; the audit
    // reads only the databases, which the waits above have seen settled.

    let (passed, report) = audit(&platform);
    assert!(passed, "settled books fail the audit:\n{report}");
    assert!(!report.contains("FAIL"), "{report}");
    assert!(
        report.contains("a paid order has one succeeded payment for its total"),
        "{report}"
    );
    assert!(report.contains("dead letters: none"), "{report}");

    // A dead letter, as a consumer that gave up writes it: listed with its reason, and
    // not a broken invariant (an operator looks at it and replays it).
    let dead_letters = format!(
        "{}{}",
        platform.prefix,
        consumer_groups::CATALOG_ORDERS.dead_letters.name
    );
    let headers = [
        ("ce_type", "ocop.order.v1.OrderPlaced"),
        ("dlq_original_topic", topics::ORDERS.name),
        ("dlq_attempts", "5"),
        ("dlq_error", "reservation failed: the audit test's reason"),
    ]
    .into_iter()
    .fold(OwnedHeaders::new(), |headers, (key, value)| {
        headers.insert(Header {
            key,
            value: Some(value),
        })
    });
    produce(&dead_letters, &placed.id, b"payload", headers).await;
    let (passed, report) = audit(&platform);
    assert!(passed, "a dead letter fails the audit:\n{report}");
    assert!(
        report.contains(&format!("dead letters: 1 ({dead_letters} 1)")),
        "{report}"
    );
    assert!(
        report.contains("ocop.order.v1.OrderPlaced")
            && report.contains("from ocop.orders.v1 after 5 attempt(s): reservation failed: the audit test's reason"),
        "{report}"
    );

    // Stock reserved for nobody, and a capture that lost part of the money.
    execute(
        &platform,
        "catalog",
        "UPDATE stock SET reserved = reserved + 1 WHERE product_id = $1::uuid",
        &product,
    )
    .await;
    execute(
        &platform,
        "payment",
        "UPDATE payment_intents SET captured_vnd = captured_vnd - 1000 WHERE order_id = $1::uuid",
        &placed.id,
    )
    .await;
    let (passed, report) = audit(&platform);
    assert!(!passed, "broken books pass the audit:\n{report}");
    for broken in [
        "stock is never negative and reserved is what the held reservations hold",
        "a paid order has one succeeded payment for its total",
        "the payment ledger balances",
    ] {
        assert!(
            report.contains(&format!("\n{broken}:\n")),
            "{broken} is not reported broken:\n{report}"
        );
    }
    assert!(report.contains(&product), "{report}");
    assert!(report.contains(&placed.id), "{report}");
    assert!(report.contains("invariants broken"), "{report}");
    platform.stop().await;
}
