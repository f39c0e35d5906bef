//! The order service's gRPC API: the only module that maps requests and records to and
//! from prost types (events.rs reuses the enum and line mappings).

use chrono::{DateTime, Utc};
use ocop_grpc_kit::{
    auth,
    rate_limit::{RateLimiter, TrustedProxies, grpc_client_key, rate_limited_status},
    validation::{FieldViolation, parse_uuid},
};
use ocop_proto::order::v1::{self as pb, order_service_server::OrderService};
use tonic::{Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt as _};
use uuid::Uuid;

use crate::{
    domain::{
        Invalid,
        order::{DeliveryMethod, OrderInput, OrderRequest, PaymentMethod, Phone, SalesChannel},
        state::{CancellationReason, OrderStatus},
    },
    error::OrderError,
    events::timestamp,
    service::Orders,
    store::{LineRecord, OrderRecord},
};

/// Which calls need which scope. Placing, reading and cancelling one order are
/// anonymous (the order id is the shopper's handle); listing by phone reveals personal
/// data; shipping and delivery are operator work.
pub fn policy(method: &str) -> Option<&'static str> {
    match method.strip_prefix("/ocop.order.v1.OrderService/") {
        Some("ListOrders") => Some("order:read"),
        Some("MarkShipped" | "MarkDelivered") => Some("order:write"),
        _ => None,
    }
}

impl From<OrderError> for Status {
    fn from(err: OrderError) -> Self {
        match err {
            OrderError::Invalid(invalid) => {
                FieldViolation::new(invalid.field, invalid.reason).into()
            }
            OrderError::NotFound { field, message } => {
                Status::not_found(format!("{field}: {message}"))
            }
            OrderError::KeyReused(message) => {
                Status::already_exists(format!("idempotency_key: {message}"))
            }
            OrderError::FailedPrecondition(message) => Status::failed_precondition(message),
            OrderError::QuotaExceeded {
                subject,
                description,
            } => Status::with_error_details(
                tonic::Code::ResourceExhausted,
                description.clone(),
                ErrorDetails::with_quota_failure_violation(subject, description),
            ),
            OrderError::Unavailable(message) => Status::unavailable(message),
            OrderError::Internal(err) => {
                tracing::error!(error = format!("{err:#}"), "internal error");
                Status::internal("internal error")
            }
        }
    }
}

pub fn status_to_proto(status: OrderStatus) -> pb::OrderStatus {
    match status {
        OrderStatus::Pending => pb::OrderStatus::Pending,
        OrderStatus::AwaitingPayment => pb::OrderStatus::AwaitingPayment,
        OrderStatus::Confirmed => pb::OrderStatus::Confirmed,
        OrderStatus::Shipped => pb::OrderStatus::Shipped,
        OrderStatus::Delivered => pb::OrderStatus::Delivered,
        OrderStatus::Cancelled => pb::OrderStatus::Cancelled,
        OrderStatus::PartiallyRefunded => pb::OrderStatus::PartiallyRefunded,
        OrderStatus::Refunded => pb::OrderStatus::Refunded,
    }
}

fn status_name_to_proto(raw: &str) -> pb::OrderStatus {
    OrderStatus::parse(raw).map_or(pb::OrderStatus::Unspecified, status_to_proto)
}

pub fn cancellation_to_proto(reason: CancellationReason) -> pb::CancellationReason {
    match reason {
        CancellationReason::OutOfStock => pb::CancellationReason::OutOfStock,
        CancellationReason::PaymentFailed => pb::CancellationReason::PaymentFailed,
        CancellationReason::PaymentExpired => pb::CancellationReason::PaymentExpired,
        CancellationReason::CustomerRequest => pb::CancellationReason::CustomerRequest,
        CancellationReason::Operator => pb::CancellationReason::Operator,
    }
}

pub fn delivery_to_proto(raw: &str) -> pb::DeliveryMethod {
    match DeliveryMethod::parse(raw) {
        Some(DeliveryMethod::Standard) => pb::DeliveryMethod::Standard,
        Some(DeliveryMethod::Express) => pb::DeliveryMethod::Express,
        Some(DeliveryMethod::Pickup) => pb::DeliveryMethod::Pickup,
        None => pb::DeliveryMethod::Unspecified,
    }
}

