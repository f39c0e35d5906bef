//! A whole ocop-market platform for one test: the four services, each on port 0 with a
//! fresh database, sharing the test broker under a topic prefix of the test's own, so
//! tests running side by side never see each other's events.

use std::time::Duration;

use clap::Parser as _;
use ocop_proto::{
    catalog::v1::{self as catalog, catalog_service_client::CatalogServiceClient},
    notification::v1::notification_service_client::NotificationServiceClient,
    order::v1::{self as order, order_service_client::OrderServiceClient},
};
pub use ocop_testkit::fixtures::place_request;
use ocop_testkit::{
    CALLBACK_LIMITS_OFF, EVERY_PAYMENT_METHOD, ORDER_LIMITS_OFF, eventually,
    fixtures::{PlacedOrder, place_order, seed_product, wait_for_status},
    fresh_database_url, service_args, unique,
};
use tokio_util::sync::CancellationToken;
use tonic::{Request, transport::Channel};

pub mod processes;

/// How long a service process may take to exit after SIGTERM: its drain is bounded by
/// `SHUTDOWN_GRACE` (10 s by default) plus the consumers' and telemetry's goodbyes.
const EXIT_WAIT: Duration = Duration::from_secs(30);

/// The token secret every service of a test platform shares.
pub const SECRET: &str = "e2e-test-secret-e2e-test-secret-e2e!!";
/// Every real provider configured, their endpoints left to the sandbox gateway, which
/// plays them (orders paid by VietQR, VNPay, MoMo or ZaloPay settle through each
/// provider's own scheme).
pub const PAYMENT_PROVIDERS: &[&str] = &[
    "--vnpay-tmn-code=E2ETEST1",
    "--vnpay-hash-secret=e2e-vnpay-hash-secret-0123456789",
    "--momo-partner-code=MOMOE2E",
    "--momo-access-key=E2EACCESSKEY",
    "--momo-secret-key=e2e-momo-secret-key-0123456789",
    "--zalopay-app-id=2553",
    "--zalopay-key1=e2e-zalopay-key1-0123456789",
    "--zalopay-key2=e2e-zalopay-key2-0123456789",
    "--vietqr-bank-bin=970436",
    "--vietqr-account-number=0011001234567",
    "--vietqr-webhook-secret=e2e-vietqr-webhook-0123456789",
];
/// How long a saga step may take before a test gives up.
pub const WAIT: Duration = Duration::from_secs(60);

/// How the sandbox gateway settles payments in a test platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
    Never,
}

impl Outcome {
    fn flag(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Never => "never",
        }
    }
}

/// Knobs of a test platform.
#[derive(Debug, Clone)]
pub struct Settings {
    pub outcome: Outcome,
    pub payment_ttl: &'static str,
    /// Run the order service as a real process (the `order` binary) that a test may
    /// SIGKILL, instead of in-process.
    pub order_as_process: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            outcome: Outcome::Success,
            payment_ttl: "5m",
            order_as_process: false,
        }
    }
}

/// A service binary run as a child process of the test.
pub struct ServiceProcess {
    binary: &'static str,
    args: Vec<String>,
    env: Vec<(String, String)>,
    log: std::path::PathBuf,
    child: Option<std::process::Child>,
}

/// The order service as a process (see `Settings::order_as_process`).
pub type OrderProcess = ServiceProcess;

impl ServiceProcess {
    /// `binary` (e.g. `order`) with `args`, and `env` on top of the test's environment.
    pub fn new(binary: &'static str, args: Vec<String>, env: Vec<(String, String)>) -> Self {
        Self {
            binary,
            args,
            env,
            log: std::env::temp_dir().join(format!("{}.{binary}.log", unique("e2e"))),
            child: None,
        }
    }

    fn binary_path(&self) -> std::path::PathBuf {
        let dir = std::env::var("OCOP_TEST_BIN_DIR").unwrap_or_else(|_| {
            panic!("OCOP_TEST_BIN_DIR is not set: run the tests with `make test`, which builds the service binaries")
        });
        std::path::Path::new(&dir).join(self.binary)
    }

