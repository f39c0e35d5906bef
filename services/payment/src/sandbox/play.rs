//! The providers' APIs as the sandbox plays them: VNPay's payment page and merchant API
//! (refund, querydr), MoMo's create and refund, ZaloPay's create, query and refund, and
//! the sandbox's own refund API. Each verifies the merchant's signature exactly as the
//! provider does and answers in the provider's format, signed where the provider signs.

use axum::{
    Json, Router,
    body::Bytes,
    extract::{RawQuery, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use chrono::Utc;
use ocop_payment_schemes::{
    momo,
    sandbox::{CallbackStatus, RefundAnswer, RefundBody, SIGNATURE_HEADER},
    vn_datetime, vnpay, zalopay,
};
use serde_json::json;
use uuid::Uuid;

use super::{Gateway, settlements};
use crate::providers::zalopay::payment_of;

pub fn routes() -> Router<Gateway> {
    Router::new()
        .route("/sandbox/sandbox/api/refund", post(sandbox_refund))
        .route("/sandbox/vnpay/paymentv2/vpcpay.html", get(vnpay_pay))
        .route(
            "/sandbox/vnpay/merchant_webapi/api/transaction",
            post(vnpay_transaction),
        )
        .route("/sandbox/momo/v2/gateway/api/create", post(momo_create))
        .route("/sandbox/momo/v2/gateway/api/refund", post(momo_refund))
        .route("/sandbox/momo/v2/gateway/api/query", post(momo_query))
        .route("/sandbox/zalopay/v2/create", post(zalopay_create))
        .route("/sandbox/zalopay/v2/query", post(zalopay_query))
        .route("/sandbox/zalopay/v2/refund", post(zalopay_refund))
}

/// The gateway's decision on a refund request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundDecision {
    pub success: bool,
    pub provider_refund_id: String,
    pub code: &'static str,
    pub message: String,
}

impl Gateway {
    /// Refunds `amount_vnd` of a settled payment once per `request_id` (a repeated
    /// request gets the first answer); never more than was paid in total.
    pub async fn provider_refund(
        &self,
        payment_id: Uuid,
        request_id: &str,
        amount_vnd: i64,
    ) -> Result<RefundDecision, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let previous: Option<(String, String)> = sqlx::query_as(
            "SELECT outcome, provider_refund_id FROM sandbox_refunds WHERE request_id = $1",
        )
        .bind(request_id)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some((outcome, id)) = previous {
            let success = outcome == "success";
            return Ok(RefundDecision {
                success,
                provider_refund_id: id,
                code: if success { "ok" } else { "declined" },
                message: "repeated request: the first answer".into(),
            });
        }
        // Serialise refunds of one payment.
        let paid: Option<(i64, String)> = sqlx::query_as(
            "SELECT i.amount_vnd, s.outcome FROM payment_intents i
               JOIN sandbox_settlements s ON s.payment_id = i.id
              WHERE i.id = $1 FOR UPDATE OF i",
        )
        .bind(payment_id)
        .fetch_optional(&mut *tx)
        .await?;
        let refunded: i64 = sqlx::query_scalar(
            "SELECT COALESCE(sum(amount_vnd), 0)::bigint FROM sandbox_refunds
              WHERE payment_id = $1 AND outcome = 'success'",
        )
        .bind(payment_id)
        .fetch_one(&mut *tx)
        .await?;
        let refusal = match paid {
            None => Some(("not_found", "no such paid transaction".to_owned())),
            Some((_, ref outcome)) if outcome != "success" => {
                Some(("not_paid", "the transaction was not paid".to_owned()))
            }
            Some((paid, _)) if refunded + amount_vnd > paid => Some((
                "exceeds",
                format!("{amount_vnd} is more than the {} left", paid - refunded),
            )),
            _ if amount_vnd <= 0 => Some(("invalid_amount", "the amount must be positive".into())),
            _ if self.refuse_this_refund() => Some((
                "declined",
                "the sandbox was told to refuse this refund".into(),
            )),
            _ => None,
        };
        let provider_refund_id = format!("RF{}", &Uuid::new_v4().simple().to_string()[..16]);
        let Some((code, message)) = refusal else {
            sqlx::query(
                "INSERT INTO sandbox_refunds (request_id, payment_id, amount_vnd, outcome, provider_refund_id)
                 VALUES ($1, $2, $3, 'success', $4)",
            )
            .bind(request_id)
            .bind(payment_id)
            .bind(amount_vnd)
            .bind(&provider_refund_id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            return Ok(RefundDecision {
                success: true,
                provider_refund_id,
                code: "ok",
                message: "refunded".into(),
            });
        };
        if paid.is_some() && code != "not_found" {
            sqlx::query(
                "INSERT INTO sandbox_refunds (request_id, payment_id, amount_vnd, outcome, provider_refund_id)
                 VALUES ($1, $2, $3, 'failure', $4)",
            )
            .bind(request_id)
            .bind(payment_id)
            .bind(amount_vnd.max(1))
            .bind(&provider_refund_id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(RefundDecision {
            success: false,
            provider_refund_id: String::new(),
            code,
            message,
        })
    }
}

/// The sandbox's settlement of `payment_id` (the payment a provider's reference names),
/// for the providers' status queries: none when the reference names no payment.
async fn settlement_named(
    gateway: &Gateway,
    payment_id: Option<Uuid>,
) -> Result<Option<settlements::Claim>, sqlx::Error> {
    let Some(payment_id) = payment_id else {
        return Ok(None);
    };
    let mut conn = gateway.pool.acquire().await?;
    settlements::peek(&mut conn, payment_id).await
}

fn internal(err: sqlx::Error) -> Response {
    tracing::error!(error = %err, "sandbox provider API failed");
    StatusCode::INTERNAL_SERVER_ERROR.into_response()
}

async fn sandbox_refund(
    State(gateway): State<Gateway>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let signature = headers
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if gateway
        .config
        .key
        .verify_sha256_hex(&body, signature)
        .is_err()
    {
        return (StatusCode::UNAUTHORIZED, "bad signature").into_response();
    }
    let Ok(request) = serde_json::from_slice::<RefundBody>(&body) else {
        return (StatusCode::BAD_REQUEST, "malformed").into_response();
    };
    let Ok(payment_id) = request.payment_id.parse::<Uuid>() else {
        return (StatusCode::BAD_REQUEST, "malformed payment_id").into_response();
    };
    match gateway
        .provider_refund(payment_id, &request.request_id, request.amount_vnd)
        .await
    {
        Ok(decision) => Json(RefundAnswer {
            status: if decision.success {
                CallbackStatus::Success
            } else {
                CallbackStatus::Failure
            },
            provider_refund_id: decision.provider_refund_id,
            code: decision.code.into(),
            message: decision.message,
        })
        .into_response(),
        Err(err) => internal(err),
    }
}

/// VNPay's payment page: checks the merchant's signed URL, then shows the sandbox page.
async fn vnpay_pay(State(gateway): State<Gateway>, RawQuery(query): RawQuery) -> Response {
    let Some(settings) = &gateway.config.providers.vnpay else {
        return (StatusCode::NOT_FOUND, "VNPay is not configured").into_response();
    };
    let query = query.unwrap_or_default();
    let checked = vnpay::parse_query(&query)
        .map_err(|e| e.to_string())
        .and_then(|params| {
            vnpay::verify_params(&settings.hash_secret, &params).map_err(|e| e.to_string())?;
            Ok(params)
        });
    let params = match checked {
        Ok(params) => params,
        // VNPay shows "Sai chữ ký" (wrong signature), code 70.
        Err(err) => return (StatusCode::BAD_REQUEST, format!("VNPay 70: {err}")).into_response(),
    };
    let get = |key: &str| params.get(key).cloned().unwrap_or_default();
    if get("vnp_TmnCode") != settings.tmn_code || get("vnp_Version") != vnpay::VERSION {
        return (
            StatusCode::BAD_REQUEST,
            "VNPay 02: unknown merchant or version",
        )
            .into_response();
    }
    let Ok(payment_id) = Uuid::parse_str(&get("vnp_TxnRef")) else {
        return (StatusCode::BAD_REQUEST, "VNPay 03: bad vnp_TxnRef").into_response();
    };
    Redirect::to(&format!("/sandbox/pay/{payment_id}")).into_response()
}

/// VNPay's merchant API: `refund` and `querydr`, hashed over `|`-joined fields.
async fn vnpay_transaction(State(gateway): State<Gateway>, body: Bytes) -> Response {
    let Some(settings) = &gateway.config.providers.vnpay else {
        return (StatusCode::NOT_FOUND, "VNPay is not configured").into_response();
    };
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "malformed").into_response();
    };
    let command = value["vnp_Command"].as_str().unwrap_or_default().to_owned();
    let mut answer = vnpay::ApiResponse {
        vnp_ResponseId: Uuid::new_v4().simple().to_string(),
        vnp_Command: command.clone(),
        vnp_TmnCode: settings.tmn_code.clone(),
        ..Default::default()
    };
    match command.as_str() {
        "refund" => {
            let Ok(request) = serde_json::from_value::<vnpay::RefundRequest>(value) else {
                return (StatusCode::BAD_REQUEST, "malformed refund").into_response();
            };
            answer.vnp_TxnRef = request.vnp_TxnRef.clone();
            answer.vnp_Amount = request.vnp_Amount.clone();
            answer.vnp_TransactionType = request.vnp_TransactionType.clone();
            answer.vnp_OrderInfo = request.vnp_OrderInfo.clone();
            let verified = settings.hash_secret.verify_sha512_hex(
                vnpay::refund_hash_data(&request).as_bytes(),
                &request.vnp_SecureHash,
            );
            let amount = request
                .vnp_Amount
                .parse::<i64>()
                .ok()
                .filter(|minor| minor % 100 == 0)
                .map(|minor| minor / 100);
            match (verified, Uuid::parse_str(&request.vnp_TxnRef), amount) {
                (Err(_), _, _) => {
                    answer.vnp_ResponseCode = "97".into();
                    answer.vnp_Message = "Invalid Checksum".into();
                }
                (_, Err(_), _) | (_, _, None) => {
                    answer.vnp_ResponseCode = "99".into();
                    answer.vnp_Message = "Invalid request".into();
                }
                (Ok(()), Ok(payment_id), Some(amount)) => {
                    match gateway
                        .provider_refund(payment_id, &request.vnp_RequestId, amount)
                        .await
                    {
                        Ok(decision) if decision.success => {
                            answer.vnp_ResponseCode = "00".into();
                            answer.vnp_Message = "Refund success".into();
                            answer.vnp_TransactionNo = decision.provider_refund_id;
                            answer.vnp_TransactionStatus = "05".into();
                        }
                        Ok(decision) => {
                            // VNPay's "refused" (94 is a duplicate request).
                            answer.vnp_ResponseCode = "95".into();
                            answer.vnp_Message = decision.message;
                        }
                        Err(err) => return internal(err),
                    }
                }
            }
        }
        "querydr" => {
            let Ok(request) = serde_json::from_value::<vnpay::QueryRequest>(value) else {
                return (StatusCode::BAD_REQUEST, "malformed querydr").into_response();
            };
            answer.vnp_TxnRef = request.vnp_TxnRef.clone();
            let verified = settings.hash_secret.verify_sha512_hex(
                vnpay::querydr_hash_data(&request).as_bytes(),
                &request.vnp_SecureHash,
            );
            if verified.is_err() {
                answer.vnp_ResponseCode = "97".into();
                answer.vnp_Message = "Invalid Checksum".into();
            } else {
                let found =
                    match settlement_named(&gateway, Uuid::parse_str(&request.vnp_TxnRef).ok())
                        .await
                    {
                        Ok(found) => found,
                        Err(err) => return internal(err),
                    };
                match found {
                    Some(claim) => {
                        let paid = claim.outcome == CallbackStatus::Success;
                        answer.vnp_ResponseCode = "00".into();
                        answer.vnp_Message = "QueryDR Success".into();
                        answer.vnp_Amount = (claim.amount_vnd * 100).to_string();
                        answer.vnp_TransactionNo = claim.provider_transaction_id;
                        answer.vnp_TransactionStatus = if paid { "00" } else { "02" }.into();
                        answer.vnp_PayDate = vn_datetime(Utc::now());
                    }
                    None => {
                        answer.vnp_ResponseCode = "91".into();
                        answer.vnp_Message = "Transaction not found".into();
                    }
                }
            }
        }
        _ => {
            answer.vnp_ResponseCode = "99".into();
            answer.vnp_Message = "unknown command".into();
        }
    }
    answer.vnp_SecureHash = settings
        .hash_secret
        .hmac_sha512_hex(vnpay::response_hash_data(&answer).as_bytes());
    Json(answer).into_response()
}

fn momo_credentials(gateway: &Gateway) -> Option<momo::Credentials> {
    gateway
        .config
        .providers
        .momo
        .as_ref()
        .map(|m| momo::Credentials {
            partner_code: m.partner_code.clone(),
            access_key: m.access_key.clone(),
            secret_key: m.secret_key.clone(),
        })
}

async fn momo_create(State(gateway): State<Gateway>, body: Bytes) -> Response {
    let Some(credentials) = momo_credentials(&gateway) else {
        return (StatusCode::NOT_FOUND, "MoMo is not configured").into_response();
    };
    let Ok(request) = serde_json::from_slice::<momo::CreateRequest>(&body) else {
        return (StatusCode::BAD_REQUEST, "malformed").into_response();
    };
    let answer = |code: i64, message: &str, pay_url: String| {
        Json(momo::CreateResponse {
            partner_code: request.partner_code.clone(),
            request_id: request.request_id.clone(),
            order_id: request.order_id.clone(),
            amount: request.amount,
            response_time: Utc::now().timestamp_millis(),
            message: message.to_owned(),
            result_code: code,
            pay_url,
        })
        .into_response()
    };
    if request.verify(&credentials).is_err() || request.partner_code != credentials.partner_code {
        return answer(11, "Access denied: bad signature", String::new());
    }
    if momo::check_amount(request.amount).is_err() {
        return answer(22, "Amount out of range", String::new());
    }
    let Ok(payment_id) = Uuid::parse_str(&request.order_id) else {
        return answer(20, "Bad format request", String::new());
    };
    answer(
        0,
        "Successful.",
        format!(
            "{}/sandbox/pay/{payment_id}",
            gateway.config.providers.public_url
        ),
    )
}

async fn momo_query(State(gateway): State<Gateway>, body: Bytes) -> Response {
    let Some(credentials) = momo_credentials(&gateway) else {
        return (StatusCode::NOT_FOUND, "MoMo is not configured").into_response();
    };
    let Ok(request) = serde_json::from_slice::<momo::QueryRequest>(&body) else {
        return (StatusCode::BAD_REQUEST, "malformed").into_response();
    };
    let mut answer = momo::QueryResponse {
        partner_code: request.partner_code.clone(),
        order_id: request.order_id.clone(),
        request_id: request.request_id.clone(),
        response_time: Utc::now().timestamp_millis(),
        ..Default::default()
    };
    if request.verify(&credentials).is_err() {
        answer.result_code = 11;
        answer.message = "Access denied: bad signature".into();
        return Json(answer).into_response();
    }
    let found = match settlement_named(&gateway, Uuid::parse_str(&request.order_id).ok()).await {
        Ok(found) => found,
        Err(err) => return internal(err),
    };
    match found {
        Some(claim) if claim.outcome == CallbackStatus::Success => {
            answer.result_code = 0;
            answer.message = "Successful.".into();
            answer.amount = claim.amount_vnd;
            answer.trans_id = claim.provider_transaction_id.parse().unwrap_or_default();
        }
        Some(claim) => {
            answer.result_code = 1006;
            answer.message = "Transaction denied by user.".into();
            answer.amount = claim.amount_vnd;
        }
        None => {
            answer.result_code = 1000;
            answer.message = "Transaction initiated, waiting for user confirmation.".into();
        }
    }
    Json(answer).into_response()
}

async fn momo_refund(State(gateway): State<Gateway>, body: Bytes) -> Response {
    let Some(credentials) = momo_credentials(&gateway) else {
        return (StatusCode::NOT_FOUND, "MoMo is not configured").into_response();
    };
    let Ok(request) = serde_json::from_slice::<momo::RefundRequest>(&body) else {
        return (StatusCode::BAD_REQUEST, "malformed").into_response();
    };
    let respond = |code: i64, message: String, trans_id: i64| {
        Json(momo::RefundResponse {
            partner_code: request.partner_code.clone(),
            order_id: request.order_id.clone(),
            request_id: request.request_id.clone(),
            amount: request.amount,
            trans_id,
            result_code: code,
            message,
            response_time: Utc::now().timestamp_millis(),
        })
        .into_response()
    };
    if request.verify(&credentials).is_err() {
        return respond(11, "Access denied: bad signature".into(), 0);
    }
    // Find the payment by its MoMo transId.
    let payment: Result<Option<Uuid>, sqlx::Error> = sqlx::query_scalar(
        "SELECT payment_id FROM sandbox_settlements WHERE provider_transaction_id = $1",
    )
    .bind(request.trans_id.to_string())
    .fetch_optional(&gateway.pool)
    .await;
    let payment_id = match payment {
        Ok(Some(id)) => id,
        Ok(None) => return respond(1001, "Transaction not found".into(), 0),
        Err(err) => return internal(err),
    };
    match gateway
        .provider_refund(payment_id, &request.request_id, request.amount)
        .await
    {
        Ok(decision) if decision.success => {
            let trans_id =
                i64::from_str_radix(&decision.provider_refund_id[2..14], 16).unwrap_or(1);
            respond(0, "Successful.".into(), trans_id)
        }
        Ok(decision) => respond(1080, decision.message, 0),
        Err(err) => internal(err),
    }
}

fn zalopay_credentials(gateway: &Gateway) -> Option<zalopay::Credentials> {
    gateway
        .config
        .providers
        .zalopay
        .as_ref()
        .map(|z| zalopay::Credentials {
            app_id: z.app_id,
            key1: z.key1.clone(),
            key2: z.key2.clone(),
        })
}

async fn zalopay_create(State(gateway): State<Gateway>, body: Bytes) -> Response {
    let Some(credentials) = zalopay_credentials(&gateway) else {
        return (StatusCode::NOT_FOUND, "ZaloPay is not configured").into_response();
    };
    let Ok(request) = serde_json::from_slice::<zalopay::CreateRequest>(&body) else {
        return (StatusCode::BAD_REQUEST, "malformed").into_response();
    };
    let answer = |code: i64, message: &str, url: String| {
        Json(json!({
            "return_code": code,
            "return_message": message,
            "order_url": url,
            "zp_trans_token": Uuid::new_v4().simple().to_string(),
        }))
        .into_response()
    };
    if request.app_id != credentials.app_id || request.verify(&credentials.key1).is_err() {
        return answer(2, "Giao dịch thất bại: mac không hợp lệ", String::new());
    }
    if request
        .expire_duration_seconds
        .is_some_and(|seconds| !zalopay::EXPIRE_DURATION_SECONDS.contains(&seconds))
    {
        return answer(
            2,
            "Giao dịch thất bại: expire_duration_seconds không hợp lệ",
            String::new(),
        );
    }
    match payment_of(&request.app_trans_id) {
        Ok(payment_id) => answer(
            1,
            "Giao dịch thành công",
            format!(
                "{}/sandbox/pay/{payment_id}",
                gateway.config.providers.public_url
            ),
        ),
        Err(refusal) => answer(2, &refusal.reason, String::new()),
    }
}

async fn zalopay_query(State(gateway): State<Gateway>, body: Bytes) -> Response {
    let Some(credentials) = zalopay_credentials(&gateway) else {
        return (StatusCode::NOT_FOUND, "ZaloPay is not configured").into_response();
    };
    let Ok(request) = serde_json::from_slice::<zalopay::QueryRequest>(&body) else {
        return (StatusCode::BAD_REQUEST, "malformed").into_response();
    };
    if request.verify(&credentials.key1).is_err() {
        return Json(zalopay::QueryResponse {
            return_code: 2,
            return_message: "mac không hợp lệ".into(),
            ..Default::default()
        })
        .into_response();
    }
    let found = match settlement_named(&gateway, payment_of(&request.app_trans_id).ok()).await {
        Ok(found) => found,
        Err(err) => return internal(err),
    };
    Json(match found {
        Some(claim) if claim.outcome == CallbackStatus::Success => zalopay::QueryResponse {
            return_code: 1,
            return_message: "Giao dịch thành công".into(),
            is_processing: false,
            amount: claim.amount_vnd,
            zp_trans_id: claim.provider_transaction_id.parse().unwrap_or_default(),
        },
        Some(_) => zalopay::QueryResponse {
            return_code: 2,
            return_message: "Giao dịch thất bại".into(),
            ..Default::default()
        },
        None => zalopay::QueryResponse {
            return_code: 3,
            return_message: "Giao dịch chưa thanh toán".into(),
            is_processing: true,
            ..Default::default()
        },
    })
    .into_response()
}

async fn zalopay_refund(State(gateway): State<Gateway>, body: Bytes) -> Response {
    let Some(credentials) = zalopay_credentials(&gateway) else {
        return (StatusCode::NOT_FOUND, "ZaloPay is not configured").into_response();
    };
    let Ok(request) = serde_json::from_slice::<zalopay::RefundRequest>(&body) else {
        return (StatusCode::BAD_REQUEST, "malformed").into_response();
    };
    let respond = |code: i64, message: String, refund_id: i64| {
        Json(zalopay::RefundResponse {
            return_code: code,
            return_message: message,
            refund_id,
        })
        .into_response()
    };
    if request.app_id != credentials.app_id || request.verify(&credentials.key1).is_err() {
        return respond(2, "mac không hợp lệ".into(), 0);
    }
    let payment: Result<Option<Uuid>, sqlx::Error> = sqlx::query_scalar(
        "SELECT payment_id FROM sandbox_settlements WHERE provider_transaction_id = $1",
    )
    .bind(request.zp_trans_id.to_string())
    .fetch_optional(&gateway.pool)
    .await;
    let payment_id = match payment {
        Ok(Some(id)) => id,
        Ok(None) => return respond(2, "zp_trans_id not found".into(), 0),
        Err(err) => return internal(err),
    };
    // Idempotent on our part of m_refund_id (its date prefix changes day to day).
    let key = request
        .m_refund_id
        .rsplit('_')
        .next()
        .unwrap_or(&request.m_refund_id)
        .to_owned();
    match gateway
        .provider_refund(payment_id, &key, request.amount)
        .await
    {
        Ok(decision) if decision.success => {
            let id = i64::from_str_radix(&decision.provider_refund_id[2..14], 16).unwrap_or(1);
            respond(1, "Hoàn tiền thành công".into(), id)
        }
        Ok(decision) => respond(2, decision.message, 0),
        Err(err) => internal(err),
    }
}
