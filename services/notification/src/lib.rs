//! The notification service: tells shoppers, in Vietnamese, about each step of their
//! orders that matters (DESIGN §2–3), over the log, e-mail, SMS and Zalo ZNS channels.
//!
//! Events come in through [`events`] (one pending [`store`] row per channel, written in
//! the inbox's transaction), [`dispatch`] sends them and publishes the outcome, and
//! [`grpc`] lists them. `main.rs` only parses [`Config`], starts telemetry and runs
//! [`App`].

mod app;
pub mod channel;
pub mod config;
pub mod dispatch;
pub mod domain;
pub mod error;
pub mod events;
pub mod grpc;
pub mod service;
pub mod store;
pub mod templates;

pub use app::App;
pub use config::Config;

/// The notification service's migrations (its own tables; the outbox and inbox come
/// from `ocop-events`).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();
