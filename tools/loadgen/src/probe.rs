//! What a run costs the platform: CPU and memory of its processes (`/proc`), PostgreSQL
//! commits and statements (`pg_stat_database`, `pg_stat_statements`), records written
//! to the broker (high watermarks), sampled each second or taken as snapshots around a
//! phase. The databases are opened read-only.

use std::{
    collections::BTreeMap,
    str::FromStr as _,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context as _;
use sqlx::{
    PgPool,
    postgres::{PgConnectOptions, PgPoolOptions},
};

use crate::{
    broker::{self, Broker},
    follow::Follower,
    tracker::{Sample, Tracker},
};

/// The services' databases on the server.
pub const SERVICE_DATABASES: [&str; 4] = ["catalog", "order", "payment", "notification"];

/// Read-only pools to each service database and to `postgres` (for the statistics).
#[derive(Debug)]
pub struct Databases {
    pub services: BTreeMap<&'static str, PgPool>,
    stats: PgPool,
    /// Where `pg_stat_statements` can be read (None: not installed).
    statements_from: Option<Option<&'static str>>,
    /// Statements this tool ran in each service database (subtracted from the deltas).
    own: BTreeMap<&'static str, AtomicU64>,
}

fn pool(options: PgConnectOptions) -> PgPool {
    PgPoolOptions::new()
        .max_connections(2)
        .min_connections(0)
        // No ping before each use: every statement we send is one we count.
        .test_before_acquire(false)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy_with(options)
}

impl Databases {
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let base = PgConnectOptions::from_str(url)
            .context("--database-url is not a PostgreSQL URL")?
            .application_name("ocop-loadgen")
            .options([("default_transaction_read_only", "on")]);
        let stats = pool(base.clone().database("postgres"));
        let mut services = BTreeMap::new();
        for name in SERVICE_DATABASES {
            let pool = pool(base.clone().database(name));
            sqlx::query("SELECT 1")
                .execute(&pool)
                .await
                .with_context(|| format!("connect to the {name} database"))?;
            services.insert(name, pool);
        }
        let mut databases = Self {
            services,
            stats,
            statements_from: None,
            own: SERVICE_DATABASES
                .iter()
                .map(|name| (*name, AtomicU64::new(0)))
                .collect(),
        };
        databases.statements_from = databases.find_statements().await;
        Ok(databases)
    }

    /// Where the `pg_stat_statements` view exists: `postgres` (Some(None)) or a service
    /// database; None when the extension is not installed anywhere we look.
    async fn find_statements(&self) -> Option<Option<&'static str>> {
        if self.statements_on(None).await.is_ok() {
            return Some(None);
        }
        for name in SERVICE_DATABASES {
            if self.statements_on(Some(name)).await.is_ok() {
                return Some(Some(name));
            }
        }
        None
    }

    async fn statements_on(&self, database: Option<&'static str>) -> Result<i64, sqlx::Error> {
        let pool = match database {
            None => &self.stats,
            Some(name) => {
                self.count_own(name);
                &self.services[name]
            }
        };
        sqlx::query_scalar(
            "SELECT COALESCE(sum(s.calls), 0)::bigint FROM pg_stat_statements s
               JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = ANY($1)",
        )
        .bind(SERVICE_DATABASES.map(str::to_owned).to_vec())
        .fetch_one(pool)
        .await
    }

    /// Whether `pg_stat_statements` can be read.
    pub fn has_statements(&self) -> bool {
        self.statements_from.is_some()
    }

    fn count_own(&self, database: &str) {
        if let Some(count) = self.own.get(database) {
            count.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// `xact_commit` of each service database.
    async fn commits(&self) -> Option<BTreeMap<String, i64>> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT datname::text, xact_commit FROM pg_stat_database WHERE datname = ANY($1)",
        )
        .bind(SERVICE_DATABASES.map(str::to_owned).to_vec())
        .fetch_all(&self.stats)
        .await
        .ok()?;
        Some(rows.into_iter().collect())
    }

    async fn statements(&self) -> Option<i64> {
        self.statements_on(self.statements_from?).await.ok()
    }

    fn own(&self) -> BTreeMap<String, u64> {
        self.own
            .iter()
            .map(|(name, count)| ((*name).to_owned(), count.load(Ordering::Relaxed)))
            .collect()
    }

    /// Orders of the run (by idempotency-key prefix) not terminal yet.
    pub async fn open_orders(&self, key_prefix: &str) -> Option<i64> {
        self.count_own("order");
        sqlx::query_scalar(
            "SELECT count(*) FROM orders
              WHERE idempotency_key LIKE $1 AND status IN ('pending', 'awaiting_payment')",
        )
        .bind(format!("{key_prefix}%"))
        .fetch_one(&self.services["order"])
        .await
        .ok()
    }

    /// Unpublished outbox rows per service database.
    pub async fn outbox_backlog(&self) -> BTreeMap<String, i64> {
        let mut backlog = BTreeMap::new();
        for (name, pool) in &self.services {
            self.count_own(name);
            let count: Result<i64, _> =
                sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
                    .fetch_one(pool)
                    .await;
            if let Ok(count) = count {
                backlog.insert((*name).to_owned(), count);
            }
        }
        backlog
    }
}

