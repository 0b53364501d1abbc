//! Card number and expiry checks that need no issuer.
//!
//! These catch typing and scanning mistakes before a request leaves the
//! process; they say nothing about whether the account exists or has funds.

use time::OffsetDateTime;

/// ISO/IEC 7812 primary account numbers are 12 to 19 digits long.
pub const PAN_DIGITS_MIN: usize = 12;
pub const PAN_DIGITS_MAX: usize = 19;
/// A card security code (CVC2, CVV2, CID) is three digits, four on Amex.
pub const SECURITY_CODE_DIGITS_MIN: usize = 3;
pub const SECURITY_CODE_DIGITS_MAX: usize = 4;

const MILLISECONDS_PER_SECOND: i64 = 1_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CardBrand {
    Visa,
    Mastercard,
    Amex,
    Unknown,
}

impl CardBrand {
    /// The same stable name serde writes.
    pub fn as_str(self) -> &'static str {
        match self {
            CardBrand::Visa => "visa",
            CardBrand::Mastercard => "mastercard",
            CardBrand::Amex => "amex",
            CardBrand::Unknown => "unknown",
        }
    }
}

#[derive(Debug, Clone, Copy, thiserror::Error, PartialEq, Eq)]
pub enum CardError {
    #[error("the card number must contain digits only")]
    NotDigits,
    #[error("the card number must be {PAN_DIGITS_MIN} to {PAN_DIGITS_MAX} digits long")]
    Length,
    #[error("the card number fails its check digit")]
    Luhn,
    #[error("the expiry month must be 1 to 12")]
    ExpiryMonth,
    #[error("the expiry year must be {EXPIRY_YEAR_MAX} or before, in four digits")]
    ExpiryYear,
    #[error("the card has expired")]
    Expired,
    #[error(
        "the card security code must be {SECURITY_CODE_DIGITS_MIN} or {SECURITY_CODE_DIGITS_MAX} digits"
    )]
    SecurityCode,
}

impl CardError {
    /// A stable machine code for APIs.
    pub fn code(&self) -> &'static str {
        match self {
            CardError::NotDigits => "card_number_not_digits",
            CardError::Length => "card_number_length",
            CardError::Luhn => "card_number_luhn",
            CardError::ExpiryMonth | CardError::ExpiryYear => "card_expiry_invalid",
            CardError::Expired => "card_expired",
            CardError::SecurityCode => "card_security_code_invalid",
        }
    }
}

/// True when `pan` is 12 to 19 ASCII digits and its last digit is the Luhn
/// check digit of the others.
pub fn luhn_valid(pan: &str) -> bool {
    pan_digits_valid(pan) && luhn_sum_valid(pan)
}

fn pan_digits_valid(pan: &str) -> bool {
    (PAN_DIGITS_MIN..=PAN_DIGITS_MAX).contains(&pan.len())
        && pan.bytes().all(|b| b.is_ascii_digit())
}

