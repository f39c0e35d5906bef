//! The sandbox provider's published callback scheme, implemented once for both sides:
//! the gateway signs with it, the callback handler verifies with it.
//!
//! A callback is a JSON body ([`CallbackBody`]) POSTed with the header
//! `X-Sandbox-Signature: hex(HMAC-SHA256(secret, raw body))`. The MAC covers the exact
//! bytes received, so the receiver verifies before parsing anything: with
//! [`Secret::hmac_sha256_hex`] and [`Secret::verify_sha256_hex`].
//!
//! [`Secret::hmac_sha256_hex`]: crate::Secret::hmac_sha256_hex
//! [`Secret::verify_sha256_hex`]: crate::Secret::verify_sha256_hex

use serde::{Deserialize, Serialize};

/// The header carrying the signature (HTTP header names are case-insensitive).
pub const SIGNATURE_HEADER: &str = "x-sandbox-signature";
/// The provider's result, as spelled on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CallbackStatus {
    Success,
    Failure,
}

/// The body of a sandbox callback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallbackBody {
    pub payment_id: String,
    pub order_code: String,
    pub amount_vnd: i64,
    pub status: CallbackStatus,
    /// The sandbox's transaction id, e.g. `SBX7F3A…`.
    pub provider_transaction_id: String,
    /// When the sandbox sent it, in Unix seconds.
    pub timestamp: i64,
}

impl CallbackBody {
    /// The exact bytes that are signed and sent.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a struct of strings and numbers serialises")
    }
}

/// A refund request to the sandbox (`POST /sandbox/sandbox/api/refund`), signed like a
/// callback (the same header over the raw body).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundBody {
    /// The merchant's refund id: the sandbox refunds once per request id.
    pub request_id: String,
    pub payment_id: String,
    pub provider_transaction_id: String,
    pub amount_vnd: i64,
    pub reason: String,
    pub timestamp: i64,
}

impl RefundBody {
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a struct of strings and numbers serialises")
    }
}

/// The sandbox's answer to a refund request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundAnswer {
    pub status: CallbackStatus,
    pub provider_refund_id: String,
    pub code: String,
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Secret, SignatureError};

    fn key() -> Secret {
        Secret::parse("sandbox-secret-0123456789").unwrap()
    }

    #[test]
    fn signature_is_lower_case_hex_of_hmac_sha256() {
        let signature = key().hmac_sha256_hex(b"{}");
        assert_eq!(signature.len(), 64);
        assert!(
            signature
                .chars()
                .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase())
        );
    }

    #[test]
    fn signed_body_verifies_and_any_change_is_refused() {
        let body = br#"{"payment_id":"x","amount_vnd":75000}"#;
        let signature = key().hmac_sha256_hex(body);
        assert_eq!(key().verify_sha256_hex(body, &signature), Ok(()));
        assert_eq!(
            key().verify_sha256_hex(body, &signature.to_uppercase()),
            Ok(())
        );
        let tampered = br#"{"payment_id":"x","amount_vnd":75001}"#;
        assert_eq!(
            key().verify_sha256_hex(tampered, &signature),
            Err(SignatureError::Mismatch)
        );
        let other = Secret::parse("another-secret-0123456789").unwrap();
        assert_eq!(
            other.verify_sha256_hex(body, &signature),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            key().verify_sha256_hex(body, "zz"),
            Err(SignatureError::NotHex)
        );
        assert_eq!(
            key().verify_sha256_hex(body, ""),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn short_secret_is_refused_and_debug_hides_the_key() {
        assert!(Secret::parse("short").is_err());
        let shown = format!("{:?}", key());
        assert!(!shown.contains("sandbox-secret"), "{shown}");
    }

    #[test]
    fn body_uses_the_documented_field_names() {
        let body = CallbackBody {
            payment_id: "p".into(),
            order_code: "QN-1".into(),
            amount_vnd: 75_000,
            status: CallbackStatus::Success,
            provider_transaction_id: "SBX1".into(),
            timestamp: 1_700_000_000,
        };
        let json: serde_json::Value = serde_json::from_slice(&body.to_bytes()).unwrap();
        assert_eq!(json["status"], "success");
        assert_eq!(json["amount_vnd"], 75_000);
        assert_eq!(json["timestamp"], 1_700_000_000);
    }
}