/// `/proc/<pid>/stat`: user + system CPU time in clock ticks.
pub fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) may hold spaces and parentheses: fields after it are
    // counted from its closing parenthesis. utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// A `kB` field of `/proc/<pid>/status`, e.g. `VmRSS`.
pub fn parse_status_kib(status: &str, field: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let value = line.strip_prefix(field)?.strip_prefix(':')?;
        value.trim().strip_suffix("kB")?.trim().parse().ok()
    })
}

fn cpu_ticks(pid: u32) -> Option<u64> {
    parse_cpu_ticks(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

fn rss_kib(pid: u32) -> Option<u64> {
    parse_status_kib(
        &std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?,
        "VmRSS",
    )
}

/// Clock ticks per second of `/proc/<pid>/stat` (USER_HZ; 100 on Linux unless
/// `getconf` says otherwise).
fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .filter(|ticks: &f64| *ticks > 0.0)
        .unwrap_or(100.0)
}

/// The platform's counters at one moment.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub at: Instant,
    pub cpu_ticks: BTreeMap<String, Option<u64>>,
    pub commits: Option<BTreeMap<String, i64>>,
    pub statements: Option<i64>,
    pub own: BTreeMap<String, u64>,
    pub records: Option<BTreeMap<String, i64>>,
}

/// What happened between two snapshots.
#[derive(Debug, Clone, Default)]
pub struct Costs {
    pub wall: Duration,
    pub cpu_s: BTreeMap<String, Option<f64>>,
    pub commits: Option<i64>,
    pub commits_by_database: BTreeMap<String, i64>,
    pub statements: Option<i64>,
    pub records: Option<i64>,
    pub records_by_topic: BTreeMap<String, i64>,
}

/// Reads the platform.
#[derive(Debug)]
pub struct Probe {
    pids: Vec<(String, u32)>,
    ticks_per_s: f64,
    pub databases: Option<Arc<Databases>>,
    broker: Arc<Broker>,
    lag: Mutex<(Option<i64>, Option<i64>)>,
}

impl Probe {
    /// `pids` are the processes to measure; this process is added as `loadgen`.
    pub fn new(
        mut pids: Vec<(String, u32)>,
        databases: Option<Arc<Databases>>,
        broker: Arc<Broker>,
    ) -> Self {
        pids.push(("loadgen".into(), std::process::id()));
        Self {
            pids,
            ticks_per_s: clock_ticks(),
            databases,
            broker,
            lag: Mutex::new((None, None)),
        }
    }

    pub async fn snapshot(&self) -> Snapshot {
        let cpu_ticks = self
            .pids
            .iter()
            .map(|(name, pid)| (name.clone(), cpu_ticks(*pid)))
            .collect();
        let (commits, statements, own) = match &self.databases {
            Some(databases) => (
                databases.commits().await,
                databases.statements().await,
                databases.own(),
            ),
            None => (None, None, BTreeMap::new()),
        };
        let broker = Arc::clone(&self.broker);
        let records = tokio::task::spawn_blocking(move || {
            let topics = broker.platform_topics().ok()?;
            broker
                .high_watermarks(&topics)
                .ok()
                .map(|highs| broker::records_by_topic(&highs))
        })
        .await
        .ok()
        .flatten();
        Snapshot {
            at: Instant::now(),
            cpu_ticks,
            commits,
            statements,
            own,
            records,
        }
    }

