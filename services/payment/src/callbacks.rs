//! Provider callbacks (IPN/webhooks) over HTTP: `GET|POST /callbacks/{provider}`, one
//! path for every provider: verify → check freshness → judge → apply.
//!
//! Order matters: the provider's adapter checks the signature over the raw bytes before
//! anything in the callback is believed, and reads it into a domain report; then its
//! timestamp is checked, and only then is the intent locked and the report judged.
//! Every callback, refused or not, is stored with its verdict; an accepted one changes
//! the intent and writes its event (and its ledger entries) in the same transaction.
//! The answer is in the provider's own format (the adapter's `respond`).

use std::{net::SocketAddr, time::Duration};

use axum::{
    Extension, Router,
    body::Bytes,
    extract::{
        ConnectInfo, DefaultBodyLimit, Path, RawQuery, Request, State, rejection::BytesRejection,
    },
    http::{HeaderMap, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
};
use chrono::Utc;
use ocop_grpc_kit::rate_limit::{RateLimiter, TrustedProxies};
use tracing::Instrument as _;

use crate::{
    domain::{
        callback::{self, IntentState, PaymentRef, ProviderReport, ProviderResult, VND, Verdict},
        intent::{PaymentStatus, Provider},
    },
    error::PaymentError,
    providers::{CallbackRequest, ProviderAdapter, Providers},
    service::{self, Move, Payments},
    store::{self, CallbackRecord},
};

/// What the callback endpoints accept before any callback is read: callbacks are small
/// documents and come from a few provider addresses at the pace of payments.
#[derive(Clone, Debug)]
pub struct CallbackLimits {
    /// A bigger body is answered 413 unread (`CALLBACK_MAX_BODY`).
    pub max_body_bytes: usize,
    /// Per peer IP address; beyond it 429 with `Retry-After` (`CALLBACK_RATE`,
    /// `CALLBACK_BURST`).
    pub per_address: RateLimiter,
    /// Whose `X-Forwarded-For` names the caller (`TRUSTED_PROXIES`).
    pub proxies: TrustedProxies,
}

/// Verifies and applies provider callbacks.
#[derive(Clone, Debug)]
pub struct CallbackReceiver {
    payments: Payments,
    providers: Providers,
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

/// `GET|POST /callbacks/{provider}` (VNPay's IPN is a GET), within `limits`.
pub fn routes(receiver: CallbackReceiver, limits: CallbackLimits) -> Router {
    Router::new()
        .route(
            "/callbacks/{provider}",
            get(provider_callback).post(provider_callback),
        )
        .route_layer(middleware::from_fn_with_state(limits.clone(), limit_rate))
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(Extension(MaxBody(limits.max_body_bytes)))
        .with_state(receiver)
}

/// The body limit, for the 413's reason.
#[derive(Clone, Copy, Debug)]
struct MaxBody(usize);

/// A refusal before any callback is read (not stored: nothing in it was believed).
fn refused(status: StatusCode, verdict: &str, reason: String) -> Response {
    let body = serde_json::json!({ "result": "rejected", "verdict": verdict, "reason": reason });
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// 429 with `Retry-After` once the peer address has used its share.
async fn limit_rate(
    State(limits): State<CallbackLimits>,
    request: Request,
    next: Next,
) -> Response {
    let forwarded_for = request
        .headers()
        .get("x-forwarded-for")
        .and_then(|value| value.to_str().ok());
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip());
    let client = limits.proxies.client_key(peer, forwarded_for);
    match limits.per_address.check(&client) {
        Ok(()) => next.run(request).await,
        Err(wait) => {
            let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
            let mut response = refused(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("too many callbacks from this address; retry in {seconds} s"),
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(seconds));
            response
        }
    }
}

async fn provider_callback(
    State(receiver): State<CallbackReceiver>,
    Path(provider): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    Extension(MaxBody(max_body)): Extension<MaxBody>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            metrics::counter!("ocop_limit_refusals_total", "limit" => "callback_body").increment(1);
            return refused(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!("the body is larger than {max_body} bytes; no callback is that big"),
            );
        }
        Err(rejection) => return rejection.into_response(),
    };
    let Some(adapter) = Provider::parse(&provider).and_then(|p| receiver.providers.get(p)) else {
        return (StatusCode::NOT_FOUND, "no such provider\n").into_response();
    };
    let route = format!("/callbacks/{}", adapter.provider().as_str());
    // The callback continues the order's trace when the caller sends `traceparent` (the
    // sandbox does; an unverified header can only affect tracing, never the payment).
    let span = tracing::info_span!(
        "callback",
        otel.name = format!("POST {route}"),
        otel.kind = "server",
        http.request.method = "POST",
        http.route = route,
        provider = adapter.provider().as_str(),
    );
    ocop_telemetry::propagation::set_parent_from_http(&span, &headers);
    let request = CallbackRequest {
        query: query.unwrap_or_default(),
        headers,
        body,
    };
    let adapter = adapter.clone();
    let reply = receiver
        .receive(adapter.as_ref(), &request)
        .instrument(span)
        .await;
    adapter.respond(&reply)
}

