//! Wiring: database, topics, the catalog client, listeners, and the tasks that run
//! until shutdown.

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
    client::traced_channel,
    server::{Listeners, ServeOptions},
};
use ocop_proto::{
    catalog::v1::catalog_service_client::CatalogServiceClient,
    contract::consumer_groups,
    order::v1::{
        order_service_server::{self, OrderServiceServer},
        partner_service_server::{self, PartnerServiceServer},
    },
};

use crate::{Config, events, grpc, limits::HoldLimits, service::Orders};

/// A built order service, listening but not yet serving.
pub struct App {
    config: Config,
    orders: Orders,
    relay: Relay,
    consumer: EventConsumer,
    /// Its consumer recreating its group member (health NOT_SERVING meanwhile).
    recovering: Recovering,
    listeners: Listeners,
}

impl App {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let pool = config.database.connect("order", &crate::MIGRATOR).await?;
        if config.kafka.create_topics {
            ocop_events::topics::ensure_topics(&config.kafka, events::TOPICS).await?;
        }
        let catalog =
            CatalogServiceClient::new(traced_channel(&config.catalog_url, Duration::from_secs(2))?);
        let orders = Orders::new(
            pool.clone(),
            catalog,
            config.quote_timeout,
            config.payment_ttl,
        )
        .with_limits(HoldLimits::from(&config.limits));
        let relay = Relay::new("order", pool.clone(), &config.kafka, RelayConfig::default())?;
        let recovering = Recovering::default();
        let consumer = EventConsumer::new(
            &config.kafka,
            pool,
            ConsumerConfig::new(
                consumer_groups::ORDER_SAGA.name,
                consumer_groups::ORDER_SAGA.dead_letters.name,
                &events::CONSUMED_TOPICS,
            ),
        )?
        .reporting_to(&recovering);
        let listeners = Listeners::bind(config.grpc_addr, config.http_addr).await?;
        Ok(Self {
            config,
            orders,
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

    /// Serves until `shutdown` resolves: NOT_SERVING, drain gRPC, stop consuming, let
    /// the relay finish its round.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let mut background = Background::new();
        background.spawn("outbox relay", self.relay.run(background.token()));
        background.spawn(
            "saga consumer",
            self.consumer.run(
                events::SagaHandler {
                    orders: self.orders.clone(),
                },
                background.intake(),
            ),
        );
        background.spawn(
            "status gauge",
            report_statuses(
                self.orders.clone(),
                self.config.pending_overdue_after,
                background.token(),
            ),
        );
        background.spawn(
            "pool gauge",
            ocop_events::report_pool("order", self.orders.pool().clone(), background.token()),
        );
        background.spawn(
            "retention",
            Pruner::new("order", self.orders.pool().clone(), &self.config.retention)
                .checking_topics(&self.config.kafka, &events::CONSUMED_TOPICS)
                .run(background.token()),
        );
        background.serve_http(self.listeners.http, ocop_telemetry::metrics::router());

        let routes = tonic::service::Routes::new(OrderServiceServer::new(
            grpc::OrderApi::new(self.orders.clone(), self.config.payment_methods.clone())
                .with_rate_limit(
                    self.config.limits.place_order_limiter(),
                    self.config.limits.proxies.clone(),
                ),
        ))
        .add_service(PartnerServiceServer::new(grpc::PartnerApi::new(
            self.orders.clone(),
        )));
        let options = ServeOptions {
            service_names: vec![
                order_service_server::SERVICE_NAME,
                partner_service_server::SERVICE_NAME,
            ],
            verifier: TokenVerifier::new(&self.config.auth, auth::audience::ORDER),
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

/// Refreshes the orders-by-status gauge every few seconds.
async fn report_statuses(
    orders: Orders,
    pending_overdue_after: Duration,
    stop: tokio_util::sync::CancellationToken,
) {
    loop {
        if let Err(err) = orders.report_statuses(pending_overdue_after).await {
            tracing::warn!(error = %err, "could not count orders by status");
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            _ = stop.cancelled() => return,
        }
    }
}
