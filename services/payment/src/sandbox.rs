//! The sandbox gateway: plays the payment provider's side, for development, tests and
//! load generation, with a real signing scheme ([`scheme`]).
//!
//! When an intent has waited `SANDBOX_DELAY`, the gateway settles it with
//! `SANDBOX_OUTCOME` (`never` leaves it to the shopper or to expiry); the control API
//! ([`routes`]) settles one on demand. Settling records the outcome and a transaction id
//! in the gateway's own table, then POSTs a signed callback over real HTTP to the payment
//! service's `/callbacks/sandbox`, exactly as a provider's IPN would arrive: the callback
//! handler cannot tell the sandbox from a real provider, and there is no shortcut.
//!
//! Nothing lives only in memory: a background loop finds due intents and undelivered
//! settlements in the database (rows claimed with `SKIP LOCKED` and a lease), so
//! settlement survives restarts and runs once across replicas; callbacks the service did
//! not acknowledge are retried with backoff, like a provider's IPN.

mod pages;
pub mod scheme;
mod settlements;

use std::time::Duration;

use anyhow::Context as _;
use chrono::Utc;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub use pages::routes;
use scheme::{CallbackBody, CallbackStatus, SIGNATURE_HEADER, SigningKey};
use settlements::Claim;

/// How often the gateway looks for due intents and undelivered callbacks.
const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// Intents settled / callbacks delivered per round.
const BATCH: i64 = 50;
/// How long a claimed delivery is reserved for the replica that claimed it; a replica
/// that dies mid-delivery only delays it by this much.
const LEASE: Duration = Duration::from_secs(30);
/// Deliveries tried before the gateway gives a callback up (as providers eventually do).
const MAX_ATTEMPTS: i32 = 12;
/// How long one callback POST may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What the gateway does with an intent once `SANDBOX_DELAY` has passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Outcome {
    /// Settle it as paid.
    Success,
    /// Settle it as declined.
    Failure,
    /// Leave it to the shopper (the control API) or to expiry.
    Never,
}

impl Outcome {
    fn settles_as(self) -> Option<CallbackStatus> {
        match self {
            Self::Success => Some(CallbackStatus::Success),
            Self::Failure => Some(CallbackStatus::Failure),
            Self::Never => None,
        }
    }
}

/// The gateway's settings.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub key: SigningKey,
    pub delay: Duration,
    pub outcome: Outcome,
    /// Where callbacks go: the payment service's `/callbacks/sandbox`.
    pub callback_url: String,
}

/// The sandbox provider.
#[derive(Clone, Debug)]
pub struct Gateway {
    pool: PgPool,
    client: reqwest::Client,
    config: GatewayConfig,
}

/// How the payment service answered one callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// It answered with this HTTP status and body.
    Answered { status: u16, body: String },
    /// It could not be reached (or did not answer in time).
    Unreachable(String),
}

impl Answer {
    fn summary(&self) -> String {
        match self {
            Self::Answered { status, body } => format!("HTTP {status}: {body}"),
            Self::Unreachable(err) => format!("unreachable: {err}"),
        }
    }
}

/// Why the control API could not settle a payment.
#[derive(Debug, thiserror::Error)]
pub enum SettleError {
    #[error("no payment with id {0}")]
    UnknownPayment(Uuid),
    #[error("the payment was already settled as {0}")]
    AlreadySettled(&'static str),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

fn status_text(status: CallbackStatus) -> &'static str {
    match status {
        CallbackStatus::Success => "success",
        CallbackStatus::Failure => "failure",
    }
}

/// A provider transaction id: `SBX` and 20 random upper-case hex digits.
fn transaction_id() -> String {
    let random = Uuid::new_v4().simple().to_string().to_uppercase();
    format!("SBX{}", &random[..20])
}

impl Gateway {
    pub fn new(pool: PgPool, config: GatewayConfig) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .context("build the sandbox HTTP client")?;
        Ok(Self {
            pool,
            client,
            config,
        })
    }

    /// Settles due intents and delivers their callbacks until `stop` is cancelled.
    pub async fn run(self, stop: CancellationToken) {
        tracing::info!(outcome = ?self.config.outcome, delay = ?self.config.delay, "sandbox gateway started");
        loop {
            tokio::select! {
                _ = tokio::time::sleep(POLL_INTERVAL) => {}
                _ = stop.cancelled() => break,
            }
            if let Err(err) = self.round().await {
                tracing::warn!(
                    error = format!("{err:#}"),
                    "sandbox round failed; will retry"
                );
            }
        }
        tracing::info!("sandbox gateway stopped");
    }

    async fn round(&self) -> anyhow::Result<()> {
        if let Some(status) = self.config.outcome.settles_as() {
            let mut tx = self.pool.begin().await?;
            let due = settlements::due_intents(&mut tx, self.config.delay, BATCH).await?;
            for payment_id in &due {
                settlements::insert(
                    &mut tx,
                    *payment_id,
                    status_text(status),
                    &transaction_id(),
                    Duration::ZERO,
                )
                .await?;
            }
            tx.commit().await?;
            if !due.is_empty() {
                tracing::debug!(count = due.len(), "sandbox settled due intents");
            }
        }
        let claims = settlements::claim_due(&self.pool, BATCH, LEASE).await?;
        for claim in &claims {
            let answer = self.deliver(claim).await;
            self.finish(claim, &answer).await?;
        }
        Ok(())
    }

