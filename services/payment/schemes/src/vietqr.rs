//! VietQR (NAPAS 247): the EMVCo merchant-presented QR payload for a bank transfer, and
//! the bank's signed transfer-notification webhook.
//!
//! # Payload
//!
//! A string of TLV fields (`ID` two digits, `LEN` two digits, value), in this order:
//!
//! | ID | value |
//! |---|---|
//! | `00` | payload format indicator `01` |
//! | `01` | point of initiation: `12` (dynamic: one payment, with an amount) |
//! | `38` | merchant account: `00` GUID `A000000727`, `01` beneficiary (`00` bank BIN, `01` account number), `02` service code `QRIBFTTA` (transfer to an account) |
//! | `53` | currency `704` (VND) |
//! | `54` | amount, VND, digits only |
//! | `58` | country `VN` |
//! | `62` | additional data: `08` purpose of transaction = the transfer memo (the order code) |
//! | `63` | CRC-16/CCITT-FALSE, 4 upper-case hex digits, over everything before it **including `6304`** |
//!
//! # Webhook
//!
//! The bank (or its aggregator) POSTs a JSON [`Notification`] for each credit to the
//! account, with `X-Webhook-Timestamp: <Unix seconds>` and `X-Webhook-Signature:
//! hex(HMAC-SHA256(secret, "<timestamp>.<raw body>"))`; binding the timestamp into the
//! MAC stops a captured notification from being replayed later with a fresh timestamp.

use serde::{Deserialize, Serialize};

use crate::{CallbackError, Malformed, Secret};

/// NAPAS's application identifier in tag 38.
pub const NAPAS_GUID: &str = "A000000727";
/// Service code: instant transfer to an account (`QRIBFTTC` would be to a card).
pub const SERVICE_TO_ACCOUNT: &str = "QRIBFTTA";
/// ISO 4217 numeric code of VND.
pub const CURRENCY_VND: &str = "704";
pub const COUNTRY_VN: &str = "VN";
/// The webhook's timestamp header.
pub const TIMESTAMP_HEADER: &str = "x-webhook-timestamp";
/// The webhook's signature header.
pub const SIGNATURE_HEADER: &str = "x-webhook-signature";

const CRC16: crc::Crc<u16> = crc::Crc::<u16>::new(&crc::CRC_16_IBM_3740);

/// CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no final XOR).
pub fn crc16(data: &[u8]) -> u16 {
    CRC16.checksum(data)
}

/// What a VietQR code asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    /// The receiving bank's NAPAS BIN (6 digits), e.g. `970436`.
    pub bank_bin: String,
    pub account_number: String,
    /// VND; `None` for a static code (the payer types the amount).
    pub amount_vnd: Option<i64>,
    /// The transfer memo (purpose of transaction).
    pub memo: String,
}

/// Why a payload cannot be built or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("VietQR payload: {0}")]
pub struct PayloadError(pub String);

fn invalid(reason: impl Into<String>) -> PayloadError {
    PayloadError(reason.into())
}

fn tlv(id: &str, value: &str) -> Result<String, PayloadError> {
    if value.len() > 99 {
        return Err(invalid(format!(
            "field {id} is {} bytes; at most 99",
            value.len()
        )));
    }
    Ok(format!("{id}{:02}{value}", value.len()))
}

/// Whether `text` may go into a payload: printable ASCII (banking apps reject the rest,
/// and TLV lengths count bytes).
fn printable(text: &str) -> bool {
    text.bytes().all(|b| (0x20..0x7f).contains(&b))
}

impl Transfer {
    /// The payload string, CRC included.
    pub fn payload(&self) -> Result<String, PayloadError> {
        if self.bank_bin.len() != 6 || !self.bank_bin.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid("the bank BIN must be 6 digits"));
        }
        if self.account_number.is_empty()
            || self.account_number.len() > 19
            || !self
                .account_number
                .bytes()
                .all(|b| b.is_ascii_alphanumeric())
        {
            return Err(invalid(
                "the account number must be 1 to 19 letters or digits",
            ));
        }
        if self.memo.is_empty() || self.memo.len() > 25 || !printable(&self.memo) {
            return Err(invalid(
                "the memo must be 1 to 25 printable ASCII characters",
            ));
        }
        let beneficiary = tlv("00", &self.bank_bin)? + &tlv("01", &self.account_number)?;
        let merchant =
            tlv("00", NAPAS_GUID)? + &tlv("01", &beneficiary)? + &tlv("02", SERVICE_TO_ACCOUNT)?;
        let mut payload = tlv("00", "01")?;
        payload += &tlv(
            "01",
            if self.amount_vnd.is_some() {
                "12"
            } else {
                "11"
            },
        )?;
        payload += &tlv("38", &merchant)?;
        payload += &tlv("53", CURRENCY_VND)?;
        if let Some(amount) = self.amount_vnd {
            if amount <= 0 || amount > 9_999_999_999_999 {
                return Err(invalid("the amount must be positive and at most 13 digits"));
            }
            payload += &tlv("54", &amount.to_string())?;
        }
        payload += &tlv("58", COUNTRY_VN)?;
        payload += &tlv("62", &tlv("08", &self.memo)?)?;
        payload += "6304";
        let crc = crc16(payload.as_bytes());
        payload += &format!("{crc:04X}");
        Ok(payload)
    }
}

