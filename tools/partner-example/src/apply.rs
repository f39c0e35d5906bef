//! The partner store: each function applies one event inside the caller's transaction
//! and only ever moves a row forward.

use chrono::{DateTime, Utc};
use ocop_proto::{catalog::v1 as catalog, order::v1 as order};
use sqlx::{Postgres, Transaction};

pub type Tx = Transaction<'static, Postgres>;

/// Records `ce_id` as applied; `false` when it already was (skip the event).
pub async fn first_delivery(tx: &mut Tx, ce_id: uuid::Uuid) -> sqlx::Result<bool> {
    let inserted =
        sqlx::query("INSERT INTO applied_events (ce_id) VALUES ($1) ON CONFLICT DO NOTHING")
            .bind(ce_id)
            .execute(&mut **tx)
            .await?;
    Ok(inserted.rows_affected() == 1)
}

/// Upserts a product snapshot unless a newer one (a greater version) is already
/// mirrored.
pub async fn product(tx: &mut Tx, snapshot: &catalog::ProductSnapshot) -> sqlx::Result<()> {
    let product = snapshot.product.clone().unwrap_or_default();
    let producer = product.producer.clone().unwrap_or_default();
    sqlx::query(
        "INSERT INTO mirrored_products
             (id, sku, name, price_vnd, available, status, producer, district, updated_at,
              snapshot_version)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT (id) DO UPDATE SET
             sku = EXCLUDED.sku, name = EXCLUDED.name, price_vnd = EXCLUDED.price_vnd,
             available = EXCLUDED.available, status = EXCLUDED.status,
             producer = EXCLUDED.producer, district = EXCLUDED.district,
             updated_at = EXCLUDED.updated_at, snapshot_version = EXCLUDED.snapshot_version
         WHERE mirrored_products.snapshot_version < EXCLUDED.snapshot_version",
    )
    .bind(&product.id)
    .bind(&product.sku)
    .bind(&product.name)
    .bind(product.price_vnd)
    .bind(product.available)
    .bind(product.status().as_str_name())
    .bind(&producer.name)
    .bind(&producer.district)
    .bind(timestamp(product.updated_at.as_ref()))
    .bind(snapshot.version)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A tombstone (a record with no value) removes the product from the mirror.
pub async fn product_removed(tx: &mut Tx, product_id: &str) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM mirrored_products WHERE id = $1")
        .bind(product_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Upserts an order's status unless a later event is already applied.
pub async fn order_event(tx: &mut Tx, event: &order::PartnerOrderEvent) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO followed_orders
             (id, status, sales_channel, total_vnd, delivery_province, occurred_at)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (id) DO UPDATE SET
             status = EXCLUDED.status, total_vnd = EXCLUDED.total_vnd,
             occurred_at = EXCLUDED.occurred_at
         WHERE followed_orders.occurred_at <= EXCLUDED.occurred_at",
    )
    .bind(&event.order_id)
    .bind(event.status().as_str_name())
    .bind(event.sales_channel().as_str_name())
    .bind(event.total_vnd)
    .bind(&event.delivery_province)
    .bind(timestamp(event.occurred_at.as_ref()))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn timestamp(value: Option<&prost_types::Timestamp>) -> DateTime<Utc> {
    value
        .and_then(ocop_proto::contract::timestamp::from_proto)
        .unwrap_or(DateTime::UNIX_EPOCH)
}
