//! The rows the invariants compare across databases, each database read in one
//! repeatable-read transaction (a consistent snapshot of it).

use std::{collections::HashMap, time::Duration};

use uuid::Uuid;

use crate::Databases;

/// An order as the order service holds it.
#[derive(Debug)]
pub(crate) struct Order {
    /// Changed within the settle grace: its saga may still be under way.
    pub recent: bool,
    pub status: String,
    pub total_vnd: i64,
    /// Units per product.
    pub lines: HashMap<Uuid, i64>,
}

/// An order's payment as the payment service holds it.
#[derive(Debug)]
pub(crate) struct Payment {
    /// Changed within the settle grace.
    pub recent: bool,
    pub id: Uuid,
    pub status: String,
    pub amount_vnd: i64,
    pub captured_vnd: i64,
    pub refunded_vnd: i64,
    pub succeeded_refunds_vnd: i64,
    pub pending_refunds_vnd: i64,
    /// Refunds the provider cannot make (a bank transfer has no refund API): failed with
    /// `manual_transfer_required`, waiting for an operator to transfer the money back.
    pub manual_refunds_vnd: i64,
}

/// An order's reservation as the catalog holds it.
#[derive(Debug)]
pub(crate) struct Reservation {
    pub state: String,
    /// Units per product.
    pub lines: HashMap<Uuid, i64>,
}

/// A product's stock and what moved it.
#[derive(Debug)]
pub(crate) struct Stock {
    pub on_hand: i64,
    pub reserved: i64,
    pub initial_on_hand: i64,
    pub adjusted: i64,
    /// Units of committed reservations.
    pub sold: i64,
    /// Units of held reservations.
    pub held: i64,
}

#[derive(Debug)]
pub(crate) struct Books {
    pub orders: HashMap<Uuid, Order>,
    /// By order id.
    pub payments: HashMap<Uuid, Payment>,
    /// By order id.
    pub reservations: HashMap<Uuid, Reservation>,
    /// By product id.
    pub stock: HashMap<Uuid, Stock>,
}

/// Order statuses that took the shopper's money for good (some of it may have been
/// given back since).
pub(crate) fn paid(status: &str) -> bool {
    matches!(
        status,
        "confirmed" | "shipped" | "delivered" | "partially_refunded" | "refunded"
    )
}

pub(crate) async fn read(databases: &Databases, settle: Duration) -> anyhow::Result<Books> {
    let settle_millis = i64::try_from(settle.as_millis()).unwrap_or(i64::MAX);
    Ok(Books {
        orders: orders(databases, settle_millis).await?,
        payments: payments(databases, settle_millis).await?,
        reservations: reservations(databases).await?,
        stock: stock(databases).await?,
    })
}

async fn orders(databases: &Databases, settle_millis: i64) -> anyhow::Result<HashMap<Uuid, Order>> {
    let mut tx = databases.order.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .execute(&mut *tx)
        .await?;
    let rows: Vec<(Uuid, bool, String, i64)> = sqlx::query_as(
        "SELECT id, updated_at > now() - $1 * interval '1 millisecond', status, total_vnd
           FROM orders",
    )
    .bind(settle_millis)
    .fetch_all(&mut *tx)
    .await?;
    let mut orders: HashMap<Uuid, Order> = rows
        .into_iter()
        .map(|(id, recent, status, total_vnd)| {
            let order = Order {
                recent,
                status,
                total_vnd,
                lines: HashMap::new(),
            };
            (id, order)
        })
        .collect();
    let lines: Vec<(Uuid, Uuid, i64)> = sqlx::query_as(
        "SELECT order_id, product_id, sum(quantity)::bigint FROM order_lines
         GROUP BY order_id, product_id",
    )
    .fetch_all(&mut *tx)
    .await?;
    for (order_id, product_id, quantity) in lines {
        if let Some(order) = orders.get_mut(&order_id) {
            order.lines.insert(product_id, quantity);
        }
    }
    Ok(orders)
}

async fn payments(
    databases: &Databases,
    settle_millis: i64,
) -> anyhow::Result<HashMap<Uuid, Payment>> {
    type Row = (Uuid, Uuid, bool, String, i64, i64, i64, i64, i64, i64);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT i.order_id, i.id, i.updated_at > now() - $1 * interval '1 millisecond',
                i.status, i.amount_vnd, i.captured_vnd, i.refunded_vnd,
                COALESCE(sum(r.amount_vnd) FILTER (WHERE r.status = 'succeeded'), 0)::bigint,
                COALESCE(sum(r.amount_vnd) FILTER (WHERE r.status = 'pending'), 0)::bigint,
                COALESCE(sum(r.amount_vnd) FILTER (WHERE r.status = 'failed'
                    AND r.failure_code = 'manual_transfer_required'), 0)::bigint
           FROM payment_intents i LEFT JOIN refunds r ON r.payment_id = i.id
          GROUP BY i.id",
    )
    .bind(settle_millis)
    .fetch_all(&databases.payment)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(
                order_id,
                id,
                recent,
                status,
                amount_vnd,
                captured_vnd,
                refunded_vnd,
                succeeded,
                pending,
                manual,
            )| {
                (
                    order_id,
                    Payment {
                        recent,
                        id,
                        status,
                        amount_vnd,
                        captured_vnd,
                        refunded_vnd,
                        succeeded_refunds_vnd: succeeded,
                        pending_refunds_vnd: pending,
                        manual_refunds_vnd: manual,
                    },
                )
            },
        )
        .collect())
}

async fn reservations(databases: &Databases) -> anyhow::Result<HashMap<Uuid, Reservation>> {
    let mut tx = databases.catalog.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .execute(&mut *tx)
        .await?;
    let rows: Vec<(Uuid, String, Uuid, i64)> = sqlx::query_as(
        "SELECT r.order_id, r.state, l.product_id, l.quantity
           FROM reservations r JOIN reservation_lines l ON l.reservation_id = r.id",
    )
    .fetch_all(&mut *tx)
    .await?;
    let mut reservations: HashMap<Uuid, Reservation> = HashMap::new();
    for (order_id, state, product_id, quantity) in rows {
        reservations
            .entry(order_id)
            .or_insert_with(|| Reservation {
                state,
                lines: HashMap::new(),
            })
            .lines
            .insert(product_id, quantity);
    }
    Ok(reservations)
}

async fn stock(databases: &Databases) -> anyhow::Result<HashMap<Uuid, Stock>> {
    let rows: Vec<(Uuid, i64, i64, i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT s.product_id, s.on_hand, s.reserved, s.initial_on_hand,
                COALESCE((SELECT sum(a.delta) FROM stock_adjustments a
                           WHERE a.product_id = s.product_id), 0)::bigint,
                COALESCE((SELECT sum(l.quantity) FROM reservation_lines l
                            JOIN reservations r ON r.id = l.reservation_id
                           WHERE l.product_id = s.product_id AND r.state = 'committed'), 0)::bigint,
                COALESCE((SELECT sum(l.quantity) FROM reservation_lines l
                            JOIN reservations r ON r.id = l.reservation_id
                           WHERE l.product_id = s.product_id AND r.state = 'held'), 0)::bigint
           FROM stock s",
    )
    .fetch_all(&databases.catalog)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(product_id, on_hand, reserved, initial_on_hand, adjusted, sold, held)| {
                (
                    product_id,
                    Stock {
                        on_hand,
                        reserved,
                        initial_on_hand,
                        adjusted,
                        sold,
                        held,
                    },
                )
            },
        )
        .collect())
}
