//! What onboarding takes and answers, with the checks each field gets
//! that its schema cannot say (a real time zone, a known currency, hours
//! that close after they open).

use facepay_money::Currency;
use facepay_store::onboarding::{MerchantProfile, StoreDetail, TerminalRow};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::Failure;

/// Longest name, legal name or city; an address may be longer.
const TEXT_LEN_MAX: usize = 200;
const ADDRESS_LEN_MAX: usize = 500;
/// Opening-hours entries a store has at most: four a day.
pub const OPENING_HOURS_MAX: usize = 28;
/// A pairing code lives this long unless asked to live less.
pub const PAIRING_CODE_TTL_S_MAX: i64 = 600;

/// `POST /v1/operator/merchants`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MerchantRequest {
    /// The name shoppers see: 1 to 200 characters, not all blank.
    #[schema(
        pattern = r"^[^\x00]*[^\x00\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\x00]*$",
        max_length = 200
    )]
    pub name: String,
    /// The registered legal name: 1 to 200 characters, not all blank.
    #[schema(
        pattern = r"^[^\x00]*[^\x00\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\x00]*$",
        max_length = 200
    )]
    pub legal_name: String,
    /// The fee plan: basis points of every captured amount.
    #[schema(minimum = 0, maximum = 10000)]
    pub fee_bps: i64,
    /// ISO 4217 code the merchant is paid out in.
    #[schema(pattern = r"^[A-Z]{3}$")]
    pub settlement_currency: String,
}

/// What an operator does to a merchant.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MerchantAction {
    /// Stop its keys and terminals until reactivated.
    Suspend,
    Reactivate,
    /// For good: its keys and terminals stop and it cannot be reopened.
    Close,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MerchantState {
    Active,
    Suspended,
    Closed,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MerchantView {
    pub id: String,
    pub name: String,
    pub legal_name: Option<String>,
    pub fee_bps: i64,
    pub settlement_currency: Option<String>,
    pub status: MerchantState,
    pub created_at_ms: i64,
    pub closed_at_ms: Option<i64>,
}

impl MerchantView {
    pub fn of(m: MerchantProfile) -> Result<Self, Failure> {
        Ok(Self {
            status: stored(&m.status)?,
            id: m.id,
            name: m.name,
            legal_name: m.legal_name,
            fee_bps: m.fee_bps,
            settlement_currency: m.settlement_currency,
            created_at_ms: m.created_at_ms,
            closed_at_ms: m.closed_at_ms,
        })
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MerchantList {
    pub merchants: Vec<MerchantView>,
    /// Pass as `after` for the next page; absent on the last.
    pub next_after: Option<String>,
}

/// A merchant with its stores and terminals.
#[derive(Debug, Serialize, ToSchema)]
pub struct MerchantDetail {
    pub merchant: MerchantView,
    pub stores: Vec<StoreDetailView>,
    pub terminals: Vec<OnboardedTerminal>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

/// A store's hours on one day, in its own time zone. A store open past
/// midnight has an entry on each day.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpeningHours {
    pub day: Weekday,
    /// `HH:MM`, 24-hour.
    #[schema(pattern = r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
    pub opens: String,
    /// `HH:MM`, 24-hour, after `opens`.
    #[schema(pattern = r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
    pub closes: String,
}

/// `POST /v1/operator/stores`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StoreRequest {
    #[schema(pattern = r"^[A-Za-z0-9_.:-]{1,128}$")]
    pub merchant_id: String,
    #[schema(
        pattern = r"^[^\x00]*[^\x00\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\x00]*$",
        max_length = 200
    )]
    pub name: String,
    /// The street address: 1 to 500 characters, not all blank.
    #[schema(
        pattern = r"^[^\x00]*[^\x00\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\x00]*$",
        max_length = 500
    )]
    pub address: String,
    #[schema(
        pattern = r"^[^\x00]*[^\x00\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\x00]*$",
        max_length = 200
    )]
    pub city: String,
    /// ISO 3166-1 alpha-2.
    #[schema(pattern = r"^[A-Z]{2}$")]
    pub country: String,
    /// Degrees, -90 to 90.
    #[schema(minimum = -90, maximum = 90)]
    pub latitude: f64,
    /// Degrees, -180 to 180.
    #[schema(minimum = -180, maximum = 180)]
    pub longitude: f64,
    /// An IANA time zone name, such as `Asia/Seoul`.
    #[schema(pattern = r"^[A-Za-z0-9_+/-]{1,64}$")]
    pub time_zone: String,
    /// ISO 4217 code the store's payments are in.
    #[schema(pattern = r"^[A-Z]{3}$")]
    pub currency: String,
    #[serde(default)]
    #[schema(max_items = 28)]
    pub opening_hours: Vec<OpeningHours>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StoreDetailView {
    pub id: String,
    pub merchant_id: String,
    pub name: String,
    pub address: Option<String>,
    pub city: String,
    pub country: String,
    pub latitude: f64,
    pub longitude: f64,
    pub time_zone: Option<String>,
    pub currency: String,
    pub opening_hours: Vec<OpeningHours>,
    pub created_at_ms: i64,
}

