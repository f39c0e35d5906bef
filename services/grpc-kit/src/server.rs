//! Serving a service's gRPC routes the ocop-market way.

use std::{future::Future, time::Duration};

use anyhow::Context as _;
use tokio::{net::TcpListener, sync::watch};
use tokio_util::sync::CancellationToken;
use tonic::{service::Routes, transport::server::TcpIncoming};
use tonic_health::ServingStatus;

use crate::{
    auth::{Policy, ScopeLayer, TokenVerifier},
    catch_panic::CatchPanicLayer,
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

/// Whether the server answers gRPC reflection (both `grpc.reflection.v1` and
/// `v1alpha`), listing the services it serves. On for development and stock tools
/// (grpcurl, Postman); the prod overlay turns it off so the API is not advertised.
#[derive(Clone, Copy, Debug, clap::Args)]
pub struct ReflectionConfig {
    /// Serve gRPC reflection (`true`/`false`).
    #[arg(long = "grpc-reflection", env = "GRPC_REFLECTION", default_value_t = true,
          action = clap::ArgAction::Set)]
    pub enabled: bool,
}

impl Default for ReflectionConfig {
    fn default() -> Self {
        Self { enabled: true }
    }
}

/// The full names reflection advertises besides the service's own.
const FRAMEWORK_SERVICES: [&str; 3] = [
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];

