//! The VietQR (EMVCo TLV) payload parser. Never panics; a payload that parses rebuilds
//! (when our builder accepts its fields) into one that parses to the same transfer.
//! Each input is also tried with its CRC made right, so mutations reach past the check.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ocop_payment_schemes::vietqr;

fn check(text: &str) {
    let _ = vietqr::fields(text);
    if let Ok(transfer) = vietqr::parse(text)
        && let Ok(rebuilt) = transfer.payload()
    {
        assert_eq!(vietqr::parse(&rebuilt), Ok(transfer));
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    check(&text);
    if text.len() >= 4 && text.is_char_boundary(text.len() - 4) {
        let covered = &text[..text.len() - 4];
        check(&format!(
            "{covered}{:04X}",
            vietqr::crc16(covered.as_bytes())
        ));
    }
});
