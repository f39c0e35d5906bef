//! Per-client rate limits: a token bucket per client (`rate` tokens a second, up to
//! `burst`), in memory and per replica.
//!
//! Memory is bounded: a bucket left alone long enough to refill is the same as no bucket,
//! so such idle buckets are dropped by a sweep (once a minute, and when the table is
//! full, at most once a second). If the table is still full of active clients, the
//! newcomers share one overflow bucket: they are limited together rather than not at
//! all, and nobody is forgotten early.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tonic_types::{ErrorDetails, StatusExt as _};

/// How many clients a limiter tracks by default (about 100 bytes each).
pub const DEFAULT_MAX_CLIENTS: usize = 100_000;

/// How often idle buckets are swept even when the table is not full.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// The least time between two sweeps forced by a full table, so that a flood of new
/// clients does not make every call walk the whole table.
const MIN_SWEEP_GAP: Duration = Duration::from_secs(1);

/// The key of the bucket shared by clients that found the table full.
const OVERFLOW: &str = "";

/// A token-bucket rate limit per client key. Cheap to clone (shared state); a limiter
/// built with rate 0 lets everything through.
#[derive(Clone, Debug)]
pub struct RateLimiter {
    shared: Option<Arc<Shared>>,
}

#[derive(Debug)]
struct Shared {
    /// The `limit` label of `ocop_rate_limited_total`.
    name: &'static str,
    /// Tokens added per second.
    rate: f64,
    /// The bucket's size: how many calls may come at once after a quiet spell.
    burst: f64,
    max_clients: usize,
    table: Mutex<Table>,
}

#[derive(Debug)]
struct Table {
    buckets: HashMap<String, Bucket>,
    swept: Instant,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl RateLimiter {
    /// `rate` calls a second per client with bursts of `burst` (at least 1); `rate` 0
    /// disables the limit. `name` labels the refusals metric.
    pub fn new(name: &'static str, rate: f64, burst: u32) -> Self {
        Self::with_max_clients(name, rate, burst, DEFAULT_MAX_CLIENTS)
    }

    /// As [`RateLimiter::new`], tracking at most `max_clients` clients (at least 1).
    pub fn with_max_clients(name: &'static str, rate: f64, burst: u32, max_clients: usize) -> Self {
        if rate <= 0.0 || !rate.is_finite() {
            return Self::disabled();
        }
        Self {
            shared: Some(Arc::new(Shared {
                name,
                rate,
                burst: f64::from(burst.max(1)),
                max_clients: max_clients.max(1),
                table: Mutex::new(Table {
                    buckets: HashMap::new(),
                    swept: Instant::now(),
                }),
            })),
        }
    }

    /// A limiter that lets everything through.
    pub fn disabled() -> Self {
        Self { shared: None }
    }

    /// Takes one token from `client`'s bucket. `Err(wait)`: refused (counted in
    /// `ocop_rate_limited_total{limit}`); the next token comes after `wait`.
    pub fn check(&self, client: &str) -> Result<(), Duration> {
        let Some(shared) = &self.shared else {
            return Ok(());
        };
        let verdict = shared.take(client, Instant::now());
        if verdict.is_err() {
            metrics::counter!("ocop_rate_limited_total", "limit" => shared.name).increment(1);
        }
        verdict
    }
}

impl Shared {
    fn take(&self, client: &str, now: Instant) -> Result<(), Duration> {
        let mut table = self
            .table
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if now.duration_since(table.swept) >= SWEEP_EVERY {
            self.sweep(&mut table, now);
        }
        let key = if table.buckets.contains_key(client) {
            client
        } else {
            if table.buckets.len() >= self.max_clients
                && now.duration_since(table.swept) >= MIN_SWEEP_GAP
            {
                self.sweep(&mut table, now);
            }
            if table.buckets.len() >= self.max_clients {
                OVERFLOW
            } else {
                client
            }
        };
        let full = Bucket {
            tokens: self.burst,
            updated: now,
        };
        let bucket = table.buckets.entry(key.to_owned()).or_insert(full);
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate).min(self.burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / self.rate))
        }
    }

    /// Drops the buckets that have refilled (idle for `burst / rate`): they hold nothing
    /// a fresh bucket would not.
    fn sweep(&self, table: &mut Table, now: Instant) {
        let refill = Duration::from_secs_f64(self.burst / self.rate);
        table
            .buckets
            .retain(|_, bucket| now.saturating_duration_since(bucket.updated) < refill);
        table.swept = now;
    }
}

