//! PostgreSQL access for the catalog. Writes take the caller's transaction so that the
//! state change and its outbox events commit together.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Postgres, Transaction};
use uuid::Uuid;

use crate::domain::{
    product::{ProducerDraft, ProductDraft, StockAdjustment},
    reservation::{RequestedLine, ReservationState, StockLevel},
};

type Tx = Transaction<'static, Postgres>;

/// A producer row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ProducerRecord {
    pub id: Uuid,
    pub code: String,
    pub name: String,
    pub kind: String,
    pub district: String,
    pub province: String,
}

/// A product with its producer and stock, as read models and events show it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ProductRecord {
    pub id: Uuid,
    pub sku: String,
    pub name: String,
    pub description: String,
    pub category: String,
    pub stars: i16,
    pub unit: String,
    pub price_vnd: i64,
    pub status: String,
    pub updated_at: DateTime<Utc>,
    pub on_hand: i64,
    pub reserved: i64,
    pub producer_id: Uuid,
    pub producer_code: String,
    pub producer_name: String,
    pub producer_kind: String,
    pub producer_district: String,
    pub producer_province: String,
}

impl ProductRecord {
    pub fn available(&self) -> i64 {
        self.on_hand - self.reserved
    }
}

/// The product read model's SELECT, followed by `$tail` (a literal, so queries stay
/// `&'static str`).
macro_rules! product_select {
    ($tail:literal) => {
        concat!(
            "
    SELECT p.id, p.sku, p.name, p.description, p.category, p.stars, p.unit, p.price_vnd,
           p.status, p.updated_at, s.on_hand, s.reserved,
           pr.id AS producer_id, pr.code AS producer_code, pr.name AS producer_name,
           pr.kind AS producer_kind, pr.district AS producer_district,
           pr.province AS producer_province
    FROM products p
    JOIN stock s ON s.product_id = p.id
    JOIN producers pr ON pr.id = p.producer_id ",
            $tail
        )
    };
}

/// Inserts or updates a producer by code. Returns it and whether it was created.
#[tracing::instrument(name = "INSERT producers", skip_all, fields(otel.kind = "client", db.system.name = "postgresql", db.collection.name = "producers"))]
pub async fn upsert_producer(
    tx: &mut Tx,
    draft: &ProducerDraft,
) -> Result<(ProducerRecord, bool), sqlx::Error> {
    let (id, created): (Uuid, bool) = sqlx::query_as(
        "INSERT INTO producers (id, code, name, kind, district, province)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (code) DO UPDATE
            SET name = EXCLUDED.name, kind = EXCLUDED.kind, district = EXCLUDED.district,
                province = EXCLUDED.province, updated_at = now()
         RETURNING id, (xmax = 0) AS created",
    )
    .bind(Uuid::now_v7())
    .bind(&draft.code)
    .bind(&draft.name)
    .bind(draft.kind.as_str())
    .bind(&draft.district)
    .bind(&draft.province)
    .fetch_one(&mut **tx)
    .await?;
    let producer = sqlx::query_as(
        "SELECT id, code, name, kind, district, province FROM producers WHERE id = $1",
    )
    .bind(id)
    .fetch_one(&mut **tx)
    .await?;
    Ok((producer, created))
}

/// What an upsert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpsertEffect {
    Created,
    Updated,
    /// The stored product already matched: nothing written, nothing to publish.
    Unchanged,
}

