//! What the catalog publishes: product snapshots on the compacted product topic and
//! inventory events keyed by order.

use ocop_events::{
    CloudEvent,
    consumer::{Handler, HandlerError},
    topics::TopicSpec,
};
use ocop_proto::{
    catalog::v1 as pb,
    contract::{
        consumer_groups,
        topics::{self, Topic},
    },
};
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use crate::{
    domain::reservation::{Rejection, RejectionReason, RequestedLine},
    store::{ProductRecord, Reservation},
};
use ocop_proto::contract::timestamp;

/// `ce_source` of every catalog event.
pub const SOURCE: &str = "/ocop/catalog";
/// The topics the catalog uses (created at start-up on local stacks): the product and
/// inventory topics it publishes, the order topic it consumes and its dead letters.
pub const TOPICS: &[TopicSpec] = &[
    spec(topics::PRODUCTS),
    spec(topics::INVENTORY),
    spec(topics::ORDERS),
    spec(consumer_groups::CATALOG_ORDERS.dead_letters),
];

/// A contract topic as the Kafka kit creates it.
const fn spec(topic: Topic) -> TopicSpec {
    TopicSpec::new(topic.name, topic.partitions, topic.compacted)
}

/// Reacts to the order saga: reserve on `OrderPlaced`, sell on `OrderConfirmed`, give
/// back on `OrderCancelled`. Runs in the consumer's inbox transaction.
pub struct OrderEventsHandler {
    pub catalog: crate::service::Catalog,
}

fn order_id(raw: &str) -> Result<Uuid, HandlerError> {
    raw.parse()
        .map_err(|_| HandlerError::Reject(anyhow::anyhow!("order_id `{raw}` is not a UUID")))
}

fn requested_lines<'a>(
    lines: impl Iterator<Item = (&'a str, i32)>,
) -> Result<Vec<RequestedLine>, HandlerError> {
    lines
        .map(|(product_id, quantity)| {
            Ok(RequestedLine {
                product_id: product_id.parse().map_err(|_| {
                    HandlerError::Reject(anyhow::anyhow!("product_id `{product_id}` is not a UUID"))
                })?,
                quantity: i64::from(quantity),
            })
        })
        .collect()
}

impl Handler for OrderEventsHandler {
    fn accepts(&self, event: &CloudEvent) -> bool {
        use ocop_proto::order::v1 as order;
        event.is::<order::OrderPlaced>()
            || event.is::<order::OrderConfirmed>()
            || event.is::<order::OrderCancelled>()
    }

    /// Every stock row the batch will touch, locked up front in product-id order.
    async fn prepare(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        events: &[&CloudEvent],
    ) -> Result<(), HandlerError> {
        let mut products: Vec<uuid::Uuid> = Vec::new();
        for event in events {
            // A malformed id is the record's own problem: its handler rejects it.
            products.extend(
                line_product_ids(event)?
                    .iter()
                    .filter_map(|id| id.parse::<uuid::Uuid>().ok()),
            );
        }
        crate::store::lock_products(tx, &mut products).await?;
        Ok(())
    }

    async fn handle(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        event: &CloudEvent,
    ) -> Result<(), HandlerError> {
        use crate::domain::reservation::ReservationState;
        use ocop_proto::order::v1 as order;
        let failed = |err: crate::error::CatalogError| match err {
            crate::error::CatalogError::Invalid(invalid) => HandlerError::Reject(invalid.into()),
            other => HandlerError::Retry(anyhow::Error::new(other)),
        };
        if event.is::<order::OrderPlaced>() {
            let placed = event.decode::<order::OrderPlaced>()?;
            let lines = requested_lines(
                placed
                    .lines
                    .iter()
                    .map(|line| (line.product_id.as_str(), line.quantity)),
            )?;
            self.catalog
                .reserve(tx, order_id(&placed.order_id)?, &lines)
                .await
                .map_err(failed)?;
        } else if event.is::<order::OrderConfirmed>() {
            let confirmed = event.decode::<order::OrderConfirmed>()?;
            self.catalog
                .finish(
                    tx,
                    order_id(&confirmed.order_id)?,
                    ReservationState::Committed,
                )
                .await
                .map_err(failed)?;
        } else if event.is::<order::OrderCancelled>() {
            let cancelled = event.decode::<order::OrderCancelled>()?;
            self.catalog
                .finish(
                    tx,
                    order_id(&cancelled.order_id)?,
                    ReservationState::Released,
                )
                .await
                .map_err(failed)?;
        }
        Ok(())
    }
}