/// `RESOURCE_EXHAUSTED` for a refused call: the message says when to retry and a
/// `google.rpc.RetryInfo` detail carries the same delay for clients that back off.
pub fn rate_limited_status(retry_after: Duration) -> tonic::Status {
    // Whole milliseconds, at least one: a client must never be told to retry at once.
    let retry_after = Duration::from_millis(retry_after.as_millis().max(1) as u64);
    tonic::Status::with_error_details(
        tonic::Code::ResourceExhausted,
        format!(
            "too many requests from this client; retry in {:.3} s",
            retry_after.as_secs_f64()
        ),
        ErrorDetails::with_retry_info(Some(retry_after)),
    )
}

/// Who a call is from, for rate limiting: the subject of its verified bearer token, or
/// else the client's IP address (the peer's, or behind a trusted proxy the one it
/// forwards).
pub fn grpc_client_key<T>(request: &tonic::Request<T>, proxies: &TrustedProxies) -> String {
    if let Some(claims) = crate::auth::caller(request.extensions()) {
        return format!("sub:{}", claims.sub);
    }
    let forwarded_for = request
        .metadata()
        .get("x-forwarded-for")
        .and_then(|value| value.to_str().ok());
    proxies.client_key(request.remote_addr().map(|peer| peer.ip()), forwarded_for)
}

/// The proxies (ingress, API gateway) in front of a service whose `X-Forwarded-For` is
/// believed, so that a per-address limit counts shoppers, not the proxy.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TrustedProxies {
    /// Networks of the proxies in front of this service, comma-separated CIDRs (e.g.
    /// `10.0.0.0/8`); their `X-Forwarded-For` names the client for per-address rate
    /// limits. Empty: the peer address is the client.
    #[arg(long = "trusted-proxies", env = "TRUSTED_PROXIES", value_delimiter = ',',
          value_parser = Cidr::parse)]
    pub networks: Vec<Cidr>,
}

impl TrustedProxies {
    /// The rate-limit key of a caller reached from `peer` (unknown peers share one key).
    pub fn client_key(&self, peer: Option<IpAddr>, forwarded_for: Option<&str>) -> String {
        match peer {
            Some(peer) => format!("ip:{}", self.client_ip(peer, forwarded_for)),
            None => "unknown".to_owned(),
        }
    }

    /// The client's address: `peer`, or when `peer` is a trusted proxy, the right-most
    /// address of `forwarded_for` that is not a trusted proxy (those left of it could be
    /// written by anyone).
    pub fn client_ip(&self, peer: IpAddr, forwarded_for: Option<&str>) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let mut client = peer;
        for hop in forwarded_for.unwrap_or_default().rsplit(',') {
            let Ok(hop) = hop.trim().parse::<IpAddr>() else {
                break;
            };
            client = hop;
            if !self.trusts(hop) {
                break;
            }
        }
        client
    }

    fn trusts(&self, address: IpAddr) -> bool {
        self.networks
            .iter()
            .any(|network| network.contains(address))
    }
}

