//! Members, screening, alias lookup and settlement, end to end on the
//! simulators and a real store (SQLite, and PostgreSQL when
//! `FACEPAY_TEST_POSTGRES_URL` is set), with the ledger verified.

use std::sync::Arc;

use facepay_store::hub::{self as records, State};
use facepay_store::hub_members::FundsDirection;
use facepay_store::hub_settlement::InstructionState;
use facepay_store::{Store, ledger};

use crate::demo::{KIM_KRW, Members, SIAM_MARKET_PHONE};
use crate::flow_tests::{NOW_MS, World, jakarta_qr, stores, verify, well_formed, world};
use crate::members::Terms;
use crate::screening::{ListError, ListScreening, fold};
use crate::service::PENDING_STALE_MS;
use crate::settlement::{ATTEMPTS_MAX, BankFailure, SimulatedSettlementBank, pacs009};
use crate::simulator::Failure;
use crate::{AliasKind, Network};

const KOREA: &str = "kr.wallet.sim";
/// Who the audit log says acted.
const OPERATOR: &str = "operator:test";

fn terms(cap_minor: i64, per_minute: i64) -> Terms {
    Terms {
        currency: "KRW".into(),
        settlement_account: "KR-SETTLE-001".into(),
        net_debit_cap_minor: cap_minor,
        requests_per_minute: per_minute,
    }
}

async fn onboard_korea(w: &World, cap_minor: i64, funds_minor: i64) {
    w.hub
        .onboard(OPERATOR, KOREA, terms(cap_minor, 100), NOW_MS)
        .await
        .unwrap();
    w.hub
        .move_funds(
            OPERATOR,
            KOREA,
            "f-in",
            FundsDirection::In,
            funds_minor,
            NOW_MS,
        )
        .await
        .unwrap();
}

async fn pay_jakarta(w: &World, key: &str) -> Result<records::Transfer, crate::service::HubError> {
    let quote = w
        .hub
        .quote_qr(KOREA, "kim", &jakarta_qr(), None, NOW_MS)
        .await?;
    w.hub.pay("kim-app", key, &quote.id, NOW_MS).await
}

#[tokio::test]
async fn a_member_past_its_cap_is_refused_before_any_reserve() {
    let (_dir, stores) = stores().await;
    for store in stores {
        let w = world(store.clone(), Failure::None);
        // One Jakarta payment costs 4,816 won: the cap takes one, not two.
        onboard_korea(&w, 6_000, 50_000).await;
        let first = pay_jakarta(&w, "k1").await.unwrap();
        assert_eq!(first.state, State::Committed);
        let paid = first.quote.source_minor;

        let quote = w
            .hub
            .quote_qr(KOREA, "kim", &jakarta_qr(), None, NOW_MS)
            .await
            .unwrap();
        let err = w
            .hub
            .pay("kim-app", "k2", &quote.id, NOW_MS)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "hub_member_cap", "{err}");
        // No network heard of it, no transfer was left, the quote is unused.
        assert_eq!(w.korea.balance("kim"), Some(KIM_KRW - paid));
        assert_eq!(w.indonesia.balance("warung-01"), Some(5_500_000));
        let mut conn = store.acquire().await.unwrap();
        assert!(
            records::transfer_by_key(&mut conn, "kim-app", "k2")
                .await
                .unwrap()
                .is_none()
        );
        drop(conn);

        // A cap below what it owes now is refused; a higher one lets the
        // same quote pay.
        let err = w
            .hub
            .onboard(OPERATOR, KOREA, terms(100, 100), NOW_MS)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "hub_bad_member");
        w.hub
            .onboard(OPERATOR, KOREA, terms(20_000, 100), NOW_MS)
            .await
            .unwrap();
        let again = w.hub.pay("kim-app", "k2", &quote.id, NOW_MS).await.unwrap();
        assert_eq!(again.state, State::Committed);
        let standing = w.hub.standing(KOREA).await.unwrap();
        assert_eq!(standing.exposure_minor, 2 * paid);
        verify(&store).await;
    }
}

