//! The sandbox gateway: plays the payment providers' side — its own scheme
//! ([`scheme`]) and VietQR's, VNPay's, MoMo's and ZaloPay's, with their real signing
//! (`ocop-payment-schemes`) — for development, tests and load generation. It plays a
//! provider only while that provider's endpoint is left unset (pointing the endpoint at
//! the real provider takes the sandbox out of its way).
//!
//! When an intent has waited `SANDBOX_DELAY`, the gateway settles it with
//! `SANDBOX_OUTCOME` (`never` leaves it to the shopper or to expiry); the control API
//! ([`routes`]) settles one on demand. Settling records the outcome and a transaction id
//! in the gateway's own table, then POSTs a signed callback over real HTTP to the payment
//! service's `/callbacks/sandbox`, exactly as a provider's IPN would arrive: the callback
//! handler cannot tell the sandbox from a real provider, and there is no shortcut.
//!
//! Nothing lives only in memory: a background loop finds due intents and undelivered
//! settlements in the database (rows claimed with `SKIP LOCKED` and a lease), so
//! settlement survives restarts and runs once across replicas; callbacks the service did
//! not acknowledge are retried with backoff, like a provider's IPN.

pub(crate) mod pages;
mod play;
mod settlements;

use std::time::Duration;

use std::sync::{
    Arc,
    atomic::{AtomicU32, Ordering},
};

use anyhow::Context as _;
use chrono::{DateTime, TimeDelta, Utc};
use ocop_payment_schemes::{Secret, momo, vietqr, vnpay, zalopay};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{domain::intent::Provider, providers::ProviderSettings};
use ocop_payment_schemes::sandbox::{CallbackBody, CallbackStatus, SIGNATURE_HEADER};
pub use pages::routes;
use settlements::Claim;

/// How often the gateway looks for due intents and undelivered callbacks.
const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// Intents settled / callbacks delivered per round.
const BATCH: i64 = 50;
/// How long a claimed delivery is reserved for the replica that claimed it; a replica
/// that dies mid-delivery only delays it by this much.
const LEASE: Duration = Duration::from_secs(30);
/// Deliveries tried before the gateway gives a callback up (as providers eventually do).
const MAX_ATTEMPTS: i32 = 12;
/// How long one callback POST may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What the gateway does with an intent once `SANDBOX_DELAY` has passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Outcome {
    /// Settle it as paid.
    Success,
    /// Settle it as declined.
    Failure,
    /// Leave it to the shopper (the control API) or to expiry.
    Never,
}

impl Outcome {
    fn settles_as(self) -> Option<CallbackStatus> {
        match self {
            Self::Success => Some(CallbackStatus::Success),
            Self::Failure => Some(CallbackStatus::Failure),
            Self::Never => None,
        }
    }
}

/// The gateway's settings.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub key: Secret,
    pub delay: Duration,
    pub outcome: Outcome,
    /// Every provider's credentials and our public URL (callbacks go to
    /// `PUBLIC_URL/callbacks/{provider}`).
    pub providers: ProviderSettings,
}

impl GatewayConfig {
    /// The providers the gateway plays: the sandbox, and every configured provider whose
    /// endpoint is left to the sandbox.
    pub fn played(&self) -> Vec<Provider> {
        let p = &self.providers;
        let mut played = vec![Provider::Sandbox];
        if p.vietqr.is_some() {
            // A bank transfer has no endpoint of ours to call: always played here.
            played.push(Provider::VietQr);
        }
        if p.vnpay.as_ref().is_some_and(|v| v.pay_url.is_none()) {
            played.push(Provider::VnPay);
        }
        if p.momo.as_ref().is_some_and(|m| m.endpoint.is_none()) {
            played.push(Provider::MoMo);
        }
        if p.zalopay.as_ref().is_some_and(|z| z.endpoint.is_none()) {
            played.push(Provider::ZaloPay);
        }
        played
    }
}

