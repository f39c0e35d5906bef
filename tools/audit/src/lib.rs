//! The books of an ocop-market platform, read from the catalog's, the order service's and
//! the payment service's databases (read-only, one consistent read per database): every
//! order settles within its deadlines; a paid order has one succeeded payment for its
//! total and its units sold once; no money is kept for an order that did not go through;
//! refunds never exceed captures; the payment ledger balances; stock is never negative,
//! `reserved` is what held reservations hold, and `on_hand` is the initial stock plus
//! adjustments minus the units sold.
//!
//! `ocopctl audit` prints it; the load generator runs it after every run. Two rules are
//! the databases' own and need no audit: an event is applied once per consumer (the
//! inbox's primary key), and one notification is sent per event and channel (a unique
//! key of `notifications`).

use std::{str::FromStr as _, time::Duration};

use anyhow::Context as _;
use serde::Serialize;
use sqlx::{
    PgPool,
    postgres::{PgConnectOptions, PgPoolOptions},
};

mod books;
mod checks;

/// The services' databases, each opened read-only.
#[derive(Debug, Clone)]
pub struct Databases {
    pub catalog: PgPool,
    pub order: PgPool,
    pub payment: PgPool,
}

impl Databases {
    /// Connects to each database by its URL.
    pub async fn connect(catalog: &str, order: &str, payment: &str) -> anyhow::Result<Self> {
        Ok(Self {
            catalog: read_only("catalog", parse("catalog", catalog)?).await?,
            order: read_only("order", parse("order", order)?).await?,
            payment: read_only("payment", parse("payment", payment)?).await?,
        })
    }

    /// The databases of a server where each service's is named after it, as `make run`
    /// and `make bench` create them: `server` is a URL of any database on it.
    pub async fn on_server(server: &str) -> anyhow::Result<Self> {
        let base = parse("server", server)?;
        Ok(Self {
            catalog: read_only("catalog", base.clone().database("catalog")).await?,
            order: read_only("order", base.clone().database("order")).await?,
            payment: read_only("payment", base.database("payment")).await?,
        })
    }
}

fn parse(what: &str, url: &str) -> anyhow::Result<PgConnectOptions> {
    PgConnectOptions::from_str(url)
        .with_context(|| format!("the {what} database URL is not a PostgreSQL URL"))
}

async fn read_only(service: &str, options: PgConnectOptions) -> anyhow::Result<PgPool> {
    let options = options
        .application_name("ocop-audit")
        .options([("default_transaction_read_only", "on")]);
    PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await
        .with_context(|| format!("connect to the {service} database"))
}

/// How long a saga may take: the audit reads a running platform database by database,
/// so an order or payment that changed this recently may still be on its way (its
/// events in flight) and is left out of the cross-database comparisons.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// An order may wait this long for its stock to be reserved (`PENDING`).
    pub pending_grace: Duration,
    /// An order may stay `AWAITING_PAYMENT` this long past its payment deadline, and a
    /// change may take this long to reach every service.
    pub settle_grace: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            pending_grace: Duration::from_secs(120),
            settle_grace: Duration::from_secs(60),
        }
    }
}

/// One invariant: how many things it looked at, how many broke it, and the first of
/// them (ids and what is wrong).
#[derive(Debug, Clone, Serialize)]
pub struct Invariant {
    pub name: &'static str,
    pub checked: usize,
    pub violations: usize,
    pub first: Vec<String>,
}

/// Offending items kept per invariant.
const FIRST: usize = 10;

impl Invariant {
    fn new(name: &'static str) -> Self {
        Self {
            name,
            checked: 0,
            violations: 0,
            first: Vec::new(),
        }
    }

    fn check(&mut self, holds: bool, offence: impl FnOnce() -> String) {
        self.checked += 1;
        if !holds {
            self.violate(offence());
        }
    }

    fn violate(&mut self, offence: String) {
        self.violations += 1;
        if self.first.len() < FIRST {
            self.first.push(offence);
        }
    }
}

/// Every invariant's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Audit {
    pub invariants: Vec<Invariant>,
}

impl Audit {
    pub fn passed(&self) -> bool {
        self.broken().next().is_none()
    }

    pub fn broken(&self) -> impl Iterator<Item = &Invariant> {
        self.invariants
            .iter()
            .filter(|invariant| invariant.violations > 0)
    }
}

/// Reads the books and checks every invariant.
pub async fn run(databases: &Databases, settings: Settings) -> anyhow::Result<Audit> {
    let books = books::read(databases, settings.settle_grace).await?;
    let invariants = vec![
        checks::orders_settle(databases, settings).await?,
        checks::paid_orders_have_their_payment(&books),
        checks::no_money_kept_without_an_order(&books),
        checks::refunds_within_captures(&books),
        checks::ledger_balances(databases).await?,
        checks::stock_is_held_by_reservations(&books),
        checks::stock_moves_are_accounted_for(&books),
        checks::paid_orders_sell_their_units_once(&books),
    ];
    Ok(Audit { invariants })
}
