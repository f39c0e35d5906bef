//! The two shapes of load. Open loop: orders leave at fixed intended times whatever the
//! platform does, and every latency counts from the intended time, so a stalled platform
//! shows up as latency rather than as fewer requests (no coordinated omission). Closed
//! loop: N shoppers, each placing its next order once the last one is done with.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use rand::{SeedableRng as _, rngs::StdRng};
use tokio::{sync::oneshot, task::JoinSet};

use crate::{
    mix::{Mix, ProductPicker},
    shop::Shop,
    tracker::{PhaseId, Tracker},
};

/// How long a closed-loop shopper waits for one order before giving up on it.
const SHOPPER_PATIENCE: Duration = Duration::from_secs(60);

/// Why an open-loop phase stopped.
#[derive(Debug, Clone, PartialEq)]
pub enum Stopped {
    /// It ran its whole duration.
    Completed,
    /// Orders fell this far behind (the find-max guard).
    Backlog(usize),
}

#[derive(Debug)]
pub struct Driver {
    pub shop: Arc<Shop>,
    pub tracker: Arc<Tracker>,
    pub mix: Mix,
    pub picker: Arc<ProductPicker>,
    pub seed: u64,
    rng: Mutex<StdRng>,
}

impl Driver {
    pub fn new(
        shop: Arc<Shop>,
        tracker: Arc<Tracker>,
        mix: Mix,
        picker: ProductPicker,
        seed: u64,
    ) -> Self {
        Self {
            shop,
            tracker,
            mix,
            picker: Arc::new(picker),
            seed,
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
        }
    }

    /// Places orders at `rate` per second for `duration`. With `guard`, stops early
    /// once more than that many orders of the phase are behind (neither settled nor
    /// waiting for a payment deadline).
    pub async fn open_loop(
        &self,
        phase: PhaseId,
        rate: f64,
        duration: Duration,
        guard: Option<usize>,
    ) -> Stopped {
        let start = Instant::now();
        let interval = Duration::from_secs_f64(1.0 / rate);
        let mut calls = JoinSet::new();
        let mut next_guard_check = start;
        let mut stopped = Stopped::Completed;
        for n in 0u32.. {
            let offset = interval.mul_f64(f64::from(n));
            if offset >= duration {
                break;
            }
            let intended = start + offset;
            if let Some(limit) = guard
                && intended >= next_guard_check
            {
                next_guard_check = intended + Duration::from_millis(250);
                let behind = self.tracker.behind(phase);
                if behind > limit {
                    stopped = Stopped::Backlog(behind);
                    break;
                }
            }
            tokio::time::sleep_until(intended.into()).await;
            let plan = {
                let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
                self.mix.plan(&mut *rng, &self.picker)
            };
            calls.spawn(Arc::clone(&self.shop).place(plan, intended, phase, None));
            while calls.try_join_next().is_some() {}
        }
        if stopped == Stopped::Completed {
            // The phase lasts its duration even when the last arrival came earlier.
            tokio::time::sleep_until((start + duration).into()).await;
        }
        self.tracker.end_load(phase);
        // The phase's last calls still count.
        while calls.join_next().await.is_some() {}
        stopped
    }

    /// `concurrency` shoppers for `duration`, each placing an order and waiting until
    /// it is settled (or, abandoned, left to its deadline) before the next.
    pub async fn closed_loop(&self, phase: PhaseId, concurrency: usize, duration: Duration) {
        let end = Instant::now() + duration;
        let mut shoppers = JoinSet::new();
        for shopper in 0..concurrency {
            let shop = Arc::clone(&self.shop);
            let mix = self.mix.clone();
            let picker = Arc::clone(&self.picker);
            let tracker = Arc::clone(&self.tracker);
            let mut rng = StdRng::seed_from_u64(
                self.seed ^ (shopper as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15),
            );
            shoppers.spawn(async move {
                while Instant::now() < end {
                    let plan = mix.plan(&mut rng, &picker);
                    let (done, waiting) = oneshot::channel();
                    let placed = Arc::clone(&shop)
                        .place(plan, Instant::now(), phase, Some(done))
                        .await;
                    if !placed {
                        // Do not spin on a platform that refuses everything.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                    tokio::select! {
                        result = tokio::time::timeout(SHOPPER_PATIENCE, waiting) => {
                            if result.is_err() {
                                tracker.record_other_error(
                                    phase,
                                    "shopper gave up waiting for an order".into(),
                                );
                            }
                        }
                        () = tokio::time::sleep_until(end.into()) => break,
                    }
                }
            });
        }
        while shoppers.join_next().await.is_some() {}
        self.tracker.end_load(phase);
    }
}
