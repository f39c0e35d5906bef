//! The payment providers behind one trait, [`ProviderAdapter`]: the merchant's side of
//! each provider's scheme (the wire formats themselves are in `ocop-payment-schemes`,
//! shared with the sandbox gateway, which plays the providers' side).
//!
//! Each adapter knows how to tell the shopper to pay (instructions at creation, a
//! checkout redirect when the shopper opens the pay link), how to verify and read a
//! callback into a [`ProviderReport`] (before anything reaches the domain), how to
//! answer the provider in its own format, and how to ask for a refund. Everything else
//! — freshness, judging against the intent, storing the callback with its verdict,
//! applying it — is one path for all providers (`callbacks.rs`).

pub mod momo;
pub mod sandbox;
pub mod vietqr;
pub mod vnpay;
pub mod zalopay;

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use anyhow::Context as _;
use axum::{body::Bytes, http::HeaderMap, response::Response};
use uuid::Uuid;

use crate::{
    callbacks::Reply,
    domain::{
        callback::ProviderReport,
        intent::{PaymentMethod, PaymentRequest, Provider},
    },
    store::{IntentRecord, RefundRecord},
};

pub use momo::MoMoSettings;
pub use vietqr::VietQrSettings;
pub use vnpay::VnPaySettings;
pub use zalopay::ZaloPaySettings;

/// How long one request to a provider may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// What the shopper is told at creation (`PaymentInitiated`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Instructions {
    /// Open this page (ours: it redirects to the provider's).
    PayUrl(String),
    /// Transfer to this account with this memo (VietQR).
    VietQr(VietQrInstructions),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VietQrInstructions {
    pub payload: String,
    pub image_url: String,
    pub bank_bin: String,
    pub account_number: String,
    pub account_name: String,
    pub memo: String,
}

/// A callback as received over HTTP.
#[derive(Debug, Clone, Default)]
pub struct CallbackRequest {
    /// The raw query string (VNPay's IPN is a GET).
    pub query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl CallbackRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        // A header that is not visible ASCII cannot be a signature: read it as empty.
        self.headers
            .get(name)
            .map(|value| value.to_str().unwrap_or_default())
    }

    /// What is stored for audit: the query string and/or the body.
    pub fn raw(&self) -> String {
        let body = String::from_utf8_lossy(&self.body);
        match (self.query.is_empty(), body.is_empty()) {
            (false, true) => format!("?{}", self.query),
            (false, false) => format!("?{}\n{body}", self.query),
            _ => body.into_owned(),
        }
    }
}

/// Why a callback is refused before it reaches the domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// `missing_signature`, `invalid_signature` or `malformed`.
    pub verdict: &'static str,
    pub reason: String,
    pub signature_valid: bool,
}

impl Refusal {
    pub fn from_callback_error(err: ocop_payment_schemes::CallbackError) -> Self {
        use ocop_payment_schemes::{CallbackError, SignatureError};
        match err {
            CallbackError::Signature(SignatureError::Missing) => Self {
                verdict: "missing_signature",
                reason: "the signature is missing".into(),
                signature_valid: false,
            },
            CallbackError::Signature(other) => Self {
                verdict: "invalid_signature",
                reason: other.to_string(),
                signature_valid: false,
            },
            CallbackError::Malformed(malformed) => Self::malformed(malformed.to_string()),
        }
    }

    /// The signature was valid but the content cannot be used.
    pub fn malformed(reason: impl Into<String>) -> Self {
        Self {
            verdict: "malformed",
            reason: reason.into(),
            signature_valid: true,
        }
    }
}

/// How a refund request ended at the provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundOutcome {
    Succeeded { provider_refund_id: String },
    Failed { code: String, message: String },
}

/// A provider call that did not get an answer worth keeping (network, 5xx, bad reply):
/// the caller may retry.
#[derive(Debug, thiserror::Error)]
#[error("{provider} unavailable: {reason}")]
pub struct Unavailable {
    pub provider: &'static str,
    pub reason: String,
}

impl Unavailable {
    pub fn new(provider: Provider, reason: impl std::fmt::Display) -> Self {
        Self {
            provider: provider.as_str(),
            reason: reason.to_string(),
        }
    }
}

