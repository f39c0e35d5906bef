//! ZaloPay (Open API v2): create an order with `POST /v2/create`, receive the callback,
//! query with `POST /v2/query` (for a missed callback), refund with `POST /v2/refund`.
//!
//! Requests are MAC'd with **key1**: HMAC-SHA256 in hex over fields joined with `|`.
//! The callback `{data, mac, type}` is MAC'd by ZaloPay with **key2** over the `data`
//! string exactly as sent; `data` is itself JSON, parsed only after the MAC checks out.
//! `app_trans_id` starts with the date in GMT+7 (`yymmdd_`): ZaloPay rejects others.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{CallbackError, Malformed, Secret, SignatureError, vietnam};

/// The longest `app_trans_id` ZaloPay accepts.
pub const MAX_APP_TRANS_ID: usize = 40;

/// The merchant's ZaloPay credentials.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub app_id: i64,
    pub key1: Secret,
    pub key2: Secret,
}

/// `yymmdd_<suffix>` with the date of `at` in GMT+7.
pub fn app_trans_id(at: DateTime<Utc>, suffix: &str) -> Result<String, String> {
    let id = format!("{}_{suffix}", at.with_timezone(&vietnam()).format("%y%m%d"));
    if id.len() > MAX_APP_TRANS_ID || suffix.is_empty() {
        return Err(format!(
            "app_trans_id `{id}` must be 8 to {MAX_APP_TRANS_ID} characters"
        ));
    }
    Ok(id)
}

/// The shortest and longest `expire_duration_seconds` ZaloPay accepts.
pub const EXPIRE_DURATION_SECONDS: std::ops::RangeInclusive<i64> = 300..=2_592_000;

/// The `expire_duration_seconds` for a payment due at `deadline`: the time left, within
/// what ZaloPay accepts (a payment due in under five minutes gets five; one paid after
/// our deadline is refunded, never kept).
pub fn expire_duration_seconds(now: DateTime<Utc>, deadline: DateTime<Utc>) -> i64 {
    (deadline - now).num_seconds().clamp(
        *EXPIRE_DURATION_SECONDS.start(),
        *EXPIRE_DURATION_SECONDS.end(),
    )
}

/// A refund's `m_refund_id`, `yymmdd_<app_id>_<suffix>`, dated in GMT+7 by when the refund
/// was requested (not when it is sent): a retry after midnight sends the same id, so
/// ZaloPay sees one refund, not two.
pub fn m_refund_id(requested_at: DateTime<Utc>, app_id: i64, suffix: &str) -> String {
    format!(
        "{}_{app_id}_{suffix}",
        requested_at.with_timezone(&vietnam()).format("%y%m%d")
    )
}

/// The part after `yymmdd_`.
pub fn app_trans_suffix(id: &str) -> Option<&str> {
    let (date, suffix) = id.split_once('_')?;
    (date.len() == 6 && date.bytes().all(|b| b.is_ascii_digit())).then_some(suffix)
}

/// `POST /v2/create`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateRequest {
    pub app_id: i64,
    pub app_user: String,
    pub app_trans_id: String,
    /// Unix milliseconds.
    pub app_time: i64,
    pub amount: i64,
    /// JSON array of items, as a string.
    pub item: String,
    /// JSON object as a string (`redirecturl` is where the shopper returns).
    pub embed_data: String,
    pub description: String,
    pub bank_code: String,
    /// How long ZaloPay lets the shopper pay, in seconds (not in the MAC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expire_duration_seconds: Option<i64>,
    pub callback_url: String,
    pub mac: String,
}

impl CreateRequest {
    /// `app_id|app_trans_id|app_user|amount|app_time|embed_data|item`.
    pub fn mac_data(&self) -> String {
        format!(
            "{}|{}|{}|{}|{}|{}|{}",
            self.app_id,
            self.app_trans_id,
            self.app_user,
            self.amount,
            self.app_time,
            self.embed_data,
            self.item
        )
    }

    pub fn sign(mut self, key1: &Secret) -> Self {
        self.mac = key1.hmac_sha256_hex(self.mac_data().as_bytes());
        self
    }

    pub fn verify(&self, key1: &Secret) -> Result<(), SignatureError> {
        key1.verify_sha256_hex(self.mac_data().as_bytes(), &self.mac)
    }
}

