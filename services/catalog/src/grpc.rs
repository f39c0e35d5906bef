//! The catalog's gRPC API: the only module that sees prost types. Requests become
//! domain values here (`INVALID_ARGUMENT` naming the field when they cannot), results
//! become messages.

use ocop_grpc_kit::{
    auth::{self, Access},
    page_token,
    validation::{FieldViolation, parse_uuid, single_line},
};
use ocop_proto::catalog::v1::{self as pb, catalog_service_server::CatalogService};
use tonic::{Request, Response, Status};

use crate::{
    domain::{
        Invalid,
        product::{
            self, ProducerDraft, ProducerKind, ProductDraft, ProductInput, ProductStatus,
            StockAdjustment,
        },
    },
    error::CatalogError,
    service::Catalog,
    store::{ProductFilter, ProductRecord, UpsertEffect},
};
use ocop_proto::contract::timestamp;

/// Which calls need which scope; browse, search, get and quote are anonymous.
pub fn policy(method: &str) -> Option<Access> {
    match method.strip_prefix("/ocop.catalog.v1.CatalogService/")? {
        "ListProducts" | "SearchProducts" | "GetProduct" | "BatchGetProducts" | "QuotePrice" => {
            Some(Access::Anyone)
        }
        "UpsertProducer" | "UpsertProduct" | "AdjustStock" => Some(Access::Scope("catalog:write")),
        _ => None,
    }
}

const MAX_PAGE_SIZE: i32 = 100;
const DEFAULT_PAGE_SIZE: i32 = 20;
const MAX_SEARCH_LIMIT: i32 = 50;
const MAX_BATCH: usize = 100;
const MAX_QUERY_CHARS: usize = 200;

impl From<Invalid> for FieldViolation {
    fn from(invalid: Invalid) -> Self {
        FieldViolation::new(invalid.field, invalid.reason)
    }
}

impl From<CatalogError> for Status {
    fn from(err: CatalogError) -> Self {
        match err {
            CatalogError::Invalid(invalid) => FieldViolation::from(invalid).into(),
            CatalogError::NotFound { field, message } => {
                Status::not_found(format!("{field}: {message}"))
            }
            CatalogError::FailedPrecondition { field, message } => {
                Status::failed_precondition(format!("{field}: {message}"))
            }
            CatalogError::Internal(err) => {
                tracing::error!(error = format!("{err:#}"), "internal error");
                Status::internal("internal error")
            }
        }
    }
}

/// Record → message, shared with the product snapshot event.
pub fn product_to_proto(record: &ProductRecord) -> pb::Product {
    let kind = match ProducerKind::parse(&record.producer_kind) {
        Some(ProducerKind::Cooperative) => pb::ProducerKind::Cooperative,
        Some(ProducerKind::Household) => pb::ProducerKind::Household,
        Some(ProducerKind::Enterprise) => pb::ProducerKind::Enterprise,
        None => pb::ProducerKind::Unspecified,
    };
    let status = match ProductStatus::parse(&record.status) {
        Some(ProductStatus::Active) => pb::ProductStatus::Active,
        Some(ProductStatus::Hidden) => pb::ProductStatus::Hidden,
        None => pb::ProductStatus::Unspecified,
    };
    pb::Product {
        id: record.id.to_string(),
        sku: record.sku.clone(),
        name: record.name.clone(),
        description: record.description.clone(),
        category: record.category.clone(),
        stars: i32::from(record.stars),
        unit: record.unit.clone(),
        price_vnd: record.price_vnd,
        status: status as i32,
        producer: Some(pb::Producer {
            id: record.producer_id.to_string(),
            code: record.producer_code.clone(),
            name: record.producer_name.clone(),
            kind: kind as i32,
            district: record.producer_district.clone(),
            province: record.producer_province.clone(),
        }),
        available: record.available(),
        on_hand: record.on_hand,
        reserved: record.reserved,
        updated_at: Some(timestamp::to_proto(record.updated_at)),
    }
}

fn producer_kind(raw: i32) -> Option<ProducerKind> {
    match pb::ProducerKind::try_from(raw) {
        Ok(pb::ProducerKind::Cooperative) => Some(ProducerKind::Cooperative),
        Ok(pb::ProducerKind::Household) => Some(ProducerKind::Household),
        Ok(pb::ProducerKind::Enterprise) => Some(ProducerKind::Enterprise),
        _ => None,
    }
}

