//! How many of a service's consumers are recreating their group member (see `stall`).
//! While any is, the service reports `NOT_SERVING` on `grpc.health.v1`: its events are
//! not flowing, and an orchestrator should know (a readiness probe takes the pod out of
//! its Service; an operator sees it) until the new member has its partitions again.

use std::sync::Arc;

use tokio::sync::watch;

/// A count shared by a service's consumers and read by its gRPC health service.
#[derive(Debug, Clone)]
pub struct Recovering(Arc<watch::Sender<usize>>);

impl Default for Recovering {
    fn default() -> Self {
        Self(Arc::new(watch::Sender::new(0)))
    }
}

impl Recovering {
    /// The count, to follow: 0 when every consumer moves.
    pub fn subscribe(&self) -> watch::Receiver<usize> {
        self.0.subscribe()
    }

    pub(crate) fn begin(&self) {
        self.0.send_modify(|count| *count += 1);
    }

    pub(crate) fn end(&self) {
        self.0.send_modify(|count| *count = count.saturating_sub(1));
    }
}