/// Inserts or updates a product by SKU. `None` when the producer code is unknown.
#[tracing::instrument(name = "INSERT products", skip_all, fields(otel.kind = "client", db.system.name = "postgresql", db.collection.name = "products"))]
pub async fn upsert_product(
    tx: &mut Tx,
    draft: &ProductDraft,
) -> Result<Option<(Uuid, UpsertEffect)>, sqlx::Error> {
    let producer: Option<(Uuid,)> = sqlx::query_as("SELECT id FROM producers WHERE code = $1")
        .bind(&draft.producer_code)
        .fetch_optional(&mut **tx)
        .await?;
    let Some((producer_id,)) = producer else {
        return Ok(None);
    };
    // The WHERE on the conflict branch skips identical rows, so re-seeding is a no-op.
    let written: Option<(Uuid, bool)> = sqlx::query_as(
        "INSERT INTO products AS p
            (id, sku, producer_id, name, description, category, stars, unit, price_vnd, status, search_text)
         SELECT $1, $2, pr.id, $4, $5, $6, $7, $8, $9, $10,
                ocop_fold(concat_ws(' ', $4::text, $6::text, pr.name, pr.district))
         FROM producers pr WHERE pr.id = $3
         ON CONFLICT (sku) DO UPDATE
            SET producer_id = EXCLUDED.producer_id, name = EXCLUDED.name,
                description = EXCLUDED.description, category = EXCLUDED.category,
                stars = EXCLUDED.stars, unit = EXCLUDED.unit, price_vnd = EXCLUDED.price_vnd,
                status = EXCLUDED.status, search_text = EXCLUDED.search_text, updated_at = now()
            WHERE (p.producer_id, p.name, p.description, p.category, p.stars, p.unit,
                   p.price_vnd, p.status, p.search_text)
               IS DISTINCT FROM
                  (EXCLUDED.producer_id, EXCLUDED.name, EXCLUDED.description, EXCLUDED.category,
                   EXCLUDED.stars, EXCLUDED.unit, EXCLUDED.price_vnd, EXCLUDED.status,
                   EXCLUDED.search_text)
         RETURNING id, (xmax = 0) AS created",
    )
    .bind(draft.id())
    .bind(&draft.sku)
    .bind(producer_id)
    .bind(&draft.name)
    .bind(&draft.description)
    .bind(&draft.category)
    .bind(draft.stars.get())
    .bind(&draft.unit)
    .bind(draft.price.get())
    .bind(draft.status.as_str())
    .fetch_optional(&mut **tx)
    .await?;
    match written {
        Some((id, true)) => {
            sqlx::query(
                "INSERT INTO stock (product_id, on_hand, reserved, initial_on_hand)
                 VALUES ($1, $2, 0, $2)",
            )
            .bind(id)
            .bind(draft.initial_stock)
            .execute(&mut **tx)
            .await?;
            Ok(Some((id, UpsertEffect::Created)))
        }
        Some((id, false)) => Ok(Some((id, UpsertEffect::Updated))),
        None => {
            let (id,): (Uuid,) = sqlx::query_as("SELECT id FROM products WHERE sku = $1")
                .bind(&draft.sku)
                .fetch_one(&mut **tx)
                .await?;
            Ok(Some((id, UpsertEffect::Unchanged)))
        }
    }
}

