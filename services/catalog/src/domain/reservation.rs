//! Reservations: an order's lines are held all together or not at all, and stock never
//! goes below zero.

use std::collections::{BTreeMap, HashMap};

use uuid::Uuid;

use super::Invalid;

/// The most units of one product a single order may hold.
pub const MAX_LINE_QUANTITY: i64 = 10_000;
/// The most distinct lines one order may hold.
pub const MAX_LINES: usize = 100;

/// Units of one product asked for by an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestedLine {
    pub product_id: Uuid,
    pub quantity: i64,
}

/// Merges the lines of an order by product (an order may name a product twice) and
/// checks them. The result is sorted by product id, which is also the order in which
/// stock rows are locked, so concurrent reservations cannot deadlock.
pub fn merge_lines(lines: &[RequestedLine]) -> Result<Vec<RequestedLine>, Invalid> {
    if lines.is_empty() {
        return Err(Invalid::new("lines", "at least one line is required"));
    }
    let mut merged: BTreeMap<Uuid, i64> = BTreeMap::new();
    for (index, line) in lines.iter().enumerate() {
        if line.quantity <= 0 || line.quantity > MAX_LINE_QUANTITY {
            return Err(Invalid::new(
                format!("lines[{index}].quantity"),
                format!("{} is outside 1..={MAX_LINE_QUANTITY}", line.quantity),
            ));
        }
        *merged.entry(line.product_id).or_default() += line.quantity;
    }
    if merged.len() > MAX_LINES {
        return Err(Invalid::new(
            "lines",
            format!(
                "{} distinct products; the limit is {MAX_LINES}",
                merged.len()
            ),
        ));
    }
    Ok(merged
        .into_iter()
        .map(|(product_id, quantity)| RequestedLine {
            product_id,
            quantity,
        })
        .collect())
}

/// A product's stock as read (and locked) for a reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StockLevel {
    pub on_hand: i64,
    pub reserved: i64,
    pub for_sale: bool,
}

impl StockLevel {
    pub fn available(&self) -> i64 {
        self.on_hand - self.reserved
    }
}

/// Why a line cannot be held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectionReason {
    InsufficientStock,
    UnknownProduct,
    ProductHidden,
}

/// A line that cannot be held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejection {
    pub product_id: Uuid,
    pub requested: i64,
    pub available: i64,
    pub reason: RejectionReason,
}

/// What to do with an order's lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Every line fits: hold them all.
    Reserve(Vec<RequestedLine>),
    /// At least one line does not: hold nothing, and say which lines failed.
    Reject(Vec<Rejection>),
}

/// Decides a reservation from the (locked) stock levels of the lines' products.
pub fn decide(lines: &[RequestedLine], levels: &HashMap<Uuid, StockLevel>) -> Decision {
    let rejections: Vec<Rejection> = lines
        .iter()
        .filter_map(|line| {
            let rejection = |available, reason| Rejection {
                product_id: line.product_id,
                requested: line.quantity,
                available,
                reason,
            };
            match levels.get(&line.product_id) {
                None => Some(rejection(0, RejectionReason::UnknownProduct)),
                Some(level) if !level.for_sale => {
                    Some(rejection(level.available(), RejectionReason::ProductHidden))
                }
                Some(level) if level.available() < line.quantity => Some(rejection(
                    level.available(),
                    RejectionReason::InsufficientStock,
                )),
                Some(_) => None,
            }
        })
        .collect();
    if rejections.is_empty() {
        Decision::Reserve(lines.to_vec())
    } else {
        Decision::Reject(rejections)
    }
}

/// The life of a reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReservationState {
    Held,
    /// Became a sale: stock on hand went down.
    Committed,
    /// Given back on cancellation.
    Released,
    /// Given back because nobody confirmed it in time.
    Expired,
}

