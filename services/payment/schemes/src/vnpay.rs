//! VNPay, API 2.1.0.
//!
//! - **Payment URL**: the shopper is redirected to `vpcpay.html?<params>&vnp_SecureHash=…`
//!   where the hash is HMAC-SHA512(hash secret, the `vnp_*` params except the hash
//!   itself, sorted by key, each `urlencode(key)=urlencode(value)`, joined with `&`).
//!   `urlencode` is VNPay's (PHP `urlencode` / Java `URLEncoder`): space → `+`,
//!   everything but `A-Z a-z 0-9 - _ .` percent-encoded in upper-case hex. Empty
//!   values are left out, as VNPay's Java sample does.
//! - **IPN**: VNPay GETs the IPN URL with the result as query parameters signed the same
//!   way; the merchant answers JSON `{"RspCode","Message"}` ([`IpnReply`]).
//! - **Return URL**: the same parameters in the shopper's browser; shown, never trusted.
//! - **refund / querydr**: JSON POSTs to the merchant API, hashed over the fields joined
//!   with `|` in a fixed order ([`refund_hash_data`], [`querydr_hash_data`]).
//!
//! `vnp_Amount` is VND × 100 on the wire; nowhere else.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{CallbackError, Malformed, Secret, SignatureError, parse_vn_datetime, vn_datetime};

pub const VERSION: &str = "2.1.0";
pub const HASH_PARAM: &str = "vnp_SecureHash";
pub const HASH_TYPE_PARAM: &str = "vnp_SecureHashType";

/// VNPay's `urlencode`.
pub fn urlencode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes())
        .collect::<String>()
        // form_urlencoded keeps `*` (WHATWG); PHP's urlencode does not.
        .replace('*', "%2A")
}