    /// Settles `payment_id` now with `status` (the control API) and delivers the
    /// callback at once. A payment settles once: asking again with the same outcome
    /// delivers the same callback again; with the other outcome it is refused.
    pub async fn settle_now(
        &self,
        payment_id: Uuid,
        status: CallbackStatus,
    ) -> Result<Answer, SettleError> {
        let mut tx = self.pool.begin().await?;
        if crate::store::intent(&mut tx, payment_id).await?.is_none() {
            return Err(SettleError::UnknownPayment(payment_id));
        }
        // Delivered right below; the lease keeps the background loop away meanwhile.
        settlements::insert(
            &mut tx,
            payment_id,
            status_text(status),
            &transaction_id(),
            LEASE,
        )
        .await?;
        let claim = settlements::claim(&mut tx, payment_id)
            .await?
            .ok_or(SettleError::UnknownPayment(payment_id))?;
        if claim.outcome != status {
            // Dropping `tx` rolls the claim back: nothing changes.
            return Err(SettleError::AlreadySettled(status_text(claim.outcome)));
        }
        tx.commit().await?;
        let answer = self.deliver(&claim).await;
        self.finish(&claim, &answer).await?;
        Ok(answer)
    }

    /// Builds, signs and POSTs the callback of `claim`. Each attempt carries a fresh
    /// timestamp (and so a fresh signature): the receiver refuses stale ones.
    async fn deliver(&self, claim: &Claim) -> Answer {
        let body = CallbackBody {
            payment_id: claim.payment_id.to_string(),
            order_code: claim.order_code.clone(),
            amount_vnd: claim.amount_vnd,
            status: claim.outcome,
            provider_transaction_id: claim.provider_transaction_id.clone(),
            timestamp: Utc::now().timestamp(),
        }
        .to_bytes();
        let signature = self.config.key.sign(&body);
        let mut request = self
            .client
            .post(&self.config.callback_url)
            .header(SIGNATURE_HEADER, signature)
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        for (name, value) in &claim.trace_headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let sent = request.body(body).send().await;
        match sent {
            Ok(response) => {
                let status = response.status().as_u16();
                let body = response.text().await.unwrap_or_default();
                Answer::Answered { status, body }
            }
            Err(err) => Answer::Unreachable(err.to_string()),
        }
    }

    /// Records how the delivery went: done on 2xx, given up on another definitive
    /// answer (4xx) or after `MAX_ATTEMPTS`, retried with backoff otherwise.
    async fn finish(&self, claim: &Claim, answer: &Answer) -> Result<(), sqlx::Error> {
        let summary = answer.summary();
        let next = match answer {
            Answer::Answered { status, .. } if (200..300).contains(status) => {
                settlements::Next::Delivered
            }
            Answer::Answered { status, .. } if *status < 500 => settlements::Next::Abandoned,
            _ if claim.attempts >= MAX_ATTEMPTS => settlements::Next::Abandoned,
            _ => settlements::Next::RetryIn(backoff(claim.attempts)),
        };
        match next {
            settlements::Next::Delivered => {
                tracing::debug!(payment_id = %claim.payment_id, "sandbox callback acknowledged");
            }
            settlements::Next::Abandoned => {
                tracing::warn!(payment_id = %claim.payment_id, answer = %summary, "sandbox callback given up");
            }
            settlements::Next::RetryIn(after) => {
                tracing::warn!(payment_id = %claim.payment_id, answer = %summary, retry_in = ?after, "sandbox callback not acknowledged");
            }
        }
        settlements::finish(&self.pool, claim.payment_id, next, &summary).await
    }
}

/// 0.5 s, 1 s, 2 s, … up to a minute.
fn backoff(attempts: i32) -> Duration {
    let exponent = u32::try_from(attempts.saturating_sub(1))
        .unwrap_or(0)
        .min(7);
    (Duration::from_millis(500) * 2u32.pow(exponent)).min(Duration::from_secs(60))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transaction_ids_are_prefixed_and_unique() {
        let first = transaction_id();
        assert!(first.starts_with("SBX"), "{first}");
        assert_eq!(first.len(), 23);
        assert_ne!(first, transaction_id());
    }

    #[test]
    fn backoff_doubles_up_to_a_minute() {
        assert_eq!(backoff(1), Duration::from_millis(500));
        assert_eq!(backoff(2), Duration::from_secs(1));
        assert_eq!(backoff(8), Duration::from_secs(60));
        assert_eq!(backoff(40), Duration::from_secs(60));
    }

    #[test]
    fn never_settles_nothing_by_itself() {
        assert_eq!(Outcome::Never.settles_as(), None);
        assert_eq!(Outcome::Failure.settles_as(), Some(CallbackStatus::Failure));
    }
}
