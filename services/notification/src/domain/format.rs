//! How money and times read in a Vietnamese message.

use chrono::{DateTime, FixedOffset, Utc};

/// `1.250.000 ₫`: dots between thousands, a space, then the đồng sign (VND has no minor
/// unit, so there are no decimals).
pub fn vnd(amount: i64) -> String {
    let digits = amount.unsigned_abs().to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3 + 6);
    if amount < 0 {
        grouped.push('-');
    }
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            grouped.push('.');
        }
        grouped.push(digit);
    }
    grouped.push_str(" ₫");
    grouped
}

/// Vietnam keeps UTC+7 all year (no daylight saving).
fn vietnam() -> FixedOffset {
    FixedOffset::east_opt(7 * 3600).expect("+07:00 is a valid offset")
}

/// `14:30 ngày 05/12/2026`, in Vietnam's time.
pub fn time(at: DateTime<Utc>) -> String {
    at.with_timezone(&vietnam())
        .format("%H:%M ngày %d/%m/%Y")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vnd_groups_thousands_with_dots_and_ends_with_the_dong_sign() {
        assert_eq!(vnd(1_250_000), "1.250.000 ₫");
        assert_eq!(vnd(75_000), "75.000 ₫");
        assert_eq!(vnd(999), "999 ₫");
        assert_eq!(vnd(1_000), "1.000 ₫");
        assert_eq!(vnd(0), "0 ₫");
        assert_eq!(vnd(-30_000), "-30.000 ₫");
        assert_eq!(vnd(1_000_000_000), "1.000.000.000 ₫");
        assert_eq!(vnd(i64::MIN), "-9.223.372.036.854.775.808 ₫");
    }

    #[test]
    fn time_is_shown_in_vietnam_time() {
        let at = DateTime::parse_from_rfc3339("2026-12-05T17:30:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(time(at), "00:30 ngày 06/12/2026");
    }
}