/// The hashed string of `params`: `vnp_*` keys except the hash fields, non-empty values,
/// sorted by key, encoded and joined.
pub fn hash_data<'a>(params: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let sorted: BTreeMap<&str, &str> = params
        .into_iter()
        .filter(|(key, value)| {
            key.starts_with("vnp_")
                && *key != HASH_PARAM
                && *key != HASH_TYPE_PARAM
                && !value.is_empty()
        })
        .collect();
    sorted
        .iter()
        .map(|(key, value)| format!("{}={}", urlencode(key), urlencode(value)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The query string of `params` with its `vnp_SecureHash` appended.
pub fn signed_query<'a>(
    secret: &Secret,
    params: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> String {
    let data = hash_data(params);
    let hash = secret.hmac_sha512_hex(data.as_bytes());
    format!("{data}&{HASH_PARAM}={hash}")
}

/// What the merchant asks VNPay to collect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayRequest {
    pub tmn_code: String,
    pub amount_vnd: i64,
    /// The merchant's reference (unique per payment attempt), up to 100 characters.
    pub txn_ref: String,
    /// Shown to the shopper; ASCII without diacritics is safest.
    pub order_info: String,
    pub return_url: String,
    pub ip_addr: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl PayRequest {
    /// The request's parameters (without the hash).
    pub fn params(&self) -> Vec<(&'static str, String)> {
        vec![
            ("vnp_Version", VERSION.to_owned()),
            ("vnp_Command", "pay".to_owned()),
            ("vnp_TmnCode", self.tmn_code.clone()),
            ("vnp_Amount", (self.amount_vnd * 100).to_string()),
            ("vnp_CurrCode", "VND".to_owned()),
            ("vnp_TxnRef", self.txn_ref.clone()),
            ("vnp_OrderInfo", self.order_info.clone()),
            ("vnp_OrderType", "other".to_owned()),
            ("vnp_Locale", "vn".to_owned()),
            ("vnp_ReturnUrl", self.return_url.clone()),
            ("vnp_IpAddr", self.ip_addr.clone()),
            ("vnp_CreateDate", vn_datetime(self.created_at)),
            ("vnp_ExpireDate", vn_datetime(self.expires_at)),
        ]
    }

    /// `base?params&vnp_SecureHash=…`.
    pub fn url(&self, base: &str, secret: &Secret) -> String {
        let params = self.params();
        let query = signed_query(secret, params.iter().map(|(k, v)| (*k, v.as_str())));
        format!("{base}?{query}")
    }
}

/// Parses a query string into `vnp_*` parameters (decoded). A repeated key is refused:
/// which of the two would be believed is exactly what a forger hopes to choose.
pub fn parse_query(query: &str) -> Result<BTreeMap<String, String>, Malformed> {
    let mut params = BTreeMap::new();
    for (key, value) in form_urlencoded::parse(query.trim_start_matches('?').as_bytes()) {
        if !key.starts_with("vnp_") {
            continue;
        }
        if params.insert(key.to_string(), value.to_string()).is_some() {
            return Err(Malformed::new(format!("parameter {key} is repeated")));
        }
    }
    if params.is_empty() {
        return Err(Malformed::new("no vnp_ parameters"));
    }
    Ok(params)
}

/// Verifies `vnp_SecureHash` over a parameter set (constant time).
pub fn verify_params(
    secret: &Secret,
    params: &BTreeMap<String, String>,
) -> Result<(), SignatureError> {
    let hash = params.get(HASH_PARAM).ok_or(SignatureError::Missing)?;
    let data = hash_data(params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    secret.verify_sha512_hex(data.as_bytes(), hash)
}

/// A payment result (IPN or return URL), verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentResult {
    pub tmn_code: String,
    pub txn_ref: String,
    pub amount_vnd: i64,
    /// `00` when paid.
    pub response_code: String,
    /// `00` when paid.
    pub transaction_status: String,
    /// VNPay's transaction number (idempotency key of the IPN).
    pub transaction_no: String,
    pub bank_code: String,
    pub pay_date: DateTime<Utc>,
    pub order_info: String,
}

impl PaymentResult {
    pub fn succeeded(&self) -> bool {
        self.response_code == "00" && self.transaction_status == "00"
    }

    /// The parameters VNPay sends for this result (without the hash).
    pub fn params(&self) -> Vec<(&'static str, String)> {
        vec![
            ("vnp_Amount", (self.amount_vnd * 100).to_string()),
            ("vnp_BankCode", self.bank_code.clone()),
            ("vnp_OrderInfo", self.order_info.clone()),
            ("vnp_PayDate", vn_datetime(self.pay_date)),
            ("vnp_ResponseCode", self.response_code.clone()),
            ("vnp_TmnCode", self.tmn_code.clone()),
            ("vnp_TransactionNo", self.transaction_no.clone()),
            ("vnp_TransactionStatus", self.transaction_status.clone()),
            ("vnp_TxnRef", self.txn_ref.clone()),
        ]
    }

    /// The signed query string VNPay would send (the sandbox plays VNPay with it).
    pub fn signed_query(&self, secret: &Secret) -> String {
        let params = self.params();
        signed_query(secret, params.iter().map(|(k, v)| (*k, v.as_str())))
    }
}

fn required<'a>(params: &'a BTreeMap<String, String>, key: &str) -> Result<&'a str, Malformed> {
    params
        .get(key)
        .map(String::as_str)
        .filter(|value| !value.is_empty())
        .ok_or_else(|| Malformed::new(format!("{key} is missing")))
}

/// Reads verified parameters into a result.
pub fn payment_result(params: &BTreeMap<String, String>) -> Result<PaymentResult, Malformed> {
    let minor = required(params, "vnp_Amount")?;
    if !minor.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Malformed::new("vnp_Amount is not digits"));
    }
    let minor: i64 = minor
        .parse()
        .map_err(|_| Malformed::new("vnp_Amount is out of range"))?;
    if minor % 100 != 0 {
        return Err(Malformed::new("vnp_Amount is not whole VND"));
    }
    let pay_date = required(params, "vnp_PayDate")?;
    Ok(PaymentResult {
        tmn_code: required(params, "vnp_TmnCode")?.to_owned(),
        txn_ref: required(params, "vnp_TxnRef")?.to_owned(),
        amount_vnd: minor / 100,
        response_code: required(params, "vnp_ResponseCode")?.to_owned(),
        transaction_status: params
            .get("vnp_TransactionStatus")
            .cloned()
            .unwrap_or_default(),
        transaction_no: required(params, "vnp_TransactionNo")?.to_owned(),
        bank_code: params.get("vnp_BankCode").cloned().unwrap_or_default(),
        pay_date: parse_vn_datetime(pay_date)
            .ok_or_else(|| Malformed::new("vnp_PayDate is not yyyyMMddHHmmss"))?,
        order_info: params.get("vnp_OrderInfo").cloned().unwrap_or_default(),
    })
}

/// Verifies an IPN (or return-URL) query string, then reads it.
pub fn verify_ipn(secret: &Secret, query: &str) -> Result<PaymentResult, CallbackError> {
    let params = parse_query(query)?;
    verify_params(secret, &params)?;
    Ok(payment_result(&params)?)
}