/// The answer to create.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct CreateResponse {
    /// 1 created, 2 failed.
    pub return_code: i64,
    pub return_message: String,
    pub order_url: String,
    pub zp_trans_token: String,
}

/// The callback's `data`, once its MAC is verified. The fields a decision rests on are
/// required; the descriptive ones default when a version of ZaloPay leaves them out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallbackData {
    pub app_id: i64,
    pub app_trans_id: String,
    #[serde(default)]
    pub app_time: i64,
    #[serde(default)]
    pub app_user: String,
    pub amount: i64,
    #[serde(default)]
    pub embed_data: String,
    #[serde(default)]
    pub item: String,
    /// ZaloPay's transaction id (idempotency key of the callback).
    pub zp_trans_id: i64,
    /// Unix milliseconds.
    pub server_time: i64,
    #[serde(default)]
    pub channel: i64,
    #[serde(default)]
    pub merchant_user_id: String,
    #[serde(default)]
    pub user_fee_amount: i64,
    #[serde(default)]
    pub discount_amount: i64,
}

/// The callback body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Callback {
    /// JSON of [`CallbackData`], as a string: the MAC covers these exact characters.
    pub data: String,
    pub mac: String,
    /// 1 order, 2 agreement.
    #[serde(rename = "type")]
    pub kind: i64,
}

impl Callback {
    /// A callback for `data`, MAC'd with `key2` (what ZaloPay sends; the sandbox plays it).
    pub fn signed(data: &CallbackData, key2: &Secret) -> Self {
        let data = serde_json::to_string(data).expect("strings and numbers serialise");
        let mac = key2.hmac_sha256_hex(data.as_bytes());
        Self { data, mac, kind: 1 }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("strings and numbers serialise")
    }
}

/// Reads the envelope, verifies `mac` over `data` with key2, then reads `data` (and
/// checks it names our app).
pub fn verify_callback(
    credentials: &Credentials,
    body: &[u8],
) -> Result<CallbackData, CallbackError> {
    let callback: Callback =
        serde_json::from_slice(body).map_err(|err| Malformed::new(err.to_string()))?;
    if callback.mac.is_empty() {
        return Err(SignatureError::Missing.into());
    }
    credentials
        .key2
        .verify_sha256_hex(callback.data.as_bytes(), &callback.mac)?;
    let data: CallbackData = serde_json::from_str(&callback.data)
        .map_err(|err| Malformed::new(format!("data: {err}")))?;
    if data.app_id != credentials.app_id {
        return Err(Malformed::new("app_id is not ours").into());
    }
    Ok(data)
}

/// The merchant's answer to a callback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallbackReply {
    /// 1 success, 2 already processed (duplicate zp_trans_id), 0 or less: ZaloPay retries.
    pub return_code: i64,
    pub return_message: String,
}

/// `POST /v2/query`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryRequest {
    pub app_id: i64,
    pub app_trans_id: String,
    pub mac: String,
}

impl QueryRequest {
    /// `app_id|app_trans_id|key1` — the key itself is part of the data, as documented.
    fn mac_data(&self, key1: &Secret) -> Vec<u8> {
        let mut data = format!("{}|{}|", self.app_id, self.app_trans_id).into_bytes();
        data.extend_from_slice(key1.bytes());
        data
    }

    pub fn signed(app_id: i64, app_trans_id: &str, key1: &Secret) -> Self {
        let mut request = Self {
            app_id,
            app_trans_id: app_trans_id.to_owned(),
            mac: String::new(),
        };
        request.mac = key1.hmac_sha256_hex(&request.mac_data(key1));
        request
    }

    pub fn verify(&self, key1: &Secret) -> Result<(), SignatureError> {
        key1.verify_sha256_hex(&self.mac_data(key1), &self.mac)
    }
}

/// The answer to query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct QueryResponse {
    /// 1 paid, 2 failed, 3 not paid yet / processing.
    pub return_code: i64,
    pub return_message: String,
    pub is_processing: bool,
    pub amount: i64,
    pub zp_trans_id: i64,
}

/// `POST /v2/refund`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundRequest {
    /// `yymmdd_appid_<unique>`.
    pub m_refund_id: String,
    pub app_id: i64,
    pub zp_trans_id: i64,
    pub amount: i64,
    /// Unix milliseconds.
    pub timestamp: i64,
    pub description: String,
    pub mac: String,
}

