//! The catalog service started for real (port 0, fresh database, the test broker) and
//! called through its generated gRPC client.

use ocop_proto::contract::topics;
use std::time::Duration;

use clap::Parser as _;
use ocop_catalog::{
    App, Config,
    domain::reservation::{RequestedLine, ReservationState},
    service::{Catalog, ReserveOutcome},
};
use ocop_grpc_kit::{
    auth::{Grant, TokenIssuer, audience},
    validation::violations,
};
use ocop_proto::catalog::v1::{self as pb, catalog_service_client::CatalogServiceClient};
use ocop_testkit::{
    authorized, eventually, find_record, fresh_database_url, header, key_text, service_args,
    stock_client::{
        assert_invalid, call_with_undecodable_body, expected_reflection, reflected_services,
    },
    with_grant,
};
use prost::Message as _;
use rdkafka::Message as _;
use tokio::sync::oneshot;
use tonic::{Code, Request, transport::Channel};
use uuid::Uuid;

const SECRET: &str = "catalog-test-secret-catalog-test-secret";
const WAIT: Duration = Duration::from_secs(30);

struct TestCatalog {
    client: CatalogServiceClient<Channel>,
    catalog: Catalog,
    grpc_addr: std::net::SocketAddr,
    http_addr: std::net::SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    running: tokio::task::JoinHandle<anyhow::Result<()>>,
}

async fn spawn_catalog_with(extra: &[&str]) -> TestCatalog {
    let database_url = fresh_database_url().await;
    let mut args = service_args("catalog", &database_url, "", SECRET);
    args.extend(extra.iter().map(|arg| (*arg).to_owned()));
    let config = Config::try_parse_from(args).expect("test config parses");
    let app = App::build(config).await.expect("catalog builds");
    let grpc_addr = app.grpc_addr();
    let http_addr = app.http_addr();
    let catalog = app.catalog();
    let (shutdown, stopped) = oneshot::channel();
    let running = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    let client = CatalogServiceClient::connect(format!("http://{grpc_addr}"))
        .await
        .expect("connect to catalog");
    TestCatalog {
        client,
        catalog,
        grpc_addr,
        http_addr,
        shutdown: Some(shutdown),
        running,
    }
}

async fn spawn_catalog() -> TestCatalog {
    spawn_catalog_with(&[]).await
}

fn operator<T>(message: T) -> Request<T> {
    with_token(message, &["catalog:write"])
}

fn with_token<T>(message: T, scopes: &[&str]) -> Request<T> {
    authorized(message, SECRET, scopes)
}

fn producer_request(code: &str, district: &str) -> pb::UpsertProducerRequest {
    pb::UpsertProducerRequest {
        code: code.into(),
        name: format!("HTX {district}"),
        kind: pb::ProducerKind::Cooperative as i32,
        district: district.into(),
        province: "Quảng Ninh".into(),
    }
}

fn product_request(
    sku: &str,
    producer: &str,
    name: &str,
    price_vnd: i64,
    stock: i64,
) -> pb::UpsertProductRequest {
    pb::UpsertProductRequest {
        sku: sku.into(),
        producer_code: producer.into(),
        name: name.into(),
        description: format!("{name}, đặc sản Quảng Ninh."),
        category: "Thực phẩm".into(),
        stars: 4,
        unit: "gói 500g".into(),
        price_vnd,
        status: pb::ProductStatus::Unspecified as i32,
        initial_stock: stock,
    }
}

impl TestCatalog {
    async fn producer(&mut self, code: &str, district: &str) {
        self.client
            .upsert_producer(operator(producer_request(code, district)))
            .await
            .expect("upsert producer");
    }

    async fn product(&mut self, request: pb::UpsertProductRequest) -> pb::Product {
        self.client
            .upsert_product(operator(request))
            .await
            .expect("upsert product")
            .into_inner()
            .product
            .unwrap()
    }

    /// Two producers and four products, two of them with accents that search must fold.
    async fn small_catalogue(&mut self) -> Vec<pb::Product> {
        self.producer("HTX-BINH-LIEU", "Bình Liêu").await;
        self.producer("HTX-BA-CHE", "Ba Chẽ").await;
        let mut products = Vec::new();
        for request in [
            product_request(
                "BLI-MIEN-DONG-500G",
                "HTX-BINH-LIEU",
                "Miến dong Bình Liêu",
                75_000,
                50,
            ),
            product_request(
                "BLI-DAU-SO-500ML",
                "HTX-BINH-LIEU",
                "Dầu sở Bình Liêu",
                180_000,
                20,
            ),
            product_request(
                "BCH-TRA-HOA-VANG-100G",
                "HTX-BA-CHE",
                "Trà hoa vàng Ba Chẽ",
                450_000,
                10,
            ),
            product_request(
                "BCH-BA-KICH-500G",
                "HTX-BA-CHE",
                "Ba kích tím Ba Chẽ",
                320_000,
                0,
            ),
        ] {
            products.push(self.product(request).await);
        }
        products
    }

    async fn stop(mut self) {
        let _ = self.shutdown.take().unwrap().send(());
        tokio::time::timeout(WAIT, self.running)
            .await
            .expect("catalog stops within the grace period")
            .expect("catalog task did not panic")
            .expect("catalog stopped cleanly");
    }
}

fn names(products: &[pb::Product]) -> Vec<&str> {
    products
        .iter()
        .map(|product| product.name.as_str())
        .collect()
}

async fn search(catalog: &mut TestCatalog, query: &str) -> Vec<pb::Product> {
    catalog
        .client
        .search_products(pb::SearchProductsRequest {
            query: query.into(),
            limit: 10,
        })
        .await
        .expect("search")
        .into_inner()
        .products
}

