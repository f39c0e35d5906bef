//! The notification service's settings: flags or environment variables, checked at
//! start-up.

use std::{convert::Infallible, fmt, net::SocketAddr, path::PathBuf, str::FromStr, time::Duration};

use ocop_events::{DatabaseConfig, KafkaConfig, retention::RetentionConfig};
use ocop_grpc_kit::{
    auth::AuthConfig,
    server::{ReflectionConfig, ShutdownConfig},
};
use ocop_telemetry::TelemetryConfig;

use crate::domain::delivery::ChannelKind;

/// A credential from the environment: usable, never shown by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl FromStr for Secret {
    type Err = Infallible;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        Ok(Self::new(raw))
    }
}

/// Everything the notification service needs to run. A bad value stops start-up with a
/// message naming the flag and its variable; settings a channel needs are checked when
/// that channel is enabled (see `channel::from_config`).
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "notification",
    version,
    about = "ocop-market notification service"
)]
pub struct Config {
    #[command(flatten)]
    pub database: DatabaseConfig,

    /// gRPC listen address (port 0 picks a free port).
    #[arg(long, env = "GRPC_ADDR", default_value = "0.0.0.0:50054")]
    pub grpc_addr: SocketAddr,

    /// HTTP listen address for `/metrics`.
    #[arg(long, env = "HTTP_ADDR", default_value = "0.0.0.0:9104")]
    pub http_addr: SocketAddr,