/// The sandbox provider.
#[derive(Clone, Debug)]
pub struct Gateway {
    pool: PgPool,
    client: reqwest::Client,
    config: GatewayConfig,
    played: Arc<Vec<Provider>>,
    /// Refund requests to refuse next (the control API's `refunds/fail-next`).
    refunds_to_fail: Arc<AtomicU32>,
}

/// How a callback the control API sends departs from an honest one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Twist {
    /// The settlement's callback as it is (sent again: a duplicate).
    None,
    /// Sent as if a day ago (stale).
    Late,
    /// Signed with a key that is not the provider's.
    Forged,
    /// For this amount instead of the payment's (signed correctly).
    Amount(i64),
}

/// An HTTP request the gateway sends as a provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub get: bool,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// A key no provider has: what a forger signs with.
fn forged_key() -> Secret {
    Secret::from_bytes(b"forged-key-that-is-not-the-providers")
}

/// How the payment service answered one callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// It answered with this HTTP status and body.
    Answered { status: u16, body: String },
    /// It could not be reached (or did not answer in time).
    Unreachable(String),
}

impl Answer {
    fn summary(&self) -> String {
        match self {
            Self::Answered { status, body } => format!("HTTP {status}: {body}"),
            Self::Unreachable(err) => format!("unreachable: {err}"),
        }
    }
}

