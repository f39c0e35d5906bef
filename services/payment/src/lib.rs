//! The payment service: payment intents, provider callbacks and the sandbox gateway
//! (DESIGN §2, §3 steps 4–5, §5).
//!
//! `main.rs` only parses [`Config`], starts telemetry and runs [`App`].

mod app;
pub mod callbacks;
mod checkout;
pub mod config;
pub mod domain;
pub mod error;
pub mod events;
pub mod grpc;
pub mod ledger;
pub mod providers;
pub mod sandbox;
pub mod service;
pub mod store;

pub use app::App;
pub use config::Config;

/// The payment service's migrations (its own tables; the outbox and inbox come from
/// `ocop-events`).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();
