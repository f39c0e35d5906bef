//! The four real providers' schemes against the payment service started for real (port
//! 0, fresh database, the test broker), over real HTTP: each provider's callback
//! security (valid, wrong signature, tampered amount, stale, replayed, unknown order,
//! wrong provider key, malformed), the sandbox gateway playing each provider end to end,
//! its control API, refunds through each provider's refund API, and the ledger after
//! every scenario.
//!
//! Callbacks are built with `ocop-payment-schemes`, whose own unit tests pin them to
//! independently computed vectors.

mod common;

use chrono::{DateTime, TimeDelta, Utc};
use common::{NEVER, TestPayment, spawn_payment, with_token};
use ocop_events::CloudEvent;
use ocop_grpc_kit::validation::violations;
use ocop_payment_schemes::{Secret, momo, vietqr, vnpay, zalopay};
use ocop_proto::{
    order::v1 as order_pb,
    payment::v1::{self as pb, payment_service_client::PaymentServiceClient},
};
use tonic::{Code, transport::Channel};
use uuid::Uuid;

const VNPAY_TMN: &str = "OCOPTEST";
const VNPAY_SECRET: &str = "VNPAYTESTSECRET0123456789ABCDEFG";
const MOMO_PARTNER: &str = "MOMOOCOP";
const MOMO_ACCESS: &str = "ACCESSKEY0123";
const MOMO_SECRET: &str = "momo-test-secret-key-0123456789";
const ZALOPAY_APP: i64 = 2553;
const ZALOPAY_KEY1: &str = "zalopay-test-key1-0123456789";
const ZALOPAY_KEY2: &str = "zalopay-test-key2-0123456789";
const VIETQR_BIN: &str = "970436";
const VIETQR_ACCOUNT: &str = "0011001234567";
const VIETQR_SECRET: &str = "vietqr-test-webhook-0123456789";
const OTHER_KEY: &str = "not-the-providers-key-0123456789";
const AMOUNT: i64 = 525_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    VnPay,
    MoMo,
    ZaloPay,
    VietQr,
}

impl Kind {
    fn method(self) -> order_pb::PaymentMethod {
        match self {
            Self::VnPay => order_pb::PaymentMethod::Vnpay,
            Self::MoMo => order_pb::PaymentMethod::Momo,
            Self::ZaloPay => order_pb::PaymentMethod::Zalopay,
            Self::VietQr => order_pb::PaymentMethod::Vietqr,
        }
    }

    fn path(self) -> &'static str {
        match self {
            Self::VnPay => "vnpay",
            Self::MoMo => "momo",
            Self::ZaloPay => "zalopay",
            Self::VietQr => "vietqr",
        }
    }

    fn proto(self) -> pb::PaymentProvider {
        match self {
            Self::VnPay => pb::PaymentProvider::Vnpay,
            Self::MoMo => pb::PaymentProvider::Momo,
            Self::ZaloPay => pb::PaymentProvider::Zalopay,
            Self::VietQr => pb::PaymentProvider::Vietqr,
        }
    }
}

/// Which key signs a forged callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    /// The provider's.
    Right,
    /// Another key (another merchant's, or ZaloPay's key1 instead of key2).
    Wrong,
}

/// What a callback says.
#[derive(Debug, Clone)]
struct Says {
    payment_id: Uuid,
    order_code: String,
    amount: i64,
    transaction: String,
    sent_at: DateTime<Utc>,
    key: Key,
    created_at: DateTime<Utc>,
}

