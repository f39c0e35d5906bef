//! The report: one JSON object (`--json`, stable snake_case keys) or a table for people.

use std::{collections::BTreeMap, fmt::Write as _, time::Duration};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::{check::CheckReport, probe::Costs, tracker::Phase};

/// A histogram quantile in milliseconds (two decimals); None when nothing was recorded.
pub fn quantile_ms(histogram: &Histogram<u64>, quantile: f64) -> Option<f64> {
    (!histogram.is_empty()).then(|| round2(histogram.value_at_quantile(quantile) as f64 / 1000.0))
}

fn max_ms(histogram: &Histogram<u64>) -> Option<f64> {
    (!histogram.is_empty()).then(|| round2(histogram.max() as f64 / 1000.0))
}

fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

fn ratio(numerator: Option<i64>, denominator: u64) -> Option<f64> {
    (denominator > 0).then(|| numerator.map(|n| round2(n as f64 / denominator as f64)))?
}

/// CPU and memory of one process over a phase.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceUsage {
    /// User + system CPU seconds.
    pub cpu_s: Option<f64>,
    /// cpu_s over the wall time (1.0 = one core busy).
    pub cores: Option<f64>,
    /// The largest resident set sampled (once a second).
    pub peak_rss_mib: Option<f64>,
}

/// The figures of a run (or a phase of one).
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub label: String,
    pub target_rate: Option<f64>,
    pub concurrency: Option<usize>,
    /// How long orders were placed.
    pub duration_s: f64,
    pub orders_attempted: u64,
    pub orders_placed: u64,
    /// PlaceOrder never answered, even after retries with the same key.
    pub orders_failed: u64,
    pub orders_confirmed: u64,
    pub orders_cancelled: u64,
    pub cancelled_by_reason: BTreeMap<String, u64>,
    /// What the shoppers meant to do: pay, decline, abandon, cancel.
    pub fates: BTreeMap<&'static str, u64>,
    pub idempotent_retries: u64,
    /// Placed orders over the placing time.
    pub placed_per_s: f64,
    /// Confirmed orders over the time from the first send to the last confirmation.
    pub confirmed_per_s: f64,
    pub place_p50_ms: Option<f64>,
    pub place_p90_ms: Option<f64>,
    pub place_p99_ms: Option<f64>,
    pub place_p999_ms: Option<f64>,
    pub place_max_ms: Option<f64>,
    /// Intended PlaceOrder send time → OrderConfirmed observed.
    pub e2e_p50_ms: Option<f64>,
    pub e2e_p90_ms: Option<f64>,
    pub e2e_p99_ms: Option<f64>,
    pub e2e_max_ms: Option<f64>,
    /// Intended send time → PaymentInitiated observed.
    pub initiated_p50_ms: Option<f64>,
    pub initiated_p99_ms: Option<f64>,
    /// The shopper's pay click → OrderConfirmed observed.
    pub paid_to_confirmed_p50_ms: Option<f64>,
    pub paid_to_confirmed_p99_ms: Option<f64>,
    /// PlaceOrder failures by gRPC code (each attempt).
    pub errors: BTreeMap<String, u64>,
    /// Failures of the shopper's other calls.
    pub other_errors: BTreeMap<String, u64>,
    /// PostgreSQL transactions committed in the service databases (ours subtracted).
    pub commits: Option<i64>,
    pub commits_by_database: BTreeMap<String, i64>,
    pub commits_per_order: Option<f64>,
    /// pg_stat_statements calls (null: the extension is not installed).
    pub statements: Option<i64>,
    pub statements_per_order: Option<f64>,
    /// Records written to the platform's topics.
    pub broker_records: Option<i64>,
    pub broker_records_by_topic: BTreeMap<String, i64>,
    pub broker_records_per_order: Option<f64>,
    pub max_outbox_backlog: Option<i64>,
    pub max_outbox_backlog_by_service: BTreeMap<String, i64>,
    pub max_consumer_lag: Option<i64>,
    /// This tool's own event follower (its lag inflates the e2e figures).
    pub max_follower_lag: Option<i64>,
    pub services: BTreeMap<String, ServiceUsage>,
}