    /// Starts the process and waits until its gRPC port answers.
    pub async fn start(&mut self, grpc_port: u16) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        // The test's own `env` comes last, so a test may choose the log level.
        let child = std::process::Command::new(self.binary_path())
            .args(&self.args)
            .env(
                "RUST_LOG",
                std::env::var("OCOP_TEST_SERVICE_LOG").unwrap_or_else(|_| "warn".to_owned()),
            )
            .envs(self.env.iter().map(|(name, value)| (name, value)))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start the service binary");
        self.child = Some(child);
        eventually("the service process to listen", WAIT, || async move {
            tokio::net::TcpStream::connect(("127.0.0.1", grpc_port))
                .await
                .ok()
                .map(|_| ())
        })
        .await;
    }

    /// SIGKILL: no drain, no goodbye, offsets and rows as they happen to be.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("kill the service process");
            child.wait().expect("reap the service process");
        }
    }

    /// SIGTERM, then wait for a graceful exit (telemetry is flushed on the way out). A
    /// process still running after [`EXIT_WAIT`] is killed and the test fails with its
    /// log: a service that hangs in its drain must not hang the test run with it.
    pub fn terminate(&mut self) {
        self.signal("-TERM");
        if let Some(mut child) = self.child.take() {
            let deadline = std::time::Instant::now() + EXIT_WAIT;
            let exit = loop {
                if let Some(exit) = child.try_wait().expect("reap the service process") {
                    break exit;
                }
                if std::time::Instant::now() >= deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "{} did not exit within {EXIT_WAIT:?} of SIGTERM; its log:\n{}",
                        self.binary,
                        self.log_text()
                    );
                }
                std::thread::sleep(Duration::from_millis(50));
            };
            assert!(exit.success(), "{} exited with {exit}", self.binary);
        }
    }

    /// SIGSTOP: the process stands still (no handling, no timers) until [`Self::resume`].
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// SIGCONT after [`Self::pause`].
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        if let Some(child) = &self.child {
            let status = std::process::Command::new("kill")
                .args([signal, &child.id().to_string()])
                .status()
                .expect("run kill");
            assert!(status.success(), "kill {signal} {} failed", self.binary);
        }
    }

    /// Everything the process wrote to stdout and stderr so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        self.kill();
        if std::env::var_os("OCOP_TEST_SERVICE_LOG").is_none() {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

/// A free loopback port (for a process that must keep its port across restarts).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running service: how to stop it, and its database (to start it again).
pub struct Running {
    pub database_url: String,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Graceful stop (SIGTERM's path).
    pub async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(EXIT_WAIT, self.task)
            .await
            .expect("the service stops within EXIT_WAIT of its stop signal")
            .expect("service task")
            .expect("service stopped cleanly");
    }
}

/// The four services of one test.
pub struct Platform {
    pub prefix: String,
    pub settings: Settings,
    pub catalog: CatalogServiceClient<Channel>,
    pub orders: OrderServiceClient<Channel>,
    pub notifications: NotificationServiceClient<Channel>,
    pub catalog_addr: String,
    /// The payment service's gRPC address (refunds, payments).
    pub payment_addr: String,
    pub services: Vec<(&'static str, Running)>,
    pub spool: std::path::PathBuf,
    /// Set when `Settings::order_as_process` is, with its fixed gRPC port.
    pub order_process: Option<(OrderProcess, u16)>,
}

/// The flags every service takes, without the binary name.
pub fn common(prefix: &str, database_url: &str) -> Vec<String> {
    // The binary name is added by the caller (in-process) or not needed (a process).
    service_args("", database_url, prefix, SECRET).split_off(1)
}

fn spawn<F>(
    future: F,
) -> (
    CancellationToken,
    tokio::task::JoinHandle<anyhow::Result<()>>,
)
where
    F: FnOnce(CancellationToken) -> tokio::task::JoinHandle<anyhow::Result<()>>,
{
    let stop = CancellationToken::new();
    let task = future(stop.clone());
    (stop, task)
}

/// Starts the catalog on `database_url`; returns its gRPC address.
pub async fn start_catalog(prefix: &str, database_url: &str) -> (String, Running) {
    let mut args = vec!["catalog".to_owned()];
    args.extend(common(prefix, database_url));
    let app = ocop_catalog::App::build(ocop_catalog::Config::try_parse_from(args).unwrap())
        .await
        .unwrap();
    let address = format!("http://{}", app.grpc_addr());
    let (stop, task) =
        spawn(|stop| tokio::spawn(app.run_until_stopped(async move { stop.cancelled().await })));
    (
        address,
        Running {
            database_url: database_url.to_owned(),
            stop,
            task,
        },
    )
}

impl Platform {
    pub async fn start(settings: Settings) -> Self {
        let prefix = format!("{}.", unique("e2e"));
        let mut services = Vec::new();

        let (catalog_addr, running) = start_catalog(&prefix, &fresh_database_url().await).await;
        services.push(("catalog", running));

        let database_url = fresh_database_url().await;
        let mut args = common(&prefix, &database_url);
        args.push(format!("--catalog-url={catalog_addr}"));
        args.push(format!("--payment-ttl={}", settings.payment_ttl));
        args.push(EVERY_PAYMENT_METHOD.to_owned());
        args.extend(ORDER_LIMITS_OFF.iter().map(|flag| (*flag).to_owned()));
        let mut order_process = None;
        let order_addr = if settings.order_as_process {
            let port = free_port();
            args.retain(|arg| !arg.starts_with("--grpc-addr"));
            args.push(format!("--grpc-addr=127.0.0.1:{port}"));
            // Restarted, it rejoins its consumer group as the same static member.
            args.push("--kafka-group-instance-id=order".to_owned());
            let mut process = OrderProcess::new("order", args, Vec::new());
            process.start(port).await;
            order_process = Some((process, port));
            format!("http://127.0.0.1:{port}")
        } else {
            args.insert(0, "order".to_owned());
            let app = ocop_order::App::build(ocop_order::Config::try_parse_from(args).unwrap())
                .await
                .unwrap();
            let address = format!("http://{}", app.grpc_addr());
            let (stop, task) = spawn(|stop| {
                tokio::spawn(app.run_until_stopped(async move { stop.cancelled().await }))
            });
            services.push((
                "order",
                Running {
                    database_url,
                    stop,
                    task,
                },
            ));
            address
        };

        let database_url = fresh_database_url().await;
        let mut args = vec!["payment".to_owned()];
        args.extend(common(&prefix, &database_url));
        args.push("--sandbox-secret=e2e-sandbox-secret-e2e".into());
        args.push("--sandbox-delay=200ms".into());
        args.push(format!("--sandbox-outcome={}", settings.outcome.flag()));
        args.push("--expiry-sweep-interval=200ms".into());
        args.extend(CALLBACK_LIMITS_OFF.iter().map(|flag| (*flag).to_owned()));
        args.extend(PAYMENT_PROVIDERS.iter().map(|arg| (*arg).to_owned()));
        args.push(EVERY_PAYMENT_METHOD.to_owned());
        let app = ocop_payment::App::build(ocop_payment::Config::try_parse_from(args).unwrap())
            .await
            .unwrap();
        let payment_addr = format!("http://{}", app.grpc_addr());
        let (stop, task) = spawn(|stop| {
            tokio::spawn(app.run_until_stopped(async move { stop.cancelled().await }))
        });
        services.push((
            "payment",
            Running {
                database_url,
                stop,
                task,
            },
        ));

        let database_url = fresh_database_url().await;
        let spool = std::env::temp_dir().join(unique("e2e_spool"));
        let mut args = vec!["notification".to_owned()];
        args.extend(common(&prefix, &database_url));
        args.push(format!("--notification-spool-dir={}", spool.display()));
        let app =
            ocop_notification::App::build(ocop_notification::Config::try_parse_from(args).unwrap())
                .await
                .unwrap();
        let notification_addr = format!("http://{}", app.grpc_addr());
        let (stop, task) = spawn(|stop| {
            tokio::spawn(app.run_until_stopped(async move { stop.cancelled().await }))
        });
        services.push((
            "notification",
            Running {
                database_url,
                stop,
                task,
            },
        ));

        Self {
            prefix,
            settings,
            catalog: CatalogServiceClient::connect(catalog_addr.clone())
                .await
                .unwrap(),
            orders: OrderServiceClient::connect(order_addr).await.unwrap(),
            notifications: NotificationServiceClient::connect(notification_addr)
                .await
                .unwrap(),
            catalog_addr,
            payment_addr,
            services,
            spool,
            order_process,
        }
    }

    /// The broker-side name of a logical topic in this platform.
    pub fn topic(&self, logical: &str) -> String {
        format!("{}{logical}", self.prefix)
    }

    /// A product of a cooperative in Tiên Yên with `stock` units at 150.000 ₫.
    pub async fn product(&mut self, stock: i64) -> String {
        seed_product(&mut self.catalog, SECRET, stock, 150_000).await
    }

    /// (on hand, reserved) of a product.
    pub async fn stock(&mut self, product_id: &str) -> (i64, i64) {
        let product = self
            .catalog
            .get_product(catalog::GetProductRequest {
                id: product_id.into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .product
            .unwrap();
        (product.on_hand, product.reserved)
    }

    pub async fn place(&mut self, product_id: &str, quantity: i32) -> PlacedOrder {
        let key = uuid::Uuid::new_v4().to_string();
        place_order(&self.orders, place_request(&key, product_id, quantity)).await
    }

    pub async fn order(&mut self, order_id: &str) -> order::Order {
        self.orders
            .get_order(authorized(
                order::GetOrderRequest {
                    order_id: order_id.into(),
                    ..Default::default()
                },
                &["order:read"],
            ))
            .await
            .unwrap()
            .into_inner()
            .order
            .unwrap()
    }

    /// Waits until the order reaches `status`.
    pub async fn wait_for(&self, order_id: &str, status: order::OrderStatus) -> order::Order {
        wait_for_status(&self.orders, SECRET, order_id, status, WAIT).await
    }

    /// Waits until a product's stock is `(on_hand, reserved)`.
    pub async fn wait_for_stock(&self, product_id: &str, expected: (i64, i64)) {
        let client = self.catalog.clone();
        eventually(
            &format!("stock of {product_id} to be {expected:?}"),
            WAIT,
            || {
                let mut client = client.clone();
                let id = product_id.to_owned();
                async move {
                    let product = client
                        .get_product(catalog::GetProductRequest {
                            id,
                            ..Default::default()
                        })
                        .await
                        .ok()?
                        .into_inner()
                        .product?;
                    ((product.on_hand, product.reserved) == expected).then_some(())
                }
            },
        )
        .await
    }

    /// Stops every service gracefully.
    pub async fn stop(self) {
        for (_, running) in self.services {
            running.stop().await;
        }
        let _ = std::fs::remove_dir_all(&self.spool);
    }
}

/// A request with a bearer token granting `scopes`.
pub fn authorized<T>(message: T, scopes: &[&str]) -> Request<T> {
    ocop_testkit::authorized(message, SECRET, scopes)
}
