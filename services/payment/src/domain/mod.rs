//! The payment's model: validated values, the intent's state machine and the judgement
//! of a provider's report. No I/O here, and no tonic, sqlx, rdkafka or HTTP: `events.rs`,
//! `grpc.rs`, `store.rs` and `callbacks.rs` translate at the edges.

pub mod callback;
pub mod intent;
pub mod refund;

/// A value that broke a rule, with the field it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct Invalid {
    pub field: String,
    pub reason: String,
}

/// The shared text rules (`ocop_grpc_kit::validation`: plain functions, no tonic types)
/// report in the same shape.
impl From<ocop_grpc_kit::validation::FieldViolation> for Invalid {
    fn from(violation: ocop_grpc_kit::validation::FieldViolation) -> Self {
        Self::new(violation.field, violation.description)
    }
}

impl Invalid {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}