/// A callback on the wire.
#[derive(Debug, Clone)]
struct Wire {
    get: bool,
    path_and_query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn secret(raw: &str) -> Secret {
    Secret::parse(raw).unwrap()
}

/// The callback `kind`'s provider sends for `says`, built and signed per its scheme.
fn callback(kind: Kind, says: &Says) -> Wire {
    let json = ("content-type".to_owned(), "application/json".to_owned());
    match kind {
        Kind::VnPay => {
            let key = match says.key {
                Key::Right => secret(VNPAY_SECRET),
                Key::Wrong => secret(OTHER_KEY),
            };
            let result = vnpay::PaymentResult {
                tmn_code: VNPAY_TMN.into(),
                txn_ref: says.payment_id.simple().to_string(),
                amount_vnd: says.amount,
                response_code: "00".into(),
                transaction_status: "00".into(),
                transaction_no: says.transaction.clone(),
                bank_code: "NCB".into(),
                pay_date: says.sent_at,
                order_info: format!("Thanh toan don hang {}", says.order_code),
            };
            Wire {
                get: true,
                path_and_query: format!("/callbacks/vnpay?{}", result.signed_query(&key)),
                headers: Vec::new(),
                body: Vec::new(),
            }
        }
        Kind::MoMo => {
            let credentials = momo::Credentials {
                partner_code: MOMO_PARTNER.into(),
                access_key: MOMO_ACCESS.into(),
                secret_key: match says.key {
                    Key::Right => secret(MOMO_SECRET),
                    Key::Wrong => secret(OTHER_KEY),
                },
            };
            let ipn = momo::Ipn {
                partner_code: MOMO_PARTNER.into(),
                order_id: says.payment_id.to_string(),
                request_id: says.payment_id.to_string(),
                amount: says.amount,
                order_info: "Thanh toan".into(),
                order_type: "momo_wallet".into(),
                trans_id: says.transaction.parse().unwrap(),
                result_code: 0,
                message: "Successful.".into(),
                pay_type: "qr".into(),
                response_time: says.sent_at.timestamp_millis(),
                extra_data: String::new(),
                signature: String::new(),
            }
            .sign(&credentials);
            Wire {
                get: false,
                path_and_query: "/callbacks/momo".into(),
                headers: vec![json],
                body: ipn.to_bytes(),
            }
        }
        Kind::ZaloPay => {
            let data = zalopay::CallbackData {
                app_id: ZALOPAY_APP,
                app_trans_id: zalopay::app_trans_id(
                    says.created_at,
                    &says.payment_id.simple().to_string(),
                )
                .unwrap(),
                app_time: says.sent_at.timestamp_millis(),
                app_user: "ocop-market".into(),
                amount: says.amount,
                embed_data: "{}".into(),
                item: "[]".into(),
                zp_trans_id: says.transaction.parse().unwrap(),
                server_time: says.sent_at.timestamp_millis(),
                channel: 38,
                merchant_user_id: String::new(),
                user_fee_amount: 0,
                discount_amount: 0,
            };
            // The wrong key is key1: ZaloPay MACs callbacks with key2.
            let key = match says.key {
                Key::Right => secret(ZALOPAY_KEY2),
                Key::Wrong => secret(ZALOPAY_KEY1),
            };
            Wire {
                get: false,
                path_and_query: "/callbacks/zalopay".into(),
                headers: vec![json],
                body: zalopay::Callback::signed(&data, &key).to_bytes(),
            }
        }
        Kind::VietQr => {
            let body = vietqr::Notification {
                transaction_id: says.transaction.clone(),
                account_number: VIETQR_ACCOUNT.into(),
                amount: says.amount,
                currency: "VND".into(),
                description: format!("{} chuyen khoan", says.order_code),
            }
            .to_bytes();
            let timestamp = says.sent_at.timestamp().to_string();
            let key = match says.key {
                Key::Right => secret(VIETQR_SECRET),
                Key::Wrong => secret(OTHER_KEY),
            };
            let signature = vietqr::sign_webhook(&key, &timestamp, &body);
            Wire {
                get: false,
                path_and_query: "/callbacks/vietqr".into(),
                headers: vec![
                    (vietqr::TIMESTAMP_HEADER.into(), timestamp),
                    (vietqr::SIGNATURE_HEADER.into(), signature),
                    json,
                ],
                body,
            }
        }
    }
}

/// The amount on the wire changed after signing (as a man in the middle would).
fn tamper_amount(kind: Kind, wire: &Wire, from: i64, to: i64) -> Wire {
    let mut tampered = wire.clone();
    match kind {
        Kind::VnPay => {
            tampered.path_and_query = wire.path_and_query.replace(
                &format!("vnp_Amount={}", from * 100),
                &format!("vnp_Amount={}", to * 100),
            );
            assert_ne!(tampered.path_and_query, wire.path_and_query);
        }
        _ => {
            let text = String::from_utf8(wire.body.clone()).unwrap();
            let changed = text.replace(&from.to_string(), &to.to_string());
            assert_ne!(changed, text);
            tampered.body = changed.into_bytes();
        }
    }
    tampered
}

/// A signed-but-unreadable callback (or for VNPay, a query without its fields).
fn malformed(kind: Kind) -> Wire {
    match kind {
        Kind::VnPay => {
            // Signed correctly, but vnp_Amount is not whole VND × 100.
            let params = [
                ("vnp_Amount", "12345"),
                ("vnp_TmnCode", VNPAY_TMN),
                ("vnp_TxnRef", "x"),
                ("vnp_ResponseCode", "00"),
                ("vnp_TransactionNo", "1"),
                ("vnp_PayDate", "20250101000000"),
            ];
            Wire {
                get: true,
                path_and_query: format!(
                    "/callbacks/vnpay?{}",
                    vnpay::signed_query(&secret(VNPAY_SECRET), params)
                ),
                headers: Vec::new(),
                body: Vec::new(),
            }
        }
        Kind::VietQr => {
            let body = br#"{"transaction_id":1}"#.to_vec();
            let timestamp = Utc::now().timestamp().to_string();
            let signature = vietqr::sign_webhook(&secret(VIETQR_SECRET), &timestamp, &body);
            Wire {
                get: false,
                path_and_query: "/callbacks/vietqr".into(),
                headers: vec![
                    (vietqr::TIMESTAMP_HEADER.into(), timestamp),
                    (vietqr::SIGNATURE_HEADER.into(), signature),
                ],
                body,
            }
        }
        Kind::MoMo | Kind::ZaloPay => Wire {
            get: false,
            path_and_query: format!("/callbacks/{}", kind.path()),
            headers: Vec::new(),
            body: b"{not json".to_vec(),
        },
    }
}

/// What the provider was answered, in its own terms: VNPay's `RspCode`, MoMo's HTTP
/// status, ZaloPay's `return_code`, the VietQR webhook's `verdict`.
fn answer_code(kind: Kind, status: u16, body: &str) -> String {
    match kind {
        Kind::VnPay => {
            assert_eq!(status, 200, "VNPay is always answered 200: {body}");
            let reply: serde_json::Value = serde_json::from_str(body).unwrap();
            reply["RspCode"].as_str().unwrap().to_owned()
        }
        Kind::MoMo => status.to_string(),
        Kind::ZaloPay => {
            let reply: serde_json::Value = serde_json::from_str(body).unwrap();
            reply["return_code"].to_string()
        }
        Kind::VietQr => {
            let reply: serde_json::Value = serde_json::from_str(body).unwrap();
            reply["verdict"].as_str().unwrap().to_owned()
        }
    }
}

/// The provider's code for a verdict (what the tests expect it to be answered).
fn expected(kind: Kind, verdict: &str) -> &'static str {
    match (kind, verdict) {
        (Kind::VnPay, "accepted") => "00",
        (Kind::VnPay, "already_processed") => "02",
        (Kind::VnPay, "unknown_payment") => "01",
        (Kind::VnPay, "wrong_amount") => "04",
        (Kind::VnPay, "invalid_signature") => "97",
        (Kind::VnPay, _) => "99",
        (Kind::MoMo, "accepted" | "already_processed") => "204",
        (Kind::MoMo, _) => "400",
        (Kind::ZaloPay, "accepted") => "1",
        (Kind::ZaloPay, "already_processed") => "2",
        (Kind::ZaloPay, "invalid_signature") => "-1",
        (Kind::ZaloPay, _) => "0",
        (Kind::VietQr, "accepted") => "accepted",
        (Kind::VietQr, "already_processed") => "already_processed",
        (Kind::VietQr, "invalid_signature") => "invalid_signature",
        (Kind::VietQr, "unknown_payment") => "unknown_payment",
        (Kind::VietQr, "wrong_amount") => "wrong_amount",
        (Kind::VietQr, "stale") => "stale",
        (Kind::VietQr, _) => "malformed",
    }
}

