//! `ocopctl products …`: browse the catalogue.

use anyhow::Context as _;
use ocop_proto::catalog::v1::{self as pb, catalog_service_client::CatalogServiceClient};
use ocop_proto::money::format_vnd;
use tonic::transport::Channel;

#[derive(Debug, clap::Subcommand)]
pub enum ProductsCommand {
    /// Search by name, category, producer or district; accents and case are ignored.
    Search {
        query: String,
        #[arg(long, default_value_t = 10)]
        limit: i32,
    },
    /// List active products, filtered.
    List {
        #[arg(long)]
        district: Option<String>,
        #[arg(long)]
        category: Option<String>,
        #[arg(long, default_value_t = 0)]
        min_stars: i32,
        /// Print every page, not just the first.
        #[arg(long)]
        all: bool,
        #[arg(long, default_value_t = 20)]
        page_size: i32,
    },
    /// Show one product, by id or by SKU.
    Get { product: String },
    /// Operator: add to (positive) or take from (negative) a product's stock on hand.
    AdjustStock {
        /// The product's id or SKU.
        product: String,
        #[arg(allow_hyphen_values = true)]
        delta: i64,
        /// Why, for the audit trail.
        #[arg(long)]
        reason: String,
    },
}

/// The request for one product named by its id or its SKU.
fn get_request(product: &str) -> pb::GetProductRequest {
    if uuid::Uuid::parse_str(product).is_ok() {
        pb::GetProductRequest {
            id: product.to_owned(),
            ..Default::default()
        }
    } else {
        pb::GetProductRequest {
            sku: product.to_owned(),
            ..Default::default()
        }
    }
}

/// The id of a product named by its id (returned as it is) or its SKU (looked up).
pub async fn product_id(
    client: &mut CatalogServiceClient<Channel>,
    product: &str,
) -> anyhow::Result<String> {
    if uuid::Uuid::parse_str(product).is_ok() {
        return Ok(product.to_owned());
    }
    let found = client
        .get_product(get_request(product))
        .await
        .map_err(|status| anyhow::anyhow!("{}", status.message()))
        .with_context(|| format!("product `{product}`"))?
        .into_inner()
        .product
        .context("catalog returned no product")?;
    Ok(found.id)
}

fn print_product(product: &pb::Product) {
    let district = product
        .producer
        .as_ref()
        .map(|producer| producer.district.as_str())
        .unwrap_or("");
    println!(
        "{}  {:<40} {}★ {:>12} / {:<12} còn {:>4}  {:<12} {}",
        product.id,
        product.name,
        product.stars,
        format_vnd(product.price_vnd),
        product.unit,
        product.available,
        district,
        product.sku
    );
}

/// Runs a products command; `operator_token` is asked for only by operator commands.
pub async fn run(
    address: &str,
    command: &ProductsCommand,
    operator_token: impl FnOnce() -> anyhow::Result<String>,
) -> anyhow::Result<()> {
    let mut client = CatalogServiceClient::<Channel>::connect(address.to_owned())
        .await
        .with_context(|| format!("connect to catalog at {address}"))?;
    match command {
        ProductsCommand::Search { query, limit } => {
            let found = client
                .search_products(pb::SearchProductsRequest {
                    query: query.clone(),
                    limit: *limit,
                })
                .await?
                .into_inner()
                .products;
            found.iter().for_each(print_product);
            eprintln!("{} found", found.len());
        }
        ProductsCommand::List {
            district,
            category,
            min_stars,
            all,
            page_size,
        } => {
            let mut page_token = String::new();
            let mut count = 0;
            loop {
                let page = client
                    .list_products(pb::ListProductsRequest {
                        page_size: *page_size,
                        page_token: page_token.clone(),
                        min_stars: *min_stars,
                        district: district.clone().unwrap_or_default(),
                        category: category.clone().unwrap_or_default(),
                        ..Default::default()
                    })
                    .await?
                    .into_inner();
                count += page.products.len();
                page.products.iter().for_each(print_product);
                if !*all || page.next_page_token.is_empty() {
                    break;
                }
                page_token = page.next_page_token;
            }
            eprintln!("{count} listed");
        }
        ProductsCommand::Get { product } => {
            let product = client
                .get_product(get_request(product))
                .await?
                .into_inner()
                .product
                .context("catalog returned no product")?;
            println!("{product:#?}");
        }
        ProductsCommand::AdjustStock {
            product,
            delta,
            reason,
        } => {
            let product_id = product_id(&mut client, product).await?;
            let request = crate::authorized(
                pb::AdjustStockRequest {
                    product_id,
                    delta: *delta,
                    reason: reason.clone(),
                },
                &operator_token()?,
            )?;
            let product = client
                .adjust_stock(request)
                .await?
                .into_inner()
                .product
                .context("catalog returned no product")?;
            print_product(&product);
        }
    }
    Ok(())
}
