//! Abuse limits on `PlaceOrder`: an order holds stock until it is paid or expires, so
//! nobody may hold much of it without paying.
//!
//! - the shape of one order: lines per order and units per line (`INVALID_ARGUMENT`);
//! - what one phone number holds unpaid (orders `pending` or `awaiting_payment`): open
//!   orders and their units (`RESOURCE_EXHAUSTED` with a `QuotaFailure`). The check runs
//!   in the placing transaction under an advisory lock on the phone number, so two
//!   concurrent orders of one phone cannot both slip under the cap;
//! - a per-client rate (`RESOURCE_EXHAUSTED` with a `RetryInfo`), see `grpc.rs`.
//!
//! The phone check's two statements live here rather than in `store.rs`, to keep the
//! limits in one place.

use ocop_grpc_kit::rate_limit::{RateLimiter, TrustedProxies};
use sqlx::{Postgres, Transaction};

use crate::{
    domain::{
        Invalid,
        order::{MAX_LINES, MAX_QUANTITY, OrderRequest},
        state::OrderStatus,
    },
    error::OrderError,
};

/// The first key of the placing transaction's advisory lock (the second is the phone
/// number's hash), so that it never meets another lock of the database.
const PHONE_LOCK_CLASS: i32 = 0x6f70_686e; // "ophn"

/// The settings of the limits (flags or environment variables).
#[derive(Debug, Clone, clap::Args)]
pub struct LimitsConfig {
    /// Most lines in one order (at most 50).
    #[arg(long, env = "MAX_ORDER_LINES", default_value_t = MAX_LINES as u32,
          value_parser = clap::value_parser!(u32).range(1..=MAX_LINES as i64))]
    pub max_order_lines: u32,

    /// Most units of one product in one order (at most 1000).
    #[arg(long, env = "MAX_LINE_QUANTITY", default_value_t = MAX_QUANTITY as u32,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_QUANTITY)))]
    pub max_line_quantity: u32,

    /// Most unpaid orders (pending or awaiting payment) one phone number may have open;
    /// 0: no limit.
    #[arg(long, env = "MAX_OPEN_ORDERS_PER_PHONE", default_value_t = 3)]
    pub max_open_orders_per_phone: u32,

    /// Most units one phone number may hold in unpaid orders; 0: no limit.
    #[arg(long, env = "MAX_OPEN_UNITS_PER_PHONE", default_value_t = 50)]
    pub max_open_units_per_phone: u32,

    /// PlaceOrder calls a second per client (token subject, else peer IP), per replica;
    /// 0: no limit.
    #[arg(long, env = "PLACE_ORDER_RATE", default_value_t = 5.0)]
    pub place_order_rate: f64,

    /// PlaceOrder calls one client may make at once after a quiet spell.
    #[arg(long, env = "PLACE_ORDER_BURST", default_value_t = 20)]
    pub place_order_burst: u32,

    #[command(flatten)]
    pub proxies: TrustedProxies,
}

impl LimitsConfig {
    /// The per-client PlaceOrder rate limit.
    pub fn place_order_limiter(&self) -> RateLimiter {
        RateLimiter::new("place_order", self.place_order_rate, self.place_order_burst)
    }
}

/// The limits on what an order may hold.
#[derive(Debug, Clone, Copy)]
pub struct HoldLimits {
    max_lines: usize,
    max_quantity: i32,
    /// 0: no limit.
    max_open_orders: i64,
    /// 0: no limit.
    max_open_units: i64,
}

impl Default for HoldLimits {
    /// Only the domain's own ceilings.
    fn default() -> Self {
        Self {
            max_lines: MAX_LINES,
            max_quantity: MAX_QUANTITY,
            max_open_orders: 0,
            max_open_units: 0,
        }
    }
}

impl From<&LimitsConfig> for HoldLimits {
    fn from(config: &LimitsConfig) -> Self {
        Self {
            max_lines: config.max_order_lines as usize,
            max_quantity: i32::try_from(config.max_line_quantity).unwrap_or(MAX_QUANTITY),
            max_open_orders: i64::from(config.max_open_orders_per_phone),
            max_open_units: i64::from(config.max_open_units_per_phone),
        }
    }
}

/// What a phone number holds unpaid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Held {
    orders: i64,
    units: i64,
}