pub fn payment_to_proto(raw: &str) -> pb::PaymentMethod {
    match PaymentMethod::parse(raw) {
        Some(PaymentMethod::VietQr) => pb::PaymentMethod::Vietqr,
        Some(PaymentMethod::VnPay) => pb::PaymentMethod::Vnpay,
        Some(PaymentMethod::MoMo) => pb::PaymentMethod::Momo,
        Some(PaymentMethod::ZaloPay) => pb::PaymentMethod::Zalopay,
        Some(PaymentMethod::Sandbox) => pb::PaymentMethod::Sandbox,
        None => pb::PaymentMethod::Unspecified,
    }
}

pub fn channel_to_proto(raw: &str) -> pb::SalesChannel {
    match SalesChannel::parse(raw) {
        Some(SalesChannel::Web) => pb::SalesChannel::Web,
        Some(SalesChannel::Postmart) => pb::SalesChannel::Postmart,
        Some(SalesChannel::Voso) => pb::SalesChannel::Voso,
        Some(SalesChannel::Other) => pb::SalesChannel::Other,
        None => pb::SalesChannel::Unspecified,
    }
}

pub fn line_to_proto(line: &LineRecord) -> pb::OrderLine {
    pb::OrderLine {
        product_id: line.product_id.to_string(),
        sku: line.sku.clone(),
        name: line.name.clone(),
        unit: line.unit.clone(),
        quantity: line.quantity,
        unit_price_vnd: line.unit_price_vnd,
        line_total_vnd: line.line_total_vnd,
    }
}

pub fn order_to_proto(order: &OrderRecord) -> pb::Order {
    let row = &order.row;
    let instructions = row
        .pay_url
        .as_ref()
        .map(|url| pb::payment_instructions::Method::PayUrl(url.clone()))
        .or_else(|| {
            row.vietqr_payload.as_ref().map(|payload| {
                pb::payment_instructions::Method::Vietqr(pb::VietQrTransfer {
                    payload: payload.clone(),
                    memo: row.code.clone(),
                    ..Default::default()
                })
            })
        })
        .map(|method| pb::PaymentInstructions {
            method: Some(method),
            amount_vnd: row.total_vnd,
            expires_at: row.payment_expires_at.map(timestamp),
        });
    pb::Order {
        id: row.id.to_string(),
        code: row.code.clone(),
        status: status_name_to_proto(&row.status) as i32,
        customer: Some(pb::Customer {
            name: row.customer_name.clone(),
            phone: row.customer_phone.clone(),
            email: row.customer_email.clone().unwrap_or_default(),
            address: Some(pb::Address {
                province: row.province.clone(),
                district: row.district.clone(),
                ward: row.ward.clone(),
                street: row.street.clone(),
            }),
        }),
        lines: order.lines.iter().map(line_to_proto).collect(),
        subtotal_vnd: row.subtotal_vnd,
        shipping_fee_vnd: row.shipping_fee_vnd,
        total_vnd: row.total_vnd,
        delivery_method: delivery_to_proto(&row.delivery_method) as i32,
        payment_method: payment_to_proto(&row.payment_method) as i32,
        sales_channel: channel_to_proto(&row.sales_channel) as i32,
        note: row.note.clone(),
        payment_instructions: instructions,
        cancellation_reason: row
            .cancellation_reason
            .as_deref()
            .and_then(CancellationReason::parse)
            .map_or(pb::CancellationReason::Unspecified, cancellation_to_proto)
            as i32,
        cancellation_detail: row.cancellation_detail.clone(),
        history: order
            .history
            .iter()
            .map(|change| pb::StatusChange {
                from: change
                    .from_status
                    .as_deref()
                    .map_or(pb::OrderStatus::Unspecified, status_name_to_proto)
                    as i32,
                to: status_name_to_proto(&change.to_status) as i32,
                cause: change.cause.clone(),
                at: Some(timestamp(change.at)),
            })
            .collect(),
        created_at: Some(timestamp(row.created_at)),
        updated_at: Some(timestamp(row.updated_at)),
    }
}

fn enum_field<T>(
    field: &str,
    raw: i32,
    convert: impl Fn(i32) -> Option<Option<T>>,
) -> Result<Option<T>, FieldViolation> {
    convert(raw).ok_or_else(|| FieldViolation::new(field, format!("{raw} is not a known value")))
}

