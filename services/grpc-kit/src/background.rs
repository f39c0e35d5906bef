//! The tasks a service runs beside its gRPC server (outbox relay, consumers, sweepers,
//! the HTTP port) and the order in which they stop: event intake stops as soon as
//! shutdown begins, the rest once calls in flight have drained — so whatever those calls
//! wrote to the outbox is still published.

use std::future::Future;

use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::CancellationToken;

use crate::server::{ServeOptions, serve};

/// Background tasks of one service.
#[derive(Default)]
pub struct Background {
    intake: CancellationToken,
    rest: CancellationToken,
    tasks: Vec<(&'static str, JoinHandle<()>)>,
}

impl Background {
    pub fn new() -> Self {
        Self::default()
    }

    /// The token of tasks that take new work (event consumers): cancelled when shutdown
    /// begins.
    pub fn intake(&self) -> CancellationToken {
        self.intake.clone()
    }

    /// The token of everything else (relay, sweepers, HTTP): cancelled after the drain.
    pub fn token(&self) -> CancellationToken {
        self.rest.clone()
    }

    /// Runs `task` until its token is cancelled.
    pub fn spawn(&mut self, name: &'static str, task: impl Future<Output = ()> + Send + 'static) {
        self.tasks.push((name, tokio::spawn(task)));
    }

    /// Serves `router` (metrics, provider callbacks …) on `listener` until the drain ends.
    pub fn serve_http(&mut self, listener: TcpListener, router: axum::Router) {
        let stop = self.rest.clone();
        self.spawn("http server", async move {
            if let Err(err) =
                ocop_telemetry::metrics::serve(listener, router, stop.cancelled_owned()).await
            {
                tracing::error!(error = %err, "http server failed");
            }
        });
    }

    /// Serves the gRPC `routes` on `listener` until `shutdown` (event intake stops as it
    /// begins), then stops the rest once the calls in flight have drained.
    pub async fn serve_grpc(
        self,
        listener: TcpListener,
        routes: tonic::service::Routes,
        options: ServeOptions,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let intake = self.intake.clone();
        let shutdown = async move {
            shutdown.await;
            intake.cancel();
        };
        let served = serve(listener, routes, options, shutdown).await;
        self.stop().await;
        served
    }

    /// Stops everything and waits for each task to finish its round.
    pub async fn stop(self) {
        self.intake.cancel();
        self.rest.cancel();
        for (name, task) in self.tasks {
            if let Err(err) = task.await {
                tracing::error!(task = name, error = %err, "task panicked");
            }
        }
    }
}
