//! What can go wrong in a notification operation. `grpc.rs` maps it to a status and
//! `events.rs` to the consumer's retry-or-reject decision.

use uuid::Uuid;

use crate::{domain::Invalid, templates::TemplateError};

#[derive(Debug, thiserror::Error)]
pub enum NotificationError {
    /// A request or an event broke a rule; nothing was written.
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// An event about an order whose `OrderPlaced` has not been seen (yet): the
    /// contact is unknown. Usually it arrives moments later.
    #[error("order {0}: no contact yet (OrderPlaced not seen)")]
    OrderUnknown(Uuid),
    /// A template failed to render (start-up checks make this rare).
    #[error(transparent)]
    Template(#[from] TemplateError),
    /// Anything else: logged with context, reported without details.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for NotificationError {
    fn from(err: sqlx::Error) -> Self {
        Self::Internal(anyhow::Error::new(err).context("notification database"))
    }
}
