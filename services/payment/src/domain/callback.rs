//! What a provider reports about a payment, and what that report does to the intent.
//!
//! The report reaching [`judge`] has already passed the signature and freshness checks;
//! judging decides only whether it may change the intent.

use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::intent::PaymentStatus;

/// The provider's answer for a payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderResult {
    Success,
    Failure,
}

/// How a report names its payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentRef {
    /// Our payment id, echoed by the provider (txn ref, order id, app_trans_id).
    Id(Uuid),
    /// A bank transfer's memo, which must contain the order code (VietQR).
    Memo(String),
}

/// The currency every payment is in.
pub const VND: &str = "VND";

/// A verified provider report, in domain terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderReport {
    pub payment: PaymentRef,
    pub amount_vnd: i64,
    /// As reported (`VND` for providers that only deal in VND).
    pub currency: String,
    pub result: ProviderResult,
    /// The provider's result code as given (VNPay `24`, MoMo `1006`, …), for failures.
    pub result_code: String,
    /// The provider's message, if any.
    pub message: String,
    /// The provider's id of the transaction: callbacks are idempotent on it.
    pub provider_transaction_id: String,
    pub sent_at: DateTime<Utc>,
}

/// Why a report is too old (or too far in the future) to trust: a captured callback
/// must not be replayable forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("timestamp is {skew_secs} s away from now; the tolerance is {tolerance_secs} s")]
pub struct Stale {
    pub skew_secs: i64,
    pub tolerance_secs: u64,
}

/// Accepts a report sent within `tolerance` of `now`, either way (clocks drift).
pub fn check_freshness(
    sent_at: DateTime<Utc>,
    now: DateTime<Utc>,
    tolerance: Duration,
) -> Result<(), Stale> {
    let skew = (now - sent_at).num_seconds();
    let tolerance_secs = tolerance.as_secs();
    if skew.unsigned_abs() > tolerance_secs {
        Err(Stale {
            skew_secs: skew,
            tolerance_secs,
        })
    } else {
        Ok(())
    }
}

/// The intent as the judgement needs it (read under a row lock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntentState {
    pub status: PaymentStatus,
    pub amount_vnd: i64,
    pub provider_transaction_id: Option<String>,
    pub expires_at: DateTime<Utc>,
}

/// What a verified report does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Settle the pending intent: `Succeeded` capturing `captured_vnd`, or `Failed`.
    Settle {
        to: PaymentStatus,
        captured_vnd: i64,
    },
    /// The intent was settled before; nothing changes. `same_transaction` is false when
    /// another provider transaction settled it (worth a look by an operator).
    AlreadyProcessed { same_transaction: bool },
    /// The report is for another amount (or currency) than the intent's: refused,
    /// nothing changes.
    WrongAmount {
        expected: i64,
        reported: i64,
        currency: String,
    },
    /// The intent reached its deadline before the report arrived: it expires now and
    /// the report is refused.
    Late,
    /// The intent is expired or cancelled: the report changes nothing.
    Closed(PaymentStatus),
}

