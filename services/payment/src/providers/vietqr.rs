//! VietQR (NAPAS 247 bank transfer): the shopper scans an EMVCo QR code (our payload:
//! our account, the amount, the order code as memo) in any banking app; the bank
//! notifies the credit through a signed webhook (`/callbacks/vietqr`), matched to the
//! payment by the memo containing the order code (punctuation and case ignored) and
//! checked against the amount. An under- or over-payment is recorded and flagged for
//! an operator, never confirmed.
//!
//! Staleness: the signed `X-Webhook-Timestamp` against `CALLBACK_TOLERANCE`.
//! Refunds: a bank transfer has no refund API; a VietQR refund fails with
//! `manual_transfer_required` (an operator transfers the money back from the bank).

use axum::response::{IntoResponse as _, Response};
use chrono::DateTime;
use ocop_payment_schemes::{
    Secret,
    vietqr::{self, Transfer},
};
use uuid::Uuid;

use super::{
    CallbackRequest, Instructions, ProviderAdapter, ProviderSettings, RefundOutcome, Refusal,
    Unavailable, VietQrInstructions, pay_page,
};
use crate::{
    callbacks::Reply,
    domain::{
        callback::{PaymentRef, ProviderReport, ProviderResult},
        intent::{PaymentRequest, Provider},
    },
    store::{IntentRecord, RefundRecord},
};

/// VietQR's settings: `VIETQR_BANK_BIN`, `VIETQR_ACCOUNT_NUMBER`,
/// `VIETQR_ACCOUNT_NAME`, `VIETQR_WEBHOOK_SECRET`.
#[derive(Debug, Clone)]
pub struct VietQrSettings {
    pub bank_bin: String,
    pub account_number: String,
    pub account_name: String,
    pub webhook_secret: Secret,
}

#[derive(Debug, Clone)]
pub struct VietQrAdapter {
    settings: VietQrSettings,
    public_url: String,
}

impl VietQrAdapter {
    pub fn new(settings: VietQrSettings, all: &ProviderSettings) -> Self {
        Self {
            settings,
            public_url: all.public_url.clone(),
        }
    }
}

#[tonic::async_trait]
impl ProviderAdapter for VietQrAdapter {
    fn provider(&self) -> Provider {
        Provider::VietQr
    }

    fn pay_page(&self, payment_id: Uuid) -> String {
        pay_page(&self.public_url, payment_id)
    }

    fn instructions(
        &self,
        payment_id: Uuid,
        request: &PaymentRequest,
    ) -> anyhow::Result<Instructions> {
        let transfer = Transfer {
            bank_bin: self.settings.bank_bin.clone(),
            account_number: self.settings.account_number.clone(),
            amount_vnd: Some(request.amount.get()),
            memo: request.order_code.clone(),
        };
        Ok(Instructions::VietQr(VietQrInstructions {
            payload: transfer.payload()?,
            image_url: format!("{}/qr.svg", self.pay_page(payment_id)),
            bank_bin: transfer.bank_bin,
            account_number: transfer.account_number,
            account_name: self.settings.account_name.clone(),
            memo: transfer.memo,
        }))
    }

    async fn checkout(&self, intent: &IntentRecord) -> Result<String, Unavailable> {
        // Nothing to create: our own page shows the code.
        Ok(self.pay_page(intent.id))
    }

    fn verify(&self, request: &CallbackRequest) -> Result<ProviderReport, Refusal> {
        let verified = vietqr::verify_webhook(
            &self.settings.webhook_secret,
            request.header(vietqr::TIMESTAMP_HEADER),
            request.header(vietqr::SIGNATURE_HEADER),
            &request.body,
        )
        .map_err(Refusal::from_callback_error)?;
        let notification = verified.notification;
        if notification.account_number != self.settings.account_number {
            return Err(Refusal::malformed(format!(
                "account {} is not ours",
                notification.account_number
            )));
        }
        let sent_at = DateTime::from_timestamp(verified.timestamp, 0)
            .ok_or_else(|| Refusal::malformed("the timestamp is out of range"))?;
        Ok(ProviderReport {
            payment: PaymentRef::Memo(notification.description),
            amount_vnd: notification.amount,
            currency: notification.currency,
            result: ProviderResult::Success,
            result_code: String::new(),
            message: String::new(),
            provider_transaction_id: notification.transaction_id,
            sent_at,
        })
    }

    fn respond(&self, reply: &Reply) -> Response {
        // The bank retries anything but 2xx; a recorded refusal (flagged for an
        // operator) gains nothing from a retry.
        let mut reply = reply.clone();
        if matches!(
            reply.verdict,
            "wrong_amount" | "unknown_payment" | "closed" | "late"
        ) {
            reply.status = axum::http::StatusCode::OK;
        }
        reply.into_response()
    }

    async fn refund(
        &self,
        _intent: &IntentRecord,
        _refund: &RefundRecord,
    ) -> Result<RefundOutcome, Unavailable> {
        Ok(RefundOutcome::Failed {
            code: "manual_transfer_required".into(),
            message: "a VietQR transfer has no refund API: transfer the money back from the bank"
                .into(),
        })
    }
}
