//! The one Vietnamese phone-number rule. The order service applies it to the phone a
//! shopper gives and puts the result on the wire (`CustomerContact.phone` of
//! `OrderPlaced`, `customer_phone` filters); the notification service applies it to
//! what it receives and to its own address filters. Both answering from this one
//! function is what guarantees that an order the order service took never carries a
//! phone the notification service then refuses.
//!
//! **Accepted:** Vietnamese *mobile* numbers, which since the 2018 renumbering (11-digit
//! mobile numbers moved to 10 digits) are `0` + 9 digits with the network digit 3, 5,
//! 7, 8 or 9: `03x` (Viettel), `05x` (Vietnamobile, Gmobile, Reddi), `07x` (MobiFone),
//! `08x` (VinaPhone, Viettel, MobiFone, iTel) and `09x` (all of them). The ministry
//! assigns mobile blocks only under those five digits; the blocks within them change
//! (new operators, number portability keeps the number when the network changes), so
//! the rule checks the network digit and not a list of three-digit prefixes that would
//! refuse the next allocation. Landlines (`02x`, 11 digits) cannot receive SMS or Zalo
//! messages, and the service is for Vietnamese shoppers only.
//!
//! **Spellings:** `0912345678`, `+84912345678`, `84912345678` and `0084912345678`, with
//! spaces, dots, hyphens and parentheses anywhere (`+84 912 345 678`, `(091) 234-5678`).
//! **Canonical form:** national, `0` + 9 digits: `0912345678`.
//!
//! Before this rule the order service accepted the same set minus `0084…`, while the
//! notification service accepted any `0` + 9 or 10 digits (landlines included) and
//! `0084…`.

use std::fmt;

/// Why a phone number was refused. `Display` is the message after the field's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhoneError {
    /// Empty or only spaces.
    Missing,
    /// A character that is neither a digit nor a separator people type.
    Character(char),
    /// `+` followed by another country's code.
    NotVietnamese,
    /// Not `0` + 9 digits with a mobile network digit once normalised.
    NotMobile,
}

impl fmt::Display for PhoneError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing => f.write_str("is required"),
            // Invisible and control characters show as escapes (an error message must
            // not hide what was refused, nor break a log line).
            Self::Character(c) if !(c.is_alphanumeric() || c.is_ascii_punctuation()) => {
                write!(
                    f,
                    "`{}` is not allowed in a phone number",
                    c.escape_unicode()
                )
            }
            Self::Character(c) => write!(f, "`{c}` is not allowed in a phone number"),
            Self::NotVietnamese => {
                f.write_str("is not a Vietnamese number (+84); only those are served")
            }
            Self::NotMobile => f.write_str(
                "is not a Vietnamese mobile number (0 and 9 digits, the second 3, 5, 7, 8 or \
                 9; e.g. 0912345678 or +84 912 345 678)",
            ),
        }
    }
}

impl std::error::Error for PhoneError {}

impl PhoneError {
    /// The message with the refused input shown where it helps (`quoted`: the caller's
    /// quoting, e.g. `ocop_grpc_kit::validation::quote`, short and escaped), so both
    /// services word every refusal alike.
    pub fn describe(&self, quoted: &str) -> String {
        match self {
            Self::NotVietnamese | Self::NotMobile => format!("{quoted} {self}"),
            Self::Missing | Self::Character(_) => self.to_string(),
        }
    }
}

/// Separators people type inside a number; they carry no meaning.
fn is_separator(c: char) -> bool {
    matches!(c, ' ' | '.' | '-' | '(' | ')')
}

/// `raw` in canonical national form (`0912345678`), or why it is not a Vietnamese
/// mobile number.
pub fn normalise(raw: &str) -> Result<String, PhoneError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(PhoneError::Missing);
    }
    let (plus, rest) = match trimmed.strip_prefix('+') {
        Some(rest) => (true, rest),
        None => (false, trimmed),
    };
    let mut digits = String::with_capacity(rest.len());
    for c in rest.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
        } else if !is_separator(c) {
            return Err(PhoneError::Character(c));
        }
    }
    let subscriber = if plus {
        digits.strip_prefix("84").ok_or(PhoneError::NotVietnamese)?
    } else if let Some(subscriber) = digits.strip_prefix("0084") {
        subscriber
    } else if let Some(subscriber) = digits.strip_prefix('0') {
        subscriber
    } else if digits.len() == 11 {
        // 84 + 9 digits without the plus; anything else not starting with 0 is no
        // national number.
        digits.strip_prefix("84").ok_or(PhoneError::NotMobile)?
    } else {
        return Err(PhoneError::NotMobile);
    };
    let mobile = subscriber.len() == 9
        && matches!(subscriber.as_bytes()[0], b'3' | b'5' | b'7' | b'8' | b'9');
    if !mobile {
        return Err(PhoneError::NotMobile);
    }
    Ok(format!("0{subscriber}"))
}

