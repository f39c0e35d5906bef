//! Wiring: database, topics, listeners, and the tasks that run until shutdown.

use std::{future::Future, net::SocketAddr, time::Duration};

use ocop_events::{
    Recovering,
    consumer::{ConsumerConfig, EventConsumer},
    outbox::{Relay, RelayConfig},
    retention::Pruner,
};
use ocop_grpc_kit::{
    auth::{self, TokenVerifier},
    background::Background,
    server::{Listeners, ServeOptions},
};
use ocop_proto::{
    catalog::v1::catalog_service_server::{CatalogServiceServer, SERVICE_NAME},
    contract::{consumer_groups, topics},
};
use tokio_util::sync::CancellationToken;

use crate::{Config, error::CatalogError, events, grpc, service::Catalog};

/// Products whose snapshots one transaction publishes.
const SNAPSHOT_ROUND: i64 = 200;

/// A built catalog service, listening but not yet serving.
pub struct App {
    config: Config,
    catalog: Catalog,
    relay: Relay,
    consumer: EventConsumer,
    /// Its consumer recreating its group member (health NOT_SERVING meanwhile).
    recovering: Recovering,
    listeners: Listeners,
}

impl App {
    /// Connects to the database (running migrations), creates topics when asked, and
    /// binds the listeners (port 0 picks free ports; see [`App::grpc_addr`]).
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let pool = config.database.connect("catalog", &crate::MIGRATOR).await?;
        if config.kafka.create_topics {
            ocop_events::topics::ensure_topics(&config.kafka, events::TOPICS).await?;
        }
        let relay = Relay::new(
            "catalog",
            pool.clone(),
            &config.kafka,
            RelayConfig::default(),
        )?;
        let recovering = Recovering::default();
        let consumer = EventConsumer::new(
            &config.kafka,
            pool.clone(),
            ConsumerConfig::new(
                consumer_groups::CATALOG_ORDERS.name,
                consumer_groups::CATALOG_ORDERS.dead_letters.name,
                &[topics::ORDERS.name],
            ),
        )?
        .reporting_to(&recovering);
        let listeners = Listeners::bind(config.grpc_addr, config.http_addr).await?;
        Ok(Self {
            catalog: Catalog::new(pool, config.reservation_ttl),
            config,
            relay,
            consumer,
            recovering,
            listeners,
        })
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        self.listeners.grpc_addr()
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.listeners.http_addr()
    }

    /// The catalog's operations, for tests that drive reservations directly.
    pub fn catalog(&self) -> Catalog {
        self.catalog.clone()
    }

    /// Serves until `shutdown` resolves: then reports NOT_SERVING, drains gRPC calls,
    /// stops the background tasks and lets the outbox relay finish its round.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let mut background = Background::new();
        background.spawn("outbox relay", self.relay.run(background.token()));
        background.spawn(
            "order consumer",
            self.consumer.run(
                events::OrderEventsHandler {
                    catalog: self.catalog.clone(),
                },
                background.intake(),
            ),
        );
        background.spawn(
            "reservation sweeper",
            repeat(
                "reservation sweep",
                self.config.reservation_sweep_interval,
                background.token(),
                self.catalog.clone(),
                |catalog| async move { catalog.expire_due().await },
            ),
        );
        background.spawn(
            "snapshot publisher",
            repeat(
                "snapshot publishing",
                self.config.snapshot_interval,
                background.token(),
                self.catalog.clone(),
                |catalog| async move { catalog.publish_due_snapshots(SNAPSHOT_ROUND).await },
            ),
        );
        background.spawn(
            "pool gauge",
            ocop_events::report_pool("catalog", self.catalog.pool().clone(), background.token()),
        );
        background.spawn(
            "retention",
            Pruner::new(
                "catalog",
                self.catalog.pool().clone(),
                &self.config.retention,
            )
            .checking_topics(&self.config.kafka, &[topics::ORDERS.name])
            .run(background.token()),
        );
        background.serve_http(self.listeners.http, ocop_telemetry::metrics::router());

        let routes = tonic::service::Routes::new(CatalogServiceServer::new(grpc::CatalogApi::new(
            self.catalog.clone(),
        )));
        let options = ServeOptions {
            service_names: vec![SERVICE_NAME],
            verifier: TokenVerifier::new(&self.config.auth, auth::audience::CATALOG),
            policy: grpc::policy,
            shutdown: self.config.shutdown,
            reflection: self.config.reflection,
            not_ready: Some(self.recovering.subscribe()),
        };
        background
            .serve_grpc(self.listeners.grpc, routes, options, shutdown)
            .await
    }
}

/// Runs `round` every `interval` until `stop`; a failed round is logged and the next
/// tick tries again (what it had not done is still in the database).
async fn repeat<Round, Done>(
    what: &'static str,
    every: Duration,
    stop: CancellationToken,
    catalog: Catalog,
    round: Round,
) where
    Round: Fn(Catalog) -> Done,
    Done: Future<Output = Result<usize, CatalogError>>,
{
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.cancelled() => return,
        }
        if let Err(err) = round(catalog.clone()).await {
            tracing::warn!(error = %err, "{what} failed; will retry");
        }
    }
}