#[tokio::test]
async fn funds_limit_a_member_and_move_in_the_ledger_once_per_key() {
    let (_dir, stores) = stores().await;
    for store in stores {
        let w = world(store.clone(), Failure::None);
        // The cap is generous; the funds (4,000 won) are not.
        onboard_korea(&w, 1_000_000, 4_000).await;
        let err = pay_jakarta(&w, "k1").await.unwrap_err();
        assert_eq!(err.code(), "hub_member_cap");
        assert_eq!(w.korea.balance("kim"), Some(KIM_KRW));

        let top_up = w
            .hub
            .move_funds(OPERATOR, KOREA, "f-2", FundsDirection::In, 6_000, NOW_MS)
            .await
            .unwrap();
        let retried = w
            .hub
            .move_funds(OPERATOR, KOREA, "f-2", FundsDirection::In, 6_000, NOW_MS)
            .await
            .unwrap();
        assert_eq!(retried.id, top_up.id, "the same key, the same movement");
        let err = w
            .hub
            .move_funds(OPERATOR, KOREA, "f-2", FundsDirection::Out, 6_000, NOW_MS)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "idempotency_key_reused");
        let t = pay_jakarta(&w, "k1").await.unwrap();
        assert_eq!(t.state, State::Committed);

        // Funds covering what it owes cannot go out.
        let standing = w.hub.standing(KOREA).await.unwrap();
        assert_eq!(standing.funds_minor, 10_000);
        let free = 10_000 - t.quote.source_minor;
        let err = w
            .hub
            .move_funds(
                OPERATOR,
                KOREA,
                "f-3",
                FundsDirection::Out,
                free + 1,
                NOW_MS,
            )
            .await
            .unwrap_err();
        assert_eq!(err.code(), "hub_member_funds");
        w.hub
            .move_funds(OPERATOR, KOREA, "f-3", FundsDirection::Out, free, NOW_MS)
            .await
            .unwrap();

        let mut conn = store.acquire().await.unwrap();
        let balances = ledger::balances(&mut conn).await.unwrap();
        let funds = balances
            .iter()
            .find(|b| b.account_id == "hub:funds:kr.wallet.sim:KRW")
            .unwrap();
        assert_eq!(funds.balance_minor, -t.quote.source_minor);
        drop(conn);
        verify(&store).await;

        // `ledger verify` holds members to their caps: one lowered behind
        // the hub's back is found.
        let mut conn = store.acquire().await.unwrap();
        sqlx::query("UPDATE hub_members SET net_debit_cap_minor = 0")
            .execute(&mut *conn)
            .await
            .unwrap();
        let v = ledger::verify(&mut conn).await.unwrap();
        assert_eq!(v.problem_count, 1, "{:?}", v.problems);
        assert!(v.problems[0].contains("past its cap"), "{:?}", v.problems);
    }
}

#[tokio::test]
async fn a_member_asking_faster_than_its_rate_is_refused_until_the_next_minute() {
    let (_dir, stores) = stores().await;
    for store in stores {
        let w = world(store.clone(), Failure::None);
        w.hub
            .onboard(OPERATOR, KOREA, terms(0, 2), NOW_MS)
            .await
            .unwrap();
        // A second server on the same store counts against the same rate.
        let other_server = Members::simulated(Failure::None)
            .hub(store.clone(), NOW_MS)
            .unwrap();
        let payload = jakarta_qr();
        let ask = |now_ms| w.hub.quote_qr(KOREA, "kim", &payload, None, now_ms);
        ask(NOW_MS).await.unwrap();
        other_server
            .quote_qr(KOREA, "kim", &payload, None, NOW_MS)
            .await
            .unwrap();
        let err = ask(NOW_MS).await.unwrap_err();
        assert_eq!(err.code(), "hub_rate_limited");
        let err = other_server
            .quote_qr(KOREA, "kim", &payload, None, NOW_MS)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "hub_rate_limited");
        // Another member is not slowed by Korea's rate.
        w.hub
            .lookup_alias(
                "id.co.qris.sim",
                ("th.promptpay.sim", AliasKind::Phone, SIAM_MARKET_PHONE),
                NOW_MS,
            )
            .await
            .unwrap();
        ask(NOW_MS + 60_000).await.unwrap();
    }
}