impl StoreDetailView {
    pub fn of(s: StoreDetail) -> Result<Self, Failure> {
        let opening_hours = match &s.opening_hours {
            Some(text) => serde_json::from_str(text).map_err(|e| {
                tracing::error!(error = %e, store = s.id, "stored opening hours unreadable");
                Failure::internal()
            })?,
            None => Vec::new(),
        };
        Ok(Self {
            id: s.id,
            merchant_id: s.merchant_id,
            name: s.name,
            address: s.address,
            city: s.city,
            country: s.country,
            latitude: s.latitude_e6 as f64 / 1e6,
            longitude: s.longitude_e6 as f64 / 1e6,
            time_zone: s.time_zone,
            currency: s.currency,
            opening_hours,
            created_at_ms: s.created_at_ms,
        })
    }
}

/// `POST /v1/operator/terminals`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TerminalRequest {
    #[schema(pattern = r"^[A-Za-z0-9_.:-]{1,128}$")]
    pub store_id: String,
    /// Unique in its store: 1 to 64 letters, digits, spaces, `_`, `.` or `-`.
    #[schema(pattern = r"^[A-Za-z0-9_.-][A-Za-z0-9 _.-]{0,63}$")]
    pub name: String,
    /// How long the pairing code lives, 1 to 600 s; 600 when absent.
    #[schema(minimum = 1, maximum = 600)]
    pub pairing_code_ttl_s: Option<i64>,
}

/// `POST /v1/operator/terminals/{id}/re-pair`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RePairRequest {
    /// How long the pairing code lives, 1 to 600 s; 600 when absent.
    #[schema(minimum = 1, maximum = 600)]
    pub pairing_code_ttl_s: Option<i64>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnboardedTerminalState {
    Active,
    Suspended,
    Retired,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OnboardedTerminal {
    pub id: String,
    pub store_id: String,
    pub merchant_id: String,
    pub name: String,
    pub status: OnboardedTerminalState,
    /// Whether it holds a key: it pays only once paired.
    pub paired: bool,
    pub paired_at_ms: Option<i64>,
    pub retired_at_ms: Option<i64>,
    pub created_at_ms: i64,
}

impl OnboardedTerminal {
    pub fn of(t: TerminalRow) -> Result<Self, Failure> {
        Ok(Self {
            status: stored(&t.status)?,
            paired: t.paired_at_ms.is_some(),
            id: t.id,
            store_id: t.store_id,
            merchant_id: t.merchant_id,
            name: t.name,
            paired_at_ms: t.paired_at_ms,
            retired_at_ms: t.retired_at_ms,
            created_at_ms: t.created_at_ms,
        })
    }
}

/// A terminal with a pairing code: the code is shown here once.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PairingView {
    pub terminal: OnboardedTerminal,
    /// Eight characters from `ABCDEFGHJKMNPQRSTUVWXYZ23456789`, used once.
    /// A replay of the request that made it gets a new code, which
    /// replaces it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pairing_code: String,
    pub pairing_expires_at_ms: i64,
}

/// `POST /v1/terminals/pair`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PairRequest {
    #[schema(pattern = r"^[A-Za-z0-9_.:-]{1,128}$")]
    pub terminal_id: String,
    /// The code the operator got: case and dashes or spaces do not matter.
    #[schema(pattern = r"^[A-Za-z0-9 -]{1,32}$")]
    pub code: String,
    /// The terminal's new Ed25519 public key, 32 bytes in hex.
    #[schema(pattern = r"^[0-9a-fA-F]{64}$")]
    pub public_key_hex: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Paired {
    pub terminal_id: String,
    pub name: String,
    pub store_id: String,
    pub store: String,
    pub merchant_id: String,
    pub merchant: String,
    /// The store's currency: what its payments are in.
    pub currency: String,
    pub time_zone: Option<String>,
    pub paired_at_ms: i64,
}

fn stored<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, Failure> {
    serde_json::from_value(serde_json::Value::String(text.to_owned())).map_err(|_| {
        tracing::error!(text, "a stored status the API does not name");
        Failure::internal()
    })
}

/// Trimmed text of 1 to `max` characters, not all blank.
pub fn text(field: &str, value: &str, max: usize) -> Result<String, Failure> {
    let trimmed = value.trim();
    if trimmed.is_empty() || value.chars().count() > max || value.contains('\0') {
        return Err(Failure::unprocessable(
            "text_invalid",
            format!("{field} must be 1 to {max} characters, not all blank"),
        ));
    }
    Ok(trimmed.to_owned())
}

pub fn name_text(field: &str, value: &str) -> Result<String, Failure> {
    text(field, value, TEXT_LEN_MAX)
}