/// One TLV field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field<'a> {
    pub id: &'a str,
    pub value: &'a str,
}

/// Splits `data` into TLV fields. Only printable ASCII is accepted.
pub fn fields(data: &str) -> Result<Vec<Field<'_>>, PayloadError> {
    if !printable(data) {
        return Err(invalid("not printable ASCII"));
    }
    let mut rest = data;
    let mut out = Vec::new();
    while !rest.is_empty() {
        if rest.len() < 4 {
            return Err(invalid("truncated field header"));
        }
        let (id, tail) = rest.split_at(2);
        let (len, tail) = tail.split_at(2);
        if !id.bytes().all(|b| b.is_ascii_digit()) || !len.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid(format!("field header `{id}{len}` is not digits")));
        }
        let len: usize = len.parse().map_err(|_| invalid("bad length"))?;
        if tail.len() < len {
            return Err(invalid(format!("field {id} is truncated")));
        }
        let (value, tail) = tail.split_at(len);
        out.push(Field { id, value });
        rest = tail;
    }
    Ok(out)
}

fn find<'a>(fields: &[Field<'a>], id: &str) -> Option<&'a str> {
    fields.iter().find(|f| f.id == id).map(|f| f.value)
}

/// Reads a payload: checks the CRC, the format, NAPAS's GUID, the currency and the
/// country, and returns the transfer it asks for.
pub fn parse(payload: &str) -> Result<Transfer, PayloadError> {
    let top = fields(payload)?;
    let last = top.last().ok_or_else(|| invalid("empty"))?;
    if last.id != "63" || last.value.len() != 4 {
        return Err(invalid("the last field must be the CRC (63, 4 characters)"));
    }
    let covered = &payload[..payload.len() - 4];
    let claimed = u16::from_str_radix(last.value, 16).map_err(|_| invalid("the CRC is not hex"))?;
    if crc16(covered.as_bytes()) != claimed {
        return Err(invalid("CRC mismatch"));
    }
    if find(&top, "00") != Some("01") {
        return Err(invalid("payload format indicator must be 01"));
    }
    let merchant = fields(find(&top, "38").ok_or_else(|| invalid("no merchant account (38)"))?)?;
    if find(&merchant, "00") != Some(NAPAS_GUID) {
        return Err(invalid("not a NAPAS merchant account"));
    }
    let beneficiary = fields(find(&merchant, "01").ok_or_else(|| invalid("no beneficiary"))?)?;
    let bank_bin = find(&beneficiary, "00").ok_or_else(|| invalid("no bank BIN"))?;
    let account_number = find(&beneficiary, "01").ok_or_else(|| invalid("no account"))?;
    if find(&top, "53") != Some(CURRENCY_VND) {
        return Err(invalid("currency must be 704 (VND)"));
    }
    if find(&top, "58") != Some(COUNTRY_VN) {
        return Err(invalid("country must be VN"));
    }
    let amount_vnd = match find(&top, "54") {
        None => None,
        Some(raw) if !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit()) => Some(
            raw.parse::<i64>()
                .map_err(|_| invalid("amount out of range"))?,
        ),
        Some(_) => return Err(invalid("amount must be digits")),
    };
    let memo = match find(&top, "62") {
        Some(additional) => find(&fields(additional)?, "08").unwrap_or_default(),
        None => "",
    };
    Ok(Transfer {
        bank_bin: bank_bin.to_owned(),
        account_number: account_number.to_owned(),
        amount_vnd,
        memo: memo.to_owned(),
    })
}

