//! MoMo (All-In-One v2): create a payment with `POST /v2/gateway/api/create`, receive
//! the IPN, refund with `POST /v2/gateway/api/refund`, query with `POST
//! /v2/gateway/api/query`.
//!
//! Every signature is HMAC-SHA256(secret key, raw string) in hex, the raw string being
//! `key=value` pairs of the documented fields, **sorted by key and not URL-encoded**,
//! joined with `&`, `accessKey` first among them (it sorts first). `extraData` is
//! base64 of whatever the merchant wants back (here: JSON with the payment id). The
//! IPN is answered with HTTP 204 and no body.

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::{CallbackError, Malformed, Secret, SignatureError};

/// MoMo refuses wallet payments outside these limits (VND); checked before calling.
pub const MIN_AMOUNT_VND: i64 = 10_000;
pub const MAX_AMOUNT_VND: i64 = 50_000_000;
/// `requestType` of a wallet payment.
pub const CAPTURE_WALLET: &str = "captureWallet";

/// The merchant's MoMo credentials (the access key is an identifier, not a secret).
#[derive(Debug, Clone)]
pub struct Credentials {
    pub partner_code: String,
    pub access_key: String,
    pub secret_key: Secret,
}

impl Credentials {
    /// The signature of a message whose raw string `raw_signature` builds from our access
    /// key (every MoMo message is signed alike): HMAC-SHA256 with the secret key, in hex.
    fn signature(&self, raw_signature: impl FnOnce(&str) -> String) -> String {
        self.secret_key
            .hmac_sha256_hex(raw_signature(&self.access_key).as_bytes())
    }

    /// Checks a message's `signature` over its raw string, in constant time.
    fn check(
        &self,
        raw_signature: impl FnOnce(&str) -> String,
        signature: &str,
    ) -> Result<(), SignatureError> {
        self.secret_key
            .verify_sha256_hex(raw_signature(&self.access_key).as_bytes(), signature)
    }
}

fn raw(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// An amount MoMo will take, or why not.
pub fn check_amount(amount_vnd: i64) -> Result<(), String> {
    if (MIN_AMOUNT_VND..=MAX_AMOUNT_VND).contains(&amount_vnd) {
        Ok(())
    } else {
        Err(format!(
            "MoMo takes {MIN_AMOUNT_VND} to {MAX_AMOUNT_VND} VND; {amount_vnd} is outside"
        ))
    }
}

pub fn encode_extra_data(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

pub fn decode_extra_data(data: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD.decode(data).ok()
}

/// `POST /v2/gateway/api/create`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateRequest {
    pub partner_code: String,
    /// Idempotency key of the request.
    pub request_id: String,
    pub amount: i64,
    pub order_id: String,
    pub order_info: String,
    pub redirect_url: String,
    pub ipn_url: String,
    pub request_type: String,
    pub extra_data: String,
    pub lang: String,
    pub signature: String,
}

impl CreateRequest {
    /// `accessKey=…&amount=…&extraData=…&ipnUrl=…&orderId=…&orderInfo=…&partnerCode=…&
    /// redirectUrl=…&requestId=…&requestType=…`.
    pub fn raw_signature(&self, access_key: &str) -> String {
        raw(&[
            ("accessKey", access_key),
            ("amount", &self.amount.to_string()),
            ("extraData", &self.extra_data),
            ("ipnUrl", &self.ipn_url),
            ("orderId", &self.order_id),
            ("orderInfo", &self.order_info),
            ("partnerCode", &self.partner_code),
            ("redirectUrl", &self.redirect_url),
            ("requestId", &self.request_id),
            ("requestType", &self.request_type),
        ])
    }

    pub fn sign(mut self, credentials: &Credentials) -> Self {
        self.signature = credentials.signature(|access_key| self.raw_signature(access_key));
        self
    }

    pub fn verify(&self, credentials: &Credentials) -> Result<(), SignatureError> {
        credentials.check(|access_key| self.raw_signature(access_key), &self.signature)
    }
}

/// The answer to create.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct CreateResponse {
    pub partner_code: String,
    pub request_id: String,
    pub order_id: String,
    pub amount: i64,
    pub response_time: i64,
    pub message: String,
    /// 0: created.
    pub result_code: i64,
    pub pay_url: String,
}

