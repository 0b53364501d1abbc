//! Exact money. An amount is an `i64` count of a currency's minor units
//! (won for KRW, cents for USD); there is no floating point anywhere on the
//! way in or out. Amounts enter as decimal strings in major units ("12.34")
//! and are refused when they carry more decimals than the currency has.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Largest amount accepted, in minor units: 10^15 is a trillion dollars or a
/// quadrillion won, far above any payment, and leaves sums of many amounts
/// far from `i64::MAX`.
pub const AMOUNT_MINOR_MAX: i64 = 1_000_000_000_000_000;

/// Longest decimal string accepted for an amount.
const AMOUNT_TEXT_LEN_MAX: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("unknown currency {0:?}; use an ISO 4217 code such as KRW or USD")]
    UnknownCurrency(String),
    #[error("the amount must be a decimal number such as \"4500\" or \"12.34\"")]
    Malformed,
    #[error("{currency} has {exponent} decimal places; the amount has more")]
    TooManyDecimals {
        currency: &'static str,
        exponent: u8,
    },
    #[error("the amount must be greater than zero")]
    NotPositive,
    #[error("the amount is too large")]
    TooLarge,
}

impl MoneyError {
    pub fn code(&self) -> &'static str {
        match self {
            MoneyError::UnknownCurrency(_) => "unknown_currency",
            MoneyError::Malformed => "amount_malformed",
            MoneyError::TooManyDecimals { .. } => "amount_too_many_decimals",
            MoneyError::NotPositive => "amount_not_positive",
            MoneyError::TooLarge => "amount_too_large",
        }
    }
}

/// An ISO 4217 currency with its number of decimal places.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency {
    code: &'static str,
    exponent: u8,
    numeric: u16,
}

/// The currencies facepay accepts: those of the markets the hub links plus
/// the usual reserve currencies, with the exponents ISO 4217 assigns.
const CURRENCIES: &[Currency] = &[
    Currency::new("KRW", 0, 410),
    Currency::new("JPY", 0, 392),
    Currency::new("VND", 0, 704),
    Currency::new("USD", 2, 840),
    Currency::new("EUR", 2, 978),
    Currency::new("GBP", 2, 826),
    Currency::new("CNY", 2, 156),
    Currency::new("HKD", 2, 344),
    Currency::new("SGD", 2, 702),
    Currency::new("THB", 2, 764),
    Currency::new("IDR", 2, 360),
    Currency::new("MYR", 2, 458),
    Currency::new("PHP", 2, 608),
    Currency::new("INR", 2, 356),
    Currency::new("AUD", 2, 36),
    Currency::new("BHD", 3, 48),
    Currency::new("KWD", 3, 414),
];

impl Currency {
    const fn new(code: &'static str, exponent: u8, numeric: u16) -> Self {
        Self {
            code,
            exponent,
            numeric,
        }
    }

    pub const KRW: Currency = Currency::new("KRW", 0, 410);
    pub const USD: Currency = Currency::new("USD", 2, 840);
    pub const IDR: Currency = Currency::new("IDR", 2, 360);
    pub const VND: Currency = Currency::new("VND", 0, 704);
    pub const THB: Currency = Currency::new("THB", 2, 764);

    pub fn from_code(code: &str) -> Result<Self, MoneyError> {
        CURRENCIES
            .iter()
            .find(|c| c.code == code)
            .copied()
            .ok_or_else(|| MoneyError::UnknownCurrency(code.chars().take(8).collect()))
    }

