//! Wiring: database, topics, listeners, and the tasks that run until shutdown.

use std::{
    future::Future,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    time::Duration,
};

use ocop_events::{
    Recovering,
    consumer::{ConsumerConfig, EventConsumer},
    outbox::{Relay, RelayConfig},
    retention::{Pruner, Rule},
};
use ocop_grpc_kit::{
    auth::{self, TokenVerifier},
    background::Background,
    rate_limit::RateLimiter,
    server::{Listeners, ServeOptions},
};
use ocop_proto::{
    contract::{consumer_groups, topics},
    payment::v1::payment_service_server::{PaymentServiceServer, SERVICE_NAME},
};
use tokio_util::sync::CancellationToken;

use crate::{
    Config,
    callbacks::{CallbackLimits, CallbackReceiver},
    events::{self, OrderEvents},
    grpc,
    providers::{Providers, vnpay::VnPayAdapter},
    sandbox::{self, Gateway, GatewayConfig},
    service::Payments,
};

/// How long a refund may stay pending (its provider call interrupted) before it is
/// asked again.
const REFUND_RETRY_AFTER: Duration = Duration::from_secs(30);

/// A built payment service, listening but not yet serving.
pub struct App {
    config: Config,
    payments: Payments,
    providers: Providers,
    vnpay: Option<VnPayAdapter>,
    sandbox_bank: bool,
    gateway: Gateway,
    relay: Relay,
    consumer: EventConsumer,
    /// Its consumer recreating its group member (health NOT_SERVING meanwhile).
    recovering: Recovering,
    listeners: Listeners,
}

impl App {
    /// Connects to the database (running migrations), creates topics when asked, joins
    /// the order-events consumer group, and binds the listeners (port 0 picks free
    /// ports; see [`App::grpc_addr`]).
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let pool = config.database.connect("payment", &crate::MIGRATOR).await?;
        if config.kafka.create_topics {
            ocop_events::topics::ensure_topics(&config.kafka, events::TOPICS).await?;
        }
        let relay = Relay::new(
            "payment",
            pool.clone(),
            &config.kafka,
            RelayConfig::default(),
        )?;
        let recovering = Recovering::default();
        let consumer = EventConsumer::new(
            &config.kafka,
            pool.clone(),
            ConsumerConfig::new(
                consumer_groups::PAYMENT_ORDERS.name,
                consumer_groups::PAYMENT_ORDERS.dead_letters.name,
                &[topics::ORDERS.name],
            ),
        )?
        .reporting_to(&recovering);
        let listeners = Listeners::bind(config.grpc_addr, config.http_addr).await?;
        let public_url = match &config.public_url {
            Some(url) => url.clone(),
            None => local_url(listeners.http_addr()),
        };
        let settings = config
            .providers
            .settings(&public_url, config.sandbox_secret.clone())?;
        let providers = Providers::new(&settings, config.sandbox_gateway, &config.payment_methods)?;
        tracing::info!(
            providers = ?providers.configured().iter().map(|p| p.as_str()).collect::<Vec<_>>(),
            "payment providers configured"
        );
        check_payment_methods(&providers)?;
        crate::service::register_metrics(&providers.configured());
        let vnpay = settings.vnpay.clone().map(|vnpay| {
            VnPayAdapter::new(
                vnpay,
                &settings,
                crate::providers::http_client().expect("the same client built above"),
            )
        });
        let gateway_config = GatewayConfig {
            key: config.sandbox_secret.clone(),
            delay: config.sandbox_delay,
            outcome: config.sandbox_outcome,
            providers: settings,
        };
        let sandbox_bank = config.sandbox_gateway
            && gateway_config
                .played()
                .contains(&crate::domain::intent::Provider::VietQr);
        let gateway = Gateway::new(pool.clone(), gateway_config)?;
        Ok(Self {
            payments: Payments::new(pool, &public_url, providers.clone()),
            providers,
            vnpay,
            sandbox_bank,
            gateway,
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

    /// The payment operations, for tests that inspect the database.
    pub fn payments(&self) -> Payments {
        self.payments.clone()
    }

    /// Serves until `shutdown` resolves: then reports NOT_SERVING, drains gRPC calls,
    /// stops consuming and the background tasks, and lets the outbox relay finish its
    /// round.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let mut background = Background::new();
        background.spawn("outbox relay", self.relay.run(background.token()));
        background.spawn(
            "order consumer",
            self.consumer
                .run(OrderEvents::new(self.payments.clone()), background.intake()),
        );
        background.spawn(
            "expiry sweeper",
            sweep_expired(
                self.payments.clone(),
                self.config.expiry_sweep_interval,
                background.token(),
            ),
        );
        if self.config.sandbox_gateway {
            background.spawn(
                "sandbox gateway",
                self.gateway.clone().run(background.token()),
            );
        } else {
            tracing::info!("sandbox gateway off");
        }

        background.spawn(
            "refund retrier",
            retry_refunds(self.payments.clone(), background.token()),
        );

        let receiver = CallbackReceiver::new(
            self.payments.clone(),
            self.providers.clone(),
            self.config.callback_tolerance,
        );
        background.spawn(
            "provider queries",
            query_providers(
                receiver.clone(),
                self.config.provider_query_after,
                self.config.provider_query_interval,
                background.token(),
            ),
        );
        let mut router = ocop_telemetry::metrics::router()
            .merge(crate::callbacks::routes(
                receiver,
                CallbackLimits {
                    max_body_bytes: self.config.callback_max_body,
                    per_address: RateLimiter::new(
                        "callbacks",
                        self.config.callback_rate,
                        self.config.callback_burst,
                    ),
                    proxies: self.config.proxies.clone(),
                },
            ))
            .merge(crate::checkout::routes(
                self.payments.clone(),
                self.vnpay.clone(),
                self.sandbox_bank,
            ));
        if self.config.sandbox_gateway {
            router = router.merge(sandbox::routes(self.gateway.clone()));
        }
        background.spawn(
            "pool gauge",
            ocop_events::report_pool("payment", self.payments.pool().clone(), background.token()),
        );
        background.spawn(
            "retention",
            Pruner::new(
                "payment",
                self.payments.pool().clone(),
                &self.config.retention,
            )
            .checking_topics(&self.config.kafka, &[topics::ORDERS.name])
            .with_rule(Rule {
                table: "provider_callbacks",
                age_column: "received_at",
                prunable: "NOT flagged",
                retention: self.config.callback_retention,
            })
            .run(background.token()),
        );
        background.serve_http(self.listeners.http, router);

        let routes = tonic::service::Routes::new(PaymentServiceServer::new(grpc::PaymentApi::new(
            self.payments.clone(),
        )));
        let options = ServeOptions {
            service_names: vec![SERVICE_NAME],
            verifier: TokenVerifier::new(&self.config.auth, auth::audience::PAYMENT),
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

/// The URL of a bound HTTP address as seen from this host: a wildcard address becomes
/// loopback of the same family.
fn local_url(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, addr.port()))
}

async fn query_providers(
    receiver: CallbackReceiver,
    after: Duration,
    every: Duration,
    stop: CancellationToken,
) {
    let pause = (every / 4).clamp(Duration::from_millis(200), Duration::from_secs(15));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stop.cancelled() => return,
        }
        if let Err(err) = receiver.reconcile(after, every).await {
            tracing::warn!(error = %err, "provider queries failed; will retry");
        }
    }
}

