//! Order operations. Each changes state through `store` and writes the resulting events
//! to the outbox in the same transaction.

use std::time::Duration;

use chrono::{DateTime, Utc};
use ocop_events::outbox;
use ocop_grpc_kit::client::TracedChannel;
use ocop_proto::{
    catalog::v1::{self as catalog, catalog_service_client::CatalogServiceClient},
    contract::topics,
};
use sha2::{Digest as _, Sha256};
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::{
    access,
    domain::{
        Invalid,
        order::{OrderRequest, order_code},
        state::{CancellationReason, OrderStatus, Trigger, transition},
    },
    error::OrderError,
    events,
    limits::HoldLimits,
    store::{self, LineRecord, NewOrder, OrderRecord},
};

type Tx = Transaction<'static, Postgres>;

/// The order service's operations.
#[derive(Clone)]
pub struct Orders {
    pool: PgPool,
    catalog: CatalogServiceClient<TracedChannel>,
    quote_timeout: Duration,
    payment_ttl: Duration,
    limits: HoldLimits,
}

impl std::fmt::Debug for Orders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Orders").finish_non_exhaustive()
    }
}

/// What PlaceOrder answers.
#[derive(Debug)]
pub struct Placed {
    pub order: OrderRecord,
    /// False when the idempotency key was already used and the stored order is returned.
    pub created: bool,
    /// The shopper's key to the order (only its hash is stored).
    pub access_token: String,
}

/// Identifies a request for idempotency: equal requests have equal fingerprints.
fn fingerprint(request: &OrderRequest) -> String {
    // The validated request is normalised (trimmed text, national phone numbers), so
    // two spellings of the same order are the same request.
    hex::encode(Sha256::digest(request.canonical_encoding()))
}

impl Orders {
    pub fn new(
        pool: PgPool,
        catalog: CatalogServiceClient<TracedChannel>,
        quote_timeout: Duration,
        payment_ttl: Duration,
    ) -> Self {
        Self {
            pool,
            catalog,
            quote_timeout,
            payment_ttl,
            limits: HoldLimits::default(),
        }
    }

