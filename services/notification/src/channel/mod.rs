//! Delivery channels behind one trait, so the dispatcher neither knows nor cares how a
//! message travels: `log` (a spool file), `email` (SMTP), `sms` and `zalo_zns` (HTTP
//! providers).

use std::{collections::BTreeMap, fmt, sync::Arc};

use futures::future::BoxFuture;
use uuid::Uuid;

use crate::domain::delivery::ChannelKind;

pub mod email;
mod http;
pub mod log;
pub mod sms;
pub mod zalo;

/// One message, ready to go. `address` is the real phone (national form) or e-mail
/// address: only channels see it, never logs.
#[derive(Clone)]
pub struct Message {
    pub notification_id: Uuid,
    pub order_id: Uuid,
    pub order_code: String,
    pub customer_name: String,
    pub channel: ChannelKind,
    pub template: String,
    pub address: String,
    pub subject: String,
    pub body: String,
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("notification_id", &self.notification_id)
            .field("order_id", &self.order_id)
            .field("channel", &self.channel)
            .field("template", &self.template)
            .finish_non_exhaustive()
    }
}

/// What a channel reports after accepting a message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Receipt {
    /// The provider's id of the message (SMTP queue id, SMS or ZNS message id), kept
    /// for support cases.
    pub provider_ref: Option<String>,
}

/// Why a message was not delivered, and whether the same message might go through
/// later (a provider outage) or never will (an address the provider refuses).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ChannelError {
    pub retryable: bool,
    pub message: String,
}

impl ChannelError {
    pub fn retryable(message: impl Into<String>) -> Self {
        Self {
            retryable: true,
            message: message.into(),
        }
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            retryable: false,
            message: message.into(),
        }
    }
}

/// A way to deliver messages.
pub trait Channel: Send + Sync + 'static {
    fn kind(&self) -> ChannelKind;

    /// Delivers one message. Implementations bound their own time (the dispatcher holds
    /// row locks while it waits) and put no personal data in their errors where they
    /// can avoid it (the dispatcher also masks the address in what it stores).
    fn send<'a>(&'a self, message: &'a Message) -> BoxFuture<'a, Result<Receipt, ChannelError>>;
}

/// The enabled channels, one per kind.
#[derive(Clone, Default)]
pub struct Channels {
    by_kind: BTreeMap<ChannelKind, Arc<dyn Channel>>,
}

impl fmt::Debug for Channels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.by_kind.keys()).finish()
    }
}

impl Channels {
    pub fn new(channels: impl IntoIterator<Item = Arc<dyn Channel>>) -> Self {
        Self {
            by_kind: channels
                .into_iter()
                .map(|channel| (channel.kind(), channel))
                .collect(),
        }
    }

    /// The enabled kinds, in a stable order.
    pub fn kinds(&self) -> Vec<ChannelKind> {
        self.by_kind.keys().copied().collect()
    }

    pub fn get(&self, kind: ChannelKind) -> Option<&Arc<dyn Channel>> {
        self.by_kind.get(&kind)
    }
}

/// The channels `NOTIFICATION_CHANNELS` enables, built from their settings. A channel
/// enabled without what it needs is a start-up error naming the missing variable.
pub fn from_config(config: &crate::Config) -> anyhow::Result<Channels> {
    fn required<'a, T>(
        value: &'a Option<T>,
        variable: &str,
        channel: ChannelKind,
    ) -> anyhow::Result<&'a T> {
        value.as_ref().ok_or_else(|| {
            anyhow::anyhow!("{variable} is required when NOTIFICATION_CHANNELS includes {channel}")
        })
    }
    let timeout = config.notification_send_timeout;
    let mut channels: Vec<Arc<dyn Channel>> = Vec::new();
    for kind in &config.notification_channels {
        let channel: Arc<dyn Channel> = match kind {
            ChannelKind::Log => Arc::new(log::LogChannel::new(&config.notification_spool_dir)?),
            ChannelKind::Email => Arc::new(email::EmailChannel::new(&email::SmtpSettings {
                host: required(&config.smtp_host, "SMTP_HOST", *kind)?.clone(),
                port: config.smtp_port,
                from: required(&config.smtp_from, "SMTP_FROM", *kind)?.clone(),
                username: config.smtp_username.clone(),
                password: config.smtp_password.clone(),
                timeout,
            })?),
            ChannelKind::Sms => Arc::new(sms::SmsChannel::new(
                required(&config.sms_api_url, "SMS_API_URL", *kind)?,
                required(&config.sms_api_token, "SMS_API_TOKEN", *kind)?.clone(),
                timeout,
            )?),
            ChannelKind::ZaloZns => Arc::new(zalo::ZaloZnsChannel::new(
                required(&config.zalo_zns_url, "ZALO_ZNS_URL", *kind)?,
                required(&config.zalo_access_token, "ZALO_ACCESS_TOKEN", *kind)?.clone(),
                required(&config.zalo_template_id, "ZALO_TEMPLATE_ID", *kind)?,
                timeout,
            )?),
        };
        channels.push(channel);
    }
    Ok(Channels::new(channels))
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    fn config(extra: &[&str]) -> crate::Config {
        let spool = std::env::temp_dir().join(format!("ocop-channels-{}", Uuid::new_v4()));
        let mut args = vec![
            "notification".to_owned(),
            "--database-url=postgres://x/y".to_owned(),
            "--auth-jwt-secret=0123456789abcdef0123456789abcdef".to_owned(),
            format!("--notification-spool-dir={}", spool.display()),
        ];
        args.extend(extra.iter().map(|arg| (*arg).to_owned()));
        crate::Config::try_parse_from(args).unwrap()
    }

    #[test]
    fn an_enabled_channel_without_its_settings_names_the_missing_variable() {
        let with_log = config(&["--notification-channels=log,email"]);
        let err = from_config(&with_log).unwrap_err().to_string();
        let _ = std::fs::remove_dir_all(&with_log.notification_spool_dir);
        assert_eq!(
            err,
            "SMTP_HOST is required when NOTIFICATION_CHANNELS includes email"
        );
        let err = from_config(&config(&[
            "--notification-channels=sms",
            "--sms-api-url=http://sms/",
        ]))
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("SMS_API_TOKEN is required"), "{err}");
    }

    #[test]
    fn every_channel_builds_from_complete_settings() {
        let config = config(&[
            "--notification-channels=log,email,sms,zalo_zns",
            "--smtp-host=127.0.0.1",
            "--smtp-from=OCOP <no-reply@ocop.example.vn>",
            "--sms-api-url=http://sms-gw.internal/send",
            "--sms-api-token=t",
            "--zalo-zns-url=http://zns-proxy.internal/message/template",
            "--zalo-access-token=t",
            "--zalo-template-id=123",
        ]);
        let channels = from_config(&config).unwrap();
        assert_eq!(channels.kinds(), ChannelKind::ALL.to_vec());
        std::fs::remove_dir_all(&config.notification_spool_dir).unwrap();
    }
}
