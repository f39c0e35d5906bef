//! Refunds: what an operator may ask, and how much may still be given back.

use ocop_grpc_kit::validation::single_line;
use uuid::Uuid;

use super::{Invalid, intent::PaymentStatus};

/// Longest idempotency key accepted.
pub const MAX_IDEMPOTENCY_KEY_CHARS: usize = 128;
/// Longest reason accepted.
pub const MAX_REASON_CHARS: usize = 500;

/// A validated refund request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRequest {
    pub order_id: Uuid,
    pub amount_vnd: i64,
    pub reason: String,
    pub idempotency_key: String,
}

impl RefundRequest {
    pub fn new(
        order_id: Uuid,
        amount_vnd: i64,
        reason: &str,
        idempotency_key: &str,
    ) -> Result<Self, Invalid> {
        if amount_vnd <= 0 {
            return Err(Invalid::new(
                "amount_vnd",
                format!("{amount_vnd} is not a positive amount"),
            ));
        }
        single_line("reason", reason)?;
        single_line("idempotency_key", idempotency_key)?;
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(Invalid::new("reason", "is required"));
        }
        if reason.chars().count() > MAX_REASON_CHARS {
            return Err(Invalid::new(
                "reason",
                format!("is longer than {MAX_REASON_CHARS} characters"),
            ));
        }
        let key = idempotency_key.trim();
        if key.is_empty() {
            return Err(Invalid::new("idempotency_key", "is required"));
        }
        if key.chars().count() > MAX_IDEMPOTENCY_KEY_CHARS {
            return Err(Invalid::new(
                "idempotency_key",
                format!("is longer than {MAX_IDEMPOTENCY_KEY_CHARS} characters"),
            ));
        }
        Ok(Self {
            order_id,
            amount_vnd,
            reason: reason.to_owned(),
            idempotency_key: key.to_owned(),
        })
    }
}

/// Where a refund is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefundStatus {
    /// Asked of the provider; its answer is not known yet.
    Pending,
    Succeeded,
    Failed,
}

impl RefundStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "pending" => Some(Self::Pending),
            "succeeded" => Some(Self::Succeeded),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

impl TryFrom<String> for RefundStatus {
    type Error = String;

    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw).ok_or_else(|| format!("`{raw}` is not a refund status"))
    }
}

/// Whether `amount_vnd` may be refunded from a payment in `status` that captured
/// `captured_vnd`, of which `committed_vnd` is refunded or being refunded.
pub fn check_refundable(
    status: PaymentStatus,
    captured_vnd: i64,
    committed_vnd: i64,
    amount_vnd: i64,
) -> Result<(), Invalid> {
    if status != PaymentStatus::Succeeded || captured_vnd == 0 {
        return Err(Invalid::new(
            "order_id",
            format!(
                "the payment is {}; only a succeeded payment can be refunded",
                status.as_str()
            ),
        ));
    }
    let left = captured_vnd - committed_vnd;
    if amount_vnd > left {
        return Err(Invalid::new(
            "amount_vnd",
            format!(
                "{amount_vnd} is more than the {left} VND left to refund ({captured_vnd} captured, {committed_vnd} refunded or being refunded)"
            ),
        ));
    }
    Ok(())
}

/// How far a payment is refunded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refunded {
    None,
    Partially,
    Fully,
}

pub fn refunded(captured_vnd: i64, refunded_vnd: i64) -> Refunded {
    if refunded_vnd <= 0 {
        Refunded::None
    } else if refunded_vnd >= captured_vnd {
        Refunded::Fully
    } else {
        Refunded::Partially
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_in_the_reason_or_key_are_refused() {
        let order = Uuid::nil();
        let field = |result: Result<RefundRequest, Invalid>| result.unwrap_err().field;
        assert_eq!(field(RefundRequest::new(order, 1, "hỏng\0", "k")), "reason");
        assert_eq!(field(RefundRequest::new(order, 1, "a\nb", "k")), "reason");
        assert_eq!(
            field(RefundRequest::new(order, 1, "hỏng", "k\u{1b}")),
            "idempotency_key"
        );
    }

    #[test]
    fn request_needs_a_positive_amount_a_reason_and_a_key() {
        let order = Uuid::from_u128(1);
        assert!(RefundRequest::new(order, 10_000, "thiếu hàng", "k1").is_ok());
        let field = |r: Result<RefundRequest, Invalid>| r.unwrap_err().field;
        assert_eq!(field(RefundRequest::new(order, 0, "x", "k")), "amount_vnd");
        assert_eq!(field(RefundRequest::new(order, -5, "x", "k")), "amount_vnd");
        assert_eq!(field(RefundRequest::new(order, 1, " ", "k")), "reason");
        assert_eq!(
            field(RefundRequest::new(order, 1, "x", "")),
            "idempotency_key"
        );
        let long = "k".repeat(MAX_IDEMPOTENCY_KEY_CHARS + 1);
        assert_eq!(
            field(RefundRequest::new(order, 1, "x", &long)),
            "idempotency_key"
        );
    }

    #[test]
    fn never_more_than_captured_minus_committed() {
        use PaymentStatus::*;
        assert!(check_refundable(Succeeded, 100, 0, 100).is_ok());
        assert!(check_refundable(Succeeded, 100, 60, 40).is_ok());
        assert_eq!(
            check_refundable(Succeeded, 100, 60, 41).unwrap_err().field,
            "amount_vnd"
        );
        assert_eq!(
            check_refundable(Pending, 0, 0, 1).unwrap_err().field,
            "order_id"
        );
        assert!(check_refundable(Failed, 0, 0, 1).is_err());
    }

    #[test]
    fn refunded_is_none_partial_or_full() {
        assert_eq!(refunded(100, 0), Refunded::None);
        assert_eq!(refunded(100, 40), Refunded::Partially);
        assert_eq!(refunded(100, 100), Refunded::Fully);
    }

    #[test]
    fn status_round_trips() {
        for status in [
            RefundStatus::Pending,
            RefundStatus::Succeeded,
            RefundStatus::Failed,
        ] {
            assert_eq!(RefundStatus::parse(status.as_str()), Some(status));
        }
    }
}
