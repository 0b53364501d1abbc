//! The hub's flows end to end: simulated networks, the FX desk and a real
//! store (SQLite, and PostgreSQL when `FACEPAY_TEST_POSTGRES_URL` is set),
//! with the ledger verified after each.

use std::sync::Arc;

use facepay_store::hub::State;
use facepay_store::{Store, ledger, testing};

use crate::demo::{BUDI_IDR, KIM_KRW, Members, merchant_qr, promptpay_qr};
use crate::service::{ATM_ACCOUNT, CASH_CONFIRM_MS, Hub, HubError, PENDING_STALE_MS};
use crate::simulator::{Failure, Rules, SimulatedNetwork};
use crate::{Direction, Leg, LegState, Network, iso20022};

/// 2027-01-15 03:00 UTC: noon in Seoul, ten in Jakarta and Bangkok.
pub(crate) const NOW_MS: i64 = 1_799_982_000_000;

pub(crate) struct World {
    pub(crate) hub: Hub,
    pub(crate) korea: Arc<SimulatedNetwork>,
    pub(crate) indonesia: Arc<SimulatedNetwork>,
    pub(crate) thailand: Arc<SimulatedNetwork>,
}

pub(crate) fn world(store: Store, indonesia_failure: Failure) -> World {
    let members = Members::simulated(indonesia_failure);
    World {
        hub: members.hub(store, NOW_MS).unwrap(),
        korea: members.korea,
        indonesia: members.indonesia,
        thailand: members.thailand,
    }
}

fn qr(network: &str, merchant: &str, currency_numeric: u16, amount: Option<&str>) -> String {
    merchant_qr(
        (network, merchant),
        ("Warung Makan", "Jakarta", "ID"),
        currency_numeric,
        amount,
        "B-1001",
    )
    .unwrap()
}

pub(crate) fn jakarta_qr() -> String {
    qr("id.co.qris.sim", "warung-01", 360, Some("55000"))
}

pub(crate) async fn stores() -> (tempfile::TempDir, Vec<Store>) {
    let dir = tempfile::tempdir().unwrap();
    let stores = testing::stores(dir.path()).await.unwrap();
    (dir, stores)
}

pub(crate) async fn verify(store: &Store) {
    let mut conn = store.acquire().await.unwrap();
    let v = ledger::verify(&mut conn).await.unwrap();
    assert!(v.ok(), "{:?}", v.problems);
}

/// The XML is well formed from start to end.
pub(crate) fn well_formed(xml: &str) {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut depth = 0i32;
    loop {
        match reader.read_event().unwrap() {
            quick_xml::events::Event::Start(_) => depth += 1,
            quick_xml::events::Event::End(_) => depth -= 1,
            quick_xml::events::Event::Eof => break,
            _ => {}
        }
    }
    assert_eq!(depth, 0);
}