/// The payment service with every provider configured, their endpoints left to the
/// built-in sandbox gateway.
async fn spawn(extra: &[&str]) -> TestPayment {
    let providers = [
        format!("--vnpay-tmn-code={VNPAY_TMN}"),
        format!("--vnpay-hash-secret={VNPAY_SECRET}"),
        format!("--momo-partner-code={MOMO_PARTNER}"),
        format!("--momo-access-key={MOMO_ACCESS}"),
        format!("--momo-secret-key={MOMO_SECRET}"),
        format!("--zalopay-app-id={ZALOPAY_APP}"),
        format!("--zalopay-key1={ZALOPAY_KEY1}"),
        format!("--zalopay-key2={ZALOPAY_KEY2}"),
        format!("--vietqr-bank-bin={VIETQR_BIN}"),
        format!("--vietqr-account-number={VIETQR_ACCOUNT}"),
        "--vietqr-account-name=HTX OCOP TIEN YEN".to_owned(),
        format!("--vietqr-webhook-secret={VIETQR_SECRET}"),
    ];
    let methods = (!extra.iter().any(|arg| arg.starts_with("--payment-methods")))
        .then_some(ocop_testkit::EVERY_PAYMENT_METHOD);
    let args: Vec<&str> = providers
        .iter()
        .map(String::as_str)
        .chain(methods)
        .chain(extra.iter().copied())
        .collect();
    spawn_payment(&args).await
}

/// A pending payment, as the tests see it.
#[derive(Debug, Clone)]
struct Pending {
    order_id: Uuid,
    payment: pb::Payment,
    order_code: String,
}

impl Pending {
    fn id(&self) -> Uuid {
        Uuid::parse_str(&self.payment.id).unwrap()
    }

    fn created_at(&self) -> DateTime<Utc> {
        let at = self.payment.created_at.unwrap();
        DateTime::from_timestamp(at.seconds, u32::try_from(at.nanos).unwrap()).unwrap()
    }

    fn says(&self, transaction: &str) -> Says {
        Says {
            payment_id: self.id(),
            order_code: self.order_code.clone(),
            amount: self.payment.amount_vnd,
            transaction: transaction.to_owned(),
            sent_at: Utc::now(),
            key: Key::Right,
            created_at: self.created_at(),
        }
    }
}

impl TestPayment {
    /// Asks for a payment by `kind` of `amount_vnd` and waits for its intent.
    async fn request(&self, kind: Kind, amount_vnd: i64) -> Pending {
        let order_id = Uuid::now_v7();
        let order_code = format!("QN-{}", &order_id.simple().to_string()[24..]).to_uppercase();
        let deadline = Utc::now() + TimeDelta::minutes(15);
        self.publish(&CloudEvent::new(
            "/ocop/order",
            order_id.to_string(),
            Some(format!("order/{order_id}")),
            &order_pb::PaymentRequested {
                order_id: order_id.to_string(),
                order_code: order_code.clone(),
                amount_vnd,
                payment_method: kind.method() as i32,
                deadline: Some(prost_types::Timestamp {
                    seconds: deadline.timestamp(),
                    nanos: 0,
                }),
                occurred_at: None,
            },
        ))
        .await;
        let payment = self
            .wait_payment(order_id, "the payment intent", |_| true)
            .await;
        Pending {
            order_id,
            payment,
            order_code,
        }
    }

    /// Sends a callback; returns the HTTP status and body.
    async fn send(&self, wire: &Wire) -> (u16, String) {
        let url = format!("{}{}", self.http, wire.path_and_query);
        let client = reqwest::Client::new();
        let mut request = if wire.get {
            client.get(url)
        } else {
            client.post(url).body(wire.body.clone())
        };
        for (name, value) in &wire.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let response = request.send().await.expect("callback request");
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    }

    /// Sends a callback and returns the provider-specific answer code.
    async fn answer(&self, kind: Kind, wire: &Wire) -> String {
        let (status, body) = self.send(wire).await;
        answer_code(kind, status, &body)
    }

    async fn verdicts(&self, provider: &str) -> Vec<(String, bool)> {
        sqlx::query_as(
            "SELECT verdict, flagged FROM provider_callbacks WHERE provider = $1 ORDER BY received_at, id",
        )
        .bind(provider)
        .fetch_all(self.payments.pool())
        .await
        .unwrap()
    }

