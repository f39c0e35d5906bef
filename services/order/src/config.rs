//! The order service's settings: flags or environment variables, checked at start-up.

use std::{net::SocketAddr, time::Duration};

use ocop_events::{DatabaseConfig, KafkaConfig, retention::RetentionConfig};
use ocop_grpc_kit::{
    auth::AuthConfig,
    server::{ReflectionConfig, ShutdownConfig},
};
use ocop_telemetry::TelemetryConfig;

use crate::{domain::order::PaymentMethod, limits::LimitsConfig};

fn parse_payment_method(raw: &str) -> Result<PaymentMethod, String> {
    PaymentMethod::parse(raw.trim()).ok_or_else(|| {
        format!("`{raw}` is not a payment method (vietqr, vnpay, momo, zalopay, sandbox)")
    })
}

#[derive(Debug, Clone, clap::Parser)]
#[command(name = "order", version, about = "ocop-market order service")]
pub struct Config {
    #[command(flatten)]
    pub database: DatabaseConfig,

    /// gRPC listen address (port 0 picks a free port).
    #[arg(long, env = "GRPC_ADDR", default_value = "0.0.0.0:50052")]
    pub grpc_addr: SocketAddr,

    /// HTTP listen address for `/metrics`.
    #[arg(long, env = "HTTP_ADDR", default_value = "0.0.0.0:9102")]
    pub http_addr: SocketAddr,

    /// The catalog's gRPC endpoint, for price quotes.
    #[arg(long, env = "CATALOG_URL", default_value = "http://127.0.0.1:50051")]
    pub catalog_url: String,

    /// Deadline of a price quote; past it PlaceOrder answers UNAVAILABLE.
    #[arg(long, env = "QUOTE_TIMEOUT", default_value = "2s", value_parser = humantime::parse_duration)]
    pub quote_timeout: Duration,

    /// How long the shopper has to pay once the stock is reserved.
    #[arg(long, env = "PAYMENT_TTL", default_value = "15m", value_parser = humantime::parse_duration)]
    pub payment_ttl: Duration,

    /// The payment methods PlaceOrder accepts (comma-separated: vietqr, vnpay, momo,
    /// zalopay, sandbox). Give it the same value as the payment service, which does not
    /// start while a listed method cannot be taken; `sandbox` belongs only where the
    /// sandbox gateway runs (development, tests, load runs).
    #[arg(long, env = "PAYMENT_METHODS", value_delimiter = ',',
          default_value = "vietqr,vnpay,momo,zalopay", value_parser = parse_payment_method)]
    pub payment_methods: Vec<PaymentMethod>,

    /// How long an order may stay PENDING (waiting for the catalog's reservation) before
    /// `ocop_orders_pending_overdue` counts it; the reservation normally takes milliseconds.
    #[arg(long, env = "PENDING_OVERDUE_AFTER", default_value = "2m", value_parser = humantime::parse_duration)]
    pub pending_overdue_after: Duration,

    #[command(flatten)]
    pub limits: LimitsConfig,

    #[command(flatten)]
    pub retention: RetentionConfig,

    #[command(flatten)]
    pub shutdown: ShutdownConfig,

    #[command(flatten)]
    pub reflection: ReflectionConfig,

    #[command(flatten)]
    pub kafka: KafkaConfig,

    #[command(flatten)]
    pub auth: AuthConfig,

    #[command(flatten)]
    pub telemetry: TelemetryConfig,
}
