//! The VietQR (EMVCo TLV) payload parser. Never panics; a payload that parses rebuilds
//! (when our builder accepts its fields) into one that parses to the same transfer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ocop_payment_schemes::vietqr;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = vietqr::fields(&text);
    if let Ok(transfer) = vietqr::parse(&text)
        && let Ok(rebuilt) = transfer.payload()
    {
        assert_eq!(vietqr::parse(&rebuilt), Ok(transfer));
    }
});
