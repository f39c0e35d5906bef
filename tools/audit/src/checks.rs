//! The invariants, one function each.

use uuid::Uuid;

use crate::{
    Databases, Invariant, Settings,
    books::{Books, Order, Payment, paid},
};

/// Every order is terminal, or inside its deadlines: none stays `PENDING` or
/// `AWAITING_PAYMENT` past them.
pub(crate) async fn orders_settle(
    databases: &Databases,
    settings: Settings,
) -> anyhow::Result<Invariant> {
    let millis = |d: std::time::Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    let rows: Vec<(Uuid, String, bool)> = sqlx::query_as(
        "SELECT id, status,
                (status = 'pending' AND created_at < now() - $1 * interval '1 millisecond')
             OR (status = 'awaiting_payment'
                 AND payment_expires_at < now() - $2 * interval '1 millisecond')
           FROM orders",
    )
    .bind(millis(settings.pending_grace))
    .bind(millis(settings.settle_grace))
    .fetch_all(&databases.order)
    .await?;
    let mut invariant = Invariant::new("every order settles within its deadlines");
    for (id, status, stuck) in rows {
        invariant.check(!stuck, || {
            format!("order {id}: still {status} past its deadline")
        });
    }
    Ok(invariant)
}

/// A paid order has exactly one payment, succeeded, for its total.
pub(crate) fn paid_orders_have_their_payment(books: &Books) -> Invariant {
    let mut invariant = Invariant::new("a paid order has one succeeded payment for its total");
    for (id, order) in settled(books).filter(|(_, order)| paid(&order.status)) {
        let payment = books.payments.get(id);
        invariant.check(
            payment.is_some_and(|payment| {
                payment.status == "succeeded"
                    && payment.amount_vnd == order.total_vnd
                    && payment.captured_vnd == order.total_vnd
            }),
            || match payment {
                None => format!("order {id}: {} without a payment", order.status),
                Some(payment) => format!(
                    "order {id}: {} for {} ₫, but payment {} is {} with {} of {} ₫ captured",
                    order.status,
                    order.total_vnd,
                    payment.id,
                    payment.status,
                    payment.captured_vnd,
                    payment.amount_vnd
                ),
            },
        );
    }
    invariant
}

/// Money captured for an order that did not go through (cancelled, expired, never
/// confirmed) is refunded, being refunded, or flagged for an operator's manual refund (a
/// bank transfer has no refund API).
pub(crate) fn no_money_kept_without_an_order(books: &Books) -> Invariant {
    let mut invariant = Invariant::new(
        "no money is kept for an order that did not go through (refunded, refunding or flagged for a manual refund)",
    );
    for (order_id, payment) in books.payments.iter().filter(|(_, p)| !p.recent) {
        let order = books.orders.get(order_id);
        if order.is_some_and(|order| order.recent) {
            continue;
        }
        let went_through =
            order.is_some_and(|order| paid(&order.status)) && payment.status == "succeeded";
        let kept = payment.captured_vnd
            - payment.refunded_vnd
            - payment.pending_refunds_vnd
            - payment.manual_refunds_vnd;
        invariant.check(went_through || kept == 0, || {
            format!(
                "payment {} of order {order_id} ({}): {kept} ₫ captured and not given back, \
                 but the order is {}",
                payment.id,
                payment.status,
                order.map_or("unknown to the order service", |order| order
                    .status
                    .as_str())
            )
        });
    }
    invariant
}

/// Per payment: the succeeded refunds add up to `refunded_vnd`, and succeeded plus
/// pending refunds never exceed the capture.
pub(crate) fn refunds_within_captures(books: &Books) -> Invariant {
    let mut invariant = Invariant::new("refunds add up and never exceed what was captured");
    for (order_id, payment) in &books.payments {
        let holds = |p: &Payment| {
            p.succeeded_refunds_vnd == p.refunded_vnd
                && p.succeeded_refunds_vnd + p.pending_refunds_vnd <= p.captured_vnd
        };
        invariant.check(holds(payment), || {
            format!(
                "payment {} of order {order_id}: captured {} ₫, refunded {} ₫ on the payment, \
                 refunds {} ₫ succeeded and {} ₫ pending",
                payment.id,
                payment.captured_vnd,
                payment.refunded_vnd,
                payment.succeeded_refunds_vnd,
                payment.pending_refunds_vnd
            )
        });
    }
    invariant
}

/// The payment ledger's own invariants (`ocop_payment::ledger::check`): every
/// transaction sums to zero, each order's balance is its payment's captured − refunded
/// and never went negative.
pub(crate) async fn ledger_balances(databases: &Databases) -> anyhow::Result<Invariant> {
    let mut invariant = Invariant::new("the payment ledger balances");
    let transactions: i64 = sqlx::query_scalar("SELECT count(DISTINCT txn_id) FROM ledger_entries")
        .fetch_one(&databases.payment)
        .await?;
    invariant.checked = usize::try_from(transactions).unwrap_or(usize::MAX);
    for violation in ocop_payment::ledger::check(&databases.payment).await? {
        invariant.violate(violation);
    }
    Ok(invariant)
}

