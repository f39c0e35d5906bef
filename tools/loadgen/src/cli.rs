//! The command line: flags (each endpoint also from the environment), their parsers and
//! the mode they select.

use std::time::Duration;

use clap::{CommandFactory as _, FromArgMatches as _, Parser};
use ocop_events::KafkaConfig;
use ocop_proto::order::v1 as pb;

use crate::mix::{self, Mix};

/// The broker `make run` starts.
const DEFAULT_BROKERS: &str = "127.0.0.1:19092";

#[derive(Debug, Parser)]
#[command(
    name = "ocop-loadgen",
    version,
    about = "Drive an ocop-market platform like a shopper population and measure it",
    long_about = "Places orders over the public gRPC API (open loop at a fixed arrival rate, \
closed loop with N shoppers, or --find-max), pays, declines, abandons or cancels them as \
shoppers do, follows the saga from its Kafka events, reports latency, throughput and the \
cost of an order, then checks the books. Exit status: 0 done, 1 the check failed, 2 the run \
could not be made."
)]
pub struct Cli {
    /// Open loop: orders per second, at fixed intended send times (e.g. 300, 300/s,
    /// 6000/min). The default mode, at 50/s.
    #[arg(long, value_parser = parse_rate, conflicts_with_all = ["concurrency", "find_max"])]
    pub rate: Option<f64>,

    /// Closed loop: this many shoppers, each placing its next order as soon as its last
    /// one is settled (or waits for its payment deadline).
    #[arg(long, conflicts_with = "find_max")]
    pub concurrency: Option<usize>,

    /// How long to place orders (open and closed loop, and the --then-half run).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub duration: Duration,

    /// Ramp the open-loop rate in steps until placed→confirmed p99 exceeds --p99-bound or
    /// confirmations fall behind placements; report the last sustainable rate.
    #[arg(long)]
    pub find_max: bool,

    /// --find-max: the first step's rate.
    #[arg(long, default_value = "20", value_parser = parse_rate)]
    pub start_rate: f64,

    /// --find-max: each step's rate is the previous one's times this.
    #[arg(long, default_value_t = 1.5, value_parser = parse_step_factor)]
    pub step_factor: f64,

    /// --find-max: how long each step places orders.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub step_duration: Duration,

    /// --find-max: never try a rate above this.
    #[arg(long, default_value = "5000", value_parser = parse_rate)]
    pub max_rate: f64,

    /// --find-max: the placed→confirmed p99 a sustainable rate keeps under.
    #[arg(long, default_value = "250ms", value_parser = parse_duration)]
    pub p99_bound: Duration,

    /// --find-max: then run --duration at half the sustainable rate and report its
    /// latencies (`at_half`).
    #[arg(long, requires = "find_max")]
    pub then_half: bool,

    /// Payment methods and their weights.
    #[arg(long, default_value = "sandbox=40,vietqr=15,vnpay=15,momo=15,zalopay=15", value_parser = parse_methods)]
    pub methods: MethodWeights,

    /// Share of orders whose shopper declines on the payment page (0.05 or 5%).
    #[arg(long, default_value = "0.05", value_parser = mix::parse_share)]
    pub decline_share: f64,

    /// Share of orders never paid: they are cancelled when their payment deadline passes
    /// (the drain waits for it, so give the stack a short PAYMENT_TTL).
    #[arg(long, default_value = "0.02", value_parser = mix::parse_share)]
    pub abandon_share: f64,

    /// Share of orders the shopper cancels (CancelOrder) while they await payment.
    #[arg(long, default_value = "0.03", value_parser = mix::parse_share)]
    pub cancel_share: f64,

    /// Share of PlaceOrder calls sent twice with the same idempotency key (the second
    /// must return the same order).
    #[arg(long, default_value = "0.05", value_parser = mix::parse_share)]
    pub retry_share: f64,

    /// Lines per order: 1 to this many, distinct products.
    #[arg(long, default_value_t = 5)]
    pub max_lines: usize,

