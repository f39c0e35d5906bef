//! A burst of concurrent orders through the broker storage that `make run` uses.
//!
//! Seen on the `make run` stack: ~300 concurrent `PlaceOrder` calls, and every consumer
//! group's session timed out and the saga never moved again (the broker's group
//! coordinator stayed "Forming"). This drives the same burst through the four service
//! processes and a broker with `make run`'s storage engine, and asserts that every order
//! settles and the stock adds up.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::future::join_all;
use ocop_e2e::{
    SECRET, authorized,
    processes::{Options, ProcessPlatform, SERVICES},
};
use ocop_proto::{
    catalog::v1::GetProductRequest,
    order::v1::{self as order, order_service_client::OrderServiceClient},
};
use ocop_testkit::{
    PrivateBroker, eventually,
    fixtures::{place_order, place_request, seed_product},
    run_broker_storage, unique,
};

/// As many orders as the burst that stalled the `make run` stack.
const BURST: usize = 300;
/// Units on hand: every order of the burst can be served.
const STOCK: i64 = 1_000;
/// Generous: a debug build on two cores, draining 300 orders through every hop.
const SETTLE: Duration = Duration::from_secs(240);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_concurrent_orders_settles_every_order_on_the_run_stacks_broker() {
    let broker = PrivateBroker::start_with_storage(&run_broker_storage()).await;
    let brokers = format!("--kafka-brokers={}", broker.brokers());
    let platform = ProcessPlatform::start(
        "burst",
        Options {
            env: vec![("RUST_LOG".to_owned(), "warn".to_owned())],
            flags: SERVICES
                .into_iter()
                .map(|name| (name, vec![brokers.clone()]))
                .collect(),
        },
    )
    .await;
    let (mut catalog, orders) = platform.clients().await;
    let product_id = seed_product(&mut catalog, SECRET, STOCK, 150_000).await;

    // All at once, as many shoppers pressing "Đặt hàng" together.
    let placed: Vec<String> = join_all((0..BURST).map(|_| {
        let orders = orders.clone();
        let request = place_request(&unique("burst"), &product_id, 1);
        async move { place_order(&orders, request).await.order.id }
    }))
    .await;

    // Only the orders not yet confirmed are asked again, so the probe adds little load.
    let pending = Arc::new(Mutex::new(placed));
    eventually(
        &format!("all {BURST} orders of the burst to be confirmed"),
        SETTLE,
        || {
            let orders = orders.clone();
            let pending = pending.clone();
            async move {
                let ids = pending.lock().unwrap().clone();
                let statuses = statuses(&orders, &ids).await;
                let still: Vec<String> = ids
                    .into_iter()
                    .zip(statuses)
                    .filter(|(_, status)| *status != order::OrderStatus::Confirmed)
                    .map(|(id, _)| id)
                    .collect();
                let done = still.is_empty();
                *pending.lock().unwrap() = still;
                done.then_some(())
            }
        },
    )
    .await;

    // Every unit sold once, none left held (the catalog turns each confirmed order's
    // reservation into a sale when it reads `OrderConfirmed`).
    let expected = (STOCK - BURST as i64, 0);
    eventually(&format!("stock to be {expected:?}"), SETTLE, || {
        let mut catalog = catalog.clone();
        let id = product_id.clone();
        async move {
            let product = catalog
                .get_product(GetProductRequest {
                    id,
                    ..Default::default()
                })
                .await
                .ok()?
                .into_inner()
                .product?;
            ((product.on_hand, product.reserved) == expected).then_some(())
        }
    })
    .await;
    platform.stop().await;
}

/// The current status of each order.
async fn statuses(
    orders: &OrderServiceClient<tonic::transport::Channel>,
    ids: &[String],
) -> Vec<order::OrderStatus> {
    join_all(ids.iter().map(|id| {
        let mut orders = orders.clone();
        let id = id.clone();
        async move {
            orders
                .get_order(authorized(
                    order::GetOrderRequest {
                        order_id: id,
                        ..Default::default()
                    },
                    &["order:read"],
                ))
                .await
                .ok()
                .and_then(|response| response.into_inner().order)
                .map_or(order::OrderStatus::Unspecified, |order| order.status())
        }
    }))
    .await
}
