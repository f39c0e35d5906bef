//! What can go wrong in a catalog operation. `grpc.rs` maps it to a status.

use crate::domain::Invalid;

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The request broke a rule; nothing was written.
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// The request names something that does not exist.
    #[error("{field}: {message}")]
    NotFound { field: String, message: String },
    /// The request is well formed but the current state forbids it.
    #[error("{field}: {message}")]
    FailedPrecondition { field: String, message: String },
    /// Anything else: logged with context, reported without details.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl CatalogError {
    pub fn not_found(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::NotFound {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl From<sqlx::Error> for CatalogError {
    fn from(err: sqlx::Error) -> Self {
        Self::Internal(anyhow::Error::new(err).context("catalog database"))
    }
}