#[tokio::test]
async fn payments_both_ways_commit_once_and_the_window_nets_to_zero() {
    let (_dir, stores) = stores().await;
    for store in stores {
        let w = world(store.clone(), Failure::None);

        // Outbound: Kim, in Jakarta, pays a warung's dynamic QR.
        let quote = w
            .hub
            .quote_qr("kr.wallet.sim", "kim", &jakarta_qr(), None, NOW_MS)
            .await
            .unwrap();
        assert_eq!(quote.destination_minor, 5_500_000);
        assert_eq!(quote.payee_name, "Warung Makan");
        assert_eq!(quote.reference.as_deref(), Some("B-1001"));
        let out = w.hub.pay("kim-app", "k1", &quote.id, NOW_MS).await.unwrap();
        assert_eq!(out.state, State::Committed);
        assert_eq!(w.korea.balance("kim"), Some(KIM_KRW - quote.source_minor));
        assert_eq!(w.indonesia.balance("warung-01"), Some(5_500_000));
        // The app retries: the same transfer, nothing charged twice.
        let again = w.hub.pay("kim-app", "k1", &quote.id, NOW_MS).await.unwrap();
        assert_eq!(again.id, out.id);
        assert_eq!(w.korea.balance("kim"), Some(KIM_KRW - quote.source_minor));

        // Inbound: Budi, visiting Seoul, pays a cafe's static QR.
        let seoul = qr("kr.wallet.sim", "seoul-cafe", 410, None);
        let missing = w
            .hub
            .quote_qr("id.co.qris.sim", "budi", &seoul, None, NOW_MS)
            .await
            .unwrap_err();
        assert_eq!(missing.code(), "hub_bad_amount");
        let back = w
            .hub
            .quote_qr("id.co.qris.sim", "budi", &seoul, Some("15000"), NOW_MS)
            .await
            .unwrap();
        let inbound = w.hub.pay("budi-app", "b1", &back.id, NOW_MS).await.unwrap();
        assert_eq!(inbound.state, State::Committed);
        assert_eq!(w.korea.balance("seoul-cafe"), Some(15_000));
        assert_eq!(
            w.indonesia.balance("budi"),
            Some(BUDI_IDR - back.source_minor)
        );
        assert_eq!(back.source_minor % 100, 0, "whole rupiah");

        // ISO 20022 renderings of what moved.
        let pacs008 = iso20022::pacs008(&out);
        well_formed(&pacs008);
        assert!(pacs008.contains("<IntrBkSttlmAmt Ccy=\"IDR\">55000.00</IntrBkSttlmAmt>"));
        assert!(pacs008.contains(&format!(
            "<InstdAmt Ccy=\"KRW\">{}</InstdAmt>",
            quote.source_minor
        )));
        assert!(pacs008.contains("<EndToEndId>B-1001</EndToEndId>"));
        assert_eq!(quote.provider, "bank_b", "the better of two rates");
        assert!(pacs008.contains("<XchgRate>11.44556</XchgRate>"));
        let pacs002 = iso20022::pacs002(&out);
        well_formed(&pacs002);
        assert!(pacs002.contains("<TxSts>ACCC</TxSts>"));

        // The window: every currency's positions sum to zero, and Korea's
        // nets its outbound against its inbound.
        let window = w.hub.close_window(NOW_MS + 1).await.unwrap();
        assert_eq!(window.transfer_count, 2);
        let report = w.hub.report(&window.id, None).await.unwrap();
        for (currency, total) in report.totals() {
            assert_eq!(total, 0, "{currency}");
        }
        let korea = report
            .positions
            .iter()
            .find(|p| p.participant == "kr.wallet.sim")
            .unwrap();
        assert_eq!(korea.net_minor, quote.source_minor - 15_000);
        let fees = report
            .positions
            .iter()
            .find(|p| p.participant == "hub fees" && p.currency == "KRW")
            .unwrap();
        assert_eq!(fees.net_minor, -quote.fee_minor);
        let krw = report.costs["KRW"];
        assert!(krw.hub_minor < krw.card_minor, "{krw:?}");
        assert!(report.render().contains("sum in IDR"));
        w.hub.settle_window(&window.id, NOW_MS + 2).await.unwrap();
        assert_eq!(
            w.hub
                .settle_window(&window.id, NOW_MS + 3)
                .await
                .unwrap_err()
                .code(),
            "hub_window_not_closed"
        );
        assert_eq!(
            w.hub.close_window(NOW_MS + 4).await.unwrap_err().code(),
            "hub_no_open_window"
        );
        verify(&store).await;
    }
}

#[tokio::test]
async fn a_foreign_network_failing_after_reserve_is_reversed_on_both_sides() {
    let (_dir, stores) = stores().await;
    for store in stores {
        let w = world(store.clone(), Failure::OnCommit);
        let quote = w
            .hub
            .quote_qr("kr.wallet.sim", "kim", &jakarta_qr(), None, NOW_MS)
            .await
            .unwrap();
        let t = w.hub.pay("kim-app", "k1", &quote.id, NOW_MS).await.unwrap();
        assert_eq!(t.state, State::Reversed);
        assert_eq!(t.reason.as_deref(), Some("network_refused"));
        assert_eq!(w.korea.balance("kim"), Some(KIM_KRW));
        assert_eq!(w.indonesia.balance("warung-01"), Some(0));
        assert_eq!(w.korea.status(&t.id).await, Ok(LegState::Reversed));
        assert_eq!(w.indonesia.status(&t.id).await, Ok(LegState::Reversed));
        assert!(iso20022::pacs002(&t).contains("<TxSts>RJCT</TxSts>"));
        let mut conn = store.acquire().await.unwrap();
        let v = ledger::verify(&mut conn).await.unwrap();
        assert!(v.ok(), "{:?}", v.problems);
        assert_eq!(v.transfers, 0, "nothing posted for a reversed transfer");
    }
}

