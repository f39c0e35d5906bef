//! The `sms` channel: one JSON POST per message to an SMS gateway.
//!
//! The contract is deliberately plain, so any Vietnamese brandname-SMS provider can sit
//! behind a thin adapter: `POST SMS_API_URL` with `Authorization: Bearer SMS_API_TOKEN`,
//! `Idempotency-Key: <notification id>` and the body
//! `{"to": "84912345123", "text": "<body>", "reference": "<notification id>"}` (SMS
//! notifications have no subject: their body starts with it).
//! A 2xx answer is success (its JSON `id` or `message_id`, if any, is kept as the
//! provider reference); 408, 429 and 5xx are retried; other statuses are final.

use futures::future::BoxFuture;
use reqwest::Url;

use super::{Channel, ChannelError, Message, Receipt, http};
use crate::{
    config::Secret,
    domain::{contact::Phone, delivery::ChannelKind},
};

pub struct SmsChannel {
    client: reqwest::Client,
    url: Url,
    token: Secret,
}

impl SmsChannel {
    pub fn new(url: &str, token: Secret, timeout: std::time::Duration) -> anyhow::Result<Self> {
        Ok(Self {
            client: http::client(timeout)?,
            url: http::endpoint("SMS_API_URL", url)?,
            token,
        })
    }

    /// The gateway request for `message` (built, not sent: tests read it).
    pub fn request(&self, message: &Message) -> Result<reqwest::Request, ChannelError> {
        let phone = Phone::parse("address", &message.address)
            .map_err(|err| ChannelError::permanent(err.to_string()))?;
        let reference = message.notification_id.to_string();
        self.client
            .post(self.url.clone())
            .bearer_auth(self.token.expose())
            .header("Idempotency-Key", &reference)
            .json(&serde_json::json!({
                "to": phone.international(),
                "text": message.body,
                "reference": reference,
            }))
            .build()
            .map_err(|err| http::transport_error("sms gateway", &err))
    }
}

/// The provider's message id in a success answer, when it gives one.
fn provider_ref(body: &str) -> Option<String> {
    let json: serde_json::Value = serde_json::from_str(body).ok()?;
    ["id", "message_id"]
        .iter()
        .find_map(|key| match &json[key] {
            serde_json::Value::String(id) => Some(id.clone()),
            serde_json::Value::Number(id) => Some(id.to_string()),
            _ => None,
        })
}

impl Channel for SmsChannel {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Sms
    }

    fn send<'a>(&'a self, message: &'a Message) -> BoxFuture<'a, Result<Receipt, ChannelError>> {
        Box::pin(async move {
            let body = http::send(&self.client, "sms gateway", self.request(message)?).await?;
            Ok(Receipt {
                provider_ref: provider_ref(&body),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use uuid::Uuid;

    use super::*;

    fn message(address: &str) -> Message {
        Message {
            notification_id: Uuid::parse_str("0193a1b2-0000-7000-8000-000000000001").unwrap(),
            order_id: Uuid::now_v7(),
            order_code: "OCOP1".into(),
            customer_name: "Hoa".into(),
            channel: ChannelKind::Sms,
            template: "order_shipped".into(),
            address: address.into(),
            subject: String::new(),
            body: "Đơn hàng OCOP1 đang được giao\nMã vận đơn: VTP123".into(),
        }
    }

    fn channel() -> SmsChannel {
        SmsChannel::new(
            "http://sms-gw.internal:8080/v1/messages",
            Secret::new("sms-token-123"),
            Duration::from_secs(5),
        )
        .unwrap()
    }

    #[test]
    fn request_posts_json_with_bearer_token_and_international_number() {
        let request = channel().request(&message("0912345123")).unwrap();
        assert_eq!(request.method(), reqwest::Method::POST);
        assert_eq!(
            request.url().as_str(),
            "http://sms-gw.internal:8080/v1/messages"
        );
        let headers = request.headers();
        assert_eq!(headers["authorization"], "Bearer sms-token-123");
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(
            headers["idempotency-key"],
            "0193a1b2-0000-7000-8000-000000000001"
        );
        let body: serde_json::Value =
            serde_json::from_slice(request.body().unwrap().as_bytes().unwrap()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "to": "84912345123",
                "text": "Đơn hàng OCOP1 đang được giao\nMã vận đơn: VTP123",
                "reference": "0193a1b2-0000-7000-8000-000000000001",
            })
        );
    }

    #[test]
    fn an_address_that_is_not_a_phone_fails_for_good() {
        let err = channel().request(&message("hoa@example.com")).unwrap_err();
        assert!(!err.retryable);
    }

    #[test]
    fn provider_reference_is_read_from_id_or_message_id() {
        assert_eq!(provider_ref(r#"{"id":"abc"}"#).as_deref(), Some("abc"));
        assert_eq!(provider_ref(r#"{"message_id":42}"#).as_deref(), Some("42"));
        assert_eq!(provider_ref("OK"), None);
    }

    #[test]
    fn debug_output_never_shows_the_token() {
        let shown = format!("{:?}", Secret::new("sms-token-123"));
        assert!(!shown.contains("sms-token-123"), "{shown}");
    }
}
