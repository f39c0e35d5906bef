//! What can go wrong in a payment operation. `grpc.rs` maps it to a status, `events.rs`
//! to a retry or a dead letter.

use crate::domain::Invalid;

#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    /// The request broke a rule; nothing was written.
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// The request names something that does not exist.
    #[error("{field}: {message}")]
    NotFound { field: String, message: String },
    /// A provider did not answer usefully; the caller may retry.
    #[error("provider unavailable: {0}")]
    Unavailable(String),
    /// Anything else: logged with context, reported without details.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl PaymentError {
    pub fn not_found(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::NotFound {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl From<sqlx::Error> for PaymentError {
    fn from(err: sqlx::Error) -> Self {
        Self::Internal(anyhow::Error::new(err).context("payment database"))
    }
}
