//! The books after a run, read from the services' databases (read-only): every order the
//! run placed — found by the run's idempotency-key prefix, so an order whose answer was
//! lost counts too — is terminal and agrees with the events seen; each confirmed order
//! has one succeeded payment for its total and a committed reservation; no cancelled
//! order kept money or a held reservation; stock is never negative and `reserved` is
//! the sum of the held reservations; the payment ledger balances.

use std::collections::{BTreeMap, HashMap};

use anyhow::Context as _;
use serde::Serialize;
use uuid::Uuid;

use crate::{
    mix::Fate,
    probe::Databases,
    tracker::{OrderView, Terminal},
};

/// Rows per `= ANY($1)` query.
const CHUNK: usize = 5_000;
/// Violations kept in the report.
const MAX_REPORTED: usize = 1_000;

/// The outcome of the check.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub passed: bool,
    /// Orders of this run in the order database.
    pub orders_checked: usize,
    /// Of which the run never got the PlaceOrder answer (found by key).
    pub untracked_orders: usize,
    pub violations_total: usize,
    /// Up to 1,000, each naming the offending ids.
    pub violations: Vec<String>,
    /// Not failures: how shoppers' intentions and outcomes differ.
    pub notes: Vec<String>,
}

/// Whether a stored order status is terminal for the run: confirmed or beyond, or
/// cancelled.
fn terminal(status: &str) -> bool {
    matches!(
        status,
        "confirmed" | "shipped" | "delivered" | "refunded" | "partially_refunded" | "cancelled"
    )
}

fn confirmed_or_beyond(status: &str) -> bool {
    terminal(status) && status != "cancelled"
}

#[derive(Debug)]
struct OrderRow {
    key: String,
    status: String,
    total_vnd: i64,
}

#[derive(Debug)]
struct IntentRow {
    id: Uuid,
    status: String,
    amount_vnd: i64,
    captured_vnd: i64,
    /// Refunded, or in a refund still pending.
    refunded_vnd: i64,
}