    async fn post(&self, path: &str) -> (u16, String) {
        let response = reqwest::Client::new()
            .post(format!("{}{path}", self.http))
            .send()
            .await
            .expect("http post");
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    }

    async fn refund(
        &self,
        order_id: Uuid,
        amount_vnd: i64,
        key: &str,
    ) -> Result<pb::Refund, tonic::Status> {
        refund_through(self.client.clone(), order_id, amount_vnd, key.to_owned()).await
    }
}

/// Asks for a refund through `client`; owns what it needs, so it can run in a task of
/// its own (concurrent refunds).
async fn refund_through(
    mut client: PaymentServiceClient<Channel>,
    order_id: Uuid,
    amount_vnd: i64,
    key: String,
) -> Result<pb::Refund, tonic::Status> {
    client
        .refund(with_token(
            pb::RefundRequest {
                order_id: order_id.to_string(),
                amount_vnd,
                reason: "thiếu hàng khi đóng gói".into(),
                idempotency_key: key,
            },
            &["payment:write"],
        ))
        .await
        .map(|response| response.into_inner().refund.unwrap())
}

/// Every security case of one provider's callback, in order, against one pending
/// payment (and one unknown): nothing but the valid callback changes anything, the
/// replay answers "already confirmed", and every callback is stored with its verdict.
async fn callback_security(kind: Kind) {
    let service = spawn(NEVER).await;
    let pending = service.request(kind, AMOUNT).await;
    assert_eq!(pending.payment.provider, kind.proto() as i32);
    let transaction = "4088878653";
    let valid = callback(kind, &pending.says(transaction));

    // Wrong signature: the signature replaced by another well-formed one.
    let mut garbled = valid.clone();
    match kind {
        Kind::VnPay => {
            let at = garbled.path_and_query.find("vnp_SecureHash=").unwrap() + 15;
            garbled.path_and_query.replace_range(at..at + 8, "00000000");
        }
        Kind::VietQr => garbled.headers[1].1 = "ab".repeat(32),
        Kind::MoMo | Kind::ZaloPay => {
            let mut text = String::from_utf8(garbled.body.clone()).unwrap();
            let at = text
                .find(if kind == Kind::MoMo {
                    "\"signature\":\""
                } else {
                    "\"mac\":\""
                })
                .unwrap();
            let start = text[at..].find(":\"").unwrap() + at + 2;
            text.replace_range(start..start + 8, "00000000");
            garbled.body = text.into_bytes();
        }
    }
    assert_eq!(
        service.answer(kind, &garbled).await,
        expected(kind, "invalid_signature")
    );
    // Tampered amount: signed for the right amount, changed on the way.
    let tampered = tamper_amount(kind, &valid, AMOUNT, 1_000);
    assert_eq!(
        service.answer(kind, &tampered).await,
        expected(kind, "invalid_signature")
    );
    // Wrong provider key.
    let mut says = pending.says(transaction);
    says.key = Key::Wrong;
    assert_eq!(
        service.answer(kind, &callback(kind, &says)).await,
        expected(kind, "invalid_signature")
    );
    // Stale: signed correctly, an hour old (the tolerance is 5 minutes).
    let mut says = pending.says(transaction);
    says.sent_at = Utc::now() - TimeDelta::hours(1);
    assert_eq!(
        service.answer(kind, &callback(kind, &says)).await,
        expected(kind, "stale")
    );
    // Unknown order.
    let mut says = pending.says("4088878654");
    says.payment_id = Uuid::now_v7();
    says.order_code = "QN-NOSUCHORDER".into();
    assert_eq!(
        service.answer(kind, &callback(kind, &says)).await,
        expected(kind, "unknown_payment")
    );
    // Malformed.
    let answer = service.answer(kind, &malformed(kind)).await;
    assert_eq!(answer, expected(kind, "malformed"));
    // Another amount, signed correctly.
    let mut says = pending.says(transaction);
    says.amount = AMOUNT - 25_000;
    assert_eq!(
        service.answer(kind, &callback(kind, &says)).await,
        expected(kind, "wrong_amount")
    );
    let still = service.get_payment(pending.order_id).await.unwrap();
    assert_eq!(
        still.status,
        pb::PaymentStatus::Pending as i32,
        "nothing changed yet"
    );

    // Valid, then replayed.
    assert_eq!(
        service.answer(kind, &valid).await,
        expected(kind, "accepted")
    );
    assert_eq!(
        service.answer(kind, &valid).await,
        expected(kind, "already_processed")
    );
    let paid = service.get_payment(pending.order_id).await.unwrap();
    assert_eq!(paid.status, pb::PaymentStatus::Succeeded as i32);
    assert_eq!(paid.captured_vnd, AMOUNT);
    assert_eq!(paid.provider_transaction_id, transaction);
    assert_eq!(
        service
            .outbox_count("ocop.payment.v1.PaymentSucceeded")
            .await,
        1,
        "the replay published nothing"
    );

    let verdicts = service.verdicts(kind.path()).await;
    let names: Vec<&str> = verdicts.iter().map(|(v, _)| v.as_str()).collect();
    assert_eq!(
        names,
        [
            "invalid_signature",
            "invalid_signature",
            "invalid_signature",
            "stale",
            "unknown_payment",
            "malformed",
            "wrong_amount",
            "accepted",
            "already_processed"
        ],
        "every callback is stored with its verdict"
    );
    // Money reported taken but not applied (a signed success too old to act on among
    // them) is flagged for an operator.
    let flagged: Vec<&str> = verdicts
        .iter()
        .filter(|(_, flagged)| *flagged)
        .map(|(v, _)| v.as_str())
        .collect();
    assert_eq!(flagged, ["stale", "unknown_payment", "wrong_amount"]);
    service.stop().await;
}

