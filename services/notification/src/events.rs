//! What the notification service consumes (order, payment and inventory events) and
//! publishes (`NotificationSent`, `NotificationFailed`). The only module besides
//! `grpc.rs` that sees protobuf types: events become [`OrderNotice`]s here.

use std::time::Duration;

use anyhow::anyhow;
use chrono::Utc;
use ocop_events::{
    CloudEvent,
    consumer::{ConsumerConfig, Handler, HandlerError},
    topics::TopicSpec,
};
use ocop_grpc_kit::validation::parse_uuid;
use ocop_proto::{
    contract::{
        consumer_groups::{self, ConsumerGroup},
        timestamp,
        topics::{self, Topic},
    },
    notification::v1 as notification_pb,
    order::v1 as order_pb,
    payment::v1 as payment_pb,
};
use sqlx::{Postgres, Transaction};

use crate::{
    domain::{
        contact::Contact,
        notice::{
            BankTransfer, CancellationReason, Line, Notice, OrderNotice, OrderReceived, PayBy,
            PaymentInstructions, Provider, bank_name,
        },
    },
    error::NotificationError,
    service::Notifications,
    store::NotificationRecord,
};

/// `ce_source` of every notification event.
pub const SOURCE: &str = "/ocop/notification";
/// One consumed topic with its consumer group (also the inbox's consumer name and the
/// owner of a dead-letter topic).
#[derive(Debug, Clone, Copy)]
pub struct Subscription {
    pub topic: &'static str,
    pub group: ConsumerGroup,
}

/// Every consumed topic has a consumer *and a group* of its own, all named after
/// `ocop.notification.events`. Ordering holds per topic only, so a payment event can
/// overtake its order's `OrderPlaced`; it then waits in bounded retries, which only
/// works while the orders topic keeps moving. The kit's consumer retries without
/// polling, so one consumer for all topics would hold up the very record it waits for,
/// and consumers sharing one group would too: a rebalance (a replica starting) waits
/// for every member, including the one sleeping between retries, and assigns the orders
/// topic to nobody meanwhile. Separate groups rebalance independently.
pub const SUBSCRIPTIONS: [Subscription; 3] = [
    Subscription {
        topic: topics::ORDERS.name,
        group: consumer_groups::NOTIFICATION_ORDERS,
    },
    Subscription {
        topic: topics::PAYMENTS.name,
        group: consumer_groups::NOTIFICATION_PAYMENTS,
    },
    Subscription {
        topic: topics::INVENTORY.name,
        group: consumer_groups::NOTIFICATION_INVENTORY,
    },
];

/// The topics created at start-up on local stacks: the service's own (delivery
/// outcomes), the consumed ones (so it can subscribe before their producers exist) and
/// its dead letters.
pub const TOPICS: &[TopicSpec] = &[
    spec(topics::NOTIFICATIONS),
    spec(topics::ORDERS),
    spec(topics::PAYMENTS),
    spec(topics::INVENTORY),
    spec(SUBSCRIPTIONS[0].group.dead_letters),
    spec(SUBSCRIPTIONS[1].group.dead_letters),
    spec(SUBSCRIPTIONS[2].group.dead_letters),
];

/// A contract topic as the Kafka kit creates it.
const fn spec(topic: Topic) -> TopicSpec {
    TopicSpec::new(topic.name, topic.partitions, topic.compacted)
}

/// Consumer settings for one subscription. The defaults (8 attempts from 250 ms apart)
/// wait about half a minute for a late `OrderPlaced` before dead-lettering.
pub fn consumer_config(
    subscription: &Subscription,
    max_attempts: u32,
    initial_backoff: Duration,
) -> ConsumerConfig {
    ConsumerConfig {
        max_attempts,
        initial_backoff,
        ..ConsumerConfig::new(
            subscription.group.name,
            subscription.group.dead_letters.name,
            &[subscription.topic],
        )
    }
}

/// Applies consumed events: notices become notifications in the inbox's transaction.
#[derive(Clone, Debug)]
pub struct EventHandler {
    notifications: Notifications,
}

impl EventHandler {
    pub fn new(notifications: Notifications) -> Self {
        Self { notifications }
    }
}

