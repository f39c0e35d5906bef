//! The four services as real processes (the binaries `make test` builds), each with its
//! own database and fixed loopback ports, for tests that need what only a process has:
//! its own OTLP exporter, its own `/metrics`, its own log output, or a signal.

use std::{collections::HashMap, path::PathBuf};

use ocop_proto::{
    catalog::v1::catalog_service_client::CatalogServiceClient,
    order::v1::order_service_client::OrderServiceClient,
};
use ocop_testkit::{
    CALLBACK_LIMITS_OFF, EVERY_PAYMENT_METHOD, ORDER_LIMITS_OFF, fresh_database_url, unique,
};
use tonic::transport::Channel;

use crate::{PAYMENT_PROVIDERS, ServiceProcess, common, free_port};

/// The services, in start order (the order service asks the catalog for quotes).
pub const SERVICES: [&str; 4] = ["catalog", "order", "payment", "notification"];

/// The sandbox gateway's callback secret in a process platform.
pub const SANDBOX_SECRET: &str = "processes-sandbox-secret-1234";

/// What a test changes about the platform.
#[derive(Default)]
pub struct Options {
    /// Environment variables for every process (e.g. `RUST_LOG`, an OTLP endpoint).
    pub env: Vec<(String, String)>,
    /// Flags per service, replacing a default flag of the same name.
    pub flags: HashMap<&'static str, Vec<String>>,
}

/// Four running service processes.
pub struct ProcessPlatform {
    pub prefix: String,
    /// Where the notification service spools what it sends (`notifications.jsonl`).
    pub spool: PathBuf,
    grpc: HashMap<&'static str, u16>,
    http: HashMap<&'static str, u16>,
    processes: HashMap<&'static str, ServiceProcess>,
}

impl ProcessPlatform {
    /// Starts every service and waits until each one's gRPC port answers.
    pub async fn start(tag: &str, options: Options) -> Self {
        let prefix = format!("{}.", unique(tag));
        let spool = std::env::temp_dir().join(unique(&format!("{tag}_spool")));
        let grpc: HashMap<_, _> = SERVICES.iter().map(|name| (*name, free_port())).collect();
        let http: HashMap<_, _> = SERVICES.iter().map(|name| (*name, free_port())).collect();
        let mut processes = HashMap::new();
        for name in SERVICES {
            let mut flags = vec![
                format!("--grpc-addr=127.0.0.1:{}", grpc[name]),
                format!("--http-addr=127.0.0.1:{}", http[name]),
            ];
            flags.extend(match name {
                "order" => [
                    format!("--catalog-url=http://127.0.0.1:{}", grpc["catalog"]),
                    EVERY_PAYMENT_METHOD.to_owned(),
                ]
                .into_iter()
                .chain(ORDER_LIMITS_OFF.iter().map(|flag| (*flag).to_owned()))
                .collect(),
                "payment" => [
                    format!("--sandbox-secret={SANDBOX_SECRET}"),
                    EVERY_PAYMENT_METHOD.to_owned(),
                    "--sandbox-delay=100ms".to_owned(),
                    "--expiry-sweep-interval=200ms".to_owned(),
                ]
                .into_iter()
                .chain(CALLBACK_LIMITS_OFF.iter().map(|flag| (*flag).to_owned()))
                .chain(PAYMENT_PROVIDERS.iter().map(|flag| (*flag).to_owned()))
                .collect(),
                "notification" => vec![format!("--notification-spool-dir={}", spool.display())],
                _ => Vec::new(),
            });
            flags.extend(options.flags.get(name).cloned().unwrap_or_default());
            let args = with_flags(common(&prefix, &fresh_database_url().await), &flags);
            let mut process = ServiceProcess::new(name, args, options.env.clone());
            process.start(grpc[name]).await;
            processes.insert(name, process);
        }
        Self {
            prefix,
            spool,
            grpc,
            http,
            processes,
        }
    }

    /// `http://127.0.0.1:<gRPC port>` of a service.
    pub fn grpc_url(&self, service: &str) -> String {
        format!("http://127.0.0.1:{}", self.grpc[service])
    }

    /// Clients of the catalog and the order service, connected.
    pub async fn clients(&self) -> (CatalogServiceClient<Channel>, OrderServiceClient<Channel>) {
        let catalog = CatalogServiceClient::connect(self.grpc_url("catalog"))
            .await
            .unwrap();
        let orders = OrderServiceClient::connect(self.grpc_url("order"))
            .await
            .unwrap();
        (catalog, orders)
    }

    /// The service's HTTP base address (`/metrics`, the payment service's callbacks).
    pub fn http_url(&self, service: &str) -> String {
        format!("http://127.0.0.1:{}", self.http[service])
    }

    /// The service's `/metrics` in the Prometheus text format.
    pub async fn scrape(&self, service: &str) -> String {
        ocop_testkit::scrape_metrics(([127, 0, 0, 1], self.http[service]).into())
            .await
            .unwrap_or_else(|err| panic!("scrape {service}: {err}"))
    }

    /// The process of a service (to pause, resume or read its log).
    pub fn process(&self, service: &str) -> &ServiceProcess {
        &self.processes[service]
    }

    /// Stops every service gracefully (each flushes its telemetry on the way out) and
    /// returns what each one logged.
    pub async fn stop(mut self) -> HashMap<&'static str, String> {
        let mut processes = std::mem::take(&mut self.processes);
        tokio::task::spawn_blocking(move || {
            SERVICES
                .iter()
                .rev()
                .map(|name| {
                    let mut process = processes.remove(name).expect("every service started");
                    process.terminate();
                    (*name, process.log_text())
                })
                .collect()
        })
        .await
        .unwrap()
    }
}

/// `args` with each of `flags` replacing the argument of the same name.
fn with_flags(mut args: Vec<String>, flags: &[String]) -> Vec<String> {
    for flag in flags {
        let name = flag.split('=').next().unwrap_or(flag);
        args.retain(|arg| arg.split('=').next() != Some(name));
        args.push(flag.clone());
    }
    args
}

impl Drop for ProcessPlatform {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.spool);
    }
}
