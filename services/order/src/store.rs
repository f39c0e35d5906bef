//! PostgreSQL access for orders. Writes take the caller's transaction so that a status
//! change, its history row and its outbox events commit together.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Postgres, Transaction};
use uuid::Uuid;

use crate::domain::{
    order::OrderRequest,
    state::{CancellationReason, OrderStatus},
};

type Tx = Transaction<'static, Postgres>;

/// A line as stored: the catalog's price at the moment of placing.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct LineRecord {
    pub product_id: Uuid,
    pub sku: String,
    pub name: String,
    pub unit: String,
    pub quantity: i32,
    pub unit_price_vnd: i64,
    pub line_total_vnd: i64,
}

/// One status change.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct HistoryRecord {
    pub from_status: Option<String>,
    pub to_status: String,
    pub cause: String,
    pub at: DateTime<Utc>,
}

/// The `orders` row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OrderRow {
    pub id: Uuid,
    pub code: String,
    pub request_fingerprint: String,
    pub customer_name: String,
    pub customer_phone: String,
    pub customer_email: Option<String>,
    pub province: String,
    pub district: String,
    pub ward: String,
    pub street: String,
    pub delivery_method: String,
    pub payment_method: String,
    pub sales_channel: String,
    pub note: String,
    pub status: String,
    pub cancellation_reason: Option<String>,
    pub cancellation_detail: String,
    pub subtotal_vnd: i64,
    pub shipping_fee_vnd: i64,
    pub total_vnd: i64,
    pub pay_url: Option<String>,
    pub vietqr_payload: Option<String>,
    pub payment_expires_at: Option<DateTime<Utc>>,
    pub carrier: Option<String>,
    pub tracking_code: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// SHA-256 of each access token answered for the order (see `access`).
    pub access_token_hashes: Vec<Vec<u8>>,
}

impl OrderRow {
    pub fn status(&self) -> OrderStatus {
        OrderStatus::parse(&self.status).expect("status column holds known statuses")
    }
}

/// An order with its lines and history.
#[derive(Debug, Clone)]
pub struct OrderRecord {
    pub row: OrderRow,
    pub lines: Vec<LineRecord>,
    pub history: Vec<HistoryRecord>,
}

/// Every `orders` column, in `OrderRow`'s order.
macro_rules! order_columns {
    () => {
        "id, code, request_fingerprint, customer_name, customer_phone, customer_email,
         province, district, ward, street, delivery_method, payment_method, sales_channel,
         note, status, cancellation_reason, cancellation_detail, subtotal_vnd,
         shipping_fee_vnd, total_vnd, pay_url, vietqr_payload, payment_expires_at,
         carrier, tracking_code, created_at, updated_at, access_token_hashes"
    };
}

/// `SELECT <every orders column> FROM orders $tail` (a literal, so queries stay
/// `&'static str`).
macro_rules! select_orders {
    ($tail:literal) => {
        concat!("SELECT ", order_columns!(), " FROM orders ", $tail)
    };
}

/// The order already stored under an idempotency key: (id, request fingerprint).
#[tracing::instrument(name = "SELECT orders", skip_all, fields(otel.kind = "client", db.system.name = "postgresql", db.collection.name = "orders"))]
pub async fn by_idempotency_key(
    conn: &mut PgConnection,
    key: &str,
) -> Result<Option<(Uuid, String)>, sqlx::Error> {
    sqlx::query_as("SELECT id, request_fingerprint FROM orders WHERE idempotency_key = $1")
        .bind(key)
        .fetch_optional(conn)
        .await
}

/// Most access tokens kept per order: a client retrying without end cannot grow the row;
/// past it the oldest token stops working.
const MAX_ACCESS_TOKENS: i32 = 16;

/// Keeps the hash of one more access token for an order (a retried PlaceOrder), and at
/// most the newest [`MAX_ACCESS_TOKENS`].
#[tracing::instrument(name = "UPDATE orders", skip_all, fields(otel.kind = "client", db.system.name = "postgresql", db.collection.name = "orders"))]
pub async fn add_access_token(
    conn: &mut PgConnection,
    id: Uuid,
    hash: &[u8],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE orders SET access_token_hashes =
             (array_append(access_token_hashes, $2))[greatest(1, cardinality(access_token_hashes) + 2 - $3):]
         WHERE id = $1",
    )
    .bind(id)
    .bind(hash)
    .bind(MAX_ACCESS_TOKENS)
    .execute(conn)
    .await?;
    Ok(())
}

/// A priced order about to be stored.
#[derive(Debug, Clone)]
pub struct NewOrder<'a> {
    pub id: Uuid,
    pub code: String,
    pub fingerprint: String,
    pub request: &'a OrderRequest,
    pub lines: Vec<LineRecord>,
    pub subtotal_vnd: i64,
    pub shipping_fee_vnd: i64,
    pub access_token_hash: Vec<u8>,
}