async fn retry_refunds(payments: Payments, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(REFUND_RETRY_AFTER / 3) => {}
            _ = stop.cancelled() => return,
        }
        if let Err(err) = payments.retry_pending_refunds(REFUND_RETRY_AFTER).await {
            tracing::warn!(error = %err, "refund retry failed; will retry");
        }
    }
}

async fn sweep_expired(payments: Payments, every: Duration, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.cancelled() => return,
        }
        if let Err(err) = payments.expire_due().await {
            tracing::warn!(error = %err, "expiry sweep failed; will retry");
        }
    }
}

/// Refuses to start when `PAYMENT_METHODS` offers a method this service cannot take (its
/// provider without credentials, or `sandbox` with the gateway off): with the order
/// service offering the same list, a method nobody can take is never accepted.
fn check_payment_methods(providers: &Providers) -> anyhow::Result<()> {
    let missing: Vec<String> = providers
        .offered()
        .filter(|(_, available)| !available)
        .map(|(method, _)| {
            format!(
                "{} (needs {})",
                method.as_str(),
                crate::config::needed_settings(method)
            )
        })
        .collect();
    anyhow::ensure!(
        missing.is_empty(),
        "PAYMENT_METHODS offers what this service cannot take: {}; set what they need, or \
         remove them from PAYMENT_METHODS here and in the order service",
        missing.join("; ")
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::local_url;

    #[test]
    fn wildcard_listen_address_becomes_loopback() {
        assert_eq!(
            local_url("0.0.0.0:9103".parse().unwrap()),
            "http://127.0.0.1:9103"
        );
        assert_eq!(local_url("[::]:9103".parse().unwrap()), "http://[::1]:9103");
        assert_eq!(
            local_url("10.1.2.3:9103".parse().unwrap()),
            "http://10.1.2.3:9103"
        );
    }
}