#[tokio::test]
async fn vnpay_ipn_is_verified_judged_and_answered_with_vnpay_codes() {
    callback_security(Kind::VnPay).await;
}

#[tokio::test]
async fn momo_ipn_is_verified_judged_and_answered_204() {
    callback_security(Kind::MoMo).await;
}

#[tokio::test]
async fn zalopay_callback_is_verified_with_key2_judged_and_answered_with_return_codes() {
    callback_security(Kind::ZaloPay).await;
}

#[tokio::test]
async fn vietqr_bank_webhook_is_verified_and_matched_by_memo_and_amount() {
    callback_security(Kind::VietQr).await;
}

/// The shopper's flow per provider: the pay link leads to the provider's page (the
/// sandbox's, reached the way the real one would be), paying there sends the provider's
/// callback, and the payment succeeds.
#[tokio::test]
async fn each_provider_checkout_leads_to_its_page_and_paying_there_settles_the_payment() {
    let service = spawn(NEVER).await;
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for kind in [Kind::VnPay, Kind::MoMo, Kind::ZaloPay] {
        let pending = service.request(kind, AMOUNT).await;
        let pay_url = format!("{}/pay/{}", service.http, pending.payment.id);
        assert_eq!(pending.payment.pay_url, pay_url);
        let response = no_redirects.get(&pay_url).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 303, "{kind:?}");
        let location = response.headers()["location"].to_str().unwrap().to_owned();
        let page = if kind == Kind::VnPay {
            // The signed payment URL, checked the way VNPay does.
            let (base, query) = location.split_once('?').unwrap();
            assert_eq!(
                base,
                format!("{}/sandbox/vnpay/paymentv2/vpcpay.html", service.http)
            );
            let params = vnpay::parse_query(query).unwrap();
            vnpay::verify_params(&secret(VNPAY_SECRET), &params).unwrap();
            assert_eq!(params["vnp_Amount"], (AMOUNT * 100).to_string());
            assert_eq!(params["vnp_Command"], "pay");
            assert_eq!(params["vnp_TmnCode"], VNPAY_TMN);
            let at_vnpay = no_redirects.get(&location).send().await.unwrap();
            assert_eq!(at_vnpay.status().as_u16(), 303);
            format!(
                "{}{}",
                service.http,
                at_vnpay.headers()["location"].to_str().unwrap()
            )
        } else {
            location
        };
        assert_eq!(
            page,
            format!("{}/sandbox/pay/{}", service.http, pending.payment.id)
        );
        let (status, body) = service
            .post(&format!("/sandbox/payments/{}/succeed", pending.payment.id))
            .await;
        assert_eq!(status, 200, "{kind:?}: {body}");
        service
            .wait_payment(pending.order_id, "the payment to succeed", |p| {
                p.status == pb::PaymentStatus::Succeeded as i32
            })
            .await;
        if kind == Kind::VnPay {
            // The sandbox sends the shopper back to the return URL, which shows but does
            // not trust: a tampered one is refused.
            let back = body
                .split("href=\"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .unwrap()
                .replace("&amp;", "&");
            assert!(back.contains("/payments/vnpay/return?"), "{back}");
            let shown = reqwest::get(&back).await.unwrap().text().await.unwrap();
            assert!(shown.contains("Đã thanh toán"), "{shown}");
            let forged = back.replace("vnp_ResponseCode=00", "vnp_ResponseCode=24");
            let refused = reqwest::get(&forged).await.unwrap();
            assert_eq!(refused.status().as_u16(), 400);
        }
    }
    let accepted = service.verdicts("vnpay").await;
    assert_eq!(accepted, [("accepted".to_owned(), false)]);
    service.stop().await;
}

#[tokio::test]
async fn vietqr_payment_shows_a_checked_qr_code_and_the_bank_transfer_settles_it() {
    let service = spawn(NEVER).await;
    let pending = service.request(Kind::VietQr, AMOUNT).await;
    assert_eq!(pending.payment.pay_url, "");
    let transfer = vietqr::parse(&pending.payment.vietqr_payload).unwrap();
    assert_eq!(transfer.bank_bin, VIETQR_BIN);
    assert_eq!(transfer.account_number, VIETQR_ACCOUNT);
    assert_eq!(transfer.amount_vnd, Some(AMOUNT));
    assert_eq!(transfer.memo, pending.order_code);
    let page = reqwest::get(format!("{}/pay/{}", service.http, pending.payment.id))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("<svg") && page.contains(&pending.order_code),
        "{page}"
    );
    let image = reqwest::get(format!(
        "{}/pay/{}/qr.svg",
        service.http, pending.payment.id
    ))
    .await
    .unwrap();
    assert_eq!(image.headers()["content-type"], "image/svg+xml");
    let bank = reqwest::get(format!(
        "{}/sandbox/vietqr/{}",
        service.http, pending.payment.id
    ))
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    assert!(bank.contains("525.000 ₫"), "{bank}");
    let (status, _) = service
        .post(&format!("/sandbox/payments/{}/succeed", pending.payment.id))
        .await;
    assert_eq!(status, 200);
    let paid = service
        .wait_payment(pending.order_id, "the transfer to settle it", |p| {
            p.status == pb::PaymentStatus::Succeeded as i32
        })
        .await;
    assert!(paid.provider_transaction_id.starts_with("FT"));
    service.stop().await;
}

