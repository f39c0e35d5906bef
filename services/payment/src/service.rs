//! Payment operations: each changes state through `store` and writes the resulting
//! events to the outbox in the same transaction.

use chrono::Utc;
use ocop_events::outbox;
use ocop_proto::contract::topics;
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::{
    domain::{
        intent::{PaymentRequest, PaymentStatus, Provider},
        refund::{self, RefundRequest, RefundStatus},
    },
    error::PaymentError,
    events, ledger,
    providers::{Instructions, Providers, RefundOutcome},
    store::{self, IntentRecord, RefundRecord, StatusChange},
};

type Tx = Transaction<'static, Postgres>;

/// Pending intents expired per transaction by the sweeper.
const EXPIRY_BATCH: i64 = 100;

/// The payment service's operations over its database.
#[derive(Clone, Debug)]
pub struct Payments {
    pool: PgPool,
    public_url: String,
    providers: Providers,
}

/// Where the shopper's pay link leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checkout {
    /// To the provider's page.
    Redirect(String),
    /// Nowhere: show this payment (VietQR, or a payment no longer pending).
    Show(Box<IntentRecord>),
}

/// The result of a refund request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundResult {
    pub refund: RefundRecord,
    /// False when the idempotency key named an earlier refund (returned as it is).
    pub created: bool,
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
    pub fn new(pool: PgPool, public_url: &str, providers: Providers) -> Self {
        Self {
            pool,
            public_url: public_url.trim_end_matches('/').to_owned(),
            providers,
        }
    }

    pub fn providers(&self) -> &Providers {
        &self.providers
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
        let (provider, refused, instructions) = match self.providers.for_method(request.method) {
            Some(adapter) => {
                let mut refused = adapter.precheck(request.amount.get()).err();
                let instructions = match adapter.instructions(id, request) {
                    Ok(instructions) => instructions,
                    Err(err) => {
                        refused.get_or_insert(("invalid_instructions".into(), format!("{err:#}")));
                        Instructions::PayUrl(self.pay_url(id))
                    }
                };
                (adapter.provider(), refused, instructions)
            }
            // Not offered here, or its provider has no credentials: the order is told at
            // once (it is cancelled), and no other provider takes the money instead.
            None => (
                request.method.provider(),
                Some((
                    "method_unavailable".to_owned(),
                    format!(
                        "{} is not taken by this payment service (PAYMENT_METHODS, credentials)",
                        request.method.as_str()
                    ),
                )),
                Instructions::PayUrl(self.pay_url(id)),
            ),
        };
        let (pay_url, vietqr) = match &instructions {
            Instructions::PayUrl(url) => (url.clone(), None),
            Instructions::VietQr(qr) => (String::new(), Some(qr.payload.as_str())),
        };
        if let Some(intent) =
            store::insert_intent(tx, id, request, provider, &pay_url, vietqr).await?
        {
            outbox::enqueue(
                tx,
                topics::PAYMENTS.name,
                &events::payment_initiated(&intent, &instructions),
            )
            .await?;
            tracing::info!(order_id = %intent.order_id, payment_id = %intent.id, method = %intent.method, provider = intent.provider.as_str(), "payment intent created");
            if let Some((code, message)) = refused {
                // The provider would refuse it: fail now rather than send the shopper there.
                tracing::warn!(order_id = %intent.order_id, code = %code, message = %message, "payment refused before reaching the provider");
                let failed = move_intent(
                    tx,
                    &intent,
                    Move {
                        to: PaymentStatus::Failed,
                        captured_vnd: 0,
                        provider_transaction_id: None,
                        reason: "refused before reaching the provider",
                        failure: Some((&code, &message)),
                    },
                )
                .await?;
                // Counted before the consumer's commit: only a failed commit (then the
                // event is redelivered) could count it twice.
                count_outcome(failed.provider, PaymentStatus::Failed);
                return Ok(Requested::Created(failed));
            }
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
        if intent.status == PaymentStatus::Succeeded {
            refund_cancelled_order(tx, &intent).await?;
            return Ok(None);
        }
        if intent.status != PaymentStatus::Pending {
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
                failure: None,
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
                        failure: None,
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

    /// The payment of `order_id` with its refunds, oldest first.
    pub async fn with_refunds(
        &self,
        order_id: Uuid,
    ) -> Result<(IntentRecord, Vec<RefundRecord>), PaymentError> {
        let intent = self.by_order(order_id).await?;
        let mut conn = self.pool.acquire().await?;
        let refunds = store::refunds_of(&mut conn, intent.id).await?;
        Ok((intent, refunds))
    }

    /// Where the shopper's pay link for `payment_id` leads: a pending payment is sent to
    /// its provider (whose create API is called once; the page is remembered).
    pub async fn checkout(&self, payment_id: Uuid) -> Result<Checkout, PaymentError> {
        let mut conn = self.pool.acquire().await?;
        let intent = store::intent(&mut conn, payment_id).await?.ok_or_else(|| {
            PaymentError::not_found("payment_id", format!("no payment {payment_id}"))
        })?;
        if intent.status != PaymentStatus::Pending || intent.provider == Provider::VietQr {
            return Ok(Checkout::Show(Box::new(intent)));
        }
        if let Some(url) = &intent.checkout_url {
            return Ok(Checkout::Redirect(url.clone()));
        }
        let adapter = self.providers.get(intent.provider).ok_or_else(|| {
            anyhow::anyhow!("provider {} is not configured", intent.provider.as_str())
        })?;
        let url = adapter
            .checkout(&intent)
            .await
            .map_err(|err| PaymentError::Unavailable(err.to_string()))?;
        store::set_checkout_url(&mut conn, intent.id, &url).await?;
        Ok(Checkout::Redirect(url))
    }

    /// Gives back part or all of a captured payment through its provider. The amount
    /// is reserved under the payment's row lock first (pending refunds count), so
    /// concurrent refunds never exceed what was captured; the same idempotency key
    /// returns the first refund.
    pub async fn refund(&self, request: &RefundRequest) -> Result<RefundResult, PaymentError> {
        let mut tx = self.pool.begin().await?;
        let intent = store::intent_by_order_for_update(&mut tx, request.order_id)
            .await?
            .ok_or_else(|| {
                PaymentError::not_found(
                    "order_id",
                    format!("no payment for order {}", request.order_id),
                )
            })?;
        if let Some(existing) = store::refund_by_key(&mut tx, &request.idempotency_key).await? {
            if existing.order_id != request.order_id || existing.amount_vnd != request.amount_vnd {
                return Err(crate::domain::Invalid::new(
                    "idempotency_key",
                    "was already used for another refund",
                )
                .into());
            }
            return Ok(RefundResult {
                refund: existing,
                created: false,
            });
        }
        let committed = store::committed_refunds(&mut tx, intent.id).await?;
        refund::check_refundable(
            intent.status,
            intent.captured_vnd,
            committed,
            request.amount_vnd,
        )?;
        let pending = store::insert_refund(&mut tx, Uuid::now_v7(), &intent, request).await?;
        tx.commit().await?;
        tracing::info!(order_id = %intent.order_id, refund_id = %pending.id, amount_vnd = pending.amount_vnd, "refund requested");
        let refund = self.send_refund(pending).await?;
        Ok(RefundResult {
            refund,
            created: true,
        })
    }

    /// Asks the provider for a pending refund and records its answer; a provider that
    /// does not answer leaves the refund pending for [`Self::retry_pending_refunds`].
    async fn send_refund(&self, refund: RefundRecord) -> Result<RefundRecord, PaymentError> {
        let mut conn = self.pool.acquire().await?;
        let intent = store::intent(&mut conn, refund.payment_id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("payment {} vanished", refund.payment_id))?;
        let Some(adapter) = self.providers.get(intent.provider) else {
            tracing::warn!(refund_id = %refund.id, provider = intent.provider.as_str(), "provider not configured; refund stays pending");
            return Ok(refund);
        };
        store::count_refund_attempt(&mut conn, refund.id).await?;
        drop(conn);
        match adapter.refund(&intent, &refund).await {
            Ok(outcome) => self.finish_refund(refund.id, outcome).await,
            Err(unavailable) => {
                tracing::warn!(refund_id = %refund.id, error = %unavailable, "refund not answered; will retry");
                Ok(refund)
            }
        }
    }

    async fn finish_refund(
        &self,
        refund_id: Uuid,
        outcome: RefundOutcome,
    ) -> Result<RefundRecord, PaymentError> {
        let mut tx = self.pool.begin().await?;
        let payment_id: Uuid = sqlx::query_scalar("SELECT payment_id FROM refunds WHERE id = $1")
            .bind(refund_id)
            .fetch_one(&mut *tx)
            .await?;
        // Lock order: the payment, then the refund (as `refund` does).
        let intent = store::intent_for_update(&mut tx, payment_id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("payment {payment_id} vanished"))?;
        let refund = store::refund_for_update(&mut tx, refund_id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("refund {refund_id} vanished"))?;
        if refund.status != RefundStatus::Pending {
            return Ok(refund);
        }
        let (record, event, outcome_label) = match outcome {
            RefundOutcome::Succeeded { provider_refund_id } => {
                let record = store::finish_refund(
                    &mut tx,
                    refund.id,
                    RefundStatus::Succeeded,
                    Some(&provider_refund_id),
                    None,
                )
                .await?;
                let intent = store::add_refunded(&mut tx, intent.id, record.amount_vnd).await?;
                ledger::post(
                    &mut tx,
                    &intent,
                    ledger::Kind::Refund,
                    record.amount_vnd,
                    &record.id.to_string(),
                )
                .await?;
                let event = events::refund_succeeded(&intent, &record);
                (record, event, "succeeded")
            }
            RefundOutcome::Failed { code, message } => {
                let record = store::finish_refund(
                    &mut tx,
                    refund.id,
                    RefundStatus::Failed,
                    None,
                    Some((&code, &message)),
                )
                .await?;
                let event = events::refund_failed(&intent, &record);
                (record, event, "failed")
            }
        };
        outbox::enqueue(&mut tx, topics::PAYMENTS.name, &event).await?;
        tx.commit().await?;
        metrics::counter!(
            "ocop_refunds_total",
            "provider" => intent.provider.as_str(),
            "outcome" => outcome_label,
        )
        .increment(1);
        tracing::info!(order_id = %record.order_id, refund_id = %record.id, outcome = outcome_label, "refund settled");
        Ok(record)
    }

    /// Asks again for refunds left pending (a provider that did not answer, a crash
    /// between the request and its answer). Providers are idempotent on our refund id.
    pub async fn retry_pending_refunds(
        &self,
        idle: std::time::Duration,
    ) -> Result<usize, PaymentError> {
        let mut conn = self.pool.acquire().await?;
        let idle_millis = i64::try_from(idle.as_millis()).unwrap_or(i64::MAX);
        let due = store::claim_stale_pending_refunds(&mut conn, idle_millis, 20).await?;
        drop(conn);
        for id in &due {
            let mut conn = self.pool.acquire().await?;
            let refund: Option<RefundRecord> = sqlx::query_as(
                "SELECT id, payment_id, order_id, amount_vnd, reason, idempotency_key, status,
                        provider_refund_id, failure_code, failure_message, attempts, created_at,
                        updated_at
                   FROM refunds WHERE id = $1 AND status = 'pending'",
            )
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
            drop(conn);
            if let Some(refund) = refund {
                self.send_refund(refund).await?;
            }
        }
        Ok(due.len())
    }
}

/// Money was taken for an order that was then cancelled (its payment raced the
/// reservation's expiry and the stock was gone): everything not yet refunded goes back.
/// The refund is written pending in the caller's transaction, so it exists if and only if
/// the cancellation was applied; the refund retrier sends it to the provider.
async fn refund_cancelled_order(tx: &mut Tx, intent: &IntentRecord) -> Result<(), PaymentError> {
    let key = format!("order-cancelled:{}", intent.order_id);
    if let Some(refund) = refund_all_left(tx, intent, "order cancelled after payment", key).await? {
        metrics::counter!("ocop_payments_refunded_after_cancel_total", "provider" => intent.provider.as_str())
            .increment(1);
        tracing::warn!(order_id = %intent.order_id, payment_id = %intent.id, refund_id = %refund.id, amount_vnd = refund.amount_vnd, "order cancelled after its payment succeeded; refunding");
    }
    Ok(())
}

/// A provider reports money taken for a payment that had already closed (expired or
/// cancelled: a callback after the deadline, a provider page that outlived it). The
/// money is not kept: the capture is recorded (intent and ledger) and all of it is
/// refunded through the provider, in the caller's transaction. `false` when the intent
/// already holds a capture (a late callback told again), which changes nothing.
pub(crate) async fn refund_late_capture(
    tx: &mut Tx,
    intent: &IntentRecord,
    amount_vnd: i64,
    provider_transaction_id: &str,
) -> Result<bool, PaymentError> {
    let Some(captured) =
        store::record_late_capture(tx, intent.id, amount_vnd, provider_transaction_id).await?
    else {
        return Ok(false);
    };
    ledger::post(
        tx,
        &captured,
        ledger::Kind::Capture,
        amount_vnd,
        provider_transaction_id,
    )
    .await?;
    let key = format!("late-capture:{}", intent.id);
    if let Some(refund) =
        refund_all_left(tx, &captured, "paid after the payment closed", key).await?
    {
        metrics::counter!("ocop_payments_refunded_late_capture_total", "provider" => intent.provider.as_str())
            .increment(1);
        tracing::warn!(order_id = %intent.order_id, payment_id = %intent.id, refund_id = %refund.id, amount_vnd, status = intent.status.as_str(), "money taken after the payment closed; refunding");
    }
    Ok(true)
}

/// Writes a pending refund of everything `intent` captured and has not given back yet
/// (none when nothing is left).
async fn refund_all_left(
    tx: &mut Tx,
    intent: &IntentRecord,
    reason: &str,
    idempotency_key: String,
) -> Result<Option<RefundRecord>, PaymentError> {
    let left = intent.captured_vnd - store::committed_refunds(tx, intent.id).await?;
    if left <= 0 {
        return Ok(None);
    }
    let request = RefundRequest {
        order_id: intent.order_id,
        amount_vnd: left,
        reason: reason.to_owned(),
        idempotency_key,
    };
    Ok(Some(
        store::insert_refund(tx, Uuid::now_v7(), intent, &request).await?,
    ))
}

/// A checked move of an intent.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Move<'a> {
    pub to: PaymentStatus,
    pub captured_vnd: i64,
    pub provider_transaction_id: Option<&'a str>,
    pub reason: &'a str,
    /// `(reason_code, message)` of a failure, for `PaymentFailed`.
    pub failure: Option<(&'a str, &'a str)>,
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
        PaymentStatus::Succeeded => {
            ledger::post(
                tx,
                &record,
                ledger::Kind::Capture,
                record.captured_vnd,
                record
                    .provider_transaction_id
                    .as_deref()
                    .unwrap_or_default(),
            )
            .await?;
            Some(events::payment_succeeded(&record))
        }
        PaymentStatus::Failed => {
            let (code, message) = change
                .failure
                .unwrap_or((events::DECLINED, "the provider declined the payment"));
            let code = if code.is_empty() {
                events::DECLINED
            } else {
                code
            };
            Some(events::payment_failed(&record, code, message))
        }
        PaymentStatus::Expired => Some(events::payment_expired(&record, Utc::now())),
        PaymentStatus::Cancelled | PaymentStatus::Pending => None,
    };
    if let Some(event) = event {
        outbox::enqueue(tx, topics::PAYMENTS.name, &event).await?;
    }
    Ok(record)
}

/// Every verdict a callback can get (the stored ones, and `internal` for a callback
/// that could not be processed and is not stored).
pub const VERDICTS: [&str; 11] = [
    "accepted",
    "already_processed",
    "missing_signature",
    "invalid_signature",
    "malformed",
    "stale",
    "unknown_payment",
    "wrong_amount",
    "late",
    "closed",
    "internal",
];

/// Exports the payment counters at zero for every configured provider, so that
/// `rate()` in an alert sees zeros rather than a gap before the first event.
pub fn register_metrics(providers: &[Provider]) {
    for provider in providers {
        let provider = provider.as_str();
        for outcome in ["succeeded", "failed", "expired"] {
            metrics::counter!("ocop_payments_total", "provider" => provider, "outcome" => outcome)
                .increment(0);
        }
        for outcome in ["succeeded", "failed"] {
            metrics::counter!("ocop_refunds_total", "provider" => provider, "outcome" => outcome)
                .increment(0);
        }
        for verdict in VERDICTS {
            metrics::counter!("ocop_callbacks_total", "provider" => provider, "verdict" => verdict)
                .increment(0);
        }
        metrics::counter!("ocop_callbacks_flagged_total", "provider" => provider).increment(0);
    }
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
