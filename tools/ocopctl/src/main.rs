//! `ocopctl`: operate an ocop-market platform from a terminal.

mod audit;
mod catalog;
mod dlq;
mod orders;
mod payments;
mod seed;
mod tail;

use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use ocop_grpc_kit::auth::{Grant, PARTNER_SCOPE, TokenIssuer, audience};

#[derive(Debug, Parser)]
#[command(name = "ocopctl", version, about = "Operate an ocop-market platform")]
struct Cli {
    /// Catalog service gRPC address.
    #[arg(
        long,
        global = true,
        env = "OCOP_CATALOG_ADDR",
        default_value = "http://127.0.0.1:50051"
    )]
    catalog: String,

    /// Order service gRPC address.
    #[arg(
        long,
        global = true,
        env = "OCOP_ORDER_ADDR",
        default_value = "http://127.0.0.1:50052"
    )]
    order: String,

    /// Payment service gRPC address.
    #[arg(
        long,
        global = true,
        env = "OCOP_PAYMENT_ADDR",
        default_value = "http://127.0.0.1:50053"
    )]
    payment_addr: String,

    /// Payment service HTTP base (pay pages, sandbox), as shoppers reach it.
    #[arg(
        long,
        global = true,
        env = "OCOP_PAYMENT_HTTP",
        default_value = "http://127.0.0.1:9103"
    )]
    payment_http: String,

    /// Bearer token for operator calls.
    #[arg(long, global = true, env = "OCOP_TOKEN", hide_env_values = true)]
    token: Option<String>,

    /// Token secret: when no --token is given, an operator token is minted with it
    /// (local stacks only).
    #[arg(
        long,
        global = true,
        env = "OCOP_AUTH_JWT_SECRET",
        hide_env_values = true
    )]
    jwt_secret: Option<String>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Load producers and products from a seed file (idempotent: re-running changes nothing).
    Seed(seed::SeedArgs),
    /// Browse the catalogue.
    #[command(subcommand)]
    Products(catalog::ProductsCommand),
    /// Place, follow and cancel orders.
    #[command(subcommand)]
    Order(orders::OrderCommand),
    /// An order's payment and refunds; operator refunds.
    #[command(subcommand)]
    Payment(payments::PaymentCommand),
    /// Print the events of a topic, decoded.
    Tail(tail::TailArgs),
    /// Check the books (read-only): orders, payments, refunds, the ledger and stock agree;
    /// fails when any invariant is broken.
    Audit(audit::AuditArgs),
    /// Dead letters: send a consumer group's dead-lettered records back to their topic.
    #[command(subcommand)]
    Dlq(dlq::DlqCommand),
    /// Mint a token for one or more services (needs the platform's secret; for local
    /// stacks and tests). A partner's token: `--scope partner --channel postmart`.
    Token {
        /// The services the token is for: catalog, order, payment, notification.
        #[arg(long = "service", required = true, value_enum)]
        services: Vec<Service>,
        /// Scopes to grant, e.g. catalog:write.
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
        /// A partner's sales channel (web, postmart, voso, other), with `--scope partner`.
        #[arg(long)]
        channel: Option<String>,
        #[arg(long, default_value = "ocopctl")]
        subject: String,
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        ttl: Duration,
    },
}

/// A service a token is minted for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Service {
    Catalog,
    Order,
    Payment,
    Notification,
}

impl Service {
    fn audience(self) -> &'static str {
        match self {
            Self::Catalog => audience::CATALOG,
            Self::Order => audience::ORDER,
            Self::Payment => audience::PAYMENT,
            Self::Notification => audience::NOTIFICATION,
        }
    }
}

impl Cli {
    /// The token for operator calls to `service`: the given one, or one minted from the
    /// secret for that service alone.
    fn operator_token(&self, service: Service, scopes: &[&str]) -> anyhow::Result<String> {
        if let Some(token) = &self.token {
            return Ok(token.clone());
        }
        let secret = self.jwt_secret.as_ref().context(
            "operator calls need --token (OCOP_TOKEN) or --jwt-secret (OCOP_AUTH_JWT_SECRET)",
        )?;
        Ok(TokenIssuer::from_secret(secret.as_bytes()).mint(&Grant {
            audiences: &[service.audience()],
            subject: "ocopctl",
            scopes,
            channel: None,
            ttl: Duration::from_secs(3600),
        }))
    }

    /// An operator token for the order service when a secret or token is at hand, so
    /// operator reads and cancellations need no order access token.
    fn order_operator_token(&self, scopes: &[&str]) -> Option<String> {
        self.operator_token(Service::Order, scopes).ok()
    }
}

/// `message` with `authorization: Bearer <token>`, for the operator calls.
fn authorized<T>(message: T, token: &str) -> anyhow::Result<tonic::Request<T>> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}")
            .parse()
            .context("token is not a valid header")?,
    );
    Ok(request)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match &cli.command {
        Command::Seed(args) => {
            let token = cli.operator_token(Service::Catalog, &["catalog:write"])?;
            seed::run(&cli.catalog, &token, args).await
        }
        Command::Products(command) => {
            catalog::run(&cli.catalog, command, || {
                cli.operator_token(Service::Catalog, &["catalog:write"])
            })
            .await
        }
        Command::Order(command) => {
            let operator = cli.order_operator_token(&["order:read", "order:write"]);
            orders::run(&cli.order, &cli.catalog, command, operator).await
        }
        Command::Payment(command) => {
            payments::run(&cli.payment_addr, &cli.payment_http, command, |scopes| {
                cli.operator_token(Service::Payment, scopes)
            })
            .await
        }
        Command::Tail(args) => tail::run(args).await,
        Command::Audit(args) => audit::run(args).await,
        Command::Dlq(command) => dlq::run(command).await,
        Command::Token {
            services,
            scopes,
            channel,
            subject,
            ttl,
        } => {
            let secret = cli
                .jwt_secret
                .as_ref()
                .context("--jwt-secret (OCOP_AUTH_JWT_SECRET) is required")?;
            let is_partner = scopes.iter().any(|scope| scope == PARTNER_SCOPE);
            anyhow::ensure!(
                is_partner == channel.is_some(),
                "a partner token needs both --scope {PARTNER_SCOPE} and --channel, other tokens neither"
            );
            let audiences: Vec<&str> = services.iter().map(|service| service.audience()).collect();
            let scopes: Vec<&str> = scopes.iter().map(String::as_str).collect();
            println!(
                "{}",
                TokenIssuer::from_secret(secret.as_bytes()).mint(&Grant {
                    audiences: &audiences,
                    subject,
                    scopes: &scopes,
                    channel: channel.as_deref(),
                    ttl: *ttl,
                })
            );
            Ok(())
        }
    }
}