#[tokio::test]
async fn vietqr_under_and_over_payments_are_recorded_flagged_and_not_confirmed() {
    let service = spawn(NEVER).await;
    let pending = service.request(Kind::VietQr, AMOUNT).await;
    for amount in [AMOUNT - 5_000, AMOUNT + 5_000] {
        let body = serde_json::json!({
            "amount_vnd": amount,
            "description": format!("CK {} cam on", pending.order_code.to_lowercase()),
        });
        let response = reqwest::Client::new()
            .post(format!("{}/sandbox/vietqr/transfers", service.http))
            .json(&body)
            .send()
            .await
            .unwrap();
        let answer: serde_json::Value = response.json().await.unwrap();
        assert_eq!(answer["status"], 200, "the bank is acknowledged: {answer}");
        assert!(
            answer["body"].as_str().unwrap().contains("wrong_amount"),
            "{answer}"
        );
    }
    let payment = service.get_payment(pending.order_id).await.unwrap();
    assert_eq!(payment.status, pb::PaymentStatus::Pending as i32);
    assert_eq!(payment.captured_vnd, 0);
    let stored: Vec<(String, bool, Option<Uuid>)> = sqlx::query_as(
        "SELECT verdict, flagged, payment_id FROM provider_callbacks ORDER BY received_at, id",
    )
    .fetch_all(service.payments.pool())
    .await
    .unwrap();
    assert_eq!(
        stored,
        vec![
            ("wrong_amount".to_owned(), true, Some(pending.id())),
            ("wrong_amount".to_owned(), true, Some(pending.id())),
        ]
    );
    service.stop().await;
}

#[tokio::test]
async fn momo_amounts_outside_its_limits_fail_before_momo_is_called() {
    let service = spawn(NEVER).await;
    let pending = service.request(Kind::MoMo, 5_000).await;
    let failed = service
        .wait_payment(pending.order_id, "the payment to fail", |p| {
            p.status == pb::PaymentStatus::Failed as i32
        })
        .await;
    assert_eq!(failed.captured_vnd, 0);
    let code: String =
        sqlx::query_scalar("SELECT reason FROM payment_transitions WHERE to_status = 'failed'")
            .fetch_one(service.payments.pool())
            .await
            .unwrap();
    assert_eq!(code, "refused before reaching the provider");
    let payload: Vec<u8> = sqlx::query_scalar(
        "SELECT payload FROM outbox WHERE ce_type = 'ocop.payment.v1.PaymentFailed'",
    )
    .fetch_one(service.payments.pool())
    .await
    .unwrap();
    let event = <pb::PaymentFailed as prost::Message>::decode(payload.as_slice()).unwrap();
    assert_eq!(event.reason_code, "amount_out_of_range");
    // The shopper's link shows the failure; it does not lead to MoMo.
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = no_redirects
        .get(format!("{}/pay/{}", service.http, pending.payment.id))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 200);
    assert!(page.text().await.unwrap().contains("không thành công"));
    service.stop().await;
}

/// The control API makes the gateway misbehave like a provider can: each twisted
/// callback is refused with the right verdict, and only the honest one counts.
#[tokio::test]
async fn sandbox_control_sends_duplicate_late_forged_and_wrong_amount_callbacks() {
    let service = spawn(NEVER).await;
    for kind in [Kind::VnPay, Kind::MoMo, Kind::ZaloPay, Kind::VietQr] {
        let pending = service.request(kind, AMOUNT).await;
        let twist =
            |name: &str| format!("/sandbox/payments/{}/callbacks/{name}", pending.payment.id);
        let (status, _) = service.post(&twist("duplicate")).await;
        assert_eq!(
            status, 409,
            "{kind:?}: nothing settled, nothing to duplicate"
        );
        for name in ["forged", "late", "wrong-amount"] {
            let (status, body) = service.post(&twist(name)).await;
            assert_eq!(status, 200, "{kind:?} {name}: {body}");
        }
        let (status, _) = service
            .post(&format!("/sandbox/payments/{}/succeed", pending.payment.id))
            .await;
        assert_eq!(status, 200);
        let (status, _) = service.post(&twist("duplicate")).await;
        assert_eq!(status, 200);
        let verdicts: Vec<String> = service
            .verdicts(kind.path())
            .await
            .into_iter()
            .map(|(v, _)| v)
            .collect();
        assert_eq!(
            verdicts,
            [
                "invalid_signature",
                "stale",
                "wrong_amount",
                "accepted",
                "already_processed"
            ],
            "{kind:?}"
        );
    }
    assert_eq!(
        service
            .outbox_count("ocop.payment.v1.PaymentSucceeded")
            .await,
        4
    );
    service.stop().await;
}

/// Pays a payment through the sandbox (the provider's callback) and returns it.
async fn paid(service: &TestPayment, kind: Kind) -> Pending {
    let pending = service.request(kind, AMOUNT).await;
    let (status, body) = service
        .post(&format!("/sandbox/payments/{}/succeed", pending.payment.id))
        .await;
    assert_eq!(status, 200, "{body}");
    service
        .wait_payment(pending.order_id, "the payment to succeed", |p| {
            p.status == pb::PaymentStatus::Succeeded as i32
        })
        .await;
    pending
}

