//! What the payment service consumes (order events) and publishes (payment events).

use chrono::{DateTime, Utc};
use ocop_events::{
    CloudEvent,
    consumer::{Handler, HandlerError},
    topics::TopicSpec,
};
use ocop_proto::{
    contract::{
        consumer_groups, timestamp,
        topics::{self, Topic},
    },
    order::v1 as order_pb,
    payment::v1 as pb,
};
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use crate::{
    domain::intent::{PaymentMethod, PaymentRequest, Provider},
    error::PaymentError,
    providers::Instructions,
    service::Payments,
    store::{IntentRecord, RefundRecord},
};

/// `ce_source` of every payment event.
pub const SOURCE: &str = "/ocop/payment";
/// `reason_code` of `PaymentFailed` when the provider declined.
pub const DECLINED: &str = "declined";

/// The topics created at start-up on local stacks: ours, our dead letters, and the order
/// topic, so that the consumer can subscribe before the order service has started.
pub const TOPICS: &[TopicSpec] = &[
    spec(topics::PAYMENTS),
    spec(topics::ORDERS),
    spec(consumer_groups::PAYMENT_ORDERS.dead_letters),
];

/// A contract topic as the Kafka kit creates it.
const fn spec(topic: Topic) -> TopicSpec {
    TopicSpec::new(topic.name, topic.partitions, topic.compacted)
}

pub fn provider(provider: Provider) -> pb::PaymentProvider {
    match provider {
        Provider::Sandbox => pb::PaymentProvider::Sandbox,
        Provider::VietQr => pb::PaymentProvider::Vietqr,
        Provider::VnPay => pb::PaymentProvider::Vnpay,
        Provider::MoMo => pb::PaymentProvider::Momo,
        Provider::ZaloPay => pb::PaymentProvider::Zalopay,
    }
}

fn order_event<M: prost::Name>(order_id: Uuid, message: &M) -> CloudEvent {
    CloudEvent::new(
        SOURCE,
        order_id.to_string(),
        Some(format!("order/{order_id}")),
        message,
    )
}

pub fn payment_initiated(intent: &IntentRecord, instructions: &Instructions) -> CloudEvent {
    let instructions = match instructions {
        Instructions::PayUrl(url) => pb::payment_initiated::Instructions::PayUrl(url.clone()),
        Instructions::VietQr(qr) => {
            pb::payment_initiated::Instructions::Vietqr(pb::VietQrTransfer {
                payload: qr.payload.clone(),
                image_url: qr.image_url.clone(),
                bank_bin: qr.bank_bin.clone(),
                account_number: qr.account_number.clone(),
                account_name: qr.account_name.clone(),
                memo: qr.memo.clone(),
            })
        }
    };
    order_event(
        intent.order_id,
        &pb::PaymentInitiated {
            order_id: intent.order_id.to_string(),
            payment_id: intent.id.to_string(),
            provider: provider(intent.provider) as i32,
            amount_vnd: intent.amount_vnd,
            instructions: Some(instructions),
            expires_at: Some(timestamp::to_proto(intent.expires_at)),
            occurred_at: Some(timestamp::to_proto(intent.created_at)),
        },
    )
}

pub fn payment_succeeded(intent: &IntentRecord) -> CloudEvent {
    order_event(
        intent.order_id,
        &pb::PaymentSucceeded {
            order_id: intent.order_id.to_string(),
            payment_id: intent.id.to_string(),
            provider: provider(intent.provider) as i32,
            provider_transaction_id: intent.provider_transaction_id.clone().unwrap_or_default(),
            amount_vnd: intent.amount_vnd,
            captured_vnd: intent.captured_vnd,
            occurred_at: Some(timestamp::to_proto(intent.updated_at)),
        },
    )
}

pub fn payment_failed(intent: &IntentRecord, reason_code: &str, message: &str) -> CloudEvent {
    order_event(
        intent.order_id,
        &pb::PaymentFailed {
            order_id: intent.order_id.to_string(),
            payment_id: intent.id.to_string(),
            provider: provider(intent.provider) as i32,
            amount_vnd: intent.amount_vnd,
            reason_code: reason_code.to_owned(),
            message: message.to_owned(),
            occurred_at: Some(timestamp::to_proto(intent.updated_at)),
        },
    )
}

pub fn payment_expired(intent: &IntentRecord, at: DateTime<Utc>) -> CloudEvent {
    order_event(
        intent.order_id,
        &pb::PaymentExpired {
            order_id: intent.order_id.to_string(),
            payment_id: intent.id.to_string(),
            provider: provider(intent.provider) as i32,
            amount_vnd: intent.amount_vnd,
            expires_at: Some(timestamp::to_proto(intent.expires_at)),
            occurred_at: Some(timestamp::to_proto(at)),
        },
    )
}

pub fn refund_succeeded(intent: &IntentRecord, refund: &RefundRecord) -> CloudEvent {
    order_event(
        intent.order_id,
        &pb::RefundSucceeded {
            order_id: intent.order_id.to_string(),
            payment_id: intent.id.to_string(),
            refund_id: refund.id.to_string(),
            provider: provider(intent.provider) as i32,
            amount_vnd: refund.amount_vnd,
            captured_vnd: intent.captured_vnd,
            refunded_vnd: intent.refunded_vnd,
            provider_refund_id: refund.provider_refund_id.clone().unwrap_or_default(),
            occurred_at: Some(timestamp::to_proto(refund.updated_at)),
        },
    )
}

