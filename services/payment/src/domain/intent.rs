//! A payment intent: what one order must pay, with whom, by when, and where it is.

use chrono::{DateTime, Utc};
use ocop_proto::contract::payment_methods;
use uuid::Uuid;

use super::Invalid;

/// Longest order code accepted (codes are short, e.g. `QN-2611-0042`).
pub const MAX_ORDER_CODE_CHARS: usize = 64;

/// A positive amount of VND (no minor unit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct AmountVnd(i64);

impl AmountVnd {
    pub fn new(field: &str, vnd: i64) -> Result<Self, Invalid> {
        if vnd > 0 {
            Ok(Self(vnd))
        } else {
            Err(Invalid::new(
                field,
                format!("{vnd} is not a positive amount"),
            ))
        }
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

/// How the shopper chose to pay; stored (a `CHECK` names the same codes) and
/// configured as the contract's code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentMethod {
    VietQr,
    VnPay,
    MoMo,
    ZaloPay,
    Sandbox,
}

impl PaymentMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::VietQr => payment_methods::VIETQR,
            Self::VnPay => payment_methods::VNPAY,
            Self::MoMo => payment_methods::MOMO,
            Self::ZaloPay => payment_methods::ZALOPAY,
            Self::Sandbox => payment_methods::SANDBOX,
        }
    }

    pub const ALL: [PaymentMethod; 5] = [
        Self::VietQr,
        Self::VnPay,
        Self::MoMo,
        Self::ZaloPay,
        Self::Sandbox,
    ];

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|method| method.as_str() == raw)
    }

    /// The provider that takes this method's money (when it is configured and the
    /// method offered; see `providers::Providers::for_method`).
    pub fn provider(self) -> Provider {
        match self {
            Self::VietQr => Provider::VietQr,
            Self::VnPay => Provider::VnPay,
            Self::MoMo => Provider::MoMo,
            Self::ZaloPay => Provider::ZaloPay,
            Self::Sandbox => Provider::Sandbox,
        }
    }
}

/// Who takes the money; each provider's code is its method's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Provider {
    Sandbox,
    VietQr,
    VnPay,
    MoMo,
    ZaloPay,
}

impl Provider {
    pub const ALL: [Provider; 5] = [
        Self::Sandbox,
        Self::VietQr,
        Self::VnPay,
        Self::MoMo,
        Self::ZaloPay,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sandbox => payment_methods::SANDBOX,
            Self::VietQr => payment_methods::VIETQR,
            Self::VnPay => payment_methods::VNPAY,
            Self::MoMo => payment_methods::MOMO,
            Self::ZaloPay => payment_methods::ZALOPAY,
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == raw)
    }
}

impl TryFrom<String> for Provider {
    type Error = String;

    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw).ok_or_else(|| format!("`{raw}` is not a payment provider"))
    }
}

/// What the order service asks for: validated, ready to become an intent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentRequest {
    pub order_id: Uuid,
    pub order_code: String,
    pub amount: AmountVnd,
    pub method: PaymentMethod,
    /// The intent expires when it is not paid by then.
    pub deadline: DateTime<Utc>,
}

impl PaymentRequest {
    pub fn new(
        order_id: Uuid,
        order_code: &str,
        amount_vnd: i64,
        method: PaymentMethod,
        deadline: DateTime<Utc>,
    ) -> Result<Self, Invalid> {
        let order_code = order_code.trim();
        if order_code.is_empty() {
            return Err(Invalid::new("order_code", "is required"));
        }
        if order_code.chars().count() > MAX_ORDER_CODE_CHARS {
            return Err(Invalid::new(
                "order_code",
                format!("is longer than {MAX_ORDER_CODE_CHARS} characters"),
            ));
        }
        Ok(Self {
            order_id,
            order_code: order_code.to_owned(),
            amount: AmountVnd::new("amount_vnd", amount_vnd)?,
            method,
            deadline,
        })
    }
}

/// The life of a payment intent. Only a pending intent moves, and only once: a late or
/// repeated callback can never move a payment backwards or settle it twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentStatus {
    /// Created with the provider, waiting for the shopper.
    Pending,
    /// A verified callback confirmed the full amount.
    Succeeded,
    /// A verified callback reported a decline or a failure.
    Failed,
    /// Not paid before its deadline.
    Expired,
    /// The order was cancelled before the payment settled.
    Cancelled,
}

impl PaymentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Expired => "expired",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "pending" => Some(Self::Pending),
            "succeeded" => Some(Self::Succeeded),
            "failed" => Some(Self::Failed),
            "expired" => Some(Self::Expired),
            "cancelled" => Some(Self::Cancelled),
            _ => None,
        }
    }

    /// Whether the provider has given its answer (success or failure).
    pub fn is_settled(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed)
    }

    /// The only legal moves: from pending to any final status.
    pub fn transition(self, to: Self) -> Result<Self, IllegalTransition> {
        match (self, to) {
            (Self::Pending, Self::Succeeded | Self::Failed | Self::Expired | Self::Cancelled) => {
                Ok(to)
            }
            _ => Err(IllegalTransition { from: self, to }),
        }
    }
}

impl TryFrom<String> for PaymentStatus {
    type Error = String;

    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw).ok_or_else(|| format!("`{raw}` is not a payment status"))
    }
}

/// A move the intent state machine refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a {from:?} payment cannot become {to:?}")]
pub struct IllegalTransition {
    pub from: PaymentStatus,
    pub to: PaymentStatus,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_pending_intent_moves_and_only_once() {
        use PaymentStatus::*;
        for to in [Succeeded, Failed, Expired, Cancelled] {
            assert_eq!(Pending.transition(to), Ok(to));
        }
        for from in [Succeeded, Failed, Expired, Cancelled] {
            for to in [Pending, Succeeded, Failed, Expired, Cancelled] {
                assert_eq!(
                    from.transition(to),
                    Err(IllegalTransition { from, to }),
                    "{from:?} -> {to:?}"
                );
            }
        }
        assert!(Pending.transition(Pending).is_err());
    }

    #[test]
    fn status_round_trips_through_its_text() {
        use PaymentStatus::*;
        for status in [Pending, Succeeded, Failed, Expired, Cancelled] {
            assert_eq!(PaymentStatus::parse(status.as_str()), Some(status));
        }
        assert!(PaymentStatus::try_from("paid".to_owned()).is_err());
    }

    #[test]
    fn request_needs_a_positive_amount_and_an_order_code() {
        let deadline = Utc::now();
        let order = Uuid::from_u128(7);
        let ok =
            PaymentRequest::new(order, " QN-1 ", 75_000, PaymentMethod::VnPay, deadline).unwrap();
        assert_eq!(ok.order_code, "QN-1");
        assert_eq!(ok.method.provider(), Provider::VnPay);
        for provider in Provider::ALL {
            assert_eq!(Provider::parse(provider.as_str()), Some(provider));
        }
        let zero = PaymentRequest::new(order, "QN-1", 0, PaymentMethod::MoMo, deadline);
        assert_eq!(zero.unwrap_err().field, "amount_vnd");
        let blank = PaymentRequest::new(order, "  ", 10, PaymentMethod::MoMo, deadline);
        assert_eq!(blank.unwrap_err().field, "order_code");
        let long = "x".repeat(MAX_ORDER_CODE_CHARS + 1);
        let long = PaymentRequest::new(order, &long, 10, PaymentMethod::MoMo, deadline);
        assert_eq!(long.unwrap_err().field, "order_code");
    }
}
