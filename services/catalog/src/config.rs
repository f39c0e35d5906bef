//! The catalog's settings: flags or environment variables, checked at start-up.

use std::{net::SocketAddr, time::Duration};

use ocop_events::{DatabaseConfig, KafkaConfig, retention::RetentionConfig};
use ocop_grpc_kit::{
    auth::AuthConfig,
    server::{ReflectionConfig, ShutdownConfig},
};
use ocop_telemetry::TelemetryConfig;

/// Everything the catalog needs to run. A bad value stops start-up with a message
/// naming the flag and its variable.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "catalog", version, about = "ocop-market catalog service")]
pub struct Config {
    #[command(flatten)]
    pub database: DatabaseConfig,

    /// gRPC listen address (port 0 picks a free port).
    #[arg(long, env = "GRPC_ADDR", default_value = "0.0.0.0:50051")]
    pub grpc_addr: SocketAddr,

    /// HTTP listen address for `/metrics`.
    #[arg(long, env = "HTTP_ADDR", default_value = "0.0.0.0:9101")]
    pub http_addr: SocketAddr,

    /// How long a reservation holds stock before it expires (e.g. `30m`).
    #[arg(long, env = "RESERVATION_TTL", default_value = "30m", value_parser = humantime::parse_duration)]
    pub reservation_ttl: Duration,

    /// How often to look for expired reservations.
    #[arg(long, env = "RESERVATION_SWEEP_INTERVAL", default_value = "5s", value_parser = humantime::parse_duration)]
    pub reservation_sweep_interval: Duration,

    /// How often changed products' snapshots are published on the compacted product
    /// topic: every product changed in that time gets one snapshot of its latest state.
    #[arg(long, env = "SNAPSHOT_INTERVAL", default_value = "250ms", value_parser = humantime::parse_duration)]
    pub snapshot_interval: Duration,

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

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::Config;

    const SECRET: &str = "--auth-jwt-secret=0123456789abcdef0123456789abcdef";

    #[test]
    fn unparsable_duration_is_a_startup_error_naming_the_flag() {
        let err = Config::try_parse_from([
            "catalog",
            "--database-url=postgres://x/y",
            SECRET,
            "--reservation-ttl=soon",
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("--reservation-ttl"), "{err}");
    }

    #[test]
    fn defaults_fill_everything_but_the_database_and_secret() {
        let config =
            Config::try_parse_from(["catalog", "--database-url=postgres://x/y", SECRET]).unwrap();
        assert_eq!(config.grpc_addr.port(), 50051);
        assert_eq!(config.reservation_ttl.as_secs(), 30 * 60);
    }
}
