//! ZaloPay (Open API v2): the shopper's click creates the ZaloPay order (`/v2/create`,
//! MAC with key1, `app_trans_id` = `yymmdd_` in GMT+7 of the payment's creation + our
//! payment id) and is redirected to its `order_url`; ZaloPay POSTs `{data, mac, type}`
//! to `/callbacks/zalopay` (MAC with key2) and reads `return_code` from the answer.
//! ZaloPay calls back only for paid orders; `query` tells about the others.
//!
//! Staleness: `server_time` (Unix ms) inside the MAC'd `data`, against
//! `CALLBACK_TOLERANCE`.

use axum::{
    Json,
    response::{IntoResponse as _, Response},
};
use chrono::Utc;
use ocop_payment_schemes::{
    Secret, from_millis,
    zalopay::{self, CallbackReply, Credentials},
};
use uuid::Uuid;

use super::{
    CallbackRequest, ProviderAdapter, ProviderSettings, RefundOutcome, Refusal, Unavailable,
    numeric_transaction_id, pay_page, payment_id_from, read_json,
};
use crate::{
    callbacks::Reply,
    domain::{
        callback::{PaymentRef, ProviderReport, ProviderResult, VND},
        intent::Provider,
    },
    store::{IntentRecord, RefundRecord},
};

/// ZaloPay's settings: `ZALOPAY_APP_ID`, `ZALOPAY_KEY1`, `ZALOPAY_KEY2`,
/// `ZALOPAY_ENDPOINT` (the sandbox gateway's when unset).
#[derive(Debug, Clone)]
pub struct ZaloPaySettings {
    pub app_id: i64,
    pub key1: Secret,
    pub key2: Secret,
    pub endpoint: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ZaloPayAdapter {
    credentials: Credentials,
    endpoint: String,
    public_url: String,
    callback_url: String,
    client: reqwest::Client,
}

/// The `app_trans_id` of a payment.
pub fn app_trans_id(intent: &IntentRecord) -> String {
    zalopay::app_trans_id(intent.created_at, &intent.id.simple().to_string())
        .expect("a 32-character suffix fits")
}

/// The payment named by an `app_trans_id`.
pub fn payment_of(app_trans_id: &str) -> Result<Uuid, Refusal> {
    let suffix = zalopay::app_trans_suffix(app_trans_id).ok_or_else(|| {
        Refusal::malformed(format!("app_trans_id `{app_trans_id}` is not yymmdd_…"))
    })?;
    payment_id_from(suffix)
}

impl ZaloPayAdapter {
    pub fn new(settings: ZaloPaySettings, all: &ProviderSettings, client: reqwest::Client) -> Self {
        Self {
            endpoint: settings
                .endpoint
                .clone()
                .unwrap_or_else(|| all.sandbox_base(Provider::ZaloPay)),
            credentials: Credentials {
                app_id: settings.app_id,
                key1: settings.key1,
                key2: settings.key2,
            },
            public_url: all.public_url.clone(),
            callback_url: all.callback_url(Provider::ZaloPay),
            client,
        }
    }

    /// Asks ZaloPay where a payment is (for a callback that never came).
    pub async fn query_status(
        &self,
        intent: &IntentRecord,
    ) -> Result<zalopay::QueryResponse, Unavailable> {
        let request = zalopay::QueryRequest::signed(
            self.credentials.app_id,
            &app_trans_id(intent),
            &self.credentials.key1,
        );
        let sent = self
            .client
            .post(format!("{}/v2/query", self.endpoint))
            .json(&request)
            .send()
            .await;
        read_json(Provider::ZaloPay, sent).await
    }
}

#[tonic::async_trait]
impl ProviderAdapter for ZaloPayAdapter {
    fn provider(&self) -> Provider {
        Provider::ZaloPay
    }

    fn pay_page(&self, payment_id: Uuid) -> String {
        pay_page(&self.public_url, payment_id)
    }

