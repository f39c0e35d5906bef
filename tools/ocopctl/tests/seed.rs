//! `ocopctl seed` run as a real process against a real catalog service.

use std::{path::Path, process::Command};

use clap::Parser as _;
use ocop_catalog::{App, Config};
use ocop_proto::catalog::v1::{self as pb, catalog_service_client::CatalogServiceClient};
use ocop_testkit::{fresh_database_url, service_args};
use tokio_util::sync::CancellationToken;

const SECRET: &str = "ocopctl-test-secret-ocopctl-test-secret";

fn seed_file() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../services/catalog/seed/catalog.toml")
        .display()
        .to_string()
}

fn ocopctl(catalog: &str, args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_ocopctl"))
        .args(args)
        .env("OCOP_CATALOG_ADDR", catalog)
        .env("OCOP_AUTH_JWT_SECRET", SECRET)
        .env_remove("OCOP_TOKEN")
        .output()
        .expect("run ocopctl");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

async fn count_products(address: &str) -> usize {
    let mut client = CatalogServiceClient::connect(address.to_owned())
        .await
        .unwrap();
    let mut total = 0;
    let mut page_token = String::new();
    loop {
        let page = client
            .list_products(pb::ListProductsRequest {
                page_size: 100,
                page_token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        total += page.products.len();
        if page.next_page_token.is_empty() {
            return total;
        }
        page_token = page.next_page_token;
    }
}

#[tokio::test]
async fn seeding_the_shipped_catalogue_twice_loads_it_once() {
    let prefix = format!("{}.", ocop_testkit::unique("t"));
    let config = Config::try_parse_from(service_args(
        "catalog",
        &fresh_database_url().await,
        &prefix,
        SECRET,
    ))
    .unwrap();
    let app = App::build(config).await.unwrap();
    let address = format!("http://{}", app.grpc_addr());
    let stop = CancellationToken::new();
    let stopped = stop.clone();
    let running = tokio::spawn(app.run_until_stopped(async move { stopped.cancelled().await }));

    let file = seed_file();
    let first = {
        let address = address.clone();
        let file = file.clone();
        tokio::task::spawn_blocking(move || ocopctl(&address, &["seed", "--file", &file]))
            .await
            .unwrap()
    };
    assert!(first.0, "first seed failed: {}", first.2);
    assert!(
        first.2.contains("products"),
        "progress is shown: {}",
        first.2
    );
    let loaded = count_products(&address).await;
    assert!(loaded >= 393, "only {loaded} products loaded");
    assert!(first.1.contains(&format!("({loaded} new)")), "{}", first.1);

    let second = {
        let address = address.clone();
        tokio::task::spawn_blocking(move || ocopctl(&address, &["seed", "--file", &file]))
            .await
            .unwrap()
    };
    assert!(second.0, "second seed failed: {}", second.2);
    assert!(
        second.1.contains("(0 new)"),
        "re-seeding creates nothing: {}",
        second.1
    );
    assert_eq!(count_products(&address).await, loaded);

    let search = {
        let address = address.clone();
        tokio::task::spawn_blocking(move || {
            ocopctl(&address, &["products", "search", "mien dong binh lieu"])
        })
        .await
        .unwrap()
    };
    assert!(search.0, "{}", search.2);
    assert!(
        search
            .1
            .lines()
            .next()
            .unwrap_or("")
            .contains("Miến dong Bình Liêu"),
        "{}",
        search.1
    );

    stop.cancel();
    running.await.unwrap().unwrap();
}

#[test]
fn seed_file_naming_an_undefined_producer_is_refused_before_anything_is_written() {
    let dir = std::env::temp_dir().join(format!("ocopctl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.toml");
    std::fs::write(
        &file,
        r#"
[[producers]]
code = "HTX-A"
name = "HTX A"
kind = "cooperative"
district = "Cô Tô"
province = "Quảng Ninh"

[[products]]
sku = "X-1"
producer = "HTX-MISSING"
name = "X"
description = "X."
category = "Thực phẩm"
stars = 3
unit = "gói"
price_vnd = 1000
stock = 1
"#,
    )
    .unwrap();
    // No catalog listens here: the file must be refused before any connection is tried.
    let (ok, _, stderr) = ocopctl(
        "http://127.0.0.1:9",
        &["seed", "--file", file.to_str().unwrap()],
    );
    assert!(!ok);
    assert!(stderr.contains("HTX-MISSING"), "{stderr}");
}
