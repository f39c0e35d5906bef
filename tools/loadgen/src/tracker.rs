//! What the load generator knows about every order it placed — from its own calls and
//! from the saga's events — and the figures of each measurement phase (a run, a
//! find-max step, the half-rate run).
//!
//! Events can overtake the PlaceOrder answer that tells us an order's id, so events for
//! an id we do not know yet wait a while in `early` and are replayed when it registers.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    sync::Mutex,
    time::{Duration, Instant, SystemTime},
};

use hdrhistogram::Histogram;
use ocop_proto::payment::v1::PaymentProvider;
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::mix::Fate;

/// Index of a phase in the tracker.
pub type PhaseId = usize;

/// How long events for an unknown order are kept in case it is ours.
const EARLY_KEEP: Duration = Duration::from_secs(120);
/// Histograms cover 1 µs to an hour.
const HISTOGRAM_MAX_US: u64 = 3_600_000_000;

/// What happened to an order, as far as a shopper cares.
#[derive(Debug, Clone, PartialEq)]
pub enum SagaEvent {
    PaymentInitiated {
        payment_id: Uuid,
        provider: PaymentProvider,
        expires_at: Option<SystemTime>,
    },
    PaymentSucceeded,
    PaymentFailed,
    PaymentExpired,
    Confirmed,
    /// With the reason in lower case, e.g. `payment_expired`.
    Cancelled(String),
}

/// What the shopper does next, for the caller to carry out.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Pay (`succeed`) or decline on the sandbox gateway.
    Settle {
        order_id: Uuid,
        payment_id: Uuid,
        succeed: bool,
    },
    /// CancelOrder, with the access token PlaceOrder answered.
    Cancel {
        order_id: Uuid,
        access_token: String,
    },
}

/// How an order ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Terminal {
    Confirmed,
    Cancelled(String),
}

/// An order the run placed.
#[derive(Debug)]
pub struct NewOrder {
    pub phase: PhaseId,
    pub intended: Instant,
    pub fate: Fate,
    pub key: String,
    /// The shopper's key to the order, from PlaceOrder.
    pub access_token: String,
    /// Woken when the shopper is done with the order (closed loop).
    pub waiter: Option<oneshot::Sender<()>>,
}

#[derive(Debug)]
struct Tracked {
    phase: PhaseId,
    intended: Instant,
    fate: Fate,
    key: String,
    access_token: String,
    payment: Option<(Uuid, PaymentProvider)>,
    deadline: Option<SystemTime>,
    paid: Option<Instant>,
    terminal: Option<(Terminal, Instant)>,
    waiter: Option<oneshot::Sender<()>>,
}

impl Tracked {
    /// Whether the order can only end when its payment deadline passes: abandoned, or
    /// declined with a provider that sends nothing for a failed payment (VietQR bank
    /// transfers, ZaloPay).
    fn waits_for_deadline(&self) -> bool {
        match self.fate {
            Fate::Abandon => true,
            Fate::Decline => self
                .payment
                .is_some_and(|(_, provider)| !calls_back_on_failure(provider)),
            Fate::Pay | Fate::Cancel => false,
        }
    }

    fn wake(&mut self) {
        if let Some(waiter) = self.waiter.take() {
            let _ = waiter.send(());
        }
    }
}

/// Whether the provider tells the shop about a failed payment (ZaloPay and a bank do not).
pub fn calls_back_on_failure(provider: PaymentProvider) -> bool {
    !matches!(provider, PaymentProvider::Zalopay | PaymentProvider::Vietqr)
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HISTOGRAM_MAX_US, 3).expect("valid histogram bounds")
}

fn record(histogram: &mut Histogram<u64>, elapsed: Duration) {
    let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
    histogram.saturating_record(micros.clamp(1, HISTOGRAM_MAX_US));
}

