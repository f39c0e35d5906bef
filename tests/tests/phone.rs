//! The order and the notification service read a phone number alike: an order the order
//! service takes never carries a phone the notification service then refuses, and both
//! store the same canonical form. Both call `ocop_proto::contract::phone`; this test
//! holds them to it through their own domain types, on the spellings where their rules
//! used to differ.

use ocop_notification::domain::contact::Phone as NotificationPhone;
use ocop_order::domain::order::Phone as OrderPhone;

const SPELLINGS: &[&str] = &[
    // Accepted by both before.
    "0912345678",
    "+84 912 345 678",
    "84912345678",
    "0912.345.678",
    "(091) 234-5678",
    // Accepted by the notification service only: `0084`, landlines, 11 digits.
    "0084912345678",
    "02438251234",
    "0203 3825 123",
    "09123456789",
    "01234567890",
    // Refused by both.
    "",
    "091234567",
    "0112345678",
    "+1 415 555 0100",
    "0912abc678",
    "+840912345678",
];

#[test]
fn order_and_notification_accept_the_same_phones_in_the_same_form() {
    for raw in SPELLINGS {
        let order = OrderPhone::parse("customer.phone", raw);
        let notification = NotificationPhone::parse("customer.phone", raw);
        match (&order, &notification) {
            (Ok(order), Ok(notification)) => {
                assert_eq!(order.as_str(), notification.as_str(), "{raw:?}")
            }
            (Err(order), Err(notification)) => {
                assert_eq!(order.field, "customer.phone");
                assert_eq!(order.reason, notification.reason, "{raw:?}");
            }
            _ => panic!("{raw:?}: order says {order:?}, notification says {notification:?}"),
        }
    }
}

#[test]
fn what_the_order_service_stores_the_notification_service_reads_unchanged() {
    for raw in SPELLINGS {
        if let Ok(order) = OrderPhone::parse("customer.phone", raw) {
            let received = NotificationPhone::parse("customer.phone", order.as_str())
                .unwrap_or_else(|err| panic!("{raw:?} taken by order, refused: {err:?}"));
            assert_eq!(received.as_str(), order.as_str());
        }
    }
}
