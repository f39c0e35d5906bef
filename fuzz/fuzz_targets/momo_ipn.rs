//! MoMo's IPN JSON: parse and verify. Never panics; a parsed IPN signed with the key
//! verifies.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ocop_payment_schemes::{Secret, momo};

fuzz_target!(|data: &[u8]| {
    let credentials = momo::Credentials {
        partner_code: "MOMO".into(),
        access_key: "F8BBA842ECF85".into(),
        secret_key: Secret::from_bytes(b"fuzz-momo-secret-0123456789"),
    };
    let _ = momo::verify_ipn(&credentials, data);
    if let Ok(mut ipn) = momo::parse_ipn(data) {
        ipn.partner_code = credentials.partner_code.clone();
        let signed = ipn.sign(&credentials);
        assert!(momo::verify_ipn(&credentials, &signed.to_bytes()).is_ok());
    }
});
