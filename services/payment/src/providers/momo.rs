//! MoMo (All-In-One v2): the shopper's click creates the MoMo payment
//! (`/v2/gateway/api/create`, `requestId` = our payment id, so a retry is idempotent)
//! and is redirected to MoMo's `payUrl`; MoMo POSTs the IPN to `/callbacks/momo`, which
//! is answered 204. Amounts outside 10,000–50,000,000 VND are refused before MoMo is
//! called: the payment fails at once with `amount_out_of_range`.
//!
//! Staleness: the IPN's `responseTime` (Unix ms, signed) against `CALLBACK_TOLERANCE`.

use axum::{
    http::StatusCode,
    response::{IntoResponse as _, Response},
};
use ocop_payment_schemes::{
    Secret, from_millis,
    momo::{self, Credentials},
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

/// What a query's `resultCode` says about the payment, after MoMo's result-code table
/// ("Final Status"): only a final code decides it. A payment still in progress is left
/// to its deadline; a code about the request itself (maintenance, access, format, an
/// order MoMo does not know yet) says nothing about the payment and is asked again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum QueryStatus {
    Final(ProviderResult),
    InProgress,
    NoAnswer,
}

fn query_status(result_code: i64) -> QueryStatus {
    match result_code {
        // 9000: authorised; with autoCapture (our create) that is a payment made.
        0 | 9000 => QueryStatus::Final(ProviderResult::Success),
        // Initiated, being processed, processed by the payment type's provider, waiting
        // for the shopper to confirm again.
        1000 | 7000 | 7002 | 8000 => QueryStatus::InProgress,
        // Declined by the shopper, the wallet or the issuer, expired, cancelled, or
        // restricted: the payment is over.
        1001..=1007 | 1017 | 1026 | 4001 | 4002 | 4100 => {
            QueryStatus::Final(ProviderResult::Failure)
        }
        _ => QueryStatus::NoAnswer,
    }
}

/// MoMo's settings: `MOMO_PARTNER_CODE`, `MOMO_ACCESS_KEY`, `MOMO_SECRET_KEY`,
/// `MOMO_ENDPOINT` (the sandbox gateway's when unset).
#[derive(Debug, Clone)]
pub struct MoMoSettings {
    pub partner_code: String,
    pub access_key: String,
    pub secret_key: Secret,
    pub endpoint: Option<String>,
}

#[derive(Debug, Clone)]
pub struct MoMoAdapter {
    credentials: Credentials,
    endpoint: String,
    public_url: String,
    ipn_url: String,
    client: reqwest::Client,
}

impl MoMoAdapter {
    pub fn new(settings: MoMoSettings, all: &ProviderSettings, client: reqwest::Client) -> Self {
        Self {
            endpoint: settings
                .endpoint
                .clone()
                .unwrap_or_else(|| all.sandbox_base(Provider::MoMo)),
            credentials: Credentials {
                partner_code: settings.partner_code,
                access_key: settings.access_key,
                secret_key: settings.secret_key,
            },
            public_url: all.public_url.clone(),
            ipn_url: all.callback_url(Provider::MoMo),
            client,
        }
    }
}

#[tonic::async_trait]
impl ProviderAdapter for MoMoAdapter {
    fn provider(&self) -> Provider {
        Provider::MoMo
    }

    fn precheck(&self, amount_vnd: i64) -> Result<(), (String, String)> {
        momo::check_amount(amount_vnd).map_err(|message| ("amount_out_of_range".into(), message))
    }

    fn pay_page(&self, payment_id: Uuid) -> String {
        pay_page(&self.public_url, payment_id)
    }

    async fn checkout(&self, intent: &IntentRecord) -> Result<String, Unavailable> {
        momo::check_amount(intent.amount_vnd)
            .map_err(|err| Unavailable::new(Provider::MoMo, err))?;
        let extra = serde_json::json!({ "order_code": intent.order_code }).to_string();
        let request = momo::CreateRequest {
            partner_code: self.credentials.partner_code.clone(),
            request_id: intent.id.to_string(),
            amount: intent.amount_vnd,
            order_id: intent.id.to_string(),
            order_info: format!("Thanh toan don hang {}", intent.order_code),
            redirect_url: self.pay_page(intent.id),
            ipn_url: self.ipn_url.clone(),
            request_type: momo::CAPTURE_WALLET.into(),
            extra_data: momo::encode_extra_data(extra.as_bytes()),
            lang: "vi".into(),
            signature: String::new(),
        }
        .sign(&self.credentials);
        let sent = self
            .client
            .post(format!("{}/v2/gateway/api/create", self.endpoint))
            .json(&request)
            .send()
            .await;
        let answer: momo::CreateResponse = read_json(Provider::MoMo, sent).await?;
        if answer.result_code != 0 || answer.pay_url.is_empty() {
            return Err(Unavailable::new(
                Provider::MoMo,
                format!("create refused: {} {}", answer.result_code, answer.message),
            ));
        }
        Ok(answer.pay_url)
    }

    fn verify(&self, request: &CallbackRequest) -> Result<ProviderReport, Refusal> {
        let ipn = momo::verify_ipn(&self.credentials, &request.body)
            .map_err(Refusal::from_callback_error)?;
        let payment_id = payment_id_from(&ipn.order_id)?;
        let sent_at = from_millis(ipn.response_time)
            .ok_or_else(|| Refusal::malformed("responseTime is out of range"))?;
        Ok(ProviderReport {
            payment: PaymentRef::Id(payment_id),
            amount_vnd: ipn.amount,
            currency: VND.into(),
            result: if ipn.succeeded() {
                ProviderResult::Success
            } else {
                ProviderResult::Failure
            },
            result_code: ipn.result_code.to_string(),
            message: ipn.message,
            provider_transaction_id: ipn.trans_id.to_string(),
            sent_at,
        })
    }

