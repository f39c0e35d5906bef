//! The VietQR bank-transfer webhook: timestamp header + raw body, signed. Never panics;
//! what parses, signed, verifies.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ocop_payment_schemes::{Secret, vietqr};

fuzz_target!(|data: &[u8]| {
    let secret = Secret::from_bytes(b"fuzz-vietqr-secret-0123456789");
    // First line: the timestamp header; the rest: the body.
    let split = data.iter().position(|b| *b == b'\n').unwrap_or(data.len());
    let timestamp = String::from_utf8_lossy(&data[..split]);
    let body = data.get(split + 1..).unwrap_or_default();
    let _ = vietqr::verify_webhook(&secret, Some(&timestamp), Some("00"), body);
    if vietqr::parse_webhook(&timestamp, body).is_ok() {
        let signature = vietqr::sign_webhook(&secret, &timestamp, body);
        assert!(vietqr::verify_webhook(&secret, Some(&timestamp), Some(&signature), body).is_ok());
    }
    let _ = vietqr::normalize_memo(&String::from_utf8_lossy(body));
});
