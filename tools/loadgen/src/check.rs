//! The books after a run, read from the services' databases (read-only): every order the
//! run placed — found by the run's idempotency-key prefix, so an order whose answer was
//! lost counts too — is terminal and agrees with the events seen; then the platform's
//! audit (`ocop-audit`, as `ocopctl audit` runs it): each paid order has one succeeded
//! payment for its total and its units sold once, no money is kept for an order that did
//! not go through, refunds stay within captures, the ledger balances, and stock adds up.

use std::collections::{BTreeMap, HashMap};

use anyhow::Context as _;
use serde::Serialize;
use uuid::Uuid;

use crate::{
    mix::Fate,
    probe::Databases,
    tracker::{OrderView, Terminal},
};

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
    let rows: Vec<(Uuid, String, String)> = sqlx::query_as(
        "SELECT id, idempotency_key, status FROM orders WHERE idempotency_key LIKE $1",
    )
    .bind(format!("{key_prefix}%"))
    .fetch_all(&databases.services["order"])
    .await
    .context("read the run's orders")?;
    let stored: HashMap<Uuid, OrderRow> = rows
        .into_iter()
        .map(|(id, key, status)| (id, OrderRow { key, status }))
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

    // The books of the whole platform (the run's orders among them): payments, refunds,
    // the ledger, stock and reservations. The run waited for the platform to go quiet,
    // so nothing is left out as in flight.
    let audit = ocop_audit::run(
        &ocop_audit::Databases {
            catalog: databases.services["catalog"].clone(),
            order: databases.services["order"].clone(),
            payment: databases.services["payment"].clone(),
        },
        ocop_audit::Settings {
            settle_grace: std::time::Duration::ZERO,
            ..Default::default()
        },
    )
    .await
    .context("audit the books")?;
    for invariant in audit.broken() {
        violations.extend(
            invariant
                .first
                .iter()
                .map(|offence| format!("audit: {}: {offence}", invariant.name)),
        );
        if invariant.violations > invariant.first.len() {
            violations.push(format!(
                "audit: {}: … and {} more",
                invariant.name,
                invariant.violations - invariant.first.len()
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