#[tokio::test]
async fn quotes_are_honoured_once_until_they_expire_and_bad_codes_are_named() {
    let (_dir, stores) = stores().await;
    for store in stores {
        let w = world(store.clone(), Failure::None);
        let payload = jakarta_qr();
        let ask = || {
            w.hub
                .quote_qr("kr.wallet.sim", "kim", &payload, None, NOW_MS)
        };
        let late = ask().await.unwrap();
        let err = w
            .hub
            .pay("kim-app", "k1", &late.id, late.expires_at_ms)
            .await
            .unwrap_err();
        assert!(matches!(err, HubError::QuoteExpired), "{err}");
        assert_eq!(w.korea.balance("kim"), Some(KIM_KRW));

        let once = ask().await.unwrap();
        w.hub.pay("kim-app", "k2", &once.id, NOW_MS).await.unwrap();
        let err = w
            .hub
            .pay("kim-app", "k3", &once.id, NOW_MS)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "hub_quote_used");
        let other = ask().await.unwrap();
        let err = w
            .hub
            .pay("kim-app", "k2", &other.id, NOW_MS)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "idempotency_key_reused");
        let err = w
            .hub
            .pay("kim-app", "k4", "hq_nope", NOW_MS)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "hub_unknown_quote");

        let mut broken = jakarta_qr();
        broken.replace_range(broken.len() - 1.., "0");
        let err = w
            .hub
            .quote_qr("kr.wallet.sim", "kim", &broken, None, NOW_MS)
            .await
            .unwrap_err();
        assert!(err.code().starts_with("qr_"), "{}", err.code());
        let err = w
            .hub
            .quote_qr(
                "kr.wallet.sim",
                "kim",
                &jakarta_qr(),
                None,
                NOW_MS + 7_200_000,
            )
            .await
            .unwrap_err();
        assert_eq!(err.code(), "fx_no_rate", "the rate itself expired");
        let foreign = qr("zz.unknown", "m", 360, Some("1000"));
        let err = w
            .hub
            .quote_qr("kr.wallet.sim", "kim", &foreign, None, NOW_MS)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "hub_no_member_network");
        let too_big = qr("id.co.qris.sim", "warung-01", 360, Some("20000000"));
        let err = w
            .hub
            .quote_qr("kr.wallet.sim", "kim", &too_big, None, NOW_MS)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "network_limit");
        verify(&store).await;
    }
}

/// A PromptPay code as Thai apps print it has no merchant name, city or
/// category code: the quote goes through, and the code's scheme, the name
/// to show (the proxy) and what the scheme left out come with it.
#[tokio::test]
async fn a_promptpay_code_without_a_name_is_quoted_with_what_it_left_out() {
    let (_dir, stores) = stores().await;
    for store in stores {
        let w = world(store.clone(), Failure::None);
        let payload = promptpay_qr("0066812345678", ("th.promptpay.sim", "siam-market")).unwrap();
        let (quote, scanned) = w
            .hub
            .quote_scanned("kr.wallet.sim", "kim", &payload, Some("150.00"), NOW_MS)
            .await
            .unwrap();
        assert_eq!(quote.payee_account, "siam-market");
        assert_eq!(quote.payee_name, "Siam Market");
        assert_eq!(quote.destination_minor, 15_000);
        assert_eq!(scanned.scheme, facepay_qr::Scheme::PromptPay);
        assert_eq!(scanned.display_name, "PromptPay +66812345678");
        let omitted: Vec<u8> = scanned.warnings.iter().map(|w| w.field()).collect();
        assert_eq!(omitted, [52, 59, 60]);
        let t = w
            .hub
            .pay("kim-app", "pp-1", &quote.id, NOW_MS)
            .await
            .unwrap();
        assert_eq!(t.state, State::Committed);
        assert_eq!(w.thailand.balance("siam-market"), Some(15_000));
        verify(&store).await;
    }
}

