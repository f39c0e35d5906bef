//! The payment service's settings: flags or environment variables, checked at start-up.

use std::{net::SocketAddr, time::Duration};

use ocop_events::{DatabaseConfig, KafkaConfig, retention::RetentionConfig};
use ocop_grpc_kit::{
    auth::AuthConfig,
    rate_limit::TrustedProxies,
    server::{ReflectionConfig, ShutdownConfig},
};
use ocop_telemetry::TelemetryConfig;

use ocop_payment_schemes::Secret;

use crate::{
    domain::intent::PaymentMethod,
    providers::{MoMoSettings, ProviderSettings, VietQrSettings, VnPaySettings, ZaloPaySettings},
    sandbox::Outcome,
};

/// Everything the payment service needs to run. A bad value stops start-up with a
/// message naming the flag and its variable.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "payment", version, about = "ocop-market payment service")]
pub struct Config {
    #[command(flatten)]
    pub database: DatabaseConfig,

    /// gRPC listen address (port 0 picks a free port).
    #[arg(long, env = "GRPC_ADDR", default_value = "0.0.0.0:50053")]
    pub grpc_addr: SocketAddr,

    /// HTTP listen address: `/metrics`, provider callbacks and the sandbox pages.
    #[arg(long, env = "HTTP_ADDR", default_value = "0.0.0.0:9103")]
    pub http_addr: SocketAddr,

    /// Base URL at which shoppers and the sandbox reach the HTTP address (pay URLs and
    /// callbacks are built from it); default `http://127.0.0.1:<HTTP port>`.
    #[arg(long, env = "PUBLIC_URL", value_parser = parse_public_url)]
    pub public_url: Option<String>,

    /// Secret shared with the sandbox gateway to sign callbacks (HMAC-SHA256, at least
    /// 16 bytes; environment only).
    #[arg(long, env = "SANDBOX_SECRET", hide_env_values = true, value_parser = ocop_payment_schemes::Secret::parse)]
    pub sandbox_secret: ocop_payment_schemes::Secret,

    /// Run the sandbox gateway (its `/sandbox/*` pages, control API and the providers'
    /// APIs it plays, and its settlement loop). Development, tests and load runs only:
    /// with it on, anyone who reaches `/sandbox/*` can settle the payments it plays —
    /// including VietQR's, signed with `VIETQR_WEBHOOK_SECRET`. Turn it off in
    /// production (`SANDBOX_GATEWAY=false`).
    #[arg(long, env = "SANDBOX_GATEWAY", default_value_t = true, action = clap::ArgAction::Set)]
    pub sandbox_gateway: bool,

    /// How long the sandbox waits before settling a new payment by itself.
    #[arg(long, env = "SANDBOX_DELAY", default_value = "2s", value_parser = humantime::parse_duration)]
    pub sandbox_delay: Duration,

    /// How the sandbox settles payments by itself: `success`, `failure` or `never`.
    #[arg(long, env = "SANDBOX_OUTCOME", value_enum, default_value_t = Outcome::Success)]
    pub sandbox_outcome: Outcome,

    /// Oldest (or furthest in the future) callback timestamp accepted.
    #[arg(long, env = "CALLBACK_TOLERANCE", default_value = "5m", value_parser = humantime::parse_duration)]
    pub callback_tolerance: Duration,

    /// Largest provider callback body accepted, in bytes; a bigger one is answered 413.
    #[arg(long, env = "CALLBACK_MAX_BODY", default_value_t = 16 * 1024)]
    pub callback_max_body: usize,

    /// Provider callbacks a second per peer IP address (per replica), beyond which they
    /// are answered 429 with `Retry-After`; 0: no limit.
    #[arg(long, env = "CALLBACK_RATE", default_value_t = 50.0)]
    pub callback_rate: f64,

    /// How long stored provider callbacks are kept (flagged ones, which await a
    /// reconciliation, are kept until an operator deals with them).
    #[arg(long, env = "CALLBACK_RETENTION", default_value = "90d", value_parser = humantime::parse_duration)]
    pub callback_retention: Duration,

    /// Provider callbacks one address may send at once after a quiet spell.
    #[arg(long, env = "CALLBACK_BURST", default_value_t = 200)]
    pub callback_burst: u32,