#[tokio::test]
async fn an_alias_is_resolved_through_the_payee_network_and_confirmed_by_name() {
    let (_dir, stores) = stores().await;
    for store in stores {
        let w = world(store.clone(), Failure::None);
        let thai = w.thailand.id().to_owned();
        let payee = w
            .hub
            .lookup_alias(KOREA, (&thai, AliasKind::Phone, SIAM_MARKET_PHONE), NOW_MS)
            .await
            .unwrap();
        assert_eq!(payee.account, "siam-market");
        assert_eq!(payee.name, "Siam Market");
        // The payer saw the name and pays that account.
        let quote = w
            .hub
            .quote_account((KOREA, "kim"), (&thai, &payee.account), "350.00", NOW_MS)
            .await
            .unwrap();
        assert_eq!(quote.payee_name, payee.name);
        assert_eq!(quote.destination_minor, 35_000);
        let t = w.hub.pay("kim-app", "a1", &quote.id, NOW_MS).await.unwrap();
        assert_eq!(t.state, State::Committed);
        assert_eq!(w.thailand.balance("siam-market"), Some(35_000));

        let err = w
            .hub
            .lookup_alias(KOREA, (&thai, AliasKind::Phone, "+66000000000"), NOW_MS)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "network_unknown_account");
        let err = w
            .hub
            .lookup_alias(KOREA, (&thai, AliasKind::QrId, SIAM_MARKET_PHONE), NOW_MS)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "network_unknown_account", "kinds do not mix");
        verify(&store).await;
    }
}

const LIST: &str = "# a test list\n\
                    \n\
                    SDN-7|WARUNG MAKAN|Warung M.;Makan Warung\n\
                    SDN-8|Someone Else\n";

#[test]
fn a_sanctions_list_reads_its_format_and_names_its_errors() {
    let list = ListScreening::parse(LIST).unwrap();
    assert_eq!(fold("  Warung,  Makan. "), "warung makan");
    drop(list);
    assert_eq!(
        ListScreening::parse("SDN-1\n").unwrap_err(),
        ListError::BadLine(1)
    );
    assert_eq!(
        ListScreening::parse("ok|Name\n|No id\n").unwrap_err(),
        ListError::BadLine(2)
    );
    assert_eq!(
        ListScreening::parse("a|b|c|d\n").unwrap_err(),
        ListError::BadLine(1)
    );
    let long = format!("a|{}\n", "x".repeat(5_000));
    assert_eq!(
        ListScreening::parse(&long).unwrap_err(),
        ListError::LineTooLong(1)
    );
}

#[tokio::test]
async fn a_screening_hit_is_held_until_an_operator_releases_or_refuses_it() {
    let (_dir, stores) = stores().await;
    for store in stores {
        let mut w = world(store.clone(), Failure::None);
        w.hub
            .set_screening(Arc::new(ListScreening::parse(LIST).unwrap()));
        let held = pay_jakarta(&w, "k1").await.unwrap();
        assert_eq!(held.state, State::Held);
        assert_eq!(
            held.reason.as_deref(),
            Some("screening: payee matched list entry SDN-7")
        );
        // Nothing was reserved, and the sweep leaves it to the operator.
        assert_eq!(w.korea.balance("kim"), Some(KIM_KRW));
        assert!(w.korea.status(&held.id).await.is_err());
        let swept = w.hub.sweep(NOW_MS + 3 * PENDING_STALE_MS).await.unwrap();
        assert_eq!((swept.committed, swept.reversed), (0, 0));
        assert_eq!(w.hub.transfer(&held.id).await.unwrap().state, State::Held);

        let released = w.hub.release(OPERATOR, &held.id, NOW_MS + 1).await.unwrap();
        assert_eq!(released.state, State::Committed);
        assert_eq!(w.indonesia.balance("warung-01"), Some(5_500_000));
        let err = w
            .hub
            .release(OPERATOR, &held.id, NOW_MS + 2)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "hub_transfer_not_held");

        let second = pay_jakarta(&w, "k2").await.unwrap();
        assert_eq!(second.state, State::Held);
        let refused = w
            .hub
            .refuse(OPERATOR, &second.id, NOW_MS + 3)
            .await
            .unwrap();
        assert_eq!(refused.state, State::Reversed);
        assert_eq!(refused.reason.as_deref(), Some("hub_screening_refused"));
        assert_eq!(w.indonesia.balance("warung-01"), Some(5_500_000));

        // Each decision is in the audit log, with who made it.
        let mut conn = store.acquire().await.unwrap();
        let decisions: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT actor, action, subject FROM audit_log \
             WHERE action IN ('hub_transfer_released', 'hub_transfer_refused') ORDER BY seq",
        )
        .fetch_all(&mut *conn)
        .await
        .unwrap();
        let expected = [
            ("hub_transfer_released", &held.id),
            ("hub_transfer_refused", &second.id),
        ]
        .map(|(action, id)| (OPERATOR.to_owned(), action.to_owned(), id.clone()));
        assert_eq!(decisions, expected);
        let chain = facepay_store::audit::verify(&mut conn).await.unwrap();
        assert!(chain.broken.is_none(), "{chain:?}");
        drop(conn);
        verify(&store).await;
    }
}

