//! VNPay (API 2.1.0): the shopper is redirected to the signed payment URL; VNPay GETs
//! the IPN (`/callbacks/vnpay?vnp_…&vnp_SecureHash=…`) and expects JSON `RspCode`s;
//! the return URL (`/payments/vnpay/return`) only shows the result; refunds go through
//! the merchant API (`vnp_Command=refund`).
//!
//! Staleness: an IPN carries no send time, so `vnp_PayDate` (when the shopper paid, GMT+7)
//! is checked against `CALLBACK_TOLERANCE`; VNPay retries an unacknowledged IPN only for
//! a short while after the payment, so the tolerance must cover its retry window.

use axum::{
    Json,
    response::{IntoResponse as _, Response},
};
use chrono::Utc;
use ocop_payment_schemes::{
    Secret, vn_datetime,
    vnpay::{self, ApiResponse, IpnReply, PayRequest, RefundRequest, RspCode},
};
use uuid::Uuid;

use super::{
    CallbackRequest, ProviderAdapter, ProviderSettings, RefundOutcome, Refusal, Unavailable,
    pay_page, payment_id_from, read_json,
};
use crate::{
    callbacks::Reply,
    domain::{
        callback::{PaymentRef, ProviderReport, ProviderResult, VND},
        intent::Provider,
    },
    store::{IntentRecord, RefundRecord},
};

/// VNPay's settings: `VNPAY_TMN_CODE`, `VNPAY_HASH_SECRET`, and the endpoints
/// (`VNPAY_PAY_URL`, `VNPAY_API_URL`; the sandbox gateway's when unset).
#[derive(Debug, Clone)]
pub struct VnPaySettings {
    pub tmn_code: String,
    pub hash_secret: Secret,
    pub pay_url: Option<String>,
    pub api_url: Option<String>,
}

#[derive(Debug, Clone)]
pub struct VnPayAdapter {
    settings: VnPaySettings,
    pay_url: String,
    api_url: String,
    return_url: String,
    public_url: String,
    client: reqwest::Client,
}

/// The `vnp_TxnRef` of a payment: its id without hyphens.
pub fn txn_ref(payment_id: Uuid) -> String {
    payment_id.simple().to_string()
}

impl VnPayAdapter {
    pub fn new(settings: VnPaySettings, all: &ProviderSettings, client: reqwest::Client) -> Self {
        let sandbox = all.sandbox_base(Provider::VnPay);
        Self {
            pay_url: settings
                .pay_url
                .clone()
                .unwrap_or_else(|| format!("{sandbox}/paymentv2/vpcpay.html")),
            api_url: settings
                .api_url
                .clone()
                .unwrap_or_else(|| format!("{sandbox}/merchant_webapi/api/transaction")),
            return_url: format!("{}/payments/vnpay/return", all.public_url),
            public_url: all.public_url.clone(),
            settings,
            client,
        }
    }

    /// Reads verified IPN/return parameters into a report.
    pub fn report(&self, result: &vnpay::PaymentResult) -> Result<ProviderReport, Refusal> {
        if result.tmn_code != self.settings.tmn_code {
            return Err(Refusal::malformed(format!(
                "vnp_TmnCode `{}` is not ours",
                result.tmn_code
            )));
        }
        let payment_id = payment_id_from(&result.txn_ref)?;
        let succeeded = result.succeeded();
        // A failed payment may carry transaction number 0: keep the key unique per payment.
        let transaction = if result.transaction_no == "0" {
            format!("{}-0", result.txn_ref)
        } else {
            result.transaction_no.clone()
        };
        Ok(ProviderReport {
            payment: PaymentRef::Id(payment_id),
            amount_vnd: result.amount_vnd,
            currency: VND.into(),
            result: if succeeded {
                ProviderResult::Success
            } else {
                ProviderResult::Failure
            },
            result_code: result.response_code.clone(),
            message: format!("VNPay response code {}", result.response_code),
            provider_transaction_id: transaction,
            sent_at: result.pay_date,
        })
    }

    /// The `vnp_SecureHash` of a merchant-API request's hash data.
    fn secure_hash(&self, hash_data: &str) -> String {
        self.settings
            .hash_secret
            .hmac_sha512_hex(hash_data.as_bytes())
    }

    /// Sends a hashed `command` request (refund, querydr) to the merchant API and checks
    /// the answer's hash: an answer that is not VNPay's is no answer.
    async fn call_api(
        &self,
        request: &impl serde::Serialize,
        command: &str,
    ) -> Result<ApiResponse, Unavailable> {
        let sent = self.client.post(&self.api_url).json(request).send().await;
        let answer: ApiResponse = read_json(Provider::VnPay, sent).await?;
        self.settings
            .hash_secret
            .verify_sha512_hex(
                vnpay::response_hash_data(&answer).as_bytes(),
                &answer.vnp_SecureHash,
            )
            .map_err(|err| Unavailable::new(Provider::VnPay, format!("{command} answer: {err}")))?;
        Ok(answer)
    }

