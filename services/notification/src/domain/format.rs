//! How times read in a Vietnamese message (money: `ocop_proto::money`).

use chrono::{DateTime, FixedOffset, Utc};

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
    fn time_is_shown_in_vietnam_time() {
        let at = DateTime::parse_from_rfc3339("2026-12-05T17:30:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(time(at), "00:30 ngày 06/12/2026");
    }
}
