//! Provider callbacks (IPN/webhooks) over HTTP: `POST /callbacks/sandbox`.
//!
//! Order matters: the signature is checked over the raw bytes before anything in the
//! body is believed; then the body is parsed, its timestamp checked, and only then is the
//! intent locked and the report judged. Every callback, refused or not, is stored with
//! its verdict; an accepted one changes the intent and writes its event in the same
//! transaction.

use std::time::Duration;

use axum::{
    Router,
    body::Bytes,
    extract::{DefaultBodyLimit, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};
use chrono::{DateTime, Utc};
use tracing::Instrument as _;
use uuid::Uuid;

use crate::{
    domain::{
        callback::{self, IntentState, ProviderReport, ProviderResult, Verdict},
        intent::{PaymentStatus, Provider},
    },
    error::PaymentError,
    sandbox::scheme::{CallbackBody, CallbackStatus, SIGNATURE_HEADER, SigningKey},
    service::{self, Move, Payments},
    store::{self, CallbackRecord},
};

/// Callbacks are small JSON documents; anything bigger is not one.
const MAX_BODY_BYTES: usize = 16 * 1024;

/// Verifies and applies provider callbacks.
#[derive(Clone, Debug)]
pub struct CallbackReceiver {
    payments: Payments,
    key: SigningKey,
    tolerance: Duration,
}

/// The answer to a provider, and the verdict stored with the callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: StatusCode,
    /// A code from the `provider_callbacks.verdict` list (or `internal`, never stored).
    pub verdict: &'static str,
    pub reason: String,
}

impl Reply {
    fn new(status: StatusCode, verdict: &'static str, reason: impl Into<String>) -> Self {
        Self {
            status,
            verdict,
            reason: reason.into(),
        }
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let result = match self.verdict {
            "accepted" => "accepted",
            "already_processed" => "already processed",
            _ => "rejected",
        };
        let body = serde_json::json!({
            "result": result,
            "verdict": self.verdict,
            "reason": self.reason,
        });
        (
            self.status,
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response()
    }
}

/// `POST /callbacks/sandbox`.
pub fn routes(receiver: CallbackReceiver) -> Router {
    Router::new()
        .route("/callbacks/sandbox", post(sandbox_callback))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(receiver)
}

async fn sandbox_callback(
    State(receiver): State<CallbackReceiver>,
    headers: HeaderMap,
    body: Bytes,
) -> Reply {
    // A header that is not visible ASCII cannot be a hex signature: verify it as empty.
    let signature = headers
        .get(SIGNATURE_HEADER)
        .map(|value| value.to_str().unwrap_or_default());
    // The callback continues the order's trace when the caller sends `traceparent` (the
    // sandbox does; an unverified header can only affect tracing, never the payment).
    let span = tracing::info_span!(
        "callback",
        otel.name = "POST /callbacks/sandbox",
        otel.kind = "server",
        http.request.method = "POST",
        http.route = "/callbacks/sandbox",
    );
    ocop_telemetry::propagation::set_parent_from_http(&span, &headers);
    receiver.receive(&body, signature).instrument(span).await
}

/// What a callback claims before it is trusted.
enum Parsed {
    Report(ProviderReport),
    Malformed(String),
}

fn parse(raw: &[u8]) -> Parsed {
    let body: CallbackBody = match serde_json::from_slice(raw) {
        Ok(body) => body,
        Err(err) => return Parsed::Malformed(format!("malformed body: {err}")),
    };
    let Ok(payment_id) = body.payment_id.parse::<Uuid>() else {
        return Parsed::Malformed(format!(
            "malformed body: payment_id `{}` is not a UUID",
            body.payment_id
        ));
    };
    if body.provider_transaction_id.trim().is_empty() {
        return Parsed::Malformed("malformed body: provider_transaction_id is empty".into());
    }
    let Some(sent_at) = DateTime::<Utc>::from_timestamp(body.timestamp, 0) else {
        return Parsed::Malformed(format!(
            "malformed body: timestamp {} is out of range",
            body.timestamp
        ));
    };
    Parsed::Report(ProviderReport {
        payment_id,
        amount_vnd: body.amount_vnd,
        result: match body.status {
            CallbackStatus::Success => ProviderResult::Success,
            CallbackStatus::Failure => ProviderResult::Failure,
        },
        provider_transaction_id: body.provider_transaction_id,
        sent_at,
    })
}

impl CallbackReceiver {
    pub fn new(payments: Payments, key: SigningKey, tolerance: Duration) -> Self {
        Self {
            payments,
            key,
            tolerance,
        }
    }

