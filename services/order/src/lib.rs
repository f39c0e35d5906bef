//! The order service: orders, their price snapshots and the saga's state machine
//! (DESIGN §2–3). `main.rs` only parses [`Config`], starts telemetry and runs [`App`].

mod access;
mod app;
pub mod config;
pub mod domain;
pub mod error;
pub mod events;
pub mod grpc;
pub mod limits;
pub mod service;
pub mod store;

pub use app::App;
pub use config::Config;

/// The order service's migrations (its own tables; the outbox and inbox come from
/// `ocop-events`).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();