    pub fn verify_query(&self, query: &str) -> Result<vnpay::PaymentResult, Refusal> {
        vnpay::verify_ipn(&self.settings.hash_secret, query).map_err(Refusal::from_callback_error)
    }
}

/// The `RspCode` answering a verdict.
pub fn rsp_code(verdict: &str) -> RspCode {
    match verdict {
        "accepted" => RspCode::Confirmed,
        "already_processed" | "closed" | "late" => RspCode::AlreadyConfirmed,
        "unknown_payment" => RspCode::OrderNotFound,
        "wrong_amount" => RspCode::InvalidAmount,
        "missing_signature" | "invalid_signature" => RspCode::InvalidSignature,
        _ => RspCode::Other,
    }
}

#[tonic::async_trait]
impl ProviderAdapter for VnPayAdapter {
    fn provider(&self) -> Provider {
        Provider::VnPay
    }

    fn pay_page(&self, payment_id: Uuid) -> String {
        pay_page(&self.public_url, payment_id)
    }

    async fn checkout(&self, intent: &IntentRecord) -> Result<String, Unavailable> {
        let request = PayRequest {
            tmn_code: self.settings.tmn_code.clone(),
            amount_vnd: intent.amount_vnd,
            txn_ref: txn_ref(intent.id),
            order_info: format!("Thanh toan don hang {}", intent.order_code),
            return_url: self.return_url.clone(),
            ip_addr: "127.0.0.1".into(),
            // The merchant's transaction date: refunds and querydr name it again.
            created_at: intent.created_at,
            expires_at: intent.expires_at,
        };
        Ok(request.url(&self.pay_url, &self.settings.hash_secret))
    }

    fn verify(&self, request: &CallbackRequest) -> Result<ProviderReport, Refusal> {
        let result = self.verify_query(&request.query)?;
        self.report(&result)
    }

    /// VNPay's `querydr` (for an IPN that never came); the answer's hash is verified.
    async fn query(
        &self,
        intent: &IntentRecord,
    ) -> Result<Option<(ProviderReport, String)>, Unavailable> {
        let mut request = vnpay::QueryRequest {
            vnp_RequestId: Uuid::new_v4().simple().to_string(),
            vnp_Version: vnpay::VERSION.into(),
            vnp_Command: "querydr".into(),
            vnp_TmnCode: self.settings.tmn_code.clone(),
            vnp_TxnRef: txn_ref(intent.id),
            vnp_OrderInfo: format!("Truy van don hang {}", intent.order_code),
            vnp_TransactionDate: vn_datetime(intent.created_at),
            vnp_CreateDate: vn_datetime(Utc::now()),
            vnp_IpAddr: "127.0.0.1".into(),
            vnp_SecureHash: String::new(),
        };
        request.vnp_SecureHash = self.secure_hash(&vnpay::querydr_hash_data(&request));
        let answer = self.call_api(&request, "querydr").await?;
        let result = match (
            answer.vnp_ResponseCode.as_str(),
            answer.vnp_TransactionStatus.as_str(),
        ) {
            ("00", "00") => ProviderResult::Success,
            ("00", "02") => ProviderResult::Failure,
            _ => return Ok(None),
        };
        let amount_vnd = querydr_amount(result, &answer.vnp_Amount, intent.amount_vnd)?;
        let raw = serde_json::to_string(&answer).unwrap_or_default();
        Ok(Some((
            ProviderReport {
                payment: PaymentRef::Id(intent.id),
                amount_vnd,
                currency: VND.into(),
                result,
                result_code: answer.vnp_TransactionStatus.clone(),
                message: answer.vnp_Message.clone(),
                provider_transaction_id: answer.vnp_TransactionNo.clone(),
                sent_at: Utc::now(),
            },
            raw,
        )))
    }

    fn respond(&self, reply: &Reply) -> Response {
        // VNPay reads the JSON, not the HTTP status.
        Json(IpnReply::from(rsp_code(reply.verdict))).into_response()
    }

