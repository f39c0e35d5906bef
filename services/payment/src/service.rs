//! Payment operations: each changes state through `store` and writes the resulting
//! events to the outbox in the same transaction.

use chrono::Utc;
use ocop_events::outbox;
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::{
    domain::intent::{PaymentRequest, PaymentStatus, Provider},
    error::PaymentError,
    events,
    store::{self, IntentRecord, StatusChange},
};

type Tx = Transaction<'static, Postgres>;

/// Pending intents expired per transaction by the sweeper.
const EXPIRY_BATCH: i64 = 100;

/// The payment service's operations over its database.
#[derive(Clone, Debug)]
pub struct Payments {
    pool: PgPool,
    public_url: String,
}

/// The result of a payment request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requested {
    Created(IntentRecord),
    /// The order already has an intent (a repeated request): nothing changed.
    AlreadyRequested(IntentRecord),
}

impl Payments {
    /// `public_url` is where shoppers and the sandbox reach this service's HTTP port.
    pub fn new(pool: PgPool, public_url: &str) -> Self {
        Self {
            pool,
            public_url: public_url.trim_end_matches('/').to_owned(),
        }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The sandbox's payment page of `payment_id`.
    pub fn pay_url(&self, payment_id: Uuid) -> String {
        format!("{}/sandbox/pay/{payment_id}", self.public_url)
    }

    /// Creates the order's payment intent and its `PaymentInitiated`, in `tx`. A second
    /// request for the same order changes nothing.
    pub async fn request(
        &self,
        tx: &mut Tx,
        request: &PaymentRequest,
    ) -> Result<Requested, PaymentError> {
        let id = Uuid::now_v7();
        if let Some(intent) = store::insert_intent(tx, id, request, &self.pay_url(id)).await? {
            outbox::enqueue(
                tx,
                events::PAYMENTS_TOPIC,
                &events::payment_initiated(&intent),
            )
            .await?;
            tracing::info!(order_id = %intent.order_id, payment_id = %intent.id, method = %intent.method, "payment intent created");
            return Ok(Requested::Created(intent));
        }
        let existing = store::intent_by_order(tx, request.order_id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("intent of order {} vanished", request.order_id))?;
        if existing.amount_vnd != request.amount.get() {
            // The order service never changes a total; a different one is a bug there.
            tracing::warn!(
                order_id = %request.order_id,
                stored_vnd = existing.amount_vnd,
                requested_vnd = request.amount.get(),
                "repeated payment request with another amount ignored"
            );
        }
        Ok(Requested::AlreadyRequested(existing))
    }

    /// Cancels the order's intent if it is still pending (no event: the order's own
    /// `OrderCancelled` says it all). `None`: no intent, or it had already moved on.
    pub async fn cancel(
        &self,
        tx: &mut Tx,
        order_id: Uuid,
    ) -> Result<Option<IntentRecord>, PaymentError> {
        let Some(intent) = store::intent_by_order_for_update(tx, order_id).await? else {
            return Ok(None);
        };
        if intent.status != PaymentStatus::Pending {
            if intent.status == PaymentStatus::Succeeded {
                // Money was taken for an order that no longer exists: a refund case.
                tracing::warn!(order_id = %order_id, payment_id = %intent.id, "order cancelled after its payment succeeded");
            }
            return Ok(None);
        }
        let cancelled = move_intent(
            tx,
            &intent,
            Move {
                to: PaymentStatus::Cancelled,
                captured_vnd: 0,
                provider_transaction_id: None,
                reason: "order cancelled",
            },
        )
        .await?;
        tracing::info!(order_id = %order_id, payment_id = %intent.id, "payment intent cancelled");
        Ok(Some(cancelled))
    }

    /// The payment of `order_id`.
    pub async fn by_order(&self, order_id: Uuid) -> Result<IntentRecord, PaymentError> {
        let mut conn = self.pool.acquire().await?;
        store::intent_by_order(&mut conn, order_id)
            .await?
            .ok_or_else(|| {
                PaymentError::not_found("order_id", format!("no payment for order {order_id}"))
            })
    }

    /// Expires pending intents past their deadline, a batch per transaction, each with
    /// its `PaymentExpired`. Safe with several replicas (rows are locked, busy ones
    /// skipped). Returns how many expired.
    pub async fn expire_due(&self) -> Result<usize, PaymentError> {
        let mut total = 0;
        loop {
            let mut tx = self.pool.begin().await?;
            let due = store::due_expiries(&mut tx, EXPIRY_BATCH).await?;
            let mut expired = Vec::with_capacity(due.len());
            for intent in &due {
                let record = move_intent(
                    &mut tx,
                    intent,
                    Move {
                        to: PaymentStatus::Expired,
                        captured_vnd: 0,
                        provider_transaction_id: None,
                        reason: "not paid by the deadline",
                    },
                )
                .await?;
                expired.push(record);
            }
            tx.commit().await?;
            for record in &expired {
                count_outcome(record.provider, PaymentStatus::Expired);
                tracing::info!(order_id = %record.order_id, payment_id = %record.id, "payment expired");
            }
            total += expired.len();
            if (due.len() as i64) < EXPIRY_BATCH {
                return Ok(total);
            }
        }
    }
}

/// A checked move of an intent.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Move<'a> {
    pub to: PaymentStatus,
    pub captured_vnd: i64,
    pub provider_transaction_id: Option<&'a str>,
    pub reason: &'a str,
}

/// Moves a locked intent through the state machine, records the move and writes the
/// payment event it causes, all in `tx`.
pub(crate) async fn move_intent(
    tx: &mut Tx,
    intent: &IntentRecord,
    change: Move<'_>,
) -> Result<IntentRecord, PaymentError> {
    let to = intent
        .status
        .transition(change.to)
        .map_err(|illegal| anyhow::Error::new(illegal).context(format!("payment {}", intent.id)))?;
    let record = store::change_status(
        tx,
        intent.id,
        StatusChange {
            from: intent.status,
            to,
            captured_vnd: change.captured_vnd,
            provider_transaction_id: change.provider_transaction_id,
            reason: change.reason,
        },
    )
    .await?;
    let event = match to {
        PaymentStatus::Succeeded => Some(events::payment_succeeded(&record)),
        PaymentStatus::Failed => Some(events::payment_failed(
            &record,
            events::DECLINED,
            "the provider declined the payment",
        )),
        PaymentStatus::Expired => Some(events::payment_expired(&record, Utc::now())),
        PaymentStatus::Cancelled | PaymentStatus::Pending => None,
    };
    if let Some(event) = event {
        outbox::enqueue(tx, events::PAYMENTS_TOPIC, &event).await?;
    }
    Ok(record)
}

/// Counts a payment that reached a final outcome. Call after the commit.
pub(crate) fn count_outcome(provider: Provider, outcome: PaymentStatus) {
    metrics::counter!(
        "ocop_payments_total",
        "provider" => provider.as_str(),
        "outcome" => outcome.as_str(),
    )
    .increment(1);
}
