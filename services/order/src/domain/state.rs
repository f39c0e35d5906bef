//! The order state machine (DESIGN §3): explicit states, the things that move them, and
//! one function that decides every move. A move it does not list is refused, so a late
//! or duplicated event can never take an order backwards.

use chrono::{DateTime, Utc};

/// Where an order is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderStatus {
    Pending,
    AwaitingPayment,
    Confirmed,
    Shipped,
    Delivered,
    Cancelled,
    /// Part of the captured amount was given back; more refunds may follow, and the rest
    /// of the order may still ship.
    PartiallyRefunded,
    /// Everything captured was given back. Terminal.
    Refunded,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 8] = [
        Self::Pending,
        Self::AwaitingPayment,
        Self::Confirmed,
        Self::Shipped,
        Self::Delivered,
        Self::Cancelled,
        Self::PartiallyRefunded,
        Self::Refunded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::AwaitingPayment => "awaiting_payment",
            Self::Confirmed => "confirmed",
            Self::Shipped => "shipped",
            Self::Delivered => "delivered",
            Self::Cancelled => "cancelled",
            Self::PartiallyRefunded => "partially_refunded",
            Self::Refunded => "refunded",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "pending" => Self::Pending,
            "awaiting_payment" => Self::AwaitingPayment,
            "confirmed" => Self::Confirmed,
            "shipped" => Self::Shipped,
            "delivered" => Self::Delivered,
            "cancelled" => Self::Cancelled,
            "partially_refunded" => Self::PartiallyRefunded,
            "refunded" => Self::Refunded,
            _ => return None,
        })
    }

    /// Whether the order is still waiting for stock or money (and may be cancelled).
    pub fn is_unpaid(self) -> bool {
        matches!(self, Self::Pending | Self::AwaitingPayment)
    }
}

/// Why an order was cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancellationReason {
    OutOfStock,
    PaymentFailed,
    PaymentExpired,
    CustomerRequest,
    Operator,
}

impl CancellationReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OutOfStock => "out_of_stock",
            Self::PaymentFailed => "payment_failed",
            Self::PaymentExpired => "payment_expired",
            Self::CustomerRequest => "customer_request",
            Self::Operator => "operator",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "out_of_stock" => Self::OutOfStock,
            "payment_failed" => Self::PaymentFailed,
            "payment_expired" => Self::PaymentExpired,
            "customer_request" => Self::CustomerRequest,
            "operator" => Self::Operator,
            _ => return None,
        })
    }
}

/// What happened to an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The catalog holds the order's stock until `held_until`.
    StockReserved {
        held_until: Option<DateTime<Utc>>,
    },
    StockRejected,
    /// The catalog gave the stock back because nobody paid in time.
    ReservationExpired,
    PaymentSucceeded,
    PaymentFailed,
    PaymentExpired,
    Cancel(CancellationReason),
    Ship,
    Deliver,
    /// The payment service gave money back: `full` when everything captured is now
    /// refunded.
    Refunded {
        full: bool,
    },
}

/// The result of a move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Move {
    pub to: OrderStatus,
    /// Set when the move cancels the order.
    pub cancellation: Option<CancellationReason>,
}

/// A move the state machine refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a {from:?} order cannot take {trigger:?}")]
pub struct IllegalTransition {
    pub from: OrderStatus,
    pub trigger: Trigger,
}

/// Decides where `trigger` takes an order in status `from`.
pub fn transition(from: OrderStatus, trigger: Trigger) -> Result<Move, IllegalTransition> {
    use OrderStatus::*;
    let to = |to| Move {
        to,
        cancellation: None,
    };
    let cancel = |reason| Move {
        to: Cancelled,
        cancellation: Some(reason),
    };
    match (from, trigger) {
        (Pending, Trigger::StockReserved { .. }) => Ok(to(AwaitingPayment)),
        // After payment only when the payment raced the reservation's expiry and the
        // stock was sold meanwhile: the order is cancelled and its payment refunded.
        (Pending | Confirmed, Trigger::StockRejected) => Ok(cancel(CancellationReason::OutOfStock)),
        (AwaitingPayment, Trigger::PaymentSucceeded) => Ok(to(Confirmed)),
        (AwaitingPayment, Trigger::PaymentFailed) => Ok(cancel(CancellationReason::PaymentFailed)),
        (AwaitingPayment, Trigger::PaymentExpired | Trigger::ReservationExpired) => {
            Ok(cancel(CancellationReason::PaymentExpired))
        }
        (Pending | AwaitingPayment, Trigger::Cancel(reason)) => Ok(cancel(reason)),
        (Confirmed | PartiallyRefunded, Trigger::Ship) => Ok(to(Shipped)),
        (Shipped, Trigger::Deliver) => Ok(to(Delivered)),
        (Confirmed | Shipped | Delivered | PartiallyRefunded, Trigger::Refunded { full: true }) => {
            Ok(to(Refunded))
        }
        (
            Confirmed | Shipped | Delivered | PartiallyRefunded,
            Trigger::Refunded { full: false },
        ) => Ok(to(PartiallyRefunded)),
        _ => Err(IllegalTransition { from, trigger }),
    }
}

