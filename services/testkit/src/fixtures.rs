//! Catalogue and order fixtures shared by the order service's API tests and the
//! end-to-end tests: one producer, products with the stock and price a test needs, a
//! shopper in Hạ Long, and a wait on an order's status.

use std::time::Duration;

use ocop_proto::{
    catalog::v1::{self as catalog, catalog_service_client::CatalogServiceClient},
    order::v1::{self as order, order_service_client::OrderServiceClient},
};
use tonic::transport::Channel;

use crate::{authorized, eventually, unique};

const PRODUCER: &str = "HTX-GA-TIEN-YEN";

/// A new product "Gà Tiên Yên" with `stock` units at `price_vnd` (and its producer),
/// created through the catalog's operator API; returns the product id.
pub async fn seed_product(
    catalog: &mut CatalogServiceClient<Channel>,
    jwt_secret: &str,
    stock: i64,
    price_vnd: i64,
) -> String {
    catalog
        .upsert_producer(authorized(
            catalog::UpsertProducerRequest {
                code: PRODUCER.into(),
                name: "HTX Gà Tiên Yên".into(),
                kind: catalog::ProducerKind::Cooperative as i32,
                district: "Tiên Yên".into(),
                province: "Quảng Ninh".into(),
            },
            jwt_secret,
            &["catalog:write"],
        ))
        .await
        .expect("upsert the fixture producer");
    catalog
        .upsert_product(authorized(
            catalog::UpsertProductRequest {
                sku: unique("GA").to_uppercase().replace('_', "-"),
                producer_code: PRODUCER.into(),
                name: "Gà Tiên Yên".into(),
                description: "Gà đồi thả vườn, thịt chắc.".into(),
                category: "Thực phẩm".into(),
                stars: 4,
                unit: "con ~1,5kg".into(),
                price_vnd,
                status: catalog::ProductStatus::Active as i32,
                initial_stock: stock,
            },
            jwt_secret,
            &["catalog:write"],
        ))
        .await
        .expect("upsert the fixture product")
        .into_inner()
        .product
        .expect("upserted product")
        .id
}

/// The fixture shopper's personal data, for tests that check it never leaks.
pub const SHOPPER_PERSONAL_DATA: &[&str] = &[
    "Trần Văn Minh",
    "0912345678",
    "minh@example.com",
    "25 Lê Thánh Tông",
    "Hồng Gai",
    "Hạ Long",
];

/// Places `request` (which must succeed); returns the order.
pub async fn place_order(
    orders: &OrderServiceClient<Channel>,
    request: order::PlaceOrderRequest,
) -> PlacedOrder {
    let placed = orders
        .clone()
        .place_order(request)
        .await
        .expect("place the order")
        .into_inner();
    PlacedOrder {
        order: placed.order.expect("PlaceOrder returns the order"),
        access_token: placed.access_token,
    }
}

/// An order a test placed, and the shopper's access token to it (it reads as the order).
#[derive(Debug, Clone)]
pub struct PlacedOrder {
    pub order: order::Order,
    pub access_token: String,
}

impl std::ops::Deref for PlacedOrder {
    type Target = order::Order;

    fn deref(&self) -> &order::Order {
        &self.order
    }
}

/// A sandbox-paid web order of `quantity` units, standard delivery, for a shopper in
/// Hạ Long (phone `0912345678` once normalised).
pub fn place_request(key: &str, product_id: &str, quantity: i32) -> order::PlaceOrderRequest {
    order::PlaceOrderRequest {
        idempotency_key: key.into(),
        customer: Some(order::Customer {
            name: "Trần Văn Minh".into(),
            phone: "0912 345 678".into(),
            email: "minh@example.com".into(),
            address: Some(order::Address {
                province: "Quảng Ninh".into(),
                district: "Hạ Long".into(),
                ward: "Hồng Gai".into(),
                street: "25 Lê Thánh Tông".into(),
            }),
        }),
        lines: vec![order::LineItem {
            product_id: product_id.into(),
            quantity,
        }],
        delivery_method: order::DeliveryMethod::Standard as i32,
        payment_method: order::PaymentMethod::Sandbox as i32,
        sales_channel: order::SalesChannel::Web as i32,
        note: String::new(),
    }
}

/// Waits until the order reaches `status` (within `timeout`) and returns it; reads as
/// an operator (`order:read`, signed with `jwt_secret`).
pub async fn wait_for_status(
    orders: &OrderServiceClient<Channel>,
    jwt_secret: &str,
    order_id: &str,
    status: order::OrderStatus,
    timeout: Duration,
) -> order::Order {
    eventually(
        &format!("order {order_id} to be {status:?}"),
        timeout,
        || {
            let mut client = orders.clone();
            let order_id = order_id.to_owned();
            async move {
                let read = authorized(
                    order::GetOrderRequest {
                        order_id,
                        ..Default::default()
                    },
                    jwt_secret,
                    &["order:read"],
                );
                let found = client.get_order(read).await.ok()?.into_inner().order?;
                (found.status == status as i32).then_some(found)
            }
        },
    )
    .await
}