/// One provider's merchant side.
#[tonic::async_trait]
pub trait ProviderAdapter: Send + Sync + std::fmt::Debug {
    fn provider(&self) -> Provider;

    /// Refuses a payment the provider would refuse anyway (e.g. MoMo's amount limits),
    /// before anything is sent to it: `(reason_code, message)`.
    fn precheck(&self, _amount_vnd: i64) -> Result<(), (String, String)> {
        Ok(())
    }

    /// Our page where the shopper pays `payment_id`: it shows how to pay, or sends the
    /// shopper on to the provider ([`checkout`](Self::checkout)).
    fn pay_page(&self, payment_id: Uuid) -> String;

    /// What the shopper is told when the intent is created (no I/O: this runs in the
    /// consumer's transaction): unless the provider says otherwise, our pay page.
    fn instructions(
        &self,
        payment_id: Uuid,
        _request: &PaymentRequest,
    ) -> anyhow::Result<Instructions> {
        Ok(Instructions::PayUrl(self.pay_page(payment_id)))
    }

    /// Where the shopper's browser goes to pay: may call the provider's create API.
    async fn checkout(&self, intent: &IntentRecord) -> Result<String, Unavailable>;

    /// Verifies a callback and reads it (signature first, over the raw bytes).
    fn verify(&self, request: &CallbackRequest) -> Result<ProviderReport, Refusal>;

    /// The answer in the provider's own format.
    fn respond(&self, reply: &Reply) -> Response;

    /// Asks the provider where a pending payment is, for a callback that never came:
    /// `Some((report, raw answer))` once it has an answer, `None` while it has none (or
    /// the provider has no query API).
    async fn query(
        &self,
        _intent: &IntentRecord,
    ) -> Result<Option<(ProviderReport, String)>, Unavailable> {
        Ok(None)
    }

    /// Asks the provider to give `refund` back from the captured `intent`.
    async fn refund(
        &self,
        intent: &IntentRecord,
        refund: &RefundRecord,
    ) -> Result<RefundOutcome, Unavailable>;
}

/// Every configured provider: the real ones with credentials, and the sandbox when its
/// gateway runs. A method is taken only by its own provider: never by the sandbox instead.
#[derive(Debug, Clone)]
pub struct Providers {
    adapters: Arc<BTreeMap<Provider, Arc<dyn ProviderAdapter>>>,
    /// The methods the platform offers (`PAYMENT_METHODS`).
    offered: Arc<[PaymentMethod]>,
}

/// The settings of every provider, as configured.
#[derive(Debug, Clone)]
pub struct ProviderSettings {
    /// Where shoppers, providers and the sandbox reach our HTTP port.
    pub public_url: String,
    pub sandbox_key: ocop_payment_schemes::Secret,
    pub vietqr: Option<VietQrSettings>,
    pub vnpay: Option<VnPaySettings>,
    pub momo: Option<MoMoSettings>,
    pub zalopay: Option<ZaloPaySettings>,
}

impl ProviderSettings {
    /// The sandbox gateway's base URL for `provider` (the default endpoint of every
    /// provider: the built-in sandbox plays it).
    pub fn sandbox_base(&self, provider: Provider) -> String {
        format!("{}/sandbox/{}", self.public_url, provider.as_str())
    }

    pub fn callback_url(&self, provider: Provider) -> String {
        format!("{}/callbacks/{}", self.public_url, provider.as_str())
    }

    /// Our page for a payment: redirects to the provider, or shows the result.
    pub fn pay_url(&self, payment_id: Uuid) -> String {
        pay_page(&self.public_url, payment_id)
    }
}

/// Our page for a payment, under `public_url`: the real providers' pay page (the
/// sandbox's is its own).
pub(crate) fn pay_page(public_url: &str, payment_id: Uuid) -> String {
    format!("{public_url}/pay/{payment_id}")
}

pub(crate) fn http_client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .context("build the providers' HTTP client")
}