pub fn refund_failed(intent: &IntentRecord, refund: &RefundRecord) -> CloudEvent {
    order_event(
        intent.order_id,
        &pb::RefundFailed {
            order_id: intent.order_id.to_string(),
            payment_id: intent.id.to_string(),
            refund_id: refund.id.to_string(),
            provider: provider(intent.provider) as i32,
            amount_vnd: refund.amount_vnd,
            captured_vnd: intent.captured_vnd,
            refunded_vnd: intent.refunded_vnd,
            reason_code: refund.failure_code.clone().unwrap_or_default(),
            message: refund.failure_message.clone().unwrap_or_default(),
            occurred_at: Some(timestamp::to_proto(refund.updated_at)),
        },
    )
}

/// Applies order events: `PaymentRequested` creates the intent, `OrderCancelled`
/// cancels a pending one; every other order event is none of our business.
#[derive(Clone, Debug)]
pub struct OrderEvents {
    payments: Payments,
}

impl OrderEvents {
    pub fn new(payments: Payments) -> Self {
        Self { payments }
    }
}

impl Handler for OrderEvents {
    fn accepts(&self, event: &CloudEvent) -> bool {
        event.is::<order_pb::PaymentRequested>() || event.is::<order_pb::OrderCancelled>()
    }

    async fn handle<'a>(
        &'a self,
        tx: &'a mut Transaction<'static, Postgres>,
        event: &'a CloudEvent,
    ) -> Result<(), HandlerError> {
        if event.is::<order_pb::PaymentRequested>() {
            let message: order_pb::PaymentRequested = event.decode()?;
            let request = payment_request(&message).map_err(reject)?;
            self.payments
                .request(tx, &request)
                .await
                .map_err(handler_error)?;
        } else if event.is::<order_pb::OrderCancelled>() {
            let message: order_pb::OrderCancelled = event.decode()?;
            let order_id = parse_order_id(&message.order_id).map_err(reject)?;
            self.payments
                .cancel(tx, order_id)
                .await
                .map_err(handler_error)?;
        }
        Ok(())
    }
}

fn reject(err: PaymentError) -> HandlerError {
    HandlerError::Reject(anyhow::Error::new(err))
}

/// A request that can never be applied goes to the dead letters; anything else (the
/// database) is worth a retry.
fn handler_error(err: PaymentError) -> HandlerError {
    match err {
        PaymentError::Internal(err) => HandlerError::Retry(err),
        other => reject(other),
    }
}

fn parse_order_id(raw: &str) -> Result<Uuid, PaymentError> {
    raw.parse().map_err(|_| {
        PaymentError::Invalid(crate::domain::Invalid::new(
            "order_id",
            format!("`{raw}` is not a UUID"),
        ))
    })
}

/// `PaymentRequested` → a validated request.
fn payment_request(message: &order_pb::PaymentRequested) -> Result<PaymentRequest, PaymentError> {
    use crate::domain::Invalid;
    let order_id = parse_order_id(&message.order_id)?;
    let method = match order_pb::PaymentMethod::try_from(message.payment_method) {
        Ok(order_pb::PaymentMethod::Vietqr) => PaymentMethod::VietQr,
        Ok(order_pb::PaymentMethod::Vnpay) => PaymentMethod::VnPay,
        Ok(order_pb::PaymentMethod::Momo) => PaymentMethod::MoMo,
        Ok(order_pb::PaymentMethod::Zalopay) => PaymentMethod::ZaloPay,
        Ok(order_pb::PaymentMethod::Sandbox) => PaymentMethod::Sandbox,
        Ok(order_pb::PaymentMethod::Unspecified) | Err(_) => {
            return Err(Invalid::new(
                "payment_method",
                format!("{} is not a payment method", message.payment_method),
            )
            .into());
        }
    };
    let deadline = message
        .deadline
        .as_ref()
        .ok_or_else(|| Invalid::new("deadline", "is required"))?;
    let deadline = timestamp::from_proto(deadline)
        .ok_or_else(|| Invalid::new("deadline", "is not a valid timestamp"))?;
    Ok(PaymentRequest::new(
        order_id,
        &message.order_code,
        message.amount_vnd,
        method,
        deadline,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn requested() -> order_pb::PaymentRequested {
        order_pb::PaymentRequested {
            order_id: Uuid::from_u128(9).to_string(),
            order_code: "QN-0001".into(),
            amount_vnd: 75_000,
            payment_method: order_pb::PaymentMethod::Momo as i32,
            deadline: Some(prost_types::Timestamp {
                seconds: 1_800_000_000,
                nanos: 0,
            }),
            occurred_at: None,
        }
    }

    #[test]
    fn payment_requested_becomes_a_request_recording_the_method() {
        let request = payment_request(&requested()).unwrap();
        assert_eq!(request.method, PaymentMethod::MoMo);
        assert_eq!(request.amount.get(), 75_000);
        assert_eq!(request.deadline.timestamp(), 1_800_000_000);
    }

    #[test]
    fn impossible_requests_name_the_field() {
        let field = |message: order_pb::PaymentRequested| match payment_request(&message) {
            Err(PaymentError::Invalid(invalid)) => invalid.field,
            other => panic!("expected an invalid field, got {other:?}"),
        };
        let mut message = requested();
        message.payment_method = 0;
        assert_eq!(field(message), "payment_method");
        let mut message = requested();
        message.deadline = None;
        assert_eq!(field(message), "deadline");
        let mut message = requested();
        message.amount_vnd = -1;
        assert_eq!(field(message), "amount_vnd");
        let mut message = requested();
        message.order_id = "x".into();
        assert_eq!(field(message), "order_id");
    }
}