    /// Handles one callback: `raw` is the body exactly as received, `signature` the
    /// signature header if there was one.
    pub async fn receive(&self, raw: &[u8], signature: Option<&str>) -> Reply {
        match self.try_receive(raw, signature).await {
            Ok(reply) => reply,
            Err(err) => {
                // Not recorded (the database is the likely culprit); the provider retries.
                tracing::error!(
                    error = format!("{:#}", anyhow::Error::new(err)),
                    "callback could not be processed"
                );
                Reply::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error; retry later",
                )
            }
        }
    }

    async fn try_receive(
        &self,
        raw: &[u8],
        signature: Option<&str>,
    ) -> Result<Reply, PaymentError> {
        let raw_text = String::from_utf8_lossy(raw);
        let Some(signature) = signature else {
            let reply = Reply::new(
                StatusCode::BAD_REQUEST,
                "missing_signature",
                format!("missing {SIGNATURE_HEADER} header"),
            );
            return self.refuse(&raw_text, false, reply).await;
        };
        if let Err(err) = self.key.verify(raw, signature) {
            let reply = Reply::new(
                StatusCode::BAD_REQUEST,
                "invalid_signature",
                err.to_string(),
            );
            return self.refuse(&raw_text, false, reply).await;
        }
        let report = match parse(raw) {
            Parsed::Report(report) => report,
            Parsed::Malformed(reason) => {
                let reply = Reply::new(StatusCode::BAD_REQUEST, "malformed", reason);
                return self.refuse(&raw_text, true, reply).await;
            }
        };
        if let Err(stale) = callback::check_freshness(report.sent_at, Utc::now(), self.tolerance) {
            let reply = Reply::new(
                StatusCode::BAD_REQUEST,
                "stale",
                format!("stale callback: {stale}"),
            );
            return self.refuse(&raw_text, true, reply).await;
        }
        self.apply(&report, &raw_text).await
    }

    /// Stores a callback that is refused without touching an intent (untrusted, stale,
    /// or for no known payment).
    async fn refuse(
        &self,
        raw_body: &str,
        signature_valid: bool,
        reply: Reply,
    ) -> Result<Reply, PaymentError> {
        let mut conn = self.payments.pool().acquire().await?;
        store::record_callback(
            &mut conn,
            &CallbackRecord {
                provider: Provider::Sandbox,
                payment_id: None,
                provider_transaction_id: None,
                raw_body,
                signature_valid,
                verdict: reply.verdict,
                reason: &reply.reason,
                http_status: reply.status.as_u16(),
            },
        )
        .await?;
        tracing::warn!(verdict = reply.verdict, reason = %reply.reason, "provider callback refused");
        Ok(reply)
    }