    #[command(flatten)]
    pub proxies: TrustedProxies,

    #[command(flatten)]
    pub providers: ProviderConfig,

    /// The payment methods the platform offers (comma-separated: vietqr, vnpay, momo,
    /// zalopay, sandbox); the order service's PAYMENT_METHODS must say the same. A method
    /// is taken only by its own provider (its credentials set; `sandbox`: the sandbox
    /// gateway on): the service does not start while a listed method cannot be taken.
    #[arg(long, env = "PAYMENT_METHODS", value_delimiter = ',',
          default_value = "vietqr,vnpay,momo,zalopay", value_parser = parse_payment_method)]
    pub payment_methods: Vec<PaymentMethod>,

    /// Ask the provider about a pending payment whose callback has not come this long
    /// after its creation (ZaloPay's query; ZaloPay calls back only for paid orders).
    #[arg(long, env = "PROVIDER_QUERY_AFTER", default_value = "2m", value_parser = humantime::parse_duration)]
    pub provider_query_after: Duration,

    /// Ask again at most this often about the same payment.
    #[arg(long, env = "PROVIDER_QUERY_INTERVAL", default_value = "1m", value_parser = humantime::parse_duration)]
    pub provider_query_interval: Duration,

    /// How often to look for pending payments past their deadline.
    #[arg(long, env = "EXPIRY_SWEEP_INTERVAL", default_value = "1s", value_parser = humantime::parse_duration)]
    pub expiry_sweep_interval: Duration,

    #[command(flatten)]
    pub retention: RetentionConfig,

    #[command(flatten)]
    pub shutdown: ShutdownConfig,

    #[command(flatten)]
    pub reflection: ReflectionConfig,

    #[command(flatten)]
    pub kafka: KafkaConfig,

    #[command(flatten)]
    pub auth: AuthConfig,

    #[command(flatten)]
    pub telemetry: TelemetryConfig,
}

/// The real providers' credentials and endpoints. A provider is used when all its
/// credentials are set (a method whose provider has none fails at once); an endpoint
/// left unset is the built-in sandbox gateway playing that provider. Secrets are environment-only in practice and never printed.
#[derive(Debug, Clone, clap::Args)]
pub struct ProviderConfig {
    /// VietQR: the receiving bank's NAPAS BIN (6 digits), e.g. 970436.
    #[arg(long, env = "VIETQR_BANK_BIN")]
    pub vietqr_bank_bin: Option<String>,
    /// VietQR: the receiving account number.
    #[arg(long, env = "VIETQR_ACCOUNT_NUMBER")]
    pub vietqr_account_number: Option<String>,
    /// VietQR: the account holder's name, shown to the shopper.
    #[arg(long, env = "VIETQR_ACCOUNT_NAME", default_value = "")]
    pub vietqr_account_name: String,
    /// VietQR: the secret of the bank's transfer-notification webhook (HMAC-SHA256).
    #[arg(long, env = "VIETQR_WEBHOOK_SECRET", hide_env_values = true, value_parser = Secret::parse)]
    pub vietqr_webhook_secret: Option<Secret>,

    /// VNPay: the terminal (merchant) code.
    #[arg(long, env = "VNPAY_TMN_CODE")]
    pub vnpay_tmn_code: Option<String>,
    /// VNPay: the hash secret (HMAC-SHA512).
    #[arg(long, env = "VNPAY_HASH_SECRET", hide_env_values = true, value_parser = Secret::parse)]
    pub vnpay_hash_secret: Option<Secret>,
    /// VNPay: the payment page, e.g. https://sandbox.vnpayment.vn/paymentv2/vpcpay.html
    /// (default: the sandbox gateway's).
    #[arg(long, env = "VNPAY_PAY_URL", value_parser = parse_public_url)]
    pub vnpay_pay_url: Option<String>,
    /// VNPay: the merchant API (refund, querydr), e.g.
    /// https://sandbox.vnpayment.vn/merchant_webapi/api/transaction (default: the
    /// sandbox gateway's).
    #[arg(long, env = "VNPAY_API_URL", value_parser = parse_public_url)]
    pub vnpay_api_url: Option<String>,