    async fn checkout(&self, intent: &IntentRecord) -> Result<String, Unavailable> {
        let embed = serde_json::json!({
            "redirecturl": self.pay_page(intent.id),
        })
        .to_string();
        let request = zalopay::CreateRequest {
            app_id: self.credentials.app_id,
            app_user: "ocop-market".into(),
            app_trans_id: app_trans_id(intent),
            app_time: Utc::now().timestamp_millis(),
            amount: intent.amount_vnd,
            item: "[]".into(),
            embed_data: embed,
            description: format!("OCOP - Thanh toan don hang {}", intent.order_code),
            bank_code: String::new(),
            // ZaloPay stops taking money when our deadline passes (at the earliest five
            // minutes from now, ZaloPay's minimum).
            expire_duration_seconds: Some(zalopay::expire_duration_seconds(
                Utc::now(),
                intent.expires_at,
            )),
            callback_url: self.callback_url.clone(),
            mac: String::new(),
        }
        .sign(&self.credentials.key1);
        let sent = self
            .client
            .post(format!("{}/v2/create", self.endpoint))
            .json(&request)
            .send()
            .await;
        let answer: zalopay::CreateResponse = read_json(Provider::ZaloPay, sent).await?;
        if answer.return_code != 1 || answer.order_url.is_empty() {
            return Err(Unavailable::new(
                Provider::ZaloPay,
                format!(
                    "create refused: {} {}",
                    answer.return_code, answer.return_message
                ),
            ));
        }
        Ok(answer.order_url)
    }

    fn verify(&self, request: &CallbackRequest) -> Result<ProviderReport, Refusal> {
        let data = zalopay::verify_callback(&self.credentials, &request.body)
            .map_err(Refusal::from_callback_error)?;
        let payment_id = payment_of(&data.app_trans_id)?;
        let sent_at = from_millis(data.server_time)
            .ok_or_else(|| Refusal::malformed("server_time is out of range"))?;
        Ok(ProviderReport {
            payment: PaymentRef::Id(payment_id),
            amount_vnd: data.amount,
            currency: VND.into(),
            // ZaloPay calls back for paid orders only.
            result: ProviderResult::Success,
            result_code: "1".into(),
            message: String::new(),
            provider_transaction_id: data.zp_trans_id.to_string(),
            sent_at,
        })
    }

    /// ZaloPay's `query` (MAC with key1): 1 paid, 2 failed, 3 not yet.
    async fn query(
        &self,
        intent: &IntentRecord,
    ) -> Result<Option<(ProviderReport, String)>, Unavailable> {
        let answer = self.query_status(intent).await?;
        let raw = serde_json::to_string(&answer).unwrap_or_default();
        let result = match answer.return_code {
            1 => ProviderResult::Success,
            2 => ProviderResult::Failure,
            _ => return Ok(None),
        };
        Ok(Some((
            ProviderReport {
                payment: PaymentRef::Id(intent.id),
                // A failed order reports no amount: judge it against the intent's.
                amount_vnd: if result == ProviderResult::Success {
                    answer.amount
                } else {
                    intent.amount_vnd
                },
                currency: VND.into(),
                result,
                result_code: answer.return_code.to_string(),
                message: answer.return_message,
                provider_transaction_id: if answer.zp_trans_id > 0 {
                    answer.zp_trans_id.to_string()
                } else {
                    format!("{}-failed", app_trans_id(intent))
                },
                sent_at: Utc::now(),
            },
            raw,
        )))
    }

    fn respond(&self, reply: &Reply) -> Response {
        let (code, message) = match reply.verdict {
            "accepted" => (1, "success".to_owned()),
            "already_processed" | "closed" | "late" => (2, reply.reason.clone()),
            "missing_signature" | "invalid_signature" => (-1, "mac not equal".to_owned()),
            _ => (0, reply.reason.clone()),
        };
        Json(CallbackReply {
            return_code: code,
            return_message: message,
        })
        .into_response()
    }

    async fn refund(
        &self,
        intent: &IntentRecord,
        refund: &RefundRecord,
    ) -> Result<RefundOutcome, Unavailable> {
        let zp_trans_id = numeric_transaction_id(intent, Provider::ZaloPay, "zp_trans_id")?;
        let request = zalopay::RefundRequest {
            m_refund_id: zalopay::m_refund_id(
                refund.created_at,
                self.credentials.app_id,
                &refund.id.simple().to_string(),
            ),
            app_id: self.credentials.app_id,
            zp_trans_id,
            amount: refund.amount_vnd,
            timestamp: Utc::now().timestamp_millis(),
            description: format!("Hoan tien don hang {}", intent.order_code),
            mac: String::new(),
        }
        .sign(&self.credentials.key1);
        let sent = self
            .client
            .post(format!("{}/v2/refund", self.endpoint))
            .json(&request)
            .send()
            .await;
        let answer: zalopay::RefundResponse = read_json(Provider::ZaloPay, sent).await?;
        match answer.return_code {
            1 => Ok(RefundOutcome::Succeeded {
                provider_refund_id: answer.refund_id.to_string(),
            }),
            3 => Err(Unavailable::new(
                Provider::ZaloPay,
                "refund still processing",
            )),
            code => Ok(RefundOutcome::Failed {
                code: code.to_string(),
                message: answer.return_message,
            }),
        }
    }
}