#[tokio::test]
async fn partial_refunds_through_each_provider_add_up_to_the_captured_amount_and_never_beyond() {
    let service = spawn(NEVER).await;
    for kind in [Kind::VnPay, Kind::MoMo, Kind::ZaloPay] {
        let pending = paid(&service, kind).await;
        let first = service
            .refund(pending.order_id, 200_000, &format!("{kind:?}-1"))
            .await
            .unwrap();
        assert_eq!(first.status, pb::RefundStatus::Succeeded as i32, "{kind:?}");
        assert!(!first.provider_refund_id.is_empty());
        let partial = service.get_payment(pending.order_id).await.unwrap();
        assert_eq!(partial.status, pb::PaymentStatus::PartiallyRefunded as i32);
        assert_eq!(partial.refunded_vnd, 200_000);
        // More than what is left: refused, nothing written.
        let beyond = service
            .refund(
                pending.order_id,
                AMOUNT - 200_000 + 1,
                &format!("{kind:?}-x"),
            )
            .await
            .unwrap_err();
        assert_eq!(beyond.code(), Code::InvalidArgument);
        assert_eq!(violations(&beyond)[0].field, "amount_vnd");
        let rest = service
            .refund(pending.order_id, AMOUNT - 200_000, &format!("{kind:?}-2"))
            .await
            .unwrap();
        assert_eq!(rest.status, pb::RefundStatus::Succeeded as i32);
        let full = service.get_payment(pending.order_id).await.unwrap();
        assert_eq!(full.status, pb::PaymentStatus::Refunded as i32);
        assert_eq!(full.refunded_vnd, AMOUNT);
        assert_eq!(full.refunds.len(), 2);
        let again = service
            .refund(pending.order_id, 1, &format!("{kind:?}-3"))
            .await
            .unwrap_err();
        assert_eq!(again.code(), Code::InvalidArgument);
        assert_eq!(
            ocop_payment::ledger::order_balance(service.payments.pool(), pending.order_id)
                .await
                .unwrap(),
            0
        );
    }
    assert_eq!(
        service
            .outbox_count("ocop.payment.v1.RefundSucceeded")
            .await,
        6
    );
    service.stop().await;
}

#[tokio::test]
async fn concurrent_refunds_never_give_back_more_than_was_captured() {
    let service = spawn(NEVER).await;
    let pending = paid(&service, Kind::MoMo).await;
    let attempts: Vec<_> = (0..8)
        .map(|n| {
            tokio::spawn(refund_through(
                service.client.clone(),
                pending.order_id,
                100_000,
                format!("concurrent-{n}"),
            ))
        })
        .collect();
    let mut succeeded = 0;
    for attempt in attempts {
        match attempt.await.unwrap() {
            Ok(refund) => {
                assert_eq!(refund.status, pb::RefundStatus::Succeeded as i32);
                succeeded += 1;
            }
            Err(status) => assert_eq!(status.code(), Code::InvalidArgument),
        }
    }
    assert_eq!(succeeded, 5, "525.000 ₫ holds five refunds of 100.000 ₫");
    let payment = service.get_payment(pending.order_id).await.unwrap();
    assert_eq!(payment.refunded_vnd, 500_000);
    service.stop().await;
}

#[tokio::test]
async fn a_repeated_refund_request_returns_the_first_refund() {
    let service = spawn(NEVER).await;
    let pending = paid(&service, Kind::ZaloPay).await;
    let first = service
        .refund(pending.order_id, 50_000, "same-key")
        .await
        .unwrap();
    let second = service
        .refund(pending.order_id, 50_000, "same-key")
        .await
        .unwrap();
    assert_eq!(first.id, second.id);
    let other = service
        .refund(pending.order_id, 60_000, "same-key")
        .await
        .unwrap_err();
    assert_eq!(violations(&other)[0].field, "idempotency_key");
    let payment = service.get_payment(pending.order_id).await.unwrap();
    assert_eq!(payment.refunded_vnd, 50_000);
    assert_eq!(
        service
            .outbox_count("ocop.payment.v1.RefundSucceeded")
            .await,
        1
    );
    service.stop().await;
}

#[tokio::test]
async fn a_refund_the_provider_refuses_fails_and_gives_nothing_back() {
    let service = spawn(NEVER).await;
    let pending = paid(&service, Kind::VnPay).await;
    let (status, _) = service.post("/sandbox/refunds/fail-next?count=1").await;
    assert_eq!(status, 200);
    let refused = service
        .refund(pending.order_id, 100_000, "refused")
        .await
        .unwrap();
    assert_eq!(refused.status, pb::RefundStatus::Failed as i32);
    let payment = service.get_payment(pending.order_id).await.unwrap();
    assert_eq!(payment.status, pb::PaymentStatus::Succeeded as i32);
    assert_eq!(payment.refunded_vnd, 0);
    assert_eq!(
        service.outbox_count("ocop.payment.v1.RefundFailed").await,
        1
    );
    // The failed refund no longer holds its amount: the whole payment can be refunded.
    let whole = service
        .refund(pending.order_id, AMOUNT, "whole")
        .await
        .unwrap();
    assert_eq!(whole.status, pb::RefundStatus::Succeeded as i32);
    service.stop().await;
}

#[tokio::test]
async fn a_vietqr_refund_fails_as_a_manual_bank_transfer() {
    let service = spawn(NEVER).await;
    let pending = paid(&service, Kind::VietQr).await;
    let refund = service
        .refund(pending.order_id, 10_000, "vq")
        .await
        .unwrap();
    assert_eq!(refund.status, pb::RefundStatus::Failed as i32);
    let failed: String =
        sqlx::query_scalar("SELECT failure_code FROM refunds WHERE idempotency_key = 'vq'")
            .fetch_one(service.payments.pool())
            .await
            .unwrap();
    assert_eq!(failed, "manual_transfer_required");
    service.stop().await;
}

