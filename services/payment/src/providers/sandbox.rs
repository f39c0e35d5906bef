//! The sandbox provider: the project's own scheme (`sandbox::scheme`), for development,
//! tests and load runs, and the fallback of every method whose provider has no
//! credentials.

use axum::response::{IntoResponse as _, Response};
use chrono::{DateTime, Utc};
use ocop_payment_schemes::{
    Secret,
    sandbox::{CallbackBody, CallbackStatus, RefundAnswer, RefundBody, SIGNATURE_HEADER},
};
use uuid::Uuid;

use super::{
    CallbackRequest, ProviderAdapter, ProviderSettings, RefundOutcome, Refusal, Unavailable,
    read_json,
};
use crate::{
    callbacks::Reply,
    domain::{
        callback::{PaymentRef, ProviderReport, ProviderResult, VND},
        intent::Provider,
    },
    store::{IntentRecord, RefundRecord},
};

#[derive(Debug, Clone)]
pub struct SandboxAdapter {
    key: Secret,
    public_url: String,
    refund_url: String,
    client: reqwest::Client,
}

impl SandboxAdapter {
    pub fn new(settings: &ProviderSettings, client: reqwest::Client) -> Self {
        Self {
            key: settings.sandbox_key.clone(),
            public_url: settings.public_url.clone(),
            refund_url: format!("{}/api/refund", settings.sandbox_base(Provider::Sandbox)),
            client,
        }
    }
}

/// Reads a verified sandbox body.
pub fn parse(raw: &[u8]) -> Result<ProviderReport, Refusal> {
    let body: CallbackBody = serde_json::from_slice(raw)
        .map_err(|err| Refusal::malformed(format!("malformed body: {err}")))?;
    let Ok(payment_id) = body.payment_id.parse::<Uuid>() else {
        return Err(Refusal::malformed(format!(
            "malformed body: payment_id `{}` is not a UUID",
            body.payment_id
        )));
    };
    if body.provider_transaction_id.trim().is_empty() {
        return Err(Refusal::malformed(
            "malformed body: provider_transaction_id is empty",
        ));
    }
    let Some(sent_at) = DateTime::<Utc>::from_timestamp(body.timestamp, 0) else {
        return Err(Refusal::malformed(format!(
            "malformed body: timestamp {} is out of range",
            body.timestamp
        )));
    };
    let result = match body.status {
        CallbackStatus::Success => ProviderResult::Success,
        CallbackStatus::Failure => ProviderResult::Failure,
    };
    Ok(ProviderReport {
        payment: PaymentRef::Id(payment_id),
        amount_vnd: body.amount_vnd,
        currency: VND.into(),
        result,
        result_code: match result {
            ProviderResult::Success => String::new(),
            ProviderResult::Failure => crate::events::DECLINED.into(),
        },
        message: String::new(),
        provider_transaction_id: body.provider_transaction_id,
        sent_at,
    })
}

#[tonic::async_trait]
impl ProviderAdapter for SandboxAdapter {
    fn provider(&self) -> Provider {
        Provider::Sandbox
    }

    fn pay_page(&self, payment_id: Uuid) -> String {
        format!("{}/sandbox/pay/{payment_id}", self.public_url)
    }

    async fn checkout(&self, intent: &IntentRecord) -> Result<String, Unavailable> {
        Ok(self.pay_page(intent.id))
    }

    fn verify(&self, request: &CallbackRequest) -> Result<ProviderReport, Refusal> {
        let Some(signature) = request.header(SIGNATURE_HEADER) else {
            return Err(Refusal {
                verdict: "missing_signature",
                reason: format!("missing {SIGNATURE_HEADER} header"),
                signature_valid: false,
            });
        };
        self.key
            .verify_sha256_hex(&request.body, signature)
            .map_err(|err| Refusal {
                verdict: "invalid_signature",
                reason: err.to_string(),
                signature_valid: false,
            })?;
        parse(&request.body)
    }

    fn respond(&self, reply: &Reply) -> Response {
        reply.clone().into_response()
    }

    async fn refund(
        &self,
        intent: &IntentRecord,
        refund: &RefundRecord,
    ) -> Result<RefundOutcome, Unavailable> {
        let body = RefundBody {
            request_id: refund.id.to_string(),
            payment_id: intent.id.to_string(),
            provider_transaction_id: intent.provider_transaction_id.clone().unwrap_or_default(),
            amount_vnd: refund.amount_vnd,
            reason: refund.reason.clone(),
            timestamp: Utc::now().timestamp(),
        }
        .to_bytes();
        let sent = self
            .client
            .post(&self.refund_url)
            .header(SIGNATURE_HEADER, self.key.hmac_sha256_hex(&body))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await;
        let answer: RefundAnswer = read_json(Provider::Sandbox, sent).await?;
        Ok(match answer.status {
            CallbackStatus::Success => RefundOutcome::Succeeded {
                provider_refund_id: answer.provider_refund_id,
            },
            CallbackStatus::Failure => RefundOutcome::Failed {
                code: answer.code,
                message: answer.message,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_with_a_bad_payment_id_or_timestamp_is_malformed() {
        let body = |payment_id: &str, timestamp: i64| {
            format!(
                r#"{{"payment_id":"{payment_id}","order_code":"QN-1","amount_vnd":1,"status":"success","provider_transaction_id":"SBX1","timestamp":{timestamp}}}"#
            )
        };
        let ok = parse(body(&Uuid::nil().to_string(), 1_700_000_000).as_bytes()).unwrap();
        assert_eq!(ok.payment, PaymentRef::Id(Uuid::nil()));
        assert_eq!(ok.result, ProviderResult::Success);
        let refusal = parse(body("42", 1_700_000_000).as_bytes()).unwrap_err();
        assert_eq!(refusal.verdict, "malformed");
        assert!(refusal.signature_valid);
        assert!(refusal.reason.contains("payment_id"), "{}", refusal.reason);
        assert!(parse(body(&Uuid::nil().to_string(), i64::MAX).as_bytes()).is_err());
        assert!(parse(b"not json").is_err());
        assert!(parse(br#"{"payment_id":"x","status":"maybe"}"#).is_err());
    }
}