/// Decides what `report` does to `intent` at `now`.
pub fn judge(intent: &IntentState, report: &ProviderReport, now: DateTime<Utc>) -> Verdict {
    match intent.status {
        PaymentStatus::Succeeded | PaymentStatus::Failed => Verdict::AlreadyProcessed {
            same_transaction: intent.provider_transaction_id.as_deref()
                == Some(report.provider_transaction_id.as_str()),
        },
        PaymentStatus::Expired | PaymentStatus::Cancelled => Verdict::Closed(intent.status),
        PaymentStatus::Pending
            if report.amount_vnd != intent.amount_vnd || report.currency != VND =>
        {
            Verdict::WrongAmount {
                expected: intent.amount_vnd,
                reported: report.amount_vnd,
                currency: report.currency.clone(),
            }
        }
        PaymentStatus::Pending if now >= intent.expires_at => Verdict::Late,
        PaymentStatus::Pending => match report.result {
            ProviderResult::Success => Verdict::Settle {
                to: PaymentStatus::Succeeded,
                captured_vnd: report.amount_vnd,
            },
            ProviderResult::Failure => Verdict::Settle {
                to: PaymentStatus::Failed,
                captured_vnd: 0,
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;

    fn intent(status: PaymentStatus) -> IntentState {
        IntentState {
            status,
            amount_vnd: 75_000,
            provider_transaction_id: None,
            expires_at: Utc::now() + TimeDelta::minutes(15),
        }
    }

    fn report(result: ProviderResult, amount_vnd: i64) -> ProviderReport {
        ProviderReport {
            payment: PaymentRef::Id(Uuid::from_u128(1)),
            amount_vnd,
            currency: VND.into(),
            result,
            result_code: String::new(),
            message: String::new(),
            provider_transaction_id: "SBX1".into(),
            sent_at: Utc::now(),
        }
    }

    #[test]
    fn pending_intent_is_settled_by_a_report_for_its_amount() {
        let now = Utc::now();
        assert_eq!(
            judge(
                &intent(PaymentStatus::Pending),
                &report(ProviderResult::Success, 75_000),
                now
            ),
            Verdict::Settle {
                to: PaymentStatus::Succeeded,
                captured_vnd: 75_000
            }
        );
        assert_eq!(
            judge(
                &intent(PaymentStatus::Pending),
                &report(ProviderResult::Failure, 75_000),
                now
            ),
            Verdict::Settle {
                to: PaymentStatus::Failed,
                captured_vnd: 0
            }
        );
    }

    #[test]
    fn report_for_another_amount_is_refused() {
        assert_eq!(
            judge(
                &intent(PaymentStatus::Pending),
                &report(ProviderResult::Success, 1_000),
                Utc::now()
            ),
            Verdict::WrongAmount {
                expected: 75_000,
                reported: 1_000,
                currency: VND.into()
            }
        );
        let mut dollars = report(ProviderResult::Success, 75_000);
        dollars.currency = "USD".into();
        assert!(matches!(
            judge(&intent(PaymentStatus::Pending), &dollars, Utc::now()),
            Verdict::WrongAmount { .. }
        ));
    }

    #[test]
    fn settled_intent_is_already_processed_whatever_the_report_says() {
        let mut settled = intent(PaymentStatus::Succeeded);
        settled.provider_transaction_id = Some("SBX1".into());
        assert_eq!(
            judge(
                &settled,
                &report(ProviderResult::Failure, 75_000),
                Utc::now()
            ),
            Verdict::AlreadyProcessed {
                same_transaction: true
            }
        );
        settled.provider_transaction_id = Some("SBX2".into());
        assert_eq!(
            judge(
                &settled,
                &report(ProviderResult::Success, 75_000),
                Utc::now()
            ),
            Verdict::AlreadyProcessed {
                same_transaction: false
            }
        );
    }

    #[test]
    fn expired_or_cancelled_intent_refuses_reports() {
        for status in [PaymentStatus::Expired, PaymentStatus::Cancelled] {
            assert_eq!(
                judge(
                    &intent(status),
                    &report(ProviderResult::Success, 75_000),
                    Utc::now()
                ),
                Verdict::Closed(status)
            );
        }
    }

    #[test]
    fn report_after_the_deadline_expires_the_intent_instead() {
        let pending = intent(PaymentStatus::Pending);
        let after = pending.expires_at + TimeDelta::seconds(1);
        assert_eq!(
            judge(&pending, &report(ProviderResult::Success, 75_000), after),
            Verdict::Late
        );
    }

    #[test]
    fn freshness_allows_drift_within_the_tolerance_both_ways() {
        let now = Utc::now();
        let five_minutes = Duration::from_secs(300);
        assert!(check_freshness(now - TimeDelta::seconds(299), now, five_minutes).is_ok());
        assert!(check_freshness(now + TimeDelta::seconds(299), now, five_minutes).is_ok());
        let stale = check_freshness(now - TimeDelta::seconds(301), now, five_minutes).unwrap_err();
        assert_eq!(stale.skew_secs, 301);
        assert!(check_freshness(now + TimeDelta::seconds(400), now, five_minutes).is_err());
    }
}
