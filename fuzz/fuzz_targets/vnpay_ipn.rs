//! VNPay's IPN query string: parse, verify, read. Never panics; a verified result
//! always re-signs to a query that verifies again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ocop_payment_schemes::{Secret, vnpay};

fuzz_target!(|data: &[u8]| {
    let secret = Secret::from_bytes(b"fuzz-vnpay-secret-0123456789");
    let query = String::from_utf8_lossy(data);
    let _ = vnpay::verify_ipn(&secret, &query);
    if let Ok(params) = vnpay::parse_query(&query)
        && let Ok(result) = vnpay::payment_result(&params)
    {
        let signed = result.signed_query(&secret);
        assert_eq!(vnpay::verify_ipn(&secret, &signed), Ok(result));
    }
});
