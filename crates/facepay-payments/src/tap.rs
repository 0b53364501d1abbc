//! A tap of the payer's IC card as a step-up factor (the TrustOne idea):
//! the server picks the unpredictable number, the card signs the payment's
//! own amount, currency, country and date with it, and the issuer checks
//! the cryptogram when the payment is authorised. A cryptogram made for
//! another payment carries another number; one replayed on this payment
//! carries a counter the issuer has seen.

use facepay_connector::CardTap;
use facepay_emv::TransactionData;
use facepay_money::Currency;

use crate::Failure;
use crate::api::{CardChallenge, CardTapRequest};

/// ISO 3166 numeric codes of the countries facepay's currencies are used
/// in. A store elsewhere signs 000 (unassigned), which both sides agree on.
const COUNTRIES: &[(&str, u16)] = &[
    ("KR", 410),
    ("JP", 392),
    ("VN", 704),
    ("US", 840),
    ("GB", 826),
    ("CN", 156),
    ("HK", 344),
    ("SG", 702),
    ("TH", 764),
    ("ID", 360),
    ("MY", 458),
    ("PH", 608),
    ("IN", 356),
    ("AU", 36),
    ("BH", 48),
    ("KW", 414),
    ("DE", 276),
    ("FR", 250),
];

fn country_numeric(alpha2: &str) -> u16 {
    COUNTRIES
        .iter()
        .find(|(code, _)| *code == alpha2)
        .map_or(0, |(_, numeric)| *numeric)
}

/// A fresh challenge for a payment in a store's country.
pub(crate) fn challenge(
    amount_minor: i64,
    currency: &str,
    country: &str,
    now_ms: i64,
) -> Result<CardChallenge, Failure> {
    let (year, month, day) = facepay_connector::card::utc_date(now_ms);
    Ok(CardChallenge {
        unpredictable_number: facepay_store::ids::random_hex(4)?,
        amount_minor,
        currency_numeric: Currency::from_code(currency)?.numeric(),
        country_numeric: country_numeric(country),
        date: format!("{:02}{month:02}{day:02}", year % 100),
    })
}

fn invalid(what: &str) -> Failure {
    Failure::bad_request(
        "card_tap_invalid",
        format!("the card tap's {what} is malformed"),
    )
}

/// The tap as the issuer will check it: the challenge's fields and the
/// card's answer.
pub(crate) fn card_tap(ch: &CardChallenge, answer: &CardTapRequest) -> Result<CardTap, Failure> {
    let arqc: [u8; 8] = hex::decode(&answer.arqc)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| invalid("arqc (16 hex digits)"))?;
    let aip: [u8; 2] = hex::decode(&answer.aip)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| invalid("aip (4 hex digits)"))?;
    let number: [u8; 4] = hex::decode(&ch.unpredictable_number)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(Failure::internal)?;
    let date = ch.date.as_bytes();
    let two = |i: usize| -> Result<u8, Failure> {
        std::str::from_utf8(date.get(i..i + 2).ok_or_else(Failure::internal)?)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(Failure::internal)
    };
    Ok(CardTap {
        data: TransactionData {
            amount_minor: u64::try_from(ch.amount_minor).map_err(|_| Failure::internal())?,
            other_amount_minor: 0,
            terminal_country: ch.country_numeric,
            tvr: [0; 5],
            currency: ch.currency_numeric,
            date: (two(0)?, two(2)?, two(4)?),
            transaction_type: 0,
            unpredictable_number: u32::from_be_bytes(number),
            aip,
            atc: answer.atc,
        },
        arqc,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_challenge_carries_the_payment_and_a_fresh_number() {
        let a = challenge(4_500, "KRW", "KR", 1_795_305_600_000).unwrap();
        let b = challenge(4_500, "KRW", "KR", 1_795_305_600_000).unwrap();
        assert_eq!((a.currency_numeric, a.country_numeric), (410, 410));
        assert_eq!(a.date, "261122");
        assert_eq!(a.unpredictable_number.len(), 8);
        assert_ne!(a.unpredictable_number, b.unpredictable_number);
        assert_eq!(challenge(1, "USD", "ZZ", 0).unwrap().country_numeric, 0);

        let answer = CardTapRequest {
            atc: 7,
            arqc: "00112233445566ff".into(),
            aip: "5800".into(),
        };
        let tap = card_tap(&a, &answer).unwrap();
        assert_eq!(tap.data.date, (26, 11, 22));
        assert_eq!(tap.data.amount_minor, 4_500);
        assert_eq!(tap.arqc[7], 0xff);
        for bad in [
            CardTapRequest {
                arqc: "0011".into(),
                ..answer
            },
            CardTapRequest {
                atc: 7,
                arqc: "zz112233445566ff".into(),
                aip: "5800".into(),
            },
            CardTapRequest {
                atc: 7,
                arqc: "00112233445566ff".into(),
                aip: "58".into(),
            },
        ] {
            assert_eq!(card_tap(&a, &bad).unwrap_err().code, "card_tap_invalid");
        }
    }
}
