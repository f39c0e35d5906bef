//! When a consumer group member must be recreated: its group has records to consume, yet
//! for `stall_after` this member received nothing and no member of the group committed
//! anything. Seen on the local broker after a member was SIGKILLed and restarted: the new
//! member joined, got no partitions, and the group stayed that way (lag growing, no error
//! anywhere) until another member's join forced a rebalance. Any Kafka-compatible broker
//! can leave a member so (a lost JoinGroup/SyncGroup answer, a coordinator move), so the
//! consumer watches for it instead of trusting the broker to recover.
//!
//! A member without partitions while the others make progress is not stalled (the
//! committed positions move), nor is an idle group (nothing behind).

use std::time::{Duration, Instant};

/// The watch over one member's life (recreated with the member).
#[derive(Debug)]
pub(crate) struct StallWatch {
    stall_after: Duration,
    last_received: Instant,
    committed: Option<i64>,
    committed_since: Instant,
}

impl StallWatch {
    pub(crate) fn new(stall_after: Duration, now: Instant) -> Self {
        Self {
            stall_after,
            last_received: now,
            committed: None,
            committed_since: now,
        }
    }

    /// This member received a record.
    pub(crate) fn received(&mut self, now: Instant) {
        self.last_received = now;
    }

    /// Takes the group's latest progress (`(records behind, committed positions)`, when
    /// measured) and tells whether the member is stalled.
    pub(crate) fn stalled(&mut self, progress: Option<(i64, i64)>, now: Instant) -> bool {
        let Some((behind, committed)) = progress else {
            return false;
        };
        if self.committed != Some(committed) {
            self.committed = Some(committed);
            self.committed_since = now;
        }
        behind > 0
            && now.duration_since(self.last_received) >= self.stall_after
            && now.duration_since(self.committed_since) >= self.stall_after
    }
}

/// After a member was recreated: whether its group moves again, so the service may
/// report SERVING. It does when nothing is behind, or when the group's committed offsets
/// passed `committed_before` (what they were at the recreation); when the lag cannot be
/// measured, nothing says otherwise. (A record received says so too; the consumer sees
/// that itself.)
pub(crate) fn group_moves(progress: Option<(i64, i64)>, committed_before: Option<i64>) -> bool {
    match progress {
        None => true,
        Some((behind, committed)) => {
            behind == 0 || committed_before.is_some_and(|before| committed != before)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AFTER: Duration = Duration::from_secs(45);

    #[test]
    fn a_group_behind_with_nothing_received_and_nothing_committed_is_stalled() {
        let start = Instant::now();
        let mut watch = StallWatch::new(AFTER, start);
        assert!(!watch.stalled(Some((120, 500)), start));
        assert!(!watch.stalled(Some((120, 500)), start + AFTER / 2));
        assert!(watch.stalled(Some((120, 500)), start + AFTER));
    }

    #[test]
    fn a_recreated_member_counts_as_moving_once_its_group_commits_or_catches_up() {
        assert!(
            !group_moves(Some((120, 500)), Some(500)),
            "still behind, nothing committed"
        );
        assert!(
            group_moves(Some((90, 530)), Some(500)),
            "the group committed"
        );
        assert!(group_moves(Some((0, 500)), Some(500)), "nothing behind");
        assert!(group_moves(None, Some(500)), "lag unknown");
    }

    #[test]
    fn an_idle_group_is_not_stalled() {
        let start = Instant::now();
        let mut watch = StallWatch::new(AFTER, start);
        assert!(!watch.stalled(Some((0, 500)), start + AFTER * 10));
        assert!(!watch.stalled(None, start + AFTER * 10));
    }

    #[test]
    fn a_member_without_partitions_is_not_stalled_while_the_group_commits() {
        let start = Instant::now();
        let mut watch = StallWatch::new(AFTER, start);
        for step in 0..10u32 {
            let now = start + AFTER * step;
            assert!(
                !watch.stalled(Some((30, 500 + i64::from(step))), now),
                "{step}"
            );
        }
    }

    #[test]
    fn a_member_that_receives_is_not_stalled() {
        let start = Instant::now();
        let mut watch = StallWatch::new(AFTER, start);
        assert!(!watch.stalled(Some((30, 500)), start));
        watch.received(start + AFTER);
        assert!(!watch.stalled(Some((30, 500)), start + AFTER + AFTER / 2));
        assert!(watch.stalled(Some((30, 500)), start + AFTER * 2));
    }
}
