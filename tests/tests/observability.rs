//! What an operator runs on: the alert rules and the dashboard only name metrics the
//! services really export, a saga run (with the trouble the alerts are about) drives
//! every metric an alert uses above zero, and the logs of that run hold no personal
//! data or secrets.
//!
//! The four services run as real processes on a broker of the test's own, so the test
//! can pause one of them or the broker itself.

use std::{
    collections::{HashMap, HashSet},
    time::{Duration, SystemTime},
};

use ocop_e2e::{
    PAYMENT_PROVIDERS, SECRET, WAIT, place_request,
    processes::{Options, ProcessPlatform, SANDBOX_SECRET, SERVICES},
};
use ocop_payment_schemes::{Secret, vietqr};
use ocop_proto::{
    catalog::v1::{self as catalog},
    order::v1::{self as order, order_service_client::OrderServiceClient},
};
use ocop_testkit::{
    PrivateBroker, authorized, eventually,
    fixtures::{SHOPPER_PERSONAL_DATA, place_order, seed_product, wait_for_status},
    unique,
};
use rdkafka::producer::{FutureProducer, FutureRecord};

const RULES: &str = include_str!("../../deploy/k8s/monitoring/prometheus-rules.yaml");
const DASHBOARD: &str = include_str!("../../deploy/k8s/monitoring/dashboards/ocop-saga.json");