/// One product by id.
#[tracing::instrument(name = "SELECT products", skip_all, fields(otel.kind = "client", db.system.name = "postgresql", db.collection.name = "products"))]
pub async fn product(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<ProductRecord>, sqlx::Error> {
    sqlx::query_as(product_select!("WHERE p.id = $1"))
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// One product by SKU.
#[tracing::instrument(name = "SELECT products", skip_all, fields(otel.kind = "client", db.system.name = "postgresql", db.collection.name = "products"))]
pub async fn product_by_sku(
    conn: &mut PgConnection,
    sku: &str,
) -> Result<Option<ProductRecord>, sqlx::Error> {
    sqlx::query_as(product_select!("WHERE p.sku = $1"))
        .bind(sku)
        .fetch_optional(conn)
        .await
}

/// Products by id, in no particular order; unknown ids are simply absent.
#[tracing::instrument(name = "SELECT products", skip_all, fields(otel.kind = "client", db.system.name = "postgresql", db.collection.name = "products"))]
pub async fn products(
    conn: &mut PgConnection,
    ids: &[Uuid],
) -> Result<Vec<ProductRecord>, sqlx::Error> {
    sqlx::query_as(product_select!("WHERE p.id = ANY($1)"))
        .bind(ids)
        .fetch_all(conn)
        .await
}

/// Browse filters; zero or empty means "any".
#[derive(Debug, Clone, Default)]
pub struct ProductFilter {
    pub min_stars: i16,
    pub district: String,
    pub category: String,
    pub min_price_vnd: i64,
    pub max_price_vnd: i64,
}

/// Active products matching `filter`, ordered by SKU, after `after_sku`.
#[tracing::instrument(name = "SELECT products", skip_all, fields(otel.kind = "client", db.system.name = "postgresql", db.collection.name = "products"))]
pub async fn list_products(
    conn: &mut PgConnection,
    filter: &ProductFilter,
    after_sku: Option<&str>,
    limit: i64,
) -> Result<Vec<ProductRecord>, sqlx::Error> {
    sqlx::query_as(product_select!(
        "WHERE p.status = 'active'
           AND ($1::smallint = 0 OR p.stars >= $1)
           AND ($2 = '' OR pr.district = $2)
           AND ($3 = '' OR p.category = $3)
           AND ($4::bigint = 0 OR p.price_vnd >= $4)
           AND ($5::bigint = 0 OR p.price_vnd <= $5)
           AND ($6::text IS NULL OR p.sku > $6)
         ORDER BY p.sku
         LIMIT $7"
    ))
    .bind(filter.min_stars)
    .bind(&filter.district)
    .bind(&filter.category)
    .bind(filter.min_price_vnd)
    .bind(filter.max_price_vnd)
    .bind(after_sku)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Active products whose folded text contains the folded query's words, best first. The
/// query is matched literally: `%`, `_` and `\` in it are no wildcards.
#[tracing::instrument(name = "SELECT products", skip_all, fields(otel.kind = "client", db.system.name = "postgresql", db.collection.name = "products"))]
pub async fn search_products(
    conn: &mut PgConnection,
    query: &str,
    limit: i64,
) -> Result<Vec<ProductRecord>, sqlx::Error> {
    sqlx::query_as(product_select!(
        "CROSS JOIN (SELECT ocop_fold($1) AS folded) q
         WHERE p.status = 'active'
           AND (q.folded <% p.search_text
                -- The query is text, not a pattern: its backslash, `%` and `_` match themselves.
                OR p.search_text LIKE '%' || replace(replace(replace(q.folded,
                       '\\', '\\\\'), '%', '\\%'), '_', '\\_') || '%' ESCAPE '\\')
         ORDER BY word_similarity(q.folded, p.search_text) DESC,
                  similarity(q.folded, ocop_fold(p.name)) DESC,
                  p.sku
         LIMIT $2"
    ))
    .bind(query)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Locks a product's stock row and applies an adjustment. `Ok(None)`: no such product.
/// `Ok(Some(Err(..)))`: the adjustment would break a stock rule; nothing written.
#[tracing::instrument(name = "UPDATE stock", skip_all, fields(otel.kind = "client", db.system.name = "postgresql", db.collection.name = "stock"))]
pub async fn adjust_stock(
    tx: &mut Tx,
    product_id: Uuid,
    adjustment: &StockAdjustment,
    actor: &str,
) -> Result<Option<Result<i64, crate::domain::Invalid>>, sqlx::Error> {
    let row: Option<(i64, i64)> =
        sqlx::query_as("SELECT on_hand, reserved FROM stock WHERE product_id = $1 FOR UPDATE")
            .bind(product_id)
            .fetch_optional(&mut **tx)
            .await?;
    let Some((on_hand, reserved)) = row else {
        return Ok(None);
    };
    let after = match adjustment.apply(on_hand, reserved) {
        Ok(after) => after,
        Err(invalid) => return Ok(Some(Err(invalid))),
    };
    sqlx::query("UPDATE stock SET on_hand = $2 WHERE product_id = $1")
        .bind(product_id)
        .bind(after)
        .execute(&mut **tx)
        .await?;
    sqlx::query("UPDATE products SET updated_at = now() WHERE id = $1")
        .bind(product_id)
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "INSERT INTO stock_adjustments (id, product_id, delta, reason, actor) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(Uuid::now_v7())
    .bind(product_id)
    .bind(adjustment.delta)
    .bind(&adjustment.reason)
    .bind(actor)
    .execute(&mut **tx)
    .await?;
    Ok(Some(Ok(after)))
}

/// A reservation with its lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    pub id: Uuid,
    pub order_id: Uuid,
    pub state: ReservationState,
    pub expires_at: DateTime<Utc>,
    pub lines: Vec<RequestedLine>,
}

/// Locks the stock rows of `products` in product-id order (the order every lock on
/// `stock` is taken in), for a batch of reservations in one transaction.
#[tracing::instrument(name = "SELECT stock", skip_all, fields(otel.kind = "client", db.system.name = "postgresql", db.collection.name = "stock"))]
pub async fn lock_products(tx: &mut Tx, products: &mut Vec<Uuid>) -> Result<(), sqlx::Error> {
    products.sort_unstable();
    products.dedup();
    if products.is_empty() {
        return Ok(());
    }
    sqlx::query("SELECT 1 FROM stock WHERE product_id = ANY($1) ORDER BY product_id FOR UPDATE")
        .bind(&*products)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Locks the stock rows of `lines` (sorted by product id, so concurrent reservations
/// lock in the same order) and returns their levels; unknown products are absent.
#[tracing::instrument(name = "SELECT stock", skip_all, fields(otel.kind = "client", db.system.name = "postgresql", db.collection.name = "stock"))]
pub async fn lock_stock(
    tx: &mut Tx,
    lines: &[RequestedLine],
) -> Result<HashMap<Uuid, StockLevel>, sqlx::Error> {
    let ids: Vec<Uuid> = lines.iter().map(|line| line.product_id).collect();
    let rows: Vec<(Uuid, i64, i64, String)> = sqlx::query_as(
        "SELECT s.product_id, s.on_hand, s.reserved, p.status
         FROM stock s JOIN products p ON p.id = s.product_id
         WHERE s.product_id = ANY($1)
         ORDER BY s.product_id
         FOR UPDATE OF s",
    )
    .bind(&ids)
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, on_hand, reserved, status)| {
            (
                id,
                StockLevel {
                    on_hand,
                    reserved,
                    for_sale: status == "active",
                },
            )
        })
        .collect())
}

/// Holds `lines` for `order_id` (the caller has locked and checked the stock).
#[tracing::instrument(name = "INSERT reservations", skip_all, fields(otel.kind = "client", db.system.name = "postgresql", db.collection.name = "reservations"))]
pub async fn insert_reservation(
    tx: &mut Tx,
    order_id: Uuid,
    lines: &[RequestedLine],
    expires_at: DateTime<Utc>,
) -> Result<Reservation, sqlx::Error> {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO reservations (id, order_id, state, expires_at) VALUES ($1, $2, 'held', $3)",
    )
    .bind(id)
    .bind(order_id)
    .bind(expires_at)
    .execute(&mut **tx)
    .await?;
    let (products, quantities) = columns(lines);
    sqlx::query(
        "INSERT INTO reservation_lines (reservation_id, product_id, quantity)
         SELECT $1, product_id, quantity FROM UNNEST($2::uuid[], $3::bigint[]) AS l (product_id, quantity)",
    )
    .bind(id)
    .bind(&products)
    .bind(&quantities)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "UPDATE stock s SET reserved = s.reserved + l.quantity
         FROM UNNEST($1::uuid[], $2::bigint[]) AS l (product_id, quantity)
         WHERE s.product_id = l.product_id",
    )
    .bind(&products)
    .bind(&quantities)
    .execute(&mut **tx)
    .await?;
    Ok(Reservation {
        id,
        order_id,
        state: ReservationState::Held,
        expires_at,
        lines: lines.to_vec(),
    })
}

