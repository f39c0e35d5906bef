//! The payment's gRPC API: the only module besides `events.rs` that sees prost types.

use ocop_grpc_kit::{
    auth::Access,
    validation::{FieldViolation, parse_uuid},
};
use ocop_proto::payment::v1::{self as pb, payment_service_server::PaymentService};
use tonic::{Request, Response, Status};

use crate::{
    domain::{
        Invalid,
        intent::PaymentStatus,
        refund::{self, RefundRequest, RefundStatus, Refunded},
    },
    error::PaymentError,
    service::Payments,
    store::{IntentRecord, RefundRecord},
};
use ocop_proto::contract::timestamp;

/// Reading a payment needs `payment:read`; refunds need `payment:write`.
pub fn policy(method: &str) -> Option<Access> {
    match method.strip_prefix("/ocop.payment.v1.PaymentService/")? {
        "GetPayment" => Some(Access::Scope("payment:read")),
        "Refund" => Some(Access::Scope("payment:write")),
        _ => None,
    }
}

impl From<Invalid> for FieldViolation {
    fn from(invalid: Invalid) -> Self {
        FieldViolation::new(invalid.field, invalid.reason)
    }
}

impl From<PaymentError> for Status {
    fn from(err: PaymentError) -> Self {
        match err {
            PaymentError::Invalid(invalid) => FieldViolation::from(invalid).into(),
            PaymentError::NotFound { field, message } => {
                Status::not_found(format!("{field}: {message}"))
            }
            PaymentError::Unavailable(message) => Status::unavailable(message),
            PaymentError::Internal(err) => {
                tracing::error!(error = format!("{err:#}"), "internal error");
                Status::internal("internal error")
            }
        }
    }
}

fn status(status: PaymentStatus) -> pb::PaymentStatus {
    match status {
        PaymentStatus::Pending => pb::PaymentStatus::Pending,
        PaymentStatus::Succeeded => pb::PaymentStatus::Succeeded,
        PaymentStatus::Failed => pb::PaymentStatus::Failed,
        PaymentStatus::Expired => pb::PaymentStatus::Expired,
        // The contract has no CANCELLED yet; a cancelled intent will not succeed any
        // more, which is what FAILED promises.
        PaymentStatus::Cancelled => pb::PaymentStatus::Failed,
    }
}

/// Refund record → message.
pub fn refund_to_proto(record: &RefundRecord) -> pb::Refund {
    pb::Refund {
        id: record.id.to_string(),
        amount_vnd: record.amount_vnd,
        status: match record.status {
            RefundStatus::Pending => pb::RefundStatus::Pending,
            RefundStatus::Succeeded => pb::RefundStatus::Succeeded,
            RefundStatus::Failed => pb::RefundStatus::Failed,
        } as i32,
        reason: record.reason.clone(),
        provider_refund_id: record.provider_refund_id.clone().unwrap_or_default(),
        created_at: Some(timestamp::to_proto(record.created_at)),
    }
}

/// Record → message.
pub fn payment_to_proto(record: &IntentRecord, refunds: &[RefundRecord]) -> pb::Payment {
    let status = match refund::refunded(record.captured_vnd, record.refunded_vnd) {
        Refunded::Fully => pb::PaymentStatus::Refunded,
        Refunded::Partially => pb::PaymentStatus::PartiallyRefunded,
        Refunded::None => status(record.status),
    };
    pb::Payment {
        id: record.id.to_string(),
        order_id: record.order_id.to_string(),
        provider: crate::events::provider(record.provider) as i32,
        status: status as i32,
        amount_vnd: record.amount_vnd,
        captured_vnd: record.captured_vnd,
        refunded_vnd: record.refunded_vnd,
        pay_url: record.pay_url.clone(),
        vietqr_payload: record.vietqr_payload.clone().unwrap_or_default(),
        provider_transaction_id: record.provider_transaction_id.clone().unwrap_or_default(),
        expires_at: Some(timestamp::to_proto(record.expires_at)),
        created_at: Some(timestamp::to_proto(record.created_at)),
        updated_at: Some(timestamp::to_proto(record.updated_at)),
        refunds: refunds.iter().map(refund_to_proto).collect(),
    }
}

/// The gRPC face of [`Payments`].
#[derive(Clone, Debug)]
pub struct PaymentApi {
    payments: Payments,
}

impl PaymentApi {
    pub fn new(payments: Payments) -> Self {
        Self { payments }
    }
}

#[tonic::async_trait]
impl PaymentService for PaymentApi {
    async fn get_payment(
        &self,
        request: Request<pb::GetPaymentRequest>,
    ) -> Result<Response<pb::GetPaymentResponse>, Status> {
        let order_id = parse_uuid("order_id", &request.into_inner().order_id)?;
        let (record, refunds) = self.payments.with_refunds(order_id).await?;
        Ok(Response::new(pb::GetPaymentResponse {
            payment: Some(payment_to_proto(&record, &refunds)),
        }))
    }

    async fn refund(
        &self,
        request: Request<pb::RefundRequest>,
    ) -> Result<Response<pb::RefundResponse>, Status> {
        let message = request.into_inner();
        let order_id = parse_uuid("order_id", &message.order_id)?;
        let request = RefundRequest::new(
            order_id,
            message.amount_vnd,
            &message.reason,
            &message.idempotency_key,
        )
        .map_err(PaymentError::from)?;
        let result = self.payments.refund(&request).await?;
        Ok(Response::new(pb::RefundResponse {
            refund: Some(refund_to_proto(&result.refund)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reading_and_refunding_need_their_scopes() {
        assert_eq!(
            policy("/ocop.payment.v1.PaymentService/GetPayment"),
            Some(Access::Scope("payment:read"))
        );
        assert_eq!(
            policy("/ocop.payment.v1.PaymentService/Refund"),
            Some(Access::Scope("payment:write"))
        );
        assert_eq!(policy("/ocop.x.v1.Other/Method"), None);
    }
}