impl RunReport {
    /// `load` is how long orders were placed, `active` from the first send to the last
    /// confirmation (summed over the phases of a merged ramp).
    pub fn build(
        phase: &Phase,
        e2e: &Histogram<u64>,
        costs: &Costs,
        load: Duration,
        active: Duration,
        concurrency: Option<usize>,
    ) -> Self {
        let per_s = |count: u64, over: Duration| {
            if over.is_zero() {
                0.0
            } else {
                round2(count as f64 / over.as_secs_f64())
            }
        };
        let wall = costs.wall.as_secs_f64();
        let services = costs
            .cpu_s
            .iter()
            .map(|(name, cpu)| {
                (
                    name.clone(),
                    ServiceUsage {
                        cpu_s: cpu.map(round2),
                        cores: cpu.filter(|_| wall > 0.0).map(|cpu| round2(cpu / wall)),
                        peak_rss_mib: phase
                            .peak_rss_kib
                            .get(name)
                            .map(|kib| round2(*kib as f64 / 1024.0)),
                    },
                )
            })
            .collect();
        Self {
            label: phase.label.clone(),
            target_rate: phase.target_rate.map(round2),
            concurrency,
            duration_s: round2(load.as_secs_f64()),
            orders_attempted: phase.attempted,
            orders_placed: phase.placed,
            orders_failed: phase.failed,
            orders_confirmed: phase.confirmed,
            orders_cancelled: phase.cancelled_total(),
            cancelled_by_reason: phase.cancelled.clone(),
            fates: phase.fates.clone(),
            idempotent_retries: phase.retries,
            placed_per_s: per_s(phase.placed, load),
            confirmed_per_s: per_s(phase.confirmed, active),
            place_p50_ms: quantile_ms(&phase.place, 0.5),
            place_p90_ms: quantile_ms(&phase.place, 0.9),
            place_p99_ms: quantile_ms(&phase.place, 0.99),
            place_p999_ms: quantile_ms(&phase.place, 0.999),
            place_max_ms: max_ms(&phase.place),
            e2e_p50_ms: quantile_ms(e2e, 0.5),
            e2e_p90_ms: quantile_ms(e2e, 0.9),
            e2e_p99_ms: quantile_ms(e2e, 0.99),
            e2e_max_ms: max_ms(e2e),
            initiated_p50_ms: quantile_ms(&phase.initiated, 0.5),
            initiated_p99_ms: quantile_ms(&phase.initiated, 0.99),
            paid_to_confirmed_p50_ms: quantile_ms(&phase.paid_to_confirmed, 0.5),
            paid_to_confirmed_p99_ms: quantile_ms(&phase.paid_to_confirmed, 0.99),
            errors: phase.errors.clone(),
            other_errors: phase.other_errors.clone(),
            commits: costs.commits,
            commits_by_database: costs.commits_by_database.clone(),
            commits_per_order: ratio(costs.commits, phase.confirmed),
            statements: costs.statements,
            statements_per_order: ratio(costs.statements, phase.confirmed),
            broker_records: costs.records,
            broker_records_by_topic: costs.records_by_topic.clone(),
            broker_records_per_order: ratio(costs.records, phase.placed),
            max_outbox_backlog: phase.max_outbox_backlog,
            max_outbox_backlog_by_service: phase.max_outbox_backlog_by_service.clone(),
            max_consumer_lag: phase.max_consumer_lag,
            max_follower_lag: phase.max_follower_lag,
            services,
        }
    }
}