    async fn refund(
        &self,
        intent: &IntentRecord,
        refund: &RefundRecord,
    ) -> Result<RefundOutcome, Unavailable> {
        let full = refund.amount_vnd == intent.captured_vnd;
        let mut request = RefundRequest {
            vnp_RequestId: refund.id.simple().to_string(),
            vnp_Version: vnpay::VERSION.into(),
            vnp_Command: "refund".into(),
            vnp_TmnCode: self.settings.tmn_code.clone(),
            vnp_TransactionType: if full { "02" } else { "03" }.into(),
            vnp_TxnRef: txn_ref(intent.id),
            vnp_Amount: (refund.amount_vnd * 100).to_string(),
            vnp_OrderInfo: format!("Hoan tien don hang {}", intent.order_code),
            vnp_TransactionNo: intent.provider_transaction_id.clone().unwrap_or_default(),
            vnp_TransactionDate: vn_datetime(intent.created_at),
            vnp_CreateBy: "ocop-operator".into(),
            vnp_CreateDate: vn_datetime(Utc::now()),
            vnp_IpAddr: "127.0.0.1".into(),
            vnp_SecureHash: String::new(),
        };
        request.vnp_SecureHash = self.secure_hash(&vnpay::refund_hash_data(&request));
        let answer = self.call_api(&request, "refund").await?;
        match refund_answer(&answer.vnp_ResponseCode) {
            Some(true) => Ok(RefundOutcome::Succeeded {
                provider_refund_id: answer.vnp_TransactionNo,
            }),
            Some(false) => Ok(RefundOutcome::Failed {
                code: answer.vnp_ResponseCode,
                message: answer.vnp_Message,
            }),
            None => Err(Unavailable::new(
                Provider::VnPay,
                format!(
                    "refund answered {}: {}",
                    answer.vnp_ResponseCode, answer.vnp_Message
                ),
            )),
        }
    }
}

/// What a refund answer's `vnp_ResponseCode` decides: `Some(true)` refunded, `Some(false)`
/// refused, `None` nothing yet — 94 (a duplicate of a request still within the API's
/// window, as a retry of a refund whose first answer was lost) and 99 (unknown error)
/// leave the refund pending, to be asked again, rather than record a refund that may
/// have gone through as failed.
fn refund_answer(code: &str) -> Option<bool> {
    match code {
        "00" => Some(true),
        "94" | "99" => None,
        _ => Some(false),
    }
}

/// The amount a `querydr` answer reports, in VND. A success is judged on the amount
/// VNPay names, never on ours: one it sends unreadable (not whole VND × 100) is no
/// answer to act on, so the query counts as failed and is asked again later. A failure
/// moves no money, so it is judged against the intent's own amount.
fn querydr_amount(
    result: ProviderResult,
    reported: &str,
    intent_amount_vnd: i64,
) -> Result<i64, Unavailable> {
    if result != ProviderResult::Success {
        return Ok(intent_amount_vnd);
    }
    reported
        .parse::<i64>()
        .ok()
        .filter(|minor| *minor > 0 && minor % 100 == 0)
        .map(|minor| minor / 100)
        .ok_or_else(|| {
            Unavailable::new(
                Provider::VnPay,
                format!("querydr reported a success with an unreadable vnp_Amount {reported:?}"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_duplicate_refund_request_leaves_the_refund_pending() {
        assert_eq!(refund_answer("00"), Some(true));
        assert_eq!(refund_answer("94"), None);
        assert_eq!(refund_answer("99"), None);
        // 02 invalid merchant, 91 transaction not found, 95 refused by VNPay.
        for refused in ["02", "91", "95"] {
            assert_eq!(refund_answer(refused), Some(false), "{refused}");
        }
    }

    #[test]
    fn querydr_success_is_judged_on_the_amount_vnpay_reports() {
        assert_eq!(
            querydr_amount(ProviderResult::Success, "12000000", 150_000).unwrap(),
            120_000
        );
    }

    #[test]
    fn querydr_success_with_an_unreadable_amount_is_no_answer() {
        for reported in ["", "abc", "12345", "-10000", "0"] {
            let refused = querydr_amount(ProviderResult::Success, reported, 150_000);
            assert!(refused.is_err(), "{reported:?} was read as {refused:?}");
        }
    }

    #[test]
    fn querydr_failure_is_judged_on_the_intents_amount() {
        assert_eq!(
            querydr_amount(ProviderResult::Failure, "", 150_000).unwrap(),
            150_000
        );
    }

    #[test]
    fn verdicts_map_to_vnpays_codes() {
        assert_eq!(rsp_code("accepted"), RspCode::Confirmed);
        assert_eq!(rsp_code("already_processed"), RspCode::AlreadyConfirmed);
        assert_eq!(rsp_code("unknown_payment"), RspCode::OrderNotFound);
        assert_eq!(rsp_code("wrong_amount"), RspCode::InvalidAmount);
        assert_eq!(rsp_code("invalid_signature"), RspCode::InvalidSignature);
        assert_eq!(rsp_code("stale"), RspCode::Other);
        assert_eq!(rsp_code("malformed"), RspCode::Other);
    }
}