fn parse_request(request: &pb::PlaceOrderRequest) -> Result<OrderRequest, FieldViolation> {
    let delivery = enum_field("delivery_method", request.delivery_method, |raw| {
        pb::DeliveryMethod::try_from(raw)
            .ok()
            .map(|value| match value {
                pb::DeliveryMethod::Unspecified => None,
                pb::DeliveryMethod::Standard => Some(DeliveryMethod::Standard),
                pb::DeliveryMethod::Express => Some(DeliveryMethod::Express),
                pb::DeliveryMethod::Pickup => Some(DeliveryMethod::Pickup),
            })
    })?;
    let payment = enum_field("payment_method", request.payment_method, |raw| {
        pb::PaymentMethod::try_from(raw)
            .ok()
            .map(|value| match value {
                pb::PaymentMethod::Unspecified => None,
                pb::PaymentMethod::Vietqr => Some(PaymentMethod::VietQr),
                pb::PaymentMethod::Vnpay => Some(PaymentMethod::VnPay),
                pb::PaymentMethod::Momo => Some(PaymentMethod::MoMo),
                pb::PaymentMethod::Zalopay => Some(PaymentMethod::ZaloPay),
                pb::PaymentMethod::Sandbox => Some(PaymentMethod::Sandbox),
            })
    })?;
    let channel = enum_field("sales_channel", request.sales_channel, |raw| {
        pb::SalesChannel::try_from(raw)
            .ok()
            .map(|value| match value {
                pb::SalesChannel::Unspecified => None,
                pb::SalesChannel::Web => Some(SalesChannel::Web),
                pb::SalesChannel::Postmart => Some(SalesChannel::Postmart),
                pb::SalesChannel::Voso => Some(SalesChannel::Voso),
                pb::SalesChannel::Other => Some(SalesChannel::Other),
            })
    })?;
    let customer = request.customer.clone().unwrap_or_default();
    let address = customer.address.clone().unwrap_or_default();
    OrderRequest::new(OrderInput {
        idempotency_key: &request.idempotency_key,
        name: &customer.name,
        phone: &customer.phone,
        email: &customer.email,
        province: &address.province,
        district: &address.district,
        ward: &address.ward,
        street: &address.street,
        lines: request
            .lines
            .iter()
            .map(|line| (line.product_id.as_str(), line.quantity))
            .collect(),
        delivery,
        payment,
        channel,
        note: &request.note,
    })
    .map_err(|Invalid { field, reason }| FieldViolation::new(field, reason))
}

/// Page tokens: `<created_at micros>.<order id>` of the last order, hex-encoded.
fn encode_page_token(order: &OrderRecord) -> String {
    hex::encode(format!(
        "{}.{}",
        order.row.created_at.timestamp_micros(),
        order.row.id
    ))
}

fn decode_page_token(token: &str) -> Result<Option<(DateTime<Utc>, Uuid)>, FieldViolation> {
    if token.is_empty() {
        return Ok(None);
    }
    let invalid = || FieldViolation::new("page_token", "is not a token this service issued");
    let text = hex::decode(token)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(invalid)?;
    let (micros, id) = text.split_once('.').ok_or_else(invalid)?;
    let at = micros
        .parse()
        .ok()
        .and_then(DateTime::from_timestamp_micros)
        .ok_or_else(invalid)?;
    let id = id.parse().map_err(|_| invalid())?;
    Ok(Some((at, id)))
}

/// The gRPC face of [`Orders`].
#[derive(Clone, Debug)]
pub struct OrderApi {
    orders: Orders,
    /// Per-client limit on PlaceOrder (`PLACE_ORDER_RATE`).
    place_rate: RateLimiter,
    /// Whose `X-Forwarded-For` names the client (`TRUSTED_PROXIES`).
    proxies: TrustedProxies,
}

impl OrderApi {
    pub fn new(orders: Orders) -> Self {
        Self {
            orders,
            place_rate: RateLimiter::disabled(),
            proxies: TrustedProxies::default(),
        }
    }

    /// The same API with PlaceOrder limited per client by `limiter`, the client known
    /// through `proxies`.
    pub fn with_rate_limit(self, limiter: RateLimiter, proxies: TrustedProxies) -> Self {
        Self {
            place_rate: limiter,
            proxies,
            ..self
        }
    }
}

#[tonic::async_trait]
impl OrderService for OrderApi {
    async fn place_order(
        &self,
        request: Request<pb::PlaceOrderRequest>,
    ) -> Result<Response<pb::PlaceOrderResponse>, Status> {
        self.place_rate
            .check(&grpc_client_key(&request, &self.proxies))
            .map_err(rate_limited_status)?;
        let request = parse_request(&request.into_inner())?;
        let (order, created) = self.orders.place(&request).await?;
        Ok(Response::new(pb::PlaceOrderResponse {
            order: Some(order_to_proto(&order)),
            created,
        }))
    }

