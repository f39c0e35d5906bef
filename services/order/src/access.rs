//! Who may read or cancel an order: its shopper, by the access token PlaceOrder answered;
//! an operator, by a scope; the partner of the order's sales channel (cancel only; its
//! read view is the partner API's). Everyone else finds no such order.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use ocop_grpc_kit::auth::Claims;
use sha2::{Digest as _, Sha256};

use crate::{domain::state::CancellationReason, store::OrderRow};

/// Marks the token for secret scanners and for people reading a log by mistake.
const PREFIX: &str = "ocop_oat_";

/// A fresh access token and the hash the order keeps of it.
pub fn new_token() -> (String, Vec<u8>) {
    let token = format!(
        "{PREFIX}{}",
        URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
    );
    let hash = hash(&token);
    (token, hash)
}

/// What the order keeps of a token: its SHA-256 (a token has 256 random bits, so a
/// plain hash is enough; nobody can guess one from it).
pub fn hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Why a caller may not touch an order.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// Neither an access token nor a bearer token came with the call.
    NoCredential,
    /// What came does not open this order: answered like an unknown order.
    NotYours,
}

fn holds_token(row: &OrderRow, access_token: &str) -> bool {
    !access_token.is_empty() && row.access_token_hashes.contains(&hash(access_token))
}

fn refusal(access_token: &str, caller: Option<&Claims>) -> Refused {
    if access_token.is_empty() && caller.is_none() {
        Refused::NoCredential
    } else {
        Refused::NotYours
    }
}

/// GetOrder: the order's access token, or `order:read`.
pub fn may_read(
    row: &OrderRow,
    access_token: &str,
    caller: Option<&Claims>,
) -> Result<(), Refused> {
    if caller.is_some_and(|claims| claims.has_scope("order:read")) || holds_token(row, access_token)
    {
        Ok(())
    } else {
        Err(refusal(access_token, caller))
    }
}

/// CancelOrder: an operator (`order:write`) cancels as OPERATOR; the shopper (the access
/// token) and the partner of the order's channel cancel as CUSTOMER_REQUEST.
pub fn may_cancel(
    row: &OrderRow,
    access_token: &str,
    caller: Option<&Claims>,
) -> Result<CancellationReason, Refused> {
    if caller.is_some_and(|claims| claims.has_scope("order:write")) {
        return Ok(CancellationReason::Operator);
    }
    let own_channel = caller
        .and_then(Claims::partner_channel)
        .is_some_and(|channel| channel == row.sales_channel);
    if own_channel || holds_token(row, access_token) {
        Ok(CancellationReason::CustomerRequest)
    } else {
        Err(refusal(access_token, caller))
    }
}