    /// Judges a verified, fresh report against the locked intent and applies it.
    async fn apply(&self, report: &ProviderReport, raw_body: &str) -> Result<Reply, PaymentError> {
        let mut tx = self.payments.pool().begin().await?;
        let intent = store::intent_for_update(&mut tx, report.payment_id).await?;
        let Some(intent) = intent else {
            let reply = Reply::new(
                StatusCode::NOT_FOUND,
                "unknown_payment",
                format!("no payment with id {}", report.payment_id),
            );
            drop(tx);
            return self.refuse(raw_body, true, reply).await;
        };
        let state = IntentState {
            status: intent.status,
            amount_vnd: intent.amount_vnd,
            provider_transaction_id: intent.provider_transaction_id.clone(),
            expires_at: intent.expires_at,
        };
        let verdict = callback::judge(&state, report, Utc::now());
        let (reply, moved_to) = match verdict {
            Verdict::Settle { to, captured_vnd } => {
                service::move_intent(
                    &mut tx,
                    &intent,
                    Move {
                        to,
                        captured_vnd,
                        provider_transaction_id: Some(&report.provider_transaction_id),
                        reason: "verified provider callback",
                    },
                )
                .await?;
                let reply = Reply::new(
                    StatusCode::OK,
                    "accepted",
                    format!("payment {}", to.as_str()),
                );
                (reply, Some(to))
            }
            Verdict::AlreadyProcessed { same_transaction } => {
                let reason = if same_transaction {
                    "already processed".to_owned()
                } else {
                    // Two provider transactions for one payment: money may have been
                    // taken twice. Nothing changes here; an operator must reconcile.
                    tracing::warn!(payment_id = %intent.id, "payment already settled by another provider transaction");
                    format!(
                        "already processed: the payment was settled by another transaction ({})",
                        intent.status.as_str()
                    )
                };
                (
                    Reply::new(StatusCode::OK, "already_processed", reason),
                    None,
                )
            }
            Verdict::WrongAmount { expected, reported } => (
                Reply::new(
                    StatusCode::BAD_REQUEST,
                    "wrong_amount",
                    format!("amount_vnd {reported} does not match the payment's {expected}"),
                ),
                None,
            ),
            Verdict::Late => {
                service::move_intent(
                    &mut tx,
                    &intent,
                    Move {
                        to: PaymentStatus::Expired,
                        captured_vnd: 0,
                        provider_transaction_id: None,
                        reason: "deadline passed before the provider's callback",
                    },
                )
                .await?;
                let reply = Reply::new(
                    StatusCode::CONFLICT,
                    "late",
                    "the payment expired before the callback arrived",
                );
                (reply, Some(PaymentStatus::Expired))
            }
            Verdict::Closed(status) => (
                Reply::new(
                    StatusCode::CONFLICT,
                    "closed",
                    format!(
                        "the payment is {}; the callback changes nothing",
                        status.as_str()
                    ),
                ),
                None,
            ),
        };
        store::record_callback(
            &mut tx,
            &CallbackRecord {
                provider: intent.provider,
                payment_id: Some(intent.id),
                provider_transaction_id: Some(&report.provider_transaction_id),
                raw_body,
                signature_valid: true,
                verdict: reply.verdict,
                reason: &reply.reason,
                http_status: reply.status.as_u16(),
            },
        )
        .await?;
        tx.commit().await?;
        if let Some(outcome) = moved_to {
            service::count_outcome(intent.provider, outcome);
        }
        tracing::info!(
            order_id = %intent.order_id,
            payment_id = %intent.id,
            verdict = reply.verdict,
            "provider callback processed"
        );
        Ok(reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_with_a_bad_payment_id_or_timestamp_is_malformed() {
        let body = |payment_id: &str, timestamp: i64| {
            format!(
                r#"{{"payment_id":"{payment_id}","order_code":"QN-1","amount_vnd":1,"status":"success","provider_transaction_id":"SBX1","timestamp":{timestamp}}}"#
            )
        };
        let ok = body(&Uuid::nil().to_string(), 1_700_000_000);
        assert!(matches!(parse(ok.as_bytes()), Parsed::Report(_)));
        let Parsed::Malformed(reason) = parse(body("42", 1_700_000_000).as_bytes()) else {
            panic!("a bad payment id is malformed");
        };
        assert!(reason.contains("payment_id"), "{reason}");
        let huge = body(&Uuid::nil().to_string(), i64::MAX);
        assert!(matches!(parse(huge.as_bytes()), Parsed::Malformed(_)));
        assert!(matches!(parse(b"not json"), Parsed::Malformed(_)));
        assert!(matches!(
            parse(br#"{"payment_id":"x","status":"maybe"}"#),
            Parsed::Malformed(_)
        ));
    }
}