/// An IP network, `address/prefix` (a bare address is a /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    address: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        let (address, prefix) = raw.split_once('/').unwrap_or((raw, ""));
        let address: IpAddr = address
            .parse()
            .map_err(|_| format!("`{raw}` is not an IP network (a.b.c.d/n)"))?;
        let bits = if address.is_ipv4() { 32 } else { 128 };
        let prefix = if prefix.is_empty() {
            bits
        } else {
            prefix
                .parse()
                .ok()
                .filter(|prefix| *prefix <= bits)
                .ok_or_else(|| format!("`{raw}`: the prefix length must be 0 to {bits}"))?
        };
        Ok(Self { address, prefix })
    }

    pub fn contains(&self, address: IpAddr) -> bool {
        let (network, address, bits) = match (self.address, address) {
            (IpAddr::V4(network), IpAddr::V4(address)) => (
                u128::from(network.to_bits()),
                u128::from(address.to_bits()),
                32,
            ),
            (IpAddr::V6(network), IpAddr::V6(address)) => {
                (network.to_bits(), address.to_bits(), 128)
            }
            _ => return false,
        };
        let host_bits = bits - u32::from(self.prefix);
        host_bits >= bits || (network >> host_bits) == (address >> host_bits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(rate: f64, burst: u32, max_clients: usize) -> Arc<Shared> {
        RateLimiter::with_max_clients("test", rate, burst, max_clients)
            .shared
            .expect("enabled")
    }

    #[test]
    fn a_burst_passes_then_calls_wait_for_the_rate() {
        let limiter = shared(2.0, 3, 10);
        let start = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.take("a", start), Ok(()));
        }
        let wait = limiter.take("a", start).unwrap_err();
        assert!((wait.as_secs_f64() - 0.5).abs() < 1e-6, "{wait:?}");
        // Half a second later one token is back, and only one.
        let later = start + Duration::from_millis(500);
        assert_eq!(limiter.take("a", later), Ok(()));
        assert!(limiter.take("a", later).is_err());
    }

    #[test]
    fn clients_have_buckets_of_their_own() {
        let limiter = shared(1.0, 1, 10);
        let now = Instant::now();
        assert_eq!(limiter.take("a", now), Ok(()));
        assert!(limiter.take("a", now).is_err());
        assert_eq!(limiter.take("b", now), Ok(()));
    }

    #[test]
    fn idle_buckets_are_evicted_and_a_full_table_shares_an_overflow_bucket() {
        let limiter = shared(1.0, 1, 2);
        let now = Instant::now();
        assert_eq!(limiter.take("a", now), Ok(()));
        assert_eq!(limiter.take("b", now), Ok(()));
        // The table is full of active clients: newcomers share one bucket.
        assert_eq!(limiter.take("c", now), Ok(()));
        assert!(limiter.take("d", now).is_err());
        let table = limiter.table.lock().unwrap();
        assert_eq!(table.buckets.len(), 3, "a, b and the overflow bucket");
        drop(table);
        // Once a and b have refilled they are forgotten, and a newcomer gets its own.
        let later = now + Duration::from_secs(2);
        assert_eq!(limiter.take("e", later), Ok(()));
        let table = limiter.table.lock().unwrap();
        assert!(table.buckets.contains_key("e"));
        assert!(!table.buckets.contains_key("a"));
        assert!(table.buckets.len() <= 2);
    }

    #[test]
    fn a_trusted_proxy_forwards_the_client_address_and_nobody_else_does() {
        let proxies = TrustedProxies {
            networks: vec![Cidr::parse("10.0.0.0/8").unwrap()],
        };
        let ip = |raw: &str| raw.parse::<IpAddr>().unwrap();
        // Straight from the internet: the header is anyone's to write.
        assert_eq!(
            proxies.client_ip(ip("203.0.113.9"), Some("1.2.3.4")),
            ip("203.0.113.9")
        );
        // Through the ingress: the right-most untrusted hop, not what the client wrote.
        assert_eq!(
            proxies.client_ip(ip("10.1.2.3"), Some("1.2.3.4, 198.51.100.7, 10.9.9.9")),
            ip("198.51.100.7")
        );
        assert_eq!(proxies.client_ip(ip("10.1.2.3"), None), ip("10.1.2.3"));
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(Cidr::parse("::1").unwrap().contains(ip("::1")));
        assert!(!Cidr::parse("10.0.0.0/8").unwrap().contains(ip("::1")));
    }

    #[test]
    fn rate_zero_disables_the_limit() {
        let limiter = RateLimiter::new("test", 0.0, 0);
        for _ in 0..1000 {
            assert_eq!(limiter.check("a"), Ok(()));
        }
    }

    #[test]
    fn refusal_is_resource_exhausted_with_retry_info() {
        let status = rate_limited_status(Duration::from_millis(250));
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        assert_eq!(
            status.message(),
            "too many requests from this client; retry in 0.250 s"
        );
        assert_eq!(
            status.get_details_retry_info().unwrap().retry_delay,
            Some(Duration::from_millis(250))
        );
    }
}
