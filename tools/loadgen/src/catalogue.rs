//! The products shoppers choose from, listed through the catalog's browse API, and the
//! operator's top-up that keeps a long run from selling out.

use std::time::Duration;

use anyhow::Context as _;
use futures::{StreamExt as _, TryStreamExt as _};
use ocop_grpc_kit::auth::{Grant, TokenIssuer, audience};
use ocop_proto::catalog::v1::{self as pb, catalog_service_client::CatalogServiceClient};
use tonic::transport::Channel;

use crate::shop::Product;

/// Every active product, page by page.
pub async fn list(client: &mut CatalogServiceClient<Channel>) -> anyhow::Result<Vec<Product>> {
    let mut products = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_products(pb::ListProductsRequest {
                page_size: 100,
                page_token,
                ..Default::default()
            })
            .await
            .context("list the products (ListProducts)")?
            .into_inner();
        products.extend(page.products.into_iter().map(|product| Product {
            id: product.id,
            available: product.available,
        }));
        if page.next_page_token.is_empty() {
            return Ok(products);
        }
        page_token = page.next_page_token;
    }
}

/// `Bearer …` with the `catalog:write` scope: the given token, or one minted with the
/// platform's secret (local stacks).
pub fn operator_token(token: Option<&str>, secret: Option<&str>) -> Option<String> {
    if let Some(token) = token {
        return Some(token.to_owned());
    }
    let secret = secret?;
    Some(TokenIssuer::from_secret(secret.as_bytes()).mint(&Grant {
        audiences: &[audience::CATALOG],
        subject: "ocop-loadgen",
        scopes: &["catalog:write"],
        channel: None,
        ttl: Duration::from_secs(3600),
    }))
}

/// Tops every product with fewer than half of `target` available up to `target`
/// (AdjustStock, as an operator). Returns how many products were topped up.
pub async fn restock(
    client: &CatalogServiceClient<Channel>,
    token: &str,
    products: &mut [Product],
    target: i64,
) -> anyhow::Result<usize> {
    let header: tonic::metadata::MetadataValue<_> = format!("Bearer {token}")
        .parse()
        .context("the token is not a valid header")?;
    let low: Vec<&mut Product> = products
        .iter_mut()
        .filter(|product| product.available < target / 2)
        .collect();
    let count = low.len();
    futures::stream::iter(low.into_iter().map(|product| {
        let mut client = client.clone();
        let header = header.clone();
        async move {
            let mut request = tonic::Request::new(pb::AdjustStockRequest {
                product_id: product.id.clone(),
                delta: target - product.available,
                reason: "ocop-loadgen: nhập kho cho lần chạy tải".into(),
            });
            request.metadata_mut().insert("authorization", header);
            let adjusted = client
                .adjust_stock(request)
                .await
                .with_context(|| format!("top up product {} (AdjustStock)", product.id))?
                .into_inner();
            if let Some(adjusted) = adjusted.product {
                product.available = adjusted.available;
            }
            anyhow::Ok(())
        }
    }))
    .buffer_unordered(8)
    .try_collect::<Vec<()>>()
    .await?;
    Ok(count)
}
