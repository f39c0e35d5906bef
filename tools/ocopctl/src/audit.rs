//! `ocopctl audit`: checks the platform's books (read-only) and prints each invariant
//! with its count and the first offending ids; fails when any is broken.

use std::time::Duration;

use anyhow::bail;
use clap::Args;
use ocop_audit::{Audit, Databases, Settings};
use ocop_events::KafkaConfig;

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// A URL of the PostgreSQL server whose `catalog`, `order` and `payment` databases
    /// hold the services' data (as `make run` creates them).
    #[arg(long, env = "OCOP_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// The catalog's database, when it is not `catalog` on --database-url's server.
    #[arg(long, env = "OCOP_CATALOG_DATABASE_URL", hide_env_values = true)]
    catalog_database_url: Option<String>,
    /// The order service's database.
    #[arg(long, env = "OCOP_ORDER_DATABASE_URL", hide_env_values = true)]
    order_database_url: Option<String>,
    /// The payment service's database.
    #[arg(long, env = "OCOP_PAYMENT_DATABASE_URL", hide_env_values = true)]
    payment_database_url: Option<String>,
    /// How long an order may stay PENDING (waiting for its stock) before it counts as stuck.
    #[arg(long, default_value = "2m", value_parser = humantime::parse_duration)]
    pending_grace: Duration,
    /// How long past its payment deadline an order may await payment, and how recent a
    /// change is still on its way (left out of the comparisons between databases).
    #[arg(long, default_value = "1m", value_parser = humantime::parse_duration)]
    settle_grace: Duration,
    /// Also list every dead letter with its reason (read from the broker's `*.dlq`
    /// topics; they do not fail the audit: each is an event whose effect did not happen,
    /// for an operator to look at).
    #[arg(long)]
    dead_letters: bool,
    #[command(flatten)]
    kafka: KafkaConfig,
}

pub async fn run(args: &AuditArgs) -> anyhow::Result<()> {
    let databases = match (
        &args.catalog_database_url,
        &args.order_database_url,
        &args.payment_database_url,
        &args.database_url,
    ) {
        (Some(catalog), Some(order), Some(payment), _) => {
            Databases::connect(catalog, order, payment).await?
        }
        (None, None, None, Some(server)) => Databases::on_server(server).await?,
        _ => bail!(
            "name the databases: --database-url (OCOP_DATABASE_URL) for a server with \
             `catalog`, `order` and `payment` databases, or all three of \
             --catalog-database-url, --order-database-url and --payment-database-url"
        ),
    };
    let settings = Settings {
        pending_grace: args.pending_grace,
        settle_grace: args.settle_grace,
    };
    let audit = ocop_audit::run(&databases, settings).await?;
    print!("{}", render(&audit));
    if args.dead_letters {
        print!(
            "{}",
            crate::dlq::render(&crate::dlq::dead_letters(&args.kafka, None).await?)
        );
    }
    let broken = audit.broken().count();
    if broken > 0 {
        bail!("{broken} of {} invariants broken", audit.invariants.len());
    }
    Ok(())
}

/// One line per invariant (verdict, checked, violations, name), then the first
/// offences of each broken one.
fn render(audit: &Audit) -> String {
    let mut text = String::new();
    for invariant in &audit.invariants {
        let verdict = if invariant.violations == 0 {
            "ok  "
        } else {
            "FAIL"
        };
        text.push_str(&format!(
            "{verdict} {:>8} checked {:>6} broken  {}\n",
            invariant.checked, invariant.violations, invariant.name
        ));
    }
    for invariant in audit.broken() {
        text.push_str(&format!("\n{}:\n", invariant.name));
        for offence in &invariant.first {
            text.push_str(&format!("  - {offence}\n"));
        }
        if invariant.violations > invariant.first.len() {
            text.push_str(&format!(
                "  … and {} more\n",
                invariant.violations - invariant.first.len()
            ));
        }
    }
    text
}