    async fn get_order(
        &self,
        request: Request<pb::GetOrderRequest>,
    ) -> Result<Response<pb::GetOrderResponse>, Status> {
        let id = parse_uuid("order_id", &request.into_inner().order_id)?;
        let order = self.orders.order(id).await?;
        Ok(Response::new(pb::GetOrderResponse {
            order: Some(order_to_proto(&order)),
        }))
    }

    async fn list_orders(
        &self,
        request: Request<pb::ListOrdersRequest>,
    ) -> Result<Response<pb::ListOrdersResponse>, Status> {
        let request = request.into_inner();
        let phone = Phone::parse("customer_phone", &request.customer_phone)
            .map_err(|Invalid { field, reason }| FieldViolation::new(field, reason))?;
        let limit = match request.page_size {
            0 => 20,
            1..=100 => i64::from(request.page_size),
            other => {
                return Err(FieldViolation::new(
                    "page_size",
                    format!("{other} is outside 1..=100"),
                )
                .into());
            }
        };
        let after = decode_page_token(&request.page_token)?;
        let mut orders = self
            .orders
            .by_phone(phone.as_str(), after, limit + 1)
            .await?;
        let next_page_token = if orders.len() as i64 > limit {
            orders.truncate(limit as usize);
            orders.last().map(encode_page_token).unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListOrdersResponse {
            orders: orders.iter().map(order_to_proto).collect(),
            next_page_token,
        }))
    }

    async fn cancel_order(
        &self,
        request: Request<pb::CancelOrderRequest>,
    ) -> Result<Response<pb::CancelOrderResponse>, Status> {
        // An operator's token turns the shopper's cancellation into an operator one.
        let by_operator = auth::caller(request.extensions())
            .is_some_and(|claims| claims.has_scope("order:write"));
        let request = request.into_inner();
        let id = parse_uuid("order_id", &request.order_id)?;
        if request.reason.chars().count() > 500 {
            return Err(FieldViolation::new("reason", "is longer than 500 characters").into());
        }
        let reason = if by_operator {
            CancellationReason::Operator
        } else {
            CancellationReason::CustomerRequest
        };
        let order = self
            .orders
            .cancel(id, reason, request.reason.trim())
            .await?;
        Ok(Response::new(pb::CancelOrderResponse {
            order: Some(order_to_proto(&order)),
        }))
    }

    async fn mark_shipped(
        &self,
        request: Request<pb::MarkShippedRequest>,
    ) -> Result<Response<pb::MarkShippedResponse>, Status> {
        let request = request.into_inner();
        let id = parse_uuid("order_id", &request.order_id)?;
        for (field, value) in [
            ("carrier", &request.carrier),
            ("tracking_code", &request.tracking_code),
        ] {
            let length = value.trim().chars().count();
            if length == 0 || length > 100 {
                return Err(FieldViolation::new(field, "must be 1 to 100 characters").into());
            }
        }
        let order = self
            .orders
            .ship(id, request.carrier.trim(), request.tracking_code.trim())
            .await?;
        Ok(Response::new(pb::MarkShippedResponse {
            order: Some(order_to_proto(&order)),
        }))
    }

    async fn mark_delivered(
        &self,
        request: Request<pb::MarkDeliveredRequest>,
    ) -> Result<Response<pb::MarkDeliveredResponse>, Status> {
        let id = parse_uuid("order_id", &request.into_inner().order_id)?;
        let order = self.orders.deliver(id).await?;
        Ok(Response::new(pb::MarkDeliveredResponse {
            order: Some(order_to_proto(&order)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listing_and_operator_calls_need_a_scope() {
        assert_eq!(
            policy("/ocop.order.v1.OrderService/ListOrders"),
            Some("order:read")
        );
        assert_eq!(
            policy("/ocop.order.v1.OrderService/MarkShipped"),
            Some("order:write")
        );
        assert_eq!(policy("/ocop.order.v1.OrderService/PlaceOrder"), None);
        assert_eq!(policy("/ocop.order.v1.OrderService/GetOrder"), None);
    }

    #[test]
    fn unknown_enum_values_name_their_field() {
        let request = pb::PlaceOrderRequest {
            delivery_method: 42,
            ..Default::default()
        };
        assert_eq!(
            parse_request(&request).unwrap_err().field,
            "delivery_method"
        );
    }

    #[test]
    fn page_token_round_trips_and_garbage_is_refused() {
        assert_eq!(decode_page_token("zz").unwrap_err().field, "page_token");
        assert_eq!(
            decode_page_token(&hex::encode("1.x")).unwrap_err().field,
            "page_token"
        );
        assert_eq!(decode_page_token("").unwrap(), None);
    }
}