/// The product ids on the lines of an order event the catalog reacts to.
fn line_product_ids(event: &CloudEvent) -> Result<Vec<String>, HandlerError> {
    use ocop_proto::order::v1 as order;
    fn ids<L>(lines: Vec<L>, id: fn(L) -> String) -> Vec<String> {
        lines.into_iter().map(id).collect()
    }
    Ok(if event.is::<order::OrderPlaced>() {
        ids(event.decode::<order::OrderPlaced>()?.lines, |line| {
            line.product_id
        })
    } else if event.is::<order::OrderConfirmed>() {
        ids(event.decode::<order::OrderConfirmed>()?.lines, |line| {
            line.product_id
        })
    } else if event.is::<order::OrderCancelled>() {
        ids(event.decode::<order::OrderCancelled>()?.lines, |line| {
            line.product_id
        })
    } else {
        Vec::new()
    })
}

/// The full state of a product after a change, as of snapshot `version`.
pub fn product_snapshot(record: &ProductRecord, version: i64) -> CloudEvent {
    let message = pb::ProductSnapshot {
        product: Some(crate::grpc::product_to_proto(record)),
        version,
    };
    CloudEvent::new(
        SOURCE,
        record.id.to_string(),
        Some(format!("product/{}", record.id)),
        &message,
    )
}

fn stock_lines(lines: &[RequestedLine]) -> Vec<pb::StockLine> {
    lines
        .iter()
        .map(|line| pb::StockLine {
            product_id: line.product_id.to_string(),
            quantity: i32::try_from(line.quantity).unwrap_or(i32::MAX),
        })
        .collect()
}

fn order_event<M: prost::Name>(order_id: Uuid, message: &M) -> CloudEvent {
    CloudEvent::new(
        SOURCE,
        order_id.to_string(),
        Some(format!("order/{order_id}")),
        message,
    )
}

pub fn stock_reserved(reservation: &Reservation) -> CloudEvent {
    order_event(
        reservation.order_id,
        &pb::StockReserved {
            order_id: reservation.order_id.to_string(),
            reservation_id: reservation.id.to_string(),
            lines: stock_lines(&reservation.lines),
            expires_at: Some(timestamp::to_proto(reservation.expires_at)),
        },
    )
}

pub fn stock_rejected(order_id: Uuid, rejections: &[Rejection]) -> CloudEvent {
    let lines = rejections
        .iter()
        .map(|rejection| pb::RejectedLine {
            product_id: rejection.product_id.to_string(),
            requested: i32::try_from(rejection.requested).unwrap_or(i32::MAX),
            available: rejection.available.max(0),
            reason: match rejection.reason {
                RejectionReason::InsufficientStock => pb::RejectionReason::InsufficientStock,
                RejectionReason::UnknownProduct => pb::RejectionReason::UnknownProduct,
                RejectionReason::ProductHidden => pb::RejectionReason::ProductHidden,
            } as i32,
        })
        .collect();
    order_event(
        order_id,
        &pb::StockRejected {
            order_id: order_id.to_string(),
            lines,
        },
    )
}

pub fn stock_committed(reservation: &Reservation) -> CloudEvent {
    order_event(
        reservation.order_id,
        &pb::StockCommitted {
            order_id: reservation.order_id.to_string(),
            reservation_id: reservation.id.to_string(),
            lines: stock_lines(&reservation.lines),
        },
    )
}

pub fn stock_released(reservation: &Reservation) -> CloudEvent {
    order_event(
        reservation.order_id,
        &pb::StockReleased {
            order_id: reservation.order_id.to_string(),
            reservation_id: reservation.id.to_string(),
            lines: stock_lines(&reservation.lines),
        },
    )
}

pub fn reservation_expired(reservation: &Reservation) -> CloudEvent {
    order_event(
        reservation.order_id,
        &pb::ReservationExpired {
            order_id: reservation.order_id.to_string(),
            reservation_id: reservation.id.to_string(),
            lines: stock_lines(&reservation.lines),
        },
    )
}

pub fn stock_adjusted(product_id: Uuid, delta: i64, on_hand: i64, reason: &str) -> CloudEvent {
    CloudEvent::new(
        SOURCE,
        product_id.to_string(),
        Some(format!("product/{product_id}")),
        &pb::StockAdjusted {
            product_id: product_id.to_string(),
            delta,
            on_hand,
            reason: reason.to_owned(),
        },
    )
}
