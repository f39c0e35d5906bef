//! Catalog operations: each validates, changes state through `store`, and writes the
//! resulting events to the outbox in the same transaction.

use std::{collections::HashSet, time::Duration};

use chrono::Utc;
use ocop_events::outbox;
use ocop_proto::contract::topics;
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::{
    domain::{
        product::{ProducerDraft, ProductDraft, StockAdjustment},
        reservation::{self, Decision, Rejection, RequestedLine, ReservationState},
    },
    error::CatalogError,
    events,
    store::{self, ProducerRecord, ProductFilter, ProductRecord, Reservation, UpsertEffect},
};

type Tx = Transaction<'static, Postgres>;

/// The catalog's operations over its database.
#[derive(Clone, Debug)]
pub struct Catalog {
    pool: PgPool,
    reservation_ttl: Duration,
}

/// The result of asking to hold an order's lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReserveOutcome {
    Reserved(Reservation),
    Rejected(Vec<Rejection>),
    /// The order already has a reservation (a redelivered request): nothing changed.
    AlreadyReserved(Reservation),
}

impl Catalog {
    pub fn new(pool: PgPool, reservation_ttl: Duration) -> Self {
        Self {
            pool,
            reservation_ttl,
        }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub async fn upsert_producer(
        &self,
        draft: &ProducerDraft,
    ) -> Result<(ProducerRecord, bool), CatalogError> {
        let mut tx = self.pool.begin().await?;
        let result = store::upsert_producer(&mut tx, draft).await?;
        tx.commit().await?;
        Ok(result)
    }

    /// Creates or updates a product; publishes a snapshot unless nothing changed.
    pub async fn upsert_product(
        &self,
        draft: &ProductDraft,
    ) -> Result<(ProductRecord, UpsertEffect), CatalogError> {
        let mut tx = self.pool.begin().await?;
        let (id, effect) = store::upsert_product(&mut tx, draft)
            .await?
            .ok_or_else(|| {
                CatalogError::not_found(
                    "producer_code",
                    format!("no producer with code `{}`", draft.producer_code),
                )
            })?;
        let record = written_product(&mut tx, id).await?;
        if effect != UpsertEffect::Unchanged {
            store::mark_snapshots_due(&mut tx, &[id]).await?;
        }
        tx.commit().await?;
        Ok((record, effect))
    }

    /// Adds to or takes from stock on hand; publishes the adjustment and a snapshot.
    pub async fn adjust_stock(
        &self,
        product_id: Uuid,
        adjustment: &StockAdjustment,
        actor: &str,
    ) -> Result<ProductRecord, CatalogError> {
        let mut tx = self.pool.begin().await?;
        let on_hand = store::adjust_stock(&mut tx, product_id, adjustment, actor)
            .await?
            .ok_or_else(|| {
                CatalogError::not_found("product_id", format!("no product with id {product_id}"))
            })??;
        let record = written_product(&mut tx, product_id).await?;
        outbox::enqueue(
            &mut tx,
            topics::INVENTORY.name,
            &events::stock_adjusted(product_id, adjustment.delta, on_hand, &adjustment.reason),
        )
        .await?;
        store::mark_snapshots_due(&mut tx, &[product_id]).await?;
        tx.commit().await?;
        Ok(record)
    }

    pub async fn product(&self, id: Uuid) -> Result<ProductRecord, CatalogError> {
        let mut conn = self.pool.acquire().await?;
        store::product(&mut conn, id)
            .await?
            .ok_or_else(|| CatalogError::not_found("id", format!("no product with id {id}")))
    }

    pub async fn product_by_sku(&self, sku: &str) -> Result<ProductRecord, CatalogError> {
        let mut conn = self.pool.acquire().await?;
        store::product_by_sku(&mut conn, sku)
            .await?
            .ok_or_else(|| CatalogError::not_found("sku", format!("no product with SKU {sku}")))
    }

    /// The products of `ids` that exist, in the order asked, and the ids that do not.
    pub async fn products(
        &self,
        ids: &[Uuid],
    ) -> Result<(Vec<ProductRecord>, Vec<Uuid>), CatalogError> {
        let mut conn = self.pool.acquire().await?;
        let found = store::products(&mut conn, ids).await?;
        let mut ordered = Vec::with_capacity(ids.len());
        let mut missing = Vec::new();
        let mut seen = HashSet::new();
        for id in ids {
            if !seen.insert(*id) {
                continue;
            }
            match found.iter().find(|record| record.id == *id) {
                Some(record) => ordered.push(record.clone()),
                None => missing.push(*id),
            }
        }
        Ok((ordered, missing))
    }

    pub async fn list(
        &self,
        filter: &ProductFilter,
        after_sku: Option<&str>,
        limit: i64,
    ) -> Result<Vec<ProductRecord>, CatalogError> {
        let mut conn = self.pool.acquire().await?;
        Ok(store::list_products(&mut conn, filter, after_sku, limit).await?)
    }

    pub async fn search(
        &self,
        query: &str,
        limit: i64,
    ) -> Result<Vec<ProductRecord>, CatalogError> {
        let mut conn = self.pool.acquire().await?;
        Ok(store::search_products(&mut conn, query, limit).await?)
    }

    /// Holds every line of `order_id` or none, in the caller's transaction (the event
    /// consumer's, so the inbox records the order event with the same commit).
    pub async fn reserve(
        &self,
        tx: &mut Tx,
        order_id: Uuid,
        lines: &[RequestedLine],
    ) -> Result<ReserveOutcome, CatalogError> {
        if let Some(existing) = store::reservation_for_update(tx, order_id).await? {
            return Ok(ReserveOutcome::AlreadyReserved(existing));
        }
        let lines = reservation::merge_lines(lines)?;
        let levels = store::lock_stock(tx, &lines).await?;
        match reservation::decide(&lines, &levels) {
            Decision::Reject(rejections) => {
                outbox::enqueue(
                    tx,
                    topics::INVENTORY.name,
                    &events::stock_rejected(order_id, &rejections),
                )
                .await?;
                Ok(ReserveOutcome::Rejected(rejections))
            }
            Decision::Reserve(lines) => {
                let ttl = chrono::Duration::from_std(self.reservation_ttl)
                    .map_err(|err| anyhow::anyhow!("reservation ttl: {err}"))?;
                let held =
                    store::insert_reservation(tx, order_id, &lines, Utc::now() + ttl).await?;
                outbox::enqueue(tx, topics::INVENTORY.name, &events::stock_reserved(&held)).await?;
                mark_lines_due(tx, &held.lines).await?;
                Ok(ReserveOutcome::Reserved(held))
            }
        }
    }

    /// Turns the order's held reservation into a sale (`Committed`) or gives it back
    /// (`Released`, `Expired`). `Ok(None)`: the order has no held reservation (already
    /// finished, or never reserved): nothing changes, which makes redeliveries harmless.
    pub async fn finish(
        &self,
        tx: &mut Tx,
        order_id: Uuid,
        to: ReservationState,
    ) -> Result<Option<Reservation>, CatalogError> {
        let Some(held) = store::reservation_for_update(tx, order_id).await? else {
            if to == ReservationState::Released {
                // Cancelled before its placement was applied (the placement dead-lettered
                // and replayed later, or delivered late): a released reservation without
                // lines stands for it, so that the placement, when it comes, finds the
                // order already answered and holds nothing for a cancelled order.
                store::insert_released_placeholder(tx, order_id).await?;
            }
            return Ok(None);
        };
        if held.state == ReservationState::Expired && to == ReservationState::Committed {
            return self.sell_after_expiry(tx, held).await;
        }
        if held.state.transition(to).is_err() {
            tracing::info!(order_id = %order_id, state = held.state.as_str(), to = to.as_str(), "reservation already finished; nothing to do");
            return Ok(None);
        }
        store::finish_reservation(tx, &held, to).await?;
        let event = match to {
            ReservationState::Committed => events::stock_committed(&held),
            ReservationState::Released => events::stock_released(&held),
            ReservationState::Expired => events::reservation_expired(&held),
            ReservationState::Held => unreachable!("transition() never returns Held"),
        };
        outbox::enqueue(tx, topics::INVENTORY.name, &event).await?;
        mark_lines_due(tx, &held.lines).await?;
        Ok(Some(Reservation { state: to, ..held }))
    }

    /// The order was paid after its reservation expired (the payment raced the expiry
    /// sweep): its units are sold from free stock if they are all there, and the
    /// reservation counts as committed; otherwise nothing is sold and `StockRejected`
    /// tells the order service, which cancels the order (its payment is then refunded).
    /// Either way a unit is never sold twice.
    async fn sell_after_expiry(
        &self,
        tx: &mut Tx,
        expired: Reservation,
    ) -> Result<Option<Reservation>, CatalogError> {
        let levels = store::lock_stock(tx, &expired.lines).await?;
        if let Decision::Reject(rejections) = reservation::decide(&expired.lines, &levels) {
            tracing::warn!(order_id = %expired.order_id, "paid after its reservation expired and the stock is gone; rejecting");
            metrics::counter!("ocop_catalog_paid_after_expiry_total", "outcome" => "rejected")
                .increment(1);
            outbox::enqueue(
                tx,
                topics::INVENTORY.name,
                &events::stock_rejected(expired.order_id, &rejections),
            )
            .await?;
            return Ok(None);
        }
        store::sell_unreserved(tx, &expired).await?;
        let sold = Reservation {
            state: ReservationState::Committed,
            ..expired
        };
        tracing::warn!(order_id = %sold.order_id, "paid after its reservation expired; sold from free stock");
        metrics::counter!("ocop_catalog_paid_after_expiry_total", "outcome" => "sold").increment(1);
        outbox::enqueue(tx, topics::INVENTORY.name, &events::stock_committed(&sold)).await?;
        mark_lines_due(tx, &sold.lines).await?;
        Ok(Some(sold))
    }

    /// Expires held reservations past their time, a batch per transaction. Safe with
    /// several replicas: rows another replica holds are skipped. Returns how many expired.
    pub async fn expire_due(&self) -> Result<usize, CatalogError> {
        let mut expired = 0;
        loop {
            let mut tx = self.pool.begin().await?;
            let due = store::due_reservations(&mut tx, 100).await?;
            if due.is_empty() {
                return Ok(expired);
            }
            // The batch's stock rows first, in product-id order like every other lock on
            // `stock`: expiry order would lock them in another order than a reservation.
            let mut products = store::reserved_products(&mut tx, &due).await?;
            store::lock_products(&mut tx, &mut products).await?;
            for order_id in &due {
                if self
                    .finish(&mut tx, *order_id, ReservationState::Expired)
                    .await?
                    .is_some()
                {
                    expired += 1;
                    tracing::info!(order_id = %order_id, "reservation expired; stock released");
                }
            }
            tx.commit().await?;
        }
    }

    /// Publishes the snapshots of products marked out of date, a round of up to
    /// `round` products per transaction, until none is left. Returns how many went out.
    pub async fn publish_due_snapshots(&self, round: i64) -> Result<usize, CatalogError> {
        let mut published = 0;
        loop {
            let mut tx = self.pool.begin().await?;
            let due = store::take_due_snapshots(&mut tx, round).await?;
            if due.is_empty() {
                return Ok(published);
            }
            // Read after the marks were taken: every change committed before this read
            // is in it, and a later one marks its product again once this commits.
            let version = store::next_snapshot_version(&mut tx).await?;
            let snapshots: Vec<_> = store::products(&mut tx, &due)
                .await?
                .iter()
                .map(|product| events::product_snapshot(product, version))
                .collect();
            outbox::enqueue_all(&mut tx, topics::PRODUCTS.name, &snapshots).await?;
            tx.commit().await?;
            published += snapshots.len();
        }
    }
}

/// A product this transaction has just written.
async fn written_product(tx: &mut Tx, id: Uuid) -> Result<ProductRecord, CatalogError> {
    store::product(tx, id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("product {id} vanished inside its transaction").into())
}

/// Marks the snapshots of `lines`' products out of date.
async fn mark_lines_due(tx: &mut Tx, lines: &[RequestedLine]) -> Result<(), CatalogError> {
    let ids: Vec<Uuid> = lines.iter().map(|line| line.product_id).collect();
    store::mark_snapshots_due(tx, &ids).await?;
    Ok(())
}