/// Alert metrics that are legitimately zero after a healthy catch-up: consumer lag is
/// only above zero while a consumer is behind, which `ocop-events`' test
/// `lag_gauge_shows_a_consumer_behind_its_topic_and_returns_to_zero` drives and checks.
const ZERO_WHEN_HEALTHY: &[&str] = &["ocop_consumer_lag"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saga_run_drives_every_alerted_metric_and_logs_nothing_personal() {
    let broker = PrivateBroker::start().await;
    let brokers = format!("--kafka-brokers={}", broker.brokers());
    let platform = ProcessPlatform::start(
        "observe",
        Options {
            env: vec![("RUST_LOG".to_owned(), "info".to_owned())],
            flags: SERVICES
                .into_iter()
                .map(|name| {
                    let mut flags = vec![brokers.clone()];
                    if name == "order" {
                        // Short, for the stuck-saga steps; long enough for the paid ones.
                        flags.push("--payment-ttl=4s".to_owned());
                        flags.push("--pending-overdue-after=1s".to_owned());
                    }
                    (name, flags)
                })
                .collect(),
        },
    )
    .await;
    let (mut catalog, orders) = platform.clients().await;
    let product_id = seed_product(&mut catalog, SECRET, 10, 150_000).await;
    // Alert metrics seen above zero; a gauge may be back at zero by the final scrape.
    let mut seen = HashSet::new();

    // The happy path through every provider (each signs with its own keys): paid,
    // confirmed, the shopper told.
    let mut paid = Vec::new();
    for method in [
        order::PaymentMethod::Vietqr,
        order::PaymentMethod::Vnpay,
        order::PaymentMethod::Momo,
        order::PaymentMethod::Zalopay,
    ] {
        paid.push(place(&orders, &unique("observe-paid"), &product_id, method).await);
    }
    for order_id in &paid {
        wait_for_status(
            &orders,
            SECRET,
            order_id,
            order::OrderStatus::Confirmed,
            WAIT,
        )
        .await;
    }

    // A bank reports money taken that nothing can apply: a correctly signed VietQR
    // transfer notification, but a day old. It is refused and flagged for an operator.
    send_stale_vietqr_transfer(&platform).await;
    seen.insert(metric_above_zero(&platform, "payment", "ocop_callbacks_flagged_total").await);

    // A stuck saga: the payment service stands still past the order's payment deadline.
    platform.process("payment").pause();
    let stuck = place(
        &orders,
        "observe-stuck",
        &product_id,
        order::PaymentMethod::Sandbox,
    )
    .await;
    wait_for_status(
        &orders,
        SECRET,
        &stuck,
        order::OrderStatus::AwaitingPayment,
        WAIT,
    )
    .await;
    seen.insert(metric_above_zero(&platform, "order", "ocop_orders_past_payment_deadline").await);
    platform.process("payment").resume();
    // Once back, the payment service expires the overdue payment and the order cancels.
    wait_for_status(&orders, SECRET, &stuck, order::OrderStatus::Cancelled, WAIT).await;

    // A poison record on the orders topic: every consumer of it dead-letters it.
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", broker.brokers())
        .create()
        .unwrap();
    producer
        .send(
            FutureRecord::to(&format!("{}ocop.orders.v1", platform.prefix))
                .key("poison")
                .payload(&b"not a cloudevent"[..]),
            Duration::from_secs(10),
        )
        .await
        .expect("produce the poison record");
    seen.insert(metric_above_zero(&platform, "catalog", "ocop_consumer_dead_letters_total").await);

    // A broker outage: a stock change waits in the catalog's outbox, growing older.
    broker.freeze();
    catalog
        .adjust_stock(authorized(
            catalog::AdjustStockRequest {
                product_id: product_id.clone(),
                delta: 1,
                reason: "kiểm kê".into(),
            },
            SECRET,
            &["catalog:write"],
        ))
        .await
        .unwrap();
    seen.insert(metric_above_zero(&platform, "catalog", "ocop_outbox_oldest_age_seconds").await);
    // An order placed meanwhile stays PENDING: its OrderPlaced cannot reach the catalog.
    place(
        &orders,
        "observe-pending",
        &product_id,
        order::PaymentMethod::Sandbox,
    )
    .await;
    seen.insert(metric_above_zero(&platform, "order", "ocop_orders_pending_overdue").await);
    let mut scraped = HashMap::new();
    for service in SERVICES {
        scraped.extend(samples(&platform.scrape(service).await));
    }
    broker.thaw();

    let logs = platform.stop().await;

    // Every metric the rules and the dashboard name is exported; every metric an alert
    // fires on was above zero at some point of the run.
    let alerted = metric_names(&rule_expressions(RULES).join("\n"));
    assert!(alerted.len() >= 5, "too few alert metrics: {alerted:?}");
    let dashboard: serde_json::Value = serde_json::from_str(DASHBOARD).unwrap();
    let charted = metric_names(&dashboard_expressions(&dashboard).join("\n"));
    for name in alerted.iter().chain(&charted) {
        assert!(
            scraped.keys().any(|(metric, _)| metric == name),
            "{name} is in the rules or the dashboard, but no service exports it"
        );
    }
    for name in &alerted {
        if ZERO_WHEN_HEALTHY.contains(&name.as_str()) {
            continue;
        }
        assert!(
            seen.contains(name)
                || scraped
                    .iter()
                    .any(|((metric, _), value)| metric == name && *value > 0.0),
            "{name} stayed at zero through the run"
        );
    }

    // The logs: written (and about this order), with trace ids, without personal data
    // or secrets.
    let placed_line = logs["order"]
        .lines()
        .find(|line| line.contains(&paid[0]) && line.contains("order placed"))
        .unwrap_or_else(|| panic!("no 'order placed' line for {}:\n{}", paid[0], logs["order"]));
    assert!(placed_line.contains("\"trace_id\""), "{placed_line}");
    // The provider keys: the values of the `--…-secret`, `--…-key…` flags.
    let provider_keys = PAYMENT_PROVIDERS
        .iter()
        .filter_map(|flag| flag.split_once('='))
        .filter(|(name, _)| name.contains("secret") || name.contains("key"))
        .map(|(_, value)| value);
    let secrets: Vec<&str> = SHOPPER_PERSONAL_DATA
        .iter()
        .copied()
        .chain([SANDBOX_SECRET, SECRET])
        .chain(provider_keys)
        .collect();
    assert!(secrets.len() >= 14, "{secrets:?}");
    for (service, log) in &logs {
        assert!(!log.is_empty(), "{service} logged nothing at info");
        for secret in &secrets {
            assert!(
                !log.contains(secret),
                "{service}'s log contains {secret:?}:\n{}",
                log.lines().find(|line| line.contains(secret)).unwrap()
            );
        }
    }
}

/// POSTs a VietQR transfer notification signed with the platform's webhook secret and
/// timestamped a day ago.
async fn send_stale_vietqr_transfer(platform: &ProcessPlatform) {
    let setting = |flag: &str| {
        PAYMENT_PROVIDERS
            .iter()
            .find_map(|arg| arg.strip_prefix(flag))
            .unwrap_or_else(|| panic!("{flag} is not among PAYMENT_PROVIDERS"))
    };
    let body = vietqr::Notification {
        transaction_id: unique("FT-STALE"),
        account_number: setting("--vietqr-account-number=").to_owned(),
        amount: 150_000,
        currency: "VND".to_owned(),
        description: "OCOPSTALE".to_owned(),
    }
    .to_bytes();
    let day_ago = SystemTime::now() - Duration::from_secs(24 * 3600);
    let timestamp = day_ago
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    let secret = Secret::parse(setting("--vietqr-webhook-secret=")).unwrap();
    reqwest::Client::new()
        .post(format!("{}/callbacks/vietqr", platform.http_url("payment")))
        .header("content-type", "application/json")
        .header(vietqr::TIMESTAMP_HEADER, &timestamp)
        .header(
            vietqr::SIGNATURE_HEADER,
            vietqr::sign_webhook(&secret, &timestamp, &body),
        )
        .body(body)
        .send()
        .await
        .expect("the payment service answers the bank");
}

async fn place(
    orders: &OrderServiceClient<tonic::transport::Channel>,
    key: &str,
    product_id: &str,
    method: order::PaymentMethod,
) -> String {
    let mut request = place_request(key, product_id, 1);
    request.payment_method = method as i32;
    place_order(orders, request).await.order.id
}

/// Waits until some series of `metric` on `service`'s `/metrics` is above zero; returns
/// the metric's name.
async fn metric_above_zero(platform: &ProcessPlatform, service: &str, metric: &str) -> String {
    eventually(
        &format!("{metric} above zero on {service}"),
        WAIT,
        || async {
            samples(&platform.scrape(service).await)
                .into_iter()
                .any(|((name, _), value)| name == metric && value > 0.0)
                .then_some(())
        },
    )
    .await;
    metric.to_owned()
}

/// Prometheus text → `(metric name, labels) → value`.
fn samples(text: &str) -> HashMap<(String, String), f64> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (name, labels) = match series.split_once('{') {
                Some((name, labels)) => (name, labels.trim_end_matches('}')),
                None => (series, ""),
            };
            Some(((name.to_owned(), labels.to_owned()), value.parse().ok()?))
        })
        .collect()
}

