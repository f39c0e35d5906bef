//! The gRPC side every ocop-market service shares:
//!
//! - [`background`]: the tasks beside the server and the order they stop in;
//! - [`server`]: serve a service's routes with `grpc.health.v1`, reflection, auth,
//!   tracing and metrics, and drain gracefully on shutdown;
//! - [`auth`]: bearer tokens (HS256 JWT) with scopes, checked per RPC by a tower layer;
//! - [`validation`]: `INVALID_ARGUMENT` with the offending field in `BadRequest` details,
//!   and the rules for text fields (no control characters, short quotes of bad input);
//! - [`page_token`]: opaque, validated page tokens;
//! - [`catch_panic`]: a panicking handler answers `INTERNAL` for its call only;
//! - [`observe`]: a span per RPC (parent from `traceparent`) and RED metrics;
//! - [`rate_limit`]: per-client token buckets and the `RESOURCE_EXHAUSTED` they answer;
//! - [`client`]: channels that carry the caller's trace context;
//! - [`shutdown`]: the SIGTERM/SIGINT future.

pub mod auth;
pub mod background;
pub mod catch_panic;
pub mod client;
pub mod observe;
pub mod page_token;
pub mod rate_limit;
pub mod server;
pub mod shutdown;
pub mod validation;