fn product_status(raw: i32) -> Result<Option<ProductStatus>, FieldViolation> {
    match pb::ProductStatus::try_from(raw) {
        Ok(pb::ProductStatus::Unspecified) => Ok(None),
        Ok(pb::ProductStatus::Active) => Ok(Some(ProductStatus::Active)),
        Ok(pb::ProductStatus::Hidden) => Ok(Some(ProductStatus::Hidden)),
        Err(_) => Err(FieldViolation::new(
            "status",
            format!("{raw} is not a product status"),
        )),
    }
}

/// The list `ListProducts` pages through (a token of another list is refused).
const PRODUCT_LIST: &str = "catalog.products";

/// Page tokens carry the last SKU of the previous page.
fn encode_page_token(sku: &str) -> String {
    page_token::encode(PRODUCT_LIST, sku)
}

fn decode_page_token(token: &str) -> Result<Option<String>, FieldViolation> {
    page_token::decode(PRODUCT_LIST, token, |sku| product::sku(sku).ok())
}

fn bounded(field: &str, raw: i32, default: i32, max: i32) -> Result<i64, FieldViolation> {
    match raw {
        0 => Ok(i64::from(default)),
        1.. if raw <= max => Ok(i64::from(raw)),
        _ => Err(FieldViolation::new(
            field,
            format!("{raw} is outside 1..={max}"),
        )),
    }
}

/// The gRPC face of [`Catalog`].
#[derive(Clone, Debug)]
pub struct CatalogApi {
    catalog: Catalog,
}

impl CatalogApi {
    pub fn new(catalog: Catalog) -> Self {
        Self { catalog }
    }
}