impl HoldLimits {
    /// Lines per order and units per line, naming the field like the domain's checks.
    pub fn check_shape(&self, request: &OrderRequest) -> Result<(), OrderError> {
        if request.lines.len() > self.max_lines {
            refused("order_lines");
            return Err(Invalid::new(
                "lines",
                format!(
                    "{} lines; the limit is {}",
                    request.lines.len(),
                    self.max_lines
                ),
            )
            .into());
        }
        for (index, line) in request.lines.iter().enumerate() {
            if line.quantity > self.max_quantity {
                refused("line_quantity");
                return Err(Invalid::new(
                    format!("lines[{index}].quantity"),
                    format!("{} is outside 1..={}", line.quantity, self.max_quantity),
                )
                .into());
            }
        }
        Ok(())
    }

    /// Refuses the order if its phone number would hold more unpaid orders or units
    /// than allowed. Locks the phone number for the rest of `tx`, so a concurrent order
    /// of the same phone waits for this one to commit and then counts it.
    pub async fn check_phone(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        request: &OrderRequest,
    ) -> Result<(), OrderError> {
        if self.max_open_orders == 0 && self.max_open_units == 0 {
            return Ok(());
        }
        let phone = request.customer.phone.as_str();
        sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
            .bind(PHONE_LOCK_CLASS)
            .bind(phone)
            .execute(&mut **tx)
            .await?;
        let (orders, units): (i64, i64) = sqlx::query_as(
            "SELECT count(DISTINCT o.id), COALESCE(sum(l.quantity), 0)::bigint
             FROM orders o JOIN order_lines l ON l.order_id = o.id
             WHERE o.customer_phone = $1 AND o.status = ANY($2)",
        )
        .bind(phone)
        .bind(
            &[
                OrderStatus::Pending.as_str(),
                OrderStatus::AwaitingPayment.as_str(),
            ][..],
        )
        .fetch_one(&mut **tx)
        .await?;
        let units_asked: i64 = request.lines.iter().map(|l| i64::from(l.quantity)).sum();
        self.judge(Held { orders, units }, units_asked)
    }

    /// The verdict on a new order of `units_asked` units by a phone that holds `held`.
    fn judge(&self, held: Held, units_asked: i64) -> Result<(), OrderError> {
        if self.max_open_orders > 0 && held.orders >= self.max_open_orders {
            refused("open_orders_per_phone");
            return Err(OrderError::QuotaExceeded {
                subject: "customer.phone".into(),
                description: format!(
                    "this phone number has {} unpaid orders open; the limit is {}: pay or \
                     cancel one, or wait for it to expire",
                    held.orders, self.max_open_orders
                ),
            });
        }
        if self.max_open_units > 0 && held.units + units_asked > self.max_open_units {
            refused("open_units_per_phone");
            return Err(OrderError::QuotaExceeded {
                subject: "customer.phone".into(),
                description: format!(
                    "this order would hold {} units unpaid for this phone number ({} already \
                     held); the limit is {}",
                    held.units + units_asked,
                    held.units,
                    self.max_open_units
                ),
            });
        }
        Ok(())
    }
}

fn refused(limit: &'static str) {
    metrics::counter!("ocop_limit_refusals_total", "limit" => limit).increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(orders: i64, units: i64) -> HoldLimits {
        HoldLimits {
            max_open_orders: orders,
            max_open_units: units,
            ..HoldLimits::default()
        }
    }

    #[test]
    fn the_order_that_reaches_a_cap_passes_and_the_next_is_refused() {
        let caps = limits(3, 50);
        assert!(
            caps.judge(
                Held {
                    orders: 2,
                    units: 40
                },
                10
            )
            .is_ok()
        );
        assert!(matches!(
            caps.judge(
                Held {
                    orders: 3,
                    units: 0
                },
                1
            ),
            Err(OrderError::QuotaExceeded { .. })
        ));
        assert!(matches!(
            caps.judge(
                Held {
                    orders: 0,
                    units: 40
                },
                11
            ),
            Err(OrderError::QuotaExceeded { .. })
        ));
    }

    #[test]
    fn zero_disables_a_cap() {
        assert!(
            limits(0, 0)
                .judge(
                    Held {
                        orders: 1_000,
                        units: 1_000_000
                    },
                    1_000
                )
                .is_ok()
        );
    }
}
