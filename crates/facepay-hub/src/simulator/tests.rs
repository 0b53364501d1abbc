use super::*;

/// 12:00 in Seoul, Jakarta, Hanoi and Bangkok alike is within open hours.
const NOON_UTC_MS: i64 = 5 * 3_600_000;

fn leg(
    id: &str,
    account: &str,
    direction: Direction,
    amount_minor: i64,
    currency: Currency,
) -> Leg {
    Leg {
        transfer_id: id.into(),
        account: account.into(),
        direction,
        amount_minor,
        currency,
    }
}

#[tokio::test]
async fn a_debit_is_held_then_taken_or_given_back() {
    let korea = SimulatedNetwork::new(Rules::korea(), Failure::None);
    korea.open_account("w1", "Kim", 50_000);
    let party = korea.resolve("w1").await.unwrap();
    assert_eq!(
        (party.name.as_str(), party.currency),
        ("Kim", Currency::KRW)
    );
    assert_eq!(
        korea.resolve("nobody").await,
        Err(NetworkError::UnknownAccount)
    );

    korea
        .reserve(
            leg("t1", "w1", Direction::Debit, 30_000, Currency::KRW),
            NOON_UTC_MS,
        )
        .await
        .unwrap();
    assert_eq!(korea.balance("w1"), Some(20_000), "held");
    // A retry of the same leg is the same leg.
    korea
        .reserve(
            leg("t1", "w1", Direction::Debit, 30_000, Currency::KRW),
            NOON_UTC_MS,
        )
        .await
        .unwrap();
    assert_eq!(korea.balance("w1"), Some(20_000));
    let other = leg("t1", "w1", Direction::Debit, 1_000, Currency::KRW);
    assert!(matches!(
        korea.reserve(other, NOON_UTC_MS).await,
        Err(NetworkError::Refused(_))
    ));
    assert_eq!(
        korea
            .reserve(
                leg("t2", "w1", Direction::Debit, 30_000, Currency::KRW),
                NOON_UTC_MS
            )
            .await,
        Err(NetworkError::Funds)
    );
    korea.reverse("t1").await.unwrap();
    assert_eq!(korea.balance("w1"), Some(50_000), "given back");
    assert_eq!(korea.status("t1").await, Ok(LegState::Reversed));
    assert_eq!(
        korea.commit("t1").await,
        Err(NetworkError::Settled("reversed"))
    );
    korea
        .reserve(
            leg("t3", "w1", Direction::Debit, 10_000, Currency::KRW),
            NOON_UTC_MS,
        )
        .await
        .unwrap();
    korea.commit("t3").await.unwrap();
    korea.commit("t3").await.unwrap();
    assert_eq!(korea.balance("w1"), Some(40_000), "taken once");
    assert_eq!(
        korea.status("nope").await,
        Err(NetworkError::UnknownTransfer)
    );
}

#[tokio::test]
async fn a_credit_lands_only_on_commit() {
    let thailand = SimulatedNetwork::new(Rules::thailand(), Failure::None);
    thailand.open_account("m1", "Som Tam Shop", 0);
    thailand
        .reserve(
            leg("t1", "m1", Direction::Credit, 12_050, Currency::THB),
            NOON_UTC_MS,
        )
        .await
        .unwrap();
    assert_eq!(thailand.balance("m1"), Some(0));
    thailand.commit("t1").await.unwrap();
    assert_eq!(thailand.balance("m1"), Some(12_050));
    assert_eq!(
        thailand.reverse("t1").await,
        Err(NetworkError::Settled("committed"))
    );
}

#[tokio::test]
async fn each_network_keeps_its_own_rules() {
    let indonesia = SimulatedNetwork::new(Rules::indonesia(), Failure::None);
    indonesia.open_account("m1", "Warung", 0);
    // Whole rupiah only, between 1,000 and 10,000,000.
    assert_eq!(
        indonesia.quote(5_500_050, NOON_UTC_MS).await,
        Err(NetworkError::Decimals)
    );
    assert_eq!(
        indonesia.quote(50_000, NOON_UTC_MS).await,
        Err(NetworkError::Limit)
    );
    assert_eq!(
        indonesia.quote(2_000_000_000, NOON_UTC_MS).await,
        Err(NetworkError::Limit)
    );
    assert_eq!(
        indonesia.quote(5_500_000, NOON_UTC_MS).await,
        Ok(NetworkQuote { fee_minor: 16_500 })
    );
    let wrong = leg("t1", "m1", Direction::Credit, 5_500_000, Currency::KRW);
    assert!(matches!(
        indonesia.reserve(wrong, NOON_UTC_MS).await,
        Err(NetworkError::Refused(_))
    ));

    // Vietnam closes from 23:00 to 00:30 local (UTC+7).
    let vietnam = SimulatedNetwork::new(Rules::vietnam(), Failure::None);
    let local = |h: i64, m: i64| ((h - 7).rem_euclid(24) * 60 + m) * 60_000;
    assert_eq!(
        vietnam.quote(100_000, local(23, 15)).await,
        Err(NetworkError::Closed)
    );
    assert_eq!(
        vietnam.quote(100_000, local(0, 10)).await,
        Err(NetworkError::Closed)
    );
    assert!(vietnam.quote(100_000, local(0, 30)).await.is_ok());
    assert!(vietnam.quote(100_000, local(22, 59)).await.is_ok());
}

#[tokio::test]
async fn failure_modes_fail_where_they_say() {
    let flaky = SimulatedNetwork::new(Rules::thailand(), Failure::OnCommit);
    flaky.open_account("m1", "Shop", 0);
    flaky
        .reserve(
            leg("t1", "m1", Direction::Credit, 1_000, Currency::THB),
            NOON_UTC_MS,
        )
        .await
        .unwrap();
    assert!(matches!(
        flaky.commit("t1").await,
        Err(NetworkError::Refused(_))
    ));
    flaky.reverse("t1").await.unwrap();
    assert_eq!(flaky.balance("m1"), Some(0));
    let silent = SimulatedNetwork::new(Rules::thailand(), Failure::Timeout);
    silent.open_account("m1", "Shop", 0);
    assert_eq!(
        silent
            .reserve(
                leg("t1", "m1", Direction::Credit, 1_000, Currency::THB),
                NOON_UTC_MS
            )
            .await,
        Err(NetworkError::Timeout)
    );
}