#[tokio::test]
async fn cash_codes_dispense_once_and_an_unconfirmed_withdrawal_is_reversed() {
    let (_dir, stores) = stores().await;
    for store in stores {
        let w = world(store.clone(), Failure::None);
        let th = "th.promptpay.sim";
        let kim = ("kr.wallet.sim", "kim");

        // A code presented for another amount is spent, nothing charged.
        let cash = w
            .hub
            .issue_cash_code(kim, th, 100_000, NOW_MS)
            .await
            .unwrap();
        assert_eq!(cash.code.len(), 8);
        let err = w
            .hub
            .withdraw_cash(th, &cash.code, 50_000, NOW_MS)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "atm_code_mismatch");
        let err = w
            .hub
            .withdraw_cash(th, &cash.code, 100_000, NOW_MS)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "atm_code_used");
        assert_eq!(w.korea.balance("kim"), Some(KIM_KRW));

        // Dispensed and confirmed: 1,000 baht. The ATM's retry while it
        // dispenses is the same withdrawal; after it, the code is spent.
        let cash = w
            .hub
            .issue_cash_code(kim, th, 100_000, NOW_MS)
            .await
            .unwrap();
        let t = w
            .hub
            .withdraw_cash(th, &cash.code, 100_000, NOW_MS)
            .await
            .unwrap();
        assert_eq!(t.state, State::Reserved);
        let retry = w
            .hub
            .withdraw_cash(th, &cash.code, 100_000, NOW_MS)
            .await
            .unwrap();
        assert_eq!(retry.id, t.id);
        let done = w.hub.confirm_cash(th, &t.id, true, NOW_MS).await.unwrap();
        assert_eq!(done.state, State::Committed);
        let err = w
            .hub
            .withdraw_cash(th, &cash.code, 100_000, NOW_MS)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "atm_code_used");
        assert_eq!(w.thailand.balance(ATM_ACCOUNT), Some(100_000));
        let spent = cash.quote.source_minor;
        assert_eq!(w.korea.balance("kim"), Some(KIM_KRW - spent));
        let err = w
            .hub
            .confirm_cash(th, &t.id, true, NOW_MS)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "hub_transfer_not_reserved");
        // A cash quote does not pay a QR transfer.
        let other = w
            .hub
            .issue_cash_code(kim, th, 100_000, NOW_MS)
            .await
            .unwrap();
        let err = w
            .hub
            .pay("kim-app", "cash-as-qr", &other.quote.id, NOW_MS)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "hub_unknown_quote");

        // The ATM could not dispense: both sides reversed.
        let cash = w
            .hub
            .issue_cash_code(kim, th, 50_000, NOW_MS)
            .await
            .unwrap();
        let t = w
            .hub
            .withdraw_cash(th, &cash.code, 50_000, NOW_MS)
            .await
            .unwrap();
        let failed = w.hub.confirm_cash(th, &t.id, false, NOW_MS).await.unwrap();
        assert_eq!(failed.state, State::Reversed);
        assert_eq!(w.korea.balance("kim"), Some(KIM_KRW - spent));

        // The ATM never answers: the sweep reverses it.
        let cash = w
            .hub
            .issue_cash_code(kim, th, 50_000, NOW_MS)
            .await
            .unwrap();
        let t = w
            .hub
            .withdraw_cash(th, &cash.code, 50_000, NOW_MS)
            .await
            .unwrap();
        assert_eq!(
            w.hub
                .sweep(NOW_MS + CASH_CONFIRM_MS - 1)
                .await
                .unwrap()
                .reversed,
            0
        );
        assert_eq!(
            w.hub
                .sweep(NOW_MS + CASH_CONFIRM_MS + 1)
                .await
                .unwrap()
                .reversed,
            1
        );
        assert_eq!(w.hub.transfer(&t.id).await.unwrap().state, State::Reversed);
        assert_eq!(w.korea.balance("kim"), Some(KIM_KRW - spent));
        assert_eq!(w.thailand.status(&t.id).await, Ok(LegState::Reversed));

        // A code past its time, and one never issued.
        let cash = w
            .hub
            .issue_cash_code(kim, th, 50_000, NOW_MS)
            .await
            .unwrap();
        let err = w
            .hub
            .withdraw_cash(th, &cash.code, 50_000, cash.quote.expires_at_ms)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "atm_code_expired");
        let unknown = if cash.code == "00000000" {
            "00000001"
        } else {
            "00000000"
        };
        let err = w
            .hub
            .withdraw_cash(th, unknown, 50_000, NOW_MS)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "atm_code_unknown");
        verify(&store).await;
    }
}

