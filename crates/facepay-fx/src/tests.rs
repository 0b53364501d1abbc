use facepay_money::Currency;

use super::*;

fn idr() -> Currency {
    Currency::from_code("IDR").unwrap()
}

fn krw_to_idr(provider: &str, mid: i128, spread_bps: u32) -> Posted {
    Posted {
        provider: provider.into(),
        source: Currency::KRW,
        destination: idr(),
        mid_rate: mid,
        spread_bps,
        valid_until_ms: 60 * 60_000,
    }
}

#[test]
fn a_quote_pays_the_merchant_in_full_and_shows_the_fee_apart() {
    let mut desk = Desk::new(20);
    // 1 KRW = 11.5 IDR at mid; 0.5% spread.
    desk.post(krw_to_idr("bank_a", 11_500_000_000, 50)).unwrap();
    // A merchant asks 55,000.00 IDR.
    let q = desk.quote(Currency::KRW, idr(), 5_500_000, 0).unwrap();
    // The customer rate is 11.4425 IDR a won: 55,000 / 11.4425 = 4,806.6
    // won, rounded up; the fee is 0.2% of it.
    assert_eq!(q.source_minor - q.fee_minor, 4_807);
    assert_eq!(q.fee_minor, 10);
    assert!(
        converted(
            q.source_minor - q.fee_minor,
            Currency::KRW,
            idr(),
            q.customer_rate
        )
        .unwrap()
            >= 5_500_000
    );
    assert_eq!(q.expires_at_ms, QUOTE_TTL_MS);
}

#[test]
fn the_best_provider_wins_and_an_expired_rate_never_quotes() {
    let mut desk = Desk::new(0);
    desk.post(krw_to_idr("wide", 11_500_000_000, 300)).unwrap();
    desk.post(krw_to_idr("tight", 11_490_000_000, 20)).unwrap();
    let q = desk.quote(Currency::KRW, idr(), 1_000_000, 0).unwrap();
    assert_eq!(q.provider, "tight");
    let late = 60 * 60_000;
    assert_eq!(
        desk.quote(Currency::KRW, idr(), 1_000_000, late)
            .unwrap_err()
            .code(),
        "fx_no_rate"
    );
    // A quote never outlives the rate it was priced on.
    let q = desk
        .quote(Currency::KRW, idr(), 1_000_000, late - 1_000)
        .unwrap();
    assert_eq!(q.expires_at_ms, late);
}

#[test]
fn bad_rates_and_amounts_are_refused() {
    let mut desk = Desk::new(0);
    assert_eq!(desk.post(krw_to_idr("a", 0, 50)), Err(FxError::BadRate));
    assert_eq!(desk.post(krw_to_idr("a", 11, 5_000)), Err(FxError::BadRate));
    desk.post(krw_to_idr("a", 11_500_000_000, 50)).unwrap();
    for amount in [0, -5, i64::MAX] {
        assert_eq!(
            desk.quote(Currency::KRW, idr(), amount, 0).unwrap_err(),
            FxError::BadAmount,
            "{amount}"
        );
    }
}

#[test]
fn the_hub_costs_less_than_a_card_and_rounding_never_loses() {
    let mut desk = Desk::new(20);
    // 1 KRW = 0.00072 USD.
    desk.post(Posted {
        provider: "bank_a".into(),
        source: Currency::KRW,
        destination: Currency::USD,
        mid_rate: 720_000,
        spread_bps: 30,
        valid_until_ms: i64::MAX,
    })
    .unwrap();
    for cents in [1, 99, 1_250, 4_999, 100_000] {
        let q = desk.quote(Currency::KRW, Currency::USD, cents, 0).unwrap();
        let principal = q.source_minor - q.fee_minor;
        let delivered =
            converted(principal, Currency::KRW, Currency::USD, q.customer_rate).unwrap();
        assert!(delivered >= cents, "{cents}: {delivered}");
        let one_less =
            converted(principal - 1, Currency::KRW, Currency::USD, q.customer_rate).unwrap();
        assert!(one_less < cents, "{cents}: not a won more than needed");
        let cost = q.cost().unwrap();
        assert!(cost.hub_minor <= cost.card_minor, "{cents}: {cost:?}");
    }
    // $100.00 from Seoul: 0.3% spread and 0.2% fee against 1% + 2%.
    let cost = desk
        .quote(Currency::KRW, Currency::USD, 10_000, 0)
        .unwrap()
        .cost()
        .unwrap();
    println!(
        "$100 from KRW: at mid {} won, hub {} won, card {} won",
        cost.at_mid_minor, cost.hub_minor, cost.card_minor
    );
    assert_eq!(cost.at_mid_minor, 138_889);
    assert!(cost.hub_minor < cost.card_minor / 5);
}

#[test]
fn a_quote_no_desk_would_price_has_no_cost() {
    let mut desk = Desk::new(20);
    desk.post(krw_to_idr("bank_a", 11_500_000_000, 30)).unwrap();
    let quote = desk.quote(Currency::KRW, idr(), 1_000_000, 0).unwrap();
    assert!(quote.cost().is_some());
    for mid_rate in [0, -1] {
        let corrupt = Quote {
            mid_rate,
            ..quote.clone()
        };
        assert!(corrupt.cost().is_none(), "mid rate {mid_rate}");
    }
    // 10^16 won at mid: an i64, but past the largest amount.
    let past_largest = Quote {
        mid_rate: 1,
        destination_minor: 1_000_000_000,
        ..quote.clone()
    };
    assert!(past_largest.cost().is_none());
    let corrupt_source = Quote {
        source_minor: i64::MIN,
        ..quote.clone()
    };
    assert!(corrupt_source.cost().is_none());
}
