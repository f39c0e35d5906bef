//! Stable-Rust property checks of every parser (the unit tier's counterpart of the
//! cargo-fuzz targets in `fuzz/`): seeded random mutations of the known-good vectors
//! and random bytes must never panic, and what parses must round-trip. A fixed seed
//! keeps the run reproducible; a failure prints the input.

use ocop_payment_schemes::{Secret, momo, vietqr, vnpay, zalopay};

/// SplitMix64: a tiny deterministic generator, enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// `seed` with a few random byte flips, inserts, deletes or truncation, or plain
    /// random bytes.
    fn mutate(&mut self, seed: &[u8]) -> Vec<u8> {
        if self.below(10) == 0 {
            return (0..self.below(64)).map(|_| self.next() as u8).collect();
        }
        let mut data = seed.to_vec();
        for _ in 0..=self.below(4) {
            if data.is_empty() {
                data.push(self.next() as u8);
                continue;
            }
            let at = self.below(data.len());
            match self.below(4) {
                0 => data[at] = self.next() as u8,
                1 => data.insert(at, b"0123456789{}\":,&=_%.-ABCVN"[self.below(26)]),
                2 => {
                    data.remove(at);
                }
                _ => data.truncate(at),
            }
        }
        data
    }
}

const ROUNDS: usize = 3_000;

#[test]
fn vietqr_payload_parser_never_panics_and_round_trips() {
    let seed = vietqr::Transfer {
        bank_bin: "970436".into(),
        account_number: "0011001234567".into(),
        amount_vnd: Some(75_000),
        memo: "QN-2611-0042".into(),
    }
    .payload()
    .unwrap();
    let mut rng = Rng(1);
    for _ in 0..ROUNDS {
        let data = rng.mutate(seed.as_bytes());
        let text = String::from_utf8_lossy(&data);
        let candidates = [text.to_string(), {
            // The same with its CRC made right, to get past the check.
            let cut = text.len().saturating_sub(4);
            if text.is_char_boundary(cut) {
                format!(
                    "{}{:04X}",
                    &text[..cut],
                    vietqr::crc16(text[..cut].as_bytes())
                )
            } else {
                text.to_string()
            }
        }];
        for candidate in candidates {
            if let Ok(transfer) = vietqr::parse(&candidate)
                && let Ok(rebuilt) = transfer.payload()
            {
                assert_eq!(vietqr::parse(&rebuilt), Ok(transfer), "input {candidate:?}");
            }
        }
    }
}

#[test]
fn vnpay_query_parser_never_panics_and_what_verifies_re_signs() {
    let secret = Secret::from_bytes(b"property-vnpay-secret-0123");
    let seed = "vnp_Amount=7500000&vnp_BankCode=NCB&vnp_OrderInfo=Thanh+toan&vnp_PayDate=20251129140740&vnp_ResponseCode=00&vnp_TmnCode=OCOPTEST&vnp_TransactionNo=14226112&vnp_TransactionStatus=00&vnp_TxnRef=abc";
    let mut rng = Rng(2);
    for _ in 0..ROUNDS {
        let data = rng.mutate(seed.as_bytes());
        let query = String::from_utf8_lossy(&data);
        let _ = vnpay::verify_ipn(&secret, &query);
        if let Ok(params) = vnpay::parse_query(&query)
            && let Ok(result) = vnpay::payment_result(&params)
        {
            let signed = result.signed_query(&secret);
            assert_eq!(
                vnpay::verify_ipn(&secret, &signed),
                Ok(result),
                "input {query:?}"
            );
        }
    }
}

#[test]
fn momo_zalopay_and_webhook_parsers_never_panic() {
    let momo_credentials = momo::Credentials {
        partner_code: "MOMO".into(),
        access_key: "F8BBA842ECF85".into(),
        secret_key: Secret::from_bytes(b"property-momo-secret-0123"),
    };
    let zalopay_credentials = zalopay::Credentials {
        app_id: 2553,
        key1: Secret::from_bytes(b"property-zalopay-key1"),
        key2: Secret::from_bytes(b"property-zalopay-key2"),
    };
    let webhook_secret = Secret::from_bytes(b"property-vietqr-secret");
    let momo_seed = br#"{"partnerCode":"MOMO","orderId":"o","requestId":"r","amount":75000,"orderInfo":"i","orderType":"momo_wallet","transId":1,"resultCode":0,"message":"m","payType":"qr","responseTime":1,"extraData":"","signature":"00"}"#;
    let zalopay_seed = br#"{"data":"{\"app_id\":2553,\"app_trans_id\":\"251129_x\",\"app_time\":1,\"app_user\":\"u\",\"amount\":75000,\"embed_data\":\"{}\",\"item\":\"[]\",\"zp_trans_id\":1,\"server_time\":1,\"channel\":38,\"merchant_user_id\":\"\",\"user_fee_amount\":0,\"discount_amount\":0}","mac":"00","type":1}"#;
    let webhook_seed = br#"{"transaction_id":"FT1","account_number":"1","amount":75000,"currency":"VND","description":"QN 1"}"#;
    let mut rng = Rng(3);
    for _ in 0..ROUNDS {
        let momo_body = rng.mutate(momo_seed);
        let _ = momo::verify_ipn(&momo_credentials, &momo_body);
        if let Ok(mut ipn) = momo::parse_ipn(&momo_body) {
            ipn.partner_code = "MOMO".into();
            let signed = ipn.sign(&momo_credentials);
            assert!(momo::verify_ipn(&momo_credentials, &signed.to_bytes()).is_ok());
        }
        let zalopay_body = rng.mutate(zalopay_seed);
        let _ = zalopay::verify_callback(&zalopay_credentials, &zalopay_body);
        let webhook_body = rng.mutate(webhook_seed);
        let timestamp = String::from_utf8_lossy(&rng.mutate(b"1764400000")).into_owned();
        let _ =
            vietqr::verify_webhook(&webhook_secret, Some(&timestamp), Some("00"), &webhook_body);
        if vietqr::parse_webhook(&timestamp, &webhook_body).is_ok() {
            let signature = vietqr::sign_webhook(&webhook_secret, &timestamp, &webhook_body);
            assert!(
                vietqr::verify_webhook(
                    &webhook_secret,
                    Some(&timestamp),
                    Some(&signature),
                    &webhook_body
                )
                .is_ok()
            );
        }
    }
}
