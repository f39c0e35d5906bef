//! The sandbox's HTTP face: the shopper's payment page and the control API that settles
//! a payment on demand (tests, demos, the load generator). These routes stand in for a
//! provider's website: they must never be reachable from the internet in production.

use axum::{
    Json, Router,
    extract::{Path, Query, State},
    http::StatusCode,
    response::{Html, IntoResponse, Response},
    routing::{get, post},
};
use ocop_proto::money::format_vnd;
use serde::Deserialize;
use uuid::Uuid;

use ocop_payment_schemes::sandbox::CallbackStatus;

use super::{Answer, Gateway, SettleError, Twist, settlements};
use crate::{domain::intent::Provider, store};

/// The sandbox's pages, control API and the providers' APIs it plays:
/// `GET /sandbox/pay/{payment_id}` (the provider's payment page),
/// `POST /sandbox/payments/{payment_id}/succeed|fail` (settle now),
/// `POST /sandbox/payments/{payment_id}/callbacks/{duplicate|late|forged|wrong-amount}`,
/// `POST /sandbox/vietqr/transfers`, `POST /sandbox/refunds/fail-next`,
/// `GET /sandbox/vietqr/{payment_id}` (a banking app scanning the code), and the
/// providers' endpoints (`play.rs`).
pub fn routes(gateway: Gateway) -> Router {
    Router::new()
        .route("/sandbox/pay/{payment_id}", get(pay_page))
        .route("/sandbox/payments/{payment_id}/succeed", post(succeed))
        .route("/sandbox/payments/{payment_id}/fail", post(fail))
        .route(
            "/sandbox/payments/{payment_id}/callbacks/{twist}",
            post(twisted),
        )
        .route("/sandbox/vietqr/transfers", post(transfer))
        .route("/sandbox/vietqr/{payment_id}", get(bank_app))
        .route("/sandbox/refunds/fail-next", post(fail_next_refunds))
        .merge(super::play::routes())
        .with_state(gateway)
}

#[derive(Debug, Deserialize)]
struct TwistQuery {
    /// For `wrong-amount`: the amount to report (default: the payment's + 1,000).
    amount_vnd: Option<i64>,
}

fn answer_json(answer: Answer) -> Response {
    match answer {
        Answer::Answered { status, body } => Json(serde_json::json!({
            "delivered": true,
            "status": status,
            "body": body,
        }))
        .into_response(),
        Answer::Unreachable(err) => (
            StatusCode::BAD_GATEWAY,
            Json(serde_json::json!({ "delivered": false, "error": err })),
        )
            .into_response(),
    }
}

fn settle_error(err: SettleError) -> Response {
    let status = match &err {
        SettleError::UnknownPayment(_) => StatusCode::NOT_FOUND,
        SettleError::Database(db) => {
            tracing::error!(error = %db, "sandbox control failed");
            StatusCode::INTERNAL_SERVER_ERROR
        }
        _ => StatusCode::CONFLICT,
    };
    (
        status,
        Json(serde_json::json!({ "error": err.to_string() })),
    )
        .into_response()
}

/// Sends a duplicate, late, forged or wrong-amount callback; answers JSON with what the
/// payment service answered (`status`, `body`).
async fn twisted(
    State(gateway): State<Gateway>,
    Path((raw, twist)): Path<(String, String)>,
    Query(query): Query<TwistQuery>,
) -> Response {
    let Ok(payment_id) = raw.parse::<Uuid>() else {
        return (StatusCode::BAD_REQUEST, "not a payment id").into_response();
    };
    let twist = match twist.as_str() {
        "duplicate" => Twist::None,
        "late" => Twist::Late,
        "forged" => Twist::Forged,
        "wrong-amount" => {
            let amount = match query.amount_vnd {
                Some(amount) => amount,
                None => {
                    let mut conn = match gateway.pool.acquire().await {
                        Ok(conn) => conn,
                        Err(err) => return settle_error(err.into()),
                    };
                    match store::intent(&mut conn, payment_id).await {
                        Ok(Some(intent)) => intent.amount_vnd + 1_000,
                        Ok(None) => return settle_error(SettleError::UnknownPayment(payment_id)),
                        Err(err) => return settle_error(err.into()),
                    }
                }
            };
            Twist::Amount(amount)
        }
        _ => {
            return (
                StatusCode::NOT_FOUND,
                "twists: duplicate, late, forged, wrong-amount",
            )
                .into_response();
        }
    };
    match gateway.send_twisted(payment_id, twist).await {
        Ok(answer) => answer_json(answer),
        Err(err) => settle_error(err),
    }
}

#[derive(Debug, Deserialize)]
struct TransferRequest {
    amount_vnd: i64,
    description: String,
}

/// A bank-transfer notification of any amount and memo (under-/over-payments).
async fn transfer(
    State(gateway): State<Gateway>,
    Json(request): Json<TransferRequest>,
) -> Response {
    match gateway
        .send_transfer(request.amount_vnd, &request.description)
        .await
    {
        Ok(answer) => answer_json(answer),
        Err(err) => settle_error(err),
    }
}