    /// MoMo: the partner code.
    #[arg(long, env = "MOMO_PARTNER_CODE")]
    pub momo_partner_code: Option<String>,
    /// MoMo: the access key (an identifier sent with every request).
    #[arg(long, env = "MOMO_ACCESS_KEY")]
    pub momo_access_key: Option<String>,
    /// MoMo: the secret key (HMAC-SHA256).
    #[arg(long, env = "MOMO_SECRET_KEY", hide_env_values = true, value_parser = Secret::parse)]
    pub momo_secret_key: Option<Secret>,
    /// MoMo: the API base, e.g. https://test-payment.momo.vn (default: the sandbox
    /// gateway's).
    #[arg(long, env = "MOMO_ENDPOINT", value_parser = parse_public_url)]
    pub momo_endpoint: Option<String>,

    /// ZaloPay: the app id.
    #[arg(long, env = "ZALOPAY_APP_ID")]
    pub zalopay_app_id: Option<i64>,
    /// ZaloPay: key1 (MACs our requests).
    #[arg(long, env = "ZALOPAY_KEY1", hide_env_values = true, value_parser = Secret::parse)]
    pub zalopay_key1: Option<Secret>,
    /// ZaloPay: key2 (verifies its callbacks).
    #[arg(long, env = "ZALOPAY_KEY2", hide_env_values = true, value_parser = Secret::parse)]
    pub zalopay_key2: Option<Secret>,
    /// ZaloPay: the API base, e.g. https://sb-openapi.zalopay.vn (default: the sandbox
    /// gateway's).
    #[arg(long, env = "ZALOPAY_ENDPOINT", value_parser = parse_public_url)]
    pub zalopay_endpoint: Option<String>,
}

/// All or nothing: a provider with some credentials but not all is a mistake.
fn complete<T>(
    provider: &str,
    parts: &[(&str, bool)],
    build: impl FnOnce() -> T,
) -> anyhow::Result<Option<T>> {
    let missing: Vec<&str> = parts
        .iter()
        .filter(|(_, set)| !set)
        .map(|(name, _)| *name)
        .collect();
    if missing.len() == parts.len() {
        return Ok(None);
    }
    if !missing.is_empty() {
        anyhow::bail!(
            "{provider} is partly configured: set {} too (or none of its settings)",
            missing.join(", ")
        );
    }
    Ok(Some(build()))
}

impl ProviderConfig {
    /// The providers' settings, checked: each provider is fully configured or not at all.
    pub fn settings(
        &self,
        public_url: &str,
        sandbox_key: ocop_payment_schemes::Secret,
    ) -> anyhow::Result<ProviderSettings> {
        let vietqr = complete(
            "VietQR",
            &[
                ("VIETQR_BANK_BIN", self.vietqr_bank_bin.is_some()),
                (
                    "VIETQR_ACCOUNT_NUMBER",
                    self.vietqr_account_number.is_some(),
                ),
                (
                    "VIETQR_WEBHOOK_SECRET",
                    self.vietqr_webhook_secret.is_some(),
                ),
            ],
            || VietQrSettings {
                bank_bin: self.vietqr_bank_bin.clone().unwrap_or_default(),
                account_number: self.vietqr_account_number.clone().unwrap_or_default(),
                account_name: self.vietqr_account_name.clone(),
                webhook_secret: self.vietqr_webhook_secret.clone().expect("checked"),
            },
        )?;
        if let Some(vietqr) = &vietqr {
            // Refuse a bank BIN or account the payload cannot carry now, not per order.
            ocop_payment_schemes::vietqr::Transfer {
                bank_bin: vietqr.bank_bin.clone(),
                account_number: vietqr.account_number.clone(),
                amount_vnd: None,
                memo: "CHECK".into(),
            }
            .payload()
            .map_err(|err| anyhow::anyhow!("VIETQR_BANK_BIN / VIETQR_ACCOUNT_NUMBER: {err}"))?;
        }
        let vnpay = complete(
            "VNPay",
            &[
                ("VNPAY_TMN_CODE", self.vnpay_tmn_code.is_some()),
                ("VNPAY_HASH_SECRET", self.vnpay_hash_secret.is_some()),
            ],
            || VnPaySettings {
                tmn_code: self.vnpay_tmn_code.clone().unwrap_or_default(),
                hash_secret: self.vnpay_hash_secret.clone().expect("checked"),
                pay_url: self.vnpay_pay_url.clone(),
                api_url: self.vnpay_api_url.clone(),
            },
        )?;
        let momo = complete(
            "MoMo",
            &[
                ("MOMO_PARTNER_CODE", self.momo_partner_code.is_some()),
                ("MOMO_ACCESS_KEY", self.momo_access_key.is_some()),
                ("MOMO_SECRET_KEY", self.momo_secret_key.is_some()),
            ],
            || MoMoSettings {
                partner_code: self.momo_partner_code.clone().unwrap_or_default(),
                access_key: self.momo_access_key.clone().unwrap_or_default(),
                secret_key: self.momo_secret_key.clone().expect("checked"),
                endpoint: self.momo_endpoint.clone(),
            },
        )?;
        let zalopay = complete(
            "ZaloPay",
            &[
                ("ZALOPAY_APP_ID", self.zalopay_app_id.is_some()),
                ("ZALOPAY_KEY1", self.zalopay_key1.is_some()),
                ("ZALOPAY_KEY2", self.zalopay_key2.is_some()),
            ],
            || ZaloPaySettings {
                app_id: self.zalopay_app_id.unwrap_or_default(),
                key1: self.zalopay_key1.clone().expect("checked"),
                key2: self.zalopay_key2.clone().expect("checked"),
                endpoint: self.zalopay_endpoint.clone(),
            },
        )?;
        Ok(ProviderSettings {
            public_url: public_url.to_owned(),
            sandbox_key,
            vietqr,
            vnpay,
            momo,
            zalopay,
        })
    }
}