/// `phone` (canonical) in international form without `+`, as Zalo and most SMS
/// gateways want it: `84912345678`.
pub fn international(phone: &str) -> String {
    format!("84{}", phone.strip_prefix('0').unwrap_or(phone))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_of_a_mobile_number_is_its_national_form() {
        for (raw, canonical) in [
            ("0912345678", "0912345678"),
            ("+84912345678", "0912345678"),
            ("+84 912 345 678", "0912345678"),
            ("84912345678", "0912345678"),
            ("0084912345678", "0912345678"),
            ("0912.345.678", "0912345678"),
            ("0912-345-678", "0912345678"),
            ("(091) 234-5678", "0912345678"),
            ("  0912345678\t", "0912345678"),
            ("+ 84 912 345 678", "0912345678"),
            // Every mobile network digit.
            ("0321234567", "0321234567"),
            ("0521234567", "0521234567"),
            ("0701234567", "0701234567"),
            ("0861234567", "0861234567"),
            ("0981234567", "0981234567"),
            ("+84 86 123 4567", "0861234567"),
            // The subscriber part may itself start with 84.
            ("0841234567", "0841234567"),
            ("84841234567", "0841234567"),
        ] {
            assert_eq!(normalise(raw).as_deref(), Ok(canonical), "{raw:?}");
        }
    }

    #[test]
    fn what_is_no_vietnamese_mobile_number_is_refused_with_its_reason() {
        use PhoneError::*;
        for (raw, error) in [
            ("", Missing),
            ("   ", Missing),
            ("0912abc678", Character('a')),
            ("0912345678 ext 2", Character('e')),
            ("0912/345/678", Character('/')),
            ("0912\u{200b}345678", Character('\u{200b}')),
            ("+1 415 555 0100", NotVietnamese),
            ("+840912345678", NotMobile),
            // Landlines (02x, 11 digits) and unassigned network digits.
            ("0203 3825 123", NotMobile),
            ("02438251234", NotMobile),
            ("0112345678", NotMobile),
            ("0412345678", NotMobile),
            ("0612345678", NotMobile),
            // Old 11-digit mobile numbers, short and long numbers.
            ("01234567890", NotMobile),
            ("091234567", NotMobile),
            ("09123456789", NotMobile),
            ("091234512345", NotMobile),
            ("00912345678", NotMobile),
            ("+84", NotMobile),
            ("84", NotMobile),
            ("912345678", NotMobile),
            ("849123456789", NotMobile),
            ("0", NotMobile),
            ("()", NotMobile),
        ] {
            assert_eq!(normalise(raw), Err(error), "{raw:?}");
        }
    }

    #[test]
    fn the_canonical_form_is_a_fixed_point() {
        let canonical = normalise("+84 912 345 678").unwrap();
        assert_eq!(normalise(&canonical).as_deref(), Ok(canonical.as_str()));
        assert_eq!(
            normalise(&international(&canonical)).as_deref(),
            Ok(canonical.as_str())
        );
        assert_eq!(
            normalise(&format!("+{}", international(&canonical))).as_deref(),
            Ok(canonical.as_str())
        );
    }

    #[test]
    fn international_form_drops_the_zero_for_84() {
        assert_eq!(international("0912345678"), "84912345678");
    }

    #[test]
    fn a_described_refusal_shows_the_input_when_its_characters_are_not_the_reason() {
        assert_eq!(
            PhoneError::NotMobile.describe("`0203`"),
            "`0203` is not a Vietnamese mobile number (0 and 9 digits, the second 3, 5, 7, 8 \
             or 9; e.g. 0912345678 or +84 912 345 678)"
        );
        assert_eq!(PhoneError::Missing.describe("``"), "is required");
    }

    #[test]
    fn messages_escape_invisible_characters() {
        assert_eq!(
            PhoneError::Character('\u{200b}').to_string(),
            "`\\u{200b}` is not allowed in a phone number"
        );
        assert_eq!(
            PhoneError::Character('a').to_string(),
            "`a` is not allowed in a phone number"
        );
    }
}