/// A hub whose settlement bank misbehaves as `failure`, with two payments
/// in a closed window.
async fn closed_window(
    store: Store,
    failure: BankFailure,
) -> (World, Arc<SimulatedSettlementBank>, String) {
    let mut w = world(store, Failure::None);
    let bank = Arc::new(SimulatedSettlementBank::new(failure));
    w.hub.set_settlement_bank(bank.clone());
    w.hub
        .onboard(OPERATOR, KOREA, terms(1_000_000, 100), NOW_MS)
        .await
        .unwrap();
    w.hub
        .move_funds(
            OPERATOR,
            KOREA,
            "f-in",
            FundsDirection::In,
            1_000_000,
            NOW_MS,
        )
        .await
        .unwrap();
    pay_jakarta(&w, "k1").await.unwrap();
    pay_jakarta(&w, "k2").await.unwrap();
    let window = w.hub.close_window(NOW_MS + 1).await.unwrap();
    (w, bank, window.id)
}

#[tokio::test]
async fn a_window_is_settled_only_once_every_instruction_is_confirmed() {
    let (_dir, stores) = stores().await;
    for store in stores {
        // The bank refuses each instruction twice: one settle's tries.
        let (w, bank, window) = closed_window(store.clone(), BankFailure::RefuseFirst(2)).await;
        let first = w.hub.settle_window(&window, NOW_MS + 2).await.unwrap();
        assert_eq!(first.window.state, "closed");
        assert!(!first.instructions.is_empty());
        for i in &first.instructions {
            assert_eq!(i.state, InstructionState::Pending);
            assert_eq!(i.attempts, 2);
            assert!(i.last_error.is_some());
        }
        verify(&store).await;
        let korea = first
            .instructions
            .iter()
            .find(|i| i.participant == "hub:position:kr.wallet.sim:KRW")
            .unwrap();
        assert_eq!(korea.settlement_account, "KR-SETTLE-001");
        let message = pacs009(korea, "settlement-bank.sim");
        well_formed(&message);
        assert!(message.contains("pacs.009.001.08"));
        assert!(message.contains(&format!(
            "<IntrBkSttlmAmt Ccy=\"KRW\">{}</IntrBkSttlmAmt>",
            korea.net_minor
        )));
        assert!(message.contains("<Dbtr><FinInstnId><Othr><Id>KR-SETTLE-001</Id>"));

        // Retried: every instruction confirmed, the window settled, and
        // Korea owes nothing any more.
        let second = w.hub.settle_window(&window, NOW_MS + 3).await.unwrap();
        assert_eq!(second.window.state, "settled");
        for i in &second.instructions {
            assert_eq!(i.state, InstructionState::Confirmed);
            assert_eq!(i.attempts, 3);
            assert_eq!(bank.submissions(&i.id), 3);
            assert_eq!(
                i.bank_reference.as_deref(),
                Some(format!("sim-{}", i.id).as_str())
            );
        }
        assert_eq!(w.hub.standing(KOREA).await.unwrap().exposure_minor, 0);
        let mut conn = store.acquire().await.unwrap();
        for b in ledger::balances(&mut conn).await.unwrap() {
            if b.account_id.starts_with("hub:position:") || b.account_id.starts_with("hub:fees:") {
                assert_eq!(b.balance_minor, 0, "{} settled", b.account_id);
            }
        }
        drop(conn);
        verify(&store).await;
    }
}