/// The IPN body (also what the redirect URL carries as query parameters).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ipn {
    pub partner_code: String,
    pub order_id: String,
    pub request_id: String,
    pub amount: i64,
    pub order_info: String,
    pub order_type: String,
    /// MoMo's transaction id (idempotency key of the IPN).
    pub trans_id: i64,
    /// 0 success, 9000 authorised; anything else a failure (e.g. 1006 declined by user).
    pub result_code: i64,
    pub message: String,
    pub pay_type: String,
    /// Unix milliseconds.
    pub response_time: i64,
    pub extra_data: String,
    pub signature: String,
}

impl Ipn {
    /// `accessKey=…&amount=…&extraData=…&message=…&orderId=…&orderInfo=…&orderType=…&
    /// partnerCode=…&payType=…&requestId=…&responseTime=…&resultCode=…&transId=…`.
    pub fn raw_signature(&self, access_key: &str) -> String {
        raw(&[
            ("accessKey", access_key),
            ("amount", &self.amount.to_string()),
            ("extraData", &self.extra_data),
            ("message", &self.message),
            ("orderId", &self.order_id),
            ("orderInfo", &self.order_info),
            ("orderType", &self.order_type),
            ("partnerCode", &self.partner_code),
            ("payType", &self.pay_type),
            ("requestId", &self.request_id),
            ("responseTime", &self.response_time.to_string()),
            ("resultCode", &self.result_code.to_string()),
            ("transId", &self.trans_id.to_string()),
        ])
    }

    pub fn sign(mut self, credentials: &Credentials) -> Self {
        self.signature = credentials.signature(|access_key| self.raw_signature(access_key));
        self
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("strings and numbers serialise")
    }

    pub fn succeeded(&self) -> bool {
        self.result_code == 0 || self.result_code == 9000
    }
}

/// Parses an IPN body. Its signature travels inside the JSON, so the JSON is read into
/// this wire struct first; nothing reaches the domain before [`verify_ipn`] passes.
pub fn parse_ipn(body: &[u8]) -> Result<Ipn, Malformed> {
    serde_json::from_slice(body).map_err(|err| Malformed::new(err.to_string()))
}

/// Parses and verifies an IPN (partner code included: another merchant's IPN is not
/// ours even when signed).
pub fn verify_ipn(credentials: &Credentials, body: &[u8]) -> Result<Ipn, CallbackError> {
    let ipn = parse_ipn(body)?;
    if ipn.signature.is_empty() {
        return Err(SignatureError::Missing.into());
    }
    credentials.check(|access_key| ipn.raw_signature(access_key), &ipn.signature)?;
    if ipn.partner_code != credentials.partner_code {
        return Err(Malformed::new("partnerCode is not ours").into());
    }
    Ok(ipn)
}

/// `POST /v2/gateway/api/refund`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RefundRequest {
    pub partner_code: String,
    /// A new order id for the refund.
    pub order_id: String,
    pub request_id: String,
    pub amount: i64,
    /// The captured payment's transId.
    pub trans_id: i64,
    pub lang: String,
    pub description: String,
    pub signature: String,
}

impl RefundRequest {
    /// `accessKey=…&amount=…&description=…&orderId=…&partnerCode=…&requestId=…&transId=…`.
    pub fn raw_signature(&self, access_key: &str) -> String {
        raw(&[
            ("accessKey", access_key),
            ("amount", &self.amount.to_string()),
            ("description", &self.description),
            ("orderId", &self.order_id),
            ("partnerCode", &self.partner_code),
            ("requestId", &self.request_id),
            ("transId", &self.trans_id.to_string()),
        ])
    }

    pub fn sign(mut self, credentials: &Credentials) -> Self {
        self.signature = credentials.signature(|access_key| self.raw_signature(access_key));
        self
    }

