//! The Kafka topics of the platform (logical names, before any `KAFKA_TOPIC_PREFIX`),
//! with the partition counts the services create them with on local stacks (`make
//! run`, the tests). A cluster's `KafkaTopic`s choose their own counts (`deploy/k8s`).
//! `tools/dev/deploy-check.sh` and `tools/dev/contract-check.sh` read the names from
//! this file: keep each name a string literal.

/// One topic: its name, partitions and clean-up policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Topic {
    pub name: &'static str,
    pub partitions: i32,
    /// Compacted topics keep the newest record per key (product snapshots).
    pub compacted: bool,
}

impl Topic {
    const fn log(name: &'static str, partitions: i32) -> Self {
        Self {
            name,
            partitions,
            compacted: false,
        }
    }
}

/// Every topic of the platform starts with this (after the prefix): how a tool tells
/// the platform's topics from others on a shared broker.
pub const PLATFORM_PREFIX: &str = "ocop.";

/// Partitions of the saga's topics: the unit of consumer parallelism (a replica or two
/// per service) and of ordering (one order's events stay in one partition).
const SAGA_PARTITIONS: i32 = 3;

/// The saga's order events, keyed by order id (internal: they carry the customer's
/// contact). Produced by order; consumed by catalog, payment and notification.
pub const ORDERS: Topic = Topic::log("ocop.orders.v1", SAGA_PARTITIONS);

/// The order lifecycle for partner marketplaces, without personal data, keyed by
/// order id. Public (docs/asyncapi.yaml).
pub const PARTNER_ORDERS: Topic = Topic::log("ocop.partner.orders.v1", SAGA_PARTITIONS);

/// Reservations and stock changes, keyed by order id (or product id for adjustments).
/// Produced by catalog; consumed by order and notification.
pub const INVENTORY: Topic = Topic::log("ocop.inventory.v1", SAGA_PARTITIONS);

/// Payment events, keyed by order id. Produced by payment; consumed by order and
/// notification.
pub const PAYMENTS: Topic = Topic::log("ocop.payments.v1", SAGA_PARTITIONS);

/// Full product snapshots, compacted, keyed by product id. Public (docs/asyncapi.yaml).
pub const PRODUCTS: Topic = Topic {
    name: "ocop.catalog.products.v1",
    partitions: SAGA_PARTITIONS,
    compacted: true,
};

/// Delivery outcomes of notifications, keyed by order id. Produced by notification.
pub const NOTIFICATIONS: Topic = Topic::log("ocop.notifications.v1", SAGA_PARTITIONS);

/// Every event topic (dead-letter topics are [`super::consumer_groups`]').
pub const ALL: [Topic; 6] = [
    ORDERS,
    PARTNER_ORDERS,
    INVENTORY,
    PAYMENTS,
    PRODUCTS,
    NOTIFICATIONS,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_are_versioned_platform_names_and_unique() {
        let mut names: Vec<&str> = ALL.iter().map(|topic| topic.name).collect();
        for name in &names {
            assert!(name.starts_with(PLATFORM_PREFIX), "{name}");
            assert!(name.ends_with(".v1"), "{name}");
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALL.len());
    }

    #[test]
    fn only_the_product_topic_is_compacted() {
        let compacted: Vec<&str> = ALL
            .iter()
            .filter(|topic| topic.compacted)
            .map(|topic| topic.name)
            .collect();
        assert_eq!(compacted, [PRODUCTS.name]);
    }
}
