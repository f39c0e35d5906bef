//! The dispatcher: sends pending notifications through their channels and records the
//! outcome with its event.
//!
//! Each round locks a batch of due rows (`FOR UPDATE SKIP LOCKED`, so replicas share the
//! work without sending a row twice), sends them concurrently, and in the same
//! transaction stores each outcome, the attempt, and `NotificationSent` /
//! `NotificationFailed` in the outbox. A failed attempt is retried with exponential
//! backoff until the attempts run out; then the row is `failed` and the event says so.
//! Nothing ends silently.
//!
//! If the process dies between a send and the commit, the row is still pending and is
//! sent again: delivery to a provider is at least once. Providers get the notification
//! id as their reference (`Idempotency-Key`, ZNS `tracking_id`) to drop such repeats.

use std::{sync::Arc, time::Duration};

use anyhow::Context as _;
use futures::future::join_all;
use ocop_events::outbox;
use ocop_proto::contract::topics;
use sqlx::{PgPool, Postgres, Transaction};
use tokio_util::sync::CancellationToken;

use crate::{
    channel::{Channel, ChannelError, Channels, Message, Receipt},
    domain::{
        contact::Address,
        delivery::{AfterFailure, ChannelKind, RetryPolicy},
    },
    events,
    store::{self, DueNotification},
};

type Tx = Transaction<'static, Postgres>;

/// Rows per round: enough to keep channels busy, few enough that one slow provider
/// holds few locks.
const BATCH: i64 = 32;

/// Dispatcher settings.
#[derive(Debug, Clone, Copy)]
pub struct DispatchConfig {
    pub retry: RetryPolicy,
    /// Pause when a round found nothing due.
    pub interval: Duration,
    /// Longest wait for one send, whatever the channel does.
    pub send_timeout: Duration,
}

/// Sends due notifications until stopped.
#[derive(Clone)]
pub struct Dispatcher {
    pool: PgPool,
    channels: Channels,
    config: DispatchConfig,
}

/// What one send came to.
struct Attempt {
    due: DueNotification,
    channel: ChannelKind,
    result: Result<Receipt, ChannelError>,
    elapsed: Duration,
}

impl Dispatcher {
    pub fn new(pool: PgPool, channels: Channels, config: DispatchConfig) -> Self {
        Self {
            pool,
            channels,
            config,
        }
    }

    /// Dispatches until `stop` is cancelled; the round in flight is finished first.
    pub async fn run(self, stop: CancellationToken) {
        tracing::info!(channels = ?self.channels, "dispatcher started");
        loop {
            if stop.is_cancelled() {
                break;
            }
            match self.dispatch_round().await {
                Ok(handled) if handled > 0 => continue,
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(
                        error = format!("{err:#}"),
                        "dispatch round failed; rows stay pending"
                    )
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(self.config.interval) => {}
                _ = stop.cancelled() => {}
            }
        }
        tracing::info!("dispatcher stopped");
    }

    /// One round: lock due rows, send them, record the outcomes. Returns how many rows
    /// were handled.
    pub async fn dispatch_round(&self) -> anyhow::Result<usize> {
        let mut tx = self.pool.begin().await.context("begin dispatch round")?;
        let due = store::claim_due(&mut tx, &self.channels.kinds(), BATCH)
            .await
            .context("claim due notifications")?;
        if due.is_empty() {
            return Ok(0);
        }
        let attempts = join_all(due.into_iter().map(|due| self.attempt(due))).await;
        let handled = attempts.len();
        for attempt in attempts {
            self.record(&mut tx, attempt).await?;
        }
        tx.commit().await.context("commit dispatch round")?;
        Ok(handled)
    }

    async fn attempt(&self, due: DueNotification) -> Attempt {
        let started = std::time::Instant::now();
        let kind: ChannelKind = due
            .channel
            .parse()
            .expect("the channel column is constrained to known channels");
        // claim_due selects enabled channels only; a miss would be a bug, and is
        // recorded as a permanent failure rather than left pending unseen.
        let result = match self.channels.get(kind) {
            Some(channel) => send(channel, &due, self.config.send_timeout).await,
            None => Err(ChannelError::permanent(format!(
                "channel `{kind}` is not enabled"
            ))),
        };
        Attempt {
            channel: kind,
            due,
            result,
            elapsed: started.elapsed(),
        }
    }

