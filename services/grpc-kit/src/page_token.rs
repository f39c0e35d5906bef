//! Opaque page tokens: the position after the last item of a page, tagged with the list
//! it belongs to and hex-encoded, so that clients treat them as opaque and a token of
//! another list (or another RPC) is refused instead of being read as a position.
//!
//! Decoding never slices text at a caller's offsets (a token cut inside a multi-byte
//! character once panicked a handler): it works on bytes, checks the tag, and leaves the
//! position to the service's own parser, whose error becomes the same violation.

use crate::validation::FieldViolation;

/// The field every paginated request names its token by.
const FIELD: &str = "page_token";
/// Longer tokens were never issued (a position is a key or a timestamp and an id).
const MAX_TOKEN_CHARS: usize = 512;

fn invalid() -> FieldViolation {
    FieldViolation::new(FIELD, "is not a token this service issued for this list")
}

/// The token of `position` in the list named `list` (e.g. `catalog.products`).
pub fn encode(list: &str, position: &str) -> String {
    format!("{list}\n{position}")
        .bytes()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// The position a token of `list` carries, parsed by `parse`; `None` for an empty
/// token (the first page). Anything else is `INVALID_ARGUMENT` on `page_token`.
pub fn decode<T>(
    list: &str,
    token: &str,
    parse: impl FnOnce(&str) -> Option<T>,
) -> Result<Option<T>, FieldViolation> {
    if token.is_empty() {
        return Ok(None);
    }
    if token.len() > MAX_TOKEN_CHARS || !token.len().is_multiple_of(2) {
        return Err(invalid());
    }
    let bytes = token
        .as_bytes()
        .chunks_exact(2)
        .map(|pair| {
            std::str::from_utf8(pair)
                .ok()
                .and_then(|digits| u8::from_str_radix(digits, 16).ok())
        })
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(invalid)?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let (tag, position) = text.split_once('\n').ok_or_else(invalid)?;
    if tag != list {
        return Err(invalid());
    }
    parse(position).map(Some).ok_or_else(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn any(position: &str) -> Option<String> {
        Some(position.to_owned())
    }

    #[test]
    fn a_token_round_trips_in_its_own_list() {
        let token = encode("catalog.products", "BLI-MIEN-DONG-500G");
        assert_eq!(
            decode("catalog.products", &token, any).unwrap().as_deref(),
            Some("BLI-MIEN-DONG-500G")
        );
        assert_eq!(decode("catalog.products", "", any).unwrap(), None);
    }

    #[test]
    fn crafted_tokens_are_refused_without_panicking() {
        let other_list = encode("order.orders", "1.x");
        let bad_position = encode("catalog.products", "not-a-number");
        for token in [
            "zz",
            "abc",
            "aé0",  // a multi-byte character across a pair boundary
            "éé",   // two bytes each: even length, no hex
            "ffff", // not UTF-8
            "0a",   // no tag
            &other_list,
            &"00".repeat(1_000),
        ] {
            let violation = decode("catalog.products", token, any).unwrap_err();
            assert_eq!(violation.field, "page_token", "{token:?}");
        }
        let violation =
            decode("catalog.products", &bad_position, |p| p.parse::<u64>().ok()).unwrap_err();
        assert_eq!(violation.field, "page_token");
    }
}