#[tokio::test]
async fn search_ignores_vietnamese_diacritics_and_case() {
    let mut catalog = spawn_catalog().await;
    catalog.small_catalogue().await;
    for query in [
        "mien dong binh lieu",
        "MIẾN DONG",
        "Miến dong Bình Liêu",
        "mien dong",
    ] {
        let found = search(&mut catalog, query).await;
        assert_eq!(
            names(&found).first(),
            Some(&"Miến dong Bình Liêu"),
            "query {query:?} found {:?}",
            names(&found)
        );
    }
    let tea = search(&mut catalog, "tra hoa vang").await;
    assert_eq!(names(&tea), vec!["Trà hoa vàng Ba Chẽ"]);
    // The producer's district is searchable too.
    let ba_che = search(&mut catalog, "ba che").await;
    assert!(
        names(&ba_che).contains(&"Ba kích tím Ba Chẽ"),
        "{:?}",
        names(&ba_che)
    );
    assert!(search(&mut catalog, "xe máy").await.is_empty());
    catalog.stop().await;
}

#[tokio::test]
async fn empty_search_query_is_invalid_argument_naming_the_field() {
    let mut catalog = spawn_catalog().await;
    let status = catalog
        .client
        .search_products(pb::SearchProductsRequest {
            query: "  ".into(),
            limit: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(violations(&status)[0].field, "query");
    catalog.stop().await;
}

#[tokio::test]
async fn list_filters_and_pages_through_active_products() {
    let mut catalog = spawn_catalog().await;
    catalog.small_catalogue().await;
    let mut hidden = product_request("BLI-HIDDEN-1", "HTX-BINH-LIEU", "Sản phẩm ẩn", 10_000, 5);
    hidden.status = pb::ProductStatus::Hidden as i32;
    catalog.product(hidden).await;

    let mut seen = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = catalog
            .client
            .list_products(pb::ListProductsRequest {
                page_size: 3,
                page_token: page_token.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.products.len() <= 3);
        seen.extend(page.products.into_iter().map(|product| product.sku));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    assert_eq!(
        seen,
        vec![
            "BCH-BA-KICH-500G",
            "BCH-TRA-HOA-VANG-100G",
            "BLI-DAU-SO-500ML",
            "BLI-MIEN-DONG-500G"
        ]
    );

    let filtered = catalog
        .client
        .list_products(pb::ListProductsRequest {
            district: "Bình Liêu".into(),
            min_price_vnd: 100_000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(names(&filtered.products), vec!["Dầu sở Bình Liêu"]);

    let status = catalog
        .client
        .list_products(pb::ListProductsRequest {
            page_token: "not-a-token".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(violations(&status)[0].field, "page_token");
    catalog.stop().await;
}

#[tokio::test]
async fn invalid_product_is_refused_naming_the_field_and_nothing_is_written() {
    let mut catalog = spawn_catalog().await;
    catalog.producer("HTX-BINH-LIEU", "Bình Liêu").await;
    let cases = [
        (
            "stars",
            pb::UpsertProductRequest {
                stars: 6,
                ..product_request("SKU-A", "HTX-BINH-LIEU", "A", 1_000, 1)
            },
        ),
        (
            "price_vnd",
            product_request("SKU-B", "HTX-BINH-LIEU", "B", -5, 1),
        ),
        (
            "name",
            product_request("SKU-C", "HTX-BINH-LIEU", "", 1_000, 1),
        ),
        (
            "name",
            product_request("SKU-D", "HTX-BINH-LIEU", &"x".repeat(201), 1_000, 1),
        ),
        (
            "initial_stock",
            product_request("SKU-E", "HTX-BINH-LIEU", "E", 1_000, -1),
        ),
        (
            "sku",
            product_request("bad sku", "HTX-BINH-LIEU", "F", 1_000, 1),
        ),
    ];
    for (field, request) in cases {
        let status = catalog
            .client
            .upsert_product(operator(request))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{field}: {status:?}");
        assert_eq!(violations(&status)[0].field, field);
    }
    let status = catalog
        .client
        .upsert_product(operator(product_request(
            "SKU-G",
            "HTX-NOWHERE",
            "G",
            1_000,
            1,
        )))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert!(
        status.message().starts_with("producer_code:"),
        "{}",
        status.message()
    );

    let listed = catalog
        .client
        .list_products(pb::ListProductsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(
        listed.products.is_empty(),
        "nothing may be written: {:?}",
        names(&listed.products)
    );
    catalog.stop().await;
}

#[tokio::test]
async fn operator_calls_need_a_token_with_the_write_scope() {
    let mut catalog = spawn_catalog().await;
    let anonymous = catalog
        .client
        .upsert_producer(producer_request("HTX-X", "Cô Tô"))
        .await
        .unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);
    let wrong_scope = catalog
        .client
        .upsert_producer(with_token(
            producer_request("HTX-X", "Cô Tô"),
            &["order:read"],
        ))
        .await
        .unwrap_err();
    assert_eq!(wrong_scope.code(), Code::PermissionDenied);
    let mut forged = Request::new(producer_request("HTX-X", "Cô Tô"));
    let other = TokenIssuer::from_secret(b"someone-else-someone-else-someone-else");
    forged.metadata_mut().insert(
        "authorization",
        format!(
            "Bearer {}",
            other.mint(&Grant {
                audiences: &[audience::CATALOG],
                subject: "x",
                scopes: &["catalog:write"],
                channel: None,
                ttl: Duration::from_secs(60),
            })
        )
        .parse()
        .unwrap(),
    );
    assert_eq!(
        catalog
            .client
            .upsert_producer(forged)
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
    // A token with the right scope minted for another service is no use here.
    let for_the_order_service = with_grant(
        producer_request("HTX-X", "Cô Tô"),
        SECRET,
        &Grant {
            audiences: &[audience::ORDER],
            subject: "ops",
            scopes: &["catalog:write"],
            channel: None,
            ttl: Duration::from_secs(60),
        },
    );
    let refused = catalog
        .client
        .upsert_producer(for_the_order_service)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    assert!(refused.message().contains("Audience"), "{refused:?}");
    let listed = catalog
        .client
        .list_products(pb::ListProductsRequest::default())
        .await;
    assert!(listed.is_ok(), "browsing stays anonymous");
    catalog.stop().await;
}

#[tokio::test]
async fn a_product_is_found_by_its_sku_and_its_id_follows_from_the_sku() {
    let mut catalog = spawn_catalog().await;
    let products = catalog.small_catalogue().await;
    // Every install seeded with this SKU gets this id (UUIDv5 in the catalog's namespace).
    assert_eq!(products[0].id, "a059a972-06c8-5391-b2e7-5d77793363d0");
    let by_sku = |sku: &str| pb::GetProductRequest {
        sku: sku.into(),
        ..Default::default()
    };
    let got = catalog
        .client
        .get_product(by_sku("BLI-MIEN-DONG-500G"))
        .await
        .unwrap()
        .into_inner()
        .product
        .unwrap();
    assert_eq!(got.id, products[0].id);

    let status = catalog
        .client
        .get_product(by_sku("BLI-NOT-SOLD-HERE"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    for bad in ["bli-mien-dong-500g", "BLI\0MIEN"] {
        let status = catalog.client.get_product(by_sku(bad)).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{bad:?}");
        assert_eq!(violations(&status)[0].field, "sku");
    }
    let both = pb::GetProductRequest {
        id: products[0].id.clone(),
        sku: "BLI-MIEN-DONG-500G".into(),
    };
    let status = catalog.client.get_product(both).await.unwrap_err();
    assert_eq!(violations(&status)[0].field, "sku");
    let status = catalog
        .client
        .get_product(pb::GetProductRequest::default())
        .await
        .unwrap_err();
    assert_eq!(violations(&status)[0].field, "id");
    catalog.stop().await;
}

#[tokio::test]
async fn get_and_batch_get_report_unknown_ids() {
    let mut catalog = spawn_catalog().await;
    let products = catalog.small_catalogue().await;
    let got = catalog
        .client
        .get_product(pb::GetProductRequest {
            id: products[0].id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .product
        .unwrap();
    assert_eq!(got.name, "Miến dong Bình Liêu");
    assert_eq!(got.producer.unwrap().district, "Bình Liêu");

    let unknown = Uuid::new_v4().to_string();
    let status = catalog
        .client
        .get_product(pb::GetProductRequest {
            id: unknown.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let status = catalog
        .client
        .get_product(pb::GetProductRequest {
            id: "42".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(violations(&status)[0].field, "id");

    let batch = catalog
        .client
        .batch_get_products(pb::BatchGetProductsRequest {
            ids: vec![
                products[2].id.clone(),
                unknown.clone(),
                products[0].id.clone(),
            ],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        names(&batch.products),
        vec!["Trà hoa vàng Ba Chẽ", "Miến dong Bình Liêu"]
    );
    assert_eq!(batch.missing_ids, vec![unknown]);
    catalog.stop().await;
}

#[tokio::test]
async fn quote_prices_lines_authoritatively_and_refuses_hidden_or_unknown_products() {
    let mut catalog = spawn_catalog().await;
    let products = catalog.small_catalogue().await;
    let quote = catalog
        .client
        .quote_price(pb::QuotePriceRequest {
            lines: vec![
                pb::QuoteLine {
                    product_id: products[0].id.clone(),
                    quantity: 3,
                },
                pb::QuoteLine {
                    product_id: products[3].id.clone(),
                    quantity: 1,
                },
            ],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(quote.lines[0].line_total_vnd, 225_000);
    assert!(quote.lines[0].in_stock);
    assert!(!quote.lines[1].in_stock, "ba kích has no stock");
    assert_eq!(quote.subtotal_vnd, 225_000 + 320_000);

    let status = catalog
        .client
        .quote_price(pb::QuotePriceRequest {
            lines: vec![pb::QuoteLine {
                product_id: products[0].id.clone(),
                quantity: 0,
            }],
        })
        .await
        .unwrap_err();
    assert_eq!(violations(&status)[0].field, "lines[0].quantity");

    let status = catalog
        .client
        .quote_price(pb::QuotePriceRequest {
            lines: vec![pb::QuoteLine {
                product_id: Uuid::new_v4().to_string(),
                quantity: 1,
            }],
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);

    let mut hidden = product_request(
        "BLI-MIEN-DONG-500G",
        "HTX-BINH-LIEU",
        "Miến dong Bình Liêu",
        75_000,
        0,
    );
    hidden.status = pb::ProductStatus::Hidden as i32;
    catalog.product(hidden).await;
    let status = catalog
        .client
        .quote_price(pb::QuotePriceRequest {
            lines: vec![pb::QuoteLine {
                product_id: products[0].id.clone(),
                quantity: 1,
            }],
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    catalog.stop().await;
}

#[tokio::test]
async fn product_update_publishes_a_full_snapshot_with_cloudevents_headers() {
    let mut catalog = spawn_catalog().await;
    catalog.producer("HTX-CO-TO", "Cô Tô").await;
    let created = catalog
        .product(product_request(
            "CTO-SA-SUNG-100G",
            "HTX-CO-TO",
            "Sá sùng khô Cô Tô",
            550_000,
            12,
        ))
        .await;
    let updated = catalog
        .product(product_request(
            "CTO-SA-SUNG-100G",
            "HTX-CO-TO",
            "Sá sùng khô Cô Tô",
            590_000,
            12,
        ))
        .await;
    assert_eq!(updated.id, created.id);

    let record = find_record(topics::PRODUCTS.name, WAIT, |message| {
        key_text(message) == created.id
            && pb::ProductSnapshot::decode(message.payload().unwrap_or_default())
                .ok()
                .and_then(|snapshot| snapshot.product)
                .is_some_and(|product| product.price_vnd == 590_000)
    })
    .await;
    assert_eq!(
        header(&record, "ce_type").as_deref(),
        Some("ocop.catalog.v1.ProductSnapshot")
    );
    assert_eq!(header(&record, "ce_specversion").as_deref(), Some("1.0"));
    assert_eq!(
        header(&record, "ce_source").as_deref(),
        Some("/ocop/catalog")
    );
    assert_eq!(
        header(&record, "ce_subject"),
        Some(format!("product/{}", created.id))
    );
    assert_eq!(
        header(&record, "content-type").as_deref(),
        Some("application/protobuf")
    );
    assert!(header(&record, "ce_id").unwrap().parse::<Uuid>().is_ok());
    let product = pb::ProductSnapshot::decode(record.payload().unwrap())
        .unwrap()
        .product
        .unwrap();
    assert_eq!(product.name, "Sá sùng khô Cô Tô");
    assert_eq!(product.available, 12);
    catalog.stop().await;
}

async fn outbox_types(catalog: &Catalog) -> Vec<String> {
    sqlx::query_scalar("SELECT ce_type FROM outbox ORDER BY seq")
        .fetch_all(catalog.pool())
        .await
        .unwrap()
}

/// A catalog whose snapshot publisher never ticks by itself: the test publishes.
async fn spawn_catalog_publishing_by_hand() -> TestCatalog {
    spawn_catalog_with(&["--snapshot-interval=1h"]).await
}

/// The product snapshots in the outbox, oldest first.
async fn outbox_snapshots(catalog: &Catalog) -> Vec<pb::ProductSnapshot> {
    let payloads: Vec<Vec<u8>> = sqlx::query_scalar(
        "SELECT payload FROM outbox WHERE ce_type = 'ocop.catalog.v1.ProductSnapshot' ORDER BY seq",
    )
    .fetch_all(catalog.pool())
    .await
    .unwrap();
    payloads
        .iter()
        .map(|payload| pb::ProductSnapshot::decode(payload.as_slice()).unwrap())
        .collect()
}

/// The snapshots of `product` in the outbox, oldest first, with their versions.
async fn snapshots_of(catalog: &Catalog, product: Uuid) -> Vec<(i64, pb::Product)> {
    outbox_snapshots(catalog)
        .await
        .into_iter()
        .map(|snapshot| (snapshot.version, snapshot.product.unwrap()))
        .filter(|(_, snapshot)| snapshot.id == product.to_string())
        .collect()
}

#[tokio::test]
async fn unchanged_upsert_publishes_nothing() {
    let mut catalog = spawn_catalog_publishing_by_hand().await;
    catalog.producer("HTX-CO-TO", "Cô Tô").await;
    let request = product_request(
        "CTO-SA-SUNG-100G",
        "HTX-CO-TO",
        "Sá sùng khô Cô Tô",
        550_000,
        12,
    );
    catalog.product(request.clone()).await;
    assert_eq!(catalog.catalog.publish_due_snapshots(10).await.unwrap(), 1);
    let response = catalog
        .client
        .upsert_product(operator(request))
        .await
        .unwrap()
        .into_inner();
    assert!(!response.created);
    assert_eq!(catalog.catalog.publish_due_snapshots(10).await.unwrap(), 0);
    assert_eq!(
        outbox_types(&catalog.catalog).await,
        vec!["ocop.catalog.v1.ProductSnapshot"]
    );
    catalog.stop().await;
}

#[tokio::test]
async fn changes_between_two_rounds_publish_one_snapshot_of_the_latest_state() {
    let mut catalog = spawn_catalog_publishing_by_hand().await;
    let products = catalog.small_catalogue().await;
    assert_eq!(catalog.catalog.publish_due_snapshots(10).await.unwrap(), 4);
    let noodles = Uuid::parse_str(&products[0].id).unwrap(); // 50 on hand
    let line = |quantity| RequestedLine {
        product_id: noodles,
        quantity,
    };
    let (first, second) = (Uuid::new_v4(), Uuid::new_v4());
    reserve(&catalog.catalog, first, &[line(3)]).await;
    reserve(&catalog.catalog, second, &[line(5)]).await;
    assert!(finish(&catalog.catalog, first, ReservationState::Committed).await);
    catalog
        .client
        .adjust_stock(operator(pb::AdjustStockRequest {
            product_id: products[0].id.clone(),
            delta: 10,
            reason: "nhập kho".into(),
        }))
        .await
        .unwrap();

    assert_eq!(catalog.catalog.publish_due_snapshots(10).await.unwrap(), 1);
    let snapshots = outbox_snapshots(&catalog.catalog).await;
    assert_eq!(
        snapshots.len(),
        5,
        "four at creation, one for the four changes"
    );
    let latest = snapshots.last().unwrap().product.as_ref().unwrap();
    assert_eq!(latest.id, products[0].id);
    assert_eq!(
        (latest.on_hand, latest.reserved, latest.available),
        (57, 5, 52),
        "50 − 3 sold + 10 in; 5 held"
    );
    catalog.stop().await;
}

#[tokio::test]
async fn a_change_committed_during_a_snapshot_round_is_published_by_a_later_round() {
    let mut catalog = spawn_catalog_publishing_by_hand().await;
    let products = catalog.small_catalogue().await;
    catalog.catalog.publish_due_snapshots(10).await.unwrap();
    let noodles = Uuid::parse_str(&products[0].id).unwrap(); // 50 on hand
    let line = |quantity| RequestedLine {
        product_id: noodles,
        quantity,
    };
    reserve(&catalog.catalog, Uuid::new_v4(), &[line(3)]).await;

    // A reservation still in flight while a round runs: the round must not take the
    // product's mark and read the stock without it.
    let mut in_flight = catalog.catalog.pool().begin().await.unwrap();
    let outcome = catalog
        .catalog
        .reserve(&mut in_flight, Uuid::new_v4(), &[line(5)])
        .await
        .unwrap();
    assert!(
        matches!(outcome, ReserveOutcome::Reserved(_)),
        "{outcome:?}"
    );
    catalog.catalog.publish_due_snapshots(10).await.unwrap();
    in_flight.commit().await.unwrap();
    catalog.catalog.publish_due_snapshots(10).await.unwrap();

    let snapshots = snapshots_of(&catalog.catalog, noodles).await;
    let (_, latest) = snapshots.last().unwrap();
    assert_eq!(
        (latest.reserved, latest.available),
        (8, 42),
        "the last snapshot holds both reservations"
    );
    assert!(
        snapshots.windows(2).all(|pair| pair[0].0 < pair[1].0),
        "versions grow with every snapshot: {:?}",
        snapshots
            .iter()
            .map(|(version, _)| version)
            .collect::<Vec<_>>()
    );
    catalog.stop().await;
}

#[tokio::test]
async fn a_placement_applied_after_its_cancellation_holds_nothing() {
    let mut catalog = spawn_catalog().await;
    let products = catalog.small_catalogue().await;
    let noodles = Uuid::parse_str(&products[0].id).unwrap(); // 50 on hand
    let order = Uuid::new_v4();
    // The cancellation first (the placement was dead-lettered, then replayed).
    assert!(!finish(&catalog.catalog, order, ReservationState::Released).await);
    let outcome = reserve(
        &catalog.catalog,
        order,
        &[RequestedLine {
            product_id: noodles,
            quantity: 5,
        }],
    )
    .await;
    assert!(
        matches!(outcome, ReserveOutcome::AlreadyReserved(_)),
        "{outcome:?}"
    );
    let reserved: i64 = sqlx::query_scalar("SELECT reserved FROM stock WHERE product_id = $1")
        .bind(noodles)
        .fetch_one(catalog.catalog.pool())
        .await
        .unwrap();
    assert_eq!(reserved, 0, "nothing held for a cancelled order");
    catalog.stop().await;
}

#[tokio::test]
async fn stock_adjustment_never_goes_below_what_is_reserved() {
    let mut catalog = spawn_catalog().await;
    let products = catalog.small_catalogue().await;
    let tea = Uuid::parse_str(&products[2].id).unwrap();
    let mut tx = catalog.catalog.pool().begin().await.unwrap();
    catalog
        .catalog
        .reserve(
            &mut tx,
            Uuid::new_v4(),
            &[RequestedLine {
                product_id: tea,
                quantity: 4,
            }],
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let status = catalog
        .client
        .adjust_stock(operator(pb::AdjustStockRequest {
            product_id: products[2].id.clone(),
            delta: -7,
            reason: "hỏng".into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(violations(&status)[0].field, "delta");
    let adjusted = catalog
        .client
        .adjust_stock(operator(pb::AdjustStockRequest {
            product_id: products[2].id.clone(),
            delta: -6,
            reason: "hỏng".into(),
        }))
        .await
        .unwrap()
        .into_inner()
        .product
        .unwrap();
    assert_eq!(
        (adjusted.on_hand, adjusted.reserved, adjusted.available),
        (4, 4, 0)
    );
    let types = outbox_types(&catalog.catalog).await;
    assert!(
        types.contains(&"ocop.catalog.v1.StockAdjusted".to_owned()),
        "{types:?}"
    );
    catalog.stop().await;
}

async fn stock_of(catalog: &Catalog, product: Uuid) -> (i64, i64) {
    sqlx::query_as("SELECT on_hand, reserved FROM stock WHERE product_id = $1")
        .bind(product)
        .fetch_one(catalog.pool())
        .await
        .unwrap()
}

async fn reserve(catalog: &Catalog, order: Uuid, lines: &[RequestedLine]) -> ReserveOutcome {
    let mut tx = catalog.pool().begin().await.unwrap();
    let outcome = catalog.reserve(&mut tx, order, lines).await.unwrap();
    tx.commit().await.unwrap();
    outcome
}

async fn finish(catalog: &Catalog, order: Uuid, to: ReservationState) -> bool {
    let mut tx = catalog.pool().begin().await.unwrap();
    let done = catalog.finish(&mut tx, order, to).await.unwrap().is_some();
    tx.commit().await.unwrap();
    done
}

#[tokio::test]
async fn reservation_holds_every_line_or_none() {
    let mut catalog = spawn_catalog().await;
    let products = catalog.small_catalogue().await;
    let noodles = Uuid::parse_str(&products[0].id).unwrap();
    let tea = Uuid::parse_str(&products[2].id).unwrap();
    let line = |product_id, quantity| RequestedLine {
        product_id,
        quantity,
    };

    let rejected = reserve(
        &catalog.catalog,
        Uuid::new_v4(),
        &[line(noodles, 5), line(tea, 11)],
    )
    .await;
    let ReserveOutcome::Rejected(rejections) = rejected else {
        panic!("expected a rejection: {rejected:?}")
    };
    assert_eq!(rejections.len(), 1);
    assert_eq!(
        (rejections[0].product_id, rejections[0].available),
        (tea, 10)
    );
    assert_eq!(
        stock_of(&catalog.catalog, noodles).await,
        (50, 0),
        "nothing held for a rejected order"
    );

    let order = Uuid::new_v4();
    let reserved = reserve(&catalog.catalog, order, &[line(noodles, 5), line(tea, 10)]).await;
    assert!(
        matches!(reserved, ReserveOutcome::Reserved(_)),
        "{reserved:?}"
    );
    assert_eq!(stock_of(&catalog.catalog, tea).await, (10, 10));
    let again = reserve(&catalog.catalog, order, &[line(noodles, 5), line(tea, 10)]).await;
    assert!(
        matches!(again, ReserveOutcome::AlreadyReserved(_)),
        "a redelivery holds nothing more"
    );
    assert_eq!(stock_of(&catalog.catalog, tea).await, (10, 10));

    assert!(finish(&catalog.catalog, order, ReservationState::Committed).await);
    assert_eq!(
        stock_of(&catalog.catalog, tea).await,
        (0, 0),
        "committed units are sold"
    );
    assert_eq!(stock_of(&catalog.catalog, noodles).await, (45, 0));
    assert!(
        !finish(&catalog.catalog, order, ReservationState::Released).await,
        "a sale is not released"
    );
    assert_eq!(stock_of(&catalog.catalog, noodles).await, (45, 0));

    let cancelled = Uuid::new_v4();
    reserve(&catalog.catalog, cancelled, &[line(noodles, 7)]).await;
    assert_eq!(stock_of(&catalog.catalog, noodles).await, (45, 7));
    assert!(finish(&catalog.catalog, cancelled, ReservationState::Released).await);
    assert_eq!(
        stock_of(&catalog.catalog, noodles).await,
        (45, 0),
        "released units are available again"
    );

    let types = outbox_types(&catalog.catalog).await;
    for expected in [
        "StockRejected",
        "StockReserved",
        "StockCommitted",
        "StockReleased",
    ] {
        let full = format!("ocop.catalog.v1.{expected}");
        assert!(types.contains(&full), "{full} missing from {types:?}");
    }
    catalog.stop().await;
}

#[tokio::test]
async fn concurrent_reservations_never_oversell() {
    let mut catalog = spawn_catalog().await;
    let products = catalog.small_catalogue().await;
    let noodles = Uuid::parse_str(&products[0].id).unwrap(); // 50 on hand
    let attempts = (0..40).map(|_| {
        let catalog = catalog.catalog.clone();
        tokio::spawn(async move {
            reserve(
                &catalog,
                Uuid::new_v4(),
                &[RequestedLine {
                    product_id: noodles,
                    quantity: 3,
                }],
            )
            .await
        })
    });
    let outcomes = futures_join(attempts).await;
    let reserved = outcomes
        .iter()
        .filter(|outcome| matches!(outcome, ReserveOutcome::Reserved(_)))
        .count();
    let rejected = outcomes
        .iter()
        .filter(|outcome| matches!(outcome, ReserveOutcome::Rejected(_)))
        .count();
    assert_eq!(
        (reserved, rejected),
        (16, 24),
        "50 units hold sixteen orders of three"
    );
    assert_eq!(stock_of(&catalog.catalog, noodles).await, (50, 48));
    catalog.stop().await;
}

async fn futures_join(
    tasks: impl Iterator<Item = tokio::task::JoinHandle<ReserveOutcome>>,
) -> Vec<ReserveOutcome> {
    let mut outcomes = Vec::new();
    for task in tasks.collect::<Vec<_>>() {
        outcomes.push(task.await.unwrap());
    }
    outcomes
}

#[tokio::test]
async fn stale_reservation_expires_and_gives_stock_back() {
    let mut catalog =
        spawn_catalog_with(&["--reservation-ttl=1ms", "--reservation-sweep-interval=50ms"]).await;
    let products = catalog.small_catalogue().await;
    let noodles = Uuid::parse_str(&products[0].id).unwrap();
    let order = Uuid::new_v4();
    reserve(
        &catalog.catalog,
        order,
        &[RequestedLine {
            product_id: noodles,
            quantity: 9,
        }],
    )
    .await;
    // The sweeper of the running service expires it by itself.
    eventually("the reservation to expire", WAIT, || async {
        (stock_of(&catalog.catalog, noodles).await == (50, 0)).then_some(())
    })
    .await;
    let state: String = sqlx::query_scalar("SELECT state FROM reservations WHERE order_id = $1")
        .bind(order)
        .fetch_one(catalog.catalog.pool())
        .await
        .unwrap();
    assert_eq!(state, "expired");
    assert!(
        outbox_types(&catalog.catalog)
            .await
            .contains(&"ocop.catalog.v1.ReservationExpired".to_owned())
    );
    catalog.stop().await;
}

#[tokio::test]
async fn expiry_sweep_locks_stock_in_product_order_like_reservations() {
    let mut catalog =
        spawn_catalog_with(&["--reservation-ttl=1ms", "--reservation-sweep-interval=1h"]).await;
    let products = catalog.small_catalogue().await;
    let mut ids = [&products[0].id, &products[1].id].map(|id| Uuid::parse_str(id).unwrap());
    ids.sort();
    let [low, high] = ids;
    let line = |product_id| RequestedLine {
        product_id,
        quantity: 1,
    };
    // Expiry order is the reverse of product order: the first to expire holds `high`.
    reserve(&catalog.catalog, Uuid::new_v4(), &[line(high)]).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    reserve(&catalog.catalog, Uuid::new_v4(), &[line(low)]).await;
    tokio::time::sleep(Duration::from_millis(5)).await;

    // Another writer locks `low`, then `high`, as a reservation of both would.
    let lock = "SELECT 1 FROM stock WHERE product_id = $1 FOR UPDATE";
    let mut writer = catalog.catalog.pool().begin().await.unwrap();
    sqlx::query(lock)
        .bind(low)
        .execute(&mut *writer)
        .await
        .unwrap();
    let sweeper = catalog.catalog.clone();
    let sweep = tokio::spawn(async move { sweeper.expire_due().await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Had the sweep locked `high` before `low`, this would deadlock and one side fail.
    sqlx::query(lock)
        .bind(high)
        .execute(&mut *writer)
        .await
        .expect("the writer gets its second lock");
    writer.commit().await.unwrap();
    assert_eq!(sweep.await.unwrap().expect("the sweep succeeds"), 2);
    catalog.stop().await;
}

/// A reservation of `quantity` noodles (50 on hand) for a new order, already expired.
async fn expired_reservation(catalog: &Catalog, noodles: Uuid, quantity: i64) -> Uuid {
    let order = Uuid::new_v4();
    let line = RequestedLine {
        product_id: noodles,
        quantity,
    };
    reserve(catalog, order, &[line]).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(catalog.expire_due().await.unwrap(), 1);
    assert_eq!(stock_of(catalog, noodles).await, (50, 0));
    order
}

#[tokio::test]
async fn order_paid_after_its_reservation_expired_is_sold_from_free_stock() {
    let mut catalog =
        spawn_catalog_with(&["--reservation-ttl=1ms", "--reservation-sweep-interval=1h"]).await;
    let products = catalog.small_catalogue().await;
    let noodles = Uuid::parse_str(&products[0].id).unwrap();
    let order = expired_reservation(&catalog.catalog, noodles, 9).await;

    assert!(finish(&catalog.catalog, order, ReservationState::Committed).await);
    assert_eq!(stock_of(&catalog.catalog, noodles).await, (41, 0));
    let types = outbox_types(&catalog.catalog).await;
    assert_eq!(
        types.last().map(String::as_str),
        Some("ocop.catalog.v1.StockCommitted"),
        "{types:?}"
    );
    // A redelivered confirmation sells nothing more.
    assert!(!finish(&catalog.catalog, order, ReservationState::Committed).await);
    assert_eq!(stock_of(&catalog.catalog, noodles).await, (41, 0));
    catalog.stop().await;
}

#[tokio::test]
async fn order_paid_after_its_stock_was_sold_to_another_is_rejected_not_oversold() {
    let mut catalog =
        spawn_catalog_with(&["--reservation-ttl=1ms", "--reservation-sweep-interval=1h"]).await;
    let products = catalog.small_catalogue().await;
    let noodles = Uuid::parse_str(&products[0].id).unwrap();
    let late = expired_reservation(&catalog.catalog, noodles, 30).await;
    // Meanwhile another shopper takes 25 of the 50 and pays in time.
    let other = Uuid::new_v4();
    let line = RequestedLine {
        product_id: noodles,
        quantity: 25,
    };
    reserve(&catalog.catalog, other, &[line]).await;
    assert!(finish(&catalog.catalog, other, ReservationState::Committed).await);

    assert!(!finish(&catalog.catalog, late, ReservationState::Committed).await);
    assert_eq!(
        stock_of(&catalog.catalog, noodles).await,
        (25, 0),
        "only the other order's units are sold"
    );
    let types = outbox_types(&catalog.catalog).await;
    assert_eq!(
        types.last().map(String::as_str),
        Some("ocop.catalog.v1.StockRejected"),
        "{types:?}"
    );
    catalog.stop().await;
}

#[tokio::test]
async fn health_reflection_and_metrics_are_served() {
    let mut catalog = spawn_catalog().await;
    let channel = Channel::from_shared(format!("http://{}", catalog.grpc_addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let status = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "ocop.catalog.v1.CatalogService".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status;
    assert_eq!(
        status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    catalog
        .client
        .list_products(pb::ListProductsRequest::default())
        .await
        .unwrap();
    let body = ocop_testkit::scrape_metrics(catalog.http_addr)
        .await
        .unwrap();
    assert!(body.contains("ocop_rpc_server_requests_total"), "{body}");
    assert!(body.contains(r#"method="ListProducts""#), "{body}");
    catalog.stop().await;
}

#[tokio::test]
async fn shutdown_reports_not_serving_before_the_listener_closes() {
    let catalog = spawn_catalog_with(&["--shutdown-drain-delay=2s"]).await;
    let channel = Channel::from_shared(format!("http://{}", catalog.grpc_addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let health = tonic_health::pb::health_client::HealthClient::new(channel);
    let TestCatalog {
        shutdown, running, ..
    } = catalog;
    let _ = shutdown.unwrap().send(());
    let not_serving = tonic_health::pb::health_check_response::ServingStatus::NotServing as i32;
    eventually("health to report NOT_SERVING", WAIT, || {
        let mut health = health.clone();
        async move {
            let status = health
                .check(tonic_health::pb::HealthCheckRequest {
                    service: String::new(),
                })
                .await
                .ok()?
                .into_inner()
                .status;
            (status == not_serving).then_some(())
        }
    })
    .await;
    tokio::time::timeout(WAIT, running)
        .await
        .expect("stops after draining")
        .unwrap()
        .unwrap();
}

// Bad input (issue 12): every refusal is a small INVALID_ARGUMENT naming the field, and
// nothing is written.

#[tokio::test]
async fn nul_and_control_characters_in_text_fields_are_invalid_argument_naming_the_field() {
    let mut catalog = spawn_catalog().await;
    catalog.producer("HTX-BINH-LIEU", "Bình Liêu").await;
    let good = || product_request("SKU-A", "HTX-BINH-LIEU", "Miến", 1_000, 1);
    let products = [
        (
            "name",
            pb::UpsertProductRequest {
                name: "Miến\0dong".into(),
                ..good()
            },
        ),
        (
            "name",
            pb::UpsertProductRequest {
                name: "Miến\u{7}dong".into(),
                ..good()
            },
        ),
        (
            "description",
            pb::UpsertProductRequest {
                description: "Dòng một\r\nDòng hai".into(),
                ..good()
            },
        ),
        (
            "description",
            pb::UpsertProductRequest {
                description: "\0".into(),
                ..good()
            },
        ),
        (
            "unit",
            pb::UpsertProductRequest {
                unit: "gói\u{1b}[31m".into(),
                ..good()
            },
        ),
        (
            "category",
            pb::UpsertProductRequest {
                category: "Thực\u{85}phẩm".into(),
                ..good()
            },
        ),
    ];
    for (field, request) in products {
        let status = catalog
            .client
            .upsert_product(operator(request))
            .await
            .unwrap_err();
        assert_invalid(&status, field);
    }
    let status = catalog
        .client
        .upsert_producer(operator(pb::UpsertProducerRequest {
            name: "HTX\0".into(),
            ..producer_request("HTX-B", "Ba Chẽ")
        }))
        .await
        .unwrap_err();
    assert_invalid(&status, "name");
    let status = catalog
        .client
        .upsert_producer(operator(pb::UpsertProducerRequest {
            district: "Ba\u{7f}Chẽ".into(),
            ..producer_request("HTX-B", "Ba Chẽ")
        }))
        .await
        .unwrap_err();
    assert_invalid(&status, "district");

    for query in ["mien\0dong", "mien\ndong", "\u{9b}"] {
        let status = catalog
            .client
            .search_products(pb::SearchProductsRequest {
                query: query.into(),
                limit: 0,
            })
            .await
            .unwrap_err();
        assert_invalid(&status, "query");
    }
    for (field, request) in [
        (
            "district",
            pb::ListProductsRequest {
                district: "Bình\0Liêu".into(),
                ..Default::default()
            },
        ),
        (
            "category",
            pb::ListProductsRequest {
                category: "\0".into(),
                ..Default::default()
            },
        ),
    ] {
        let status = catalog.client.list_products(request).await.unwrap_err();
        assert_invalid(&status, field);
    }

    // A multi-line description keeps its line feeds.
    let product = catalog
        .product(pb::UpsertProductRequest {
            description: "Dòng một\nDòng hai".into(),
            ..product_request("SKU-OK", "HTX-BINH-LIEU", "Miến", 1_000, 1)
        })
        .await;
    assert_eq!(product.description, "Dòng một\nDòng hai");
    let status = catalog
        .client
        .adjust_stock(operator(pb::AdjustStockRequest {
            product_id: product.id.clone(),
            delta: 1,
            reason: "kiểm kê\0".into(),
        }))
        .await
        .unwrap_err();
    assert_invalid(&status, "reason");

    let listed = catalog
        .client
        .list_products(pb::ListProductsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        names(&listed.products),
        vec!["Miến"],
        "nothing else written"
    );
    assert_eq!(listed.products[0].on_hand, 1, "the stock is unchanged");
    catalog.stop().await;
}

#[tokio::test]
async fn percent_underscore_and_backslash_in_a_search_match_themselves() {
    let mut catalog = spawn_catalog().await;
    catalog.small_catalogue().await;
    catalog
        .product(product_request(
            "BLI-RUOU-40",
            "HTX-BINH-LIEU",
            "Rượu men lá 40% vol_chai\\1",
            150_000,
            5,
        ))
        .await;
    for wildcard in ["%", "_", "%%", "b_nh%l_eu", "mi_n", "\\"] {
        let found = search(&mut catalog, wildcard).await;
        assert!(
            !names(&found).iter().any(|name| name.starts_with("Miến")),
            "{wildcard:?} acted as a wildcard: {:?}",
            names(&found)
        );
    }
    // `%` alone finds only the product that has one, not every product.
    assert_eq!(
        names(&search(&mut catalog, "%").await),
        vec!["Rượu men lá 40% vol_chai\\1"]
    );
    for literal in ["40%", "vol_chai", "chai\\1"] {
        assert_eq!(
            names(&search(&mut catalog, literal).await),
            vec!["Rượu men lá 40% vol_chai\\1"],
            "{literal:?}"
        );
    }
    catalog.stop().await;
}

#[tokio::test]
async fn a_huge_id_or_sku_gives_a_small_invalid_argument() {
    let mut catalog = spawn_catalog().await;
    let huge = "9".repeat(10_000);
    let status = catalog
        .client
        .get_product(pb::GetProductRequest {
            id: huge.clone(),
            sku: String::new(),
        })
        .await
        .unwrap_err();
    let message = assert_invalid(&status, "id");
    assert!(
        message.ends_with("…` is not a UUID") || message.contains("…"),
        "{message}"
    );
    let status = catalog
        .client
        .get_product(pb::GetProductRequest {
            id: String::new(),
            sku: format!("{huge}x"),
        })
        .await
        .unwrap_err();
    assert_invalid(&status, "sku");
    let status = catalog
        .client
        .batch_get_products(pb::BatchGetProductsRequest {
            ids: vec![huge.clone()],
        })
        .await
        .unwrap_err();
    assert_invalid(&status, "ids[0]");
    let status = catalog
        .client
        .quote_price(pb::QuotePriceRequest {
            lines: vec![pb::QuoteLine {
                product_id: huge.clone(),
                quantity: 1,
            }],
        })
        .await
        .unwrap_err();
    assert_invalid(&status, "lines[0].product_id");
    catalog.stop().await;
}

#[tokio::test]
async fn crafted_page_tokens_are_invalid_argument_and_the_server_keeps_serving() {
    let mut catalog = spawn_catalog().await;
    catalog.small_catalogue().await;
    let first = catalog
        .client
        .list_products(pb::ListProductsRequest {
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!first.next_page_token.is_empty());
    // A token cut inside a multi-byte character, garbage, the SKU alone in hex (the old
    // format), and a well-formed token of another list.
    let hex_sku: String = "BLI-MIEN-DONG-500G"
        .bytes()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    let other_list = ocop_grpc_kit::page_token::encode("order.orders", "BLI-MIEN-DONG-500G");
    for token in [
        "aéa",
        "éé",
        "zz",
        "%%",
        &hex_sku,
        &other_list,
        &"ab".repeat(5_000),
    ] {
        let status = catalog
            .client
            .list_products(pb::ListProductsRequest {
                page_size: 1,
                page_token: token.to_owned(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_invalid(&status, "page_token");
    }
    let second = catalog
        .client
        .list_products(pb::ListProductsRequest {
            page_size: 1,
            page_token: first.next_page_token,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.products.len(), 1);
    assert_ne!(second.products[0].sku, first.products[0].sku);
    catalog.stop().await;
}

#[tokio::test]
async fn a_request_body_that_does_not_decode_is_invalid_argument() {
    let catalog = spawn_catalog().await;
    let channel = Channel::from_shared(format!("http://{}", catalog.grpc_addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let status =
        call_with_undecodable_body(channel, "/ocop.catalog.v1.CatalogService/GetProduct").await;
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status
            .message()
            .contains("ocop.catalog.v1.GetProductRequest"),
        "{}",
        status.message()
    );
    catalog.stop().await;
}

#[tokio::test]
async fn reflection_lists_the_catalog_alone_and_can_be_switched_off() {
    let catalog = spawn_catalog().await;
    let channel = Channel::from_shared(format!("http://{}", catalog.grpc_addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    assert_eq!(
        reflected_services(channel).await.unwrap(),
        expected_reflection("ocop.catalog.v1.CatalogService")
    );
    catalog.stop().await;

    let catalog = spawn_catalog_with(&["--grpc-reflection=false"]).await;
    let channel = Channel::from_shared(format!("http://{}", catalog.grpc_addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let status = reflected_services(channel).await.unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented, "{status:?}");
    catalog.stop().await;
}
