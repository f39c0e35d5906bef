//! Partitions set aside while one of their records waits for another try.
//!
//! A record whose handler failed with a transient error is not retried in place: that
//! would hold up every other partition and topic of the consumer (and, during a long
//! database outage, stop it polling until the group evicted it). Instead the consumer
//! pauses the record's partition, seeks it back to the record, and goes on serving the
//! others; once the backoff has passed the partition is resumed and the record fetched
//! again. This module keeps the bookkeeping (which partition waits, from which offset,
//! after how many attempts, until when); the consumer does the pausing and seeking.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

/// A record's try that failed with an error worth another try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failed {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// Attempts spent on the record so far (a database outage spends none).
    pub attempts: u32,
}

#[derive(Debug)]
struct Waiting {
    offset: i64,
    attempts: u32,
    next_backoff: Duration,
    /// `Some` while the partition is paused.
    resume_at: Option<Instant>,
}

/// The partitions of one member that hold a record for another try.
#[derive(Debug)]
pub(crate) struct Deferrals {
    initial_backoff: Duration,
    max_backoff: Duration,
    partitions: HashMap<(String, i32), Waiting>,
}

impl Deferrals {
    pub fn new(initial_backoff: Duration, max_backoff: Duration) -> Self {
        Self {
            initial_backoff,
            max_backoff,
            partitions: HashMap::new(),
        }
    }

    /// Attempts already spent on the record at `offset` (0 for a record never tried).
    pub fn attempts(&self, topic: &str, partition: i32, offset: i64) -> u32 {
        if self.partitions.is_empty() {
            return 0; // the usual case, on every record: no key to build
        }
        self.partitions
            .get(&(topic.to_owned(), partition))
            .filter(|waiting| waiting.offset == offset)
            .map_or(0, |waiting| waiting.attempts)
    }

    /// The offset of the record a paused partition waits with (`None`: not paused).
    pub fn paused_at(&self, topic: &str, partition: i32) -> Option<i64> {
        if self.partitions.is_empty() {
            return None;
        }
        self.partitions
            .get(&(topic.to_owned(), partition))
            .filter(|waiting| waiting.resume_at.is_some())
            .map(|waiting| waiting.offset)
    }

    pub fn any_paused(&self) -> bool {
        self.partitions
            .values()
            .any(|waiting| waiting.resume_at.is_some())
    }

    /// Sets the failed record's partition aside; returns how long it waits. The wait
    /// doubles with every failed try of the same record, up to the maximum.
    pub fn defer(&mut self, failed: &Failed, now: Instant) -> Duration {
        let fresh = Waiting {
            offset: failed.offset,
            attempts: 0,
            next_backoff: self.initial_backoff,
            resume_at: None,
        };
        let waiting = self
            .partitions
            .entry((failed.topic.clone(), failed.partition))
            .or_insert(fresh);
        if waiting.offset != failed.offset {
            waiting.offset = failed.offset;
            waiting.next_backoff = self.initial_backoff;
        }
        waiting.attempts = failed.attempts;
        let wait = waiting.next_backoff;
        waiting.next_backoff = (wait * 2).min(self.max_backoff);
        waiting.resume_at = Some(now + wait);
        wait
    }

    /// When the next paused partition is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.partitions
            .values()
            .filter_map(|waiting| waiting.resume_at)
            .min()
    }

    /// The paused partitions whose wait is over, marked as resumed (their record is
    /// remembered until it is handled, for its attempt count).
    pub fn due(&mut self, now: Instant) -> Vec<(String, i32)> {
        let mut due = Vec::new();
        for (partition, waiting) in &mut self.partitions {
            if waiting.resume_at.is_some_and(|at| at <= now) {
                waiting.resume_at = None;
                due.push(partition.clone());
            }
        }
        due
    }

    /// The record at `offset` of the partition was handled (applied, a duplicate or
    /// dead-lettered): nothing of the partition waits any more.
    pub fn handled(&mut self, topic: &str, partition: i32, offset: i64) {
        if self.partitions.is_empty() {
            return;
        }
        let key = (topic.to_owned(), partition);
        if self
            .partitions
            .get(&key)
            .is_some_and(|waiting| waiting.resume_at.is_none() && waiting.offset <= offset)
        {
            self.partitions.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn failed(offset: i64, attempts: u32) -> Failed {
        Failed {
            topic: "t".into(),
            partition: 0,
            offset,
            attempts,
        }
    }

    #[test]
    fn a_record_waits_longer_after_each_failure_up_to_the_maximum() {
        let mut deferrals = Deferrals::new(100 * MS, 300 * MS);
        let now = Instant::now();
        let waits: Vec<Duration> = (1..=4)
            .map(|attempt| deferrals.defer(&failed(7, attempt), now))
            .collect();
        assert_eq!(waits, [100 * MS, 200 * MS, 300 * MS, 300 * MS]);
        assert_eq!(deferrals.attempts("t", 0, 7), 4);
        assert_eq!(
            deferrals.attempts("t", 0, 8),
            0,
            "another record starts afresh"
        );
    }

    #[test]
    fn a_paused_partition_is_due_after_its_wait_and_forgotten_once_handled() {
        let mut deferrals = Deferrals::new(100 * MS, Duration::from_secs(5));
        let now = Instant::now();
        deferrals.defer(&failed(7, 1), now);
        assert_eq!(deferrals.paused_at("t", 0), Some(7));
        assert_eq!(deferrals.paused_at("t", 1), None);
        assert_eq!(deferrals.next_due(), Some(now + 100 * MS));
        assert!(deferrals.due(now + 50 * MS).is_empty());
        assert_eq!(deferrals.due(now + 100 * MS), [("t".to_owned(), 0)]);
        assert!(!deferrals.any_paused());
        // Resumed, the record is tried again with its attempts remembered …
        assert_eq!(deferrals.attempts("t", 0, 7), 1);
        // … and handled, the partition is free.
        deferrals.handled("t", 0, 7);
        assert_eq!(deferrals.attempts("t", 0, 7), 0);
        assert_eq!(deferrals.next_due(), None);
    }

    #[test]
    fn a_new_failure_on_a_later_record_starts_from_the_initial_wait() {
        let mut deferrals = Deferrals::new(100 * MS, Duration::from_secs(5));
        let now = Instant::now();
        deferrals.defer(&failed(7, 1), now);
        deferrals.defer(&failed(7, 2), now);
        assert_eq!(deferrals.defer(&failed(9, 1), now), 100 * MS);
    }
}