    /// MoMo's query (for an IPN that never came): 0/9000 paid, 1000 still waiting,
    /// anything else failed.
    async fn query(
        &self,
        intent: &IntentRecord,
    ) -> Result<Option<(ProviderReport, String)>, Unavailable> {
        let request = momo::QueryRequest {
            partner_code: self.credentials.partner_code.clone(),
            request_id: Uuid::new_v4().to_string(),
            order_id: intent.id.to_string(),
            lang: "vi".into(),
            signature: String::new(),
        }
        .sign(&self.credentials);
        let sent = self
            .client
            .post(format!("{}/v2/gateway/api/query", self.endpoint))
            .json(&request)
            .send()
            .await;
        let answer: momo::QueryResponse = read_json(Provider::MoMo, sent).await?;
        if answer.order_id != intent.id.to_string() {
            return Err(Unavailable::new(
                Provider::MoMo,
                "query answered for another order",
            ));
        }
        let result = match query_status(answer.result_code) {
            QueryStatus::Final(result) => result,
            QueryStatus::InProgress => return Ok(None),
            QueryStatus::NoAnswer => {
                return Err(Unavailable::new(
                    Provider::MoMo,
                    format!(
                        "query answered resultCode {}: {}",
                        answer.result_code, answer.message
                    ),
                ));
            }
        };
        let raw = serde_json::to_string(&answer).unwrap_or_default();
        Ok(Some((
            ProviderReport {
                payment: PaymentRef::Id(intent.id),
                amount_vnd: if result == ProviderResult::Success {
                    answer.amount
                } else {
                    intent.amount_vnd
                },
                currency: VND.into(),
                result,
                result_code: answer.result_code.to_string(),
                message: answer.message,
                provider_transaction_id: if answer.trans_id > 0 {
                    answer.trans_id.to_string()
                } else {
                    format!("{}-failed", intent.id)
                },
                sent_at: chrono::Utc::now(),
            },
            raw,
        )))
    }

    fn respond(&self, reply: &Reply) -> Response {
        // MoMo wants 204 for an IPN it need not send again.
        let status = match reply.verdict {
            "accepted" | "already_processed" | "closed" | "late" => StatusCode::NO_CONTENT,
            "internal" => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        };
        status.into_response()
    }

    async fn refund(
        &self,
        intent: &IntentRecord,
        refund: &RefundRecord,
    ) -> Result<RefundOutcome, Unavailable> {
        let trans_id = numeric_transaction_id(intent, Provider::MoMo, "MoMo transId")?;
        let request = momo::RefundRequest {
            partner_code: self.credentials.partner_code.clone(),
            order_id: refund.id.to_string(),
            request_id: refund.id.to_string(),
            amount: refund.amount_vnd,
            trans_id,
            lang: "vi".into(),
            description: format!("Hoan tien don hang {}", intent.order_code),
            signature: String::new(),
        }
        .sign(&self.credentials);
        let sent = self
            .client
            .post(format!("{}/v2/gateway/api/refund", self.endpoint))
            .json(&request)
            .send()
            .await;
        let answer: momo::RefundResponse = read_json(Provider::MoMo, sent).await?;
        match query_status(answer.result_code) {
            QueryStatus::Final(ProviderResult::Success) => Ok(RefundOutcome::Succeeded {
                provider_refund_id: answer.trans_id.to_string(),
            }),
            QueryStatus::Final(ProviderResult::Failure) => Ok(RefundOutcome::Failed {
                code: answer.result_code.to_string(),
                message: answer.message,
            }),
            // Still processing, or an answer about the request — "duplicated requestId"
            // (40) above all, which MoMo gives to a retry of a refund whose first answer
            // was not final: the refund may well have gone through, so it stays pending
            // and is asked again; MoMo answers the same requestId with its final result
            // once it has one.
            QueryStatus::InProgress | QueryStatus::NoAnswer => Err(Unavailable::new(
                Provider::MoMo,
                format!(
                    "refund answered resultCode {}: {}",
                    answer.result_code, answer.message
                ),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payment_still_in_progress_is_not_failed() {
        for code in [1000, 7000, 7002, 8000] {
            assert_eq!(query_status(code), QueryStatus::InProgress, "{code}");
        }
    }

    #[test]
    fn an_answer_about_the_request_is_no_answer_about_the_payment() {
        // Maintenance, access denied, bad format, unknown or duplicate order, system error.
        for code in [10, 11, 20, 41, 42, 43, 98, 99] {
            assert_eq!(query_status(code), QueryStatus::NoAnswer, "{code}");
        }
    }

    #[test]
    fn a_duplicated_refund_request_is_not_a_failed_refund() {
        // 40: duplicated requestId; 43: a similar transaction is being processed.
        for code in [40, 43] {
            assert_eq!(query_status(code), QueryStatus::NoAnswer, "{code}");
        }
    }

    #[test]
    fn only_final_codes_decide_the_payment() {
        assert_eq!(query_status(0), QueryStatus::Final(ProviderResult::Success));
        assert_eq!(
            query_status(9000),
            QueryStatus::Final(ProviderResult::Success)
        );
        for code in [1001, 1005, 1006, 1017, 4100] {
            assert_eq!(
                query_status(code),
                QueryStatus::Final(ProviderResult::Failure),
                "{code}"
            );
        }
    }
}
