//! What can go wrong in an order operation. `grpc.rs` maps it to a status.

use crate::domain::Invalid;

#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    /// The request broke a rule; nothing was stored.
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error("{field}: {message}")]
    NotFound { field: String, message: String },
    /// The idempotency key was used for a different request.
    #[error("idempotency_key: {0}")]
    KeyReused(String),
    /// The order's status forbids the call.
    #[error("{0}")]
    FailedPrecondition(String),
    /// An abuse limit refused the call (`limits.rs`); nothing was stored.
    #[error("{subject}: {description}")]
    QuotaExceeded {
        subject: String,
        description: String,
    },
    /// A dependency (the catalog) did not answer in time; nothing was stored.
    #[error("{0}")]
    Unavailable(String),
    /// Anything else: logged with context, reported without details.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for OrderError {
    fn from(err: sqlx::Error) -> Self {
        Self::Internal(anyhow::Error::new(err).context("order database"))
    }
}
