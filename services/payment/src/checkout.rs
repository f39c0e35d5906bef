//! The shopper's side of paying, on our HTTP port: the pay link of every payment
//! (`/pay/{payment_id}`: a redirect to the provider's page, or the VietQR code, or the
//! result), the QR image (`/pay/{payment_id}/qr.svg`) and VNPay's return URL
//! (`/payments/vnpay/return`), which shows what VNPay says without trusting it — only
//! the IPN settles a payment.

use axum::{
    Router,
    extract::{Path, RawQuery, State},
    http::{StatusCode, header},
    response::{IntoResponse, Redirect, Response},
    routing::get,
};
use ocop_proto::money::format_vnd;
use qrcode::{QrCode, render::svg};
use uuid::Uuid;

use crate::{
    domain::intent::{PaymentStatus, Provider},
    error::PaymentError,
    providers::vnpay::VnPayAdapter,
    sandbox::pages::{escape, page, provider_name},
    service::{Checkout, Payments},
    store::{self, IntentRecord},
};

#[derive(Clone, Debug)]
struct Pages {
    payments: Payments,
    vnpay: Option<VnPayAdapter>,
    /// Whether the sandbox gateway plays VietQR (then the page links to its bank app).
    sandbox_bank: bool,
}

pub fn routes(payments: Payments, vnpay: Option<VnPayAdapter>, sandbox_bank: bool) -> Router {
    Router::new()
        .route("/pay/{payment_id}", get(pay))
        .route("/pay/{payment_id}/qr.svg", get(qr_image))
        .route("/payments/vnpay/return", get(vnpay_return))
        .with_state(Pages {
            payments,
            vnpay,
            sandbox_bank,
        })
}

fn status_text(intent: &IntentRecord) -> &'static str {
    if intent.refunded_vnd > 0 {
        return if intent.refunded_vnd >= intent.captured_vnd {
            "Đã hoàn tiền"
        } else {
            "Đã hoàn một phần"
        };
    }
    match intent.status {
        PaymentStatus::Pending => "Chờ thanh toán",
        PaymentStatus::Succeeded => "Đã thanh toán",
        PaymentStatus::Failed => "Thanh toán không thành công",
        PaymentStatus::Expired => "Đã hết hạn",
        PaymentStatus::Cancelled => "Đã huỷ",
    }
}

fn qr_svg(payload: &str) -> Option<String> {
    let code = QrCode::new(payload.as_bytes()).ok()?;
    Some(
        code.render::<svg::Color>()
            .min_dimensions(240, 240)
            .quiet_zone(true)
            .build(),
    )
}

async fn pay(State(pages): State<Pages>, Path(raw): Path<String>) -> Response {
    let Ok(payment_id) = raw.parse::<Uuid>() else {
        return page(
            StatusCode::BAD_REQUEST,
            "Mã thanh toán không hợp lệ",
            "Not a payment id.",
        );
    };
    let intent = match pages.payments.checkout(payment_id).await {
        Ok(Checkout::Redirect(url)) => return Redirect::to(&url).into_response(),
        Ok(Checkout::Show(intent)) => intent,
        Err(PaymentError::NotFound { .. }) => {
            return page(
                StatusCode::NOT_FOUND,
                "Không tìm thấy giao dịch",
                "No such payment.",
            );
        }
        Err(PaymentError::Unavailable(reason)) => {
            tracing::warn!(payment_id = %payment_id, reason = %reason, "provider checkout failed");
            return page(
                StatusCode::BAD_GATEWAY,
                "Cổng thanh toán tạm thời không phản hồi",
                "Please try again in a moment.",
            );
        }
        Err(err) => {
            tracing::error!(error = %err, "checkout failed");
            return page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Lỗi hệ thống",
                "Internal error.",
            );
        }
    };
    let mut body = format!(
        "<dl><dt>Đơn hàng</dt><dd>{}</dd><dt>Số tiền</dt><dd>{}</dd><dt>Phương thức</dt><dd>{}</dd><dt>Trạng thái</dt><dd>{}</dd></dl>\n",
        escape(&intent.order_code),
        format_vnd(intent.amount_vnd),
        provider_name(intent.provider),
        status_text(&intent),
    );
    if intent.provider == Provider::VietQr && intent.status == PaymentStatus::Pending {
        if let Some(svg) = intent.vietqr_payload.as_deref().and_then(qr_svg) {
            body.push_str(
                "<p>Quét mã bằng ứng dụng ngân hàng (nội dung chuyển khoản giữ nguyên):</p>\n",
            );
            body.push_str(&svg);
            body.push_str(&format!(
                "\n<p>Nội dung chuyển khoản: <b>{}</b></p>\n",
                escape(&intent.order_code)
            ));
        }
        if pages.sandbox_bank {
            body.push_str(&format!(
                "<p><a href=\"/sandbox/vietqr/{}\">Mở ngân hàng thử nghiệm (sandbox)</a></p>\n",
                intent.id
            ));
        }
    }
    page(StatusCode::OK, "Thanh toán đơn hàng", &body)
}