#[tonic::async_trait]
impl CatalogService for CatalogApi {
    async fn list_products(
        &self,
        request: Request<pb::ListProductsRequest>,
    ) -> Result<Response<pb::ListProductsResponse>, Status> {
        let request = request.into_inner();
        let limit = bounded(
            "page_size",
            request.page_size,
            DEFAULT_PAGE_SIZE,
            MAX_PAGE_SIZE,
        )?;
        let after = decode_page_token(&request.page_token)?;
        single_line("district", &request.district)?;
        single_line("category", &request.category)?;
        if request.min_stars != 0 && !(1..=5).contains(&request.min_stars) {
            return Err(FieldViolation::new(
                "min_stars",
                format!("{} is outside 1..=5", request.min_stars),
            )
            .into());
        }
        for (field, value) in [
            ("min_price_vnd", request.min_price_vnd),
            ("max_price_vnd", request.max_price_vnd),
        ] {
            if value < 0 {
                return Err(FieldViolation::new(field, format!("{value} is negative")).into());
            }
        }
        if request.max_price_vnd != 0 && request.max_price_vnd < request.min_price_vnd {
            return Err(FieldViolation::new("max_price_vnd", "is below min_price_vnd").into());
        }
        let filter = ProductFilter {
            min_stars: request.min_stars as i16,
            district: request.district.trim().to_owned(),
            category: request.category.trim().to_owned(),
            min_price_vnd: request.min_price_vnd,
            max_price_vnd: request.max_price_vnd,
        };
        // One extra row tells whether another page exists.
        let mut records = self
            .catalog
            .list(&filter, after.as_deref(), limit + 1)
            .await?;
        let next_page_token = if records.len() as i64 > limit {
            records.truncate(limit as usize);
            records
                .last()
                .map(|last| encode_page_token(&last.sku))
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListProductsResponse {
            products: records.iter().map(product_to_proto).collect(),
            next_page_token,
        }))
    }

    async fn search_products(
        &self,
        request: Request<pb::SearchProductsRequest>,
    ) -> Result<Response<pb::SearchProductsResponse>, Status> {
        let request = request.into_inner();
        single_line("query", &request.query)?;
        let query = request.query.trim();
        if query.is_empty() {
            return Err(FieldViolation::new("query", "is required").into());
        }
        if query.chars().count() > MAX_QUERY_CHARS {
            return Err(FieldViolation::new(
                "query",
                format!("is longer than {MAX_QUERY_CHARS} characters"),
            )
            .into());
        }
        let limit = bounded("limit", request.limit, DEFAULT_PAGE_SIZE, MAX_SEARCH_LIMIT)?;
        let records = self.catalog.search(query, limit).await?;
        Ok(Response::new(pb::SearchProductsResponse {
            products: records.iter().map(product_to_proto).collect(),
        }))
    }

    async fn get_product(
        &self,
        request: Request<pb::GetProductRequest>,
    ) -> Result<Response<pb::GetProductResponse>, Status> {
        let request = request.into_inner();
        let record = match (request.id.is_empty(), request.sku.is_empty()) {
            (false, true) => self.catalog.product(parse_uuid("id", &request.id)?).await?,
            (true, false) => {
                let sku = product::sku(&request.sku).map_err(FieldViolation::from)?;
                self.catalog.product_by_sku(&sku).await?
            }
            (true, true) => return Err(FieldViolation::new("id", "is required (or sku)").into()),
            (false, false) => {
                return Err(FieldViolation::new("sku", "give either id or sku, not both").into());
            }
        };
        Ok(Response::new(pb::GetProductResponse {
            product: Some(product_to_proto(&record)),
        }))
    }

    async fn batch_get_products(
        &self,
        request: Request<pb::BatchGetProductsRequest>,
    ) -> Result<Response<pb::BatchGetProductsResponse>, Status> {
        let request = request.into_inner();
        if request.ids.is_empty() || request.ids.len() > MAX_BATCH {
            return Err(FieldViolation::new(
                "ids",
                format!("{} ids; send 1 to {MAX_BATCH}", request.ids.len()),
            )
            .into());
        }
        let ids = request
            .ids
            .iter()
            .enumerate()
            .map(|(index, raw)| parse_uuid(&format!("ids[{index}]"), raw))
            .collect::<Result<Vec<_>, _>>()?;
        let (found, missing) = self.catalog.products(&ids).await?;
        Ok(Response::new(pb::BatchGetProductsResponse {
            products: found.iter().map(product_to_proto).collect(),
            missing_ids: missing.iter().map(ToString::to_string).collect(),
        }))
    }

    async fn quote_price(
        &self,
        request: Request<pb::QuotePriceRequest>,
    ) -> Result<Response<pb::QuotePriceResponse>, Status> {
        let request = request.into_inner();
        if request.lines.is_empty() || request.lines.len() > crate::domain::reservation::MAX_LINES {
            return Err(FieldViolation::new(
                "lines",
                format!(
                    "{} lines; send 1 to {}",
                    request.lines.len(),
                    crate::domain::reservation::MAX_LINES
                ),
            )
            .into());
        }
        let mut parsed = Vec::with_capacity(request.lines.len());
        for (index, line) in request.lines.iter().enumerate() {
            let id = parse_uuid(&format!("lines[{index}].product_id"), &line.product_id)?;
            if !(1..=crate::domain::reservation::MAX_LINE_QUANTITY)
                .contains(&i64::from(line.quantity))
            {
                return Err(FieldViolation::new(
                    format!("lines[{index}].quantity"),
                    format!(
                        "{} is outside 1..={}",
                        line.quantity,
                        crate::domain::reservation::MAX_LINE_QUANTITY
                    ),
                )
                .into());
            }
            parsed.push((id, line.quantity));
        }
        let ids: Vec<_> = parsed.iter().map(|(id, _)| *id).collect();
        let (found, _) = self.catalog.products(&ids).await?;
        let mut lines = Vec::with_capacity(parsed.len());
        let mut subtotal: i64 = 0;
        for (index, (id, quantity)) in parsed.iter().enumerate() {
            let field = format!("lines[{index}].product_id");
            let record = found
                .iter()
                .find(|record| record.id == *id)
                .ok_or_else(|| {
                    Status::from(CatalogError::not_found(
                        &field,
                        format!("no product with id {id}"),
                    ))
                })?;
            if record.status != ProductStatus::Active.as_str() {
                return Err(CatalogError::FailedPrecondition {
                    field,
                    message: format!("product {id} is not for sale"),
                }
                .into());
            }
            let line_total = record
                .price_vnd
                .checked_mul(i64::from(*quantity))
                .ok_or_else(|| {
                    Status::invalid_argument(format!("lines[{index}].quantity: total overflows"))
                })?;
            subtotal = subtotal
                .checked_add(line_total)
                .ok_or_else(|| Status::invalid_argument("lines: total overflows"))?;
            lines.push(pb::QuotedLine {
                product_id: record.id.to_string(),
                sku: record.sku.clone(),
                name: record.name.clone(),
                unit: record.unit.clone(),
                quantity: *quantity,
                unit_price_vnd: record.price_vnd,
                line_total_vnd: line_total,
                in_stock: record.available() >= i64::from(*quantity),
                producer_id: record.producer_id.to_string(),
            });
        }
        Ok(Response::new(pb::QuotePriceResponse {
            lines,
            subtotal_vnd: subtotal,
            quoted_at: Some(timestamp::to_proto(chrono::Utc::now())),
        }))
    }

    async fn upsert_producer(
        &self,
        request: Request<pb::UpsertProducerRequest>,
    ) -> Result<Response<pb::UpsertProducerResponse>, Status> {
        let request = request.into_inner();
        let draft = ProducerDraft::new(
            &request.code,
            &request.name,
            producer_kind(request.kind),
            &request.district,
            &request.province,
        )
        .map_err(FieldViolation::from)?;
        let (record, created) = self.catalog.upsert_producer(&draft).await?;
        Ok(Response::new(pb::UpsertProducerResponse {
            producer: Some(pb::Producer {
                id: record.id.to_string(),
                code: record.code,
                name: record.name,
                kind: request.kind,
                district: record.district,
                province: record.province,
            }),
            created,
        }))
    }

    async fn upsert_product(
        &self,
        request: Request<pb::UpsertProductRequest>,
    ) -> Result<Response<pb::UpsertProductResponse>, Status> {
        let request = request.into_inner();
        let draft = ProductDraft::new(ProductInput {
            sku: &request.sku,
            producer_code: &request.producer_code,
            name: &request.name,
            description: &request.description,
            category: &request.category,
            stars: request.stars,
            unit: &request.unit,
            price_vnd: request.price_vnd,
            status: product_status(request.status)?,
            initial_stock: request.initial_stock,
        })
        .map_err(FieldViolation::from)?;
        let (record, effect) = self.catalog.upsert_product(&draft).await?;
        Ok(Response::new(pb::UpsertProductResponse {
            product: Some(product_to_proto(&record)),
            created: effect == UpsertEffect::Created,
        }))
    }

    async fn adjust_stock(
        &self,
        request: Request<pb::AdjustStockRequest>,
    ) -> Result<Response<pb::AdjustStockResponse>, Status> {
        let actor = auth::caller(request.extensions())
            .map(|claims| claims.sub.clone())
            .unwrap_or_else(|| "unknown".to_owned());
        let request = request.into_inner();
        let product_id = parse_uuid("product_id", &request.product_id)?;
        let adjustment =
            StockAdjustment::new(request.delta, &request.reason).map_err(FieldViolation::from)?;
        let record = self
            .catalog
            .adjust_stock(product_id, &adjustment, &actor)
            .await?;
        Ok(Response::new(pb::AdjustStockResponse {
            product: Some(product_to_proto(&record)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_token_round_trips_and_garbage_is_refused() {
        let token = encode_page_token("BLI-MIEN-DONG-500G");
        assert_eq!(
            decode_page_token(&token).unwrap().as_deref(),
            Some("BLI-MIEN-DONG-500G")
        );
        assert_eq!(decode_page_token("zz").unwrap_err().field, "page_token");
        assert_eq!(decode_page_token("").unwrap(), None);
        let not_a_sku = page_token::encode(PRODUCT_LIST, "lower case");
        assert_eq!(
            decode_page_token(&not_a_sku).unwrap_err().field,
            "page_token"
        );
    }

    #[test]
    fn only_operator_calls_need_a_scope() {
        assert_eq!(
            policy("/ocop.catalog.v1.CatalogService/UpsertProduct"),
            Some(Access::Scope("catalog:write"))
        );
        assert_eq!(
            policy("/ocop.catalog.v1.CatalogService/AdjustStock"),
            Some(Access::Scope("catalog:write"))
        );
        assert_eq!(
            policy("/ocop.catalog.v1.CatalogService/SearchProducts"),
            Some(Access::Anyone)
        );
        assert_eq!(policy("/ocop.x.v1.Other/Method"), None);
    }
}
