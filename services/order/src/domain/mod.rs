//! The order's model: validated values and the state machine. No I/O here, and no
//! tonic, sqlx or rdkafka: `grpc.rs`, `store.rs` and `events.rs` translate at the edges.

pub mod order;
pub mod state;

/// A value that broke a rule, with the field it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct Invalid {
    pub field: String,
    pub reason: String,
}

impl Invalid {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}
