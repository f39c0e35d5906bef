//! The consumer loop: read both public topics, apply each event once, commit its offset
//! after the store's transaction commits.

use std::time::Duration;

use anyhow::Context as _;
use ocop_proto::{catalog::v1 as catalog, contract::topics, order::v1 as order};
use prost::{Message as _, Name as _};
use rdkafka::{
    Message as _,
    consumer::{CommitMode, Consumer as _, StreamConsumer},
    message::{BorrowedMessage, Headers as _},
};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::{Config, apply};

/// Follows both topics until `stop` is cancelled.
pub async fn run(config: Config, stop: CancellationToken) -> anyhow::Result<()> {
    let pool = PgPool::connect(&config.database_url)
        .await
        .context("connect to the partner store")?;
    crate::MIGRATOR
        .run(&pool)
        .await
        .context("migrate the partner store")?;
    let consumer: StreamConsumer = config
        .client_config()
        .create()
        .context("create the Kafka consumer")?;
    // The public topics, as the contract names them, under the configured prefix.
    let products = format!("{}{}", config.topic_prefix, topics::PRODUCTS.name);
    let orders = format!("{}{}", config.topic_prefix, topics::PARTNER_ORDERS.name);
    consumer
        .subscribe(&[&products, &orders])
        .context("subscribe to the public topics")?;
    tracing::info!(group = %config.group, %products, %orders, "following");
    loop {
        let message = tokio::select! {
            _ = stop.cancelled() => break,
            message = consumer.recv() => message,
        };
        let message = match message {
            Ok(message) => message,
            Err(err) => {
                tracing::warn!(error = %err, "receive failed; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        // A failing store is retried in place: skipping would lose the event.
        while let Err(err) = apply_record(&pool, &message, &products).await {
            tracing::warn!(error = %err, topic = message.topic(), offset = message.offset(), "apply failed; retrying");
            tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
        consumer
            .commit_message(&message, CommitMode::Async)
            .context("commit offset")?;
    }
    Ok(())
}

/// Applies one record; records the partner cannot read are logged and skipped (they
/// are someone else's event type or a newer version it doesn't know yet).
async fn apply_record(
    pool: &PgPool,
    message: &BorrowedMessage<'_>,
    products_topic: &str,
) -> anyhow::Result<()> {
    let key = message
        .key()
        .map(|key| String::from_utf8_lossy(key).into_owned())
        .unwrap_or_default();
    let Some(payload) = message.payload() else {
        // A tombstone on the compacted topic: the product is gone.
        if message.topic() == products_topic {
            let mut tx = pool.begin().await?;
            apply::product_removed(&mut tx, &key).await?;
            tx.commit().await?;
        }
        return Ok(());
    };
    let (Some(ce_id), Some(ce_type)) = (header(message, "ce_id"), header(message, "ce_type"))
    else {
        tracing::warn!(
            topic = message.topic(),
            offset = message.offset(),
            "record without CloudEvents headers skipped"
        );
        return Ok(());
    };
    let Ok(ce_id) = uuid::Uuid::parse_str(&ce_id) else {
        tracing::warn!(%ce_id, "record with a malformed ce_id skipped");
        return Ok(());
    };
    let mut tx = pool.begin().await?;
    if !apply::first_delivery(&mut tx, ce_id).await? {
        return Ok(()); // applied before: a redelivery or a replay
    }
    // `ce_type` is the message's protobuf full name.
    if ce_type == catalog::ProductSnapshot::full_name() {
        match catalog::ProductSnapshot::decode(payload) {
            Ok(snapshot) if snapshot.product.is_some() => {
                apply::product(&mut tx, &snapshot).await?
            }
            _ => tracing::warn!(%ce_id, "undecodable product snapshot skipped"),
        }
    } else if ce_type == order::PartnerOrderEvent::full_name() {
        match order::PartnerOrderEvent::decode(payload) {
            Ok(event) => apply::order_event(&mut tx, &event).await?,
            Err(err) => tracing::warn!(%ce_id, error = %err, "undecodable order event skipped"),
        }
    } else {
        tracing::debug!(%ce_type, "event type not followed");
    }
    tx.commit().await?;
    Ok(())
}

fn header(message: &BorrowedMessage<'_>, name: &str) -> Option<String> {
    let headers = message.headers()?;
    headers
        .iter()
        .find(|header| header.key == name)
        .and_then(|header| header.value)
        .map(|value| String::from_utf8_lossy(value).into_owned())
}