pub fn address_text(value: &str) -> Result<String, Failure> {
    text("address", value, ADDRESS_LEN_MAX)
}

/// An ISO 4217 code facepay knows (`unknown_currency` otherwise).
pub fn currency(code: &str) -> Result<&'static str, Failure> {
    Ok(Currency::from_code(code)?.code())
}

pub fn country(code: &str) -> Result<(), Failure> {
    if code.len() == 2 && code.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err(Failure::unprocessable(
            "country_invalid",
            "the country is an ISO 3166-1 alpha-2 code, such as KR",
        ))
    }
}

/// The tz database's own spelling of an IANA time zone name.
pub fn time_zone(name: &str) -> Result<String, Failure> {
    let invalid = || {
        Failure::unprocessable(
            "time_zone_invalid",
            format!(
                "{:?} is not an IANA time zone such as Asia/Seoul",
                name.chars().take(64).collect::<String>()
            ),
        )
    };
    if name.is_empty() || name.len() > 64 {
        return Err(invalid());
    }
    let zone = jiff::tz::TimeZone::get(name).map_err(|_| invalid())?;
    Ok(zone.iana_name().unwrap_or(name).to_owned())
}

/// Degrees to millionths of a degree, refused outside the globe.
pub fn coordinates(latitude: f64, longitude: f64) -> Result<(i64, i64), Failure> {
    let fits = |value: f64, bound: f64| value.is_finite() && (-bound..=bound).contains(&value);
    if !fits(latitude, 90.0) || !fits(longitude, 180.0) {
        return Err(Failure::unprocessable(
            "coordinates_invalid",
            "latitude is -90 to 90 degrees and longitude -180 to 180",
        ));
    }
    Ok((
        (latitude * 1e6).round() as i64,
        (longitude * 1e6).round() as i64,
    ))
}

/// Hours that each close after they open, at most `OPENING_HOURS_MAX`.
pub fn opening_hours(hours: &[OpeningHours]) -> Result<String, Failure> {
    let format = time::macros::format_description!("[hour]:[minute]");
    let invalid = |why: &str| Failure::unprocessable("opening_hours_invalid", why.to_owned());
    if hours.len() > OPENING_HOURS_MAX {
        return Err(invalid("at most 28 opening-hours entries"));
    }
    for h in hours {
        let opens = time::Time::parse(&h.opens, &format);
        let closes = time::Time::parse(&h.closes, &format);
        match (opens, closes) {
            (Ok(opens), Ok(closes)) if opens < closes => {}
            (Ok(_), Ok(_)) => return Err(invalid("a store closes after it opens on each entry")),
            _ => return Err(invalid("opening hours are HH:MM, 24-hour")),
        }
    }
    serde_json::to_string(hours).map_err(|_| Failure::internal())
}

/// A pairing code's lifetime in milliseconds, from the request's seconds.
pub fn pairing_ttl_ms(ttl_s: Option<i64>) -> Result<i64, Failure> {
    let ttl_s = ttl_s.unwrap_or(PAIRING_CODE_TTL_S_MAX);
    if !(1..=PAIRING_CODE_TTL_S_MAX).contains(&ttl_s) {
        return Err(Failure::unprocessable(
            "pairing_code_ttl_invalid",
            "a pairing code lives 1 to 600 seconds",
        ));
    }
    Ok(ttl_s * 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_zones_are_checked_against_the_tz_database() {
        assert_eq!(time_zone("Asia/Seoul").unwrap(), "Asia/Seoul");
        assert_eq!(time_zone("Europe/Paris").unwrap(), "Europe/Paris");
        for bad in ["", "Mars/Olympus", "Asia/Seoul/x", "../../etc/passwd"] {
            assert_eq!(
                time_zone(bad).unwrap_err().code,
                "time_zone_invalid",
                "{bad}"
            );
        }
    }

    #[test]
    fn coordinates_and_hours_are_bounded() {
        assert_eq!(
            coordinates(37.497942, 127.027621).unwrap(),
            (37_497_942, 127_027_621)
        );
        for (lat, lon) in [(90.5, 0.0), (0.0, -181.0), (f64::NAN, 0.0)] {
            assert_eq!(
                coordinates(lat, lon).unwrap_err().code,
                "coordinates_invalid"
            );
        }
        let hours = |opens: &str, closes: &str| {
            opening_hours(&[OpeningHours {
                day: Weekday::Mon,
                opens: opens.into(),
                closes: closes.into(),
            }])
        };
        assert!(hours("08:00", "20:30").is_ok());
        assert_eq!(
            hours("20:00", "08:00").unwrap_err().code,
            "opening_hours_invalid"
        );
        assert_eq!(
            hours("8am", "20:00").unwrap_err().code,
            "opening_hours_invalid"
        );
        assert_eq!(currency("XYZ").unwrap_err().code, "unknown_currency");
        assert_eq!(country("kr").unwrap_err().code, "country_invalid");
    }
}
