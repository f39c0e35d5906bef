//! `ocopctl seed`: load a catalogue file through the catalog's operator API.

use std::path::PathBuf;

use anyhow::Context as _;
use ocop_proto::catalog::v1::{self as pb, catalog_service_client::CatalogServiceClient};
use serde::Deserialize;
use tonic::transport::Channel;

#[derive(Debug, clap::Args)]
pub struct SeedArgs {
    /// The seed file (TOML: [[producers]] then [[products]]).
    #[arg(long, default_value = "services/catalog/seed/catalog.toml")]
    file: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedFile {
    producers: Vec<SeedProducer>,
    products: Vec<SeedProduct>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedProducer {
    code: String,
    name: String,
    kind: String,
    district: String,
    province: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedProduct {
    sku: String,
    producer: String,
    name: String,
    description: String,
    category: String,
    stars: i32,
    unit: String,
    price_vnd: i64,
    stock: i64,
}

fn producer_kind(raw: &str) -> anyhow::Result<pb::ProducerKind> {
    match raw {
        "cooperative" => Ok(pb::ProducerKind::Cooperative),
        "household" => Ok(pb::ProducerKind::Household),
        "enterprise" => Ok(pb::ProducerKind::Enterprise),
        other => {
            anyhow::bail!("unknown producer kind `{other}` (cooperative, household or enterprise)")
        }
    }
}

pub async fn run(catalog: &str, token: &str, args: &SeedArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("read {}", args.file.display()))?;
    let seed: SeedFile =
        toml::from_str(&text).with_context(|| format!("parse {}", args.file.display()))?;
    // Refuse the whole file before writing anything when it references a missing producer.
    for product in &seed.products {
        anyhow::ensure!(
            seed.producers
                .iter()
                .any(|producer| producer.code == product.producer),
            "product {} names producer {} which the file does not define",
            product.sku,
            product.producer
        );
    }
    let mut client = CatalogServiceClient::<Channel>::connect(catalog.to_owned())
        .await
        .with_context(|| format!("connect to catalog at {catalog}"))?;
    eprintln!(
        "seeding {} producers and {} products into {catalog}",
        seed.producers.len(),
        seed.products.len()
    );

    let mut new_producers = 0;
    for producer in &seed.producers {
        let request = pb::UpsertProducerRequest {
            code: producer.code.clone(),
            name: producer.name.clone(),
            kind: producer_kind(&producer.kind)
                .with_context(|| format!("producer {}", producer.code))? as i32,
            district: producer.district.clone(),
            province: producer.province.clone(),
        };
        let response = client
            .upsert_producer(crate::authorized(request, token)?)
            .await
            .with_context(|| format!("producer {}", producer.code))?
            .into_inner();
        new_producers += usize::from(response.created);
    }

    let mut new_products = 0;
    let total = seed.products.len();
    for (index, product) in seed.products.iter().enumerate() {
        let request = pb::UpsertProductRequest {
            sku: product.sku.clone(),
            producer_code: product.producer.clone(),
            name: product.name.clone(),
            description: product.description.clone(),
            category: product.category.clone(),
            stars: product.stars,
            unit: product.unit.clone(),
            price_vnd: product.price_vnd,
            status: pb::ProductStatus::Active as i32,
            initial_stock: product.stock,
        };
        let response = client
            .upsert_product(crate::authorized(request, token)?)
            .await
            .with_context(|| format!("product {}", product.sku))?
            .into_inner();
        new_products += usize::from(response.created);
        if (index + 1) % 50 == 0 || index + 1 == total {
            eprintln!("  products {:>4}/{total}", index + 1);
        }
    }
    println!(
        "producers: {} ({new_producers} new); products: {total} ({new_products} new)",
        seed.producers.len(),
    );
    Ok(())
}