/// VNPay's IPN answer codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RspCode {
    /// `00` Confirm Success.
    Confirmed,
    /// `01` Order not found.
    OrderNotFound,
    /// `02` Order already confirmed.
    AlreadyConfirmed,
    /// `04` Invalid amount.
    InvalidAmount,
    /// `97` Invalid signature.
    InvalidSignature,
    /// `99` Unknown error.
    Other,
}

/// The JSON body answering an IPN.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpnReply {
    #[serde(rename = "RspCode")]
    pub rsp_code: String,
    #[serde(rename = "Message")]
    pub message: String,
}

impl From<RspCode> for IpnReply {
    fn from(code: RspCode) -> Self {
        let (code, message) = match code {
            RspCode::Confirmed => ("00", "Confirm Success"),
            RspCode::OrderNotFound => ("01", "Order not found"),
            RspCode::AlreadyConfirmed => ("02", "Order already confirmed"),
            RspCode::InvalidAmount => ("04", "invalid amount"),
            RspCode::InvalidSignature => ("97", "Invalid signature"),
            RspCode::Other => ("99", "Unknow error"),
        };
        Self {
            rsp_code: code.to_owned(),
            message: message.to_owned(),
        }
    }
}

/// What the merchant API (refund, querydr, and their answers) hashes: the fields joined
/// by `|` as they are, in the order each message documents (unlike the payment URL's
/// sorted, URL-encoded parameters).
fn api_hash_data<const N: usize>(fields: [&String; N]) -> String {
    fields.map(String::as_str).join("|")
}

/// A refund request (`vnp_Command=refund`).
#[allow(non_snake_case)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundRequest {
    pub vnp_RequestId: String,
    pub vnp_Version: String,
    pub vnp_Command: String,
    pub vnp_TmnCode: String,
    /// `02` full, `03` partial.
    pub vnp_TransactionType: String,
    pub vnp_TxnRef: String,
    /// VND × 100.
    pub vnp_Amount: String,
    pub vnp_OrderInfo: String,
    pub vnp_TransactionNo: String,
    pub vnp_TransactionDate: String,
    pub vnp_CreateBy: String,
    pub vnp_CreateDate: String,
    pub vnp_IpAddr: String,
    #[serde(default)]
    pub vnp_SecureHash: String,
}

/// `RequestId|Version|Command|TmnCode|TransactionType|TxnRef|Amount|TransactionNo|
/// TransactionDate|CreateBy|CreateDate|IpAddr|OrderInfo`.
pub fn refund_hash_data(r: &RefundRequest) -> String {
    api_hash_data([
        &r.vnp_RequestId,
        &r.vnp_Version,
        &r.vnp_Command,
        &r.vnp_TmnCode,
        &r.vnp_TransactionType,
        &r.vnp_TxnRef,
        &r.vnp_Amount,
        &r.vnp_TransactionNo,
        &r.vnp_TransactionDate,
        &r.vnp_CreateBy,
        &r.vnp_CreateDate,
        &r.vnp_IpAddr,
        &r.vnp_OrderInfo,
    ])
}

/// A `querydr` request.
#[allow(non_snake_case)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryRequest {
    pub vnp_RequestId: String,
    pub vnp_Version: String,
    pub vnp_Command: String,
    pub vnp_TmnCode: String,
    pub vnp_TxnRef: String,
    pub vnp_OrderInfo: String,
    pub vnp_TransactionDate: String,
    pub vnp_CreateDate: String,
    pub vnp_IpAddr: String,
    #[serde(default)]
    pub vnp_SecureHash: String,
}

/// `RequestId|Version|Command|TmnCode|TxnRef|TransactionDate|CreateDate|IpAddr|OrderInfo`.
pub fn querydr_hash_data(r: &QueryRequest) -> String {
    api_hash_data([
        &r.vnp_RequestId,
        &r.vnp_Version,
        &r.vnp_Command,
        &r.vnp_TmnCode,
        &r.vnp_TxnRef,
        &r.vnp_TransactionDate,
        &r.vnp_CreateDate,
        &r.vnp_IpAddr,
        &r.vnp_OrderInfo,
    ])
}

/// The answer to refund and querydr.
#[allow(non_snake_case)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct ApiResponse {
    pub vnp_ResponseId: String,
    pub vnp_Command: String,
    pub vnp_ResponseCode: String,
    pub vnp_Message: String,
    pub vnp_TmnCode: String,
    pub vnp_TxnRef: String,
    pub vnp_Amount: String,
    pub vnp_BankCode: String,
    pub vnp_PayDate: String,
    pub vnp_TransactionNo: String,
    pub vnp_TransactionType: String,
    pub vnp_TransactionStatus: String,
    pub vnp_OrderInfo: String,
    pub vnp_SecureHash: String,
}