#[tokio::test]
async fn an_instruction_the_bank_never_confirms_is_retried_then_failed_and_reported() {
    let (_dir, stores) = stores().await;
    for store in stores {
        let (w, bank, window) = closed_window(store.clone(), BankFailure::RefuseAll).await;
        let mut last = None;
        for n in 0..4 {
            let s = w.hub.settle_window(&window, NOW_MS + 2 + n).await.unwrap();
            assert_eq!(s.window.state, "closed");
            last = Some(s);
        }
        for i in &last.unwrap().instructions {
            assert_eq!(i.state, InstructionState::Failed);
            assert_eq!(i.attempts, ATTEMPTS_MAX);
            assert_eq!(i64::from(bank.submissions(&i.id)), ATTEMPTS_MAX, "bounded");
            assert!(i.last_error.as_deref().unwrap().contains("refused"));
        }
        verify(&store).await;

        // The operator retries: the bank refuses again, each instruction
        // gets its attempts afresh and fails again, and the window stays
        // closed. A window that is not closed cannot be retried.
        let retried = w
            .hub
            .retry_settlement(OPERATOR, &window, NOW_MS + 10)
            .await
            .unwrap();
        assert_eq!(retried.window.state, "closed");
        for i in &retried.instructions {
            assert_eq!((i.state, i.attempts), (InstructionState::Pending, 2));
        }
        let err = w
            .hub
            .retry_settlement(OPERATOR, "win_nope", NOW_MS + 11)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "hub_unknown_window");
        verify(&store).await;
    }
}

#[tokio::test]
async fn two_payments_racing_past_a_cap_let_one_through() {
    let (_dir, stores) = stores().await;
    for store in stores {
        let w = world(store.clone(), Failure::None);
        onboard_korea(&w, 6_000, 50_000).await;
        let payload = jakarta_qr();
        let ask = || w.hub.quote_qr(KOREA, "kim", &payload, None, NOW_MS);
        let (a, b) = (ask().await.unwrap(), ask().await.unwrap());
        let (paid_a, paid_b) = tokio::join!(
            w.hub.pay("kim-app", "race-a", &a.id, NOW_MS),
            w.hub.pay("kim-app", "race-b", &b.id, NOW_MS)
        );
        let outcomes = [paid_a, paid_b];
        let committed = outcomes
            .iter()
            .filter(|r| matches!(r, Ok(t) if t.state == State::Committed))
            .count();
        let codes: Vec<_> = outcomes
            .iter()
            .filter_map(|r| r.as_ref().err().map(|e| e.code()))
            .collect();
        assert_eq!(
            (committed, codes.as_slice()),
            (1, ["hub_member_cap"].as_slice())
        );
        assert_eq!(w.korea.balance("kim"), Some(KIM_KRW - a.source_minor));
        verify(&store).await;
    }
}

#[tokio::test]
async fn an_operator_retries_failed_instructions_and_the_window_settles() {
    let (_dir, stores) = stores().await;
    for store in stores {
        // The bank refuses each instruction six times: all of its attempts.
        let (w, bank, window) = closed_window(store.clone(), BankFailure::RefuseFirst(6)).await;
        for n in 0..3 {
            w.hub.settle_window(&window, NOW_MS + 2 + n).await.unwrap();
        }
        let stuck = w.hub.settle_window(&window, NOW_MS + 5).await.unwrap();
        assert_eq!(stuck.window.state, "closed");
        assert!(
            stuck
                .instructions
                .iter()
                .all(|i| i.state == InstructionState::Failed)
        );
        let settled = w
            .hub
            .retry_settlement(OPERATOR, &window, NOW_MS + 6)
            .await
            .unwrap();
        assert_eq!(settled.window.state, "settled");
        for i in &settled.instructions {
            assert_eq!((i.state, i.attempts), (InstructionState::Confirmed, 1));
            assert_eq!(bank.submissions(&i.id), 7);
        }
        let err = w
            .hub
            .retry_settlement(OPERATOR, &window, NOW_MS + 7)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "hub_window_not_closed");
        verify(&store).await;
    }
}