/// The `expr` of every rule, including folded (`>-`) multi-line ones.
fn rule_expressions(rules: &str) -> Vec<String> {
    let mut expressions = Vec::new();
    let mut lines = rules.lines().peekable();
    while let Some(line) = lines.next() {
        let Some(rest) = line.trim_start().strip_prefix("expr:") else {
            continue;
        };
        let indent = line.len() - line.trim_start().len();
        let mut expression = rest.trim().to_owned();
        if expression.starts_with('>') || expression.starts_with('|') {
            expression.clear();
            while let Some(next) = lines.peek() {
                if next.len() - next.trim_start().len() <= indent {
                    break;
                }
                expression.push_str(next.trim());
                expression.push(' ');
                lines.next();
            }
        }
        expressions.push(expression);
    }
    expressions
}

/// The `expr` of every dashboard panel target.
fn dashboard_expressions(dashboard: &serde_json::Value) -> Vec<String> {
    dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|panel| panel["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|target| target["expr"].as_str().map(str::to_owned))
        .collect()
}

/// The project's metric names (`ocop_…`) an expression uses.
fn metric_names(expressions: &str) -> Vec<String> {
    let mut names: Vec<String> = expressions
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|token| token.starts_with("ocop_"))
        .map(str::to_owned)
        .collect();
    names.sort();
    names.dedup();
    names
}

#[test]
fn rule_expressions_are_read_whole() {
    let rules = "      - alert: A\n        expr: >-\n          sum(rate(ocop_a_total[5m]))\n            / sum(rate(ocop_b_total[5m])) > 0.2\n        for: 5m\n      - alert: B\n        expr: max(ocop_c) > 0\n";
    let expressions = rule_expressions(rules);
    assert_eq!(expressions.len(), 2, "{expressions:?}");
    assert_eq!(
        metric_names(&expressions.join("\n")),
        ["ocop_a_total", "ocop_b_total", "ocop_c"]
    );
}