    pub fn verify(&self, credentials: &Credentials) -> Result<(), SignatureError> {
        credentials.check(|access_key| self.raw_signature(access_key), &self.signature)
    }
}

/// The answer to refund.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct RefundResponse {
    pub partner_code: String,
    pub order_id: String,
    pub request_id: String,
    pub amount: i64,
    /// The refund's transId.
    pub trans_id: i64,
    /// 0: refunded.
    pub result_code: i64,
    pub message: String,
    pub response_time: i64,
}

/// `POST /v2/gateway/api/query`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryRequest {
    pub partner_code: String,
    pub request_id: String,
    pub order_id: String,
    pub lang: String,
    pub signature: String,
}

impl QueryRequest {
    /// `accessKey=…&orderId=…&partnerCode=…&requestId=…`.
    pub fn raw_signature(&self, access_key: &str) -> String {
        raw(&[
            ("accessKey", access_key),
            ("orderId", &self.order_id),
            ("partnerCode", &self.partner_code),
            ("requestId", &self.request_id),
        ])
    }

    pub fn sign(mut self, credentials: &Credentials) -> Self {
        self.signature = credentials.signature(|access_key| self.raw_signature(access_key));
        self
    }

    pub fn verify(&self, credentials: &Credentials) -> Result<(), SignatureError> {
        credentials.check(|access_key| self.raw_signature(access_key), &self.signature)
    }
}

