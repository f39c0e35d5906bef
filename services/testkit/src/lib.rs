//! Helpers for tests that run against the real PostgreSQL and the real broker started
//! by `make test` (see `tools/dev/stack.sh`). They panic with a clear message instead of
//! returning errors: a test either has its infrastructure or fails loudly.

pub mod fixtures;
pub mod stock_client;

use std::{future::Future, time::Duration};

use ocop_grpc_kit::auth::{Grant, TokenIssuer, audience};
use rdkafka::{
    ClientConfig, Message as _,
    consumer::{Consumer as _, StreamConsumer},
    message::{OwnedHeaders, OwnedMessage},
    producer::{FutureProducer, FutureRecord},
};
use sqlx::{Connection as _, PgConnection, PgPool};

/// The variable holding an administrative URL of the test PostgreSQL server.
pub const DATABASE_URL_VAR: &str = "OCOP_TEST_DATABASE_URL";
/// The variable holding the test broker's bootstrap address.
pub const KAFKA_BROKERS_VAR: &str = "OCOP_TEST_KAFKA_BROKERS";
/// The variable holding the broker binary, for tests that stop and restart a broker of
/// their own.
pub const BROKER_BIN_VAR: &str = "OCOP_TEST_BROKER_BIN";
/// The variable holding the broker storage URL that `make run` uses (e.g.
/// `sqlite://broker.db`), for tests of the stack as developers run it.
pub const RUN_BROKER_STORAGE_VAR: &str = "OCOP_TEST_RUN_BROKER_STORAGE";

/// The broker storage of `make run` (see [`RUN_BROKER_STORAGE_VAR`]).
pub fn run_broker_storage() -> String {
    required_var(RUN_BROKER_STORAGE_VAR)
}

fn required_var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the tests with `make test`, which starts PostgreSQL and the broker")
    })
}

/// A unique lower-case name with `prefix`, for databases, groups and keys.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

/// A new, empty database on the test server; returns its URL.
pub async fn fresh_database_url() -> String {
    let admin_url = required_var(DATABASE_URL_VAR);
    let name = unique("test");
    let mut admin = PgConnection::connect(&admin_url)
        .await
        .unwrap_or_else(|err| panic!("connect to test PostgreSQL at {admin_url}: {err}"));
    // `name` is generated here from a UUID: no outside input reaches the statement.
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .unwrap_or_else(|err| panic!("create database {name}: {err}"));
    let (base, _) = admin_url
        .rsplit_once('/')
        .expect("database URL ends with /<database>");
    let query = admin_url
        .split_once('?')
        .map(|(_, query)| format!("?{query}"))
        .unwrap_or_default();
    let base = base.split_once('?').map_or(base, |(base, _)| base);
    format!("{base}/{name}{query}")
}

/// A pool on a new, empty database.
pub async fn fresh_pool() -> PgPool {
    let url = fresh_database_url().await;
    PgPool::connect(&url)
        .await
        .unwrap_or_else(|err| panic!("connect to {url}: {err}"))
}

/// The test broker's bootstrap address.
pub fn kafka_brokers() -> String {
    required_var(KAFKA_BROKERS_VAR)
}

/// Polls `probe` every 50 ms until it yields a value; panics naming `what` after
/// `timeout`. Tests wait on conditions this way, never on fixed sleeps.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Reads `topic` from the beginning with a throw-away group until a record matches
/// `predicate`; panics after `timeout`.
pub async fn find_record(
    topic: &str,
    timeout: Duration,
    predicate: impl Fn(&OwnedMessage) -> bool,
) -> OwnedMessage {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka_brokers())
        .set("group.id", unique("test_reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("create test consumer");
    consumer
        .subscribe(&[topic])
        .expect("subscribe test consumer");
    let search = async {
        loop {
            match consumer.recv().await {
                Ok(message) => {
                    let message = message.detach();
                    if predicate(&message) {
                        return message;
                    }
                }
                Err(err) => eprintln!("test consumer on {topic}: {err}"),
            }
        }
    };
    tokio::time::timeout(timeout, search)
        .await
        .unwrap_or_else(|_| panic!("no matching record on {topic} within {timeout:?}"))
}

/// A header of a record as text.
pub fn header(message: &OwnedMessage, name: &str) -> Option<String> {
    use rdkafka::message::Headers as _;
    message
        .headers()?
        .iter()
        .find(|header| header.key == name)
        .and_then(|header| header.value)
        .map(|value| String::from_utf8_lossy(value).into_owned())
}

/// The record key as text.
pub fn key_text(message: &OwnedMessage) -> String {
    message
        .key()
        .map(|key| String::from_utf8_lossy(key).into_owned())
        .unwrap_or_default()
}

/// A broker of the test's own (the same binary as the shared one), which the test may
/// freeze (SIGSTOP: connections stay open, nothing is answered, as with a hung or
/// partitioned broker) and thaw again, keeping its state.
pub struct PrivateBroker {
    port: u16,
    child: std::process::Child,
    workdir: std::path::PathBuf,
}

impl PrivateBroker {
    /// Starts a broker keeping its state in memory on a free loopback port and waits
    /// until it listens.
    pub async fn start() -> Self {
        Self::start_with_storage("memory://tansu/").await
    }

    /// Starts a broker with the storage engine at `storage` (e.g. `sqlite://broker.db`),
    /// in a fresh folder of its own, where a relative storage path lands.
    pub async fn start_with_storage(storage: &str) -> Self {
        let workdir = std::env::temp_dir().join(unique("broker"));
        std::fs::create_dir_all(&workdir).expect("create the broker's folder");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("pick a free port")
            .port();
        let binary = required_var(BROKER_BIN_VAR);
        let url = format!("tcp://127.0.0.1:{port}");
        let child = std::process::Command::new(&binary)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", storage])
            .current_dir(&workdir)
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|err| panic!("start broker {binary}: {err}"));
        let broker = Self {
            port,
            child,
            workdir,
        };
        let address = broker.brokers();
        eventually(
            "the private broker to listen",
            Duration::from_secs(30),
            || {
                let address = address.clone();
                async move {
                    tokio::net::TcpStream::connect(address)
                        .await
                        .ok()
                        .map(|_| ())
                }
            },
        )
        .await;
        broker
    }

    /// The bootstrap address.
    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Stops the broker process in its tracks (SIGSTOP).
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// Lets it run again (SIGCONT).
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} failed");
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        self.thaw();
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.workdir);
    }
}