/// Why the control API could not settle a payment.
#[derive(Debug, thiserror::Error)]
pub enum SettleError {
    #[error("no payment with id {0}")]
    UnknownPayment(Uuid),
    #[error("the sandbox does not play {0} here (its endpoint is a real provider)")]
    NotPlayed(&'static str),
    #[error("the payment was never settled: nothing to send again")]
    NotSettled,
    #[error("the payment was already settled as {0}")]
    AlreadySettled(&'static str),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

fn status_text(status: CallbackStatus) -> &'static str {
    match status {
        CallbackStatus::Success => "success",
        CallbackStatus::Failure => "failure",
    }
}

/// A provider transaction id in the provider's own shape: `SBX` and 20 hex digits
/// (sandbox), `FT` and 14 digits (a bank reference), 8 digits (VNPay), 13 digits (MoMo,
/// ZaloPay).
fn transaction_id(provider: Provider) -> String {
    let random = Uuid::new_v4();
    let digits = random.as_u128();
    match provider {
        Provider::Sandbox => {
            let hex = random.simple().to_string().to_uppercase();
            format!("SBX{}", &hex[..20])
        }
        Provider::VietQr => format!("FT{:014}", digits % 100_000_000_000_000),
        Provider::VnPay => format!("{:08}", 10_000_000 + digits % 90_000_000),
        Provider::MoMo | Provider::ZaloPay => {
            format!("{}", 1_000_000_000_000 + digits % 9_000_000_000_000)
        }
    }
}

impl Gateway {
    pub fn new(pool: PgPool, config: GatewayConfig) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .context("build the sandbox HTTP client")?;
        Ok(Self {
            pool,
            client,
            played: Arc::new(config.played()),
            config,
            refunds_to_fail: Arc::new(AtomicU32::new(0)),
        })
    }

    fn plays(&self, provider: Provider) -> bool {
        self.played.contains(&provider)
    }

    fn played_names(&self) -> Vec<String> {
        self.played.iter().map(|p| p.as_str().to_owned()).collect()
    }

    /// Makes the next `count` refund requests fail (control API).
    pub fn fail_next_refunds(&self, count: u32) {
        self.refunds_to_fail.store(count, Ordering::SeqCst);
    }

    /// Whether this refund request is to be refused (consumes one).
    fn refuse_this_refund(&self) -> bool {
        self.refunds_to_fail
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                left.checked_sub(1)
            })
            .is_ok()
    }

    /// Settles due intents and delivers their callbacks until `stop` is cancelled.
    pub async fn run(self, stop: CancellationToken) {
        tracing::info!(outcome = ?self.config.outcome, delay = ?self.config.delay, "sandbox gateway started");
        loop {
            tokio::select! {
                _ = tokio::time::sleep(POLL_INTERVAL) => {}
                _ = stop.cancelled() => break,
            }
            if let Err(err) = self.round().await {
                tracing::warn!(
                    error = format!("{err:#}"),
                    "sandbox round failed; will retry"
                );
            }
        }
        tracing::info!("sandbox gateway stopped");
    }

    async fn round(&self) -> anyhow::Result<()> {
        if let Some(status) = self.config.outcome.settles_as() {
            let mut tx = self.pool.begin().await?;
            let due =
                settlements::due_intents(&mut tx, self.config.delay, BATCH, &self.played_names())
                    .await?;
            for (payment_id, provider) in &due {
                settlements::insert(
                    &mut tx,
                    *payment_id,
                    status_text(status),
                    &transaction_id(*provider),
                    Duration::ZERO,
                )
                .await?;
            }
            tx.commit().await?;
            if !due.is_empty() {
                tracing::debug!(count = due.len(), "sandbox settled due intents");
            }
        }
        let claims = settlements::claim_due(&self.pool, BATCH, LEASE).await?;
        for claim in &claims {
            let answer = self.deliver(claim).await;
            self.finish(claim, &answer).await?;
        }
        Ok(())
    }

    /// Settles `payment_id` now with `status` (the control API) and delivers the
    /// callback at once. A payment settles once: asking again with the same outcome
    /// delivers the same callback again; with the other outcome it is refused.
    pub async fn settle_now(
        &self,
        payment_id: Uuid,
        status: CallbackStatus,
    ) -> Result<Answer, SettleError> {
        let mut tx = self.pool.begin().await?;
        let Some(intent) = crate::store::intent(&mut tx, payment_id).await? else {
            return Err(SettleError::UnknownPayment(payment_id));
        };
        if !self.plays(intent.provider) {
            return Err(SettleError::NotPlayed(intent.provider.as_str()));
        }
        // Delivered right below; the lease keeps the background loop away meanwhile.
        settlements::insert(
            &mut tx,
            payment_id,
            status_text(status),
            &transaction_id(intent.provider),
            LEASE,
        )
        .await?;
        let claim = settlements::claim(&mut tx, payment_id)
            .await?
            .ok_or(SettleError::UnknownPayment(payment_id))?;
        if claim.outcome != status {
            // Dropping `tx` rolls the claim back: nothing changes.
            return Err(SettleError::AlreadySettled(status_text(claim.outcome)));
        }
        tx.commit().await?;
        let answer = self.deliver(&claim).await;
        self.finish(&claim, &answer).await?;
        Ok(answer)
    }

    /// Sends a callback of `payment_id` with a twist (control API): the settlement's
    /// callback again (`Twist::None`, a duplicate), or a stale, forged or wrong-amount
    /// one. Nothing is recorded on the gateway's side: it answers what the service said.
    pub async fn send_twisted(
        &self,
        payment_id: Uuid,
        twist: Twist,
    ) -> Result<Answer, SettleError> {
        let mut conn = self.pool.acquire().await?;
        let Some(intent) = crate::store::intent(&mut conn, payment_id).await? else {
            return Err(SettleError::UnknownPayment(payment_id));
        };
        if !self.plays(intent.provider) {
            return Err(SettleError::NotPlayed(intent.provider.as_str()));
        }
        let claim = match settlements::peek(&mut conn, payment_id).await? {
            Some(claim) => claim,
            None if twist == Twist::None => return Err(SettleError::NotSettled),
            None => Claim {
                payment_id,
                provider: intent.provider,
                outcome: CallbackStatus::Success,
                provider_transaction_id: transaction_id(intent.provider),
                order_code: intent.order_code.clone(),
                amount_vnd: intent.amount_vnd,
                attempts: 1,
                trace_headers: Vec::new(),
                intent_created_at: intent.created_at,
            },
        };
        drop(conn);
        Ok(self.send(&claim, twist).await)
    }

    /// Sends an arbitrary bank-transfer notification to the VietQR webhook (control
    /// API): an under- or over-payment, or a memo naming no order.
    pub async fn send_transfer(
        &self,
        amount_vnd: i64,
        description: &str,
    ) -> Result<Answer, SettleError> {
        let Some(settings) = &self.config.providers.vietqr else {
            return Err(SettleError::NotPlayed(Provider::VietQr.as_str()));
        };
        let notification = vietqr::Notification {
            transaction_id: transaction_id(Provider::VietQr),
            account_number: settings.account_number.clone(),
            amount: amount_vnd,
            currency: "VND".into(),
            description: description.to_owned(),
        };
        let body = notification.to_bytes();
        let timestamp = Utc::now().timestamp().to_string();
        let signature = vietqr::sign_webhook(&settings.webhook_secret, &timestamp, &body);
        let outgoing = Outgoing {
            get: false,
            url: self.config.providers.callback_url(Provider::VietQr),
            headers: vec![
                (vietqr::TIMESTAMP_HEADER.into(), timestamp),
                (vietqr::SIGNATURE_HEADER.into(), signature),
                ("content-type".into(), "application/json".into()),
            ],
            body,
        };
        Ok(self.transmit(&outgoing, &[]).await)
    }

    /// Builds, signs and sends the callback of `claim`. Each attempt carries a fresh
    /// timestamp (and so a fresh signature): the receiver refuses stale ones.
    async fn deliver(&self, claim: &Claim) -> Answer {
        self.send(claim, Twist::None).await
    }

    async fn send(&self, claim: &Claim, twist: Twist) -> Answer {
        match self.build(claim, twist, Utc::now()) {
            Ok(Some(outgoing)) => self.transmit(&outgoing, &claim.trace_headers).await,
            Ok(None) => Answer::Answered {
                status: 204,
                body: format!(
                    "no callback: {} does not call back for a failed payment",
                    claim.provider.as_str()
                ),
            },
            Err(err) => Answer::Unreachable(err),
        }
    }

    async fn transmit(&self, outgoing: &Outgoing, trace: &[(String, String)]) -> Answer {
        let mut request = if outgoing.get {
            self.client.get(&outgoing.url)
        } else {
            self.client.post(&outgoing.url).body(outgoing.body.clone())
        };
        for (name, value) in outgoing.headers.iter().chain(trace) {
            request = request.header(name.as_str(), value.as_str());
        }
        match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let body = response.text().await.unwrap_or_default();
                Answer::Answered { status, body }
            }
            Err(err) => Answer::Unreachable(err.to_string()),
        }
    }

    /// The callback `claim`'s provider sends, as that provider builds and signs it;
    /// `None` when the provider sends none (ZaloPay and a bank do not call back for a
    /// failed payment).
    pub fn build(
        &self,
        claim: &Claim,
        twist: Twist,
        now: DateTime<Utc>,
    ) -> Result<Option<Outgoing>, String> {
        let sent_at = if twist == Twist::Late {
            now - TimeDelta::days(1)
        } else {
            now
        };
        let amount = match twist {
            Twist::Amount(amount) => amount,
            _ => claim.amount_vnd,
        };
        let success = claim.outcome == CallbackStatus::Success;
        let providers = &self.config.providers;
        let url = providers.callback_url(claim.provider);
        let json = ("content-type".to_owned(), "application/json".to_owned());
        let not_configured = || format!("{} is not configured", claim.provider.as_str());
        Ok(Some(match claim.provider {
            Provider::Sandbox => {
                let body = CallbackBody {
                    payment_id: claim.payment_id.to_string(),
                    order_code: claim.order_code.clone(),
                    amount_vnd: amount,
                    status: claim.outcome,
                    provider_transaction_id: claim.provider_transaction_id.clone(),
                    timestamp: sent_at.timestamp(),
                }
                .to_bytes();
                let signature = if twist == Twist::Forged {
                    forged_key().hmac_sha256_hex(&body)
                } else {
                    self.config.key.hmac_sha256_hex(&body)
                };
                Outgoing {
                    get: false,
                    url,
                    headers: vec![(SIGNATURE_HEADER.into(), signature), json],
                    body,
                }
            }
            Provider::VietQr => {
                let settings = providers.vietqr.as_ref().ok_or_else(not_configured)?;
                if !success {
                    return Ok(None);
                }
                let body = vietqr::Notification {
                    transaction_id: claim.provider_transaction_id.clone(),
                    account_number: settings.account_number.clone(),
                    amount,
                    currency: "VND".into(),
                    description: format!("{} chuyen khoan", claim.order_code),
                }
                .to_bytes();
                let timestamp = sent_at.timestamp().to_string();
                let key = if twist == Twist::Forged {
                    forged_key()
                } else {
                    settings.webhook_secret.clone()
                };
                let signature = vietqr::sign_webhook(&key, &timestamp, &body);
                Outgoing {
                    get: false,
                    url,
                    headers: vec![
                        (vietqr::TIMESTAMP_HEADER.into(), timestamp),
                        (vietqr::SIGNATURE_HEADER.into(), signature),
                        json,
                    ],
                    body,
                }
            }
            Provider::VnPay => {
                let settings = providers.vnpay.as_ref().ok_or_else(not_configured)?;
                let result = vnpay_result(claim, &settings.tmn_code, amount, sent_at);
                let key = if twist == Twist::Forged {
                    forged_key()
                } else {
                    settings.hash_secret.clone()
                };
                Outgoing {
                    get: true,
                    url: format!("{url}?{}", result.signed_query(&key)),
                    headers: Vec::new(),
                    body: Vec::new(),
                }
            }
            Provider::MoMo => {
                let settings = providers.momo.as_ref().ok_or_else(not_configured)?;
                let credentials = momo::Credentials {
                    partner_code: settings.partner_code.clone(),
                    access_key: settings.access_key.clone(),
                    secret_key: if twist == Twist::Forged {
                        forged_key()
                    } else {
                        settings.secret_key.clone()
                    },
                };
                let ipn = momo::Ipn {
                    partner_code: settings.partner_code.clone(),
                    order_id: claim.payment_id.to_string(),
                    request_id: claim.payment_id.to_string(),
                    amount,
                    order_info: format!("Thanh toan don hang {}", claim.order_code),
                    order_type: "momo_wallet".into(),
                    trans_id: claim.provider_transaction_id.parse().unwrap_or_default(),
                    result_code: if success { 0 } else { 1006 },
                    message: if success {
                        "Successful.".into()
                    } else {
                        "Transaction denied by user.".into()
                    },
                    pay_type: "qr".into(),
                    response_time: sent_at.timestamp_millis(),
                    extra_data: String::new(),
                    signature: String::new(),
                }
                .sign(&credentials);
                Outgoing {
                    get: false,
                    url,
                    headers: vec![json],
                    body: ipn.to_bytes(),
                }
            }
            Provider::ZaloPay => {
                let settings = providers.zalopay.as_ref().ok_or_else(not_configured)?;
                if !success {
                    return Ok(None);
                }
                let data = zalopay::CallbackData {
                    app_id: settings.app_id,
                    app_trans_id: zalopay::app_trans_id(
                        claim.intent_created_at,
                        &claim.payment_id.simple().to_string(),
                    )?,
                    app_time: sent_at.timestamp_millis(),
                    app_user: "ocop-market".into(),
                    amount,
                    embed_data: "{}".into(),
                    item: "[]".into(),
                    zp_trans_id: claim.provider_transaction_id.parse().unwrap_or_default(),
                    server_time: sent_at.timestamp_millis(),
                    channel: 38,
                    merchant_user_id: String::new(),
                    user_fee_amount: 0,
                    discount_amount: 0,
                };
                let key = if twist == Twist::Forged {
                    forged_key()
                } else {
                    settings.key2.clone()
                };
                Outgoing {
                    get: false,
                    url,
                    headers: vec![json],
                    body: zalopay::Callback::signed(&data, &key).to_bytes(),
                }
            }
        }))
    }

    /// Where the shopper's browser goes back to after paying on the sandbox page: the
    /// shop's return URL with the provider's (signed) parameters, as the provider does.
    pub fn return_url(&self, claim: &Claim) -> String {
        let providers = &self.config.providers;
        match (claim.provider, &providers.vnpay) {
            (Provider::VnPay, Some(settings)) => {
                let result = vnpay_result(claim, &settings.tmn_code, claim.amount_vnd, Utc::now());
                format!(
                    "{}/payments/vnpay/return?{}",
                    providers.public_url,
                    result.signed_query(&settings.hash_secret)
                )
            }
            _ => providers.pay_url(claim.payment_id),
        }
    }

    /// Records how the delivery went: done on 2xx, given up on another definitive
    /// answer (4xx) or after `MAX_ATTEMPTS`, retried with backoff otherwise.
    async fn finish(&self, claim: &Claim, answer: &Answer) -> Result<(), sqlx::Error> {
        let summary = answer.summary();
        let next = match answer {
            Answer::Answered { status, .. } if (200..300).contains(status) => {
                settlements::Next::Delivered
            }
            Answer::Answered { status, .. } if *status < 500 => settlements::Next::Abandoned,
            _ if claim.attempts >= MAX_ATTEMPTS => settlements::Next::Abandoned,
            _ => settlements::Next::RetryIn(backoff(claim.attempts)),
        };
        match next {
            settlements::Next::Delivered => {
                tracing::debug!(payment_id = %claim.payment_id, "sandbox callback acknowledged");
            }
            settlements::Next::Abandoned => {
                tracing::warn!(payment_id = %claim.payment_id, answer = %summary, "sandbox callback given up");
            }
            settlements::Next::RetryIn(after) => {
                tracing::warn!(payment_id = %claim.payment_id, answer = %summary, retry_in = ?after, "sandbox callback not acknowledged");
            }
        }
        settlements::finish(&self.pool, claim.payment_id, next, &summary).await
    }
}