/// The answer to query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct QueryResponse {
    pub partner_code: String,
    pub order_id: String,
    pub request_id: String,
    pub amount: i64,
    pub trans_id: i64,
    /// 0 paid (9000 authorised); 1000, 7000, 7002 and 8000 in progress; 1001–1007,
    /// 1017, 1026 and 4001–4100 failed; other codes are about the request, not the payment.
    pub result_code: i64,
    pub message: String,
    pub response_time: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credentials() -> Credentials {
        // MoMo's public test credentials from its developer docs (partner MOMO).
        Credentials {
            partner_code: "MOMO".into(),
            access_key: "F8BBA842ECF85".into(),
            secret_key: Secret::parse("K951B6PE1waDMi640xX08PD3vg6EkVlz").unwrap(),
        }
    }

    fn create() -> CreateRequest {
        CreateRequest {
            partner_code: "MOMO".into(),
            request_id: "0192f0c8-a3b4-7c1d-9e2f-3a4b5c6d7e8f".into(),
            amount: 75_000,
            order_id: "0192f0c8-a3b4-7c1d-9e2f-3a4b5c6d7e8f".into(),
            order_info: "Thanh toan don hang QN-2611-0042".into(),
            redirect_url: "http://127.0.0.1:9103/payments/momo/return".into(),
            ipn_url: "http://127.0.0.1:9103/callbacks/momo".into(),
            request_type: CAPTURE_WALLET.into(),
            extra_data: encode_extra_data(br#"{"order_code":"QN-2611-0042"}"#),
            lang: "vi".into(),
            signature: String::new(),
        }
    }

    #[test]
    fn create_signature_matches_a_vector_computed_independently() {
        // Python: raw = "accessKey=F8BBA842ECF85&amount=75000&extraData=<b64>&ipnUrl=…
        // &requestType=captureWallet"; hmac.new(secret, raw, hashlib.sha256).hexdigest().
        let signed = create().sign(&credentials());
        assert_eq!(
            signed.raw_signature("F8BBA842ECF85"),
            "accessKey=F8BBA842ECF85&amount=75000&extraData=eyJvcmRlcl9jb2RlIjoiUU4tMjYxMS0wMDQyIn0=&ipnUrl=http://127.0.0.1:9103/callbacks/momo&orderId=0192f0c8-a3b4-7c1d-9e2f-3a4b5c6d7e8f&orderInfo=Thanh toan don hang QN-2611-0042&partnerCode=MOMO&redirectUrl=http://127.0.0.1:9103/payments/momo/return&requestId=0192f0c8-a3b4-7c1d-9e2f-3a4b5c6d7e8f&requestType=captureWallet"
        );
        assert_eq!(signed.signature, CREATE_VECTOR);
        assert_eq!(signed.verify(&credentials()), Ok(()));
        let json: serde_json::Value = serde_json::to_value(&signed).unwrap();
        assert_eq!(json["requestType"], "captureWallet");
        assert_eq!(json["ipnUrl"], "http://127.0.0.1:9103/callbacks/momo");
    }

    const CREATE_VECTOR: &str = "03bf612234fbf57798571e9a9216ea3c3273574947b7420cbc37d31c79750ba2";

    fn ipn() -> Ipn {
        Ipn {
            partner_code: "MOMO".into(),
            order_id: "0192f0c8-a3b4-7c1d-9e2f-3a4b5c6d7e8f".into(),
            request_id: "0192f0c8-a3b4-7c1d-9e2f-3a4b5c6d7e8f".into(),
            amount: 75_000,
            order_info: "Thanh toan don hang QN-2611-0042".into(),
            order_type: "momo_wallet".into(),
            trans_id: 4_088_878_653,
            result_code: 0,
            message: "Successful.".into(),
            pay_type: "qr".into(),
            response_time: 1_764_400_060_000,
            extra_data: String::new(),
            signature: String::new(),
        }
    }

    #[test]
    fn ipn_signature_matches_a_vector_and_tampering_is_refused() {
        // Python: the documented IPN raw string over ipn()'s fields, HMAC-SHA256.
        let signed = ipn().sign(&credentials());
        assert_eq!(signed.signature, IPN_VECTOR);
        let body = signed.to_bytes();
        assert_eq!(verify_ipn(&credentials(), &body).unwrap(), signed);
        let mut tampered = signed.clone();
        tampered.amount = 10_000;
        assert!(matches!(
            verify_ipn(&credentials(), &tampered.to_bytes()),
            Err(CallbackError::Signature(_))
        ));
        let mut stranger = credentials();
        stranger.partner_code = "OTHER".into();
        assert!(matches!(
            verify_ipn(&stranger, &body),
            Err(CallbackError::Malformed(_))
        ));
        assert!(matches!(
            verify_ipn(&credentials(), b"{}"),
            Err(CallbackError::Malformed(_))
        ));
    }

    const IPN_VECTOR: &str = "1d36017361555c8402901b257afe1c659ef6f66a7e9db2140a55a36da543d875";

    #[test]
    fn query_raw_string_is_the_documented_one() {
        let query = QueryRequest {
            partner_code: "MOMO".into(),
            request_id: "q-1".into(),
            order_id: "o-1".into(),
            lang: "vi".into(),
            signature: String::new(),
        };
        assert_eq!(
            query.raw_signature("F8BBA842ECF85"),
            "accessKey=F8BBA842ECF85&orderId=o-1&partnerCode=MOMO&requestId=q-1"
        );
    }

    #[test]
    fn amount_limits_are_momos() {
        assert!(check_amount(9_999).is_err());
        assert!(check_amount(10_000).is_ok());
        assert!(check_amount(50_000_000).is_ok());
        assert!(check_amount(50_000_001).is_err());
    }

    #[test]
    fn refund_raw_string_is_the_documented_one() {
        let refund = RefundRequest {
            partner_code: "MOMO".into(),
            order_id: "r-1".into(),
            request_id: "r-1".into(),
            amount: 20_000,
            trans_id: 4_088_878_653,
            lang: "vi".into(),
            description: "Hoan tien".into(),
            signature: String::new(),
        };
        assert_eq!(
            refund.raw_signature("F8BBA842ECF85"),
            "accessKey=F8BBA842ECF85&amount=20000&description=Hoan tien&orderId=r-1&partnerCode=MOMO&requestId=r-1&transId=4088878653"
        );
        let signed = refund.sign(&credentials());
        assert_eq!(signed.verify(&credentials()), Ok(()));
    }
}
