//! The consumer groups of the platform and their dead-letter topics. A group's name is
//! also its inbox's consumer name; the deployment's `KafkaUser` ACLs and `ocopctl dlq
//! replay <group>` name it too. `tools/dev/deploy-check.sh` reads the names from this
//! file.

use super::topics::Topic;

/// What a consumer group's dead-letter topic name adds to the group's name.
pub const DEAD_LETTER_SUFFIX: &str = ".dlq";

/// Dead letters are rare and read by an operator in order; one partition keeps them so.
pub const DEAD_LETTER_PARTITIONS: i32 = 1;

/// The dead-letter topic of `group` (`<group>.dlq`), for a group named at run time
/// (`ocopctl dlq replay`); the groups below carry theirs as a constant.
pub fn dead_letter_topic(group: &str) -> String {
    format!("{group}{DEAD_LETTER_SUFFIX}")
}

/// One consumer group and the topic its consumer sends what it cannot apply to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumerGroup {
    pub name: &'static str,
    pub dead_letters: Topic,
}

/// Defines a group with its dead-letter topic spelt at compile time (`concat!` needs a
/// literal, and topic specs need `'static` names); a test checks it against
/// [`dead_letter_topic`].
macro_rules! group {
    ($(#[$doc:meta])* $constant:ident = $name:literal) => {
        $(#[$doc])*
        pub const $constant: ConsumerGroup = ConsumerGroup {
            name: $name,
            dead_letters: Topic {
                name: concat!($name, ".dlq"),
                partitions: DEAD_LETTER_PARTITIONS,
                compacted: false,
            },
        };
    };
}

group!(
    /// The catalog's: order events become reservations, sales and releases.
    CATALOG_ORDERS = "ocop.catalog.orders"
);
group!(
    /// The order service's: inventory and payment events move the saga.
    ORDER_SAGA = "ocop.order.saga"
);
group!(
    /// The payment service's: `PaymentRequested` opens an intent, a cancellation
    /// closes it.
    PAYMENT_ORDERS = "ocop.payment.orders"
);
group!(
    /// The notification service's group for order events (one group per consumed topic:
    /// see the notification service's `events::SUBSCRIPTIONS`).
    NOTIFICATION_ORDERS = "ocop.notification.events.orders"
);
group!(
    /// The notification service's group for payment events.
    NOTIFICATION_PAYMENTS = "ocop.notification.events.payments"
);
group!(
    /// The notification service's group for inventory events.
    NOTIFICATION_INVENTORY = "ocop.notification.events.inventory"
);

/// Every consumer group of the services.
pub const ALL: [ConsumerGroup; 6] = [
    CATALOG_ORDERS,
    ORDER_SAGA,
    PAYMENT_ORDERS,
    NOTIFICATION_ORDERS,
    NOTIFICATION_PAYMENTS,
    NOTIFICATION_INVENTORY,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_groups_dead_letter_topic_follows_the_naming_rule() {
        for group in ALL {
            assert_eq!(group.dead_letters.name, dead_letter_topic(group.name));
            assert_eq!(group.dead_letters.partitions, DEAD_LETTER_PARTITIONS);
            assert!(!group.dead_letters.compacted);
        }
    }

    #[test]
    fn group_names_are_platform_names_and_unique() {
        let mut names: Vec<&str> = ALL.iter().map(|group| group.name).collect();
        for name in &names {
            assert!(
                name.starts_with(super::super::topics::PLATFORM_PREFIX),
                "{name}"
            );
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALL.len());
    }
}