/// The figures of one phase.
#[derive(Debug, Clone)]
pub struct Phase {
    pub label: String,
    pub target_rate: Option<f64>,
    pub started: Instant,
    /// When the load of the phase stopped.
    pub load_ended: Option<Instant>,
    /// PlaceOrder calls made (first attempts).
    pub attempted: u64,
    /// Orders placed (PlaceOrder answered with an order).
    pub placed: u64,
    /// Orders whose PlaceOrder never got an answer, even after retries.
    pub failed: u64,
    /// PlaceOrder latency from the intended send time.
    pub place: Histogram<u64>,
    /// Intended send time → OrderConfirmed observed.
    pub e2e: Histogram<u64>,
    /// Intended send time → PaymentInitiated observed (the saga up to payment).
    pub initiated: Histogram<u64>,
    /// The shopper paid → OrderConfirmed observed (the saga after payment).
    pub paid_to_confirmed: Histogram<u64>,
    pub confirmed: u64,
    pub cancelled: BTreeMap<String, u64>,
    /// The last confirmation of an order of this phase.
    pub last_confirmed: Option<Instant>,
    /// PlaceOrder errors by gRPC code (every attempt).
    pub errors: BTreeMap<String, u64>,
    /// Errors of the shopper's other calls (paying, cancelling, retries).
    pub other_errors: BTreeMap<String, u64>,
    /// Idempotent resends of PlaceOrder.
    pub retries: u64,
    /// Fates of the placed orders.
    pub fates: BTreeMap<&'static str, u64>,
    /// Sampled maxima while the phase was current.
    pub max_outbox_backlog: Option<i64>,
    pub max_outbox_backlog_by_service: BTreeMap<String, i64>,
    pub peak_rss_kib: BTreeMap<String, u64>,
    pub max_consumer_lag: Option<i64>,
    pub max_follower_lag: Option<i64>,
}

impl Phase {
    fn new(label: String, target_rate: Option<f64>) -> Self {
        Self {
            label,
            target_rate,
            started: Instant::now(),
            load_ended: None,
            attempted: 0,
            placed: 0,
            failed: 0,
            place: histogram(),
            e2e: histogram(),
            initiated: histogram(),
            paid_to_confirmed: histogram(),
            confirmed: 0,
            cancelled: BTreeMap::new(),
            last_confirmed: None,
            errors: BTreeMap::new(),
            other_errors: BTreeMap::new(),
            retries: 0,
            fates: BTreeMap::new(),
            max_outbox_backlog: None,
            max_outbox_backlog_by_service: BTreeMap::new(),
            peak_rss_kib: BTreeMap::new(),
            max_consumer_lag: None,
            max_follower_lag: None,
        }
    }

    /// Several phases as one (the whole of a find-max ramp).
    pub fn merged(label: &str, phases: &[Phase]) -> Self {
        let mut all = Self::new(label.to_owned(), None);
        if let Some(first) = phases.first() {
            all.started = first.started;
        }
        for phase in phases {
            all.load_ended = all.load_ended.max(phase.load_ended);
            all.attempted += phase.attempted;
            all.placed += phase.placed;
            all.failed += phase.failed;
            for (into, from) in [
                (&mut all.place, &phase.place),
                (&mut all.e2e, &phase.e2e),
                (&mut all.initiated, &phase.initiated),
                (&mut all.paid_to_confirmed, &phase.paid_to_confirmed),
            ] {
                into.add(from).expect("histograms of the same bounds");
            }
            all.confirmed += phase.confirmed;
            add_counts(&mut all.cancelled, &phase.cancelled);
            all.last_confirmed = all.last_confirmed.max(phase.last_confirmed);
            add_counts(&mut all.errors, &phase.errors);
            add_counts(&mut all.other_errors, &phase.other_errors);
            all.retries += phase.retries;
            for (fate, count) in &phase.fates {
                *all.fates.entry(fate).or_default() += count;
            }
            all.max_outbox_backlog = all.max_outbox_backlog.max(phase.max_outbox_backlog);
            max_into(
                &mut all.max_outbox_backlog_by_service,
                &phase.max_outbox_backlog_by_service,
            );
            max_into(&mut all.peak_rss_kib, &phase.peak_rss_kib);
            all.max_consumer_lag = all.max_consumer_lag.max(phase.max_consumer_lag);
            all.max_follower_lag = all.max_follower_lag.max(phase.max_follower_lag);
        }
        all
    }

