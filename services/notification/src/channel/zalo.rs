//! The `zalo_zns` channel: a Zalo Notification Service template message per
//! notification, sent to the shopper's phone number.
//!
//! Request (the ZNS "send template message" API): `POST ZALO_ZNS_URL` with the header
//! `access_token: ZALO_ACCESS_TOKEN` and the body
//! `{"phone": "84912345123", "template_id": ZALO_TEMPLATE_ID, "template_data": {...},
//! "tracking_id": "<notification id>"}`. The approved template must declare the
//! parameters `customer_name`, `order_code` and `content` (the rendered message; ZNS
//! notifications have no subject, their body starts with it).
//!
//! Answer: `{"error": 0, "data": {"msg_id": ...}}` on success. A non-zero `error` is
//! retried until the attempts run out (ZNS error codes are not classified here);
//! non-2xx statuses are read as for every HTTP channel.

use futures::future::BoxFuture;
use reqwest::Url;

use super::{Channel, ChannelError, Message, Receipt, http};
use crate::{
    config::Secret,
    domain::{contact::Phone, delivery::ChannelKind},
};

pub struct ZaloZnsChannel {
    client: reqwest::Client,
    url: Url,
    access_token: Secret,
    template_id: String,
}

impl ZaloZnsChannel {
    pub fn new(
        url: &str,
        access_token: Secret,
        template_id: &str,
        timeout: std::time::Duration,
    ) -> anyhow::Result<Self> {
        if template_id.trim().is_empty() {
            anyhow::bail!("ZALO_TEMPLATE_ID: is empty");
        }
        Ok(Self {
            client: http::client(timeout)?,
            url: http::endpoint("ZALO_ZNS_URL", url)?,
            access_token,
            template_id: template_id.trim().to_owned(),
        })
    }

    /// The ZNS request for `message` (built, not sent: tests read it).
    pub fn request(&self, message: &Message) -> Result<reqwest::Request, ChannelError> {
        let phone = Phone::parse("address", &message.address)
            .map_err(|err| ChannelError::permanent(err.to_string()))?;
        self.client
            .post(self.url.clone())
            .header("access_token", self.access_token.expose())
            .json(&serde_json::json!({
                "phone": phone.international(),
                "template_id": self.template_id,
                "template_data": {
                    "customer_name": message.customer_name,
                    "order_code": message.order_code,
                    "content": message.body,
                },
                "tracking_id": message.notification_id.to_string(),
            }))
            .build()
            .map_err(|err| http::transport_error("zalo zns", &err))
    }
}

/// Reads a 2xx ZNS answer: `error` 0 is success, anything else a failure worth retrying.
fn read_answer(body: &str) -> Result<Receipt, ChannelError> {
    let json: serde_json::Value = serde_json::from_str(body)
        .map_err(|err| ChannelError::retryable(format!("zalo zns answer is not JSON: {err}")))?;
    match json["error"].as_i64() {
        Some(0) => Ok(Receipt {
            provider_ref: json["data"]["msg_id"].as_str().map(str::to_owned),
        }),
        Some(code) => Err(ChannelError::retryable(format!(
            "zalo zns error {code}: {}",
            json["message"].as_str().unwrap_or("")
        ))),
        None => Err(ChannelError::retryable(
            "zalo zns answer has no `error` field",
        )),
    }
}

impl Channel for ZaloZnsChannel {
    fn kind(&self) -> ChannelKind {
        ChannelKind::ZaloZns
    }

    fn send<'a>(&'a self, message: &'a Message) -> BoxFuture<'a, Result<Receipt, ChannelError>> {
        Box::pin(async move {
            let body = http::send(&self.client, "zalo zns", self.request(message)?).await?;
            read_answer(&body)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use uuid::Uuid;

    use super::*;

    fn channel() -> ZaloZnsChannel {
        ZaloZnsChannel::new(
            "http://zns-proxy.internal/message/template",
            Secret::new("zalo-access-token"),
            "7895417a7d3f9461cd2e",
            Duration::from_secs(5),
        )
        .unwrap()
    }

    #[test]
    fn request_carries_token_template_and_rendered_text() {
        let id = Uuid::now_v7();
        let message = Message {
            notification_id: id,
            order_id: Uuid::now_v7(),
            order_code: "OCOP7K2QF9".into(),
            customer_name: "Nguyễn Thị Hoa".into(),
            channel: ChannelKind::ZaloZns,
            template: "order_confirmed".into(),
            address: "0912345123".into(),
            subject: String::new(),
            body: "Chúng tôi đã nhận được khoản thanh toán 1.250.000 ₫.".into(),
        };
        let request = channel().request(&message).unwrap();
        assert_eq!(request.method(), reqwest::Method::POST);
        assert_eq!(
            request.url().as_str(),
            "http://zns-proxy.internal/message/template"
        );
        assert_eq!(request.headers()["access_token"], "zalo-access-token");
        assert_eq!(request.headers()["content-type"], "application/json");
        let body: serde_json::Value =
            serde_json::from_slice(request.body().unwrap().as_bytes().unwrap()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "phone": "84912345123",
                "template_id": "7895417a7d3f9461cd2e",
                "template_data": {
                    "customer_name": "Nguyễn Thị Hoa",
                    "order_code": "OCOP7K2QF9",
                    "content": "Chúng tôi đã nhận được khoản thanh toán 1.250.000 ₫.",
                },
                "tracking_id": id.to_string(),
            })
        );
    }

    #[test]
    fn answer_error_zero_is_success_with_the_message_id() {
        assert_eq!(
            read_answer(r#"{"error":0,"message":"Success","data":{"msg_id":"a1b2"}}"#),
            Ok(Receipt {
                provider_ref: Some("a1b2".into())
            })
        );
        let failed = read_answer(r#"{"error":-124,"message":"Access token invalid"}"#).unwrap_err();
        assert!(failed.retryable);
        assert_eq!(failed.message, "zalo zns error -124: Access token invalid");
        assert!(read_answer("<html>").unwrap_err().retryable);
    }

    #[test]
    fn an_empty_template_id_is_a_startup_error() {
        let err = ZaloZnsChannel::new("http://zns/", Secret::new("t"), " ", Duration::from_secs(1))
            .err()
            .unwrap()
            .to_string();
        assert!(err.starts_with("ZALO_TEMPLATE_ID"), "{err}");
    }
}