/// Stores a new PENDING order, its lines and the first history row. A second order
/// with the same idempotency key fails with a unique violation.
#[tracing::instrument(name = "INSERT orders", skip_all, fields(otel.kind = "client", db.system.name = "postgresql", db.collection.name = "orders"))]
pub async fn insert_order(tx: &mut Tx, order: &NewOrder<'_>) -> Result<(), sqlx::Error> {
    let request = order.request;
    let address = &request.customer.address;
    sqlx::query(
        "INSERT INTO orders (id, code, idempotency_key, request_fingerprint, customer_name,
            customer_phone, customer_email, province, district, ward, street, delivery_method,
            payment_method, sales_channel, note, status, subtotal_vnd, shipping_fee_vnd, total_vnd,
            access_token_hashes)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, 'pending', $16, $17, $18,
            ARRAY[$19::bytea])",
    )
    .bind(order.id)
    .bind(&order.code)
    .bind(&request.idempotency_key)
    .bind(&order.fingerprint)
    .bind(&request.customer.name)
    .bind(request.customer.phone.as_str())
    .bind(request.customer.email.as_ref().map(|email| email.as_str()))
    .bind(&address.province)
    .bind(&address.district)
    .bind(&address.ward)
    .bind(&address.street)
    .bind(request.delivery.as_str())
    .bind(request.payment.as_str())
    .bind(request.channel.as_str())
    .bind(&request.note)
    .bind(order.subtotal_vnd)
    .bind(order.shipping_fee_vnd)
    .bind(order.subtotal_vnd + order.shipping_fee_vnd)
    .bind(&order.access_token_hash)
    .execute(&mut **tx)
    .await?;
    for (line_no, line) in order.lines.iter().enumerate() {
        sqlx::query(
            "INSERT INTO order_lines (order_id, line_no, product_id, sku, name, unit, quantity,
                unit_price_vnd, line_total_vnd)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(order.id)
        .bind(line_no as i32)
        .bind(line.product_id)
        .bind(&line.sku)
        .bind(&line.name)
        .bind(&line.unit)
        .bind(line.quantity)
        .bind(line.unit_price_vnd)
        .bind(line.line_total_vnd)
        .execute(&mut **tx)
        .await?;
    }
    record_history(tx, order.id, None, OrderStatus::Pending, "PlaceOrder").await
}

#[tracing::instrument(name = "INSERT order_status_history", skip_all, fields(otel.kind = "client", db.system.name = "postgresql", db.collection.name = "order_status_history"))]
async fn record_history(
    tx: &mut Tx,
    order_id: Uuid,
    from: Option<OrderStatus>,
    to: OrderStatus,
    cause: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO order_status_history (order_id, from_status, to_status, cause) VALUES ($1, $2, $3, $4)",
    )
    .bind(order_id)
    .bind(from.map(OrderStatus::as_str))
    .bind(to.as_str())
    .bind(cause)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[tracing::instrument(name = "SELECT order_lines", skip_all, fields(otel.kind = "client", db.system.name = "postgresql", db.collection.name = "order_lines"))]
async fn complete(conn: &mut PgConnection, row: OrderRow) -> Result<OrderRecord, sqlx::Error> {
    let lines = sqlx::query_as(
        "SELECT product_id, sku, name, unit, quantity, unit_price_vnd, line_total_vnd
         FROM order_lines WHERE order_id = $1 ORDER BY line_no",
    )
    .bind(row.id)
    .fetch_all(&mut *conn)
    .await?;
    let history = sqlx::query_as(
        "SELECT from_status, to_status, cause, at FROM order_status_history
         WHERE order_id = $1 ORDER BY id",
    )
    .bind(row.id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(OrderRecord {
        row,
        lines,
        history,
    })
}

/// One order with lines and history.
#[tracing::instrument(name = "SELECT orders", skip_all, fields(otel.kind = "client", db.system.name = "postgresql", db.collection.name = "orders"))]
pub async fn order(conn: &mut PgConnection, id: Uuid) -> Result<Option<OrderRecord>, sqlx::Error> {
    let row: Option<OrderRow> = sqlx::query_as(select_orders!("WHERE id = $1"))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    match row {
        Some(row) => Ok(Some(complete(conn, row).await?)),
        None => Ok(None),
    }
}

/// One order, its row locked until the transaction ends (status changes are serial).
#[tracing::instrument(name = "SELECT orders", skip_all, fields(otel.kind = "client", db.system.name = "postgresql", db.collection.name = "orders"))]
pub async fn order_for_update(tx: &mut Tx, id: Uuid) -> Result<Option<OrderRecord>, sqlx::Error> {
    let row: Option<OrderRow> = sqlx::query_as(select_orders!("WHERE id = $1 FOR UPDATE"))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
    match row {
        Some(row) => Ok(Some(complete(tx, row).await?)),
        None => Ok(None),
    }
}

/// Moves an order to `to` and records why, in one statement; `payment_deadline` is kept
/// with the move when given. Returns the row as it now is and the history entry added.
#[tracing::instrument(name = "UPDATE orders", skip_all, fields(otel.kind = "client", db.system.name = "postgresql", db.collection.name = "orders"))]
pub async fn set_status(
    tx: &mut Tx,
    order_id: Uuid,
    from: OrderStatus,
    to: OrderStatus,
    cause: &str,
    cancellation: Option<(CancellationReason, &str)>,
    payment_deadline: Option<DateTime<Utc>>,
) -> Result<(OrderRow, HistoryRecord), sqlx::Error> {
    let row: OrderRow = sqlx::query_as(concat!(
        "WITH moved AS (
             UPDATE orders SET status = $2, updated_at = now(),
                 cancellation_reason = COALESCE($3, cancellation_reason),
                 cancellation_detail = COALESCE($4, cancellation_detail),
                 payment_expires_at = COALESCE($5, payment_expires_at)
             WHERE id = $1 RETURNING *),
         logged AS (
             INSERT INTO order_status_history (order_id, from_status, to_status, cause)
             SELECT id, $6, $2, $7 FROM moved)
         SELECT ",
        order_columns!(),
        " FROM moved"
    ))
    .bind(order_id)
    .bind(to.as_str())
    .bind(cancellation.map(|(reason, _)| reason.as_str()))
    .bind(cancellation.map(|(_, detail)| detail))
    .bind(payment_deadline)
    .bind(from.as_str())
    .bind(cause)
    .fetch_one(&mut **tx)
    .await?;
    let entry = HistoryRecord {
        from_status: Some(from.as_str().to_owned()),
        to_status: to.as_str().to_owned(),
        cause: cause.to_owned(),
        at: row.updated_at,
    };
    Ok((row, entry))
}

