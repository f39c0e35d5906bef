//! Wiring: templates, channels, database, topics, listeners, and the tasks that run
//! until shutdown.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context as _;
use ocop_events::{
    Recovering,
    consumer::EventConsumer,
    outbox::{Relay, RelayConfig},
    retention::Pruner,
};
use ocop_grpc_kit::{
    auth::{self, TokenVerifier},
    background::Background,
    server::{Listeners, ServeOptions},
};
use ocop_proto::notification::v1::notification_service_server::{
    NotificationServiceServer, SERVICE_NAME,
};

use crate::{
    Config, channel,
    dispatch::{DispatchConfig, Dispatcher},
    domain::delivery::RetryPolicy,
    events, grpc,
    service::Notifications,
    templates::Templates,
};

/// The longest pause between two attempts of one notification.
const MAX_RETRY_BACKOFF: Duration = Duration::from_secs(3600);

/// A built notification service, listening but not yet serving.
pub struct App {
    config: Config,
    notifications: Notifications,
    dispatcher: Dispatcher,
    relay: Relay,
    consumers: Vec<EventConsumer>,
    /// Its consumers recreating their group member (health NOT_SERVING meanwhile).
    recovering: Recovering,
    listeners: Listeners,
}

impl App {
    /// Loads and checks the templates, builds the enabled channels, connects to the
    /// database (running migrations), creates topics when asked, subscribes, and binds
    /// the listeners (port 0 picks free ports; see [`App::grpc_addr`]).
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let templates = Templates::load(config.notification_templates_dir.as_deref())
            .context("load message templates")?;
        let channels = channel::from_config(&config).context("set up notification channels")?;
        let pool = config
            .database
            .connect("notification", &crate::MIGRATOR)
            .await?;
        if config.kafka.create_topics {
            ocop_events::topics::ensure_topics(&config.kafka, events::TOPICS).await?;
        }
        let relay = Relay::new(
            "notification",
            pool.clone(),
            &config.kafka,
            RelayConfig::default(),
        )?;
        let recovering = Recovering::default();
        let consumers = events::SUBSCRIPTIONS
            .iter()
            .map(|subscription| {
                let consumer = events::consumer_config(
                    subscription,
                    config.event_max_attempts,
                    config.event_retry_backoff,
                );
                Ok(EventConsumer::new(&config.kafka, pool.clone(), consumer)?
                    .reporting_to(&recovering))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let notifications = Notifications::new(pool.clone(), Arc::new(templates), channels.kinds());
        let dispatcher = Dispatcher::new(
            pool,
            channels,
            DispatchConfig {
                retry: RetryPolicy {
                    max_attempts: config.notification_max_attempts,
                    initial_backoff: config.notification_retry_backoff,
                    max_backoff: MAX_RETRY_BACKOFF,
                },
                interval: config.dispatch_interval,
                // A little over the channels' own limit, so their more precise error
                // usually wins; this only guards against a channel that hangs.
                send_timeout: config.notification_send_timeout + Duration::from_secs(1),
            },
        );
        let listeners = Listeners::bind(config.grpc_addr, config.http_addr).await?;
        Ok(Self {
            config,
            notifications,
            dispatcher,
            relay,
            consumers,
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

    /// The service's operations, for tests that look at its database.
    pub fn notifications(&self) -> Notifications {
        self.notifications.clone()
    }

    /// Serves until `shutdown` resolves: then reports NOT_SERVING, drains gRPC calls,
    /// stops consuming and dispatching, and lets the outbox relay finish its round.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let mut background = Background::new();
        background.spawn("outbox relay", self.relay.run(background.token()));
        background.spawn("dispatcher", self.dispatcher.run(background.token()));
        let handler = events::EventHandler::new(self.notifications.clone());
        for consumer in self.consumers {
            background.spawn(
                "event consumer",
                consumer.run(handler.clone(), background.intake()),
            );
        }
        background.spawn(
            "pool gauge",
            ocop_events::report_pool(
                "notification",
                self.notifications.pool().clone(),
                background.token(),
            ),
        );
        background.spawn(
            "retention",
            Pruner::new(
                "notification",
                self.notifications.pool().clone(),
                &self.config.retention,
            )
            .checking_topics(
                &self.config.kafka,
                &events::SUBSCRIPTIONS.map(|subscription| subscription.topic),
            )
            .run(background.token()),
        );
        background.serve_http(self.listeners.http, ocop_telemetry::metrics::router());

        let routes = tonic::service::Routes::new(NotificationServiceServer::new(
            grpc::NotificationApi::new(self.notifications.clone()),
        ));
        let options = ServeOptions {
            service_names: vec![SERVICE_NAME],
            verifier: TokenVerifier::new(&self.config.auth, auth::audience::NOTIFICATION),
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
