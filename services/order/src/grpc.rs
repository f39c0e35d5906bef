//! The order service's gRPC API: the only module that maps requests and records to and
//! from prost types (events.rs reuses the enum and line mappings).

use chrono::{DateTime, Utc};
use ocop_grpc_kit::{
    auth::{self, Access, PARTNER_SCOPE},
    page_token,
    rate_limit::{RateLimiter, TrustedProxies, grpc_client_key, rate_limited_status},
    validation::{FieldViolation, parse_uuid, single_line},
};
use ocop_proto::order::v1::{
    self as pb, order_service_server::OrderService, partner_service_server::PartnerService,
};
use tonic::{Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt as _};
use uuid::Uuid;

use crate::{
    access::{self, Refused},
    domain::{
        Invalid,
        order::{DeliveryMethod, OrderInput, OrderRequest, PaymentMethod, Phone, SalesChannel},
        state::{CancellationReason, OrderStatus},
    },
    error::OrderError,
    service::Orders,
    store::{LineRecord, OrderRecord},
};
use ocop_proto::contract::timestamp;

/// Who may call what. Anyone places an order; reading and cancelling one needs its
/// access token or an operator's (or its channel's partner's) token, checked by the
/// handler (see `access`); listing by phone reveals personal data; shipping and delivery
/// are operator work; the partner API needs a partner's token.
pub fn policy(method: &str) -> Option<Access> {
    if let Some(method) = method.strip_prefix("/ocop.order.v1.OrderService/") {
        return match method {
            "PlaceOrder" => Some(Access::Anyone),
            "GetOrder" | "CancelOrder" => Some(Access::Capability),
            "ListOrders" => Some(Access::Scope("order:read")),
            "MarkShipped" | "MarkDelivered" => Some(Access::Scope("order:write")),
            _ => None,
        };
    }
    match method.strip_prefix("/ocop.order.v1.PartnerService/")? {
        "GetPartnerOrder" => Some(Access::Scope(PARTNER_SCOPE)),
        _ => None,
    }
}

