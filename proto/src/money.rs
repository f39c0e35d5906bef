//! How an amount of the contract reads to people. Amounts are whole đồng (`i64`; VND has
//! no minor unit), so there are no decimals.

/// `1250000` → `1.250.000 ₫`: dots between thousands, a space, then the đồng sign.
pub fn format_vnd(amount: i64) -> String {
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

#[cfg(test)]
mod tests {
    use super::format_vnd;

    #[test]
    fn thousands_are_grouped_with_dots_and_the_dong_sign_comes_last() {
        assert_eq!(format_vnd(1_250_000), "1.250.000 ₫");
        assert_eq!(format_vnd(75_000), "75.000 ₫");
        assert_eq!(format_vnd(999), "999 ₫");
        assert_eq!(format_vnd(500), "500 ₫");
        assert_eq!(format_vnd(1_000), "1.000 ₫");
        assert_eq!(format_vnd(0), "0 ₫");
        assert_eq!(format_vnd(-30_000), "-30.000 ₫");
        assert_eq!(format_vnd(1_000_000_000), "1.000.000.000 ₫");
        assert_eq!(format_vnd(i64::MIN), "-9.223.372.036.854.775.808 ₫");
    }
}