    pub fn code(self) -> &'static str {
        self.code
    }

    /// The ISO 4217 numeric code, as card chips and ISO 8583 carry it.
    pub fn numeric(self) -> u16 {
        self.numeric
    }

    /// Decimal places of the minor unit: 0 for KRW, 2 for USD.
    pub fn exponent(self) -> u8 {
        self.exponent
    }

    /// Parses a positive decimal amount in major units into minor units.
    pub fn parse_amount(self, text: &str) -> Result<i64, MoneyError> {
        if text.is_empty() || text.len() > AMOUNT_TEXT_LEN_MAX {
            return Err(MoneyError::Malformed);
        }
        let (whole, fraction) = match text.split_once('.') {
            Some((w, f)) if !f.is_empty() => (w, f),
            Some(_) => return Err(MoneyError::Malformed),
            None => (text, ""),
        };
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(whole) || !(fraction.is_empty() || digits(fraction)) {
            return Err(MoneyError::Malformed);
        }
        let exponent = usize::from(self.exponent);
        let significant = fraction.trim_end_matches('0');
        if significant.len() > exponent {
            return Err(MoneyError::TooManyDecimals {
                currency: self.code,
                exponent: self.exponent,
            });
        }
        let mut minor: i64 = 0;
        let padded = significant
            .bytes()
            .chain(std::iter::repeat(b'0'))
            .take(exponent);
        for b in whole.bytes().chain(padded) {
            minor = minor
                .checked_mul(10)
                .and_then(|m| m.checked_add(i64::from(b - b'0')))
                .ok_or(MoneyError::TooLarge)?;
        }
        if minor == 0 {
            return Err(MoneyError::NotPositive);
        }
        if minor > AMOUNT_MINOR_MAX {
            return Err(MoneyError::TooLarge);
        }
        Ok(minor)
    }

    /// Checks an amount already in minor units.
    pub fn check_minor(self, amount_minor: i64) -> Result<i64, MoneyError> {
        match amount_minor {
            a if a <= 0 => Err(MoneyError::NotPositive),
            a if a > AMOUNT_MINOR_MAX => Err(MoneyError::TooLarge),
            a => Ok(a),
        }
    }

    /// Formats minor units as a decimal string in major units ("12.34").
    pub fn format(self, amount_minor: i64) -> String {
        let sign = if amount_minor < 0 { "-" } else { "" };
        let magnitude = amount_minor.unsigned_abs();
        if self.exponent == 0 {
            return format!("{sign}{magnitude}");
        }
        let scale = 10u64.pow(u32::from(self.exponent));
        let width = usize::from(self.exponent);
        format!(
            "{sign}{}.{:0width$}",
            magnitude / scale,
            magnitude % scale,
            width = width
        )
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code)
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code)
    }
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.code)
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = String::deserialize(deserializer)?;
        Currency::from_code(&code).map_err(serde::de::Error::custom)
    }
}