    /// The same operations under `limits` (lines, units, unpaid holds per phone).
    pub fn with_limits(self, limits: HoldLimits) -> Self {
        Self { limits, ..self }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Places an order: the same key with the same request returns the first order
    /// (`created` false); with a different request it is refused. Either way the caller
    /// gets a new access token to the order.
    pub async fn place(&self, request: &OrderRequest) -> Result<Placed, OrderError> {
        let fingerprint = fingerprint(request);
        if let Some(existing) = self.replay(request, &fingerprint).await? {
            return Ok(existing);
        }
        self.limits.check_shape(request)?;
        let (lines, subtotal) = self.quote(request).await?;
        let id = Uuid::now_v7();
        let (access_token, access_token_hash) = access::new_token();
        let new = NewOrder {
            id,
            code: order_code(id),
            fingerprint: fingerprint.clone(),
            request,
            shipping_fee_vnd: request.delivery.fee(subtotal),
            subtotal_vnd: subtotal,
            lines,
            access_token_hash,
        };
        let mut tx = self.pool.begin().await?;
        if let Err(refusal) = self.limits.check_phone(&mut tx, request).await {
            // A concurrent request with the same key may have placed the order meanwhile:
            // a retry is answered, never refused.
            drop(tx);
            return match self.replay(request, &fingerprint).await? {
                Some(existing) => Ok(existing),
                None => Err(refusal),
            };
        }
        if let Err(err) = store::insert_order(&mut tx, &new).await {
            if store::is_duplicate_key(&err) {
                // A concurrent request with the same key won the race: answer as a retry.
                drop(tx);
                return match self.replay(request, &fingerprint).await? {
                    Some(existing) => Ok(existing),
                    None => {
                        Err(anyhow::anyhow!("idempotency key vanished after a conflict").into())
                    }
                };
            }
            return Err(err.into());
        }
        let order = written(&mut tx, id).await?;
        outbox::enqueue(&mut tx, topics::ORDERS.name, &events::order_placed(&order)).await?;
        if let Some(partner) = events::partner_event(&order) {
            outbox::enqueue(&mut tx, topics::PARTNER_ORDERS.name, &partner).await?;
        }
        tx.commit().await?;
        metrics::counter!("ocop_orders_placed_total", "channel" => request.channel.as_str())
            .increment(1);
        tracing::info!(order_id = %id, total_vnd = order.row.total_vnd, "order placed");
        Ok(Placed {
            order,
            created: true,
            access_token,
        })
    }

    /// The order stored under the request's key, with a new access token to it, if any;
    /// a different request under the same key is an error.
    async fn replay(
        &self,
        request: &OrderRequest,
        fingerprint: &str,
    ) -> Result<Option<Placed>, OrderError> {
        let mut conn = self.pool.acquire().await?;
        let Some((id, stored)) =
            store::by_idempotency_key(&mut conn, &request.idempotency_key).await?
        else {
            return Ok(None);
        };
        if stored != fingerprint {
            return Err(OrderError::KeyReused(
                "was already used for a different order request".to_owned(),
            ));
        }
        let (access_token, hash) = access::new_token();
        store::add_access_token(&mut conn, id, &hash).await?;
        Ok(store::order(&mut conn, id).await?.map(|order| Placed {
            order,
            created: false,
            access_token,
        }))
    }

    /// The catalog's authoritative prices, within the quote deadline.
    async fn quote(&self, request: &OrderRequest) -> Result<(Vec<LineRecord>, i64), OrderError> {
        let mut call = tonic::Request::new(catalog::QuotePriceRequest {
            lines: request
                .lines
                .iter()
                .map(|line| catalog::QuoteLine {
                    product_id: line.product_id.to_string(),
                    quantity: line.quantity,
                })
                .collect(),
        });
        call.set_timeout(self.quote_timeout);
        let quote = match self.catalog.clone().quote_price(call).await {
            Ok(response) => response.into_inner(),
            Err(status) => return Err(quote_error(status)),
        };
        let lines = quote
            .lines
            .into_iter()
            .map(|line| {
                Ok(LineRecord {
                    product_id: line
                        .product_id
                        .parse()
                        .map_err(|_| anyhow::anyhow!("catalog quoted a bad product id"))?,
                    sku: line.sku,
                    name: line.name,
                    unit: line.unit,
                    quantity: line.quantity,
                    unit_price_vnd: line.unit_price_vnd,
                    line_total_vnd: line.line_total_vnd,
                })
            })
            .collect::<Result<Vec<_>, anyhow::Error>>()?;
        Ok((lines, quote.subtotal_vnd))
    }

    pub async fn order(&self, id: Uuid) -> Result<OrderRecord, OrderError> {
        let mut conn = self.pool.acquire().await?;
        store::order(&mut conn, id)
            .await?
            .ok_or_else(|| OrderError::NotFound {
                field: "order_id".into(),
                message: format!("no order with id {id}"),
            })
    }

    pub async fn by_phone(
        &self,
        phone: &str,
        after: Option<(DateTime<Utc>, Uuid)>,
        limit: i64,
    ) -> Result<Vec<OrderRecord>, OrderError> {
        let mut conn = self.pool.acquire().await?;
        Ok(store::orders_by_phone(&mut conn, phone, after, limit).await?)
    }

    /// Moves an order by `trigger` inside the caller's transaction and writes the events
    /// the move causes. `Ok(None)`: the state machine refused (a late or duplicated
    /// event, or a forbidden call); nothing changed.
    pub async fn apply(
        &self,
        tx: &mut Tx,
        order_id: Uuid,
        trigger: Trigger,
        cause: &str,
        detail: &str,
    ) -> Result<Option<OrderRecord>, OrderError> {
        let Some(before) = store::order_for_update(tx, order_id).await? else {
            return Err(OrderError::NotFound {
                field: "order_id".into(),
                message: format!("no order with id {order_id}"),
            });
        };
        let from = before.row.status();
        let step = match transition(from, trigger) {
            Ok(step) => step,
            Err(refused) => {
                tracing::info!(order_id = %order_id, cause, reason = %refused, "status change refused; order unchanged");
                return Ok(None);
            }
        };
        let payment_deadline = match (step.to, trigger) {
            (OrderStatus::AwaitingPayment, Trigger::StockReserved { held_until }) => {
                Some(self.payment_deadline(order_id, held_until)?)
            }
            _ => None,
        };
        let (row, entry) = store::set_status(
            tx,
            order_id,
            from,
            step.to,
            cause,
            step.cancellation.map(|reason| (reason, detail)),
            payment_deadline,
        )
        .await?;
        // Lines never change after placing; the history gains the entry just written.
        let mut after = OrderRecord { row, ..before };
        after.history.push(entry);
        if let Some(deadline) = payment_deadline {
            outbox::enqueue(
                tx,
                topics::ORDERS.name,
                &events::payment_requested(&after, deadline),
            )
            .await?;
        }
        if let Some(event) = events::status_event(&after, from) {
            outbox::enqueue(tx, topics::ORDERS.name, &event).await?;
        }
        if let Some(event) = events::partner_event(&after) {
            outbox::enqueue(tx, topics::PARTNER_ORDERS.name, &event).await?;
        }
        metrics::counter!("ocop_order_transitions_total", "to" => step.to.as_str()).increment(1);
        tracing::info!(order_id = %order_id, from = from.as_str(), to = step.to.as_str(), cause, "order moved");
        Ok(Some(after))
    }

    /// When the shopper must have paid: `PAYMENT_TTL` from now, but never after the
    /// catalog lets the stock go, so that one clock decides (a payment that still races
    /// the expiry is sold from free stock or refunded by the saga).
    fn payment_deadline(
        &self,
        order_id: Uuid,
        held_until: Option<DateTime<Utc>>,
    ) -> Result<DateTime<Utc>, OrderError> {
        let ttl = chrono::Duration::from_std(self.payment_ttl)
            .map_err(|err| anyhow::anyhow!("payment ttl: {err}"))?;
        let deadline = Utc::now() + ttl;
        match held_until {
            Some(held_until) if held_until < deadline => {
                tracing::info!(order_id = %order_id, %held_until, "payment deadline set to the reservation's expiry (PAYMENT_TTL reaches past it)");
                Ok(held_until)
            }
            _ => Ok(deadline),
        }
    }

    /// Runs `apply` for an RPC in its own transaction: a refused move is
    /// FAILED_PRECONDITION, except that repeating a move already made is a no-op.
    pub async fn command(
        &self,
        order_id: Uuid,
        trigger: Trigger,
        cause: &str,
        detail: &str,
        done_when: OrderStatus,
    ) -> Result<OrderRecord, OrderError> {
        let mut tx = self.pool.begin().await?;
        let moved = self
            .apply(&mut tx, order_id, trigger, cause, detail)
            .await?;
        let order = match moved {
            Some(order) => order,
            None => {
                let order = written(&mut tx, order_id).await?;
                if order.row.status() != done_when {
                    return Err(OrderError::FailedPrecondition(format!(
                        "order {order_id} is {} and cannot take {cause}",
                        order.row.status().as_str()
                    )));
                }
                order
            }
        };
        tx.commit().await?;
        Ok(order)
    }

    /// Cancels an unpaid order (the catalog then releases its stock).
    pub async fn cancel(
        &self,
        order_id: Uuid,
        reason: CancellationReason,
        detail: &str,
    ) -> Result<OrderRecord, OrderError> {
        self.command(
            order_id,
            Trigger::Cancel(reason),
            "CancelOrder",
            detail,
            OrderStatus::Cancelled,
        )
        .await
    }

    pub async fn ship(
        &self,
        order_id: Uuid,
        carrier: &str,
        tracking_code: &str,
    ) -> Result<OrderRecord, OrderError> {
        let mut tx = self.pool.begin().await?;
        store::set_shipment(&mut tx, order_id, carrier, tracking_code).await?;
        let moved = self
            .apply(&mut tx, order_id, Trigger::Ship, "MarkShipped", "")
            .await?;
        let Some(order) = moved else {
            let order = written(&mut tx, order_id).await?;
            return Err(OrderError::FailedPrecondition(format!(
                "order {order_id} is {} and cannot be shipped",
                order.row.status().as_str()
            )));
        };
        tx.commit().await?;
        Ok(order)
    }

    pub async fn deliver(&self, order_id: Uuid) -> Result<OrderRecord, OrderError> {
        self.command(
            order_id,
            Trigger::Deliver,
            "MarkDelivered",
            "",
            OrderStatus::Delivered,
        )
        .await
    }

    /// Sets `ocop_orders{status}` to the number of orders in each status (a status with
    /// no orders reads 0 rather than keeping a stale value),
    /// `ocop_orders_past_payment_deadline` and `ocop_orders_pending_overdue` (orders
    /// PENDING for longer than `pending_overdue_after`).
    pub async fn report_statuses(
        &self,
        pending_overdue_after: std::time::Duration,
    ) -> Result<(), OrderError> {
        let mut conn = self.pool.acquire().await?;
        let counts = store::count_by_status(&mut conn).await?;
        for status in OrderStatus::ALL {
            let count = counts
                .iter()
                .find(|(name, _)| name == status.as_str())
                .map_or(0, |(_, count)| *count);
            metrics::gauge!("ocop_orders", "status" => status.as_str()).set(count as f64);
        }
        let overdue = store::count_past_payment_deadline(&mut conn).await?;
        metrics::gauge!("ocop_orders_past_payment_deadline").set(overdue as f64);
        let pending = store::count_pending_longer_than(&mut conn, pending_overdue_after).await?;
        metrics::gauge!("ocop_orders_pending_overdue").set(pending as f64);
        Ok(())
    }

    /// Keeps the payment instructions (pay URL or VietQR payload) for `GetOrder`.
    pub async fn record_payment_instructions(
        &self,
        tx: &mut Tx,
        order_id: Uuid,
        pay_url: Option<&str>,
        vietqr_payload: Option<&str>,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<(), OrderError> {
        if !store::set_payment_instructions(tx, order_id, pay_url, vietqr_payload, expires_at)
            .await?
        {
            return Err(OrderError::NotFound {
                field: "order_id".into(),
                message: format!("no order with id {order_id}"),
            });
        }
        Ok(())
    }
}

/// A catalog refusal names the line (`lines[2].product_id: …`): the shopper's request
/// is at fault. Anything else means the catalog is not there for us.
fn quote_error(status: tonic::Status) -> OrderError {
    match status.code() {
        tonic::Code::NotFound | tonic::Code::FailedPrecondition | tonic::Code::InvalidArgument => {
            let message = status.message();
            match message.split_once(": ") {
                Some((field, reason)) if field.starts_with("lines") => {
                    Invalid::new(field, reason).into()
                }
                _ => Invalid::new("lines", message).into(),
            }
        }
        code => {
            tracing::warn!(code = ?code, message = status.message(), "catalog quote failed");
            OrderError::Unavailable(format!(
                "the catalog did not answer the price quote ({code:?}); nothing was stored, retry later"
            ))
        }
    }
}

async fn written(tx: &mut Tx, id: Uuid) -> Result<OrderRecord, OrderError> {
    store::order(tx, id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("order {id} vanished inside its transaction").into())
}

#[cfg(test)]
mod tests {
    use super::{fingerprint, quote_error};
    use crate::{
        domain::order::{DeliveryMethod, OrderInput, OrderRequest, PaymentMethod},
        error::OrderError,
    };

    /// Stored fingerprints must stay valid across releases: this value may only change
    /// together with the encoding's version tag.
    #[test]
    fn fingerprint_of_a_known_request_never_changes() {
        let request = OrderRequest::new(OrderInput {
            idempotency_key: "key-1",
            name: "Nguyễn Thị Lan",
            phone: "+84 912 345 678",
            email: "Lan@Example.com",
            province: "Quảng Ninh",
            district: "Hạ Long",
            ward: "Bãi Cháy",
            street: "12 Hạ Long",
            lines: vec![("01a2267f-4cf3-7032-bf48-bbcafb0524d4", 2)],
            delivery: Some(DeliveryMethod::Standard),
            payment: Some(PaymentMethod::Sandbox),
            channel: None,
            note: "",
        })
        .unwrap();
        assert_eq!(
            fingerprint(&request),
            "e963aa17d300d9e8c7ed7c38481fb7b44e94a51b3d22fc9e44dca6040a8fd43b"
        );
    }

    #[test]
    fn catalog_refusal_becomes_invalid_argument_on_the_line() {
        let err = quote_error(tonic::Status::not_found(
            "lines[1].product_id: no product with id x",
        ));
        let OrderError::Invalid(invalid) = err else {
            panic!("{err:?}")
        };
        assert_eq!(invalid.field, "lines[1].product_id");
    }

    #[test]
    fn catalog_silence_is_unavailable() {
        assert!(matches!(
            quote_error(tonic::Status::deadline_exceeded("slow")),
            OrderError::Unavailable(_)
        ));
        assert!(matches!(
            quote_error(tonic::Status::unavailable("down")),
            OrderError::Unavailable(_)
        ));
    }
}