    pub fn cancelled_total(&self) -> u64 {
        self.cancelled.values().sum()
    }

    pub fn errors_total(&self) -> u64 {
        self.errors.values().sum()
    }
}

fn add_counts(into: &mut BTreeMap<String, u64>, from: &BTreeMap<String, u64>) {
    for (key, count) in from {
        *into.entry(key.clone()).or_default() += count;
    }
}

fn max_into<V: Ord + Copy>(into: &mut BTreeMap<String, V>, from: &BTreeMap<String, V>) {
    for (key, value) in from {
        let entry = into.entry(key.clone()).or_insert(*value);
        *entry = (*entry).max(*value);
    }
}

/// One second's samples of the platform.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    pub outbox_backlog: BTreeMap<String, i64>,
    pub rss_kib: BTreeMap<String, u64>,
    pub consumer_lag: Option<i64>,
    pub follower_lag: Option<i64>,
}

/// Running totals over every phase, for the progress line.
#[derive(Debug, Clone, Copy, Default)]
pub struct Totals {
    pub placed: u64,
    pub confirmed: u64,
    pub cancelled: u64,
    pub errors: u64,
    pub in_flight: u64,
    /// PlaceOrder calls never answered (their orders may exist all the same).
    pub unanswered: u64,
}

/// What is still open at the end of a run.
#[derive(Debug, Clone, Default)]
pub struct Open {
    pub orders: usize,
    /// Of which only their payment deadline can end.
    pub awaiting_deadline: usize,
    pub latest_deadline: Option<SystemTime>,
}

/// What the check needs to know about an order.
#[derive(Debug, Clone)]
pub struct OrderView {
    pub id: Uuid,
    pub key: String,
    pub fate: Fate,
    pub terminal: Option<Terminal>,
}

#[derive(Debug)]
struct Inner {
    orders: HashMap<Uuid, Tracked>,
    early: HashMap<Uuid, Vec<(Instant, SagaEvent)>>,
    early_order: VecDeque<(Instant, Uuid)>,
    phases: Vec<Phase>,
    current: PhaseId,
    totals: Totals,
    /// Contradictions seen while running (the check reports them).
    problems: Vec<String>,
}

/// Shared by the drivers, the event follower and the sampler.
#[derive(Debug)]
pub struct Tracker {
    /// Whether the shopper pays and declines (false when the sandbox settles by itself).
    shopper_pays: bool,
    inner: Mutex<Inner>,
}