/// Keeps who carries a shipped order and its tracking code.
#[tracing::instrument(name = "UPDATE orders", skip_all, fields(otel.kind = "client", db.system.name = "postgresql", db.collection.name = "orders"))]
pub async fn set_shipment(
    tx: &mut Tx,
    order_id: Uuid,
    carrier: &str,
    tracking_code: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE orders SET carrier = $2, tracking_code = $3 WHERE id = $1")
        .bind(order_id)
        .bind(carrier)
        .bind(tracking_code)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Keeps what the shopper needs to pay, as the payment service reported it.
#[tracing::instrument(name = "UPDATE orders", skip_all, fields(otel.kind = "client", db.system.name = "postgresql", db.collection.name = "orders"))]
pub async fn set_payment_instructions(
    tx: &mut Tx,
    order_id: Uuid,
    pay_url: Option<&str>,
    vietqr_payload: Option<&str>,
    expires_at: Option<DateTime<Utc>>,
) -> Result<bool, sqlx::Error> {
    let updated = sqlx::query(
        "UPDATE orders SET pay_url = $2, vietqr_payload = $3,
            payment_expires_at = COALESCE($4, payment_expires_at), updated_at = now()
         WHERE id = $1",
    )
    .bind(order_id)
    .bind(pay_url)
    .bind(vietqr_payload)
    .bind(expires_at)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(updated == 1)
}

/// A customer's orders, newest first, after the `(created_at, id)` of the previous page.
#[tracing::instrument(name = "SELECT orders", skip_all, fields(otel.kind = "client", db.system.name = "postgresql", db.collection.name = "orders"))]
pub async fn orders_by_phone(
    conn: &mut PgConnection,
    phone: &str,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<OrderRecord>, sqlx::Error> {
    let rows: Vec<OrderRow> = sqlx::query_as(select_orders!(
        "WHERE customer_phone = $1
           AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3))
         ORDER BY created_at DESC, id DESC
         LIMIT $4"
    ))
    .bind(phone)
    .bind(after.map(|(at, _)| at))
    .bind(after.map(|(_, id)| id))
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    let mut orders = Vec::with_capacity(rows.len());
    for row in rows {
        orders.push(complete(conn, row).await?);
    }
    Ok(orders)
}

/// Whether an error is the idempotency key's unique violation.
pub fn is_duplicate_key(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .is_some_and(|db| db.constraint() == Some("orders_idempotency_key_key"))
}

/// How many orders are in each status (for the `ocop_orders` gauge).
pub async fn count_by_status(conn: &mut PgConnection) -> Result<Vec<(String, i64)>, sqlx::Error> {
    sqlx::query_as("SELECT status, count(*) FROM orders GROUP BY status")
        .fetch_all(conn)
        .await
}

/// How many orders have been PENDING (no answer from the catalog yet) for longer than
/// `age`: the reservation normally answers within milliseconds, so a lasting count means
/// the catalog or its consumer of `ocop.orders.v1` is not moving.
pub async fn count_pending_longer_than(
    conn: &mut PgConnection,
    age: std::time::Duration,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT count(*) FROM orders
         WHERE status = 'pending' AND created_at < now() - make_interval(secs => $1)",
    )
    .bind(age.as_secs_f64())
    .fetch_one(conn)
    .await
}

/// How many orders still await a payment whose deadline has passed: normally the
/// payment's expiry cancels them within seconds, so a lasting count means a stuck saga.
pub async fn count_past_payment_deadline(conn: &mut PgConnection) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT count(*) FROM orders
         WHERE status = 'awaiting_payment' AND payment_expires_at < now()",
    )
    .fetch_one(conn)
    .await
}
