//! `ocopctl payment get|refund` run as a real process against a real payment service
//! (its sandbox gateway pays the order by itself).

use std::{process::Command, time::Duration};

use clap::Parser as _;
use ocop_events::CloudEvent;
use ocop_payment::{App, Config};
use ocop_proto::{
    order::v1 as order_pb,
    payment::v1::{self as pb, payment_service_client::PaymentServiceClient},
};
use ocop_testkit::{authorized, eventually, fresh_database_url, service_args, unique};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const SECRET: &str = "ocopctl-test-secret-ocopctl-test-secret";

/// Unix seconds a quarter of an hour from now.
fn deadline() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    i64::try_from(now).unwrap() + 900
}

fn ocopctl(payment: &str, args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_ocopctl"))
        .args(args)
        .env("OCOP_PAYMENT_ADDR", payment)
        .env("OCOP_AUTH_JWT_SECRET", SECRET)
        .env_remove("OCOP_TOKEN")
        .output()
        .expect("run ocopctl");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payment_refund_gives_money_back_once_per_key_and_payment_get_shows_it() {
    let prefix = format!("{}.", unique("ctl"));
    let mut args = service_args("payment", &fresh_database_url().await, &prefix, SECRET);
    args.extend([
        "--sandbox-secret=ocopctl-sandbox-secret-0123".to_owned(),
        "--sandbox-delay=100ms".to_owned(),
        "--payment-methods=sandbox".to_owned(),
    ]);
    let app = App::build(Config::try_parse_from(args).unwrap())
        .await
        .unwrap();
    let address = format!("http://{}", app.grpc_addr());
    let stop = CancellationToken::new();
    let running = tokio::spawn(app.run_until_stopped({
        let stop = stop.clone();
        async move { stop.cancelled().await }
    }));

    let order_id = Uuid::now_v7();
    let event = CloudEvent::new(
        "/ocop/order",
        order_id.to_string(),
        Some(format!("order/{order_id}")),
        &order_pb::PaymentRequested {
            order_id: order_id.to_string(),
            order_code: "OCOPCTL0001".into(),
            amount_vnd: 300_000,
            payment_method: order_pb::PaymentMethod::Sandbox as i32,
            deadline: Some(prost_types::Timestamp {
                seconds: deadline(),
                nanos: 0,
            }),
            occurred_at: None,
        },
    );
    let topic = format!("{prefix}ocop.orders.v1");
    ocop_testkit::produce(&topic, &event.key, &event.data, event.headers()).await;
    let client = PaymentServiceClient::connect(address.clone())
        .await
        .unwrap();
    eventually(
        "the sandbox to pay the order",
        Duration::from_secs(30),
        || {
            let mut client = client.clone();
            async move {
                let payment = client
                    .get_payment(authorized(
                        pb::GetPaymentRequest {
                            order_id: order_id.to_string(),
                        },
                        SECRET,
                        &["payment:read"],
                    ))
                    .await
                    .ok()?
                    .into_inner()
                    .payment?;
                (payment.status == pb::PaymentStatus::Succeeded as i32).then_some(())
            }
        },
    )
    .await;

    let order = order_id.to_string();
    let refund = [
        "payment",
        "refund",
        &order,
        "--amount",
        "100000",
        "--reason",
        "thiếu hàng",
        "--key",
        "ctl-1",
    ];
    let (ok, first, stderr) = ocopctl(&address, &refund);
    assert!(ok, "{stderr}");
    assert!(
        first.contains("SUCCEEDED") && first.contains("100.000"),
        "{first}"
    );
    let (ok, again, stderr) = ocopctl(&address, &refund);
    assert!(ok, "{stderr}");
    let refund_id = |out: &str| out.split_whitespace().nth(1).unwrap().to_owned();
    assert_eq!(
        refund_id(&first),
        refund_id(&again),
        "the same key, the same refund"
    );

    let (ok, shown, stderr) = ocopctl(&address, &["payment", "get", &order]);
    assert!(ok, "{stderr}");
    assert!(shown.contains("PARTIALLY_REFUNDED"), "{shown}");
    assert!(shown.contains(&refund_id(&first)), "{shown}");

    let (ok, _, stderr) = ocopctl(
        &address,
        &[
            "payment", "refund", &order, "--amount", "999999", "--reason", "x",
        ],
    );
    assert!(!ok, "more than was paid is refused");
    assert!(stderr.contains("amount_vnd"), "{stderr}");

    stop.cancel();
    running.await.unwrap().unwrap();
}
