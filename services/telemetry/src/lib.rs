//! Telemetry shared by every ocop-market service:
//!
//! - [`init`]: `tracing` JSON logs, plus OpenTelemetry traces exported by OTLP when an
//!   endpoint is configured;
//! - [`propagation`]: W3C trace context into and out of gRPC metadata and message headers;
//! - [`metrics`]: the Prometheus recorder and the `/metrics` HTTP route.

mod log_format;
pub mod metrics;
pub mod propagation;
mod setup;

pub use setup::{TelemetryConfig, TelemetryGuard, init};