impl CallbackReceiver {
    pub fn new(payments: Payments, providers: Providers, tolerance: Duration) -> Self {
        Self {
            payments,
            providers,
            tolerance,
        }
    }

    /// Handles one callback for `adapter`'s provider.
    pub async fn receive(&self, adapter: &dyn ProviderAdapter, request: &CallbackRequest) -> Reply {
        let provider = adapter.provider();
        let reply = match self.try_receive(adapter, request).await {
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
        };
        metrics::counter!(
            "ocop_callbacks_total",
            "provider" => provider.as_str(),
            "verdict" => reply.verdict,
        )
        .increment(1);
        reply
    }

    async fn try_receive(
        &self,
        adapter: &dyn ProviderAdapter,
        request: &CallbackRequest,
    ) -> Result<Reply, PaymentError> {
        let provider = adapter.provider();
        let raw_text = request.raw();
        let report = match adapter.verify(request) {
            Ok(report) => report,
            Err(refusal) => {
                let reply = Reply::new(StatusCode::BAD_REQUEST, refusal.verdict, refusal.reason);
                return self
                    .refuse(provider, &raw_text, refusal.signature_valid, reply)
                    .await;
            }
        };
        if let Err(stale) = callback::check_freshness(report.sent_at, Utc::now(), self.tolerance) {
            let reply = Reply::new(
                StatusCode::BAD_REQUEST,
                "stale",
                format!("stale callback: {stale}"),
            );
            // Correctly signed but too old to act on: kept with its report, so a success
            // (money taken) is flagged for an operator rather than silently refused.
            return self
                .refuse_report(provider, Some(&report), &raw_text, true, reply)
                .await;
        }
        self.apply(provider, &report, &raw_text).await
    }

    /// Asks the providers about pending payments whose callback has not come within
    /// `after` (asking each again at most every `every`), and applies their answers
    /// through the same judge → apply path as a callback (stored in
    /// `provider_callbacks` with the raw answer, prefixed `query:`). Returns how many
    /// answers were applied.
    pub async fn reconcile(&self, after: Duration, every: Duration) -> Result<usize, PaymentError> {
        let millis = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let queried: Vec<String> = self
            .providers
            .configured()
            .into_iter()
            .filter(|p| *p != Provider::Sandbox)
            .map(|p| p.as_str().to_owned())
            .collect();
        let due = {
            let mut conn = self.payments.pool().acquire().await?;
            store::claim_queries(&mut conn, &queried, millis(after), millis(every), 20).await?
        };
        let mut applied = 0;
        for intent in &due {
            let Some(adapter) = self.providers.get(intent.provider) else {
                continue;
            };
            match adapter.query(intent).await {
                Ok(Some((report, raw))) => {
                    let reply = self
                        .apply(intent.provider, &report, &format!("query: {raw}"))
                        .await?;
                    tracing::info!(payment_id = %intent.id, verdict = reply.verdict, "provider query answered");
                    applied += 1;
                }
                Ok(None) => {}
                Err(err) => {
                    tracing::warn!(payment_id = %intent.id, error = %err, "provider query failed; will ask again");
                }
            }
        }
        Ok(applied)
    }

    /// Stores a callback that is refused without touching an intent (untrusted, stale,
    /// or for no known payment).
    async fn refuse(
        &self,
        provider: Provider,
        raw_body: &str,
        signature_valid: bool,
        reply: Reply,
    ) -> Result<Reply, PaymentError> {
        self.refuse_report(provider, None, raw_body, signature_valid, reply)
            .await
    }

    /// [`Self::refuse`] for a verified report (kept with its transaction id, and flagged
    /// when it says money was taken).
    async fn refuse_report(
        &self,
        provider: Provider,
        report: Option<&ProviderReport>,
        raw_body: &str,
        signature_valid: bool,
        reply: Reply,
    ) -> Result<Reply, PaymentError> {
        let flagged = report.is_some_and(|r| r.result == ProviderResult::Success);
        let mut conn = self.payments.pool().acquire().await?;
        store::record_callback(
            &mut conn,
            &CallbackRecord {
                provider,
                payment_id: None,
                provider_transaction_id: report.map(|r| r.provider_transaction_id.as_str()),
                raw_body,
                signature_valid,
                verdict: reply.verdict,
                reason: &reply.reason,
                http_status: reply.status.as_u16(),
                flagged,
            },
        )
        .await?;
        if flagged {
            count_flagged(provider);
        }
        tracing::warn!(verdict = reply.verdict, reason = %reply.reason, "provider callback refused");
        Ok(reply)
    }