#[tokio::test]
async fn the_sweep_finishes_an_interrupted_transfer_by_what_the_payee_network_did() {
    let (_dir, stores) = stores().await;
    for store in stores {
        let w = world(store.clone(), Failure::None);
        let mut taken = Vec::new();
        for key in ["paid", "unpaid"] {
            let quote = w
                .hub
                .quote_qr("kr.wallet.sim", "kim", &jakarta_qr(), None, NOW_MS)
                .await
                .unwrap();
            // A request that wrote its transfer and then stopped.
            let mut tx = store.begin().await.unwrap();
            let (t, fresh) = facepay_store::hub::begin(
                &mut tx,
                facepay_store::hub::Kind::Qr,
                "kim-app",
                key,
                &quote.id,
                NOW_MS,
            )
            .await
            .unwrap()
            .unwrap();
            tx.commit().await.unwrap();
            assert!(fresh);
            let leg = |account: &str, direction, amount_minor, currency| Leg {
                transfer_id: t.id.clone(),
                account: account.into(),
                direction,
                amount_minor,
                currency,
            };
            w.korea
                .reserve(
                    leg(
                        "kim",
                        Direction::Debit,
                        quote.source_minor,
                        Rules::korea().currency,
                    ),
                    NOW_MS,
                )
                .await
                .unwrap();
            if key == "paid" {
                let credit = leg(
                    "warung-01",
                    Direction::Credit,
                    quote.destination_minor,
                    Rules::indonesia().currency,
                );
                w.indonesia.reserve(credit, NOW_MS).await.unwrap();
                w.indonesia.commit(&t.id).await.unwrap();
            }
            taken.push((t, quote));
        }
        // A withdrawal whose ATM said "dispensed" just before the hub
        // stopped: it can only commit.
        let cash = w
            .hub
            .issue_cash_code(("kr.wallet.sim", "kim"), "th.promptpay.sim", 50_000, NOW_MS)
            .await
            .unwrap();
        let atm = w
            .hub
            .withdraw_cash("th.promptpay.sim", &cash.code, 50_000, NOW_MS)
            .await
            .unwrap();
        let mut conn = store.acquire().await.unwrap();
        assert!(
            facepay_store::hub::set_state(
                &mut conn,
                &atm.id,
                &[State::Reserved],
                State::Dispensed,
                None,
                NOW_MS
            )
            .await
            .unwrap()
        );
        drop(conn);
        let swept = w.hub.sweep(NOW_MS + PENDING_STALE_MS + 1).await.unwrap();
        assert_eq!((swept.committed, swept.reversed), (2, 1));
        assert_eq!(
            w.hub.transfer(&atm.id).await.unwrap().state,
            State::Committed
        );
        assert_eq!(w.thailand.balance(ATM_ACCOUNT), Some(50_000));
        let (paid, paid_quote) = &taken[0];
        assert_eq!(
            w.hub.transfer(&paid.id).await.unwrap().state,
            State::Committed
        );
        assert_eq!(
            w.hub.transfer(&taken[1].0.id).await.unwrap().state,
            State::Reversed
        );
        assert_eq!(
            w.korea.balance("kim"),
            Some(KIM_KRW - paid_quote.source_minor - cash.quote.source_minor)
        );
        assert_eq!(w.indonesia.balance("warung-01"), Some(5_500_000));
        verify(&store).await;
    }
}