async fn qr_image(State(pages): State<Pages>, Path(raw): Path<String>) -> Response {
    let Ok(payment_id) = raw.parse::<Uuid>() else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let intent = match pages.payments.pool().acquire().await {
        Ok(mut conn) => store::intent(&mut conn, payment_id).await,
        Err(err) => Err(err),
    };
    match intent {
        Ok(Some(intent)) => match intent.vietqr_payload.as_deref().and_then(qr_svg) {
            Some(svg) => ([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response(),
            None => StatusCode::NOT_FOUND.into_response(),
        },
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Err(err) => {
            tracing::error!(error = %err, "qr image failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// Shows VNPay's result from the shopper's browser. The parameters are verified (a
/// forged return URL says so), but nothing is changed: the payment settles only by the
/// IPN, server to server; the page shows the payment's status as we know it.
async fn vnpay_return(State(pages): State<Pages>, RawQuery(query): RawQuery) -> Response {
    let Some(vnpay) = &pages.vnpay else {
        return page(StatusCode::NOT_FOUND, "VNPay", "VNPay is not configured.");
    };
    let query = query.unwrap_or_default();
    let result = match vnpay.verify_query(&query) {
        Ok(result) => result,
        Err(refusal) => {
            return page(
                StatusCode::BAD_REQUEST,
                "Kết quả thanh toán không hợp lệ",
                &format!("Chữ ký không hợp lệ ({}).", escape(&refusal.reason)),
            );
        }
    };
    let said = if result.succeeded() {
        "VNPay báo giao dịch thành công"
    } else {
        "VNPay báo giao dịch không thành công"
    };
    let ours = match Uuid::parse_str(&result.txn_ref) {
        Ok(id) => match pages.payments.pool().acquire().await {
            Ok(mut conn) => store::intent(&mut conn, id).await.ok().flatten(),
            Err(_) => None,
        },
        Err(_) => None,
    };
    let ours = match ours {
        Some(intent) => format!(
            "<p>Đơn hàng {}: {}.</p><p><a href=\"/pay/{}\">Xem thanh toán</a></p>",
            escape(&intent.order_code),
            status_text(&intent),
            intent.id
        ),
        None => "<p>Không tìm thấy giao dịch.</p>".to_owned(),
    };
    page(
        StatusCode::OK,
        said,
        &format!(
            "<p>Mã phản hồi {} — đơn hàng chỉ được xác nhận khi cửa hàng nhận thông báo IPN từ VNPay.</p>{ours}",
            escape(&result.response_code)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qr_image_is_an_svg() {
        let svg = qr_svg("00020101021238570010A000000727").unwrap();
        assert!(svg.contains("<svg"), "{svg}");
    }
}