    /// Judges a verified, fresh report against the locked intent and applies it.
    async fn apply(
        &self,
        provider: Provider,
        report: &ProviderReport,
        raw_body: &str,
    ) -> Result<Reply, PaymentError> {
        let mut tx = self.payments.pool().begin().await?;
        let intent = match &report.payment {
            PaymentRef::Id(id) => store::intent_for_update(&mut tx, *id).await?,
            PaymentRef::Memo(memo) => {
                store::vietqr_intent_by_memo_for_update(&mut tx, memo).await?
            }
        };
        // A provider speaks only for its own payments.
        let Some(intent) = intent.filter(|intent| intent.provider == provider) else {
            let reply = Reply::new(
                StatusCode::NOT_FOUND,
                "unknown_payment",
                match &report.payment {
                    PaymentRef::Id(id) => format!("no {} payment with id {id}", provider.as_str()),
                    PaymentRef::Memo(memo) => {
                        format!("no {} payment matches the memo `{memo}`", provider.as_str())
                    }
                },
            );
            drop(tx);
            return self
                .refuse_report(provider, Some(report), raw_body, true, reply)
                .await;
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
                        failure: (to == PaymentStatus::Failed).then_some((
                            report.result_code.as_str(),
                            if report.message.is_empty() {
                                "the provider declined the payment"
                            } else {
                                report.message.as_str()
                            },
                        )),
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
            Verdict::WrongAmount {
                expected,
                reported,
                currency,
            } => (
                Reply::new(
                    StatusCode::BAD_REQUEST,
                    "wrong_amount",
                    format!("{reported} {currency} does not match the payment's {expected} VND"),
                ),
                None,
            ),
            Verdict::Late => {
                let expired = service::move_intent(
                    &mut tx,
                    &intent,
                    Move {
                        to: PaymentStatus::Expired,
                        captured_vnd: 0,
                        provider_transaction_id: None,
                        reason: "deadline passed before the provider's callback",
                        failure: None,
                    },
                )
                .await?;
                // The amount was judged before the deadline: a success is money to give back.
                let refunded = report.result == ProviderResult::Success
                    && service::refund_late_capture(
                        &mut tx,
                        &expired,
                        report.amount_vnd,
                        &report.provider_transaction_id,
                    )
                    .await?;
                let reply = Reply::new(
                    StatusCode::CONFLICT,
                    "late",
                    if refunded {
                        "the payment expired before the callback arrived; the money is refunded"
                    } else {
                        "the payment expired before the callback arrived"
                    },
                );
                (reply, Some(PaymentStatus::Expired))
            }
            Verdict::Closed(status) => {
                let refunded = report.result == ProviderResult::Success
                    && report.amount_vnd == intent.amount_vnd
                    && report.currency == VND
                    && service::refund_late_capture(
                        &mut tx,
                        &intent,
                        report.amount_vnd,
                        &report.provider_transaction_id,
                    )
                    .await?;
                let reply = Reply::new(
                    StatusCode::CONFLICT,
                    "closed",
                    if refunded {
                        format!("the payment is {}; the money is refunded", status.as_str())
                    } else {
                        format!(
                            "the payment is {}; the callback changes nothing",
                            status.as_str()
                        )
                    },
                );
                (reply, None)
            }
        };
        // Money reported taken but not applied (or applied by another transaction):
        // an operator must reconcile it.
        let flagged = report.result == ProviderResult::Success
            && match reply.verdict {
                "accepted" => false,
                "already_processed" => {
                    intent.provider_transaction_id.as_deref()
                        != Some(report.provider_transaction_id.as_str())
                }
                _ => true,
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
                flagged,
            },
        )
        .await?;
        tx.commit().await?;
        if flagged {
            count_flagged(intent.provider);
        }
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

/// `ocop_callbacks_flagged_total`: a provider said money was taken and nothing applied it
/// (too old, unknown payment, wrong amount, already paid by another transaction); an
/// operator must reconcile each one (`provider_callbacks.flagged`).
fn count_flagged(provider: Provider) {
    metrics::counter!("ocop_callbacks_flagged_total", "provider" => provider.as_str()).increment(1);
}