impl Handler for EventHandler {
    async fn handle(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        event: &CloudEvent,
    ) -> Result<(), HandlerError> {
        let Some(notice) = notice(event)? else {
            return Ok(());
        };
        match self.notifications.record(tx, event.id, &notice).await {
            Ok(_) => Ok(()),
            Err(NotificationError::OrderUnknown(order_id)) => {
                // Ordering holds per topic only: a payment event can overtake its order's
                // OrderPlaced. Bounded retries wait for it, then the dead-letter topic.
                tracing::info!(order_id = %order_id, event_id = %event.id, event_type = %event.event_type, "order not seen yet; will retry");
                Err(HandlerError::Retry(anyhow!(
                    "order {order_id}: no contact yet (OrderPlaced not seen)"
                )))
            }
            Err(NotificationError::Invalid(invalid)) => {
                Err(HandlerError::Reject(anyhow!("{invalid}")))
            }
            Err(NotificationError::Template(err)) => Err(HandlerError::Reject(anyhow!("{err}"))),
            Err(NotificationError::Internal(err)) => Err(HandlerError::Retry(err)),
        }
    }
}

fn order_id(raw: &str) -> Result<uuid::Uuid, HandlerError> {
    parse_uuid("order_id", raw).map_err(|violation| HandlerError::Reject(anyhow!("{violation}")))
}

/// The notice an event carries, or `None` for event types the shopper need not hear
/// about (stock moves, payment successes that `OrderConfirmed` reports, …). A payload
/// that does not decode, or breaks the contract, is rejected (dead-lettered at once).
pub fn notice(event: &CloudEvent) -> Result<Option<OrderNotice>, HandlerError> {
    let (order, notice) = if event.is::<order_pb::OrderPlaced>() {
        let placed: order_pb::OrderPlaced = event.decode()?;
        let customer = placed
            .customer
            .ok_or_else(|| HandlerError::Reject(anyhow!("OrderPlaced has no customer")))?;
        let contact = Contact::new(&customer.name, &customer.phone, &customer.email)
            .map_err(|invalid| HandlerError::Reject(anyhow!("{invalid}")))?;
        let lines = placed
            .lines
            .into_iter()
            .map(|line| Line {
                name: line.name,
                unit: line.unit,
                quantity: i64::from(line.quantity),
                unit_price_vnd: line.unit_price_vnd,
                line_total_vnd: line.line_total_vnd,
            })
            .collect();
        (
            placed.order_id,
            Notice::Received(OrderReceived {
                order_code: placed.order_code,
                contact,
                lines,
                subtotal_vnd: placed.subtotal_vnd,
                shipping_fee_vnd: placed.shipping_fee_vnd,
                total_vnd: placed.total_vnd,
            }),
        )
    } else if event.is::<payment_pb::PaymentInitiated>() {
        let initiated: payment_pb::PaymentInitiated = event.decode()?;
        let provider = match payment_pb::PaymentProvider::try_from(initiated.provider) {
            Ok(payment_pb::PaymentProvider::Vietqr) => Provider::VietQr,
            Ok(payment_pb::PaymentProvider::Vnpay) => Provider::VnPay,
            Ok(payment_pb::PaymentProvider::Momo) => Provider::MoMo,
            Ok(payment_pb::PaymentProvider::Zalopay) => Provider::ZaloPay,
            Ok(payment_pb::PaymentProvider::Sandbox) => Provider::Sandbox,
            _ => Provider::Unknown,
        };
        let pay_by = match initiated.instructions {
            Some(payment_pb::payment_initiated::Instructions::PayUrl(url)) => PayBy::Link(url),
            Some(payment_pb::payment_initiated::Instructions::Vietqr(transfer)) => {
                PayBy::Transfer(BankTransfer {
                    bank_name: bank_name(&transfer.bank_bin),
                    bank_bin: transfer.bank_bin,
                    account_number: transfer.account_number,
                    account_name: transfer.account_name,
                    memo: transfer.memo,
                    image_url: transfer.image_url,
                })
            }
            None => {
                return Err(HandlerError::Reject(anyhow!(
                    "PaymentInitiated has no payment instructions"
                )));
            }
        };
        (
            initiated.order_id,
            Notice::PaymentInstructions(PaymentInstructions {
                amount_vnd: initiated.amount_vnd,
                provider,
                pay_by,
                expires_at: initiated
                    .expires_at
                    .as_ref()
                    .and_then(timestamp::from_proto),
            }),
        )
    } else if event.is::<order_pb::OrderConfirmed>() {
        let confirmed: order_pb::OrderConfirmed = event.decode()?;
        (
            confirmed.order_id,
            Notice::Confirmed {
                total_vnd: confirmed.total_vnd,
            },
        )
    } else if event.is::<order_pb::OrderCancelled>() {
        let cancelled: order_pb::OrderCancelled = event.decode()?;
        let reason = match order_pb::CancellationReason::try_from(cancelled.reason) {
            Ok(order_pb::CancellationReason::OutOfStock) => CancellationReason::OutOfStock,
            Ok(order_pb::CancellationReason::PaymentFailed) => CancellationReason::PaymentFailed,
            Ok(order_pb::CancellationReason::PaymentExpired) => CancellationReason::PaymentExpired,
            Ok(order_pb::CancellationReason::CustomerRequest) => {
                CancellationReason::CustomerRequest
            }
            Ok(order_pb::CancellationReason::Operator) => CancellationReason::Operator,
            _ => CancellationReason::Unspecified,
        };
        (
            cancelled.order_id,
            Notice::Cancelled {
                reason,
                detail: cancelled.detail.trim().to_owned(),
            },
        )
    } else if event.is::<order_pb::OrderShipped>() {
        let shipped: order_pb::OrderShipped = event.decode()?;
        (
            shipped.order_id,
            Notice::Shipped {
                carrier: shipped.carrier,
                tracking_code: shipped.tracking_code,
            },
        )
    } else if event.is::<order_pb::OrderDelivered>() {
        let delivered: order_pb::OrderDelivered = event.decode()?;
        (delivered.order_id, Notice::Delivered)
    } else if event.is::<order_pb::OrderRefunded>() {
        let refunded: order_pb::OrderRefunded = event.decode()?;
        (
            refunded.order_id,
            Notice::Refunded {
                amount_vnd: refunded.amount_vnd,
                refunded_total_vnd: refunded.refunded_total_vnd,
                full: refunded.kind == order_pb::RefundKind::Full as i32,
            },
        )
    } else {
        return Ok(None);
    };
    Ok(Some(OrderNotice {
        order_id: order_id(&order)?,
        notice,
    }))
}

