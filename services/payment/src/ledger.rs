//! The double-entry ledger of captures and refunds (see the `ledger_entries` migration).
//!
//! Every transaction is two entries that sum to zero: a capture debits
//! `provider_clearing` and credits `order_funds`; a refund does the reverse. So for each
//! order, the `order_funds` balance (negated) is captured − refunded, and it must never
//! go below zero. [`check`] verifies all of it; the payment and saga tests run it after
//! every scenario.

use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::store::IntentRecord;

type Tx = Transaction<'static, Postgres>;

const CLEARING: &str = "provider_clearing";
const ORDER_FUNDS: &str = "order_funds";

/// What a ledger transaction records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Capture,
    Refund,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Capture => "capture",
            Self::Refund => "refund",
        }
    }
}

/// Posts one balanced transaction of `amount_vnd` (> 0) for `intent`'s order.
#[tracing::instrument(name = "INSERT ledger_entries", skip_all, fields(otel.kind = "client", db.system.name = "postgresql", db.collection.name = "ledger_entries"))]
pub async fn post(
    tx: &mut Tx,
    intent: &IntentRecord,
    kind: Kind,
    amount_vnd: i64,
    reference: &str,
) -> Result<(), sqlx::Error> {
    let txn_id = Uuid::now_v7();
    let (clearing, funds) = match kind {
        Kind::Capture => (amount_vnd, -amount_vnd),
        Kind::Refund => (-amount_vnd, amount_vnd),
    };
    sqlx::query(
        "INSERT INTO ledger_entries (txn_id, order_id, payment_id, account, amount_vnd, kind, reference)
         VALUES ($1, $2, $3, $4, $5, $6, $8), ($1, $2, $3, $7, $9, $6, $8)",
    )
    .bind(txn_id)
    .bind(intent.order_id)
    .bind(intent.id)
    .bind(CLEARING)
    .bind(clearing)
    .bind(kind.as_str())
    .bind(ORDER_FUNDS)
    .bind(reference)
    .bind(funds)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The balance of an order: captured − refunded, from the ledger.
#[tracing::instrument(name = "SELECT ledger_entries", skip_all, fields(otel.kind = "client", db.system.name = "postgresql", db.collection.name = "ledger_entries"))]
pub async fn order_balance(pool: &PgPool, order_id: Uuid) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT COALESCE(-sum(amount_vnd), 0)::bigint FROM ledger_entries
         WHERE order_id = $1 AND account = 'order_funds'",
    )
    .bind(order_id)
    .fetch_one(pool)
    .await
}

/// Checks the whole ledger against itself and the payments; returns every violation
/// found (empty when the invariants hold):
/// - every transaction sums to zero;
/// - per order, the balance equals the payment's captured − refunded;
/// - per order, the running balance is never negative (no refund before its money);
/// - no payment captured or refunded anything the ledger does not show.
pub async fn check(pool: &PgPool) -> Result<Vec<String>, sqlx::Error> {
    let mut violations = Vec::new();
    let unbalanced: Vec<(Uuid, i64)> = sqlx::query_as(
        "SELECT txn_id, sum(amount_vnd)::bigint FROM ledger_entries
         GROUP BY txn_id HAVING sum(amount_vnd) <> 0 OR count(*) <> 2",
    )
    .fetch_all(pool)
    .await?;
    for (txn, sum) in unbalanced {
        violations.push(format!("transaction {txn} is unbalanced (sum {sum})"));
    }
    let mismatched: Vec<(Uuid, i64, i64, i64)> = sqlx::query_as(
        "SELECT i.order_id, i.captured_vnd, i.refunded_vnd,
                COALESCE(-sum(l.amount_vnd) FILTER (WHERE l.account = 'order_funds'), 0)::bigint
           FROM payment_intents i LEFT JOIN ledger_entries l ON l.payment_id = i.id
          GROUP BY i.id
         HAVING COALESCE(-sum(l.amount_vnd) FILTER (WHERE l.account = 'order_funds'), 0)
                <> i.captured_vnd - i.refunded_vnd
             OR i.captured_vnd - i.refunded_vnd < 0",
    )
    .fetch_all(pool)
    .await?;
    for (order, captured, refunded, balance) in mismatched {
        violations.push(format!(
            "order {order}: ledger balance {balance} but captured {captured} - refunded {refunded}"
        ));
    }
    let negative: Vec<(Uuid, i64)> = sqlx::query_as(
        "SELECT order_id, min(running)::bigint FROM (
             SELECT order_id, -sum(amount_vnd) OVER (PARTITION BY order_id ORDER BY id) AS running
               FROM ledger_entries WHERE account = 'order_funds') r
         GROUP BY order_id HAVING min(running) < 0",
    )
    .fetch_all(pool)
    .await?;
    for (order, lowest) in negative {
        violations.push(format!("order {order}: balance went down to {lowest}"));
    }
    let orphans: Vec<(Uuid,)> = sqlx::query_as(
        "SELECT l.order_id FROM ledger_entries l JOIN payment_intents i ON i.id = l.payment_id
          WHERE l.order_id <> i.order_id",
    )
    .fetch_all(pool)
    .await?;
    for (order,) in orphans {
        violations.push(format!(
            "entry of order {order} names another order's payment"
        ));
    }
    Ok(violations)
}

/// [`check`], panicking with every violation (for tests).
pub async fn assert_balanced(pool: &PgPool) {
    let violations = check(pool).await.expect("read the ledger");
    assert!(
        violations.is_empty(),
        "ledger invariants broken:\n{}",
        violations.join("\n")
    );
}