    /// Popularity skew: the product of rank k is picked with weight 1/k^s (0 = uniform).
    #[arg(long, default_value_t = 1.0)]
    pub zipf: f64,

    /// Random seed (the run's plans are the same for the same seed and product list).
    #[arg(long)]
    pub seed: Option<u64>,

    /// The platform's sandbox gateway settles payments by itself (SANDBOX_OUTCOME other
    /// than `never`): pay nothing; the decline and abandon shares are ignored.
    #[arg(long)]
    pub sandbox_pays: bool,

    /// Catalog service gRPC address.
    #[arg(
        long,
        env = "OCOP_CATALOG_ADDR",
        default_value = "http://127.0.0.1:50051"
    )]
    pub catalog: String,

    /// Order service gRPC address; several, comma-separated, for several replicas (calls
    /// are spread over them, and a retry goes to the next one, as behind a load balancer).
    #[arg(
        long,
        env = "OCOP_ORDER_ADDR",
        default_value = "http://127.0.0.1:50052",
        value_delimiter = ','
    )]
    pub order: Vec<String>,

    /// Payment service HTTP base, where the sandbox gateway's control API lives.
    #[arg(
        long,
        env = "OCOP_PAYMENT_HTTP",
        default_value = "http://127.0.0.1:9103"
    )]
    pub payment_http: String,

    /// The sandbox gateway's base URL when it is not the payment service's HTTP base.
    #[arg(long, env = "OCOP_SANDBOX_URL")]
    pub sandbox_url: Option<String>,

    /// The PostgreSQL server of the services (user with read access to pg_stat_* and the
    /// databases catalog, order, payment and notification). Read only.
    #[arg(
        long,
        env = "OCOP_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:55432",
        hide_env_values = true
    )]
    pub database_url: String,

    #[command(flatten)]
    pub kafka: KafkaConfig,

    /// A service process to measure (CPU seconds, peak RSS), as NAME=PID; repeat.
    #[arg(long = "pid", value_parser = parse_pid)]
    pub pids: Vec<(String, u32)>,

    /// Top every product up to this many available units before the run (needs an
    /// operator token or the token secret; 0 = leave the stock alone).
    #[arg(long, default_value_t = 1_000_000)]
    pub restock: i64,

    /// Operator bearer token (catalog:write) for --restock.
    #[arg(long, env = "OCOP_TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    /// Token secret: without --token, an operator token is minted with it (local stacks).
    #[arg(long, env = "OCOP_AUTH_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// Print the report as one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,

    /// Do not wait for every order to settle and do not check the books.
    #[arg(long)]
    pub no_check: bool,

    /// How long to wait, after the load, for every order to reach a terminal state.
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    pub drain_timeout: Duration,

    /// Deadline of each gRPC call.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,

    /// gRPC connections to the order service (calls are spread over them), at least one
    /// per address.
    #[arg(long, default_value_t = 4)]
    pub connections: usize,

    /// No progress line on stderr.
    #[arg(long)]
    pub quiet: bool,
}

/// Payment methods and their weights (`--methods`).
#[derive(Debug, Clone, PartialEq)]
pub struct MethodWeights(pub Vec<(pb::PaymentMethod, u32)>);

fn parse_methods(raw: &str) -> Result<MethodWeights, String> {
    mix::parse_methods(raw).map(MethodWeights)
}

/// How the load is shaped.
#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    Open {
        rate: f64,
        duration: Duration,
    },
    Closed {
        concurrency: usize,
        duration: Duration,
    },
    FindMax {
        start_rate: f64,
        step_factor: f64,
        step_duration: Duration,
        max_rate: f64,
        p99_bound: Duration,
        then_half: Option<Duration>,
    },
}

impl Mode {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Open { .. } => "open",
            Self::Closed { .. } => "closed",
            Self::FindMax { .. } => "find_max",
        }
    }
}