impl Providers {
    /// The providers of `settings`, the sandbox's if `sandbox_gateway` runs, taking the
    /// `offered` methods.
    pub fn new(
        settings: &ProviderSettings,
        sandbox_gateway: bool,
        offered: &[PaymentMethod],
    ) -> anyhow::Result<Self> {
        let client = http_client()?;
        let mut adapters: BTreeMap<Provider, Arc<dyn ProviderAdapter>> = BTreeMap::new();
        if sandbox_gateway {
            adapters.insert(
                Provider::Sandbox,
                Arc::new(sandbox::SandboxAdapter::new(settings, client.clone())),
            );
        }
        if let Some(vietqr) = &settings.vietqr {
            adapters.insert(
                Provider::VietQr,
                Arc::new(vietqr::VietQrAdapter::new(vietqr.clone(), settings)),
            );
        }
        if let Some(vnpay) = &settings.vnpay {
            adapters.insert(
                Provider::VnPay,
                Arc::new(vnpay::VnPayAdapter::new(
                    vnpay.clone(),
                    settings,
                    client.clone(),
                )),
            );
        }
        if let Some(momo) = &settings.momo {
            adapters.insert(
                Provider::MoMo,
                Arc::new(momo::MoMoAdapter::new(
                    momo.clone(),
                    settings,
                    client.clone(),
                )),
            );
        }
        if let Some(zalopay) = &settings.zalopay {
            adapters.insert(
                Provider::ZaloPay,
                Arc::new(zalopay::ZaloPayAdapter::new(
                    zalopay.clone(),
                    settings,
                    client,
                )),
            );
        }
        Ok(Self {
            adapters: Arc::new(adapters),
            offered: offered.into(),
        })
    }

    pub fn get(&self, provider: Provider) -> Option<&Arc<dyn ProviderAdapter>> {
        self.adapters.get(&provider)
    }

    /// The adapter that takes `method`'s money: its own provider, if the method is
    /// offered and the provider configured; `None`: nobody takes it here.
    pub fn for_method(&self, method: PaymentMethod) -> Option<&Arc<dyn ProviderAdapter>> {
        if !self.offered.contains(&method) {
            return None;
        }
        self.adapters.get(&method.provider())
    }

    /// Each offered method, and whether this service can take it.
    pub fn offered(&self) -> impl Iterator<Item = (PaymentMethod, bool)> + '_ {
        self.offered
            .iter()
            .map(|&method| (method, self.adapters.contains_key(&method.provider())))
    }

    pub fn configured(&self) -> Vec<Provider> {
        self.adapters.keys().copied().collect()
    }
}

/// Reads a JSON answer from a provider: 2xx with a body of type `T`, else unavailable.
pub(crate) async fn read_json<T: serde::de::DeserializeOwned>(
    provider: Provider,
    sent: Result<reqwest::Response, reqwest::Error>,
) -> Result<T, Unavailable> {
    let response = sent.map_err(|err| Unavailable::new(provider, err))?;
    let status = response.status();
    let body = response
        .text()
        .await
        .map_err(|err| Unavailable::new(provider, err))?;
    if !status.is_success() {
        return Err(Unavailable::new(
            provider,
            format!("HTTP {status}: {}", truncate(&body, 200)),
        ));
    }
    serde_json::from_str(&body)
        .map_err(|err| Unavailable::new(provider, format!("unreadable answer: {err}")))
}

fn truncate(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

/// The provider's numeric id (`what`) of the captured payment, which its refund API names
/// (MoMo's `transId`, ZaloPay's `zp_trans_id`).
pub(crate) fn numeric_transaction_id(
    intent: &IntentRecord,
    provider: Provider,
    what: &str,
) -> Result<i64, Unavailable> {
    intent
        .provider_transaction_id
        .as_deref()
        .unwrap_or_default()
        .parse()
        .map_err(|_| Unavailable::new(provider, format!("the payment has no {what}")))
}

/// Our payment id from the reference a provider echoes (hyphenated or simple UUID).
pub(crate) fn payment_id_from(reference: &str) -> Result<Uuid, Refusal> {
    Uuid::parse_str(reference)
        .map_err(|_| Refusal::malformed(format!("`{reference}` does not name a payment")))
}