    /// Stores what an attempt came to, with its event when the notification is done.
    async fn record(&self, tx: &mut Tx, attempt: Attempt) -> anyhow::Result<()> {
        let Attempt {
            due,
            channel,
            result,
            elapsed,
        } = attempt;
        let attempts = due.attempts + 1;
        let duration_ms = i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX);
        metrics::histogram!("ocop_notification_send_seconds", "channel" => channel.as_str())
            .record(elapsed.as_secs_f64());
        let outcome = match result {
            Ok(receipt) => {
                let record =
                    store::mark_sent(tx, due.id, attempts, receipt.provider_ref.as_deref()).await?;
                store::record_attempt(tx, due.id, attempts, "sent", None, duration_ms).await?;
                outbox::enqueue(
                    tx,
                    topics::NOTIFICATIONS.name,
                    &events::notification_sent(&record),
                )
                .await?;
                tracing::info!(notification_id = %due.id, order_id = %due.order_id, channel = %channel, template = %due.template, attempts, "notification sent");
                "sent"
            }
            Err(err) => {
                self.record_failure(tx, &due, channel, attempts, duration_ms, err)
                    .await?
            }
        };
        metrics::counter!("ocop_notifications_total", "channel" => channel.as_str(), "outcome" => outcome)
            .increment(1);
        Ok(())
    }

    /// A failed attempt: another one later, or the end (with `NotificationFailed`).
    /// Returns the metric outcome.
    async fn record_failure(
        &self,
        tx: &mut Tx,
        due: &DueNotification,
        channel: ChannelKind,
        attempts: i32,
        duration_ms: i64,
        err: ChannelError,
    ) -> anyhow::Result<&'static str> {
        // Providers echo addresses in errors ("550 <hoa@…> unknown"): what is stored,
        // published and logged shows the masked form only.
        let error = match Address::parse("address", &due.address) {
            Ok(address) => address.redact(&err.message),
            Err(_) => err.message.replace(&due.address, &due.recipient),
        };
        let decision = self
            .config
            .retry
            .after_failure(u32::try_from(attempts).unwrap_or(u32::MAX), err.retryable);
        match decision {
            AfterFailure::RetryIn(pause) => {
                let pause_ms = i64::try_from(pause.as_millis()).unwrap_or(i64::MAX);
                store::schedule_retry(tx, due.id, attempts, &error, pause_ms).await?;
                store::record_attempt(tx, due.id, attempts, "retry", Some(&error), duration_ms)
                    .await?;
                tracing::warn!(notification_id = %due.id, order_id = %due.order_id, channel = %channel, template = %due.template, attempts, retry_in_ms = pause_ms, error = %error, "notification not delivered; will retry");
                Ok("retry")
            }
            AfterFailure::GiveUp => {
                let record = store::mark_failed(tx, due.id, attempts, &error).await?;
                store::record_attempt(tx, due.id, attempts, "failed", Some(&error), duration_ms)
                    .await?;
                outbox::enqueue(
                    tx,
                    topics::NOTIFICATIONS.name,
                    &events::notification_failed(&record),
                )
                .await?;
                tracing::error!(notification_id = %due.id, order_id = %due.order_id, channel = %channel, template = %due.template, attempts, retryable = err.retryable, error = %error, "notification failed for good");
                Ok("failed")
            }
        }
    }
}

/// Sends one notification, bounded by `timeout` even if the channel is not.
async fn send(
    channel: &Arc<dyn Channel>,
    due: &DueNotification,
    timeout: Duration,
) -> Result<Receipt, ChannelError> {
    let message = Message {
        notification_id: due.id,
        order_id: due.order_id,
        order_code: due.order_code.clone(),
        customer_name: due.customer_name.clone(),
        channel: channel.kind(),
        template: due.template.clone(),
        address: due.address.clone(),
        subject: due.subject.clone(),
        body: due.body.clone(),
    };
    match tokio::time::timeout(timeout, channel.send(&message)).await {
        Ok(result) => result,
        Err(_) => Err(ChannelError::retryable(format!(
            "no answer within {}",
            humantime::format_duration(timeout)
        ))),
    }
}
