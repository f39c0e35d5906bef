//! The harness both payment test binaries share: the service started for real (port 0,
//! its own database and topic prefix on the test broker), its gRPC client, the order
//! events it consumes, and the ledger check every test ends with. Each test binary adds
//! its own helpers in an `impl TestPayment` block of its own.

// Each test binary uses a part of the harness only.
#![allow(dead_code)]

use std::time::Duration;

use clap::Parser as _;
use ocop_events::CloudEvent;
use ocop_payment::{App, Config, service::Payments};
use ocop_proto::payment::v1::{self as pb, payment_service_client::PaymentServiceClient};
use ocop_testkit::{eventually, fresh_database_url, unique};
use tokio::sync::oneshot;
use tonic::{Request, transport::Channel};
use uuid::Uuid;

pub const JWT_SECRET: &str = "payment-test-secret-payment-test-secret";
pub const SANDBOX_SECRET: &str = "sandbox-test-secret-0123456789";
pub const WAIT: Duration = Duration::from_secs(30);
/// The sandbox never settles a payment by itself: the test does.
pub const NEVER: &[&str] = &["--sandbox-outcome=never"];

pub struct TestPayment {
    pub client: PaymentServiceClient<Channel>,
    pub payments: Payments,
    pub http: String,
    pub prefix: String,
    pub database_url: String,
    shutdown: Option<oneshot::Sender<()>>,
    running: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// Starts the service on a fresh database and a topic prefix of its own.
pub async fn spawn_payment(extra: &[&str]) -> TestPayment {
    let database_url = fresh_database_url().await;
    let prefix = format!("{}.", unique("t"));
    spawn_payment_on(&database_url, &prefix, extra).await
}

/// Starts the service on an existing database and topic prefix (a restart).
pub async fn spawn_payment_on(database_url: &str, prefix: &str, extra: &[&str]) -> TestPayment {
    let mut args = ocop_testkit::service_args("payment", database_url, prefix, JWT_SECRET);
    args.extend([
        format!("--sandbox-secret={SANDBOX_SECRET}"),
        "--expiry-sweep-interval=100ms".to_owned(),
    ]);
    // No provider has credentials here unless `extra` gives them: the sandbox's method.
    if !extra.iter().any(|arg| arg.starts_with("--payment-methods")) {
        args.push("--payment-methods=sandbox".to_owned());
    }
    args.extend(extra.iter().map(|arg| (*arg).to_owned()));
    let config = Config::try_parse_from(args).expect("test config parses");
    let app = App::build(config).await.expect("payment builds");
    let grpc_addr = app.grpc_addr();
    let http = format!("http://{}", app.http_addr());
    let payments = app.payments();
    let (shutdown, stopped) = oneshot::channel();
    let running = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    let client = PaymentServiceClient::connect(format!("http://{grpc_addr}"))
        .await
        .expect("connect to payment");
    TestPayment {
        client,
        payments,
        http,
        prefix: prefix.to_owned(),
        database_url: database_url.to_owned(),
        shutdown: Some(shutdown),
        running,
    }
}

/// `message` with a bearer token the service accepts, granting `scopes`.
pub fn with_token<T>(message: T, scopes: &[&str]) -> Request<T> {
    ocop_testkit::authorized(message, JWT_SECRET, scopes)
}

impl TestPayment {
    /// Publishes an order event where the service consumes them.
    pub async fn publish(&self, event: &CloudEvent) {
        let topic = format!("{}ocop.orders.v1", self.prefix);
        ocop_testkit::produce(&topic, &event.key, &event.data, event.headers()).await;
    }

    pub async fn get_payment(&self, order_id: Uuid) -> Result<pb::Payment, tonic::Status> {
        self.client
            .clone()
            .get_payment(with_token(
                pb::GetPaymentRequest {
                    order_id: order_id.to_string(),
                },
                &["payment:read"],
            ))
            .await
            .map(|response| response.into_inner().payment.expect("payment is set"))
    }

    /// Waits for the order's payment to satisfy `condition`.
    pub async fn wait_payment(
        &self,
        order_id: Uuid,
        what: &str,
        condition: impl Fn(&pb::Payment) -> bool,
    ) -> pb::Payment {
        eventually(what, WAIT, || async {
            let payment = self.get_payment(order_id).await.ok()?;
            condition(&payment).then_some(payment)
        })
        .await
    }

    pub async fn outbox_count(&self, ce_type: &str) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM outbox WHERE ce_type = $1")
            .bind(ce_type)
            .fetch_one(self.payments.pool())
            .await
            .unwrap()
    }

    /// Checks the ledger's invariants, then stops the service.
    pub async fn stop(mut self) {
        ocop_payment::ledger::assert_balanced(self.payments.pool()).await;
        let _ = self.shutdown.take().unwrap().send(());
        tokio::time::timeout(WAIT, self.running)
            .await
            .expect("payment stops within the grace period")
            .expect("payment task did not panic")
            .expect("payment stopped cleanly");
    }
}