    /// Channels to deliver through, comma-separated: `log`, `email`, `sms`, `zalo_zns`.
    #[arg(
        long,
        env = "NOTIFICATION_CHANNELS",
        default_value = "log",
        value_delimiter = ','
    )]
    pub notification_channels: Vec<ChannelKind>,

    /// Folder of the `log` channel's spool file (`notifications.jsonl`).
    #[arg(
        long,
        env = "NOTIFICATION_SPOOL_DIR",
        default_value = "./notifications"
    )]
    pub notification_spool_dir: PathBuf,

    /// Folder with edited message templates (`<kind>.txt`, every kind); the built-in
    /// templates when unset.
    #[arg(long, env = "NOTIFICATION_TEMPLATES_DIR")]
    pub notification_templates_dir: Option<PathBuf>,

    /// Delivery attempts per notification before it is recorded as failed.
    #[arg(long, env = "NOTIFICATION_MAX_ATTEMPTS", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(1..=50))]
    pub notification_max_attempts: u32,

    /// Pause after the first failed attempt; doubled after each further one (at most 1h).
    #[arg(long, env = "NOTIFICATION_RETRY_BACKOFF", default_value = "30s", value_parser = humantime::parse_duration)]
    pub notification_retry_backoff: Duration,

    /// Longest wait for one channel to accept one message.
    #[arg(long, env = "NOTIFICATION_SEND_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub notification_send_timeout: Duration,

    /// How often the dispatcher looks for due notifications when it found none.
    #[arg(long, env = "DISPATCH_INTERVAL", default_value = "200ms", value_parser = humantime::parse_duration)]
    pub dispatch_interval: Duration,

    /// Attempts to apply one consumed event before it goes to the dead-letter topic. An
    /// event about an order whose `OrderPlaced` has not arrived yet is retried.
    #[arg(long, env = "EVENT_MAX_ATTEMPTS", default_value_t = 8,
          value_parser = clap::value_parser!(u32).range(1..=50))]
    pub event_max_attempts: u32,

    /// Pause before the second attempt at a consumed event; doubled after each further
    /// one (8 attempts from 250ms wait about 30s in all).
    #[arg(long, env = "EVENT_RETRY_BACKOFF", default_value = "250ms", value_parser = humantime::parse_duration)]
    pub event_retry_backoff: Duration,

    /// SMTP relay host (required with the `email` channel).
    #[arg(long, env = "SMTP_HOST")]
    pub smtp_host: Option<String>,

    /// SMTP relay port (plain SMTP; see the README).
    #[arg(long, env = "SMTP_PORT", default_value_t = 25)]
    pub smtp_port: u16,

    /// Sender mailbox, e.g. `OCOP Quảng Ninh <no-reply@ocop.example.vn>` (required with
    /// the `email` channel).
    #[arg(long, env = "SMTP_FROM")]
    pub smtp_from: Option<String>,

    /// SMTP user name (with SMTP_PASSWORD).
    #[arg(long, env = "SMTP_USERNAME")]
    pub smtp_username: Option<String>,

    /// SMTP password (environment only in production).
    #[arg(long, env = "SMTP_PASSWORD", hide_env_values = true)]
    pub smtp_password: Option<Secret>,

    /// SMS gateway endpoint (required with the `sms` channel).
    #[arg(long, env = "SMS_API_URL")]
    pub sms_api_url: Option<String>,

    /// SMS gateway bearer token (environment only in production).
    #[arg(long, env = "SMS_API_TOKEN", hide_env_values = true)]
    pub sms_api_token: Option<Secret>,

    /// Zalo ZNS "send template message" endpoint (required with the `zalo_zns` channel).
    #[arg(long, env = "ZALO_ZNS_URL")]
    pub zalo_zns_url: Option<String>,

    /// Zalo Official Account access token (environment only in production).
    #[arg(long, env = "ZALO_ACCESS_TOKEN", hide_env_values = true)]
    pub zalo_access_token: Option<Secret>,

    /// The approved ZNS template's id.
    #[arg(long, env = "ZALO_TEMPLATE_ID")]
    pub zalo_template_id: Option<String>,

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

    use super::*;

    const SECRET: &str = "--auth-jwt-secret=0123456789abcdef0123456789abcdef";

    fn parse(extra: &[&str]) -> Result<Config, clap::Error> {
        let mut args = vec!["notification", "--database-url=postgres://x/y", SECRET];
        args.extend_from_slice(extra);
        Config::try_parse_from(args)
    }

    #[test]
    fn defaults_fill_everything_but_the_database_and_secret() {
        let config = parse(&[]).unwrap();
        assert_eq!(config.grpc_addr.port(), 50054);
        assert_eq!(config.http_addr.port(), 9104);
        assert_eq!(config.notification_channels, vec![ChannelKind::Log]);
        assert_eq!(
            config.notification_spool_dir,
            PathBuf::from("./notifications")
        );
        assert_eq!(config.notification_max_attempts, 5);
        assert_eq!(config.dispatch_interval, Duration::from_millis(200));
    }

    #[test]
    fn channels_are_a_comma_list_and_an_unknown_one_names_the_flag() {
        let config = parse(&["--notification-channels=log,email,zalo_zns"]).unwrap();
        assert_eq!(
            config.notification_channels,
            vec![ChannelKind::Log, ChannelKind::Email, ChannelKind::ZaloZns]
        );
        let err = parse(&["--notification-channels=log,fax"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--notification-channels") && err.contains("fax"),
            "{err}"
        );
    }

    #[test]
    fn zero_attempts_is_refused() {
        let err = parse(&["--notification-max-attempts=0"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--notification-max-attempts"), "{err}");
    }

    #[test]
    fn debug_output_never_shows_provider_secrets() {
        let config = Config::try_parse_from([
            "notification",
            "--database-url=postgres://app:db-hunter2@db/notification",
            SECRET,
            "--smtp-password=smtp-hunter2",
            "--sms-api-token=sms-hunter2",
            "--zalo-access-token=zalo-hunter2",
        ])
        .unwrap();
        assert_eq!(
            config.sms_api_token.as_ref().unwrap().expose(),
            "sms-hunter2"
        );
        let shown = format!("{config:?}");
        for secret in [
            "smtp-hunter2",
            "sms-hunter2",
            "zalo-hunter2",
            "db-hunter2",
            "0123456789abcdef",
        ] {
            assert!(!shown.contains(secret), "{secret} shown in {shown}");
        }
    }
}