    pub fn costs(&self, before: &Snapshot, after: &Snapshot) -> Costs {
        let cpu_s = after
            .cpu_ticks
            .iter()
            .map(|(name, ticks)| {
                let spent = match (before.cpu_ticks.get(name).copied().flatten(), ticks) {
                    (Some(before), Some(after)) => {
                        Some(after.saturating_sub(before) as f64 / self.ticks_per_s)
                    }
                    _ => None,
                };
                (name.clone(), spent)
            })
            .collect();
        let own_delta = |database: &str| {
            let after = after.own.get(database).copied().unwrap_or(0);
            let before = before.own.get(database).copied().unwrap_or(0);
            i64::try_from(after.saturating_sub(before)).unwrap_or(0)
        };
        let mut commits_by_database = BTreeMap::new();
        let commits = match (&before.commits, &after.commits) {
            (Some(before), Some(after)) => {
                for (database, count) in after {
                    let delta = count
                        - before.get(database).copied().unwrap_or(*count)
                        - own_delta(database);
                    commits_by_database.insert(database.clone(), delta.max(0));
                }
                Some(commits_by_database.values().sum())
            }
            _ => None,
        };
        let own_total: i64 = SERVICE_DATABASES.iter().map(|db| own_delta(db)).sum();
        let statements = match (before.statements, after.statements) {
            (Some(before), Some(after)) => Some((after - before - own_total).max(0)),
            _ => None,
        };
        let mut records_by_topic = BTreeMap::new();
        let records = match (&before.records, &after.records) {
            (Some(before), Some(after)) => {
                for (topic, high) in after {
                    let delta = high - before.get(topic).copied().unwrap_or(0);
                    if delta != 0 {
                        records_by_topic.insert(topic.clone(), delta);
                    }
                }
                Some(records_by_topic.values().sum())
            }
            _ => None,
        };
        Costs {
            wall: after.at.saturating_duration_since(before.at),
            cpu_s,
            commits,
            commits_by_database,
            statements,
            records,
            records_by_topic,
        }
    }

    /// One second's samples: outbox backlog and resident memory.
    pub async fn sample(&self) -> Sample {
        let outbox_backlog = match &self.databases {
            Some(databases) => databases.outbox_backlog().await,
            None => BTreeMap::new(),
        };
        let rss_kib = self
            .pids
            .iter()
            .filter_map(|(name, pid)| Some((name.clone(), rss_kib(*pid)?)))
            .collect();
        Sample {
            outbox_backlog,
            rss_kib,
            ..Sample::default()
        }
    }

    /// The latest (services' largest consumer lag, this tool's follower lag).
    pub fn lag(&self) -> (Option<i64>, Option<i64>) {
        *self.lag.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Measures the consumer lags about once a second, on a loop of its own: the broker
    /// can be slow to answer under load, and the progress line must not wait for it.
    pub async fn watch_lag(self: Arc<Self>, follower: Arc<Follower>, tracker: Arc<Tracker>) {
        let mut ticker = tokio::time::interval(Duration::from_secs(1));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let broker = Arc::clone(&self.broker);
            let measured = tokio::task::spawn_blocking(move || {
                let topics = broker.platform_topics().ok()?;
                let highs = broker.high_watermarks(&topics).ok()?;
                let lag = broker.max_group_lag(&broker.service_groups(&topics), &highs);
                Some((lag, highs))
            })
            .await
            .ok()
            .flatten();
            let Some((consumer_lag, highs)) = measured else {
                continue;
            };
            let follower_lag = Some(follower.lag(&highs));
            *self.lag.lock().unwrap_or_else(|p| p.into_inner()) = (consumer_lag, follower_lag);
            tracker.note_sample(&Sample {
                consumer_lag,
                follower_lag,
                ..Sample::default()
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_are_utime_plus_stime_even_with_a_strange_command_name() {
        let stat = "4242 (order (v2) x) S 1 4242 4242 0 -1 4194560 1234 0 0 0 \
                    150 37 0 0 20 0 12 0 98765 123456789 4321 18446744073709551615";
        assert_eq!(parse_cpu_ticks(stat), Some(187));
        assert_eq!(parse_cpu_ticks("garbage"), None);
    }

    #[test]
    fn status_fields_are_read_in_kib() {
        let status =
            "Name:\torder\nVmPeak:\t  900000 kB\nVmHWM:\t   65432 kB\nVmRSS:\t   54321 kB\n";
        assert_eq!(parse_status_kib(status, "VmRSS"), Some(54_321));
        assert_eq!(parse_status_kib(status, "VmHWM"), Some(65_432));
        assert_eq!(parse_status_kib(status, "VmSwap"), None);
    }

    #[test]
    fn this_process_can_be_measured() {
        let pid = std::process::id();
        assert!(cpu_ticks(pid).is_some());
        assert!(rss_kib(pid).unwrap() > 0);
    }
}
