//! `ocopctl products …`: browse the catalogue.

use anyhow::Context as _;
use ocop_proto::catalog::v1::{self as pb, catalog_service_client::CatalogServiceClient};
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
    /// Show one product.
    Get { id: String },
    /// Operator: add to (positive) or take from (negative) a product's stock on hand.
    AdjustStock {
        id: String,
        #[arg(allow_hyphen_values = true)]
        delta: i64,
        /// Why, for the audit trail.
        #[arg(long)]
        reason: String,
    },
}

/// `1.250.000 ₫`: dots between thousands, the đồng sign after.
pub fn vnd(amount: i64) -> String {
    let digits = amount.unsigned_abs().to_string();
    let mut grouped = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            grouped.push('.');
        }
        grouped.push(digit);
    }
    format!("{}{grouped} ₫", if amount < 0 { "-" } else { "" })
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
        vnd(product.price_vnd),
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
        ProductsCommand::Get { id } => {
            let product = client
                .get_product(pb::GetProductRequest { id: id.clone() })
                .await?
                .into_inner()
                .product
                .context("catalog returned no product")?;
            println!("{product:#?}");
        }
        ProductsCommand::AdjustStock { id, delta, reason } => {
            let mut request = tonic::Request::new(pb::AdjustStockRequest {
                product_id: id.clone(),
                delta: *delta,
                reason: reason.clone(),
            });
            request.metadata_mut().insert(
                "authorization",
                format!("Bearer {}", operator_token()?)
                    .parse()
                    .context("token is not a valid header")?,
            );
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

#[cfg(test)]
mod tests {
    #[test]
    fn vnd_uses_dot_thousands_and_the_dong_sign() {
        assert_eq!(super::vnd(1_250_000), "1.250.000 ₫");
        assert_eq!(super::vnd(75_000), "75.000 ₫");
        assert_eq!(super::vnd(500), "500 ₫");
    }
}