/// What VNPay reports for `claim` (IPN and return URL).
fn vnpay_result(
    claim: &Claim,
    tmn_code: &str,
    amount_vnd: i64,
    pay_date: DateTime<Utc>,
) -> vnpay::PaymentResult {
    let success = claim.outcome == CallbackStatus::Success;
    vnpay::PaymentResult {
        tmn_code: tmn_code.to_owned(),
        txn_ref: claim.payment_id.simple().to_string(),
        amount_vnd,
        // 24: the customer cancelled the transaction.
        response_code: if success { "00" } else { "24" }.into(),
        transaction_status: if success { "00" } else { "02" }.into(),
        transaction_no: claim.provider_transaction_id.clone(),
        bank_code: "NCB".into(),
        pay_date,
        order_info: format!("Thanh toan don hang {}", claim.order_code),
    }
}

/// 0.5 s, 1 s, 2 s, … up to a minute.
fn backoff(attempts: i32) -> Duration {
    let exponent = u32::try_from(attempts.saturating_sub(1))
        .unwrap_or(0)
        .min(7);
    (Duration::from_millis(500) * 2u32.pow(exponent)).min(Duration::from_secs(60))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transaction_ids_have_each_providers_shape_and_are_unique() {
        let first = transaction_id(Provider::Sandbox);
        assert!(first.starts_with("SBX"), "{first}");
        assert_eq!(first.len(), 23);
        assert_ne!(first, transaction_id(Provider::Sandbox));
        assert_eq!(transaction_id(Provider::VnPay).len(), 8);
        assert!(transaction_id(Provider::MoMo).parse::<i64>().is_ok());
        assert!(transaction_id(Provider::ZaloPay).parse::<i64>().is_ok());
        assert!(transaction_id(Provider::VietQr).starts_with("FT"));
    }

    #[test]
    fn backoff_doubles_up_to_a_minute() {
        assert_eq!(backoff(1), Duration::from_millis(500));
        assert_eq!(backoff(2), Duration::from_secs(1));
        assert_eq!(backoff(8), Duration::from_secs(60));
        assert_eq!(backoff(40), Duration::from_secs(60));
    }

    #[test]
    fn never_settles_nothing_by_itself() {
        assert_eq!(Outcome::Never.settles_as(), None);
        assert_eq!(Outcome::Failure.settles_as(), Some(CallbackStatus::Failure));
    }
}