/// Both reflection versions, listing only `service_names` (and health and reflection):
/// the contract's descriptor set holds every area's services, and advertising all four
/// on each server would name methods it does not serve.
fn add_reflection(routes: Routes, service_names: &[&'static str]) -> anyhow::Result<Routes> {
    let builder = || {
        let builder = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(ocop_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(
                tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
            );
        service_names
            .iter()
            .chain(FRAMEWORK_SERVICES.iter())
            .fold(builder, |builder, name| builder.with_service_name(*name))
    };
    Ok(routes
        .add_service(builder().build_v1().context("build reflection v1")?)
        .add_service(
            builder()
                .build_v1alpha()
                .context("build reflection v1alpha")?,
        ))
}

/// How a server admits calls and shuts down.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Full names of the gRPC services in the routes (for `grpc.health.v1`).
    pub service_names: Vec<&'static str>,
    pub verifier: TokenVerifier,
    pub policy: Policy,
    pub shutdown: ShutdownConfig,
    pub reflection: ReflectionConfig,
    /// How many parts of the service are not ready (its event consumers recreating their
    /// group member): health says NOT_SERVING while it is above zero.
    pub not_ready: Option<watch::Receiver<usize>>,
}

/// Serves `routes` plus health and (when enabled) reflection on `listener` until `shutdown` resolves;
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
    let mut routes = routes.add_service(health_service);
    if options.reflection.enabled {
        routes = add_reflection(routes, &options.service_names)?;
    }

    // Follows `not_ready` until the shutdown, which has the last word (NOT_SERVING).
    let stopping = CancellationToken::new();
    let follow_readiness = options.not_ready.clone().map(|mut not_ready| {
        let reporter = reporter.clone();
        let names = options.service_names.clone();
        let stopping = stopping.clone();
        tokio::spawn(async move {
            while not_ready.changed().await.is_ok() {
                let status = if *not_ready.borrow_and_update() == 0 {
                    ServingStatus::Serving
                } else {
                    ServingStatus::NotServing
                };
                if stopping.is_cancelled() {
                    return;
                }
                tracing::info!(status = ?status, "health follows the event consumers");
                for name in names.iter().copied().chain([""]) {
                    reporter.set_service_status(name, status).await;
                }
            }
        })
    });

    let draining = CancellationToken::new();
    let start_drain = draining.clone();
    let names = options.service_names.clone();
    let drain_delay = options.shutdown.drain_delay;
    let stop = async move {
        shutdown.await;
        stopping.cancel();
        if let Some(follower) = follow_readiness {
            follower.abort();
            let _ = follower.await; // finished: it sets nothing after this
        }
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
        // Inside the observer, so a panicked call counts as INTERNAL in the metrics.
        .layer(CatchPanicLayer)
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

#[cfg(test)]
mod tests {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus as Status,
        health_client::HealthClient,
    };

    use super::*;
    use crate::auth::Access;

    async fn status(health: &mut HealthClient<tonic::transport::Channel>) -> i32 {
        health
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .expect("health answers")
            .into_inner()
            .status
    }

    /// Polls the health status until it is `wanted` (a watch change is applied
    /// asynchronously), for at most 5 s.
    async fn wait_for(health: &mut HealthClient<tonic::transport::Channel>, wanted: Status) {
        for _ in 0..100 {
            if status(health).await == wanted as i32 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("health never said {wanted:?}");
    }

    #[tokio::test]
    async fn health_is_not_serving_while_a_part_is_not_ready_and_after_shutdown_for_good() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (not_ready, watched) = watch::channel(0_usize);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let options = ServeOptions {
            service_names: vec!["ocop.test.v1.TestService"],
            verifier: TokenVerifier::from_secret(
                b"a-test-secret-a-test-secret-a-test!",
                "ocop-test",
            ),
            policy: |_| None,
            shutdown: ShutdownConfig {
                drain_delay: Duration::from_millis(300),
                grace: Duration::from_secs(1),
            },
            reflection: ReflectionConfig::default(),
            not_ready: Some(watched),
        };
        let server = tokio::spawn(serve(listener, Routes::default(), options, async move {
            let _ = stopped.await;
        }));
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut health = HealthClient::new(channel);
        assert_eq!(status(&mut health).await, Status::Serving as i32);

        not_ready.send(1).unwrap();
        wait_for(&mut health, Status::NotServing).await;
        not_ready.send(0).unwrap();
        wait_for(&mut health, Status::Serving).await;

        // Once shutting down, a consumer that recovers does not bring SERVING back.
        not_ready.send(1).unwrap();
        wait_for(&mut health, Status::NotServing).await;
        stop.send(()).unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        not_ready.send(0).unwrap();
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(status(&mut health).await, Status::NotServing as i32);
        server.await.unwrap().unwrap();
    }

    /// A service whose every call panics inside its handler.
    #[derive(Clone)]
    struct Panicky;

    impl tonic::server::NamedService for Panicky {
        const NAME: &'static str = "ocop.test.v1.Panicky";
    }

    impl tower::Service<http::Request<tonic::body::Body>> for Panicky {
        type Response = http::Response<tonic::body::Body>;
        type Error = std::convert::Infallible;
        type Future =
            std::pin::Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

        fn poll_ready(
            &mut self,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), Self::Error>> {
            std::task::Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: http::Request<tonic::body::Body>) -> Self::Future {
            Box::pin(async { panic!("a handler bug") })
        }
    }

    /// Serves `routes` with `reflection` on a free port until the test ends.
    async fn start(routes: Routes, names: Vec<&'static str>, reflection: bool) -> Channel {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let options = ServeOptions {
            service_names: names,
            verifier: TokenVerifier::from_secret(
                b"a-test-secret-a-test-secret-a-test!",
                "ocop-test",
            ),
            // Deny by default: the test's own routes are open.
            policy: |_| Some(Access::Anyone),
            shutdown: ShutdownConfig {
                drain_delay: Duration::ZERO,
                grace: Duration::from_secs(1),
            },
            reflection: ReflectionConfig {
                enabled: reflection,
            },
            not_ready: None,
        };
        tokio::spawn(serve(listener, routes, options, std::future::pending()));
        tonic::transport::Endpoint::from_shared(format!("http://{address}"))
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    use tonic::transport::Channel;

    #[tokio::test]
    async fn a_panicking_handler_answers_internal_and_the_server_keeps_serving() {
        let channel = start(Routes::new(Panicky), vec!["ocop.test.v1.Panicky"], true).await;
        let mut grpc = tonic::client::Grpc::new(channel.clone());
        grpc.ready().await.unwrap();
        let refused = grpc
            .unary::<(), (), _>(
                tonic::Request::new(()),
                http::uri::PathAndQuery::from_static("/ocop.test.v1.Panicky/Boom"),
                tonic_prost::ProstCodec::default(),
            )
            .await
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::Internal, "{refused:?}");
        assert_eq!(refused.message(), "internal error");

        // The same connection still serves other calls.
        let mut health = HealthClient::new(channel);
        assert_eq!(status(&mut health).await, Status::Serving as i32);
    }

    #[tokio::test]
    async fn reflection_v1alpha_lists_only_the_services_served() {
        let channel = start(
            Routes::new(Panicky),
            vec!["ocop.catalog.v1.CatalogService"],
            true,
        )
        .await;
        assert_eq!(
            ocop_testkit::stock_client::reflected_services(channel)
                .await
                .unwrap(),
            [
                "grpc.health.v1.Health",
                "grpc.reflection.v1.ServerReflection",
                "grpc.reflection.v1alpha.ServerReflection",
                "ocop.catalog.v1.CatalogService",
            ]
        );
    }

    #[tokio::test]
    async fn reflection_switched_off_is_unimplemented() {
        let channel = start(
            Routes::new(Panicky),
            vec!["ocop.catalog.v1.CatalogService"],
            false,
        )
        .await;
        let status = ocop_testkit::stock_client::reflected_services(channel)
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unimplemented, "{status:?}");
    }
}
