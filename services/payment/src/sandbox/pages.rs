//! The sandbox's HTTP face: the shopper's payment page and the control API that settles
//! a payment on demand (tests, demos, the load generator). These routes stand in for a
//! provider's website: they must never be reachable from the internet in production.

use axum::{
    Router,
    extract::{Path, State},
    http::StatusCode,
    response::{Html, IntoResponse, Response},
    routing::{get, post},
};
use uuid::Uuid;

use super::{Answer, Gateway, SettleError, scheme::CallbackStatus, settlements};
use crate::store;

/// `GET /sandbox/pay/{payment_id}`, `POST /sandbox/payments/{payment_id}/succeed` and
/// `POST /sandbox/payments/{payment_id}/fail`.
pub fn routes(gateway: Gateway) -> Router {
    Router::new()
        .route("/sandbox/pay/{payment_id}", get(pay_page))
        .route("/sandbox/payments/{payment_id}/succeed", post(succeed))
        .route("/sandbox/payments/{payment_id}/fail", post(fail))
        .with_state(gateway)
}

async fn succeed(State(gateway): State<Gateway>, Path(raw): Path<String>) -> Response {
    settle(&gateway, &raw, CallbackStatus::Success).await
}

async fn fail(State(gateway): State<Gateway>, Path(raw): Path<String>) -> Response {
    settle(&gateway, &raw, CallbackStatus::Failure).await
}

/// Settles and reports what the payment service answered to the signed callback.
async fn settle(gateway: &Gateway, raw: &str, status: CallbackStatus) -> Response {
    let Ok(payment_id) = raw.parse::<Uuid>() else {
        return page(
            StatusCode::BAD_REQUEST,
            "Mã thanh toán không hợp lệ",
            &format!("`{}` is not a payment id.", escape(raw)),
        );
    };
    match gateway.settle_now(payment_id, status).await {
        Ok(Answer::Answered { status: code, body }) => {
            let (status, title) = if (200..300).contains(&code) {
                (StatusCode::OK, "Đã gửi kết quả thanh toán")
            } else if code < 500 {
                (StatusCode::CONFLICT, "Cửa hàng từ chối kết quả")
            } else {
                (StatusCode::BAD_GATEWAY, "Cửa hàng tạm thời không phản hồi")
            };
            page(
                status,
                title,
                &format!(
                    "The payment service answered HTTP {code}: <code>{}</code>",
                    escape(&body)
                ),
            )
        }
        Ok(Answer::Unreachable(err)) => page(
            StatusCode::BAD_GATEWAY,
            "Cửa hàng tạm thời không phản hồi",
            &format!(
                "The callback could not be delivered ({}); the sandbox will retry.",
                escape(&err)
            ),
        ),
        Err(SettleError::UnknownPayment(id)) => page(
            StatusCode::NOT_FOUND,
            "Không tìm thấy giao dịch",
            &format!("No payment with id {id}."),
        ),
        Err(SettleError::AlreadySettled(outcome)) => page(
            StatusCode::CONFLICT,
            "Giao dịch đã được xử lý",
            &format!("This payment was already settled as {outcome}."),
        ),
        Err(SettleError::Database(err)) => {
            tracing::error!(error = %err, "sandbox settlement failed");
            page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Lỗi hệ thống",
                "Internal error.",
            )
        }
    }
}

async fn pay_page(State(gateway): State<Gateway>, Path(raw): Path<String>) -> Response {
    let Ok(payment_id) = raw.parse::<Uuid>() else {
        return page(
            StatusCode::BAD_REQUEST,
            "Mã thanh toán không hợp lệ",
            &format!("`{}` is not a payment id.", escape(&raw)),
        );
    };
    let found = async {
        let mut conn = gateway.pool.acquire().await?;
        let intent = store::intent(&mut conn, payment_id).await?;
        let settled = settlements::outcome(&mut conn, payment_id).await?;
        Ok::<_, sqlx::Error>(intent.map(|intent| (intent, settled)))
    }
    .await;
    let (intent, settled) = match found {
        Ok(Some(found)) => found,
        Ok(None) => {
            return page(
                StatusCode::NOT_FOUND,
                "Không tìm thấy giao dịch",
                &format!("No payment with id {payment_id}."),
            );
        }
        Err(err) => {
            tracing::error!(error = %err, "sandbox payment page failed");
            return page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Lỗi hệ thống",
                "Internal error.",
            );
        }
    };
    let actions = match settled {
        Some(outcome) => format!("<p>Giao dịch đã được xử lý ({}).</p>", escape(&outcome)),
        None => format!(
            r#"<form method="post" action="/sandbox/payments/{payment_id}/succeed"><button type="submit">Thanh toán</button></form>
<form method="post" action="/sandbox/payments/{payment_id}/fail"><button type="submit">Từ chối</button></form>"#
        ),
    };
    let body = format!(
        "<dl><dt>Đơn hàng</dt><dd>{}</dd><dt>Số tiền</dt><dd>{}</dd><dt>Trạng thái</dt><dd>{}</dd><dt>Hết hạn</dt><dd>{}</dd></dl>\n{actions}",
        escape(&intent.order_code),
        format_vnd(intent.amount_vnd),
        intent.status.as_str(),
        intent.expires_at.format("%Y-%m-%d %H:%M:%S UTC"),
    );
    page(
        StatusCode::OK,
        "Cổng thanh toán thử nghiệm (sandbox)",
        &body,
    )
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"vi\"><head><meta charset=\"utf-8\"><title>{title}</title></head>\n<body><h1>{title}</h1>\n{body}\n</body></html>\n"
    );
    (status, Html(html)).into_response()
}

/// Escapes text for HTML: order codes come from another service.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// `1250000` → `1.250.000 ₫` (Vietnamese grouping).
fn format_vnd(amount: i64) -> String {
    let digits = amount.unsigned_abs().to_string();
    let mut grouped = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            grouped.push('.');
        }
        grouped.push(digit);
    }
    let sign = if amount < 0 { "-" } else { "" };
    format!("{sign}{grouped} ₫")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_use_vietnamese_grouping() {
        assert_eq!(format_vnd(75_000), "75.000 ₫");
        assert_eq!(format_vnd(1_250_000), "1.250.000 ₫");
        assert_eq!(format_vnd(500), "500 ₫");
    }

    #[test]
    fn markup_in_order_codes_is_escaped() {
        assert_eq!(
            escape(r#"<b>"QN"&'x'</b>"#),
            "&lt;b&gt;&quot;QN&quot;&amp;&#39;x&#39;&lt;/b&gt;"
        );
    }
}
