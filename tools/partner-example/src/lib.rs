//! How a partner marketplace (Postmart, Voso …) follows ocop-market: it mirrors the
//! catalogue from the compacted topic `ocop.catalog.products.v1` and follows orders from
//! `ocop.partner.orders.v1` into a PostgreSQL store of its own.
//!
//! Delivery is at least once and a partner may replay from any offset, so applying an
//! event is idempotent twice over: its CloudEvents `ce_id` is recorded in the same
//! transaction as its effect (a redelivery is skipped), and a row only ever moves to a
//! newer state (an old snapshot replayed after a newer one changes nothing). Offsets are
//! committed only after that transaction commits.

pub mod apply;
pub mod config;
pub mod follow;

pub use config::Config;
pub use follow::run;

/// The partner store's schema.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();
