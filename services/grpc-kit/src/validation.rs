//! Request validation errors: `INVALID_ARGUMENT` naming the field, with a
//! `google.rpc.BadRequest` detail that clients can read programmatically; and the rules
//! every service applies to the text it is sent (see `docs/api.md`, "Text fields"):
//!
//! - [`single_line`]: no control character at all (C0 including TAB, CR and LF, DEL,
//!   C1). NUL in particular: PostgreSQL refuses it in `text`, so it must never get past
//!   the edge.
//! - [`multi_line`]: the same, except LF (`\n`), the one line break accepted. CR is
//!   refused rather than normalised, so what a caller sends is what is stored (and what
//!   an idempotency fingerprint covers).
//! - [`quote`]: error messages quote at most [`QUOTE_CHARS`] characters of the input,
//!   so a huge value never makes a huge error (a 10 kB field echoed in the message and
//!   the `BadRequest` detail overflows a stock client's 8 kB metadata limit).

use tonic_types::{ErrorDetails, StatusExt as _};

/// One invalid field of a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {description}")]
pub struct FieldViolation {
    /// The field's path in the request, e.g. `lines[2].quantity`.
    pub field: String,
    pub description: String,
}

impl FieldViolation {
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            description: description.into(),
        }
    }

    /// The same violation under a parent path: `price` in `lines[2]` → `lines[2].price`.
    pub fn within(self, parent: &str) -> Self {
        Self {
            field: format!("{parent}.{}", self.field),
            description: self.description,
        }
    }
}

impl From<FieldViolation> for tonic::Status {
    fn from(violation: FieldViolation) -> Self {
        tonic::Status::with_error_details(
            tonic::Code::InvalidArgument,
            violation.to_string(),
            ErrorDetails::with_bad_request_violation(violation.field, violation.description),
        )
    }
}

/// Reads the field violations of an `INVALID_ARGUMENT` status (for clients and tests).
pub fn violations(status: &tonic::Status) -> Vec<FieldViolation> {
    status
        .get_error_details()
        .bad_request()
        .map(|bad_request| {
            bad_request
                .field_violations
                .iter()
                .map(|violation| FieldViolation::new(&violation.field, &violation.description))
                .collect()
        })
        .unwrap_or_default()
}

/// Parses a UUID field, naming it on failure.
pub fn parse_uuid(field: &str, raw: &str) -> Result<uuid::Uuid, FieldViolation> {
    if raw.is_empty() {
        return Err(FieldViolation::new(field, "is required"));
    }
    raw.parse()
        .map_err(|_| FieldViolation::new(field, format!("{} is not a UUID", quote(raw))))
}

/// The most characters of a caller's input an error message quotes.
pub const QUOTE_CHARS: usize = 32;

/// `raw` for an error message: in backticks, at most [`QUOTE_CHARS`] characters, then
/// `…` when it was longer; control characters show as `\u{..}` escapes (they are refused
/// input, and must not break a log line or a terminal).
pub fn quote(raw: &str) -> String {
    let mut quoted = String::from("`");
    for c in raw.chars().take(QUOTE_CHARS) {
        if c.is_control() || is_invisible_format(c) {
            quoted.extend(c.escape_unicode());
        } else {
            quoted.push(c);
        }
    }
    quoted.push('`');
    if raw.chars().nth(QUOTE_CHARS).is_some() {
        quoted.push('…');
    }
    quoted
}