#[tokio::test]
async fn callbacks_payments_and_refunds_are_counted_by_provider() {
    let service = spawn(NEVER).await;
    let pending = paid(&service, Kind::MoMo).await;
    service
        .refund(pending.order_id, 10_000, "metrics")
        .await
        .unwrap();
    let forged = callback(
        Kind::MoMo,
        &Says {
            key: Key::Wrong,
            ..pending.says("1")
        },
    );
    service.send(&forged).await;
    let metrics = reqwest::get(format!("{}/metrics", service.http))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        r#"ocop_callbacks_total{provider="momo",verdict="accepted"}"#,
        r#"ocop_callbacks_total{provider="momo",verdict="invalid_signature"}"#,
        r#"ocop_payments_total{provider="momo",outcome="succeeded"}"#,
        r#"ocop_refunds_total{provider="momo",outcome="succeeded"}"#,
    ] {
        assert!(metrics.contains(line), "{line} missing from\n{metrics}");
    }
    service.stop().await;
}

/// The sandbox settles nothing by itself, and a pending payment's provider is asked about
/// it within a second (instead of the production minutes), so a test can wait for it.
const QUERIED_SOON: &[&str] = &[
    "--sandbox-outcome=never",
    "--provider-query-after=500ms",
    "--provider-query-interval=500ms",
];

/// ZaloPay calls back only for paid orders: a payment declined there is learnt from its
/// status query, through the same judge → apply path, and stored like a callback.
#[tokio::test]
async fn a_zalopay_payment_declined_at_zalopay_fails_through_the_status_query() {
    let service = spawn(QUERIED_SOON).await;
    let pending = service.request(Kind::ZaloPay, AMOUNT).await;
    let (status, body) = service
        .post(&format!("/sandbox/payments/{}/fail", pending.payment.id))
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("no callback"), "{body}");
    service
        .wait_payment(pending.order_id, "the query to fail the payment", |p| {
            p.status == pb::PaymentStatus::Failed as i32
        })
        .await;
    let stored: Vec<(String, String)> = sqlx::query_as(
        "SELECT verdict, raw_body FROM provider_callbacks WHERE provider = 'zalopay'",
    )
    .fetch_all(service.payments.pool())
    .await
    .unwrap();
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0].0, "accepted");
    assert!(stored[0].1.starts_with("query: "), "{}", stored[0].1);
    assert_eq!(
        service.outbox_count("ocop.payment.v1.PaymentFailed").await,
        1
    );
    service.stop().await;
}

/// An IPN that never arrives (MoMo settled the payment; its IPN was lost on the way,
/// simulated by recording the sandbox's settlement as delivered without sending it):
/// the status query learns the payment and applies it once.
#[tokio::test]
async fn a_momo_payment_whose_ipn_was_lost_succeeds_through_the_status_query() {
    let service = spawn(QUERIED_SOON).await;
    let pending = service.request(Kind::MoMo, AMOUNT).await;
    sqlx::query(
        "INSERT INTO sandbox_settlements (payment_id, outcome, provider_transaction_id, state, provider)
         VALUES ($1, 'success', '4088878699', 'delivered', 'momo')",
    )
    .bind(pending.id())
    .execute(service.payments.pool())
    .await
    .unwrap();
    let paid = service
        .wait_payment(pending.order_id, "the query to settle the payment", |p| {
            p.status == pb::PaymentStatus::Succeeded as i32
        })
        .await;
    assert_eq!(paid.provider_transaction_id, "4088878699");
    assert_eq!(paid.captured_vnd, AMOUNT);
    // The IPN arriving after all is a duplicate.
    let late_ipn = callback(Kind::MoMo, &pending.says("4088878699"));
    assert_eq!(service.answer(Kind::MoMo, &late_ipn).await, "204");
    let verdicts: Vec<String> = service
        .verdicts("momo")
        .await
        .into_iter()
        .map(|(v, _)| v)
        .collect();
    assert_eq!(verdicts, ["accepted", "already_processed"]);
    assert_eq!(
        service
            .outbox_count("ocop.payment.v1.PaymentSucceeded")
            .await,
        1
    );
    service.stop().await;
}

/// With the gateway off (production), nothing under `/sandbox/` answers: nobody can
/// settle a payment through it, not even a VietQR one whose webhook it would sign.
#[tokio::test]
async fn with_the_sandbox_gateway_off_no_sandbox_route_settles_anything() {
    let service = spawn(&[
        "--sandbox-gateway=false",
        "--sandbox-delay=100ms",
        "--payment-methods=vietqr,vnpay,momo,zalopay",
    ])
    .await;
    let pending = service.request(Kind::VietQr, AMOUNT).await;
    let (status, _) = service
        .post(&format!("/sandbox/payments/{}/succeed", pending.payment.id))
        .await;
    assert_eq!(status, 404);
    let page = reqwest::get(format!(
        "{}/sandbox/pay/{}",
        service.http, pending.payment.id
    ))
    .await
    .unwrap();
    assert_eq!(page.status().as_u16(), 404);
    let ours = reqwest::get(format!("{}/pay/{}", service.http, pending.payment.id))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !ours.contains("/sandbox/"),
        "no link to a sandbox bank: {ours}"
    );
    // The real webhook still works.
    let paid = callback(Kind::VietQr, &pending.says("FT00000000000001"));
    assert_eq!(service.answer(Kind::VietQr, &paid).await, "accepted");
    service.stop().await;
}