/// One rate of a find-max ramp.
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    pub rate: f64,
    pub sustainable: bool,
    /// Why the step passed or failed.
    pub verdict: String,
    /// placed→confirmed p99 counting the paid orders not confirmed yet at the end of the
    /// step's settle window as at least that old.
    pub e2e_p99_censored_ms: Option<f64>,
    #[serde(flatten)]
    pub run: RunReport,
}

/// Everything the run found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub mode: &'static str,
    pub seed: u64,
    #[serde(flatten)]
    pub run: RunReport,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p99_bound_ms: Option<f64>,
    /// find-max: the highest step rate that held (0 when even the first did not).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_sustainable_rate: Option<f64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<StepReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at_half: Option<RunReport>,
    /// null with --no-check.
    pub check_passed: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check: Option<CheckReport>,
    pub notes: Vec<String>,
}

/// A millisecond figure for the table: `12.34`, or `–` when there is none.
pub fn fmt_ms(value: Option<f64>) -> String {
    value.map_or_else(|| "–".to_owned(), |ms| format!("{ms:.2}"))
}

fn fmt_ratio(value: Option<f64>) -> String {
    value.map_or_else(|| "n/a".to_owned(), |value| format!("{value:.2}"))
}

fn fmt_counts(counts: &BTreeMap<String, u64>) -> String {
    if counts.is_empty() {
        return "none".into();
    }
    counts
        .iter()
        .map(|(key, count)| format!("{key} {count}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn fmt_map_i64(counts: &BTreeMap<String, i64>) -> String {
    counts
        .iter()
        .map(|(key, count)| format!("{key} {count}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The latency table's rows.
pub fn latency_table(run: &RunReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "  {:<22}{:>10}{:>10}{:>10}{:>10}{:>10}",
        "latency (ms)", "p50", "p90", "p99", "p99.9", "max"
    );
    let rows = [
        (
            "PlaceOrder",
            [
                run.place_p50_ms,
                run.place_p90_ms,
                run.place_p99_ms,
                run.place_p999_ms,
                run.place_max_ms,
            ],
        ),
        (
            "placed→confirmed",
            [
                run.e2e_p50_ms,
                run.e2e_p90_ms,
                run.e2e_p99_ms,
                None,
                run.e2e_max_ms,
            ],
        ),
        (
            "placed→pay page",
            [run.initiated_p50_ms, None, run.initiated_p99_ms, None, None],
        ),
        (
            "paid→confirmed",
            [
                run.paid_to_confirmed_p50_ms,
                None,
                run.paid_to_confirmed_p99_ms,
                None,
                None,
            ],
        ),
    ];
    for (name, values) in rows {
        let _ = write!(out, "  {name:<22}");
        for value in values {
            let _ = write!(out, "{:>10}", fmt_ms(value));
        }
        out.push('\n');
    }
    out
}

fn run_table(run: &RunReport) -> String {
    let mut out = String::new();
    let shape = match (run.target_rate, run.concurrency) {
        (_, Some(concurrency)) => format!("{concurrency} shoppers"),
        (Some(rate), None) => format!("{rate}/s"),
        (None, None) => "—".into(),
    };
    let _ = writeln!(
        out,
        "{} ({shape}, placing for {:.1} s)",
        run.label, run.duration_s
    );
    let _ = writeln!(
        out,
        "  orders    placed {} ({:.2}/s)  confirmed {} ({:.2}/s)  cancelled {}  unanswered {}",
        run.orders_placed,
        run.placed_per_s,
        run.orders_confirmed,
        run.confirmed_per_s,
        run.orders_cancelled,
        run.orders_failed
    );
    let fates: BTreeMap<String, u64> = run
        .fates
        .iter()
        .map(|(fate, count)| ((*fate).to_owned(), *count))
        .collect();
    let _ = writeln!(
        out,
        "  shoppers  {}; {} idempotent resends",
        fmt_counts(&fates),
        run.idempotent_retries
    );
    if !run.cancelled_by_reason.is_empty() {
        let _ = writeln!(out, "  cancelled {}", fmt_counts(&run.cancelled_by_reason));
    }
    out.push_str(&latency_table(run));
    let _ = writeln!(out, "  errors    PlaceOrder: {}", fmt_counts(&run.errors));
    if !run.other_errors.is_empty() {
        let _ = writeln!(out, "            other: {}", fmt_counts(&run.other_errors));
    }
    let _ = writeln!(
        out,
        "  per confirmed order: {} commits, {} statements; {} broker records per placed order",
        fmt_ratio(run.commits_per_order),
        fmt_ratio(run.statements_per_order),
        fmt_ratio(run.broker_records_per_order)
    );
    if !run.commits_by_database.is_empty() {
        let _ = writeln!(
            out,
            "            commits by database: {}",
            fmt_map_i64(&run.commits_by_database)
        );
    }
    let _ = writeln!(
        out,
        "  backlog   outbox max {} ({}), consumer lag max {}, own follower lag max {}",
        run.max_outbox_backlog
            .map_or_else(|| "n/a".into(), |n| n.to_string()),
        fmt_map_i64(&run.max_outbox_backlog_by_service),
        run.max_consumer_lag
            .map_or_else(|| "n/a".into(), |n| n.to_string()),
        run.max_follower_lag
            .map_or_else(|| "n/a".into(), |n| n.to_string()),
    );
    if !run.services.is_empty() {
        let _ = writeln!(
            out,
            "  {:<22}{:>10}{:>10}{:>14}",
            "process", "CPU s", "cores", "peak RSS MiB"
        );
        for (name, usage) in &run.services {
            let _ = writeln!(
                out,
                "  {name:<22}{:>10}{:>10}{:>14}",
                fmt_ratio(usage.cpu_s),
                fmt_ratio(usage.cores),
                fmt_ratio(usage.peak_rss_mib)
            );
        }
    }
    out
}

/// The report as a table.
pub fn table(report: &Report) -> String {
    let mut out = format!("ocop-loadgen — {} (seed {})\n", report.mode, report.seed);
    out.push_str(&run_table(&report.run));
    if let Some(rate) = report.max_sustainable_rate {
        let _ = writeln!(
            out,
            "\nfind-max (placed→confirmed p99 bound {} ms):",
            fmt_ms(report.p99_bound_ms)
        );
        let _ = writeln!(
            out,
            "  {:>10}{:>12}{:>12}{:>14}{:>12}  verdict",
            "rate/s", "placed/s", "confirmed/s", "e2e p99 ms", "place p99"
        );
        for step in &report.steps {
            let _ = writeln!(
                out,
                "  {:>10.2}{:>12.2}{:>12.2}{:>14}{:>12}  {}",
                step.rate,
                step.run.placed_per_s,
                step.run.confirmed_per_s,
                fmt_ms(step.e2e_p99_censored_ms),
                fmt_ms(step.run.place_p99_ms),
                step.verdict
            );
        }
        let _ = writeln!(out, "  max sustainable rate: {rate:.2} orders/s");
    }
    if let Some(half) = &report.at_half {
        out.push('\n');
        out.push_str(&run_table(half));
    }
    match &report.check {
        None => out.push_str("\ncheck     skipped (--no-check)\n"),
        Some(check) => {
            let _ = writeln!(
                out,
                "\ncheck     {} ({} orders in the books, {} of them without a PlaceOrder answer)",
                if check.passed { "passed" } else { "FAILED" },
                check.orders_checked,
                check.untracked_orders
            );
            for violation in check.violations.iter().take(50) {
                let _ = writeln!(out, "  ✗ {violation}");
            }
            if check.violations_total > 50 {
                let _ = writeln!(out, "  … and {} more", check.violations_total - 50);
            }
            for note in &check.notes {
                let _ = writeln!(out, "  · {note}");
            }
        }
    }
    for note in &report.notes {
        let _ = writeln!(out, "note: {note}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn histogram(values_ms: &[u64]) -> Histogram<u64> {
        let mut histogram = Histogram::new_with_bounds(1, 3_600_000_000, 3).unwrap();
        for ms in values_ms {
            histogram.record(ms * 1000).unwrap();
        }
        histogram
    }

    #[test]
    fn quantiles_are_milliseconds_with_two_decimals() {
        let values: Vec<u64> = (1..=1000).collect();
        let recorded = histogram(&values);
        let p50 = quantile_ms(&recorded, 0.5).unwrap();
        let p99 = quantile_ms(&recorded, 0.99).unwrap();
        // Three significant digits: within 0.1 % of the exact value.
        assert!((499.5..=501.0).contains(&p50), "{p50}");
        assert!((989.0..=991.0).contains(&p99), "{p99}");
        assert_eq!(p50, (p50 * 100.0).round() / 100.0);
        assert_eq!(quantile_ms(&histogram(&[]), 0.5), None);
    }

    #[test]
    fn missing_figures_print_as_a_dash_and_others_with_two_decimals() {
        assert_eq!(fmt_ms(None), "–");
        assert_eq!(fmt_ms(Some(12.3456)), "12.35");
        assert_eq!(fmt_ms(Some(250.0)), "250.00");
        assert_eq!(fmt_ratio(None), "n/a");
    }

    #[test]
    fn per_order_ratios_need_orders() {
        assert_eq!(ratio(Some(100), 8), Some(12.5));
        assert_eq!(ratio(Some(100), 0), None);
        assert_eq!(ratio(None, 8), None);
    }

    fn run() -> RunReport {
        let phase = {
            let tracker = crate::tracker::Tracker::new(true);
            let id = tracker.begin_phase("run", Some(20.0));
            tracker.record_place(id, Duration::from_millis(4));
            tracker.record_error(id, "UNAVAILABLE");
            tracker.phase(id)
        };
        RunReport::build(
            &phase,
            &histogram(&[100, 200]),
            &Costs::default(),
            Duration::from_secs(10),
            Duration::from_secs(11),
            None,
        )
    }

    #[test]
    fn the_latency_table_lines_up_and_shows_missing_figures() {
        let table = latency_table(&run());
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 5);
        assert!(lines[1].starts_with("  PlaceOrder"), "{table}");
        assert!(lines[1].contains("4.00"), "{table}");
        // HDR reports the highest value equivalent to the recorded one (3 digits).
        assert!(lines[2].contains("200.0"), "{table}");
        assert!(lines[3].contains('–'), "{table}");
        let widths: Vec<usize> = lines.iter().map(|line| line.chars().count()).collect();
        assert!(widths.iter().all(|w| *w == widths[0]), "{table}");
    }

    #[test]
    fn the_json_report_has_the_stable_keys() {
        let report = Report {
            mode: "open",
            seed: 1,
            run: run(),
            p99_bound_ms: None,
            max_sustainable_rate: None,
            steps: Vec::new(),
            at_half: None,
            check_passed: Some(true),
            check: None,
            notes: Vec::new(),
        };
        let json = serde_json::to_value(&report).unwrap();
        for key in [
            "placed_per_s",
            "confirmed_per_s",
            "place_p50_ms",
            "place_p90_ms",
            "place_p99_ms",
            "place_p999_ms",
            "e2e_p50_ms",
            "e2e_p99_ms",
            "errors",
            "commits_per_order",
            "statements_per_order",
            "broker_records_per_order",
            "max_outbox_backlog",
            "services",
            "check_passed",
        ] {
            assert!(json.get(key).is_some(), "{key} missing from {json}");
        }
        assert_eq!(json["errors"]["UNAVAILABLE"], 1);
        assert_eq!(json["statements_per_order"], serde_json::Value::Null);
        assert!(json.get("at_half").is_none());
        assert!(table(&report).contains("check     skipped"));
    }
}
