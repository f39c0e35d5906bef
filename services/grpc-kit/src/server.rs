//! Serving a service's gRPC routes the ocop-market way.

use std::{future::Future, time::Duration};

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::{service::Routes, transport::server::TcpIncoming};
use tonic_health::ServingStatus;

use crate::{
    auth::{Policy, ScopeLayer, TokenVerifier},
    observe::ObserveLayer,
};

/// A service's two listeners, bound at build time so that port 0 can be used and the
/// chosen ports read back before serving.
#[derive(Debug)]
pub struct Listeners {
    pub grpc: TcpListener,
    /// `/metrics` and any HTTP routes of the service (provider callbacks).
    pub http: TcpListener,
}

impl Listeners {
    pub async fn bind(
        grpc: std::net::SocketAddr,
        http: std::net::SocketAddr,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            grpc: TcpListener::bind(grpc)
                .await
                .with_context(|| format!("bind gRPC address {grpc}"))?,
            http: TcpListener::bind(http)
                .await
                .with_context(|| format!("bind HTTP address {http}"))?,
        })
    }

    pub fn grpc_addr(&self) -> std::net::SocketAddr {
        self.grpc
            .local_addr()
            .expect("bound listener has an address")
    }

    pub fn http_addr(&self) -> std::net::SocketAddr {
        self.http
            .local_addr()
            .expect("bound listener has an address")
    }
}

/// How a service shuts down, the same settings for every service.
#[derive(Clone, Copy, Debug, clap::Args)]
pub struct ShutdownConfig {
    /// Pause between reporting NOT_SERVING and closing the listener, so load balancers
    /// stop routing here (set it above the readiness probe period on Kubernetes).
    #[arg(long = "shutdown-drain-delay", env = "SHUTDOWN_DRAIN_DELAY", default_value = "0s",
          value_parser = humantime::parse_duration)]
    pub drain_delay: Duration,

    /// The longest wait for calls in flight once the listener is closed.
    #[arg(long = "shutdown-grace", env = "SHUTDOWN_GRACE", default_value = "10s",
          value_parser = humantime::parse_duration)]
    pub grace: Duration,
}

/// How a server admits calls and shuts down.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Full names of the gRPC services in the routes (for `grpc.health.v1`).
    pub service_names: Vec<&'static str>,
    pub verifier: TokenVerifier,
    pub policy: Policy,
    pub shutdown: ShutdownConfig,
}

/// Serves `routes` plus health and reflection on `listener` until `shutdown` resolves;
/// then reports NOT_SERVING, waits `drain_delay`, stops accepting and lets calls in
/// flight finish within `grace`.
pub async fn serve(
    listener: TcpListener,
    routes: Routes,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (reporter, health_service) = tonic_health::server::health_reporter();
    for name in options.service_names.iter().copied().chain([""]) {
        reporter
            .set_service_status(name, ServingStatus::Serving)
            .await;
    }
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(ocop_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .context("build reflection service")?;
    let routes = routes.add_service(health_service).add_service(reflection);

    let draining = CancellationToken::new();
    let start_drain = draining.clone();
    let names = options.service_names.clone();
    let drain_delay = options.shutdown.drain_delay;
    let stop = async move {
        shutdown.await;
        for name in names.into_iter().chain([""]) {
            reporter
                .set_service_status(name, ServingStatus::NotServing)
                .await;
        }
        tracing::info!(
            drain_delay_ms = drain_delay.as_millis() as u64,
            "health set to NOT_SERVING"
        );
        tokio::time::sleep(drain_delay).await;
        start_drain.cancel();
    };

    let server = tonic::transport::Server::builder()
        .layer(ObserveLayer)
        .layer(ScopeLayer::new(options.verifier, options.policy))
        .add_routes(routes)
        // Without TCP_NODELAY small responses wait on Nagle's algorithm (~40 ms each).
        .serve_with_incoming_shutdown(TcpIncoming::from(listener).with_nodelay(Some(true)), stop);
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => result.context("grpc server failed")?,
        _ = draining.cancelled() => {
            match tokio::time::timeout(options.shutdown.grace, &mut server).await {
                Ok(result) => result.context("grpc server failed while draining")?,
                Err(_) => tracing::warn!(grace_ms = options.shutdown.grace.as_millis() as u64, "calls still in flight after the grace period; closing"),
            }
        }
    }
    tracing::info!("grpc server stopped");
    Ok(())
}