#[cfg(test)]
mod tests {
    use super::{CancellationReason as Reason, OrderStatus::*, Trigger, transition};

    #[test]
    fn happy_path_moves_forward_step_by_step() {
        assert_eq!(
            transition(Pending, Trigger::StockReserved { held_until: None })
                .unwrap()
                .to,
            AwaitingPayment
        );
        assert_eq!(
            transition(AwaitingPayment, Trigger::PaymentSucceeded)
                .unwrap()
                .to,
            Confirmed
        );
        assert_eq!(transition(Confirmed, Trigger::Ship).unwrap().to, Shipped);
        assert_eq!(transition(Shipped, Trigger::Deliver).unwrap().to, Delivered);
    }

    #[test]
    fn failures_cancel_with_their_reason() {
        let rejected = transition(Pending, Trigger::StockRejected).unwrap();
        assert_eq!(
            (rejected.to, rejected.cancellation),
            (Cancelled, Some(Reason::OutOfStock))
        );
        let lost = transition(Confirmed, Trigger::StockRejected).unwrap();
        assert_eq!(
            (lost.to, lost.cancellation),
            (Cancelled, Some(Reason::OutOfStock)),
            "paid after the reservation expired and the stock was sold meanwhile"
        );
        let failed = transition(AwaitingPayment, Trigger::PaymentFailed).unwrap();
        assert_eq!(failed.cancellation, Some(Reason::PaymentFailed));
        let expired = transition(AwaitingPayment, Trigger::ReservationExpired).unwrap();
        assert_eq!(expired.cancellation, Some(Reason::PaymentExpired));
    }

    #[test]
    fn late_or_duplicated_events_never_move_an_order_backwards() {
        assert!(transition(AwaitingPayment, Trigger::StockReserved { held_until: None }).is_err());
        assert!(transition(Confirmed, Trigger::PaymentFailed).is_err());
        assert!(transition(Confirmed, Trigger::PaymentExpired).is_err());
        assert!(transition(Cancelled, Trigger::PaymentSucceeded).is_err());
        assert!(transition(Delivered, Trigger::Ship).is_err());
        assert!(
            transition(Pending, Trigger::PaymentSucceeded).is_err(),
            "no payment before stock"
        );
    }

    #[test]
    fn only_unpaid_orders_can_be_cancelled() {
        assert!(transition(Pending, Trigger::Cancel(Reason::CustomerRequest)).is_ok());
        assert!(transition(AwaitingPayment, Trigger::Cancel(Reason::Operator)).is_ok());
        assert!(transition(Confirmed, Trigger::Cancel(Reason::CustomerRequest)).is_err());
        assert!(transition(Cancelled, Trigger::Cancel(Reason::CustomerRequest)).is_err());
    }

    #[test]
    fn statuses_round_trip_through_their_names() {
        for status in super::OrderStatus::ALL {
            assert_eq!(super::OrderStatus::parse(status.as_str()), Some(status));
        }
    }

    #[test]
    fn refunds_move_paid_orders_to_partially_refunded_then_refunded() {
        let partial = Trigger::Refunded { full: false };
        let full = Trigger::Refunded { full: true };
        for paid in [Confirmed, Shipped, Delivered] {
            assert_eq!(transition(paid, partial).unwrap().to, PartiallyRefunded);
            assert_eq!(transition(paid, full).unwrap().to, Refunded);
        }
        assert_eq!(
            transition(PartiallyRefunded, partial).unwrap().to,
            PartiallyRefunded
        );
        assert_eq!(transition(PartiallyRefunded, full).unwrap().to, Refunded);
        assert_eq!(
            transition(PartiallyRefunded, Trigger::Ship).unwrap().to,
            Shipped
        );
        // Nothing was paid, or everything is already back: refused.
        for unpaid in [Pending, AwaitingPayment, Cancelled, Refunded] {
            assert!(transition(unpaid, partial).is_err(), "{unpaid:?}");
            assert!(transition(unpaid, full).is_err(), "{unpaid:?}");
        }
        assert!(transition(Refunded, Trigger::Ship).is_err());
    }
}