/// A credit to the merchant's account, as the bank notifies it (other fields the bank
/// adds are covered by the signature and ignored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// The bank's reference of the transfer (idempotency key).
    pub transaction_id: String,
    /// The credited account (ours).
    pub account_number: String,
    pub amount: i64,
    /// `VND`.
    pub currency: String,
    /// The memo the payer typed (should contain the order code).
    pub description: String,
}

impl Notification {
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("strings and numbers serialise")
    }
}

fn signed_data(timestamp: &str, body: &[u8]) -> Vec<u8> {
    let mut data = Vec::with_capacity(timestamp.len() + 1 + body.len());
    data.extend_from_slice(timestamp.as_bytes());
    data.push(b'.');
    data.extend_from_slice(body);
    data
}

/// The webhook signature of `body` sent at `timestamp` (Unix seconds, as text).
pub fn sign_webhook(secret: &Secret, timestamp: &str, body: &[u8]) -> String {
    secret.hmac_sha256_hex(&signed_data(timestamp, body))
}

/// A verified webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedNotification {
    pub notification: Notification,
    /// The signed timestamp, Unix seconds.
    pub timestamp: i64,
}

/// Verifies the signature over the raw timestamp and body (before reading either), then
/// parses them.
pub fn verify_webhook(
    secret: &Secret,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
) -> Result<VerifiedNotification, CallbackError> {
    let signature = signature.ok_or(crate::SignatureError::Missing)?;
    let timestamp = timestamp.ok_or(crate::SignatureError::Missing)?;
    secret.verify_sha256_hex(&signed_data(timestamp, body), signature)?;
    parse_webhook(timestamp, body).map_err(CallbackError::from)
}

/// Parses a webhook's timestamp and body (no signature check: [`verify_webhook`]).
pub fn parse_webhook(timestamp: &str, body: &[u8]) -> Result<VerifiedNotification, Malformed> {
    let timestamp: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| Malformed::new("the timestamp is not Unix seconds"))?;
    let notification: Notification =
        serde_json::from_slice(body).map_err(|err| Malformed::new(err.to_string()))?;
    if notification.transaction_id.trim().is_empty() {
        return Err(Malformed::new("transaction_id is empty"));
    }
    Ok(VerifiedNotification {
        notification,
        timestamp,
    })
}

