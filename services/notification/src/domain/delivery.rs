//! Delivery rules: the channels, the life of a notification (pending → sent | failed)
//! and when to try again.

use std::{fmt, str::FromStr, time::Duration};

/// How a notification reaches its recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChannelKind {
    /// One JSON line per message in a spool file (development and tests).
    Log,
    Email,
    Sms,
    /// A Zalo Notification Service template message.
    ZaloZns,
}

impl ChannelKind {
    pub const ALL: [Self; 4] = [Self::Log, Self::Email, Self::Sms, Self::ZaloZns];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Log => "log",
            Self::Email => "email",
            Self::Sms => "sms",
            Self::ZaloZns => "zalo_zns",
        }
    }

    /// Whether the channel writes to a mailbox (else to a phone number).
    pub fn uses_email(self) -> bool {
        matches!(self, Self::Email)
    }

    /// Whether messages on this channel have a subject. SMS and ZNS have none: their
    /// notifications carry the subject as the first line of the body instead, so the
    /// stored text is exactly what the shopper receives.
    pub fn has_subject(self) -> bool {
        matches!(self, Self::Log | Self::Email)
    }
}

impl fmt::Display for ChannelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ChannelKind {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let wanted = raw.trim().to_ascii_lowercase();
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str() == wanted)
            .ok_or_else(|| format!("`{raw}` is not a channel (log, email, sms, zalo_zns)"))
    }
}

/// Where a notification is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Not sent yet, or waiting for another attempt.
    Pending,
    Sent,
    /// Every attempt failed, or one failed for good; no more will be made.
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Sent => "sent",
            Self::Failed => "failed",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "pending" => Some(Self::Pending),
            "sent" => Some(Self::Sent),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// Try again after this pause.
    RetryIn(Duration),
    /// Record the notification as failed.
    GiveUp,
}

/// Bounded retries with exponential backoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (at least 1).
    pub max_attempts: u32,
    /// The pause after the first failed attempt; doubled after each further one.
    pub initial_backoff: Duration,
    /// The longest pause, however many attempts failed.
    pub max_backoff: Duration,
}

impl RetryPolicy {
    /// Decides after attempt number `attempts` (1-based) failed. A failure the channel
    /// calls permanent (a refused address, a malformed request) is not retried: the
    /// same request would fail the same way.
    pub fn after_failure(&self, attempts: u32, retryable: bool) -> AfterFailure {
        if !retryable || attempts >= self.max_attempts {
            return AfterFailure::GiveUp;
        }
        let doublings = attempts.saturating_sub(1).min(30);
        let pause = self
            .initial_backoff
            .saturating_mul(1u32 << doublings)
            .min(self.max_backoff);
        AfterFailure::RetryIn(pause)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_names_parse_back_case_insensitively() {
        for kind in ChannelKind::ALL {
            assert_eq!(kind.as_str().parse::<ChannelKind>(), Ok(kind));
        }
        assert_eq!(
            " ZALO_ZNS ".parse::<ChannelKind>(),
            Ok(ChannelKind::ZaloZns)
        );
        assert!("fax".parse::<ChannelKind>().unwrap_err().contains("fax"));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_then_gives_up_after_the_last_attempt() {
        let policy = RetryPolicy {
            max_attempts: 5,
            initial_backoff: Duration::from_secs(30),
            max_backoff: Duration::from_secs(100),
        };
        let pauses: Vec<_> = (1..5)
            .map(|attempt| policy.after_failure(attempt, true))
            .collect();
        assert_eq!(
            pauses,
            vec![
                AfterFailure::RetryIn(Duration::from_secs(30)),
                AfterFailure::RetryIn(Duration::from_secs(60)),
                AfterFailure::RetryIn(Duration::from_secs(100)),
                AfterFailure::RetryIn(Duration::from_secs(100)),
            ]
        );
        assert_eq!(policy.after_failure(5, true), AfterFailure::GiveUp);
    }

    #[test]
    fn permanent_failure_is_not_retried() {
        let policy = RetryPolicy {
            max_attempts: 5,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
        };
        assert_eq!(policy.after_failure(1, false), AfterFailure::GiveUp);
    }

    #[test]
    fn status_round_trips() {
        for status in [Status::Pending, Status::Sent, Status::Failed] {
            assert_eq!(Status::parse(status.as_str()), Some(status));
        }
    }
}