/// Half-up share of `amount_minor` at `basis_points` (1/100 of a percent),
/// in integers: the fee on 4,500 won at 250 bp is 113 won (112.5 rounded up).
pub fn basis_points_of(amount_minor: i64, basis_points: u32) -> i64 {
    assert!((0..=AMOUNT_MINOR_MAX).contains(&amount_minor));
    assert!(basis_points <= 10_000);
    let product = i128::from(amount_minor) * i128::from(basis_points);
    let share = (product + 5_000) / 10_000;
    // Cannot fail: the share is at most the amount, which fits in i64.
    i64::try_from(share).unwrap_or(amount_minor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_codes_are_iso_4217s_and_distinct() {
        assert_eq!(Currency::KRW.numeric(), 410);
        assert_eq!(Currency::from_code("EUR").unwrap().numeric(), 978);
        let mut seen: Vec<u16> = CURRENCIES.iter().map(|c| c.numeric()).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), CURRENCIES.len());
        for named in [
            Currency::KRW,
            Currency::USD,
            Currency::IDR,
            Currency::VND,
            Currency::THB,
        ] {
            assert_eq!(
                Currency::from_code(named.code()),
                Ok(named),
                "as in the table"
            );
        }
    }

    #[test]
    fn parses_major_units_into_minor_units() {
        assert_eq!(Currency::KRW.parse_amount("4500"), Ok(4500));
        assert_eq!(Currency::USD.parse_amount("12.34"), Ok(1234));
        assert_eq!(Currency::USD.parse_amount("12.3"), Ok(1230));
        assert_eq!(Currency::USD.parse_amount("12"), Ok(1200));
        assert_eq!(Currency::USD.parse_amount("0.01"), Ok(1));
        assert_eq!(Currency::KRW.parse_amount("4500.00"), Ok(4500));
        let bhd = Currency::from_code("BHD").unwrap();
        assert_eq!(bhd.parse_amount("1.005"), Ok(1005));
    }

    #[test]
    fn refuses_what_is_not_an_exact_positive_amount() {
        let too_many = MoneyError::TooManyDecimals {
            currency: "USD",
            exponent: 2,
        };
        assert_eq!(Currency::USD.parse_amount("12.345"), Err(too_many));
        assert_eq!(
            Currency::KRW.parse_amount("4500.5").unwrap_err().code(),
            "amount_too_many_decimals"
        );
        for bad in [
            "", "-5", "+5", "1e3", "12.", ".5", "1,000", " 5", "5 ", "0x10", "١٢",
        ] {
            assert_eq!(
                Currency::USD.parse_amount(bad),
                Err(MoneyError::Malformed),
                "{bad:?}"
            );
        }
        assert_eq!(
            Currency::KRW.parse_amount("0"),
            Err(MoneyError::NotPositive)
        );
        assert_eq!(
            Currency::USD.parse_amount("0.00"),
            Err(MoneyError::NotPositive)
        );
        assert_eq!(
            Currency::KRW.parse_amount("99999999999999999999"),
            Err(MoneyError::TooLarge)
        );
        assert_eq!(
            Currency::KRW.parse_amount("1000000000000001"),
            Err(MoneyError::TooLarge)
        );
        assert_eq!(Currency::KRW.check_minor(-1), Err(MoneyError::NotPositive));
        assert_eq!(
            Currency::KRW.check_minor(AMOUNT_MINOR_MAX),
            Ok(AMOUNT_MINOR_MAX)
        );
    }

    #[test]
    fn currencies_are_iso_codes_with_their_exponents() {
        assert_eq!(Currency::from_code("KRW").unwrap().exponent(), 0);
        assert_eq!(Currency::from_code("USD").unwrap().exponent(), 2);
        assert_eq!(
            Currency::from_code("krw").unwrap_err().code(),
            "unknown_currency"
        );
        assert!(Currency::from_code("XXX").is_err());
        let json = serde_json::to_string(&Currency::KRW).unwrap();
        assert_eq!(json, "\"KRW\"");
        let back: Currency = serde_json::from_str(&json).unwrap();
        assert_eq!(back, Currency::KRW);
        assert!(serde_json::from_str::<Currency>("\"ABC\"").is_err());
    }

    #[test]
    fn formats_and_parses_back() {
        assert_eq!(Currency::USD.format(1234), "12.34");
        assert_eq!(Currency::USD.format(5), "0.05");
        assert_eq!(Currency::USD.format(-5), "-0.05");
        assert_eq!(Currency::KRW.format(4500), "4500");
        for minor in [1, 9, 10, 99, 100, 12345, AMOUNT_MINOR_MAX] {
            let text = Currency::USD.format(minor);
            assert_eq!(Currency::USD.parse_amount(&text), Ok(minor));
        }
    }

    #[test]
    fn fees_round_half_up_in_integers() {
        assert_eq!(basis_points_of(4500, 250), 113);
        assert_eq!(basis_points_of(4400, 250), 110);
        assert_eq!(basis_points_of(1, 5_000), 1);
        assert_eq!(basis_points_of(1, 4_999), 0);
        assert_eq!(basis_points_of(AMOUNT_MINOR_MAX, 10_000), AMOUNT_MINOR_MAX);
        assert_eq!(basis_points_of(0, 250), 0);
    }
}