#[derive(Debug, Deserialize)]
struct FailNext {
    count: Option<u32>,
}

async fn fail_next_refunds(
    State(gateway): State<Gateway>,
    Query(query): Query<FailNext>,
) -> Response {
    let count = query.count.unwrap_or(1);
    gateway.fail_next_refunds(count);
    Json(serde_json::json!({ "refunds_to_fail": count })).into_response()
}

/// A banking app that scanned the VietQR code: shows what the payload asks for (read
/// with the payload parser, CRC checked) and transfers on demand.
async fn bank_app(State(gateway): State<Gateway>, Path(raw): Path<String>) -> Response {
    let Ok(payment_id) = raw.parse::<Uuid>() else {
        return page(
            StatusCode::BAD_REQUEST,
            "Mã không hợp lệ",
            "Not a payment id.",
        );
    };
    let intent = match gateway.pool.acquire().await {
        Ok(mut conn) => store::intent(&mut conn, payment_id).await,
        Err(err) => Err(err),
    };
    let Ok(Some(intent)) = intent else {
        return page(
            StatusCode::NOT_FOUND,
            "Không tìm thấy mã QR",
            "No such payment.",
        );
    };
    let Some(payload) = intent.vietqr_payload.as_deref() else {
        return page(
            StatusCode::NOT_FOUND,
            "Không phải VietQR",
            "This payment has no VietQR code.",
        );
    };
    let transfer = match ocop_payment_schemes::vietqr::parse(payload) {
        Ok(transfer) => transfer,
        Err(err) => {
            return page(
                StatusCode::BAD_REQUEST,
                "Mã QR không đọc được",
                &escape(&err.to_string()),
            );
        }
    };
    let body = format!(
        "<p>Ngân hàng thử nghiệm đọc mã VietQR:</p><dl><dt>Ngân hàng (BIN)</dt><dd>{}</dd><dt>Số tài khoản</dt><dd>{}</dd><dt>Số tiền</dt><dd>{}</dd><dt>Nội dung</dt><dd>{}</dd></dl>
<form method=\"post\" action=\"/sandbox/payments/{payment_id}/succeed\"><button type=\"submit\">Chuyển khoản</button></form>",
        escape(&transfer.bank_bin),
        escape(&transfer.account_number),
        transfer.amount_vnd.map_or_else(|| "(người chuyển nhập)".to_owned(), format_vnd),
        escape(&transfer.memo),
    );
    page(StatusCode::OK, "Ngân hàng thử nghiệm (sandbox)", &body)
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
    let back = match gateway.pool.acquire().await {
        Ok(mut conn) => settlements::peek(&mut conn, payment_id)
            .await
            .ok()
            .flatten(),
        Err(_) => None,
    };
    let settled = gateway.settle_now(payment_id, status).await;
    let back = match back {
        Some(claim) => Some(claim),
        None => match gateway.pool.acquire().await {
            Ok(mut conn) => settlements::peek(&mut conn, payment_id)
                .await
                .ok()
                .flatten(),
            Err(_) => None,
        },
    }
    .map(|claim| {
        format!(
            "<p><a href=\"{}\">Quay lại cửa hàng</a></p>",
            escape(&gateway.return_url(&claim))
        )
    })
    .unwrap_or_default();
    match settled {
        Ok(Answer::Answered { status: code, body }) => {
            let (status, title) = if code == 204 && body.starts_with("no callback") {
                // ZaloPay and banks send nothing for a failed payment.
                (
                    StatusCode::OK,
                    "Đã ghi nhận kết quả (không có thông báo gửi đi)",
                )
            } else if (200..300).contains(&code) {
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
                    "The payment service answered HTTP {code}: <code>{}</code>{back}",
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
            &format!("This payment was already settled as {outcome}.{back}"),
        ),
        Err(err @ (SettleError::NotPlayed(_) | SettleError::NotSettled)) => page(
            StatusCode::CONFLICT,
            "Không thể xử lý",
            &escape(&err.to_string()),
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
    let title = match intent.provider {
        Provider::Sandbox => "Cổng thanh toán thử nghiệm (sandbox)".to_owned(),
        other => format!("{} — cổng thử nghiệm (sandbox)", provider_name(other)),
    };
    page(StatusCode::OK, &title, &body)
}

pub fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"vi\"><head><meta charset=\"utf-8\"><title>{title}</title></head>\n<body><h1>{title}</h1>\n{body}\n</body></html>\n"
    );
    (status, Html(html)).into_response()
}

/// How shoppers know a provider.
pub fn provider_name(provider: Provider) -> &'static str {
    match provider {
        Provider::Sandbox => "Sandbox",
        Provider::VietQr => "VietQR",
        Provider::VnPay => "VNPay",
        Provider::MoMo => "MoMo",
        Provider::ZaloPay => "ZaloPay",
    }
}

/// Escapes text for HTML: order codes come from another service.
pub fn escape(text: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_order_codes_is_escaped() {
        assert_eq!(
            escape(r#"<b>"QN"&'x'</b>"#),
            "&lt;b&gt;&quot;QN&quot;&amp;&#39;x&#39;&lt;/b&gt;"
        );
    }
}