fn channel_to_proto(record: &NotificationRecord) -> notification_pb::NotificationChannel {
    crate::grpc::channel_to_proto(record.channel())
}

fn order_event<M: prost::Name>(record: &NotificationRecord, message: &M) -> CloudEvent {
    CloudEvent::new(
        SOURCE,
        record.order_id.to_string(),
        Some(format!("order/{}", record.order_id)),
        message,
    )
}

/// A notification reached its channel.
pub fn notification_sent(record: &NotificationRecord) -> CloudEvent {
    order_event(
        record,
        &notification_pb::NotificationSent {
            notification_id: record.id.to_string(),
            order_id: record.order_id.to_string(),
            recipient: record.recipient.clone(),
            channel: channel_to_proto(record) as i32,
            template: record.template.clone(),
            attempts: record.attempts,
            source_event_id: record.source_event_id.to_string(),
            occurred_at: Some(timestamp::to_proto(record.sent_at.unwrap_or_else(Utc::now))),
        },
    )
}

/// A notification was given up.
pub fn notification_failed(record: &NotificationRecord) -> CloudEvent {
    order_event(
        record,
        &notification_pb::NotificationFailed {
            notification_id: record.id.to_string(),
            order_id: record.order_id.to_string(),
            recipient: record.recipient.clone(),
            channel: channel_to_proto(record) as i32,
            template: record.template.clone(),
            attempts: record.attempts,
            last_error: record.last_error.clone().unwrap_or_default(),
            source_event_id: record.source_event_id.to_string(),
            occurred_at: Some(timestamp::to_proto(Utc::now())),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::notice::TemplateKind;

    #[test]
    fn each_subscription_dead_letters_to_its_group_topic() {
        for subscription in SUBSCRIPTIONS {
            let config = consumer_config(&subscription, 1, Duration::ZERO);
            assert_eq!(
                config.dead_letter_topic,
                subscription.group.dead_letters.name
            );
            assert!(
                TOPICS
                    .iter()
                    .any(|topic| topic.name == subscription.group.dead_letters.name)
            );
            assert!(TOPICS.iter().any(|topic| topic.name == subscription.topic));
        }
    }

    fn placed(phone: &str) -> order_pb::OrderPlaced {
        order_pb::OrderPlaced {
            order_id: uuid::Uuid::now_v7().to_string(),
            order_code: "OCOP1".into(),
            lines: vec![order_pb::OrderLine {
                name: "Miến dong Bình Liêu".into(),
                unit: "gói 500g".into(),
                quantity: 2,
                unit_price_vnd: 75_000,
                line_total_vnd: 150_000,
                ..Default::default()
            }],
            subtotal_vnd: 150_000,
            total_vnd: 150_000,
            customer: Some(order_pb::CustomerContact {
                name: "Hoa".into(),
                phone: phone.into(),
                email: String::new(),
            }),
            ..Default::default()
        }
    }

    fn event<M: prost::Name>(message: &M) -> CloudEvent {
        CloudEvent::new("/ocop/test", "key", None, message)
    }

    #[test]
    fn order_placed_becomes_a_received_notice_with_its_contact() {
        let message = placed("+84 912 345 123");
        let notice = notice(&event(&message)).unwrap().unwrap();
        assert_eq!(notice.order_id.to_string(), message.order_id);
        let Notice::Received(order) = &notice.notice else {
            panic!("{notice:?}")
        };
        assert_eq!(order.contact.phone.as_str(), "0912345123");
        assert_eq!(order.lines[0].quantity, 2);
        assert_eq!(notice.notice.template(), TemplateKind::OrderReceived);
    }

    #[test]
    fn a_contract_breaking_event_is_rejected_not_retried() {
        let err = notice(&event(&placed("not a phone"))).unwrap_err();
        assert!(matches!(err, HandlerError::Reject(_)), "{err}");
        let mut bad_id = placed("0912345123");
        bad_id.order_id = "42".into();
        assert!(matches!(
            notice(&event(&bad_id)).unwrap_err(),
            HandlerError::Reject(_)
        ));
        let no_instructions = payment_pb::PaymentInitiated {
            order_id: uuid::Uuid::now_v7().to_string(),
            ..Default::default()
        };
        assert!(matches!(
            notice(&event(&no_instructions)).unwrap_err(),
            HandlerError::Reject(_)
        ));
    }

    #[test]
    fn vietqr_instructions_name_the_bank() {
        let initiated = payment_pb::PaymentInitiated {
            order_id: uuid::Uuid::now_v7().to_string(),
            provider: payment_pb::PaymentProvider::Vietqr as i32,
            amount_vnd: 450_000,
            instructions: Some(payment_pb::payment_initiated::Instructions::Vietqr(
                payment_pb::VietQrTransfer {
                    bank_bin: "970436".into(),
                    memo: "OCOP1".into(),
                    ..Default::default()
                },
            )),
            expires_at: Some(prost_types::Timestamp {
                seconds: 1_800_000_000,
                nanos: 0,
            }),
            ..Default::default()
        };
        let notice = notice(&event(&initiated)).unwrap().unwrap();
        let Notice::PaymentInstructions(payment) = notice.notice else {
            panic!()
        };
        assert_eq!(payment.provider, Provider::VietQr);
        assert_eq!(payment.expires_at.unwrap().timestamp(), 1_800_000_000);
        let PayBy::Transfer(transfer) = payment.pay_by else {
            panic!()
        };
        assert_eq!(transfer.bank_name, Some("Vietcombank"));
    }

    #[test]
    fn cancellation_reason_and_uninteresting_types() {
        let cancelled = order_pb::OrderCancelled {
            order_id: uuid::Uuid::now_v7().to_string(),
            reason: order_pb::CancellationReason::OutOfStock as i32,
            detail: "  ".into(),
            ..Default::default()
        };
        assert_eq!(
            notice(&event(&cancelled)).unwrap().unwrap().notice,
            Notice::Cancelled {
                reason: CancellationReason::OutOfStock,
                detail: String::new(),
            }
        );
        let succeeded = payment_pb::PaymentSucceeded::default();
        assert_eq!(notice(&event(&succeeded)).unwrap(), None);
        let requested = order_pb::PaymentRequested::default();
        assert_eq!(notice(&event(&requested)).unwrap(), None);
    }
}
