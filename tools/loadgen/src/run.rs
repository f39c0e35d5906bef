//! One run from start to report: connect, follow the topics from their end, place the
//! load in the chosen shape, drain, take the platform's counters, check the books.

use std::{
    io::{IsTerminal as _, Write as _},
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use anyhow::Context as _;
use ocop_proto::catalog::v1::catalog_service_client::CatalogServiceClient;
use ocop_proto::contract::topics;
use rand::{SeedableRng as _, rngs::StdRng};
use tokio::sync::mpsc;

use crate::{
    broker::Broker,
    catalogue,
    check::{self, CheckReport},
    cli::{Cli, Mode},
    drive::{Driver, Stopped},
    follow,
    mix::ProductPicker,
    probe::{Databases, Probe},
    report::{self, Report, RunReport, StepReport},
    shop::Shop,
    tracker::{Phase, PhaseId, Tracker},
};

/// How long the half-rate run and a `--no-check` run wait for their orders to settle
/// before their counters are read.
const SETTLE: Duration = Duration::from_secs(30);
/// How long the platform may take to finish its work after the last order settled.
const QUIESCE: Duration = Duration::from_secs(30);

/// Runs the load and prints the report; returns whether the check passed (or was
/// skipped).
pub async fn run(cli: Cli) -> anyhow::Result<bool> {
    let mode = cli.mode();
    let mix = cli.mix();
    mix.validate().map_err(anyhow::Error::msg)?;
    anyhow::ensure!(
        cli.zipf >= 0.0 && cli.zipf.is_finite(),
        "--zipf must be zero or more"
    );
    let seed = cli.seed.unwrap_or_else(rand::random);
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    let key_prefix = format!("lg-{}-", &run_id[..16]);
    let mut notes = Vec::new();
    if cli.sandbox_pays && (cli.decline_share > 0.0 || cli.abandon_share > 0.0) {
        notes.push(
            "--sandbox-pays: the sandbox settles every payment, so no shopper declines or \
             abandons"
                .to_owned(),
        );
    }

    // The catalogue.
    let catalog_channel = crate::shop::channel(&cli.catalog, cli.timeout)
        .await
        .context("the catalog service")?;
    let mut catalog = CatalogServiceClient::new(catalog_channel);
    let mut products = catalogue::list(&mut catalog).await?;
    anyhow::ensure!(
        !products.is_empty(),
        "the catalogue has no active product: seed it first (ocopctl seed)"
    );

    // The databases: required for the check, optional for the figures.
    let databases = match Databases::connect(&cli.database_url).await {
        Ok(databases) => Some(Arc::new(databases)),
        Err(err) if cli.no_check => {
            notes.push(format!(
                "no database figures: {err:#} (the check is off anyway)"
            ));
            None
        }
        Err(err) => {
            return Err(err.context(
                "the check reads the services' databases (--database-url; --no-check to run \
                 without)",
            ));
        }
    };
    if databases.as_ref().is_some_and(|d| !d.has_statements()) {
        notes.push("pg_stat_statements is not installed: statements are n/a".into());
    }

    let mut restocked = 0;
    if cli.restock > 0 {
        match catalogue::operator_token(cli.token.as_deref(), cli.jwt_secret.as_deref()) {
            Some(token) => {
                restocked = catalogue::restock(&catalog, &token, &mut products, cli.restock)
                    .await
                    .context("top up the stock (--restock 0 leaves it alone)")?;
            }
            None => notes.push(
                "stock not topped up (no --token or OCOP_AUTH_JWT_SECRET): hot products may \
                 sell out and cancel orders as out of stock"
                    .into(),
            ),
        }
    }

    // Follow the saga from the end of its topics, before the first order.
    let broker = Arc::new(Broker::connect(&cli.kafka)?);
    let tracker = Arc::new(Tracker::new(!cli.sandbox_pays));
    let (actions, to_do) = mpsc::unbounded_channel();
    let follower = Arc::new(
        follow::start(
            &cli.kafka,
            Arc::clone(&broker),
            &run_id,
            Arc::clone(&tracker),
            actions.clone(),
        )
        .await?,
    );
    let products = Arc::new(products);
    let shop = Arc::new(
        Shop::connect(
            &cli.order,
            cli.connections,
            cli.sandbox_base(),
            cli.timeout,
            Arc::clone(&tracker),
            Arc::clone(&products),
            key_prefix.clone(),
            actions,
        )
        .await?,
    );
    let executor = shop.serve_actions(to_do);
    let picker = ProductPicker::zipf(products.len(), cli.zipf, &mut StdRng::seed_from_u64(seed));
    let driver = Driver::new(Arc::clone(&shop), Arc::clone(&tracker), mix, picker, seed);
    let probe = Arc::new(Probe::new(
        cli.pids.clone(),
        databases.clone(),
        Arc::clone(&broker),
    ));
    if restocked > 0 {
        // Let the top-up's own events and commits land before the baseline.
        if let Some(databases) = &databases {
            quiet_outboxes(databases, Duration::from_secs(30)).await;
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    eprintln!(
        "ocop-loadgen: {} products{}, following {} and {} from their end; run {}, seed {seed}",
        products.len(),
        if restocked > 0 {
            format!(" ({restocked} topped up to {})", cli.restock)
        } else {
            String::new()
        },
        broker.topic(topics::ORDERS.name),
        broker.topic(topics::PAYMENTS.name),
        key_prefix.trim_end_matches('-'),
    );

    let sampler = tokio::spawn(sample_every_second(
        Arc::clone(&probe),
        Arc::clone(&tracker),
        !cli.quiet,
    ));
    let lag_watch =
        tokio::spawn(Arc::clone(&probe).watch_lag(Arc::clone(&follower), Arc::clone(&tracker)));
    let start = probe.snapshot().await;
    let first = tracker.begin_phase("run", None);

    let mut report = Report {
        mode: mode.name(),
        seed,
        run: empty_run(),
        p99_bound_ms: None,
        max_sustainable_rate: None,
        steps: Vec::new(),
        at_half: None,
        check_passed: None,
        check: None,
        notes,
    };
    let concurrency = match &mode {
        Mode::Open { rate, duration } => {
            tracker.set_target(first, Some(*rate));
            driver.open_loop(first, *rate, *duration, None).await;
            None
        }
        Mode::Closed {
            concurrency,
            duration,
        } => {
            driver.closed_loop(first, *concurrency, *duration).await;
            Some(*concurrency)
        }
        Mode::FindMax {
            start_rate,
            step_factor,
            step_duration,
            max_rate,
            p99_bound,
            then_half,
        } => {
            report.p99_bound_ms = Some(p99_bound.as_secs_f64() * 1000.0);
            let ramp = Ramp {
                start_rate: *start_rate,
                step_factor: *step_factor,
                step_duration: *step_duration,
                max_rate: *max_rate,
                p99_bound: *p99_bound,
            };
            let (best, steps) = ramp.run(&driver, &tracker, &probe).await;
            report.max_sustainable_rate = Some(best.unwrap_or(0.0));
            report.steps = steps;
            if let Some(duration) = then_half {
                match best {
                    Some(best) => {
                        let half =
                            tracker.begin_phase("at half the sustainable rate", Some(best / 2.0));
                        let before = probe.snapshot().await;
                        driver.open_loop(half, best / 2.0, *duration, None).await;
                        settle(&tracker, half, SETTLE).await;
                        let after = probe.snapshot().await;
                        let figures = tracker.phase(half);
                        let (load, active) = durations(&figures);
                        report.at_half = Some(RunReport::build(
                            &figures,
                            &figures.e2e,
                            &probe.costs(&before, &after),
                            load,
                            active,
                            None,
                        ));
                    }
                    None => report
                        .notes
                        .push("no sustainable rate: the half-rate run was skipped".into()),
                }
            }
            None
        }
    };

    // Every order to a terminal state (or as far as the bound allows).
    let drain = tracker.begin_phase("drain", None);
    if cli.no_check {
        settle(&tracker, first, SETTLE).await;
    } else {
        let open = drain_all(
            &tracker,
            databases.as_deref(),
            &key_prefix,
            cli.drain_timeout,
        )
        .await;
        if open.orders > 0 {
            report.notes.push(format!(
                "{} order(s) not terminal after --drain-timeout {:?} ({} of them waiting for \
                 their payment deadline)",
                open.orders, cli.drain_timeout, open.awaiting_deadline
            ));
        }
    }
    // The services consume the last events after we saw them: let them finish (the
    // check reads their state, the counters their work).
    if !quiesce(&probe, QUIESCE).await {
        report.notes.push(format!(
            "the platform was still busy {QUIESCE:?} after the drain (outbox rows unpublished \
             or consumers behind)"
        ));
    }
    tracker.end_load(drain);
    // pg_stat_* are flushed by each backend at most once a second.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let end = probe.snapshot().await;
    sampler.abort();
    lag_watch.abort();
    if !cli.quiet && std::io::stderr().is_terminal() {
        eprintln!(); // end the live progress line
    }
    follower.stop();
    executor.abort();

    let phases: Vec<Phase> = tracker.phases(first..=drain);
    let all = Phase::merged("run", &phases);
    let (load, active) = phases
        .iter()
        .map(durations)
        .fold((Duration::ZERO, Duration::ZERO), |(l, a), (pl, pa)| {
            (l + pl, a + pa)
        });
    report.run = RunReport::build(
        &all,
        &all.e2e,
        &probe.costs(&start, &end),
        load,
        active,
        concurrency,
    );
    report.run.target_rate = match &mode {
        Mode::Open { rate, .. } => Some(*rate),
        _ => None,
    };

    if report
        .run
        .other_errors
        .keys()
        .any(|error| error.starts_with("sandbox ") && error.contains("already settled"))
    {
        report.notes.push(
            "the sandbox refused settlements as already settled: does it pay by itself? \
             (use --sandbox-pays, or start the payment service with SANDBOX_OUTCOME=never)"
                .into(),
        );
    }
    if !cli.no_check
        && let Some(databases) = &databases
    {
        let check: CheckReport = check::run(
            databases,
            &tracker.orders(),
            shop.key_prefix(),
            tracker.problems(),
        )
        .await?;
        report.check_passed = Some(check.passed);
        report.check = Some(check);
    }

    let mut stdout = std::io::stdout().lock();
    if cli.json {
        serde_json::to_writer_pretty(&mut stdout, &report).context("write the report")?;
        writeln!(stdout)?;
    } else {
        write!(stdout, "{}", report::table(&report))?;
    }
    stdout.flush()?;
    Ok(report.check_passed != Some(false))
}

fn empty_run() -> RunReport {
    let phase = Phase::merged("run", &[]);
    RunReport::build(
        &phase,
        &phase.e2e,
        &Default::default(),
        Duration::ZERO,
        Duration::ZERO,
        None,
    )
}

/// (placing time, first send → last confirmation) of a phase.
fn durations(phase: &Phase) -> (Duration, Duration) {
    let Some(load_ended) = phase.load_ended else {
        return (Duration::ZERO, Duration::ZERO);
    };
    if phase.attempted == 0 {
        return (Duration::ZERO, Duration::ZERO);
    }
    let load = load_ended.saturating_duration_since(phase.started);
    let last = phase
        .last_confirmed
        .map_or(load_ended, |at| at.max(load_ended));
    (load, last.saturating_duration_since(phase.started))
}

/// Waits until the orders of `phase` that do not wait for a deadline are settled.
async fn settle(tracker: &Tracker, phase: PhaseId, limit: Duration) {
    let deadline = Instant::now() + limit;
    while tracker.behind(phase) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until every order is terminal, at most `timeout`; returns what is still open.
/// Orders whose PlaceOrder was never answered are unknown to the tracker: when there are
/// any, the run's orders are also counted in the order database (by key prefix).
async fn drain_all(
    tracker: &Tracker,
    databases: Option<&Databases>,
    key_prefix: &str,
    timeout: Duration,
) -> crate::tracker::Open {
    let deadline = Instant::now() + timeout;
    let mut warned = false;
    loop {
        let mut open = tracker.open(None);
        if open.orders == 0
            && tracker.totals().unanswered > 0
            && let Some(databases) = databases
        {
            open.orders = databases
                .open_orders(key_prefix)
                .await
                .map_or(0, |count| usize::try_from(count).unwrap_or(0));
        }
        if open.orders == 0 || Instant::now() >= deadline {
            return open;
        }
        if !warned
            && let Some(latest) = open.latest_deadline
            && let Ok(away) = latest.duration_since(SystemTime::now())
            && Instant::now() + away > deadline
        {
            eprintln!(
                "ocop-loadgen: {} unpaid order(s) wait for payment deadlines up to {:.0} s away, \
                 beyond --drain-timeout; give the stack a short PAYMENT_TTL for load runs",
                open.awaiting_deadline,
                away.as_secs_f64()
            );
            warned = true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until the outboxes are empty and the services' consumer groups have no lag, twice
/// in a row a second apart (at most `limit`); returns whether they were.
async fn quiesce(probe: &Probe, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    let mut quiet_before = false;
    while Instant::now() < deadline {
        let backlog = match &probe.databases {
            Some(databases) => databases.outbox_backlog().await.values().sum(),
            None => 0,
        };
        let (lag, _) = probe.lag();
        let quiet = backlog == 0 && lag.unwrap_or(0) == 0;
        if quiet && quiet_before {
            return true;
        }
        quiet_before = quiet;
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    false
}

/// Waits until no service has unpublished outbox rows (at most `limit`).
async fn quiet_outboxes(databases: &Databases, limit: Duration) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if databases
            .outbox_backlog()
            .await
            .values()
            .all(|rows| *rows == 0)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Samples the platform once a second and prints the progress line.
async fn sample_every_second(probe: Arc<Probe>, tracker: Arc<Tracker>, progress: bool) {
    let started = Instant::now();
    let terminal = std::io::stderr().is_terminal();
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_placed = 0;
    let mut last_at = Instant::now();
    loop {
        ticker.tick().await;
        let sample = probe.sample().await;
        tracker.note_sample(&sample);
        if !progress {
            continue;
        }
        let totals = tracker.totals();
        let (label, target) = tracker.current();
        let now = Instant::now();
        let placed_per_s = (totals.placed - last_placed) as f64
            / now
                .saturating_duration_since(last_at)
                .as_secs_f64()
                .max(1e-3);
        last_placed = totals.placed;
        last_at = now;
        let line = format!(
            "{:>5.0}s {label:<12} target {:>8}  placed {:>7.1}/s  in-flight {:>6}  confirmed {:>7}  \
             cancelled {:>6}  errors {:>5}  lag {}",
            started.elapsed().as_secs_f64(),
            target.map_or_else(|| "—".to_owned(), |rate| format!("{rate:.1}/s")),
            placed_per_s,
            totals.in_flight,
            totals.confirmed,
            totals.cancelled,
            totals.errors,
            match probe.lag() {
                (None, None) => "n/a".to_owned(),
                (consumers, own) => format!(
                    "{} (own {})",
                    consumers.map_or_else(|| "n/a".into(), |lag| lag.to_string()),
                    own.map_or_else(|| "n/a".into(), |lag| lag.to_string())
                ),
            }
        );
        if terminal {
            eprint!("\r\x1b[K{line}");
        } else {
            eprintln!("{line}");
        }
    }
}

/// The find-max ramp.
#[derive(Debug, Clone)]
struct Ramp {
    start_rate: f64,
    step_factor: f64,
    step_duration: Duration,
    max_rate: f64,
    p99_bound: Duration,
}

impl Ramp {
    /// Steps up until one does not hold; returns the last rate that held and every step.
    async fn run(
        &self,
        driver: &Driver,
        tracker: &Tracker,
        probe: &Probe,
    ) -> (Option<f64>, Vec<StepReport>) {
        let bound_ms = self.p99_bound.as_secs_f64() * 1000.0;
        let settle_window = (self.p99_bound * 8).max(Duration::from_secs(2));
        // Far more orders behind than a healthy saga keeps in flight: stop the step.
        let guard_span = (self.p99_bound * 20).max(Duration::from_secs(5));
        // Rates are kept to two decimals, so that a step's rate and the reported
        // max_sustainable_rate compare equal.
        let round2 = |rate: f64| (rate * 100.0).round() / 100.0;
        let mut rate = round2(self.start_rate);
        let mut best = None;
        let mut steps = Vec::new();
        for step in 1.. {
            let phase = tracker.begin_phase(format!("step {step}"), Some(rate));
            let before = probe.snapshot().await;
            let guard = (rate * guard_span.as_secs_f64()).ceil() as usize + 10;
            let stopped = driver
                .open_loop(phase, rate, self.step_duration, Some(guard))
                .await;
            settle(tracker, phase, settle_window).await;
            let censored = tracker.censored_e2e(phase, Instant::now());
            let behind = tracker.behind(phase);
            let after = probe.snapshot().await;
            let figures = tracker.phase(phase);
            let (load, active) = durations(&figures);
            let run = RunReport::build(
                &figures,
                &figures.e2e,
                &probe.costs(&before, &after),
                load,
                active,
                None,
            );
            let p99 = report::quantile_ms(&censored, 0.99);
            let errors = figures.errors_total();
            let (sustainable, verdict) = if let Stopped::Backlog(behind) = stopped {
                (
                    false,
                    format!(
                        "backlog: {behind} orders behind after {:.0} s",
                        load.as_secs_f64()
                    ),
                )
            } else if errors * 100 > figures.attempted.max(1) {
                (
                    false,
                    format!(
                        "errors: {errors} failed PlaceOrder calls for {} orders",
                        figures.attempted
                    ),
                )
            } else if behind * 100 > (figures.placed as usize).max(100) {
                (
                    false,
                    format!(
                        "behind: {behind} orders unsettled {:.1} s after the step",
                        settle_window.as_secs_f64()
                    ),
                )
            } else if let Some(p99) = p99.filter(|p99| *p99 > bound_ms) {
                (false, format!("p99 {p99:.1} ms > {bound_ms:.0} ms"))
            } else {
                (
                    true,
                    format!(
                        "held: p99 {} ms",
                        p99.map_or_else(|| "–".into(), |p99| format!("{p99:.1}"))
                    ),
                )
            };
            steps.push(StepReport {
                rate,
                sustainable,
                verdict,
                e2e_p99_censored_ms: p99,
                run,
            });
            if !sustainable {
                break;
            }
            best = Some(rate);
            if rate >= self.max_rate {
                break;
            }
            rate = round2((rate * self.step_factor).min(self.max_rate));
        }
        (best, steps)
    }
}