impl RefundRequest {
    /// `app_id|zp_trans_id|amount|description|timestamp`.
    pub fn mac_data(&self) -> String {
        format!(
            "{}|{}|{}|{}|{}",
            self.app_id, self.zp_trans_id, self.amount, self.description, self.timestamp
        )
    }

    pub fn sign(mut self, key1: &Secret) -> Self {
        self.mac = key1.hmac_sha256_hex(self.mac_data().as_bytes());
        self
    }

    pub fn verify(&self, key1: &Secret) -> Result<(), SignatureError> {
        key1.verify_sha256_hex(self.mac_data().as_bytes(), &self.mac)
    }
}

/// The answer to refund.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct RefundResponse {
    /// 1 refunded, 2 failed, 3 processing.
    pub return_code: i64,
    pub return_message: String,
    pub refund_id: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_time_left_to_pay_stays_within_what_zalopay_accepts() {
        let now: DateTime<Utc> = "2026-12-07T10:00:00Z".parse().unwrap();
        let in_minutes = |minutes| now + chrono::TimeDelta::minutes(minutes);
        assert_eq!(expire_duration_seconds(now, in_minutes(15)), 900);
        assert_eq!(expire_duration_seconds(now, in_minutes(2)), 300);
        assert_eq!(expire_duration_seconds(now, in_minutes(-1)), 300);
        assert_eq!(
            expire_duration_seconds(now, in_minutes(60 * 24 * 60)),
            2_592_000
        );
    }

    #[test]
    fn a_refund_keeps_its_id_across_midnight_in_vietnam() {
        let requested = "2026-12-07T16:59:00Z".parse().unwrap(); // 23:59 in GMT+7
        assert_eq!(m_refund_id(requested, 2553, "r1"), "261207_2553_r1");
        let after_midnight = "2026-12-07T17:01:00Z".parse().unwrap();
        assert_eq!(m_refund_id(after_midnight, 2553, "r1"), "261208_2553_r1");
    }

    fn credentials() -> Credentials {
        // ZaloPay's public sandbox app 2553 (key1, key2 from its developer docs).
        Credentials {
            app_id: 2553,
            key1: Secret::parse("PcY4iZIKFCIdgZvA6ueMcMHHUbRLYjPL").unwrap(),
            key2: Secret::parse("kLtgPl8HHhfvMuDHPwKfgfsY4Ydm9eIz").unwrap(),
        }
    }

    #[test]
    fn app_trans_id_uses_the_date_in_gmt_plus_7() {
        // 2025-11-29 20:00 UTC is already 30 November in Vietnam.
        let at = DateTime::from_timestamp(1_764_446_400, 0).unwrap();
        assert_eq!(app_trans_id(at, "abc").unwrap(), "251130_abc");
        assert_eq!(app_trans_suffix("251130_abc"), Some("abc"));
        assert_eq!(app_trans_suffix("2511_abc"), None);
        assert!(app_trans_id(at, &"x".repeat(34)).is_err());
        assert!(app_trans_id(at, &"x".repeat(33)).is_ok());
    }

    #[test]
    fn create_mac_matches_a_vector_computed_independently() {
        // Python: hmac.new(key1, "2553|251129_0192f0c8a3b47c1d9e2f3a4b5c6d7e8f|ocop|75000|
        // 1764400000000|{\"redirecturl\":\"http://127.0.0.1:9103/payments/zalopay/return\"}|[]",
        // hashlib.sha256).hexdigest()
        let request = CreateRequest {
            app_id: 2553,
            app_user: "ocop".into(),
            app_trans_id: "251129_0192f0c8a3b47c1d9e2f3a4b5c6d7e8f".into(),
            app_time: 1_764_400_000_000,
            amount: 75_000,
            item: "[]".into(),
            embed_data: r#"{"redirecturl":"http://127.0.0.1:9103/payments/zalopay/return"}"#.into(),
            description: "OCOP - Thanh toan don hang QN-2611-0042".into(),
            bank_code: String::new(),
            expire_duration_seconds: Some(900),
            callback_url: "http://127.0.0.1:9103/callbacks/zalopay".into(),
            mac: String::new(),
        }
        .sign(&credentials().key1);
        assert_eq!(request.mac, CREATE_VECTOR);
        assert_eq!(request.verify(&credentials().key1), Ok(()));
        assert!(request.verify(&credentials().key2).is_err());
    }

    const CREATE_VECTOR: &str = "ca5b7a072a75783540450e605c129138dd7175092e9748ce41a60667f3eb5735";

    fn data() -> CallbackData {
        CallbackData {
            app_id: 2553,
            app_trans_id: "251129_0192f0c8a3b47c1d9e2f3a4b5c6d7e8f".into(),
            app_time: 1_764_400_000_000,
            app_user: "ocop".into(),
            amount: 75_000,
            embed_data: "{}".into(),
            item: "[]".into(),
            zp_trans_id: 251_129_000_000_123,
            server_time: 1_764_400_060_000,
            channel: 38,
            merchant_user_id: String::new(),
            user_fee_amount: 0,
            discount_amount: 0,
        }
    }

    #[test]
    fn callback_is_verified_with_key2_over_the_data_string() {
        let callback = Callback::signed(&data(), &credentials().key2);
        assert_eq!(
            verify_callback(&credentials(), &callback.to_bytes()).unwrap(),
            data()
        );
        // The published recipe: mac = HMAC-SHA256(key2, data) — a vector over a fixed
        // data string, computed with Python's hmac module.
        let fixed = Callback {
            data: r#"{"app_id":2553,"amount":75000}"#.into(),
            mac: String::new(),
            kind: 1,
        };
        assert_eq!(
            credentials().key2.hmac_sha256_hex(fixed.data.as_bytes()),
            CALLBACK_VECTOR
        );
        // Signed with key1 (the wrong key): refused.
        let wrong = Callback::signed(&data(), &credentials().key1);
        assert!(matches!(
            verify_callback(&credentials(), &wrong.to_bytes()),
            Err(CallbackError::Signature(SignatureError::Mismatch))
        ));
        // Amount changed inside data: the MAC no longer matches.
        let mut tampered = callback.clone();
        tampered.data = tampered.data.replace("75000", "10000");
        assert!(matches!(
            verify_callback(&credentials(), &tampered.to_bytes()),
            Err(CallbackError::Signature(SignatureError::Mismatch))
        ));
        assert!(matches!(
            verify_callback(&credentials(), b"[]"),
            Err(CallbackError::Malformed(_))
        ));
        // The minimal data (what a decision needs) is enough; without zp_trans_id it is
        // malformed even when MAC'd.
        let minimal = r#"{"app_id":2553,"app_trans_id":"251129_x","amount":75000,"zp_trans_id":7,"server_time":1}"#;
        let signed = Callback {
            data: minimal.into(),
            mac: credentials().key2.hmac_sha256_hex(minimal.as_bytes()),
            kind: 1,
        };
        assert_eq!(
            verify_callback(&credentials(), &signed.to_bytes())
                .unwrap()
                .zp_trans_id,
            7
        );
        let incomplete =
            r#"{"app_id":2553,"app_trans_id":"251129_x","amount":75000,"server_time":1}"#;
        let signed = Callback {
            data: incomplete.into(),
            mac: credentials().key2.hmac_sha256_hex(incomplete.as_bytes()),
            kind: 1,
        };
        assert!(matches!(
            verify_callback(&credentials(), &signed.to_bytes()),
            Err(CallbackError::Malformed(_))
        ));
    }

    const CALLBACK_VECTOR: &str =
        "472fea901c7cd53ee5b8bbb320549fe3642516b7dccfcd0637759856d9a9e987";

    #[test]
    fn query_and_refund_macs_use_key1() {
        let query = QueryRequest::signed(2553, "251129_x", &credentials().key1);
        assert_eq!(query.verify(&credentials().key1), Ok(()));
        let refund = RefundRequest {
            m_refund_id: "251129_2553_r1".into(),
            app_id: 2553,
            zp_trans_id: 251_129_000_000_123,
            amount: 20_000,
            timestamp: 1_764_400_100_000,
            description: "Hoan tien".into(),
            mac: String::new(),
        };
        assert_eq!(
            refund.mac_data(),
            "2553|251129000000123|20000|Hoan tien|1764400100000"
        );
        assert_eq!(
            refund.sign(&credentials().key1).verify(&credentials().key1),
            Ok(())
        );
    }
}
