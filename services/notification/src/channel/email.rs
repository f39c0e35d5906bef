//! The `email` channel: a plain-text UTF-8 e-mail per notification over SMTP.
//!
//! The connection is plain SMTP (the workspace's lettre has no TLS feature): point
//! `SMTP_HOST` at a relay inside the cluster (a Postfix sidecar, the provider's
//! relay over a private link) that does TLS onwards. Credentials are sent only when
//! both `SMTP_USERNAME` and `SMTP_PASSWORD` are set.

use std::time::Duration;

use anyhow::Context as _;
use futures::future::BoxFuture;
use lettre::{
    AsyncSmtpTransport, AsyncTransport as _, Tokio1Executor,
    message::{Mailbox, header::ContentType},
    transport::smtp::authentication::Credentials,
};

use super::{Channel, ChannelError, Message, Receipt};
use crate::{config::Secret, domain::delivery::ChannelKind};

/// How to reach the SMTP relay.
#[derive(Debug, Clone)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    /// The sender, e.g. `OCOP Quảng Ninh <no-reply@ocop.example.vn>`.
    pub from: String,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub timeout: Duration,
}

pub struct EmailChannel {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl EmailChannel {
    pub fn new(settings: &SmtpSettings) -> anyhow::Result<Self> {
        let from: Mailbox = settings
            .from
            .parse()
            .with_context(|| format!("SMTP_FROM: `{}` is not a mailbox", settings.from))?;
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&settings.host)
            .port(settings.port)
            .timeout(Some(settings.timeout));
        match (&settings.username, &settings.password) {
            (Some(user), Some(password)) => {
                builder = builder
                    .credentials(Credentials::new(user.clone(), password.expose().to_owned()));
            }
            (None, None) => {}
            _ => anyhow::bail!("SMTP_USERNAME and SMTP_PASSWORD: set both or neither"),
        }
        Ok(Self {
            transport: builder.build(),
            from,
        })
    }

    /// The e-mail for `message` (composed, not sent: tests read it).
    pub fn compose(&self, message: &Message) -> Result<lettre::Message, ChannelError> {
        let to = message
            .address
            .parse()
            .map(|address| {
                let name = message.customer_name.trim();
                Mailbox::new((!name.is_empty()).then(|| name.to_owned()), address)
            })
            .map_err(|_| ChannelError::permanent("the recipient is not a valid e-mail address"))?;
        lettre::Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(&message.subject)
            .header(ContentType::TEXT_PLAIN)
            .body(message.body.clone())
            .map_err(|err| ChannelError::permanent(format!("compose e-mail: {err}")))
    }
}

impl Channel for EmailChannel {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Email
    }

    fn send<'a>(&'a self, message: &'a Message) -> BoxFuture<'a, Result<Receipt, ChannelError>> {
        Box::pin(async move {
            let email = self.compose(message)?;
            match self.transport.send(email).await {
                Ok(response) => Ok(Receipt {
                    provider_ref: response.message().next().map(str::to_owned),
                }),
                // 5xx: the relay refuses this message for good (unknown mailbox, policy).
                Err(err) if err.is_permanent() => {
                    Err(ChannelError::permanent(format!("smtp refused: {err}")))
                }
                Err(err) => Err(ChannelError::retryable(format!("smtp: {err}"))),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    fn settings() -> SmtpSettings {
        SmtpSettings {
            host: "127.0.0.1".into(),
            port: 2525,
            from: "OCOP Quảng Ninh <no-reply@ocop.example.vn>".into(),
            username: None,
            password: None,
            timeout: Duration::from_secs(5),
        }
    }

    fn message(address: &str) -> Message {
        Message {
            notification_id: Uuid::now_v7(),
            order_id: Uuid::now_v7(),
            order_code: "OCOP1".into(),
            customer_name: "Nguyễn Thị Hoa".into(),
            channel: ChannelKind::Email,
            template: "order_received".into(),
            address: address.into(),
            subject: "Đã nhận đơn hàng OCOP1".into(),
            body: "Tổng cộng: 1.250.000 ₫".into(),
        }
    }

    #[test]
    fn email_is_utf8_plain_text_to_the_customer_with_encoded_subject() {
        let channel = EmailChannel::new(&settings()).unwrap();
        let email = channel.compose(&message("hoa@example.com")).unwrap();
        let raw = String::from_utf8(email.formatted()).unwrap();
        assert!(
            raw.contains("Content-Type: text/plain; charset=utf-8"),
            "{raw}"
        );
        assert!(raw.contains("hoa@example.com"), "{raw}");
        assert!(raw.contains("no-reply@ocop.example.vn"), "{raw}");
        // Non-ASCII headers are RFC 2047 encoded words.
        assert!(raw.contains("Subject: =?utf-8?"), "{raw}");
        let envelope = email.envelope();
        assert_eq!(envelope.to()[0].to_string(), "hoa@example.com");
    }

    #[test]
    fn a_bad_recipient_fails_for_good_and_a_bad_sender_stops_start_up() {
        let channel = EmailChannel::new(&settings()).unwrap();
        assert!(
            !channel
                .compose(&message("not-an-address"))
                .unwrap_err()
                .retryable
        );
        let err = EmailChannel::new(&SmtpSettings {
            from: "nobody".into(),
            ..settings()
        })
        .err()
        .unwrap()
        .to_string();
        assert!(err.starts_with("SMTP_FROM"), "{err}");
        let err = EmailChannel::new(&SmtpSettings {
            username: Some("u".into()),
            ..settings()
        })
        .err()
        .unwrap()
        .to_string();
        assert!(err.contains("set both or neither"), "{err}");
    }

    #[tokio::test]
    async fn a_closed_port_is_a_retryable_failure() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let channel = EmailChannel::new(&SmtpSettings { port, ..settings() }).unwrap();
        let err = channel.send(&message("hoa@example.com")).await.unwrap_err();
        assert!(err.retryable, "{err}");
    }
}