/// Invisible characters that change how the text around them reads: bidirectional
/// embeddings, overrides, isolates and marks (a "Trojan Source" name shows other text
/// than it holds), the zero-width space and the byte-order mark. The zero-width
/// (non-)joiners stay: emoji sequences need them.
fn is_invisible_format(c: char) -> bool {
    matches!(c, '\u{200B}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

/// The first control character of `value` that the rule does not allow.
fn forbidden_control(value: &str, allow_line_feed: bool) -> Option<(usize, char)> {
    value.chars().enumerate().find(|&(_, c)| {
        (c.is_control() && !(allow_line_feed && c == '\n')) || is_invisible_format(c)
    })
}

fn control_violation(field: &str, position: usize, c: char, rule: &str) -> FieldViolation {
    let name = match c {
        '\0' => "NUL".to_owned(),
        '\n' => "a line feed".to_owned(),
        '\r' => "a carriage return".to_owned(),
        '\t' => "a tab".to_owned(),
        other if is_invisible_format(other) => {
            format!(
                "the invisible formatting character U+{:04X}",
                u32::from(other)
            )
        }
        other => format!("the control character U+{:04X}", u32::from(other)),
    };
    FieldViolation::new(
        field,
        format!("contains {name} at character {position}; {rule}"),
    )
}

/// Checks a single-line text field (a name, a street, a search query, a reason): no
/// control character at all — C0 (NUL, TAB, CR, LF, ESC…), DEL and C1 (U+0080–U+009F) —
/// and no invisible formatting character (bidirectional controls, the zero-width space,
/// the byte-order mark).
pub fn single_line(field: &str, value: &str) -> Result<(), FieldViolation> {
    match forbidden_control(value, false) {
        None => Ok(()),
        Some((position, c)) => Err(control_violation(
            field,
            position,
            c,
            "a single-line field allows no control characters",
        )),
    }
}

/// Checks a multi-line text field (an order note, a product description): the rule of
/// [`single_line`], except that LF separates lines. CR is refused: send LF, not CRLF.
pub fn multi_line(field: &str, value: &str) -> Result<(), FieldViolation> {
    match forbidden_control(value, true) {
        None => Ok(()),
        Some((position, c)) => Err(control_violation(
            field,
            position,
            c,
            "line breaks are LF alone; no other control characters",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn violation_becomes_invalid_argument_with_bad_request_detail() {
        let status: tonic::Status = FieldViolation::new("stars", "must be 3 to 5").into();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert_eq!(status.message(), "stars: must be 3 to 5");
        assert_eq!(
            violations(&status),
            vec![FieldViolation::new("stars", "must be 3 to 5")]
        );
    }

    #[test]
    fn single_line_refuses_every_control_character() {
        for bad in [
            "a\0b",
            "a\u{7}",
            "a\u{1b}[31m",
            "a\rb",
            "a\nb",
            "a\tb",
            "a\u{7f}",
            "a\u{80}",
            "a\u{9f}",
            "Minh\u{202E}gnp.exe",
            "a\u{2066}b\u{2069}",
            "a\u{200B}b",
            "\u{FEFF}a",
        ] {
            let violation = single_line("customer.name", bad).unwrap_err();
            assert_eq!(violation.field, "customer.name", "{bad:?}");
        }
        assert!(
            single_line("customer.name", "a\0b")
                .unwrap_err()
                .description
                .contains("NUL at character 1")
        );
        assert!(
            single_line("customer.name", "Minh\u{202E}gnp")
                .unwrap_err()
                .description
                .contains("invisible formatting character U+202E")
        );
        single_line("customer.name", "Nguyễn Thị Lan — 12/3 ngõ 5").unwrap();
        // Emoji sequences keep their zero-width joiner.
        single_line("note", "HTX 👨\u{200D}🌾").unwrap();
    }

    #[test]
    fn multi_line_allows_line_feeds_only() {
        multi_line("note", "gọi trước\ngiao giờ hành chính").unwrap();
        for bad in ["a\r\nb", "a\0b", "a\tb", "a\u{1b}", "a\u{85}"] {
            assert_eq!(
                multi_line("note", bad).unwrap_err().field,
                "note",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn quote_keeps_a_short_prefix_and_escapes_control_characters() {
        assert_eq!(quote("abc"), "`abc`");
        let long = "9".repeat(10_000);
        assert_eq!(quote(&long), format!("`{}`…", "9".repeat(QUOTE_CHARS)));
        assert_eq!(
            quote(&"ă".repeat(QUOTE_CHARS)),
            format!("`{}`", "ă".repeat(QUOTE_CHARS))
        );
        assert_eq!(quote("a\0"), "`a\\u{0}`");
    }

    #[test]
    fn bad_uuid_quotes_a_short_prefix_only() {
        let violation = parse_uuid("order_id", &"x".repeat(10_000)).unwrap_err();
        assert!(violation.description.len() < 100, "{violation}");
    }

    #[test]
    fn nested_violation_names_the_full_path() {
        let violation = FieldViolation::new("quantity", "must be positive").within("lines[2]");
        assert_eq!(violation.field, "lines[2].quantity");
    }
}
