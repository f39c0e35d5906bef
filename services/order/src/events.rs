//! What the order service publishes (order events, and the PII-free partner feed) and
//! how it reacts to inventory and payment events.

use chrono::{DateTime, Utc};
use ocop_events::{
    CloudEvent,
    consumer::{Handler, HandlerError},
    topics::TopicSpec,
};
use ocop_proto::{
    catalog::v1 as catalog,
    contract::{
        consumer_groups, timestamp,
        topics::{self, Topic},
    },
    order::v1 as pb,
    payment::v1 as payment,
};
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use crate::{
    domain::state::{CancellationReason, OrderStatus, Trigger},
    grpc::{cancellation_to_proto, line_to_proto, status_to_proto},
    service::Orders,
    store::OrderRecord,
};

/// `ce_source` of every order event.
pub const SOURCE: &str = "/ocop/order";
/// The topics the saga's reactions read, in the group
/// `consumer_groups::ORDER_SAGA`.
pub const CONSUMED_TOPICS: [&str; 2] = [topics::INVENTORY.name, topics::PAYMENTS.name];

/// Topics this service creates on local stacks: the order topic (internal: it carries
/// the customer's contact) and the partner feed (without personal data) it publishes,
/// the topics it consumes and its dead letters.
pub const TOPICS: &[TopicSpec] = &[
    spec(topics::ORDERS),
    spec(topics::PARTNER_ORDERS),
    spec(topics::INVENTORY),
    spec(topics::PAYMENTS),
    spec(consumer_groups::ORDER_SAGA.dead_letters),
];

/// A contract topic as the Kafka kit creates it.
const fn spec(topic: Topic) -> TopicSpec {
    TopicSpec::new(topic.name, topic.partitions, topic.compacted)
}

fn about<M: prost::Name>(order_id: Uuid, message: &M) -> CloudEvent {
    CloudEvent::new(
        SOURCE,
        order_id.to_string(),
        Some(format!("order/{order_id}")),
        message,
    )
}

fn line_items(order: &OrderRecord) -> Vec<pb::LineItem> {
    order
        .lines
        .iter()
        .map(|line| pb::LineItem {
            product_id: line.product_id.to_string(),
            quantity: line.quantity,
        })
        .collect()
}

pub fn order_placed(order: &OrderRecord) -> CloudEvent {
    let row = &order.row;
    about(
        row.id,
        &pb::OrderPlaced {
            order_id: row.id.to_string(),
            order_code: row.code.clone(),
            lines: order.lines.iter().map(line_to_proto).collect(),
            subtotal_vnd: row.subtotal_vnd,
            shipping_fee_vnd: row.shipping_fee_vnd,
            total_vnd: row.total_vnd,
            delivery_method: crate::grpc::delivery_to_proto(&row.delivery_method) as i32,
            payment_method: crate::grpc::payment_to_proto(&row.payment_method) as i32,
            sales_channel: crate::grpc::channel_to_proto(&row.sales_channel) as i32,
            customer: Some(pb::CustomerContact {
                name: row.customer_name.clone(),
                phone: row.customer_phone.clone(),
                email: row.customer_email.clone().unwrap_or_default(),
            }),
            occurred_at: Some(timestamp::to_proto(row.created_at)),
        },
    )
}

pub fn payment_requested(order: &OrderRecord, deadline: DateTime<Utc>) -> CloudEvent {
    let row = &order.row;
    about(
        row.id,
        &pb::PaymentRequested {
            order_id: row.id.to_string(),
            order_code: row.code.clone(),
            amount_vnd: row.total_vnd,
            payment_method: crate::grpc::payment_to_proto(&row.payment_method) as i32,
            deadline: Some(timestamp::to_proto(deadline)),
            occurred_at: Some(timestamp::to_proto(Utc::now())),
        },
    )
}

/// The order event that announces `order`'s current status (after a move).
pub fn status_event(order: &OrderRecord, previous: OrderStatus) -> Option<CloudEvent> {
    let row = &order.row;
    let now = Some(timestamp::to_proto(Utc::now()));
    let id = row.id.to_string();
    Some(match row.status() {
        OrderStatus::Confirmed => about(
            row.id,
            &pb::OrderConfirmed {
                order_id: id,
                lines: line_items(order),
                total_vnd: row.total_vnd,
                occurred_at: now,
            },
        ),
        OrderStatus::Cancelled => about(
            row.id,
            &pb::OrderCancelled {
                order_id: id,
                lines: line_items(order),
                reason: row
                    .cancellation_reason
                    .as_deref()
                    .and_then(CancellationReason::parse)
                    .map_or(pb::CancellationReason::Unspecified, cancellation_to_proto)
                    as i32,
                detail: row.cancellation_detail.clone(),
                previous_status: status_to_proto(previous) as i32,
                occurred_at: now,
            },
        ),
        OrderStatus::Shipped => about(
            row.id,
            &pb::OrderShipped {
                order_id: id,
                lines: line_items(order),
                carrier: row.carrier.clone().unwrap_or_default(),
                tracking_code: row.tracking_code.clone().unwrap_or_default(),
                occurred_at: now,
            },
        ),
        OrderStatus::Delivered => about(
            row.id,
            &pb::OrderDelivered {
                order_id: id,
                lines: line_items(order),
                occurred_at: now,
            },
        ),
        // Refunds are announced by the payment service's own events.
        OrderStatus::Pending
        | OrderStatus::AwaitingPayment
        | OrderStatus::PartiallyRefunded
        | OrderStatus::Refunded => return None,
    })
}