impl Tracker {
    pub fn new(shopper_pays: bool) -> Self {
        Self {
            shopper_pays,
            inner: Mutex::new(Inner {
                orders: HashMap::new(),
                early: HashMap::new(),
                early_order: VecDeque::new(),
                phases: vec![Phase::new("setup".into(), None)],
                current: 0,
                totals: Totals::default(),
                problems: Vec::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts a new phase; samples and new orders go to it from now on.
    pub fn begin_phase(&self, label: impl Into<String>, target_rate: Option<f64>) -> PhaseId {
        let mut inner = self.lock();
        inner.phases.push(Phase::new(label.into(), target_rate));
        inner.current = inner.phases.len() - 1;
        inner.current
    }

    /// Sets the arrival rate a phase aims at.
    pub fn set_target(&self, phase: PhaseId, rate: Option<f64>) {
        self.lock().phases[phase].target_rate = rate;
    }

    /// The current phase's label and target rate.
    pub fn current(&self) -> (String, Option<f64>) {
        let inner = self.lock();
        let phase = &inner.phases[inner.current];
        (phase.label.clone(), phase.target_rate)
    }

    /// The load of `phase` stopped.
    pub fn end_load(&self, phase: PhaseId) {
        self.lock().phases[phase].load_ended = Some(Instant::now());
    }

    pub fn phase(&self, phase: PhaseId) -> Phase {
        self.lock().phases[phase].clone()
    }

    pub fn phases(&self, ids: impl IntoIterator<Item = PhaseId>) -> Vec<Phase> {
        let inner = self.lock();
        ids.into_iter().map(|id| inner.phases[id].clone()).collect()
    }

    pub fn attempted(&self, phase: PhaseId, fate: Fate) {
        let mut inner = self.lock();
        let phase = &mut inner.phases[phase];
        phase.attempted += 1;
        *phase.fates.entry(fate.as_str()).or_default() += 1;
    }

    /// A PlaceOrder answered after `latency` (from its intended send time).
    pub fn record_place(&self, phase: PhaseId, latency: Duration) {
        let mut inner = self.lock();
        record(&mut inner.phases[phase].place, latency);
    }

    /// A failed PlaceOrder attempt.
    pub fn record_error(&self, phase: PhaseId, code: &str) {
        let mut inner = self.lock();
        *inner.phases[phase]
            .errors
            .entry(code.to_owned())
            .or_default() += 1;
        inner.totals.errors += 1;
    }

    /// A failed call other than PlaceOrder (`what` names the call and the error).
    pub fn record_other_error(&self, phase: PhaseId, what: String) {
        let mut inner = self.lock();
        *inner.phases[phase].other_errors.entry(what).or_default() += 1;
        inner.totals.errors += 1;
    }

    /// A PlaceOrder that never got an answer.
    pub fn record_failed(&self, phase: PhaseId) {
        let mut inner = self.lock();
        inner.phases[phase].failed += 1;
        inner.totals.unanswered += 1;
    }

    pub fn record_retry(&self, phase: PhaseId) {
        self.lock().phases[phase].retries += 1;
    }

    /// Something that must never happen (an idempotency violation, contradictory events).
    pub fn problem(&self, problem: String) {
        self.lock().problems.push(problem);
    }

    pub fn problems(&self) -> Vec<String> {
        self.lock().problems.clone()
    }

    /// The phase of an order we placed.
    pub fn phase_of(&self, order_id: Uuid) -> Option<PhaseId> {
        self.lock().orders.get(&order_id).map(|order| order.phase)
    }

    /// A placed order; returns what to do for the events that came before its answer.
    pub fn register(&self, order_id: Uuid, order: NewOrder) -> Vec<Action> {
        let mut inner = self.lock();
        if inner.orders.contains_key(&order_id) {
            // Placed twice under two keys cannot be: the check reports it.
            inner.problems.push(format!(
                "order {order_id}: returned for idempotency key {} and an earlier key",
                order.key
            ));
            return Vec::new();
        }
        inner.phases[order.phase].placed += 1;
        inner.totals.placed += 1;
        inner.totals.in_flight += 1;
        inner.orders.insert(
            order_id,
            Tracked {
                phase: order.phase,
                intended: order.intended,
                fate: order.fate,
                key: order.key,
                access_token: order.access_token,
                payment: None,
                deadline: None,
                paid: None,
                terminal: None,
                waiter: order.waiter,
            },
        );
        let early = inner.early.remove(&order_id).unwrap_or_default();
        let mut actions = Vec::new();
        for (at, event) in early {
            actions.extend(self.apply(&mut inner, order_id, event, at));
        }
        actions
    }

    /// An event observed at `at`; returns what the shopper does about it.
    pub fn observe(&self, order_id: Uuid, event: SagaEvent, at: Instant) -> Vec<Action> {
        let mut inner = self.lock();
        if !inner.orders.contains_key(&order_id) {
            while inner
                .early_order
                .front()
                .is_some_and(|(seen, _)| at.saturating_duration_since(*seen) > EARLY_KEEP)
            {
                if let Some((_, stale)) = inner.early_order.pop_front() {
                    inner.early.remove(&stale);
                }
            }
            inner.early_order.push_back((at, order_id));
            inner.early.entry(order_id).or_default().push((at, event));
            return Vec::new();
        }
        self.apply(&mut inner, order_id, event, at)
    }

    fn apply(
        &self,
        inner: &mut Inner,
        order_id: Uuid,
        event: SagaEvent,
        at: Instant,
    ) -> Vec<Action> {
        let Inner {
            orders,
            phases,
            totals,
            problems,
            ..
        } = inner;
        let Some(order) = orders.get_mut(&order_id) else {
            return Vec::new();
        };
        let phase = &mut phases[order.phase];
        let mut actions = Vec::new();
        match event {
            SagaEvent::PaymentInitiated {
                payment_id,
                provider,
                expires_at,
            } => {
                if order.payment.is_some() {
                    return actions; // a redelivery
                }
                order.payment = Some((payment_id, provider));
                order.deadline = expires_at;
                record(
                    &mut phase.initiated,
                    at.saturating_duration_since(order.intended),
                );
                if order.terminal.is_some() {
                    return actions;
                }
                match order.fate {
                    Fate::Pay | Fate::Decline if self.shopper_pays => {
                        actions.push(Action::Settle {
                            order_id,
                            payment_id,
                            succeed: order.fate == Fate::Pay,
                        });
                    }
                    Fate::Cancel => actions.push(Action::Cancel {
                        order_id,
                        access_token: order.access_token.clone(),
                    }),
                    _ => {}
                }
                if order.waits_for_deadline() {
                    // The shopper walks away; only the deadline ends the order now.
                    order.wake();
                }
            }
            SagaEvent::Confirmed => match &order.terminal {
                None => {
                    order.terminal = Some((Terminal::Confirmed, at));
                    phase.confirmed += 1;
                    phase.last_confirmed = phase.last_confirmed.max(Some(at));
                    record(&mut phase.e2e, at.saturating_duration_since(order.intended));
                    if let Some(paid) = order.paid {
                        record(
                            &mut phase.paid_to_confirmed,
                            at.saturating_duration_since(paid),
                        );
                    }
                    totals.confirmed += 1;
                    totals.in_flight -= 1;
                    order.wake();
                }
                Some((Terminal::Confirmed, _)) => {}
                Some((Terminal::Cancelled(_), _)) => problems.push(format!(
                    "order {order_id}: OrderConfirmed after OrderCancelled"
                )),
            },
            SagaEvent::Cancelled(reason) => match &order.terminal {
                None => {
                    *phase.cancelled.entry(reason.clone()).or_default() += 1;
                    order.terminal = Some((Terminal::Cancelled(reason), at));
                    totals.cancelled += 1;
                    totals.in_flight -= 1;
                    order.wake();
                }
                Some((Terminal::Cancelled(_), _)) => {}
                Some((Terminal::Confirmed, _)) => problems.push(format!(
                    "order {order_id}: OrderCancelled after OrderConfirmed"
                )),
            },
            SagaEvent::PaymentSucceeded | SagaEvent::PaymentFailed | SagaEvent::PaymentExpired => {}
        }
        actions
    }

    /// The shopper paid (or declined) `order_id` now.
    pub fn paid(&self, order_id: Uuid) {
        if let Some(order) = self.lock().orders.get_mut(&order_id) {
            order.paid = Some(Instant::now());
        }
    }

    pub fn totals(&self) -> Totals {
        self.lock().totals
    }

    /// Orders not yet terminal (of `phase`, or of every phase).
    pub fn open(&self, phase: Option<PhaseId>) -> Open {
        let inner = self.lock();
        let mut open = Open::default();
        for order in inner.orders.values() {
            if order.terminal.is_some() || phase.is_some_and(|phase| order.phase != phase) {
                continue;
            }
            open.orders += 1;
            if order.waits_for_deadline() {
                open.awaiting_deadline += 1;
                open.latest_deadline = open.latest_deadline.max(order.deadline);
            }
        }
        open
    }

    /// Open orders of `phase` that do not wait for a deadline: they are behind.
    pub fn behind(&self, phase: PhaseId) -> usize {
        let open = self.open(Some(phase));
        open.orders - open.awaiting_deadline
    }

    /// placed→confirmed of `phase` counting every order the shopper paid that is not
    /// confirmed yet as taking at least until `now` (so a backlog shows in the tail
    /// instead of hiding in the survivors).
    pub fn censored_e2e(&self, phase: PhaseId, now: Instant) -> Histogram<u64> {
        let inner = self.lock();
        let mut histogram = inner.phases[phase].e2e.clone();
        for order in inner.orders.values() {
            if order.phase == phase && order.fate == Fate::Pay && order.terminal.is_none() {
                record(
                    &mut histogram,
                    now.saturating_duration_since(order.intended),
                );
            }
        }
        histogram
    }

    /// Notes one second's samples in the current phase.
    pub fn note_sample(&self, sample: &Sample) {
        let mut inner = self.lock();
        let current = inner.current;
        let phase = &mut inner.phases[current];
        if !sample.outbox_backlog.is_empty() {
            let total: i64 = sample.outbox_backlog.values().sum();
            phase.max_outbox_backlog = phase.max_outbox_backlog.max(Some(total));
            max_into(
                &mut phase.max_outbox_backlog_by_service,
                &sample.outbox_backlog,
            );
        }
        max_into(&mut phase.peak_rss_kib, &sample.rss_kib);
        phase.max_consumer_lag = phase.max_consumer_lag.max(sample.consumer_lag);
        phase.max_follower_lag = phase.max_follower_lag.max(sample.follower_lag);
    }

    /// Every order placed, for the check.
    pub fn orders(&self) -> Vec<OrderView> {
        self.lock()
            .orders
            .iter()
            .map(|(id, order)| OrderView {
                id: *id,
                key: order.key.clone(),
                fate: order.fate,
                terminal: order
                    .terminal
                    .as_ref()
                    .map(|(terminal, _)| terminal.clone()),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn initiated(provider: PaymentProvider) -> SagaEvent {
        SagaEvent::PaymentInitiated {
            payment_id: Uuid::from_u128(9),
            provider,
            expires_at: None,
        }
    }

    fn placed(tracker: &Tracker, phase: PhaseId, fate: Fate) -> (Uuid, Vec<Action>) {
        let id = Uuid::now_v7();
        let actions = tracker.register(
            id,
            NewOrder {
                phase,
                intended: Instant::now(),
                fate,
                key: format!("k-{id}"),
                access_token: String::new(),
                waiter: None,
            },
        );
        (id, actions)
    }

    #[test]
    fn a_paying_shopper_pays_when_the_payment_is_initiated() {
        let tracker = Tracker::new(true);
        let phase = tracker.begin_phase("run", Some(1.0));
        let (id, _) = placed(&tracker, phase, Fate::Pay);
        let actions = tracker.observe(id, initiated(PaymentProvider::Vnpay), Instant::now());
        assert_eq!(
            actions,
            vec![Action::Settle {
                order_id: id,
                payment_id: Uuid::from_u128(9),
                succeed: true
            }]
        );
        assert!(
            tracker
                .observe(id, initiated(PaymentProvider::Vnpay), Instant::now())
                .is_empty(),
            "a redelivered event is not paid twice"
        );
        tracker.observe(id, SagaEvent::Confirmed, Instant::now());
        let phase = tracker.phase(phase);
        assert_eq!((phase.placed, phase.confirmed, phase.e2e.len()), (1, 1, 1));
        assert_eq!(tracker.totals().in_flight, 0);
    }

    #[test]
    fn events_that_overtake_the_answer_are_replayed_at_registration() {
        let tracker = Tracker::new(true);
        let phase = tracker.begin_phase("run", None);
        let id = Uuid::now_v7();
        assert!(
            tracker
                .observe(id, initiated(PaymentProvider::Sandbox), Instant::now())
                .is_empty()
        );
        let actions = tracker.register(
            id,
            NewOrder {
                phase,
                intended: Instant::now(),
                fate: Fate::Cancel,
                key: "k".into(),
                access_token: "t".into(),
                waiter: None,
            },
        );
        assert_eq!(
            actions,
            vec![Action::Cancel {
                order_id: id,
                access_token: "t".into()
            }]
        );
    }

    #[test]
    fn the_sandbox_paying_by_itself_leaves_the_shopper_nothing_to_pay() {
        let tracker = Tracker::new(false);
        let phase = tracker.begin_phase("run", None);
        let (id, _) = placed(&tracker, phase, Fate::Pay);
        assert!(
            tracker
                .observe(id, initiated(PaymentProvider::Sandbox), Instant::now())
                .is_empty()
        );
    }

    #[test]
    fn abandoned_and_silently_declined_orders_wait_for_their_deadline() {
        let tracker = Tracker::new(true);
        let phase = tracker.begin_phase("run", None);
        let (abandoned, _) = placed(&tracker, phase, Fate::Abandon);
        let (declined_zalopay, _) = placed(&tracker, phase, Fate::Decline);
        let (declined_momo, _) = placed(&tracker, phase, Fate::Decline);
        let (paid, _) = placed(&tracker, phase, Fate::Pay);
        let now = Instant::now();
        tracker.observe(abandoned, initiated(PaymentProvider::Sandbox), now);
        tracker.observe(declined_zalopay, initiated(PaymentProvider::Zalopay), now);
        tracker.observe(declined_momo, initiated(PaymentProvider::Momo), now);
        let open = tracker.open(None);
        assert_eq!((open.orders, open.awaiting_deadline), (4, 2));
        assert_eq!(
            tracker.behind(phase),
            2,
            "the MoMo decline and the paid order"
        );
        tracker.observe(paid, SagaEvent::Confirmed, now);
        assert_eq!(tracker.behind(phase), 1);
    }

    #[test]
    fn contradictory_terminal_events_are_problems() {
        let tracker = Tracker::new(true);
        let phase = tracker.begin_phase("run", None);
        let (id, _) = placed(&tracker, phase, Fate::Pay);
        tracker.observe(id, SagaEvent::Confirmed, Instant::now());
        tracker.observe(id, SagaEvent::Confirmed, Instant::now());
        assert!(tracker.problems().is_empty(), "a duplicate is fine");
        tracker.observe(id, SagaEvent::Cancelled("operator".into()), Instant::now());
        assert_eq!(tracker.problems().len(), 1);
        assert_eq!(tracker.totals().confirmed, 1);
        assert_eq!(tracker.totals().cancelled, 0);
    }

    #[test]
    fn unconfirmed_paid_orders_count_in_the_censored_tail() {
        let tracker = Tracker::new(true);
        let phase = tracker.begin_phase("run", None);
        let (fast, _) = placed(&tracker, phase, Fate::Pay);
        placed(&tracker, phase, Fate::Pay);
        placed(&tracker, phase, Fate::Abandon);
        tracker.observe(fast, SagaEvent::Confirmed, Instant::now());
        let later = Instant::now() + Duration::from_secs(5);
        let censored = tracker.censored_e2e(phase, later);
        assert_eq!(censored.len(), 2, "the abandoned order is not waited for");
        assert!(censored.max() >= 5_000_000);
    }

    #[test]
    fn a_waiting_shopper_is_woken_when_done() {
        let tracker = Tracker::new(true);
        let phase = tracker.begin_phase("run", None);
        let (sender, mut receiver) = oneshot::channel();
        let id = Uuid::now_v7();
        tracker.register(
            id,
            NewOrder {
                phase,
                intended: Instant::now(),
                fate: Fate::Abandon,
                key: "k".into(),
                access_token: String::new(),
                waiter: Some(sender),
            },
        );
        assert!(receiver.try_recv().is_err());
        tracker.observe(id, initiated(PaymentProvider::Sandbox), Instant::now());
        assert!(
            receiver.try_recv().is_ok(),
            "an abandoning shopper walks away"
        );
    }
}
