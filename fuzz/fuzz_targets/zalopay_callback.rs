//! ZaloPay's callback `{data, mac, type}`: parse and verify with key2. Never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ocop_payment_schemes::{Secret, zalopay};

fuzz_target!(|data: &[u8]| {
    let credentials = zalopay::Credentials {
        app_id: 2553,
        key1: Secret::from_bytes(b"fuzz-zalopay-key1-0123456789"),
        key2: Secret::from_bytes(b"fuzz-zalopay-key2-0123456789"),
    };
    let _ = zalopay::verify_callback(&credentials, data);
    // The data string itself, as if its MAC had matched.
    let envelope = zalopay::Callback {
        data: String::from_utf8_lossy(data).into_owned(),
        mac: credentials
            .key2
            .hmac_sha256_hex(&String::from_utf8_lossy(data).into_owned().into_bytes()),
        kind: 1,
    };
    let _ = zalopay::verify_callback(&credentials, &envelope.to_bytes());
    let _ = zalopay::app_trans_suffix(&String::from_utf8_lossy(data));
});