pub async fn run(
    databases: &Databases,
    orders: &[OrderView],
    key_prefix: &str,
    problems: Vec<String>,
) -> anyhow::Result<CheckReport> {
    let mut violations = problems;
    let mut notes = Vec::new();
    let tracked: HashMap<Uuid, &OrderView> = orders.iter().map(|order| (order.id, order)).collect();

    // Orders.
    let rows: Vec<(Uuid, String, String, i64)> = sqlx::query_as(
        "SELECT id, idempotency_key, status, total_vnd FROM orders WHERE idempotency_key LIKE $1",
    )
    .bind(format!("{key_prefix}%"))
    .fetch_all(&databases.services["order"])
    .await
    .context("read the run's orders")?;
    let stored: HashMap<Uuid, OrderRow> = rows
        .into_iter()
        .map(|(id, key, status, total_vnd)| {
            (
                id,
                OrderRow {
                    key,
                    status,
                    total_vnd,
                },
            )
        })
        .collect();
    for order in orders {
        if !stored.contains_key(&order.id) {
            violations.push(format!(
                "order {} (key {}): PlaceOrder answered it, but the order database has no such \
                 order under the run's keys",
                order.id, order.key
            ));
        }
    }
    let untracked = stored.keys().filter(|id| !tracked.contains_key(id)).count();
    let mut outcomes: BTreeMap<(Fate, String), usize> = BTreeMap::new();
    for (id, row) in &stored {
        if !terminal(&row.status) {
            violations.push(format!(
                "order {id} (key {}): still {} after the drain",
                row.key, row.status
            ));
            continue;
        }
        let Some(order) = tracked.get(id) else {
            continue;
        };
        outcomes
            .entry((order.fate, row.status.clone()))
            .and_modify(|count| *count += 1)
            .or_insert(1);
        match (&order.terminal, confirmed_or_beyond(&row.status)) {
            (Some(Terminal::Confirmed), true) | (Some(Terminal::Cancelled(_)), false) => {}
            (Some(seen), _) => violations.push(format!(
                "order {id}: the events said {seen:?} but the database says {}",
                row.status
            )),
            (None, true) => violations.push(format!(
                "order {id}: {} in the database but its OrderConfirmed event never reached the \
                 topic",
                row.status
            )),
            (None, false) => violations.push(format!(
                "order {id}: cancelled in the database but its OrderCancelled event never \
                 reached the topic"
            )),
        }
    }
    for ((fate, status), count) in &outcomes {
        let expected = match fate {
            Fate::Pay => confirmed_or_beyond(status),
            _ => status == "cancelled",
        };
        if !expected {
            notes.push(format!(
                "{count} order(s) whose shopper chose to {} ended {status}",
                fate.as_str()
            ));
        }
    }

    // Payments.
    let ids: Vec<Uuid> = stored.keys().copied().collect();
    let mut intents: HashMap<Uuid, IntentRow> = HashMap::new();
    for chunk in ids.chunks(CHUNK) {
        let rows: Vec<(Uuid, Uuid, String, i64, i64, i64)> = sqlx::query_as(
            // Refunds under way count as given back: a cancelled order's automatic
            // refund is sent by the payment service's retrier, seconds later.
            "SELECT order_id, id, status, amount_vnd, captured_vnd,
                    refunded_vnd + (SELECT COALESCE(sum(amount_vnd), 0)::bigint FROM refunds r
                                    WHERE r.payment_id = i.id AND r.status = 'pending')
               FROM payment_intents i WHERE order_id = ANY($1)",
        )
        .bind(chunk)
        .fetch_all(&databases.services["payment"])
        .await
        .context("read the run's payments")?;
        for (order_id, id, status, amount_vnd, captured_vnd, refunded_vnd) in rows {
            intents.insert(
                order_id,
                IntentRow {
                    id,
                    status,
                    amount_vnd,
                    captured_vnd,
                    refunded_vnd,
                },
            );
        }
    }
    for (id, row) in &stored {
        if !terminal(&row.status) {
            continue;
        }
        let intent = intents.get(id);
        if confirmed_or_beyond(&row.status) {
            match intent {
                None => violations.push(format!("order {id}: {} without a payment", row.status)),
                Some(intent)
                    if intent.captured_vnd != row.total_vnd
                        || intent.amount_vnd != row.total_vnd
                        || !matches!(
                            intent.status.as_str(),
                            "succeeded" | "refunded" | "partially_refunded"
                        ) =>
                {
                    violations.push(format!(
                        "order {id}: {} for {} ₫ but payment {} is {} with {} of {} ₫ captured",
                        row.status,
                        row.total_vnd,
                        intent.id,
                        intent.status,
                        intent.captured_vnd,
                        intent.amount_vnd
                    ));
                }
                Some(_) => {}
            }
        } else if let Some(intent) = intent
            && intent.captured_vnd - intent.refunded_vnd != 0
        {
            violations.push(format!(
                "order {id}: cancelled, but payment {} ({}) holds {} ₫ captured and not refunded or being refunded",
                intent.id,
                intent.status,
                intent.captured_vnd - intent.refunded_vnd
            ));
        }
    }
    let ledger = ocop_payment::ledger::check(&databases.services["payment"])
        .await
        .context("check the payment ledger")?;
    violations.extend(
        ledger
            .into_iter()
            .map(|violation| format!("ledger: {violation}")),
    );

    // Stock and reservations.
    let catalog = &databases.services["catalog"];
    let broken: Vec<(Uuid, i64, i64)> = sqlx::query_as(
        "SELECT product_id, on_hand, reserved FROM stock
          WHERE on_hand < 0 OR reserved < 0 OR reserved > on_hand",
    )
    .fetch_all(catalog)
    .await
    .context("read the stock")?;
    for (product, on_hand, reserved) in broken {
        violations.push(format!(
            "product {product}: on hand {on_hand}, reserved {reserved}"
        ));
    }
    let unheld: Vec<(Uuid, i64, i64)> = sqlx::query_as(
        "SELECT s.product_id, s.reserved, COALESCE(h.held, 0)::bigint
           FROM stock s
           LEFT JOIN (SELECT l.product_id, sum(l.quantity) AS held
                        FROM reservation_lines l JOIN reservations r ON r.id = l.reservation_id
                       WHERE r.state = 'held' GROUP BY l.product_id) h
             ON h.product_id = s.product_id
          WHERE s.reserved <> COALESCE(h.held, 0)",
    )
    .fetch_all(catalog)
    .await
    .context("compare the reserved stock with the held reservations")?;
    for (product, reserved, held) in unheld {
        violations.push(format!(
            "product {product}: reserved {reserved} but its held reservations add up to {held}"
        ));
    }
    let mut reservations: HashMap<Uuid, String> = HashMap::new();
    for chunk in ids.chunks(CHUNK) {
        let rows: Vec<(Uuid, String)> =
            sqlx::query_as("SELECT order_id, state FROM reservations WHERE order_id = ANY($1)")
                .bind(chunk)
                .fetch_all(catalog)
                .await
                .context("read the run's reservations")?;
        reservations.extend(rows);
    }
    for (id, row) in &stored {
        if !terminal(&row.status) {
            continue;
        }
        let state = reservations.get(id).map(String::as_str);
        if confirmed_or_beyond(&row.status) {
            if state != Some("committed") {
                violations.push(format!(
                    "order {id}: {} but its reservation is {}",
                    row.status,
                    state.unwrap_or("missing")
                ));
            }
        } else if state == Some("held") || state == Some("committed") {
            violations.push(format!(
                "order {id}: cancelled but its reservation is still {}",
                state.unwrap_or_default()
            ));
        }
    }

    let violations_total = violations.len();
    violations.truncate(MAX_REPORTED);
    Ok(CheckReport {
        passed: violations_total == 0,
        orders_checked: stored.len(),
        untracked_orders: untracked,
        violations_total,
        violations,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_statuses_are_confirmed_and_beyond_or_cancelled() {
        for status in ["confirmed", "shipped", "delivered", "refunded", "cancelled"] {
            assert!(terminal(status), "{status}");
        }
        for status in ["pending", "awaiting_payment"] {
            assert!(!terminal(status), "{status}");
        }
        assert!(!confirmed_or_beyond("cancelled"));
        assert!(confirmed_or_beyond("delivered"));
    }
}