/// The partner feed's view of `order` now: no name, phone, e-mail, street, ward or
/// district — the province at most.
pub fn partner_event(order: &OrderRecord) -> Option<CloudEvent> {
    let row = &order.row;
    let kind = match row.status() {
        OrderStatus::Pending => pb::PartnerOrderEventKind::Placed,
        OrderStatus::Confirmed => pb::PartnerOrderEventKind::Confirmed,
        OrderStatus::Cancelled => pb::PartnerOrderEventKind::Cancelled,
        OrderStatus::Shipped => pb::PartnerOrderEventKind::Shipped,
        OrderStatus::Delivered => pb::PartnerOrderEventKind::Delivered,
        // Waiting for payment is internal detail of the saga; refunds are between the
        // shop and the shopper (the partner contract has no kind for them).
        OrderStatus::AwaitingPayment | OrderStatus::PartiallyRefunded | OrderStatus::Refunded => {
            return None;
        }
    };
    Some(about(
        row.id,
        &pb::PartnerOrderEvent {
            order_id: row.id.to_string(),
            kind: kind as i32,
            status: status_to_proto(row.status()) as i32,
            sales_channel: crate::grpc::channel_to_proto(&row.sales_channel) as i32,
            lines: crate::grpc::partner_lines(order),
            total_vnd: row.total_vnd,
            delivery_province: row.province.clone(),
            occurred_at: Some(timestamp::to_proto(Utc::now())),
        },
    ))
}

/// Reacts to the catalog's and the payment service's events.
pub struct SagaHandler {
    pub orders: Orders,
}

fn order_id(raw: &str) -> Result<Uuid, HandlerError> {
    raw.parse()
        .map_err(|_| HandlerError::Reject(anyhow::anyhow!("order_id `{raw}` is not a UUID")))
}

impl Handler for SagaHandler {
    fn accepts(&self, event: &CloudEvent) -> bool {
        event.is::<catalog::StockReserved>()
            || event.is::<catalog::StockRejected>()
            || event.is::<catalog::ReservationExpired>()
            || event.is::<payment::PaymentInitiated>()
            || event.is::<payment::PaymentSucceeded>()
            || event.is::<payment::PaymentFailed>()
            || event.is::<payment::RefundSucceeded>()
            || event.is::<payment::PaymentExpired>()
    }

    async fn handle(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        event: &CloudEvent,
    ) -> Result<(), HandlerError> {
        let cause = event.event_type.as_str();
        let (order, trigger, detail) = if event.is::<catalog::StockReserved>() {
            let message = event.decode::<catalog::StockReserved>()?;
            let held_until = message.expires_at.as_ref().and_then(timestamp::from_proto);
            (
                order_id(&message.order_id)?,
                Trigger::StockReserved { held_until },
                String::new(),
            )
        } else if event.is::<catalog::StockRejected>() {
            let message = event.decode::<catalog::StockRejected>()?;
            let detail = message
                .lines
                .iter()
                .map(|line| {
                    format!(
                        "{}: {} requested, {} available",
                        line.product_id, line.requested, line.available
                    )
                })
                .collect::<Vec<_>>()
                .join("; ");
            (order_id(&message.order_id)?, Trigger::StockRejected, detail)
        } else if event.is::<catalog::ReservationExpired>() {
            let message = event.decode::<catalog::ReservationExpired>()?;
            (
                order_id(&message.order_id)?,
                Trigger::ReservationExpired,
                "reservation expired".to_owned(),
            )
        } else if event.is::<payment::PaymentInitiated>() {
            let message = event.decode::<payment::PaymentInitiated>()?;
            let (pay_url, vietqr) = match &message.instructions {
                Some(payment::payment_initiated::Instructions::PayUrl(url)) => {
                    (Some(url.as_str()), None)
                }
                Some(payment::payment_initiated::Instructions::Vietqr(qr)) => {
                    (None, Some(qr.payload.as_str()))
                }
                None => (None, None),
            };
            let expires_at = message.expires_at.as_ref().and_then(timestamp::from_proto);
            self.orders
                .record_payment_instructions(
                    tx,
                    order_id(&message.order_id)?,
                    pay_url,
                    vietqr,
                    expires_at,
                )
                .await
                .map_err(|err| HandlerError::Retry(anyhow::Error::new(err)))?;
            return Ok(());
        } else if event.is::<payment::PaymentSucceeded>() {
            let message = event.decode::<payment::PaymentSucceeded>()?;
            (
                order_id(&message.order_id)?,
                Trigger::PaymentSucceeded,
                String::new(),
            )
        } else if event.is::<payment::PaymentFailed>() {
            let message = event.decode::<payment::PaymentFailed>()?;
            (
                order_id(&message.order_id)?,
                Trigger::PaymentFailed,
                message.message,
            )
        } else if event.is::<payment::RefundSucceeded>() {
            let message = event.decode::<payment::RefundSucceeded>()?;
            let detail = format!(
                "refund {} of {} VND ({} of {} VND refunded)",
                message.refund_id, message.amount_vnd, message.refunded_vnd, message.captured_vnd
            );
            (
                order_id(&message.order_id)?,
                Trigger::Refunded {
                    full: message.refunded_vnd >= message.captured_vnd,
                },
                detail,
            )
        } else if event.is::<payment::PaymentExpired>() {
            let message = event.decode::<payment::PaymentExpired>()?;
            (
                order_id(&message.order_id)?,
                Trigger::PaymentExpired,
                "payment deadline passed".to_owned(),
            )
        } else {
            // Other events on these topics are not the order's business.
            return Ok(());
        };
        self.orders
            .apply(tx, order, trigger, cause, &detail)
            .await
            .map_err(|err| HandlerError::Retry(anyhow::Error::new(err)))?;
        Ok(())
    }
}