/// The reservation of `order_id`, locked for update.
#[tracing::instrument(name = "SELECT reservations", skip_all, fields(otel.kind = "client", db.system.name = "postgresql", db.collection.name = "reservations"))]
pub async fn reservation_for_update(
    tx: &mut Tx,
    order_id: Uuid,
) -> Result<Option<Reservation>, sqlx::Error> {
    let row: Option<(Uuid, String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT id, state, expires_at FROM reservations WHERE order_id = $1 FOR UPDATE",
    )
    .bind(order_id)
    .fetch_optional(&mut **tx)
    .await?;
    let Some((id, state, expires_at)) = row else {
        return Ok(None);
    };
    let lines: Vec<(Uuid, i64)> = sqlx::query_as(
        "SELECT product_id, quantity FROM reservation_lines WHERE reservation_id = $1 ORDER BY product_id",
    )
    .bind(id)
    .fetch_all(&mut **tx)
    .await?;
    Ok(Some(Reservation {
        id,
        order_id,
        state: ReservationState::parse(&state).expect("state column is constrained"),
        expires_at,
        lines: lines
            .into_iter()
            .map(|(product_id, quantity)| RequestedLine {
                product_id,
                quantity,
            })
            .collect(),
    }))
}

/// Moves a held reservation to `to`, adjusting stock: a commit sells the units (on hand
/// and reserved go down), a release or expiry gives them back (reserved goes down).
#[tracing::instrument(name = "UPDATE stock", skip_all, fields(otel.kind = "client", db.system.name = "postgresql", db.collection.name = "stock"))]
pub async fn finish_reservation(
    tx: &mut Tx,
    reservation: &Reservation,
    to: ReservationState,
) -> Result<(), sqlx::Error> {
    let sold = matches!(to, ReservationState::Committed);
    let (products, quantities) = columns(&reservation.lines);
    sqlx::query(
        "UPDATE stock s SET reserved = s.reserved - l.quantity,
                            on_hand = s.on_hand - CASE WHEN $3 THEN l.quantity ELSE 0 END
         FROM UNNEST($1::uuid[], $2::bigint[]) AS l (product_id, quantity)
         WHERE s.product_id = l.product_id",
    )
    .bind(&products)
    .bind(&quantities)
    .bind(sold)
    .execute(&mut **tx)
    .await?;
    sqlx::query("UPDATE reservations SET state = $2, updated_at = now() WHERE id = $1")
        .bind(reservation.id)
        .bind(to.as_str())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// A released reservation without lines for an order that has none (see
/// `Catalog::finish`).
pub async fn insert_released_placeholder(tx: &mut Tx, order_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO reservations (id, order_id, state, expires_at)
         VALUES ($1, $2, 'released', now())
         ON CONFLICT (order_id) DO NOTHING",
    )
    .bind(Uuid::now_v7())
    .bind(order_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The products held by the reservations of `orders`.
pub async fn reserved_products(tx: &mut Tx, orders: &[Uuid]) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT DISTINCT l.product_id FROM reservation_lines l
         JOIN reservations r ON r.id = l.reservation_id
         WHERE r.order_id = ANY($1)",
    )
    .bind(orders)
    .fetch_all(&mut **tx)
    .await
}