/// Stock is never negative, never more reserved than on hand, and `reserved` is what
/// the held reservations hold.
pub(crate) fn stock_is_held_by_reservations(books: &Books) -> Invariant {
    let mut invariant =
        Invariant::new("stock is never negative and reserved is what the held reservations hold");
    for (product, stock) in &books.stock {
        invariant.check(
            stock.on_hand >= 0
                && (0..=stock.on_hand).contains(&stock.reserved)
                && stock.reserved == stock.held,
            || {
                format!(
                    "product {product}: {} on hand, {} reserved, but held reservations hold {}",
                    stock.on_hand, stock.reserved, stock.held
                )
            },
        );
    }
    invariant
}

/// `on_hand` is the initial stock plus every adjustment minus every unit sold.
pub(crate) fn stock_moves_are_accounted_for(books: &Books) -> Invariant {
    let mut invariant =
        Invariant::new("on hand is the initial stock plus adjustments minus units sold");
    for (product, stock) in &books.stock {
        let expected = stock.initial_on_hand + stock.adjusted - stock.sold;
        invariant.check(stock.on_hand == expected, || {
            format!(
                "product {product}: {} on hand, but {} initial + {} adjusted − {} sold = {expected}",
                stock.on_hand, stock.initial_on_hand, stock.adjusted, stock.sold
            )
        });
    }
    invariant
}

/// A paid order's reservation is committed with exactly the order's lines (its units
/// sold once); an order that did not go through sold nothing.
pub(crate) fn paid_orders_sell_their_units_once(books: &Books) -> Invariant {
    let mut invariant = Invariant::new(
        "a paid order's units are sold once, exactly its lines; other orders sell none",
    );
    for (id, order) in settled(books) {
        let reservation = books.reservations.get(id);
        let committed = reservation.filter(|reservation| reservation.state == "committed");
        if paid(&order.status) {
            invariant.check(
                committed.is_some_and(|reservation| reservation.lines == order.lines),
                || match reservation {
                    None => format!("order {id}: {} but no stock was reserved", order.status),
                    Some(reservation) => format!(
                        "order {id}: {} with lines {:?}, but its reservation is {} with {:?}",
                        order.status, order.lines, reservation.state, reservation.lines
                    ),
                },
            );
        } else {
            invariant.check(committed.is_none(), || {
                format!(
                    "order {id}: {}, but its units were sold (reservation committed)",
                    order.status
                )
            });
        }
    }
    invariant
}

/// Orders whose saga is over (no change within the settle grace).
fn settled(books: &Books) -> impl Iterator<Item = (&Uuid, &Order)> {
    books.orders.iter().filter(|(_, order)| !order.recent)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::books::Stock;

    fn books(order_status: &str, payment: Payment) -> (Uuid, Books) {
        let order_id = Uuid::now_v7();
        let order = Order {
            recent: false,
            status: order_status.to_owned(),
            total_vnd: payment.amount_vnd,
            lines: HashMap::new(),
        };
        let books = Books {
            orders: HashMap::from([(order_id, order)]),
            payments: HashMap::from([(order_id, payment)]),
            reservations: HashMap::new(),
            stock: HashMap::new(),
        };
        (order_id, books)
    }

    fn captured(status: &str, captured_vnd: i64) -> Payment {
        Payment {
            recent: false,
            id: Uuid::now_v7(),
            status: status.to_owned(),
            amount_vnd: 100_000,
            captured_vnd,
            refunded_vnd: 0,
            succeeded_refunds_vnd: 0,
            pending_refunds_vnd: 0,
            manual_refunds_vnd: 0,
        }
    }

    #[test]
    fn money_captured_for_a_cancelled_order_must_be_given_back_or_flagged() {
        let (order_id, kept) = books("cancelled", captured("expired", 100_000));
        let invariant = no_money_kept_without_an_order(&kept);
        assert_eq!(invariant.violations, 1);
        assert!(invariant.first[0].contains(&order_id.to_string()));

        for given_back in [
            Payment {
                pending_refunds_vnd: 100_000,
                ..captured("expired", 100_000)
            },
            Payment {
                manual_refunds_vnd: 100_000,
                ..captured("expired", 100_000)
            },
            Payment {
                refunded_vnd: 100_000,
                succeeded_refunds_vnd: 100_000,
                ..captured("expired", 100_000)
            },
        ] {
            let (_, books) = books("cancelled", given_back);
            assert_eq!(no_money_kept_without_an_order(&books).violations, 0);
        }
        let (_, paid) = books("confirmed", captured("succeeded", 100_000));
        assert_eq!(no_money_kept_without_an_order(&paid).violations, 0);
    }

    #[test]
    fn an_order_still_on_its_way_is_left_out() {
        let (order_id, mut books) = books("cancelled", captured("expired", 100_000));
        books.orders.get_mut(&order_id).unwrap().recent = true;
        assert_eq!(no_money_kept_without_an_order(&books).violations, 0);
    }

    #[test]
    fn stock_must_add_up_from_its_initial_level() {
        let product = Uuid::now_v7();
        let stock = |on_hand| Stock {
            on_hand,
            reserved: 0,
            initial_on_hand: 50,
            adjusted: 10,
            sold: 3,
            held: 0,
        };
        let mut books = Books {
            orders: HashMap::new(),
            payments: HashMap::new(),
            reservations: HashMap::new(),
            stock: HashMap::from([(product, stock(57))]),
        };
        assert_eq!(stock_moves_are_accounted_for(&books).violations, 0);
        books.stock.insert(product, stock(58));
        let invariant = stock_moves_are_accounted_for(&books);
        assert_eq!(invariant.violations, 1);
        assert!(invariant.first[0].contains("50 initial + 10 adjusted − 3 sold = 57"));
    }
}