/// Order-service flags that lift the abuse limits (rate per client, unpaid holds per
/// phone): the fixtures place many orders from one client and one phone number. Tests of
/// the limits set their own.
pub const ORDER_LIMITS_OFF: &[&str] = &[
    "--place-order-rate=0",
    "--max-open-orders-per-phone=0",
    "--max-open-units-per-phone=0",
];

/// Payment-service flags that lift the callback rate limit: the sandbox gateway posts
/// every callback from 127.0.0.1.
pub const CALLBACK_LIMITS_OFF: &[&str] = &["--callback-rate=0"];

/// The flags every service takes in a test: listeners on port 0, its database, the test
/// broker under `topic_prefix` (topics created), and the token secret. `binary` comes
/// first, as clap expects.
pub fn service_args(
    binary: &str,
    database_url: &str,
    topic_prefix: &str,
    jwt_secret: &str,
) -> Vec<String> {
    vec![
        binary.to_owned(),
        format!("--database-url={database_url}"),
        "--grpc-addr=127.0.0.1:0".to_owned(),
        "--http-addr=127.0.0.1:0".to_owned(),
        format!("--kafka-brokers={}", kafka_brokers()),
        format!("--kafka-topic-prefix={topic_prefix}"),
        "--kafka-create-topics".to_owned(),
        format!("--auth-jwt-secret={jwt_secret}"),
    ]
}

/// The order and payment services' flag offering every payment method, the sandbox's
/// included (a test platform runs the sandbox gateway).
pub const EVERY_PAYMENT_METHOD: &str = "--payment-methods=vietqr,vnpay,momo,zalopay,sandbox";

/// A gRPC request carrying a bearer token signed with `jwt_secret` that grants `scopes`
/// (for every service).
pub fn authorized<T>(message: T, jwt_secret: &str, scopes: &[&str]) -> tonic::Request<T> {
    with_grant(
        message,
        jwt_secret,
        &Grant {
            audiences: &audience::ALL,
            subject: "test",
            scopes,
            channel: None,
            ttl: Duration::from_secs(600),
        },
    )
}

/// A gRPC request carrying a bearer token signed with `jwt_secret` for `grant`.
pub fn with_grant<T>(message: T, jwt_secret: &str, grant: &Grant<'_>) -> tonic::Request<T> {
    let token = TokenIssuer::from_secret(jwt_secret.as_bytes()).mint(grant);
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}")
            .parse()
            .expect("a JWT is a valid header value"),
    );
    request
}

/// `GET /metrics` on a service's HTTP address: the Prometheus text, or why not.
pub async fn scrape_metrics(address: std::net::SocketAddr) -> Result<String, String> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .map_err(|err| format!("connect to {address}: {err}"))?;
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: test\r\n\r\n")
        .await
        .map_err(|err| format!("send to {address}: {err}"))?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .await
        .map_err(|err| format!("read from {address}: {err}"))?;
    match response.split_once("\r\n\r\n") {
        Some((head, body)) if head.contains(" 200 ") => Ok(body.to_owned()),
        _ => Err(format!("{address} answered: {response}")),
    }
}

/// Produces one record on the test broker, as a service or a partner would see it
/// (pass `event.headers()` for a CloudEvent, `OwnedHeaders::new()` for none).
pub async fn produce(topic: &str, key: &str, payload: &[u8], headers: OwnedHeaders) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", kafka_brokers())
        .set("message.timeout.ms", "10000")
        .create()
        .expect("create the test producer");
    producer
        .send(
            FutureRecord::to(topic)
                .key(key)
                .payload(payload)
                .headers(headers),
            Duration::from_secs(10),
        )
        .await
        .unwrap_or_else(|(err, _)| panic!("produce to {topic}: {err}"));
}