impl Cli {
    /// Parses the command line; the Kafka flags are the services' own
    /// (`ocop_events::KafkaConfig`), with `make run`'s broker as the default and
    /// `--topic-prefix` as a short name of `--kafka-topic-prefix`.
    pub fn parse_args() -> Self {
        let matches = Self::full_command().get_matches();
        Self::from_arg_matches(&matches).unwrap_or_else(|err| err.exit())
    }

    fn full_command() -> clap::Command {
        Self::command()
            .mut_arg("brokers", |arg| arg.default_value(DEFAULT_BROKERS))
            .mut_arg("topic_prefix", |arg| arg.visible_alias("topic-prefix"))
            .mut_arg("create_topics", |arg| arg.hide(true))
            .mut_arg("group_instance_id", |arg| arg.hide(true))
    }

    pub fn mode(&self) -> Mode {
        if self.find_max {
            Mode::FindMax {
                start_rate: self.start_rate,
                step_factor: self.step_factor,
                step_duration: self.step_duration,
                max_rate: self.max_rate.max(self.start_rate),
                p99_bound: self.p99_bound,
                then_half: self.then_half.then_some(self.duration),
            }
        } else if let Some(concurrency) = self.concurrency {
            Mode::Closed {
                concurrency: concurrency.max(1),
                duration: self.duration,
            }
        } else {
            Mode::Open {
                rate: self.rate.unwrap_or(50.0),
                duration: self.duration,
            }
        }
    }

    pub fn mix(&self) -> Mix {
        let (decline, abandon) = if self.sandbox_pays {
            (0.0, 0.0)
        } else {
            (self.decline_share, self.abandon_share)
        };
        Mix {
            methods: self.methods.0.clone(),
            decline,
            abandon,
            cancel: self.cancel_share,
            retry: self.retry_share,
            max_lines: self.max_lines,
        }
    }

    pub fn sandbox_base(&self) -> &str {
        self.sandbox_url
            .as_deref()
            .unwrap_or(&self.payment_http)
            .trim_end_matches('/')
    }
}

/// Orders per second: `300`, `300/s`, `6000/min` (or `/m`), `36000/h`; above zero.
pub fn parse_rate(raw: &str) -> Result<f64, String> {
    let raw = raw.trim();
    let (number, per_seconds) = match raw.split_once('/') {
        None => (raw, 1.0),
        Some((number, unit)) => {
            let seconds = match unit.trim() {
                "s" | "sec" => 1.0,
                "m" | "min" => 60.0,
                "h" => 3600.0,
                other => return Err(format!("`{other}` is not a unit of time (s, min, h)")),
            };
            (number, seconds)
        }
    };
    let count: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("`{raw}` is not a rate (e.g. 300, 300/s, 6000/min)"))?;
    let rate = count / per_seconds;
    if rate.is_finite() && rate > 0.0 {
        Ok(rate)
    } else {
        Err(format!("`{raw}` is not a rate above zero"))
    }
}

/// A duration such as `60s`, `1m30s`, `250ms`; a bare number is seconds.
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    let raw = raw.trim();
    let duration = match raw.parse::<f64>() {
        Ok(seconds) if seconds.is_finite() && seconds >= 0.0 => Duration::from_secs_f64(seconds),
        Ok(_) => return Err(format!("`{raw}` is not a duration")),
        Err(_) => humantime::parse_duration(raw).map_err(|err| format!("`{raw}`: {err}"))?,
    };
    if duration.is_zero() {
        Err(format!("`{raw}` is not a duration above zero"))
    } else {
        Ok(duration)
    }
}

fn parse_step_factor(raw: &str) -> Result<f64, String> {
    match raw.trim().parse::<f64>() {
        Ok(factor) if factor > 1.0 && factor.is_finite() => Ok(factor),
        _ => Err(format!("`{raw}` is not a factor above 1 (e.g. 1.5)")),
    }
}