/// Answers a refused caller: without any credential it is told what is missing; with a
/// credential that does not open the order it finds no order, as if the id were unknown.
fn refused(refusal: Refused, id: Uuid) -> Status {
    match refusal {
        Refused::NoCredential => Status::permission_denied(
            "access_token: this order's access token (from PlaceOrder) or an operator's token is needed",
        ),
        Refused::NotYours => Status::not_found(format!("order_id: no order with id {id}")),
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

/// The transfer a VietQR payload asks for, spelled out for a shopper who types it into
/// a banking app instead of scanning: the payment service builds the payload, and its
/// bank BIN and account number are read back from it (the EMVCo fields 38/01/00, 01).
fn vietqr(payload: &str, order_code: &str) -> pb::VietQrTransfer {
    let transfer = ocop_payment_schemes::vietqr::parse(payload)
        .inspect_err(|err| tracing::warn!(error = %err, "stored VietQR payload does not parse"))
        .ok();
    pb::VietQrTransfer {
        payload: payload.to_owned(),
        bank_bin: transfer
            .as_ref()
            .map(|transfer| transfer.bank_bin.clone())
            .unwrap_or_default(),
        account_number: transfer
            .map(|transfer| transfer.account_number)
            .unwrap_or_default(),
        memo: order_code.to_owned(),
        ..Default::default()
    }
}

pub fn order_to_proto(order: &OrderRecord) -> pb::Order {
    let row = &order.row;
    let instructions = row
        .pay_url
        .as_ref()
        .map(|url| pb::payment_instructions::Method::PayUrl(url.clone()))
        .or_else(|| {
            row.vietqr_payload
                .as_ref()
                .map(|payload| pb::payment_instructions::Method::Vietqr(vietqr(payload, &row.code)))
        })
        .map(|method| pb::PaymentInstructions {
            method: Some(method),
            amount_vnd: row.total_vnd,
            expires_at: row.payment_expires_at.map(timestamp::to_proto),
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
                at: Some(timestamp::to_proto(change.at)),
            })
            .collect(),
        created_at: Some(timestamp::to_proto(row.created_at)),
        updated_at: Some(timestamp::to_proto(row.updated_at)),
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

/// The list `ListOrders` pages through (a token of another list is refused).
const ORDER_LIST: &str = "order.orders";

/// Page tokens carry `<created_at micros>.<order id>` of the last order.
fn encode_page_token(order: &OrderRecord) -> String {
    page_token::encode(
        ORDER_LIST,
        &format!(
            "{}.{}",
            order.row.created_at.timestamp_micros(),
            order.row.id
        ),
    )
}

fn decode_page_token(token: &str) -> Result<Option<(DateTime<Utc>, Uuid)>, FieldViolation> {
    page_token::decode(ORDER_LIST, token, |position| {
        let (micros, id) = position.split_once('.')?;
        let at = DateTime::from_timestamp_micros(micros.parse().ok()?)?;
        Some((at, id.parse().ok()?))
    })
}

/// An order's lines as partners see them: no product names, no personal data.
pub fn partner_lines(order: &OrderRecord) -> Vec<pb::PartnerOrderLine> {
    order
        .lines
        .iter()
        .map(|line| pb::PartnerOrderLine {
            product_id: line.product_id.to_string(),
            sku: line.sku.clone(),
            quantity: line.quantity,
            unit_price_vnd: line.unit_price_vnd,
        })
        .collect()
}

fn partner_order_to_proto(order: &OrderRecord) -> pb::PartnerOrder {
    let row = &order.row;
    pb::PartnerOrder {
        order_id: row.id.to_string(),
        status: status_to_proto(row.status()) as i32,
        sales_channel: channel_to_proto(&row.sales_channel) as i32,
        lines: partner_lines(order),
        total_vnd: row.total_vnd,
        delivery_province: row.province.clone(),
        created_at: Some(timestamp::to_proto(row.created_at)),
        updated_at: Some(timestamp::to_proto(row.updated_at)),
    }
}

/// The partner API: a partner's own channel's orders, without personal data.
#[derive(Clone, Debug)]
pub struct PartnerApi {
    orders: Orders,
}

impl PartnerApi {
    pub fn new(orders: Orders) -> Self {
        Self { orders }
    }
}

#[tonic::async_trait]
impl PartnerService for PartnerApi {
    async fn get_partner_order(
        &self,
        request: Request<pb::GetPartnerOrderRequest>,
    ) -> Result<Response<pb::GetPartnerOrderResponse>, Status> {
        // The layer admitted a `partner` token; one without a channel sees nothing.
        let channel = auth::caller(request.extensions())
            .and_then(|claims| claims.partner_channel())
            .map(str::to_owned);
        let id = parse_uuid("order_id", &request.into_inner().order_id)?;
        let order = self.orders.order(id).await?;
        if channel.as_deref() != Some(order.row.sales_channel.as_str()) {
            return Err(refused(Refused::NotYours, id));
        }
        Ok(Response::new(pb::GetPartnerOrderResponse {
            order: Some(partner_order_to_proto(&order)),
        }))
    }
}

/// The gRPC face of [`Orders`].
#[derive(Clone, Debug)]
pub struct OrderApi {
    orders: Orders,
    /// The payment methods the platform takes (`PAYMENT_METHODS`).
    payment_methods: Vec<PaymentMethod>,
    /// Per-client limit on PlaceOrder (`PLACE_ORDER_RATE`).
    place_rate: RateLimiter,
    /// Whose `X-Forwarded-For` names the client (`TRUSTED_PROXIES`).
    proxies: TrustedProxies,
}

impl OrderApi {
    pub fn new(orders: Orders, payment_methods: Vec<PaymentMethod>) -> Self {
        Self {
            orders,
            payment_methods,
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

    /// A method the platform does not take is refused before anything is stored, so no
    /// order waits for a payment nobody can take (or that only the sandbox would fake).
    fn check_payment_method(&self, method: PaymentMethod) -> Result<(), FieldViolation> {
        if self.payment_methods.contains(&method) {
            return Ok(());
        }
        let offered: Vec<&str> = self.payment_methods.iter().map(|m| m.as_str()).collect();
        Err(FieldViolation::new(
            "payment_method",
            format!(
                "{} is not offered here; choose one of: {}",
                method.as_str(),
                offered.join(", ")
            ),
        ))
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
        self.check_payment_method(request.payment)?;
        let placed = self.orders.place(&request).await?;
        Ok(Response::new(pb::PlaceOrderResponse {
            order: Some(order_to_proto(&placed.order)),
            created: placed.created,
            access_token: placed.access_token,
        }))
    }

    async fn get_order(
        &self,
        request: Request<pb::GetOrderRequest>,
    ) -> Result<Response<pb::GetOrderResponse>, Status> {
        let caller = auth::caller(request.extensions()).cloned();
        let request = request.into_inner();
        let id = parse_uuid("order_id", &request.order_id)?;
        let order = self.orders.order(id).await?;
        access::may_read(&order.row, &request.access_token, caller.as_ref())
            .map_err(|refusal| refused(refusal, id))?;
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
        let caller = auth::caller(request.extensions()).cloned();
        let request = request.into_inner();
        let id = parse_uuid("order_id", &request.order_id)?;
        single_line("reason", &request.reason)?;
        if request.reason.chars().count() > 500 {
            return Err(FieldViolation::new("reason", "is longer than 500 characters").into());
        }
        let current = self.orders.order(id).await?;
        // An operator's token makes it an operator's cancellation.
        let reason = access::may_cancel(&current.row, &request.access_token, caller.as_ref())
            .map_err(|refusal| refused(refusal, id))?;
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
            single_line(field, value)?;
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
    fn reading_and_cancelling_are_for_the_handler_and_listing_needs_a_scope() {
        let order = |method: &str| policy(&format!("/ocop.order.v1.OrderService/{method}"));
        assert_eq!(order("PlaceOrder"), Some(Access::Anyone));
        assert_eq!(order("GetOrder"), Some(Access::Capability));
        assert_eq!(order("CancelOrder"), Some(Access::Capability));
        assert_eq!(order("ListOrders"), Some(Access::Scope("order:read")));
        assert_eq!(order("MarkShipped"), Some(Access::Scope("order:write")));
        assert_eq!(order("Forgotten"), None);
        assert_eq!(
            policy("/ocop.order.v1.PartnerService/GetPartnerOrder"),
            Some(Access::Scope("partner"))
        );
    }

    #[test]
    fn vietqr_instructions_carry_the_bank_and_account_of_the_payload() {
        let payload = ocop_payment_schemes::vietqr::Transfer {
            bank_bin: "970436".into(),
            account_number: "0011001234567".into(),
            amount_vnd: Some(105_000),
            memo: "OCOP0123456789".into(),
        }
        .payload()
        .unwrap();
        let transfer = vietqr(&payload, "OCOP0123456789");
        assert_eq!(transfer.bank_bin, "970436");
        assert_eq!(transfer.account_number, "0011001234567");
        assert_eq!(transfer.memo, "OCOP0123456789");
        assert_eq!(vietqr("garbage", "OCOP1").bank_bin, "");
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
            decode_page_token(&page_token::encode(ORDER_LIST, "1.x"))
                .unwrap_err()
                .field,
            "page_token"
        );
        assert_eq!(
            decode_page_token(&hex::encode(format!("1.{}", Uuid::nil())))
                .unwrap_err()
                .field,
            "page_token",
            "an untagged token"
        );
        let position = format!("1.{}", Uuid::nil());
        assert_eq!(
            decode_page_token(&page_token::encode(ORDER_LIST, &position)).unwrap(),
            Some((DateTime::from_timestamp_micros(1).unwrap(), Uuid::nil()))
        );
        assert_eq!(decode_page_token("").unwrap(), None);
    }
}
