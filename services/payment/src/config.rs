//! The payment service's settings: flags or environment variables, checked at start-up.

use std::{net::SocketAddr, time::Duration};

use ocop_events::{DatabaseConfig, KafkaConfig};
use ocop_grpc_kit::{auth::AuthConfig, server::ShutdownConfig};
use ocop_telemetry::TelemetryConfig;

use crate::sandbox::{Outcome, scheme::SigningKey};

/// Everything the payment service needs to run. A bad value stops start-up with a
/// message naming the flag and its variable.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "payment", version, about = "ocop-market payment service")]
pub struct Config {
    #[command(flatten)]
    pub database: DatabaseConfig,

    /// gRPC listen address (port 0 picks a free port).
    #[arg(long, env = "GRPC_ADDR", default_value = "0.0.0.0:50053")]
    pub grpc_addr: SocketAddr,

    /// HTTP listen address: `/metrics`, provider callbacks and the sandbox pages.
    #[arg(long, env = "HTTP_ADDR", default_value = "0.0.0.0:9103")]
    pub http_addr: SocketAddr,

    /// Base URL at which shoppers and the sandbox reach the HTTP address (pay URLs and
    /// callbacks are built from it); default `http://127.0.0.1:<HTTP port>`.
    #[arg(long, env = "PUBLIC_URL", value_parser = parse_public_url)]
    pub public_url: Option<String>,

    /// Secret shared with the sandbox gateway to sign callbacks (HMAC-SHA256, at least
    /// 16 bytes; environment only).
    #[arg(long, env = "SANDBOX_SECRET", hide_env_values = true, value_parser = SigningKey::parse)]
    pub sandbox_secret: SigningKey,

    /// How long the sandbox waits before settling a new payment by itself.
    #[arg(long, env = "SANDBOX_DELAY", default_value = "2s", value_parser = humantime::parse_duration)]
    pub sandbox_delay: Duration,

    /// How the sandbox settles payments by itself: `success`, `failure` or `never`.
    #[arg(long, env = "SANDBOX_OUTCOME", value_enum, default_value_t = Outcome::Success)]
    pub sandbox_outcome: Outcome,

    /// Oldest (or furthest in the future) callback timestamp accepted.
    #[arg(long, env = "CALLBACK_TOLERANCE", default_value = "5m", value_parser = humantime::parse_duration)]
    pub callback_tolerance: Duration,

    /// How often to look for pending payments past their deadline.
    #[arg(long, env = "EXPIRY_SWEEP_INTERVAL", default_value = "1s", value_parser = humantime::parse_duration)]
    pub expiry_sweep_interval: Duration,

    #[command(flatten)]
    pub shutdown: ShutdownConfig,

    #[command(flatten)]
    pub kafka: KafkaConfig,

    #[command(flatten)]
    pub auth: AuthConfig,

    #[command(flatten)]
    pub telemetry: TelemetryConfig,
}

fn parse_public_url(raw: &str) -> Result<String, String> {
    let url = raw.trim().trim_end_matches('/');
    let host = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| format!("`{raw}` must start with http:// or https://"))?;
    if host.is_empty() {
        return Err(format!("`{raw}` has no host"));
    }
    Ok(url.to_owned())
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    const REQUIRED: [&str; 4] = [
        "payment",
        "--database-url=postgres://x/y",
        "--auth-jwt-secret=0123456789abcdef0123456789abcdef",
        "--sandbox-secret=sandbox-secret-0123",
    ];

    #[test]
    fn defaults_fill_everything_but_the_database_and_secrets() {
        let config = Config::try_parse_from(REQUIRED).unwrap();
        assert_eq!(config.grpc_addr.port(), 50053);
        assert_eq!(config.http_addr.port(), 9103);
        assert_eq!(config.sandbox_delay, Duration::from_secs(2));
        assert_eq!(config.sandbox_outcome, Outcome::Success);
        assert_eq!(config.callback_tolerance, Duration::from_secs(300));
        assert_eq!(config.expiry_sweep_interval, Duration::from_secs(1));
        assert_eq!(config.public_url, None);
    }

    #[test]
    fn short_sandbox_secret_is_a_startup_error_naming_the_flag() {
        let mut args = REQUIRED.to_vec();
        args[3] = "--sandbox-secret=short";
        let err = Config::try_parse_from(args).unwrap_err().to_string();
        assert!(err.contains("--sandbox-secret"), "{err}");
    }

    #[test]
    fn unknown_outcome_and_bad_public_url_are_refused() {
        let mut args = REQUIRED.to_vec();
        args.push("--sandbox-outcome=maybe");
        assert!(Config::try_parse_from(args).is_err());
        let mut args = REQUIRED.to_vec();
        args.push("--public-url=ftp://pay.example");
        let err = Config::try_parse_from(args).unwrap_err().to_string();
        assert!(err.contains("--public-url"), "{err}");
        let mut args = REQUIRED.to_vec();
        args.push("--public-url=https://pay.example/");
        let config = Config::try_parse_from(args).unwrap();
        assert_eq!(config.public_url.as_deref(), Some("https://pay.example"));
    }

    #[test]
    fn debug_output_never_shows_the_sandbox_secret() {
        let config = Config::try_parse_from(REQUIRED).unwrap();
        let shown = format!("{config:?}");
        assert!(!shown.contains("sandbox-secret-0123"), "{shown}");
    }
}