/// Sells an expired reservation's lines from free stock (the caller checked there is
/// enough under the rows' locks) and records the reservation as committed.
#[tracing::instrument(name = "UPDATE stock", skip_all, fields(otel.kind = "client", db.system.name = "postgresql", db.collection.name = "stock"))]
pub async fn sell_unreserved(tx: &mut Tx, reservation: &Reservation) -> Result<(), sqlx::Error> {
    let (products, quantities) = columns(&reservation.lines);
    sqlx::query(
        "UPDATE stock s SET on_hand = s.on_hand - l.quantity
         FROM UNNEST($1::uuid[], $2::bigint[]) AS l (product_id, quantity)
         WHERE s.product_id = l.product_id",
    )
    .bind(&products)
    .bind(&quantities)
    .execute(&mut **tx)
    .await?;
    sqlx::query("UPDATE reservations SET state = 'committed', updated_at = now() WHERE id = $1")
        .bind(reservation.id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Orders whose held reservation is past its expiry, locked; rows another replica is
/// already expiring are skipped.
pub async fn due_reservations(tx: &mut Tx, limit: i64) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT order_id FROM reservations
         WHERE state = 'held' AND expires_at < now()
         ORDER BY expires_at
         LIMIT $1
         FOR UPDATE SKIP LOCKED",
    )
    .bind(limit)
    .fetch_all(&mut **tx)
    .await
}

/// Lines as two columns, for `UNNEST`: one statement for all of an order's lines. The
/// caller holds the stock rows' locks already (taken in product-id order), so the order
/// in which one statement touches them cannot deadlock.
fn columns(lines: &[RequestedLine]) -> (Vec<Uuid>, Vec<i64>) {
    lines
        .iter()
        .map(|line| (line.product_id, line.quantity))
        .unzip()
}

/// Marks `products`' snapshots out of date (see `product_snapshots_due`); one statement,
/// in product-id order so that two writers never wait on each other's marks crosswise.
#[tracing::instrument(name = "INSERT product_snapshots_due", skip_all, fields(otel.kind = "client", db.system.name = "postgresql", db.collection.name = "product_snapshots_due"))]
pub async fn mark_snapshots_due(tx: &mut Tx, products: &[Uuid]) -> Result<(), sqlx::Error> {
    let mut products = products.to_vec();
    products.sort_unstable();
    products.dedup();
    // An existing mark is locked (a no-op update), not passed over: a round that took it
    // meanwhile would read the product without this transaction's change and leave no
    // mark behind for it. Locked, the mark is skipped by rounds until this commits.
    sqlx::query(
        "INSERT INTO product_snapshots_due (product_id)
         SELECT id FROM UNNEST($1::uuid[]) AS id ORDER BY id
         ON CONFLICT (product_id) DO UPDATE SET marked_at = product_snapshots_due.marked_at",
    )
    .bind(&products)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Takes (deletes) up to `limit` marks; marks another replica or a writer holds are
/// skipped. A change committed after this statement marks its product again (its mark
/// waits for this transaction to end).
#[tracing::instrument(name = "DELETE product_snapshots_due", skip_all, fields(otel.kind = "client", db.system.name = "postgresql", db.collection.name = "product_snapshots_due"))]
pub async fn take_due_snapshots(tx: &mut Tx, limit: i64) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "DELETE FROM product_snapshots_due WHERE product_id IN (
             SELECT product_id FROM product_snapshots_due
             ORDER BY marked_at LIMIT $1 FOR UPDATE SKIP LOCKED)
         RETURNING product_id",
    )
    .bind(limit)
    .fetch_all(&mut **tx)
    .await
}

/// The version of the snapshots a round reads: drawn after the round took its marks, so
/// a later round's snapshot of a product (which waited for this round's marks) has a
/// greater one.
pub async fn next_snapshot_version(tx: &mut Tx) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT nextval('product_snapshot_versions')")
        .fetch_one(&mut **tx)
        .await
}