fn parse_payment_method(raw: &str) -> Result<PaymentMethod, String> {
    PaymentMethod::parse(raw.trim()).ok_or_else(|| {
        format!("`{raw}` is not a payment method (vietqr, vnpay, momo, zalopay, sandbox)")
    })
}

/// The settings a method needs before this service can take it.
pub fn needed_settings(method: PaymentMethod) -> &'static str {
    match method {
        PaymentMethod::VietQr => "VIETQR_BANK_BIN, VIETQR_ACCOUNT_NUMBER, VIETQR_WEBHOOK_SECRET",
        PaymentMethod::VnPay => "VNPAY_TMN_CODE, VNPAY_HASH_SECRET",
        PaymentMethod::MoMo => "MOMO_PARTNER_CODE, MOMO_ACCESS_KEY, MOMO_SECRET_KEY",
        PaymentMethod::ZaloPay => "ZALOPAY_APP_ID, ZALOPAY_KEY1, ZALOPAY_KEY2",
        PaymentMethod::Sandbox => "SANDBOX_GATEWAY=true",
    }
}

fn parse_public_url(raw: &str) -> Result<String, String> {
    let url = raw.trim().trim_end_matches('/');
    let host = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| format!("`{raw}` must start with http:// or https://"))?;
    if host.is_empty() {
        return Err(format!("`{raw}` has no host"));
    }
    Ok(url.to_owned())
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    const REQUIRED: [&str; 4] = [
        "payment",
        "--database-url=postgres://x/y",
        "--auth-jwt-secret=0123456789abcdef0123456789abcdef",
        "--sandbox-secret=sandbox-secret-0123",
    ];

    #[test]
    fn defaults_fill_everything_but_the_database_and_secrets() {
        let config = Config::try_parse_from(REQUIRED).unwrap();
        assert_eq!(config.grpc_addr.port(), 50053);
        assert_eq!(config.http_addr.port(), 9103);
        assert_eq!(config.sandbox_delay, Duration::from_secs(2));
        assert!(config.sandbox_gateway);
        assert_eq!(config.sandbox_outcome, Outcome::Success);
        assert_eq!(config.callback_tolerance, Duration::from_secs(300));
        assert_eq!(config.expiry_sweep_interval, Duration::from_secs(1));
        assert_eq!(config.public_url, None);
        assert_eq!(config.provider_query_after, Duration::from_secs(120));
        assert_eq!(config.provider_query_interval, Duration::from_secs(60));
    }

    #[test]
    fn the_sandbox_gateway_can_be_turned_off() {
        let mut args = REQUIRED.to_vec();
        args.push("--sandbox-gateway=false");
        assert!(!Config::try_parse_from(args).unwrap().sandbox_gateway);
    }

    #[test]
    fn short_sandbox_secret_is_a_startup_error_naming_the_flag() {
        let mut args = REQUIRED.to_vec();
        args[3] = "--sandbox-secret=short";
        let err = Config::try_parse_from(args).unwrap_err().to_string();
        assert!(err.contains("--sandbox-secret"), "{err}");
    }

    #[test]
    fn unknown_outcome_and_bad_public_url_are_refused() {
        let mut args = REQUIRED.to_vec();
        args.push("--sandbox-outcome=maybe");
        assert!(Config::try_parse_from(args).is_err());
        let mut args = REQUIRED.to_vec();
        args.push("--public-url=ftp://pay.example");
        let err = Config::try_parse_from(args).unwrap_err().to_string();
        assert!(err.contains("--public-url"), "{err}");
        let mut args = REQUIRED.to_vec();
        args.push("--public-url=https://pay.example/");
        let config = Config::try_parse_from(args).unwrap();
        assert_eq!(config.public_url.as_deref(), Some("https://pay.example"));
    }

    #[test]
    fn debug_output_never_shows_the_sandbox_secret() {
        let config = Config::try_parse_from(REQUIRED).unwrap();
        let shown = format!("{config:?}");
        assert!(!shown.contains("sandbox-secret-0123"), "{shown}");
    }

    fn with(extra: &[&str]) -> Vec<String> {
        REQUIRED
            .iter()
            .chain(extra)
            .map(|arg| (*arg).to_owned())
            .collect()
    }

    #[test]
    fn providers_are_off_until_configured_and_secrets_are_never_shown() {
        let key = ocop_payment_schemes::Secret::parse("sandbox-secret-0123").unwrap();
        let config = Config::try_parse_from(REQUIRED).unwrap();
        let settings = config.providers.settings("http://x", key.clone()).unwrap();
        assert!(settings.vnpay.is_none() && settings.momo.is_none());
        let config = Config::try_parse_from(with(&[
            "--vnpay-tmn-code=OCOPTEST",
            "--vnpay-hash-secret=vnpay-hash-secret-0123456789",
            "--momo-partner-code=MOMO",
            "--momo-access-key=F8BBA842ECF85",
            "--momo-secret-key=momo-secret-key-0123456789",
            "--zalopay-app-id=2553",
            "--zalopay-key1=zalopay-key1-0123456789",
            "--zalopay-key2=zalopay-key2-0123456789",
            "--vietqr-bank-bin=970436",
            "--vietqr-account-number=0011001234567",
            "--vietqr-webhook-secret=vietqr-webhook-0123456789",
        ]))
        .unwrap();
        let settings = config.providers.settings("http://x", key).unwrap();
        assert!(settings.vnpay.is_some() && settings.momo.is_some());
        assert!(settings.zalopay.is_some() && settings.vietqr.is_some());
        let shown = format!("{config:?}");
        for secret in [
            "vnpay-hash-secret",
            "momo-secret-key",
            "zalopay-key",
            "vietqr-webhook",
        ] {
            assert!(!shown.contains(secret), "{secret} shown in {shown}");
        }
    }

    #[test]
    fn a_partly_configured_provider_is_a_startup_error_naming_what_is_missing() {
        let key = ocop_payment_schemes::Secret::parse("sandbox-secret-0123").unwrap();
        let config = Config::try_parse_from(with(&["--momo-partner-code=MOMO"])).unwrap();
        let err = config
            .providers
            .settings("http://x", key.clone())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("MOMO_SECRET_KEY") && err.contains("MOMO_ACCESS_KEY"),
            "{err}"
        );
        let short = Config::try_parse_from(with(&["--zalopay-key1=short"]));
        assert!(short.unwrap_err().to_string().contains("--zalopay-key1"));
        let config = Config::try_parse_from(with(&[
            "--vietqr-bank-bin=97043",
            "--vietqr-account-number=0011001234567",
            "--vietqr-webhook-secret=vietqr-webhook-0123456789",
        ]))
        .unwrap();
        assert!(config.providers.settings("http://x", key).is_err());
    }
}