/// Assumes ASCII digits; callers check that first.
fn luhn_sum_valid(pan: &str) -> bool {
    let sum: u32 = pan
        .bytes()
        .rev()
        .enumerate()
        .map(|(position, byte)| {
            let digit = u32::from(byte - b'0');
            // Every second digit from the right is doubled, and a two-digit
            // product counts as the sum of its digits (18 -> 9 = 18 - 9).
            if position % 2 == 1 {
                let doubled = digit * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                digit
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// Checks the form of a security code: 3 or 4 ASCII digits. Whether it is
/// the card's own only its issuer can say.
pub fn check_security_code(code: &str) -> Result<(), CardError> {
    let digits = SECURITY_CODE_DIGITS_MIN..=SECURITY_CODE_DIGITS_MAX;
    if digits.contains(&code.len()) && code.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(());
    }
    Err(CardError::SecurityCode)
}

/// The brand by issuer identification number prefix. Anything not
/// recognised, including non-digits, is `Unknown` rather than an error: the
/// brand only labels a payment, it does not gate it.
pub fn brand(pan: &str) -> CardBrand {
    let prefix = |length: usize| {
        pan.get(..length)
            .and_then(|digits| digits.parse::<u16>().ok())
    };
    if pan.starts_with('4') {
        return CardBrand::Visa;
    }
    if matches!(prefix(2), Some(34 | 37)) {
        return CardBrand::Amex;
    }
    if matches!(prefix(2), Some(51..=55)) || matches!(prefix(4), Some(2221..=2720)) {
        return CardBrand::Mastercard;
    }
    CardBrand::Unknown
}

/// The last four characters, or the whole string when it is shorter. This is
/// the only part of a card number that may be shown or logged.
pub fn last4(pan: &str) -> &str {
    match pan.char_indices().rev().nth(3) {
        Some((start, _)) => &pan[start..],
        None => pan,
    }
}

/// The last expiry year a card may carry: the API's documented bound (a
/// card's two-digit year on its face is 20YY).
pub const EXPIRY_YEAR_MAX: u16 = 2099;

/// Checks the number, its check digit and the expiry against today's
/// (`today_year`, `today_month`). A card is valid through the last day of its
/// expiry month, so it is expired only when its month is before today's.
pub fn validate(
    pan: &str,
    expiry_month: u8,
    expiry_year: u16,
    today_year: u16,
    today_month: u8,
) -> Result<CardBrand, CardError> {
    if !pan.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CardError::NotDigits);
    }
    if !pan_digits_valid(pan) {
        return Err(CardError::Length);
    }
    if !luhn_sum_valid(pan) {
        return Err(CardError::Luhn);
    }
    if !(1..=12).contains(&expiry_month) {
        return Err(CardError::ExpiryMonth);
    }
    if expiry_year > EXPIRY_YEAR_MAX {
        return Err(CardError::ExpiryYear);
    }
    if (expiry_year, expiry_month) < (today_year, today_month) {
        return Err(CardError::Expired);
    }
    Ok(brand(pan))
}

/// Today's (year, month) in UTC. A clock set before 1970 reads as January
/// 1970, which makes every real card look unexpired.
pub fn today_utc() -> (u16, u8) {
    let (year, month, _day) = calendar_date(OffsetDateTime::now_utc());
    (year, month)
}

/// The UTC calendar date (year, month, day) of a Unix time in milliseconds.
/// Times before 1970 read as 1970-01-01; times past what the calendar
/// holds (the year 9999) read as its last day.
pub fn utc_date(unix_ms: i64) -> (u16, u8, u8) {
    let seconds = unix_ms.max(0) / MILLISECONDS_PER_SECOND;
    let at = OffsetDateTime::from_unix_timestamp(seconds).unwrap_or(OffsetDateTime::new_utc(
        time::Date::MAX,
        time::Time::MIDNIGHT,
    ));
    calendar_date(at)
}

fn calendar_date(at: OffsetDateTime) -> (u16, u8, u8) {
    let at = at.max(OffsetDateTime::UNIX_EPOCH);
    // Clamped to 1970..=9999 above, so the year always fits.
    let year = u16::try_from(at.year()).unwrap_or(u16::MAX);
    (year, u8::from(at.month()), at.day())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_accepts_known_good_numbers() {
        for pan in [
            "4242424242424242",
            "5555555555554444",
            "378282246310005",
            "2223003122003222",
            "4000000000000002",
            "4000000000009995",
            "4000000000000069",
            "4000000000000119",
        ] {
            assert!(luhn_valid(pan), "{pan} should pass");
        }
    }

    #[test]
    fn luhn_rejects_bad_numbers() {
        assert!(!luhn_valid("4242424242424241"), "wrong check digit");
        assert!(!luhn_valid("4242 4242 4242 4242"), "spaces");
        assert!(!luhn_valid("42424242424a4242"), "letter");
        assert!(!luhn_valid("00000000000"), "11 digits, sum 0");
        assert!(!luhn_valid("00000000000000000000"), "20 digits, sum 0");
        assert!(!luhn_valid(""), "empty");
        assert!(
            luhn_valid("000000000000"),
            "12 zeros is the shortest valid form"
        );
    }

    #[test]
    fn brand_by_prefix() {
        assert_eq!(brand("4242424242424242"), CardBrand::Visa);
        assert_eq!(brand("5555555555554444"), CardBrand::Mastercard);
        assert_eq!(brand("5105105105105100"), CardBrand::Mastercard);
        assert_eq!(brand("2221000000000009"), CardBrand::Mastercard);
        assert_eq!(brand("2720990000000000"), CardBrand::Mastercard);
        assert_eq!(brand("2220990000000000"), CardBrand::Unknown);
        assert_eq!(brand("2721000000000000"), CardBrand::Unknown);
        assert_eq!(brand("5655555555554444"), CardBrand::Unknown);
        assert_eq!(brand("378282246310005"), CardBrand::Amex);
        assert_eq!(brand("341111111111111"), CardBrand::Amex);
        assert_eq!(brand("6011111111111117"), CardBrand::Unknown);
        assert_eq!(brand(""), CardBrand::Unknown);
        assert_eq!(brand("3"), CardBrand::Unknown);
    }

    #[test]
    fn brand_names_match_serde() {
        for brand in [
            CardBrand::Visa,
            CardBrand::Mastercard,
            CardBrand::Amex,
            CardBrand::Unknown,
        ] {
            let serialised = serde_json::to_value(brand).ok();
            assert_eq!(serialised, Some(serde_json::Value::from(brand.as_str())));
        }
    }

    #[test]
    fn last4_shows_only_the_end() {
        assert_eq!(last4("4242424242421234"), "1234");
        assert_eq!(last4("123"), "123");
        assert_eq!(last4("12é45"), "2é45", "counts characters, not bytes");
    }

    #[test]
    fn validate_orders_its_checks() {
        let visa = "4242424242424242";
        assert_eq!(validate(visa, 12, 2030, 2026, 5), Ok(CardBrand::Visa));
        assert_eq!(
            validate("4242-4242", 12, 2030, 2026, 5),
            Err(CardError::NotDigits)
        );
        assert_eq!(
            validate("42424242", 12, 2030, 2026, 5),
            Err(CardError::Length)
        );
        assert_eq!(
            validate("4242424242424241", 12, 2030, 2026, 5),
            Err(CardError::Luhn)
        );
        assert_eq!(
            validate(visa, 0, 2030, 2026, 5),
            Err(CardError::ExpiryMonth)
        );
        assert_eq!(
            validate(visa, 13, 2030, 2026, 5),
            Err(CardError::ExpiryMonth)
        );
    }

    #[test]
    fn security_codes_are_three_or_four_digits() {
        for good in ["123", "0000", "987"] {
            assert_eq!(check_security_code(good), Ok(()), "{good}");
        }
        for bad in ["", "12", "12345", "12a", " 123", "١٢٣"] {
            assert_eq!(
                check_security_code(bad),
                Err(CardError::SecurityCode),
                "{bad}"
            );
        }
        assert_eq!(CardError::SecurityCode.code(), "card_security_code_invalid");
    }

    #[test]
    fn expiry_is_valid_through_its_month() {
        let visa = "4242424242424242";
        assert_eq!(validate(visa, 5, 2026, 2026, 5), Ok(CardBrand::Visa));
        assert_eq!(validate(visa, 4, 2026, 2026, 5), Err(CardError::Expired));
        assert_eq!(validate(visa, 12, 2025, 2026, 5), Err(CardError::Expired));
        assert_eq!(validate(visa, 1, 2027, 2026, 5), Ok(CardBrand::Visa));
        assert_eq!(CardError::Expired.code(), "card_expired");
        assert_eq!(validate(visa, 12, 2099, 2026, 5), Ok(CardBrand::Visa));
        assert_eq!(validate(visa, 1, 2100, 2026, 5), Err(CardError::ExpiryYear));
        assert_eq!(CardError::ExpiryYear.code(), "card_expiry_invalid");
    }

    #[test]
    fn utc_date_matches_known_dates() {
        let midnight_of_day = |days: i64| days * 86_400_000;
        assert_eq!(utc_date(midnight_of_day(0)), (1970, 1, 1));
        assert_eq!(utc_date(midnight_of_day(59)), (1970, 3, 1));
        assert_eq!(utc_date(midnight_of_day(11_016)), (2000, 2, 29));
        assert_eq!(utc_date(midnight_of_day(11_017)), (2000, 3, 1));
        assert_eq!(utc_date(midnight_of_day(19_722)), (2023, 12, 31));
        assert_eq!(utc_date(midnight_of_day(19_723)), (2024, 1, 1));
        assert_eq!(utc_date(midnight_of_day(47_482)), (2100, 1, 1));
        assert_eq!(utc_date(midnight_of_day(19_723) - 1), (2023, 12, 31));
    }

    #[test]
    fn utc_date_clamps_out_of_range_times() {
        assert_eq!(utc_date(-1), (1970, 1, 1));
        assert_eq!(utc_date(i64::MIN), (1970, 1, 1));
        assert_eq!(utc_date(i64::MAX), (9999, 12, 31));
    }

    #[test]
    fn today_is_plausible() {
        let (year, month) = today_utc();
        assert_eq!(utc_date(0), (1970, 1, 1));
        assert_eq!(utc_date(1_795_305_600_000), (2026, 11, 22));
        assert!((2025..2200).contains(&year), "year {year}");
        assert!((1..=12).contains(&month), "month {month}");
    }
}