/// `ResponseId|Command|ResponseCode|Message|TmnCode|TxnRef|Amount|BankCode|PayDate|
/// TransactionNo|TransactionType|TransactionStatus|OrderInfo`.
pub fn response_hash_data(r: &ApiResponse) -> String {
    api_hash_data([
        &r.vnp_ResponseId,
        &r.vnp_Command,
        &r.vnp_ResponseCode,
        &r.vnp_Message,
        &r.vnp_TmnCode,
        &r.vnp_TxnRef,
        &r.vnp_Amount,
        &r.vnp_BankCode,
        &r.vnp_PayDate,
        &r.vnp_TransactionNo,
        &r.vnp_TransactionType,
        &r.vnp_TransactionStatus,
        &r.vnp_OrderInfo,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> Secret {
        Secret::parse("VNPAYSANDBOXSECRET0123456789ABCD").unwrap()
    }

    #[test]
    fn encoding_is_phps_urlencode() {
        assert_eq!(urlencode("Thanh toan don QN-1"), "Thanh+toan+don+QN-1");
        assert_eq!(
            urlencode("http://127.0.0.1:9103/return?a=b"),
            "http%3A%2F%2F127.0.0.1%3A9103%2Freturn%3Fa%3Db"
        );
        assert_eq!(urlencode("a*b~c"), "a%2Ab%7Ec");
        assert_eq!(urlencode("Đơn"), "%C4%90%C6%A1n");
    }

    fn pay_request() -> PayRequest {
        PayRequest {
            tmn_code: "OCOPTEST".into(),
            amount_vnd: 75_000,
            txn_ref: "0192f0c8a3b47c1d9e2f3a4b5c6d7e8f".into(),
            order_info: "Thanh toan don hang QN-2611-0042".into(),
            return_url: "http://127.0.0.1:9103/payments/vnpay/return".into(),
            ip_addr: "127.0.0.1".into(),
            created_at: DateTime::from_timestamp(1_764_400_000, 0).unwrap(),
            expires_at: DateTime::from_timestamp(1_764_400_900, 0).unwrap(),
        }
    }

    #[test]
    fn payment_url_matches_a_vector_computed_independently() {
        // Computed with Python 3 (urllib.parse.quote_plus over the sorted params, then
        // hmac.new(secret, data, hashlib.sha512)), the way VNPay's PHP sample does it.
        let url = pay_request().url(
            "https://sandbox.vnpayment.vn/paymentv2/vpcpay.html",
            &secret(),
        );
        let expected_data = "vnp_Amount=7500000&vnp_Command=pay&vnp_CreateDate=20251129140640&vnp_CurrCode=VND&vnp_ExpireDate=20251129142140&vnp_IpAddr=127.0.0.1&vnp_Locale=vn&vnp_OrderInfo=Thanh+toan+don+hang+QN-2611-0042&vnp_OrderType=other&vnp_ReturnUrl=http%3A%2F%2F127.0.0.1%3A9103%2Fpayments%2Fvnpay%2Freturn&vnp_TmnCode=OCOPTEST&vnp_TxnRef=0192f0c8a3b47c1d9e2f3a4b5c6d7e8f&vnp_Version=2.1.0";
        assert_eq!(
            url,
            format!(
                "https://sandbox.vnpayment.vn/paymentv2/vpcpay.html?{expected_data}&vnp_SecureHash={}",
                PAY_VECTOR_HASH
            )
        );
    }

    const PAY_VECTOR_HASH: &str = "40bad4e4e2d0e379edca1427131adb5b7e8f9bef61d5d4139f76993e2772765fdba25648113958f61d9170fcb4f9625a6c2f50cf1bc314cd10e1fe7c06d57f5e";

    fn result() -> PaymentResult {
        PaymentResult {
            tmn_code: "OCOPTEST".into(),
            txn_ref: "0192f0c8a3b47c1d9e2f3a4b5c6d7e8f".into(),
            amount_vnd: 75_000,
            response_code: "00".into(),
            transaction_status: "00".into(),
            transaction_no: "14226112".into(),
            bank_code: "NCB".into(),
            pay_date: DateTime::from_timestamp(1_764_400_060, 0).unwrap(),
            order_info: "Thanh toan don hang QN-2611-0042".into(),
        }
    }

    #[test]
    fn ipn_round_trips_and_any_change_breaks_the_hash() {
        let query = result().signed_query(&secret());
        let verified = verify_ipn(&secret(), &query).unwrap();
        assert_eq!(verified, result());
        assert!(verified.succeeded());
        let tampered = query.replace("vnp_Amount=7500000", "vnp_Amount=100000");
        assert_eq!(
            verify_ipn(&secret(), &tampered),
            Err(CallbackError::Signature(SignatureError::Mismatch))
        );
        let other = Secret::parse("ANOTHERSECRET0123456789ABCDEFGHI").unwrap();
        assert_eq!(
            verify_ipn(&other, &query),
            Err(CallbackError::Signature(SignatureError::Mismatch))
        );
        let unsigned = query.split("&vnp_SecureHash").next().unwrap();
        assert_eq!(
            verify_ipn(&secret(), unsigned),
            Err(CallbackError::Signature(SignatureError::Missing))
        );
        let repeated = format!("{query}&vnp_Amount=1");
        assert!(matches!(
            verify_ipn(&secret(), &repeated),
            Err(CallbackError::Malformed(_))
        ));
        assert!(matches!(
            verify_ipn(&secret(), "a=b"),
            Err(CallbackError::Malformed(_))
        ));
    }

    #[test]
    fn ipn_vector_computed_independently() {
        // Python: the same sorted/quote_plus/HMAC-SHA512 recipe over result().params().
        assert_eq!(
            result().signed_query(&secret()),
            format!(
                "vnp_Amount=7500000&vnp_BankCode=NCB&vnp_OrderInfo=Thanh+toan+don+hang+QN-2611-0042&vnp_PayDate=20251129140740&vnp_ResponseCode=00&vnp_TmnCode=OCOPTEST&vnp_TransactionNo=14226112&vnp_TransactionStatus=00&vnp_TxnRef=0192f0c8a3b47c1d9e2f3a4b5c6d7e8f&vnp_SecureHash={IPN_VECTOR_HASH}"
            )
        );
    }

    const IPN_VECTOR_HASH: &str = "34f208067cc8c92a666286f22f0cc514f43bef91a0f3f95413c5d872e837da59cbbe56972ece3c7168ed2a58cc5b62cd4e343a54e28273cf3bfabcae96b023f6";

    #[test]
    fn amounts_must_be_whole_vnd_times_100() {
        let mut params = parse_query(&result().signed_query(&secret())).unwrap();
        params.insert("vnp_Amount".into(), "7500050".into());
        assert!(payment_result(&params).is_err());
        params.insert("vnp_Amount".into(), "-7500000".into());
        assert!(payment_result(&params).is_err());
    }

    #[test]
    fn reply_codes_are_vnpays() {
        let reply = IpnReply::from(RspCode::AlreadyConfirmed);
        assert_eq!(
            serde_json::to_string(&reply).unwrap(),
            r#"{"RspCode":"02","Message":"Order already confirmed"}"#
        );
        assert_eq!(IpnReply::from(RspCode::InvalidSignature).rsp_code, "97");
        assert_eq!(IpnReply::from(RspCode::InvalidAmount).rsp_code, "04");
        assert_eq!(IpnReply::from(RspCode::OrderNotFound).rsp_code, "01");
        assert_eq!(IpnReply::from(RspCode::Other).rsp_code, "99");
    }

    #[test]
    fn refund_hash_joins_the_fields_in_vnpays_order() {
        let request = RefundRequest {
            vnp_RequestId: "r1".into(),
            vnp_Version: VERSION.into(),
            vnp_Command: "refund".into(),
            vnp_TmnCode: "OCOPTEST".into(),
            vnp_TransactionType: "03".into(),
            vnp_TxnRef: "ref".into(),
            vnp_Amount: "1000000".into(),
            vnp_OrderInfo: "Hoan tien".into(),
            vnp_TransactionNo: "14226112".into(),
            vnp_TransactionDate: "20251129140740".into(),
            vnp_CreateBy: "operator".into(),
            vnp_CreateDate: "20251129150000".into(),
            vnp_IpAddr: "127.0.0.1".into(),
            vnp_SecureHash: String::new(),
        };
        assert_eq!(
            refund_hash_data(&request),
            "r1|2.1.0|refund|OCOPTEST|03|ref|1000000|14226112|20251129140740|operator|20251129150000|127.0.0.1|Hoan tien"
        );
    }
}
