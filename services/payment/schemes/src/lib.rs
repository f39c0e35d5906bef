//! The payment providers' published wire schemes, implemented once for both sides: the
//! payment service builds requests and verifies callbacks with them, the sandbox gateway
//! verifies requests and signs callbacks with them. No I/O, no clock (callers pass
//! times), so every function here is deterministic and can be fuzzed.
//!
//! - [`vietqr`]: the EMVCo merchant-presented QR payload of NAPAS 247 (build and parse,
//!   CRC-16/CCITT-FALSE) and the signed bank-transfer notification webhook.
//! - [`vnpay`]: API 2.1.0 payment URL, IPN, refund and querydr (HMAC-SHA512).
//! - [`momo`]: `/v2/gateway/api/create`, IPN, refund and query (HMAC-SHA256).
//! - [`zalopay`]: `/v2/create`, callback, query and refund (HMAC-SHA256 with key1/key2).
//!
//! Amounts are VND (`i64`, no minor unit) everywhere except on VNPay's wire, where
//! [`vnpay`] multiplies and divides by 100.

pub mod momo;
pub mod sandbox;
pub mod vietqr;
pub mod vnpay;
pub mod zalopay;

use std::sync::Arc;

use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeZone as _, Utc};
use hmac::{Hmac, Mac as _};
use sha2::{Sha256, Sha512};

/// The shortest secret accepted: a short HMAC key is a guessable one.
pub const MIN_SECRET_BYTES: usize = 16;

/// A provider's secret (a hash secret, key1, key2, …). Never printed.
#[derive(Clone)]
pub struct Secret(Arc<[u8]>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl Secret {
    /// A secret from its text form (an environment variable); refuses short ones.
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.len() < MIN_SECRET_BYTES {
            return Err(format!(
                "must be at least {MIN_SECRET_BYTES} bytes long, got {} bytes",
                raw.len()
            ));
        }
        Ok(Self(raw.as_bytes().into()))
    }

    /// A secret of any length (tests reproducing a provider's published example).
    pub fn from_bytes(raw: &[u8]) -> Self {
        Self(raw.into())
    }

    fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// HMAC-SHA256 of `data`, lower-case hex.
    pub fn hmac_sha256_hex(&self, data: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.bytes()).expect("any key length");
        mac.update(data);
        hex::encode(mac.finalize().into_bytes())
    }

    /// HMAC-SHA512 of `data`, lower-case hex.
    pub fn hmac_sha512_hex(&self, data: &[u8]) -> String {
        let mut mac = Hmac::<Sha512>::new_from_slice(self.bytes()).expect("any key length");
        mac.update(data);
        hex::encode(mac.finalize().into_bytes())
    }

    /// Checks a hex HMAC-SHA256 (either case) over `data` in constant time.
    pub fn verify_sha256_hex(&self, data: &[u8], signature: &str) -> Result<(), SignatureError> {
        let claimed = hex::decode(signature.trim()).map_err(|_| SignatureError::NotHex)?;
        let mut mac = Hmac::<Sha256>::new_from_slice(self.bytes()).expect("any key length");
        mac.update(data);
        mac.verify_slice(&claimed)
            .map_err(|_| SignatureError::Mismatch)
    }

    /// Checks a hex HMAC-SHA512 (either case) over `data` in constant time.
    pub fn verify_sha512_hex(&self, data: &[u8], signature: &str) -> Result<(), SignatureError> {
        let claimed = hex::decode(signature.trim()).map_err(|_| SignatureError::NotHex)?;
        let mut mac = Hmac::<Sha512>::new_from_slice(self.bytes()).expect("any key length");
        mac.update(data);
        mac.verify_slice(&claimed)
            .map_err(|_| SignatureError::Mismatch)
    }
}

/// Why a signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the signature is missing")]
    Missing,
    #[error("the signature is not hex")]
    NotHex,
    #[error("the signature does not match")]
    Mismatch,
}

/// Why a callback could not be read (after its signature was checked, or before when
/// the signature itself is inside the malformed part).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed: {0}")]
pub struct Malformed(pub String);

impl Malformed {
    pub fn new(reason: impl Into<String>) -> Self {
        Self(reason.into())
    }
}

/// What can go wrong reading a signed callback.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    #[error(transparent)]
    Signature(#[from] SignatureError),
    #[error(transparent)]
    Malformed(#[from] Malformed),
}

/// Vietnam's time zone (GMT+7, no daylight saving): VNPay's and ZaloPay's dates.
pub fn vietnam() -> FixedOffset {
    FixedOffset::east_opt(7 * 3600).expect("7 hours is a valid offset")
}

/// `yyyyMMddHHmmss` in GMT+7 (VNPay's dates).
pub fn vn_datetime(at: DateTime<Utc>) -> String {
    at.with_timezone(&vietnam())
        .format("%Y%m%d%H%M%S")
        .to_string()
}

/// Reads `yyyyMMddHHmmss` in GMT+7.
pub fn parse_vn_datetime(raw: &str) -> Option<DateTime<Utc>> {
    if raw.len() != 14 || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let naive = NaiveDateTime::parse_from_str(raw, "%Y%m%d%H%M%S").ok()?;
    vietnam()
        .from_local_datetime(&naive)
        .single()
        .map(|at| at.with_timezone(&Utc))
}

/// Unix milliseconds → a time, when in range.
pub fn from_millis(millis: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231_test_case_2() {
        // RFC 4231 §4.3 (key "Jefe", data "what do ya want for nothing?").
        let key = Secret::from_bytes(b"Jefe");
        let data = b"what do ya want for nothing?";
        assert_eq!(
            key.hmac_sha256_hex(data),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            key.hmac_sha512_hex(data),
            "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737"
        );
        assert_eq!(
            key.verify_sha512_hex(data, &key.hmac_sha512_hex(data).to_uppercase()),
            Ok(())
        );
        assert_eq!(
            key.verify_sha256_hex(b"other", &key.hmac_sha256_hex(data)),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            key.verify_sha256_hex(data, "xyz"),
            Err(SignatureError::NotHex)
        );
    }

    #[test]
    fn short_secrets_are_refused_and_never_printed() {
        assert!(Secret::parse("short").is_err());
        let secret = Secret::parse("a-long-enough-secret").unwrap();
        assert!(!format!("{secret:?}").contains("long-enough"));
    }

    #[test]
    fn vietnam_dates_are_gmt_plus_7() {
        let at = DateTime::from_timestamp(1_764_400_000, 0).unwrap(); // 2025-11-29 07:06:40 UTC
        assert_eq!(vn_datetime(at), "20251129140640");
        assert_eq!(parse_vn_datetime("20251129140640"), Some(at));
        assert_eq!(parse_vn_datetime("2025112914064"), None);
        assert_eq!(parse_vn_datetime("20251399140640"), None);
        assert_eq!(parse_vn_datetime("+0251129140640"), None);
    }
}