impl ReservationState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Held => "held",
            Self::Committed => "committed",
            Self::Released => "released",
            Self::Expired => "expired",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "held" => Some(Self::Held),
            "committed" => Some(Self::Committed),
            "released" => Some(Self::Released),
            "expired" => Some(Self::Expired),
            _ => None,
        }
    }

    /// Only a held reservation moves, and only once.
    pub fn transition(self, to: Self) -> Result<Self, IllegalTransition> {
        match (self, to) {
            (Self::Held, Self::Committed | Self::Released | Self::Expired) => Ok(to),
            _ => Err(IllegalTransition { from: self, to }),
        }
    }
}

/// A move the reservation state machine refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a {from:?} reservation cannot become {to:?}")]
pub struct IllegalTransition {
    pub from: ReservationState,
    pub to: ReservationState,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn level(on_hand: i64, reserved: i64) -> StockLevel {
        StockLevel {
            on_hand,
            reserved,
            for_sale: true,
        }
    }

    #[test]
    fn duplicate_lines_are_merged_and_sorted_by_product() {
        let merged = merge_lines(&[
            RequestedLine {
                product_id: id(2),
                quantity: 1,
            },
            RequestedLine {
                product_id: id(1),
                quantity: 2,
            },
            RequestedLine {
                product_id: id(2),
                quantity: 3,
            },
        ])
        .unwrap();
        assert_eq!(
            merged,
            vec![
                RequestedLine {
                    product_id: id(1),
                    quantity: 2
                },
                RequestedLine {
                    product_id: id(2),
                    quantity: 4
                },
            ]
        );
    }

    #[test]
    fn zero_quantity_names_the_line() {
        let err = merge_lines(&[
            RequestedLine {
                product_id: id(1),
                quantity: 1,
            },
            RequestedLine {
                product_id: id(2),
                quantity: 0,
            },
        ])
        .unwrap_err();
        assert_eq!(err.field, "lines[1].quantity");
        assert_eq!(merge_lines(&[]).unwrap_err().field, "lines");
    }

    #[test]
    fn all_lines_fit_so_all_are_reserved() {
        let lines = [RequestedLine {
            product_id: id(1),
            quantity: 3,
        }];
        let levels = HashMap::from([(id(1), level(5, 2))]);
        assert_eq!(decide(&lines, &levels), Decision::Reserve(lines.to_vec()));
    }

    #[test]
    fn one_short_line_rejects_the_whole_order() {
        let lines = [
            RequestedLine {
                product_id: id(1),
                quantity: 1,
            },
            RequestedLine {
                product_id: id(2),
                quantity: 4,
            },
            RequestedLine {
                product_id: id(3),
                quantity: 1,
            },
        ];
        let mut hidden = level(9, 0);
        hidden.for_sale = false;
        let levels = HashMap::from([(id(1), level(5, 0)), (id(2), level(5, 2)), (id(3), hidden)]);
        let Decision::Reject(rejections) = decide(&lines, &levels) else {
            panic!("expected a rejection");
        };
        assert_eq!(rejections.len(), 2);
        assert_eq!(rejections[0].product_id, id(2));
        assert_eq!(rejections[0].available, 3);
        assert_eq!(rejections[0].reason, RejectionReason::InsufficientStock);
        assert_eq!(rejections[1].reason, RejectionReason::ProductHidden);
    }

    #[test]
    fn unknown_product_is_rejected() {
        let lines = [RequestedLine {
            product_id: id(9),
            quantity: 1,
        }];
        let Decision::Reject(rejections) = decide(&lines, &HashMap::new()) else {
            panic!("expected a rejection");
        };
        assert_eq!(rejections[0].reason, RejectionReason::UnknownProduct);
    }

    #[test]
    fn only_a_held_reservation_moves_and_only_once() {
        use ReservationState::*;
        assert_eq!(Held.transition(Committed), Ok(Committed));
        assert_eq!(Held.transition(Expired), Ok(Expired));
        assert!(Committed.transition(Released).is_err());
        assert!(Released.transition(Committed).is_err());
        assert!(Expired.transition(Held).is_err());
    }
}