/// Upper-case letters and digits only: banks drop punctuation from memos, so a memo and
/// an order code are compared in this form.
pub fn normalize_memo(text: &str) -> String {
    text.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_is_ccitt_false() {
        // The CRC catalogue's check value for CRC-16/CCITT-FALSE (a.k.a. IBM-3740):
        // "123456789" → 0x29B1 (reveng.sourceforge.io/crc-catalogue).
        assert_eq!(crc16(b"123456789"), 0x29B1);
    }

    fn transfer() -> Transfer {
        Transfer {
            bank_bin: "970436".into(),
            account_number: "0011001234567".into(),
            amount_vnd: Some(75_000),
            memo: "QN-2611-0042".into(),
        }
    }

    #[test]
    fn payload_matches_a_hand_built_vector() {
        // Hand-built from the EMVCo/NAPAS field table above and checked independently
        // with Python: binascii.crc_hqx(payload_without_crc.encode(), 0xFFFF) == 0xA504
        // (crc_hqx with init 0xFFFF is CRC-16/CCITT-FALSE).
        let expected = "00020101021238570010A00000072701270006970436011300110012345670208QRIBFTTA53037045405750005802VN62160812QN-2611-00426304";
        let payload = transfer().payload().unwrap();
        assert_eq!(&payload[..payload.len() - 4], expected);
        assert_eq!(&payload[payload.len() - 4..], VECTOR_CRC);
    }

    const VECTOR_CRC: &str = "A504";

    #[test]
    fn published_payloads_parse_with_their_crc() {
        // Real payloads published in public material (found with the search tool),
        // their CRC re-checked with Python's binascii.crc_hqx(…, 0xFFFF):
        // 1. payOS's createPaymentLink response example (`qrCode`, a VietQR dynamic code);
        let payos = parse("00020101021238570010A000000727012700069704220113VQRQABRLS04480208QRIBFTTA5303704540420005802VN6224082018f8746b181045f0a2ce63040FC0").unwrap();
        assert_eq!(
            payos,
            Transfer {
                bank_bin: "970422".into(),
                account_number: "VQRQABRLS0448".into(),
                amount_vnd: Some(2_000),
                memo: "18f8746b181045f0a2ce".into(),
            }
        );
        // 2. the decode example in the README of the PHP package cuongnm/viet_qr_pay;
        let readme = parse("00020101021238530010A0000007270123000697041601092576788590208QRIBFTTA5303704540410005802VN62150811Chuyen tien6304BBB8").unwrap();
        assert_eq!(readme.bank_bin, "970416");
        assert_eq!(readme.account_number, "257678859");
        assert_eq!(readme.amount_vnd, Some(1_000));
        assert_eq!(readme.memo, "Chuyen tien");
        // 3. a static code (point of initiation 11, no amount) from a public project.
        let fixed = parse("00020101021138570010A00000072701270006970405011322082054793800208QRIBFTTA53037045802VN630497A6").unwrap();
        assert_eq!(fixed.amount_vnd, None);
        assert_eq!(fixed.account_number, "2208205479380");
        // And ours rebuild byte for byte.
        assert_eq!(
            payos.payload().unwrap(),
            "00020101021238570010A000000727012700069704220113VQRQABRLS04480208QRIBFTTA5303704540420005802VN6224082018f8746b181045f0a2ce63040FC0"
        );
        // A payload hard-coded in a public project, evidently edited by hand: its amount
        // (`54` `06` then seven digits) breaks the TLV structure, and its CRC is wrong
        // too (1A95 would be right). Refused.
        assert!(parse("00020101021238540010A00000072701240006970422011009447998190208QRIBFTTA5303704540625000005802VN62060802Qr63044274").is_err());
    }

    #[test]
    fn payload_round_trips_through_the_parser() {
        let payload = transfer().payload().unwrap();
        assert_eq!(parse(&payload).unwrap(), transfer());
        let static_code = Transfer {
            amount_vnd: None,
            ..transfer()
        };
        assert_eq!(parse(&static_code.payload().unwrap()).unwrap(), static_code);
    }

    #[test]
    fn tampered_or_truncated_payloads_are_refused() {
        let payload = transfer().payload().unwrap();
        let tampered = payload.replace("540575000", "540510000");
        assert_eq!(parse(&tampered), Err(invalid("CRC mismatch")));
        assert!(parse(&payload[..payload.len() - 1]).is_err());
        assert!(parse("").is_err());
        assert!(parse("0002016304").is_err());
        assert!(parse("00020101021238570010A0000007270127éé").is_err());
    }

    #[test]
    fn bad_transfers_are_not_encoded() {
        let mut bad = transfer();
        bad.bank_bin = "97043".into();
        assert!(bad.payload().is_err());
        let mut bad = transfer();
        bad.memo = "Đơn hàng".into();
        assert!(bad.payload().is_err());
        let mut bad = transfer();
        bad.amount_vnd = Some(0);
        assert!(bad.payload().is_err());
    }

    #[test]
    fn webhook_signature_covers_timestamp_and_body() {
        let secret = Secret::parse("vietqr-webhook-secret-0123").unwrap();
        let body = Notification {
            transaction_id: "FT25333000001".into(),
            account_number: "0011001234567".into(),
            amount: 75_000,
            currency: "VND".into(),
            description: "QN 2611 0042 chuyen tien".into(),
        }
        .to_bytes();
        let signature = sign_webhook(&secret, "1764400000", &body);
        let verified =
            verify_webhook(&secret, Some("1764400000"), Some(&signature), &body).unwrap();
        assert_eq!(verified.timestamp, 1_764_400_000);
        assert_eq!(verified.notification.amount, 75_000);
        // Another timestamp with the same signature: refused.
        assert!(matches!(
            verify_webhook(&secret, Some("1764400999"), Some(&signature), &body),
            Err(CallbackError::Signature(_))
        ));
        assert!(matches!(
            verify_webhook(&secret, Some("1764400000"), None, &body),
            Err(CallbackError::Signature(crate::SignatureError::Missing))
        ));
    }

    #[test]
    fn webhook_vector_computed_independently() {
        // Python: hmac.new(b"vietqr-webhook-secret-0123", b'1764400000.{"a":1}',
        // hashlib.sha256).hexdigest()
        let secret = Secret::parse("vietqr-webhook-secret-0123").unwrap();
        assert_eq!(
            sign_webhook(&secret, "1764400000", br#"{"a":1}"#),
            "cda2daac42fa8859f30336341f5ac53abe8262bf3b82a7ef647ff1effe0d74dd"
        );
    }

    #[test]
    fn memos_match_without_punctuation_or_case() {
        assert_eq!(
            normalize_memo("qn-2611-0042 chuyen khoan"),
            "QN26110042CHUYENKHOAN"
        );
        assert!(normalize_memo("QN 2611 0042").contains(&normalize_memo("QN-2611-0042")));
    }
}