/// `NAME=PID`, e.g. `order=4242`.
pub fn parse_pid(raw: &str) -> Result<(String, u32), String> {
    let (name, pid) = raw
        .split_once('=')
        .ok_or_else(|| format!("`{raw}` is not NAME=PID"))?;
    let pid = pid
        .trim()
        .parse()
        .map_err(|_| format!("`{pid}` is not a process id"))?;
    let name = name.trim();
    if name.is_empty() {
        return Err(format!("`{raw}` has no name"));
    }
    Ok((name.to_owned(), pid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_take_per_second_per_minute_and_per_hour() {
        assert_eq!(parse_rate("300").unwrap(), 300.0);
        assert_eq!(parse_rate("300/s").unwrap(), 300.0);
        assert_eq!(parse_rate("0.5").unwrap(), 0.5);
        assert_eq!(parse_rate("6000/min").unwrap(), 100.0);
        assert_eq!(parse_rate("60/m").unwrap(), 1.0);
        assert_eq!(parse_rate("3600/h").unwrap(), 1.0);
        assert!(parse_rate("0").is_err());
        assert!(parse_rate("-5").is_err());
        assert!(parse_rate("fast").is_err());
        assert!(parse_rate("5/day").is_err());
        assert!(parse_rate("inf").is_err());
    }

    #[test]
    fn durations_take_units_or_bare_seconds() {
        assert_eq!(parse_duration("60s").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("20").unwrap(), Duration::from_secs(20));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-1").is_err());
    }

    #[test]
    fn pids_are_name_equals_number() {
        assert_eq!(parse_pid("order=4242").unwrap(), ("order".into(), 4242));
        assert!(parse_pid("order").is_err());
        assert!(parse_pid("=12").is_err());
        assert!(parse_pid("order=x").is_err());
    }

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        let matches = Cli::full_command()
            .try_get_matches_from(std::iter::once("ocop-loadgen").chain(args.iter().copied()))?;
        Cli::from_arg_matches(&matches)
    }

    #[test]
    fn the_bench_command_lines_parse() {
        let cli = parse(&[
            "--find-max",
            "--p99-bound",
            "250ms",
            "--then-half",
            "--json",
            "--pid",
            "catalog=123",
            "--pid",
            "order=124",
            "--database-url",
            "postgres://postgres@127.0.0.1:5999",
            "--kafka-brokers",
            "127.0.0.1:9999",
            "--catalog",
            "http://127.0.0.1:1",
            "--order",
            "http://127.0.0.1:2,http://127.0.0.1:4",
            "--payment-http",
            "http://127.0.0.1:3",
            "--topic-prefix",
            "bench.",
        ])
        .unwrap();
        assert!(cli.json);
        assert_eq!(cli.order, ["http://127.0.0.1:2", "http://127.0.0.1:4"]);
        assert_eq!(cli.pids.len(), 2);
        assert_eq!(cli.kafka.brokers, "127.0.0.1:9999");
        assert_eq!(cli.kafka.topic_prefix, "bench.");
        assert!(matches!(
            cli.mode(),
            Mode::FindMax {
                then_half: Some(_),
                ..
            }
        ));

        let short = parse(&["--rate", "50", "--duration", "20s"]).unwrap();
        assert_eq!(
            short.mode(),
            Mode::Open {
                rate: 50.0,
                duration: Duration::from_secs(20)
            }
        );
    }

    #[test]
    fn modes_exclude_each_other() {
        assert!(parse(&["--rate", "5", "--concurrency", "3"]).is_err());
        assert!(parse(&["--find-max", "--rate", "5"]).is_err());
        assert!(parse(&["--then-half"]).is_err());
        let closed = parse(&["--concurrency", "8"]).unwrap();
        assert!(matches!(closed.mode(), Mode::Closed { concurrency: 8, .. }));
    }

    #[test]
    fn sandbox_pays_drops_the_shares_only_a_shopper_can_play() {
        let cli = parse(&["--sandbox-pays", "--decline-share", "10%"]).unwrap();
        let mix = cli.mix();
        assert_eq!((mix.decline, mix.abandon), (0.0, 0.0));
        assert_eq!(mix.cancel, 0.03);
    }
}
