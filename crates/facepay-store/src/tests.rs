//! The store's own guarantees, on SQLite and (when configured) PostgreSQL.

use crate::idempotency::{self, Claim};
use crate::ledger::{self, PaymentRef};
use crate::parties::{self, Merchant, StoreRow};
use crate::payments::{self, Payment};
use crate::{Store, StoreError, testing};

async fn seed(store: &Store) -> Payment {
    let mut tx = store.begin().await.unwrap();
    let merchant = Merchant {
        id: "m1".into(),
        name: "Cafe".into(),
        fee_bps: 250,
        status: "active".into(),
    };
    parties::insert_merchant(&mut tx, &merchant, 1)
        .await
        .unwrap();
    let shop = StoreRow {
        id: "s1".into(),
        merchant_id: "m1".into(),
        name: "Gangnam".into(),
        country: "KR".into(),
        city: "Seoul".into(),
        currency: "KRW".into(),
        latitude_e6: 37_497_942,
        longitude_e6: 127_027_621,
    };
    parties::insert_store(&mut tx, &shop, 1).await.unwrap();
    parties::insert_terminal(&mut tx, "t1", "s1", &[7; 32], 1)
        .await
        .unwrap();
    let payment = Payment {
        id: "pay_1".into(),
        terminal_id: "t1".into(),
        store_id: "s1".into(),
        merchant_id: "m1".into(),
        idempotency_key: "k1".into(),
        user_id: None,
        payment_method_id: None,
        amount_minor: 4500,
        currency: "KRW".into(),
        capture_mode: "manual".into(),
        authorised_minor: 0,
        captured_minor: 0,
        refunded_minor: 0,
        fee_minor: 0,
        state: "created".into(),
        reason: "received".into(),
        connector: None,
        issuer_ref: None,
        match_score: None,
        candidates: None,
        step_up_attempts: 0,
        liveness: None,
        expires_at_ms: None,
        created_at_ms: 10,
        updated_at_ms: 10,
    };
    payments::insert(&mut tx, &payment).await.unwrap();
    tx.commit().await.unwrap();
    payment
}

/// A score, then none, then a score again through the same cached
/// statements on one connection: each reads back exactly as written.
#[tokio::test]
async fn match_scores_with_and_without_a_value_share_one_statement() {
    let dir = tempfile::tempdir().unwrap();
    for store in testing::stores(dir.path()).await.unwrap() {
        let backend = store.backend().name();
        let seeded = seed(&store).await;
        let mut conn = store.acquire().await.unwrap();
        let scores = [Some(0.812_345_678_901_234_5), None, Some(1.0 / 3.0)];
        for (i, score) in scores.into_iter().enumerate() {
            let p = Payment {
                id: format!("pay_s{i}"),
                idempotency_key: format!("ks{i}"),
                match_score: score,
                ..seeded.clone()
            };
            payments::insert(&mut conn, &p).await.unwrap();
            let read = payments::get(&mut conn, &p.id).await.unwrap().unwrap();
            assert_eq!(read.match_score, score, "{backend}: inserted");
            let moved = Payment {
                match_score: scores[(i + 1) % scores.len()],
                state: "requires_step_up".into(),
                ..p.clone()
            };
            payments::transition(&mut conn, &p, &moved).await.unwrap();
            let read = payments::get(&mut conn, &p.id).await.unwrap().unwrap();
            assert_eq!(read.match_score, moved.match_score, "{backend}: updated");
        }
    }
}

#[tokio::test]
async fn a_payment_moves_money_once_and_verify_proves_it() {
    let dir = tempfile::tempdir().unwrap();
    for store in testing::stores(dir.path()).await.unwrap() {
        let backend = store.backend().name();
        let mut p = seed(&store).await;
        let r = PaymentRef {
            payment_id: "pay_1",
            merchant_id: "m1",
            currency: "KRW",
        };

        let mut tx = store.begin().await.unwrap();
        ledger::authorise(&mut tx, r, 4500, 20).await.unwrap();
        let before = p.clone();
        p.state = "authorised".into();
        p.authorised_minor = 4500;
        payments::transition(&mut tx, &before, &p).await.unwrap();
        tx.commit().await.unwrap();

        // A step posted twice is refused by the ledger itself.
        let mut tx = store.begin().await.unwrap();
        let again = ledger::authorise(&mut tx, r, 4500, 21).await;
        assert!(matches!(again, Err(StoreError::Duplicate(_))), "{backend}");
        tx.rollback().await.unwrap();

        // Partial capture: 4000 captured, 500 released, fee 100.
        let mut tx = store.begin().await.unwrap();
        ledger::capture(&mut tx, r, 4000, 100, 30).await.unwrap();
        ledger::release(&mut tx, r, 500, 30).await.unwrap();
        let before = p.clone();
        p.state = "captured".into();
        p.captured_minor = 4000;
        p.fee_minor = 100;
        payments::transition(&mut tx, &before, &p).await.unwrap();
        tx.commit().await.unwrap();

        let mut tx = store.begin().await.unwrap();
        ledger::refund(&mut tx, r, "ref_1", 1000, 40).await.unwrap();
        payments::insert_refund(&mut tx, "ref_1", "pay_1", 1000, 40)
            .await
            .unwrap();
        let before = p.clone();
        p.state = "partially_refunded".into();
        p.refunded_minor = 1000;
        payments::transition(&mut tx, &before, &p).await.unwrap();
        tx.commit().await.unwrap();

        let mut conn = store.pool().acquire().await.unwrap();
        let v = ledger::verify(&mut conn).await.unwrap();
        assert!(v.ok(), "{backend}: {:?}", v.problems);
        assert_eq!((v.payments, v.transfers), (1, 4), "{backend}");

        let balances = ledger::balances(&mut conn).await.unwrap();
        let balance = |id: &str| {
            balances
                .iter()
                .find(|b| b.account_id == id)
                .map(|b| b.balance_minor)
        };
        assert_eq!(balance("issuer_holds:KRW"), Some(0), "{backend}");
        assert_eq!(balance("issuer_receivable:KRW"), Some(3000), "{backend}");
        assert_eq!(balance("merchant:m1:payable:KRW"), Some(-2900), "{backend}");
        assert_eq!(balance("platform:fees:KRW"), Some(-100), "{backend}");

        let report = payments::daily_report(&mut conn, "m1", 0).await.unwrap();
        assert_eq!(report.len(), 1, "{backend}");
        let day = &report[0];
        assert_eq!(
            (
                day.count,
                day.gross_minor,
                day.refunds_minor,
                day.fees_minor,
                day.net_minor
            ),
            (1, 4000, 1000, 100, 2900),
            "{backend}"
        );

        let events = payments::events(&mut conn, "pay_1").await.unwrap();
        let states: Vec<_> = events.iter().map(|e| e.to_state.as_str()).collect();
        assert_eq!(
            states,
            ["created", "authorised", "captured", "partially_refunded"],
            "{backend}"
        );
    }
}

#[tokio::test]
async fn a_move_announces_its_webhook_events_only_when_it_is_written() {
    use crate::webhooks::{self, Endpoint, NewEvent};

    let dir = tempfile::tempdir().unwrap();
    for store in testing::stores(dir.path()).await.unwrap() {
        let backend = store.backend().name();
        let created = seed(&store).await;
        let mut conn = store.acquire().await.unwrap();
        let endpoint = Endpoint {
            id: "we_a".into(),
            merchant_id: "m1".into(),
            url: "https://shop.example/hooks".into(),
            status: webhooks::ENABLED.into(),
            disabled_reason: None,
            secret_key_id: "dek_we_a".into(),
            secret_nonce: vec![1; 12],
            secret_ciphertext: vec![2; 48],
            failing_since_ms: None,
            created_at_ms: 1,
            updated_at_ms: 1,
        };
        webhooks::insert_endpoint(&mut conn, &endpoint, &["payment.captured"], 3)
            .await
            .unwrap();
        let event = |id, event_type| NewEvent {
            id,
            merchant_id: "m1",
            event_type,
            resource_id: "pay_1",
            payload: r#"{"id":"pay_1"}"#,
            created_at_ms: 20,
        };
        let mut authorised = created.clone();
        authorised.state = "authorised".into();
        authorised.authorised_minor = 4500;
        let mut captured = authorised.clone();
        captured.state = "captured".into();
        captured.captured_minor = 4500;
        let counts = async |conn: &mut crate::Connection| {
            let mut n = Vec::new();
            for table in ["payment_events", "webhook_events", "webhook_deliveries"] {
                let sql = format!("SELECT CAST(COUNT(*) AS BIGINT) FROM {table}");
                n.push(
                    sqlx::query_scalar::<_, i64>(&sql)
                        .fetch_one(&mut *conn)
                        .await
                        .unwrap(),
                );
            }
            n
        };

        // Only the event someone subscribes to is kept, with its delivery.
        let announced = [
            event("evt_1", "payment.authorised"),
            event("evt_2", "payment.captured"),
        ];
        payments::transition_via(&mut conn, &created, &authorised, &captured, &announced)
            .await
            .unwrap();
        assert_eq!(counts(&mut conn).await, [3, 1, 1], "{backend}");

        // A move from a stale copy writes nothing, its events included.
        let again = [
            event("evt_3", "payment.authorised"),
            event("evt_4", "payment.captured"),
        ];
        let stale =
            payments::transition_via(&mut conn, &created, &authorised, &captured, &again).await;
        assert!(matches!(stale, Err(StoreError::Duplicate(_))), "{backend}");
        assert_eq!(counts(&mut conn).await, [3, 1, 1], "{backend}");

        // A move nobody subscribes to keeps no event.
        let mut refunded = captured.clone();
        refunded.state = "refunded".into();
        refunded.refunded_minor = 4500;
        let unheard = [event("evt_5", "payment.refunded")];
        payments::transition_announced(&mut conn, &captured, &refunded, &unheard)
            .await
            .unwrap();
        assert_eq!(counts(&mut conn).await, [4, 1, 1], "{backend}");
        let kept: Vec<String> = sqlx::query_scalar("SELECT id FROM webhook_events")
            .fetch_all(&mut *conn)
            .await
            .unwrap();
        assert_eq!(kept, ["evt_2"], "{backend}");
        let delivered: Vec<(String, String)> =
            sqlx::query_as("SELECT event_id, endpoint_id FROM webhook_deliveries")
                .fetch_all(&mut *conn)
                .await
                .unwrap();
        assert_eq!(
            delivered,
            [("evt_2".to_owned(), "we_a".to_owned())],
            "{backend}"
        );
    }
}

#[tokio::test]
async fn an_approval_captured_at_once_records_both_moves_in_order() {
    let dir = tempfile::tempdir().unwrap();
    for store in testing::stores(dir.path()).await.unwrap() {
        let backend = store.backend().name();
        let created = seed(&store).await;
        let r = PaymentRef {
            payment_id: "pay_1",
            merchant_id: "m1",
            currency: "KRW",
        };
        let mut authorised = created.clone();
        authorised.state = "authorised".into();
        authorised.authorised_minor = 4500;
        let mut captured = authorised.clone();
        captured.state = "captured".into();
        captured.captured_minor = 4500;
        captured.fee_minor = 112;
        let mut tx = store.begin().await.unwrap();
        ledger::authorise_and_capture(&mut tx, r, 4500, 112, 20)
            .await
            .unwrap();
        payments::transition_via(&mut tx, &created, &authorised, &captured, &[])
            .await
            .unwrap();
        tx.commit().await.unwrap();

        // The same moves again find the row changed: nothing is written.
        let mut conn = store.pool().acquire().await.unwrap();
        let again =
            payments::transition_via(&mut conn, &created, &authorised, &captured, &[]).await;
        assert!(matches!(again, Err(StoreError::Duplicate(_))), "{backend}");
        let events = payments::events(&mut conn, "pay_1").await.unwrap();
        let states: Vec<_> = events.iter().map(|e| e.to_state.as_str()).collect();
        assert_eq!(states, ["created", "authorised", "captured"], "{backend}");
        let froms: Vec<_> = events.iter().map(|e| e.from_state.as_deref()).collect();
        assert_eq!(
            froms,
            [None, Some("created"), Some("authorised")],
            "{backend}"
        );
        let v = ledger::verify(&mut conn).await.unwrap();
        assert!(v.ok(), "{backend}: {:?}", v.problems);
        assert_eq!((v.payments, v.transfers), (1, 2), "{backend}");
        let stored = payments::get(&mut conn, "pay_1").await.unwrap().unwrap();
        assert_eq!(
            (
                stored.state.as_str(),
                stored.captured_minor,
                stored.fee_minor
            ),
            ("captured", 4500, 112),
            "{backend}"
        );
    }
}

#[tokio::test]
async fn verify_finds_a_payment_whose_ledger_disagrees() {
    let dir = tempfile::tempdir().unwrap();
    for store in testing::stores(dir.path()).await.unwrap() {
        let mut p = seed(&store).await;
        let mut tx = store.begin().await.unwrap();
        // Authorised on the payment but never posted to the ledger.
        let before = p.clone();
        p.state = "authorised".into();
        p.authorised_minor = 4500;
        payments::transition(&mut tx, &before, &p).await.unwrap();
        tx.commit().await.unwrap();
        let mut conn = store.pool().acquire().await.unwrap();
        let v = ledger::verify(&mut conn).await.unwrap();
        assert!(!v.ok());
        assert!(
            v.problems.iter().any(|p| p.contains("hold on the issuer")),
            "{:?}",
            v.problems
        );
    }
}

/// PostgreSQL leaves a payment's merchant unchecked (migration 0022);
/// `ledger verify` finds one that names no merchant, on either store.
#[tokio::test]
async fn verify_finds_a_reference_to_a_row_that_does_not_exist() {
    let dir = tempfile::tempdir().unwrap();
    for store in testing::stores(dir.path()).await.unwrap() {
        let backend = store.backend().name();
        let p = seed(&store).await;
        let mut conn = store.pool().acquire().await.unwrap();
        let sqlite = store.backend() == crate::Backend::Sqlite;
        if sqlite {
            sqlx::query("PRAGMA foreign_keys = OFF")
                .execute(&mut *conn)
                .await
                .unwrap();
        }
        let ghost = Payment {
            id: "pay_ghost".into(),
            idempotency_key: "k_ghost".into(),
            merchant_id: "m_gone".into(),
            ..p
        };
        payments::insert(&mut conn, &ghost).await.unwrap();
        if sqlite {
            sqlx::query("PRAGMA foreign_keys = ON")
                .execute(&mut *conn)
                .await
                .unwrap();
        }
        let v = ledger::verify(&mut conn).await.unwrap();
        assert_eq!(
            v.problems,
            ["payments.merchant_id: 1 naming no row of merchants"],
            "{backend}"
        );
    }
}

#[tokio::test]
async fn a_stale_transition_loses_the_race() {
    let dir = tempfile::tempdir().unwrap();
    for store in testing::stores(dir.path()).await.unwrap() {
        let mut p = seed(&store).await;
        let mut conn = store.pool().acquire().await.unwrap();
        let before = p.clone();
        p.state = "declined".into();
        payments::transition(&mut conn, &before, &p).await.unwrap();
        p.state = "failed".into();
        let second = payments::transition(&mut conn, &before, &p).await;
        assert!(matches!(second, Err(StoreError::Duplicate(_))));
        let again = payments::insert(&mut conn, &p).await;
        assert!(matches!(again, Err(StoreError::Duplicate(_))));
    }
}

/// A payment's connector, written before the issuer hears of it, is not
/// taken back by a writer from a copy read before it (a wrong step-up on
/// another server while the right one is charging): that write loses.
#[tokio::test]
async fn a_stale_write_cannot_take_back_the_connector() {
    let dir = tempfile::tempdir().unwrap();
    for store in testing::stores(dir.path()).await.unwrap() {
        let created = seed(&store).await;
        let mut conn = store.pool().acquire().await.unwrap();
        let mut waiting = created.clone();
        waiting.state = "requires_step_up".into();
        payments::transition(&mut conn, &created, &waiting)
            .await
            .unwrap();
        let mut sent = waiting.clone();
        sent.connector = Some("simulated_issuer".into());
        payments::transition(&mut conn, &waiting, &sent)
            .await
            .unwrap();
        let mut wrong_answer = waiting.clone();
        wrong_answer.step_up_attempts += 1;
        let stale = payments::transition(&mut conn, &waiting, &wrong_answer).await;
        assert!(matches!(stale, Err(StoreError::Duplicate(_))), "{stale:?}");
        let stored = payments::get(&mut conn, &created.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.connector.as_deref(), Some("simulated_issuer"));
        let mut answered = sent.clone();
        answered.step_up_attempts += 1;
        payments::transition(&mut conn, &sent, &answered)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn idempotency_keys_replay_refuse_and_expire_their_lease() {
    let dir = tempfile::tempdir().unwrap();
    for store in testing::stores(dir.path()).await.unwrap() {
        let mut c = store.pool().acquire().await.unwrap();
        assert_eq!(
            idempotency::claim(&mut c, "terminal:t1", "k", "h1", 0, 1_000)
                .await
                .unwrap(),
            Claim::Claimed
        );
        assert_eq!(
            idempotency::claim(&mut c, "terminal:t1", "k", "h1", 10, 1_000)
                .await
                .unwrap(),
            Claim::InProgress
        );
        assert_eq!(
            idempotency::claim(&mut c, "terminal:t1", "k", "h2", 10, 1_000)
                .await
                .unwrap(),
            Claim::Mismatch
        );
        // The first claimant died: after its lease, a retry takes over.
        assert_eq!(
            idempotency::claim(&mut c, "terminal:t1", "k", "h1", 2_000, 1_000)
                .await
                .unwrap(),
            Claim::Claimed
        );
        idempotency::complete(&mut c, "terminal:t1", "k", 201, "{\"ok\":1}")
            .await
            .unwrap();
        assert_eq!(
            idempotency::claim(&mut c, "terminal:t1", "k", "h1", 2_001, 1_000)
                .await
                .unwrap(),
            Claim::Replay {
                status_code: 201,
                response: "{\"ok\":1}".into()
            }
        );
        assert_eq!(
            idempotency::claim(&mut c, "terminal:t1", "k", "h2", 2_001, 1_000)
                .await
                .unwrap(),
            Claim::Mismatch
        );
        // Keys are scoped per caller.
        let other = idempotency::claim(&mut c, "terminal:t2", "k", "h2", 0, 1_000).await;
        assert_eq!(other.unwrap(), Claim::Claimed);
        idempotency::release(&mut c, "terminal:t2", "k")
            .await
            .unwrap();
        let reused = idempotency::claim(&mut c, "terminal:t2", "k", "h3", 0, 1_000).await;
        assert_eq!(reused.unwrap(), Claim::Claimed);

        assert!(idempotency::use_nonce(&mut c, "t1", "n1", 5).await.unwrap());
        assert!(!idempotency::use_nonce(&mut c, "t1", "n1", 6).await.unwrap());
        assert!(idempotency::use_nonce(&mut c, "t2", "n1", 6).await.unwrap());
        let purged = idempotency::purge(&mut c, 10_000, 10_000).await.unwrap();
        assert_eq!(purged, 3, "one finished key, two nonces");
    }
}

#[tokio::test]
async fn the_audit_chain_reveals_edits_and_removals() {
    use crate::audit;
    let dir = tempfile::tempdir().unwrap();
    for store in testing::stores(dir.path()).await.unwrap() {
        let backend = store.backend().name();
        let mut tx = store.begin().await.unwrap();
        // Three entries about each subject: each subject's in one chain.
        for i in 1..=6 {
            let subject = if i <= 3 { "usr_a" } else { "usr_b" };
            let seq = audit::append(&mut tx, i, "app", "template_created", subject)
                .await
                .unwrap();
            assert_eq!(seq, i);
        }
        tx.commit().await.unwrap();
        let mut c = store.acquire().await.unwrap();
        let v = audit::verify(&mut c).await.unwrap();
        assert_eq!((v.entries, v.broken), (6, None), "{backend}");

        let set_actor = |actor: &'static str| {
            sqlx::query("UPDATE audit_log SET actor = $1 WHERE seq = 2").bind(actor)
        };
        set_actor("someone_else").execute(&mut *c).await.unwrap();
        let broken = audit::verify(&mut c).await.unwrap().broken.unwrap();
        assert_eq!(broken.0, 2, "{backend}: {broken:?}");
        assert!(broken.1.contains("edited"));
        set_actor("app").execute(&mut *c).await.unwrap();
        assert!(audit::verify(&mut c).await.unwrap().broken.is_none());

        // An entry moved to another chain breaks both.
        let moved = "UPDATE audit_log SET chain = 1 + (chain % 16) WHERE seq = 1";
        sqlx::query(moved).execute(&mut *c).await.unwrap();
        assert!(audit::verify(&mut c).await.unwrap().broken.is_some());
        let back = "UPDATE audit_log SET chain = 1 + ((chain + 14) % 16) WHERE seq = 1";
        sqlx::query(back).execute(&mut *c).await.unwrap();
        assert!(audit::verify(&mut c).await.unwrap().broken.is_none());

        // One from the middle: the next one's link breaks.
        sqlx::query("DELETE FROM audit_log WHERE seq = 5")
            .execute(&mut *c)
            .await
            .unwrap();
        let broken = audit::verify(&mut c).await.unwrap().broken.unwrap();
        assert_eq!(broken.0, 6, "{backend}: {broken:?}");
        assert!(broken.1.contains("removed"), "{backend}: {broken:?}");
        // The last ones: the chain's head counts them.
        sqlx::query("DELETE FROM audit_log WHERE seq = 6")
            .execute(&mut *c)
            .await
            .unwrap();
        let broken = audit::verify(&mut c).await.unwrap().broken.unwrap();
        assert!(broken.1.contains("removed"), "{backend}: {broken:?}");
    }
}

/// Appenders on several connections at once each wait only for an
/// appender in their own chain, and the chains verify after.
#[tokio::test]
async fn appenders_at_once_keep_every_chain_whole() {
    use crate::audit;
    let dir = tempfile::tempdir().unwrap();
    for store in testing::stores(dir.path()).await.unwrap() {
        let backend = store.backend().name();
        let appenders = (0..8).map(|writer| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..20 {
                    let mut tx = store.begin().await.unwrap();
                    let subject = format!("pm_{writer}_{}", i % 5);
                    audit::append(&mut tx, i, "terminal", "card_used", &subject)
                        .await
                        .unwrap();
                    tx.commit().await.unwrap();
                }
            })
        });
        for appender in appenders.collect::<Vec<_>>() {
            appender.await.unwrap();
        }
        let mut c = store.acquire().await.unwrap();
        let v = audit::verify(&mut c).await.unwrap();
        assert_eq!((v.entries, v.broken), (160, None), "{backend}");
    }
}

/// On PostgreSQL an appender whose chain another transaction holds takes
/// a chain no one holds instead of waiting for the other's commit.
#[tokio::test]
async fn an_appender_takes_a_free_chain_when_its_own_is_held() {
    use crate::audit;
    let dir = tempfile::tempdir().unwrap();
    for store in testing::stores(dir.path()).await.unwrap() {
        if store.backend().name() != "PostgreSQL" {
            continue;
        }
        let mut first = store.begin().await.unwrap();
        audit::append(&mut first, 1, "terminal", "card_used", "pm_same")
            .await
            .unwrap();
        let mut second = store.begin().await.unwrap();
        let append = audit::append(&mut second, 2, "terminal", "card_used", "pm_same");
        let seq = tokio::time::timeout(std::time::Duration::from_secs(5), append)
            .await
            .expect("the second appender waited for the first's chain")
            .unwrap();
        second.commit().await.unwrap();
        first.commit().await.unwrap();
        let mut c = store.acquire().await.unwrap();
        let chains: Vec<(i64,)> =
            sqlx::query_as("SELECT DISTINCT chain FROM audit_log ORDER BY chain")
                .fetch_all(&mut *c)
                .await
                .unwrap();
        assert_eq!(chains.len(), 2, "two chains: {chains:?}");
        assert_eq!(seq, 2);
        let v = audit::verify(&mut c).await.unwrap();
        assert_eq!((v.entries, v.broken), (2, None));
    }
}

/// A batch of entries lands in one chain, numbered in its order after the
/// chain's earlier entries, and verifies with the single appends around it,
/// even when it takes more than one statement to insert.
#[tokio::test]
async fn a_batch_of_audit_entries_verifies_with_single_ones_around_it() {
    use crate::audit;
    // More than one statement's rows on either store.
    let batch = crate::rows_per_statement(8).max(crate::INSERT_BINDS_MAX / 8) + 5;
    let subjects: Vec<String> = (0..batch).map(|i| format!("usr_{i}")).collect();
    let entries: Vec<(&str, &str)> = subjects
        .iter()
        .map(|s| ("template_sealed", s.as_str()))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    for store in testing::stores(dir.path()).await.unwrap() {
        let mut tx = store.begin().await.unwrap();
        let before = audit::append(&mut tx, 1, "app", "card_sealed", "pm_1")
            .await
            .unwrap();
        let numbers = audit::append_all(&mut tx, 2, "app", &entries)
            .await
            .unwrap();
        let after = audit::append(&mut tx, 3, "app", "card_sealed", "pm_2")
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(numbers.len(), batch);
        assert!(
            numbers.windows(2).all(|pair| pair[0] < pair[1]),
            "{numbers:?}"
        );
        assert!(before < numbers[0] && numbers[batch - 1] < after);
        let mut c = store.acquire().await.unwrap();
        let chains: Vec<(i64,)> =
            sqlx::query_as("SELECT DISTINCT chain FROM audit_log WHERE action = 'template_sealed'")
                .fetch_all(&mut *c)
                .await
                .unwrap();
        assert_eq!(chains.len(), 1, "{} on {chains:?}", store.backend().name());
        let v = audit::verify(&mut c).await.unwrap();
        assert_eq!((v.entries, v.broken), (batch as i64 + 2, None));
    }
}

#[tokio::test]
async fn the_change_log_is_in_commit_order_and_wakes_its_followers() {
    use std::time::Duration;

    use crate::changes::{self, Kind, Wakeup};

    let dir = tempfile::tempdir().unwrap();
    for store in testing::stores(dir.path()).await.unwrap() {
        let backend = store.backend();
        let mut conn = store.acquire().await.unwrap();
        assert_eq!(changes::last_seq(&mut conn).await.unwrap(), 0);
        drop(conn);

        // A writer that has appended holds the log until it commits: a
        // second writer waits, and its change comes after.
        let mut first = store.begin().await.unwrap();
        changes::append(&mut first, "usr_a", Kind::Template, None, 1)
            .await
            .unwrap();
        let second = tokio::spawn({
            let store = store.clone();
            async move {
                let mut tx = store.begin().await.unwrap();
                changes::append(&mut tx, "usr_b", Kind::Regular, Some("m1"), 2)
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
            }
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            !second.is_finished(),
            "{backend:?}: the second writer went first"
        );
        first.commit().await.unwrap();
        second.await.unwrap();

        let mut conn = store.acquire().await.unwrap();
        let log = changes::after(&mut conn, 0, 10).await.unwrap();
        assert_eq!(log.len(), 2);
        assert_eq!(
            (log[0].user_id.as_str(), log[0].kind()),
            ("usr_a", Some(Kind::Template))
        );
        assert_eq!(
            (
                log[1].user_id.as_str(),
                log[1].kind(),
                log[1].merchant_id.as_deref()
            ),
            ("usr_b", Some(Kind::Regular), Some("m1"))
        );
        assert!(log[0].seq < log[1].seq);
        assert_eq!(changes::last_seq(&mut conn).await.unwrap(), log[1].seq);
        assert!(
            changes::after(&mut conn, log[1].seq, 10)
                .await
                .unwrap()
                .is_empty()
        );
        drop(conn);

        // PostgreSQL wakes a follower at the commit, long before its poll.
        if backend == crate::Backend::Postgres {
            let mut wakeup = Wakeup::new(&store, Duration::from_secs(30)).await;
            let mut tx = store.begin().await.unwrap();
            changes::append(&mut tx, "usr_c", Kind::Template, None, 3)
                .await
                .unwrap();
            tx.commit().await.unwrap();
            tokio::time::timeout(Duration::from_secs(10), wakeup.wait())
                .await
                .expect("no notification within 10 s");
        }

        let mut conn = store.acquire().await.unwrap();
        assert!(changes::prune(&mut conn, 2).await.unwrap() >= 1);
        let left = changes::after(&mut conn, 0, 10).await.unwrap();
        assert!(left.iter().all(|c| c.user_id != "usr_a"), "{backend:?}");
    }
}

/// Neither backend's pool closes idle or old connections, so sqlx's
/// maintenance task, which can spin (see `pool_options`), never starts.
#[tokio::test]
async fn pools_run_no_maintenance_task() {
    let dir = tempfile::tempdir().unwrap();
    for store in testing::stores(dir.path()).await.unwrap() {
        let options = store.pool().options();
        let backend = store.backend().name();
        assert_eq!(options.get_idle_timeout(), None, "{backend}");
        assert_eq!(options.get_max_lifetime(), None, "{backend}");
        assert_eq!(options.get_min_connections(), 0, "{backend}");
    }
}

/// The pay path's one read of the payer finds the card `payment_methods`
/// puts first: the default among active cards, else the oldest.
#[tokio::test]
async fn a_payer_is_read_with_the_card_a_payment_charges() {
    let dir = tempfile::tempdir().unwrap();
    for store in testing::stores(dir.path()).await.unwrap() {
        let backend = store.backend().name();
        let mut tx = store.begin().await.unwrap();
        seed_user(&mut tx, "u1", "+821012345678").await;
        // The card's id, and whether its share's data key came with it.
        let card_of = async |tx: &mut crate::Connection| {
            let (user, card, key) = parties::user_with_card(tx, "u1").await.unwrap().unwrap();
            assert_eq!(user.id, "u1");
            card.map(|c| (c.id, key.is_some()))
        };
        assert_eq!(card_of(&mut tx).await, None, "{backend}: no card yet");
        let card = |id: &str, status: &str, is_default: i64| parties::PaymentMethod {
            id: id.into(),
            user_id: "u1".into(),
            brand: "visa".into(),
            last4: "4242".into(),
            expiry_month: 12,
            expiry_year: 2031,
            key_id: Some(format!("dek_{id}")),
            nonce: None,
            ciphertext: None,
            vault_token: Some(format!("tok_{id}")),
            fingerprint: None,
            status: status.into(),
            credential_connector: None,
            credential_id: None,
            is_default,
        };
        for (method, at_ms) in [
            (card("pm_gone", "deleted", 0), 0),
            (card("pm_old", "active", 0), 1),
            (card("pm_newer", "active", 0), 2),
        ] {
            parties::insert_payment_method(&mut tx, &method, at_ms)
                .await
                .unwrap();
        }
        assert_eq!(
            card_of(&mut tx).await,
            Some(("pm_old".to_owned(), false)),
            "{backend}: a card whose data key has no row is read without one"
        );
        parties::insert_payment_method(&mut tx, &card("pm_default", "active", 1), 3)
            .await
            .unwrap();
        let share_key = crate::keys::DataKeyRow {
            id: "dek_pm_default".into(),
            kek_id: "kek_1".into(),
            nonce: vec![7; 12],
            wrapped: vec![9; 48],
        };
        crate::keys::insert(&mut tx, &share_key, 3).await.unwrap();
        let (_, read, read_key) = parties::user_with_card(&mut tx, "u1")
            .await
            .unwrap()
            .unwrap();
        let read_key = read_key.expect("the card's data key is read with it");
        assert_eq!(
            (
                read_key.id,
                read_key.kek_id,
                read_key.nonce,
                read_key.wrapped
            ),
            (
                share_key.id,
                share_key.kek_id,
                share_key.nonce,
                share_key.wrapped
            ),
            "{backend}"
        );
        let listed = parties::payment_methods(&mut tx, "u1").await.unwrap();
        let read = read.unwrap();
        assert_eq!(read.id, "pm_default", "{backend}");
        assert_eq!(
            (read.key_id.as_deref(), read.vault_token.as_deref()),
            (Some("dek_pm_default"), Some("tok_pm_default")),
            "{backend}"
        );
        assert_eq!(listed[0].id, read.id, "{backend}");
        assert!(
            parties::user_with_card(&mut tx, "u_nobody")
                .await
                .unwrap()
                .is_none(),
            "{backend}"
        );
    }
}

#[tokio::test]
async fn the_risk_history_counts_windows_and_knows_the_last_place() {
    use crate::fraud::{self, AttemptKind, Block, GuessedFactor};
    use crate::risk::{self, Ask, Place};

    let dir = tempfile::tempdir().unwrap();
    for store in testing::stores(dir.path()).await.unwrap() {
        let template = seed(&store).await;
        let mut tx = store.begin().await.unwrap();
        seed_user(&mut tx, "u1", "+821012345678").await;
        let method = parties::PaymentMethod {
            id: "pm1".into(),
            user_id: "u1".into(),
            brand: "visa".into(),
            last4: "4242".into(),
            expiry_month: 12,
            expiry_year: 2031,
            key_id: None,
            nonce: None,
            ciphertext: None,
            vault_token: None,
            fingerprint: Some("fp1".into()),
            status: "active".into(),
            credential_connector: Some("simulated_issuer".into()),
            credential_id: Some("sim-cit-0123".into()),
            is_default: 0,
        };
        parties::insert_payment_method(&mut tx, &method, 1)
            .await
            .unwrap();
        let stored = parties::payment_method(&mut tx, "pm1").await.unwrap();
        let credential = stored.map(|m| (m.credential_connector, m.credential_id));
        assert_eq!(
            credential,
            Some((Some("simulated_issuer".into()), Some("sim-cit-0123".into())))
        );
        // Captured at 1,000, 2,000 and 3,000 ms; a decline at 3,500.
        for (i, (at_ms, amount_minor, state)) in [
            (1_000, 4_000, "captured"),
            (2_000, 5_000, "captured"),
            (3_000, 6_000, "captured"),
            (3_500, 90_000, "declined"),
        ]
        .into_iter()
        .enumerate()
        {
            let captured = if state == "captured" { amount_minor } else { 0 };
            let payment = Payment {
                id: format!("pay_u{i}"),
                idempotency_key: format!("ku{i}"),
                user_id: Some("u1".into()),
                payment_method_id: Some("pm1".into()),
                amount_minor,
                authorised_minor: captured,
                captured_minor: captured,
                state: state.into(),
                created_at_ms: at_ms,
                updated_at_ms: at_ms,
                ..template.clone()
            };
            payments::insert(&mut tx, &payment).await.unwrap();
        }
        tx.commit().await.unwrap();

        let mut conn = store.acquire().await.unwrap();
        let ask = Ask {
            payment_id: "pay_new",
            user_id: "u1",
            card_fingerprint: Some("fp1"),
            terminal_id: "t1",
            merchant_id: "m1",
            country: "KR",
            now_ms: 10_000,
            user_since_ms: 2_000,
            card_since_ms: 0,
            terminal_since_ms: 3_000,
            merchant_since_ms: 0,
            merchant_count_limit: 100,
            pin_since_ms: 5_000,
        };
        let h = risk::history(&mut conn, &ask).await.unwrap();
        assert_eq!(h.amounts_minor, vec![6_000, 5_000, 4_000]);
        assert_eq!(h.user_payments, 3, "2,000 ms on");
        assert_eq!(h.card_payments, 4);
        assert_eq!(h.card_accounts, 1);
        assert_eq!(h.terminal_payments, 2, "3,000 ms on");
        assert_eq!(h.terminal_failures, 1);
        assert_eq!(h.merchant_payments, 5, "the seed's payment too");
        let limited = Ask {
            merchant_count_limit: 3,
            ..ask.clone()
        };
        let h_limited = risk::history(&mut conn, &limited).await.unwrap();
        assert_eq!(
            h_limited.merchant_payments, 3,
            "counted as far as the rules need"
        );
        assert_eq!(h_limited.user_payments, h.user_payments, "the others whole");
        // The payment assessed is not counted: its row is written first.
        let itself = Ask {
            payment_id: "pay_u3",
            ..ask.clone()
        };
        let h_itself = risk::history(&mut conn, &itself).await.unwrap();
        assert_eq!(
            (
                h_itself.user_payments,
                h_itself.card_payments,
                h_itself.terminal_payments,
                h_itself.merchant_payments
            ),
            (2, 3, 1, 4),
            "the decline at 3,500 is the payment assessed"
        );
        assert_eq!(
            h.last_place,
            Some(Place {
                latitude_e6: 37_497_942,
                longitude_e6: 127_027_621,
                at_ms: 3_000
            })
        );
        assert!(h.paid_at_merchant && h.paid_at_terminal);
        assert_eq!((h.pin_failures, h.blocked.as_deref()), (0, None));

        // Refused attempts count as the terminal's failures; wrong PINs
        // inside the window count; a live block entry is named, an expired
        // one is not.
        fraud::record_attempt(&mut conn, "t1", AttemptKind::Spoof, 3_200)
            .await
            .unwrap();
        fraud::record_attempt(&mut conn, "t1", AttemptKind::NoMatch, 2_900)
            .await
            .unwrap();
        for at_ms in [4_000, 6_000, 7_000] {
            fraud::record_factor_failure(&mut conn, "u1", GuessedFactor::Pin, at_ms)
                .await
                .unwrap();
        }
        fraud::record_factor_failure(&mut conn, "u1", GuessedFactor::Phone, 8_000)
            .await
            .unwrap();
        let block = |kind: &str, value: &str, expires_at_ms| fraud::Block {
            kind: kind.into(),
            value: value.into(),
            reason: "test".into(),
            source: "operator".into(),
            created_at_ms: 1,
            expires_at_ms,
        };
        fraud::add_block(&mut conn, &block("terminal", "t1", Some(9_000)))
            .await
            .unwrap();
        let h = risk::history(&mut conn, &ask).await.unwrap();
        assert_eq!(h.terminal_failures, 2, "the decline and the spoof");
        assert_eq!(h.pin_failures, 2, "5,000 ms on, PINs only");
        assert_eq!(h.blocked, None, "expired at 9,000");
        // A payment request's first read: the payment of its key, if any,
        // and the terminal's refused attempts since a time.
        let (earlier, attempts) = payments::earlier_and_attempts(&mut conn, "pay_u3", "t1", 2_900)
            .await
            .unwrap();
        assert_eq!(
            (earlier.map(|p| p.id).as_deref(), attempts),
            (Some("pay_u3"), 2)
        );
        let (earlier, attempts) =
            payments::earlier_and_attempts(&mut conn, "pay_none", "t1", 3_000)
                .await
                .unwrap();
        assert_eq!((earlier.is_none(), attempts), (true, 1), "since 3,000");
        let (_, attempts) = payments::earlier_and_attempts(&mut conn, "pay_u3", "t2", 0)
            .await
            .unwrap();
        assert_eq!(attempts, 0, "another terminal's");
        fraud::add_block(&mut conn, &block("card", "fp1", None))
            .await
            .unwrap();
        let h = risk::history(&mut conn, &ask).await.unwrap();
        assert_eq!(h.blocked.as_deref(), Some("card:fp1 (test)"));
        // Several entries apply: the first kind in BLOCK_KINDS is named.
        for (kind, value) in [("country", "KR"), ("merchant", "m1"), ("terminal", "t1")] {
            fraud::add_block(&mut conn, &block(kind, value, None))
                .await
                .unwrap();
        }
        let h = risk::history(&mut conn, &ask).await.unwrap();
        assert_eq!(h.blocked.as_deref(), Some("card:fp1 (test)"));
        for (kind, value) in [("country", "KR"), ("merchant", "m1"), ("terminal", "t1")] {
            assert!(
                fraud::remove_block(&mut conn, kind, value, None)
                    .await
                    .unwrap()
            );
        }
        // A claim's entry neither replaces an operator's nor shortens one.
        let from_claim = fraud::Block {
            reason: "claim".into(),
            source: "claim".into(),
            ..block("card", "fp1", Some(9_000))
        };
        fraud::add_block(&mut conn, &from_claim).await.unwrap();
        let h = risk::history(&mut conn, &ask).await.unwrap();
        assert_eq!(h.blocked.as_deref(), Some("card:fp1 (test)"));
        assert!(
            !fraud::remove_block(&mut conn, "card", "fp1", Some("claim"))
                .await
                .unwrap()
        );
        assert!(
            fraud::remove_block(&mut conn, "card", "fp1", None)
                .await
                .unwrap()
        );
        assert!(
            !fraud::remove_block(&mut conn, "card", "fp1", None)
                .await
                .unwrap()
        );
        // Between claims, the later expiry stays.
        fraud::add_block(
            &mut conn,
            &Block {
                expires_at_ms: Some(50_000),
                ..from_claim.clone()
            },
        )
        .await
        .unwrap();
        fraud::add_block(
            &mut conn,
            &Block {
                expires_at_ms: Some(20_000),
                ..from_claim.clone()
            },
        )
        .await
        .unwrap();
        let listed = fraud::blocks(&mut conn, 0).await.unwrap();
        let card = listed.iter().find(|b| b.kind == "card").unwrap();
        assert_eq!(card.expires_at_ms, Some(50_000));
        let guess = fraud::count_guess(&mut conn, "u1", GuessedFactor::Pin, 9_000, 0)
            .await
            .unwrap();
        assert_eq!(
            (guess.failures_before, guess.last_failure_ms),
            (3, Some(7_000))
        );
        fraud::forget_guess(&mut conn, &guess).await.unwrap();
        assert_eq!(
            fraud::prune(&mut conn, 5_000).await.unwrap(),
            3,
            "two attempts and a PIN"
        );

        let stranger = Ask {
            user_id: "nobody",
            card_fingerprint: None,
            merchant_id: "m2",
            ..ask
        };
        let h = risk::history(&mut conn, &stranger).await.unwrap();
        assert!(h.amounts_minor.is_empty() && h.last_place.is_none());
        assert_eq!(
            (h.user_payments, h.card_payments, h.merchant_payments),
            (0, 0, 0)
        );
        assert!(!h.paid_at_merchant && !h.paid_at_terminal);
    }
}

/// Guesses at one user's PIN sent at once, on connections of their own
/// on PostgreSQL (as from several servers; SQLite's pool has one): the
/// i-th to be counted sees at least i - 1 others, so no more of them find
/// fewer failures than the limit than the limit leaves room for.
#[tokio::test]
async fn guesses_sent_at_once_each_see_the_others() {
    use crate::fraud::{self, GuessedFactor};
    const PRIOR: i64 = 3;
    const LIMIT: i64 = 5;
    let dir = tempfile::tempdir().unwrap();
    for store in testing::stores(dir.path()).await.unwrap() {
        let backend = store.backend().name();
        seed_user(&mut store.acquire().await.unwrap(), "u1", "+821012345678").await;
        for at_ms in 0..PRIOR {
            let mut conn = store.acquire().await.unwrap();
            fraud::record_factor_failure(&mut conn, "u1", GuessedFactor::Pin, at_ms)
                .await
                .unwrap();
        }
        let guesses = (0..8).map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut conn = store.acquire().await.unwrap();
                fraud::count_guess(&mut conn, "u1", GuessedFactor::Pin, 100 + i, 0)
                    .await
                    .unwrap()
            })
        });
        let mut seen = Vec::new();
        for guess in guesses.collect::<Vec<_>>() {
            seen.push(guess.await.unwrap().failures_before);
        }
        seen.sort_unstable();
        for (i, before) in (0..).zip(&seen) {
            assert!(*before >= PRIOR + i, "{backend}: {seen:?}");
        }
        let checked = seen.iter().filter(|&&before| before < LIMIT).count();
        assert!(
            checked <= usize::try_from(LIMIT - PRIOR).unwrap(),
            "{backend}: {checked} guesses would be checked: {seen:?}"
        );
    }
}

/// Attempts at one pairing code sent at once, on connections of their own
/// on PostgreSQL: exactly the limit of them are let through to the check.
#[tokio::test]
async fn pairing_attempts_sent_at_once_stop_at_the_limit() {
    use crate::onboarding;
    let dir = tempfile::tempdir().unwrap();
    for store in testing::stores(dir.path()).await.unwrap() {
        let backend = store.backend().name();
        seed(&store).await;
        let mut conn = store.acquire().await.unwrap();
        onboarding::put_pairing_code(&mut conn, "t1", "hash", "operator", 1, 1_000_000)
            .await
            .unwrap();
        drop(conn);
        let attempts = (0..8).map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut conn = store.acquire().await.unwrap();
                onboarding::take_pairing_attempt(&mut conn, "t1", 5)
                    .await
                    .unwrap()
            })
        });
        let mut let_through = 0;
        for attempt in attempts.collect::<Vec<_>>() {
            let_through += usize::from(attempt.await.unwrap());
        }
        assert_eq!(let_through, 5, "{backend}");
    }
}

/// Keys made at once for one merchant, in transactions of their own on
/// PostgreSQL: they stop at the limit, as the count is taken with the
/// owner's row held.
#[tokio::test]
async fn keys_made_at_once_stop_at_the_limit() {
    use crate::access::{self, KEYS_PER_OWNER_MAX, KeyKind, NewKey};
    const ROOM: i64 = 2;
    fn key(id: &str) -> NewKey<'_> {
        NewKey {
            id,
            owner: "m1",
            scope: "admin",
            label: None,
            prefix: None,
            key_hash: id,
            expires_at_ms: None,
            created_at_ms: 1,
        }
    }
    let dir = tempfile::tempdir().unwrap();
    for store in testing::stores(dir.path()).await.unwrap() {
        let backend = store.backend().name();
        seed(&store).await;
        let mut conn = store.acquire().await.unwrap();
        for i in 0..KEYS_PER_OWNER_MAX - ROOM {
            let id = format!("old_{i}");
            access::insert_key(&mut conn, KeyKind::Merchant, &key(&id))
                .await
                .unwrap();
        }
        drop(conn);
        // On PostgreSQL every transaction is open before any counts, each
        // on a connection of its own; SQLite's one connection takes them in
        // turn.
        let at_once = if backend == "postgres" { 8 } else { 1 };
        let all_open = std::sync::Arc::new(tokio::sync::Barrier::new(at_once));
        let made = (0..8).map(|i| {
            let (store, all_open) = (store.clone(), all_open.clone());
            tokio::spawn(async move {
                let id = format!("new_{i}");
                let mut tx = store.begin().await.unwrap();
                all_open.wait().await;
                let made = access::insert_key_within_limit(&mut tx, KeyKind::Merchant, &key(&id))
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
                made
            })
        });
        let mut room_taken = 0;
        for one in made.collect::<Vec<_>>() {
            room_taken += i64::from(one.await.unwrap());
        }
        assert_eq!(room_taken, ROOM, "{backend}");
        let mut conn = store.acquire().await.unwrap();
        let listed = access::keys(&mut conn, KeyKind::Merchant, Some("m1")).await;
        let held = usize::try_from(KEYS_PER_OWNER_MAX).unwrap();
        assert_eq!(listed.unwrap().len(), held, "{backend}");
    }
}

#[tokio::test]
async fn claims_follow_their_state_machine_and_a_lost_race_is_refused() {
    use crate::fraud::{self, Claim, ClaimState};

    let dir = tempfile::tempdir().unwrap();
    for store in testing::stores(dir.path()).await.unwrap() {
        let template = seed(&store).await;
        let mut conn = store.acquire().await.unwrap();
        seed_user(&mut conn, "u1", "+821012345678").await;
        let opened = Claim {
            id: "clm_1".into(),
            payment_id: template.id.clone(),
            user_id: "u1".into(),
            state: ClaimState::Opened.as_str().into(),
            reason: "not me".into(),
            note: None,
            compensated_minor: 0,
            recovered_minor: 0,
            opened_at_ms: 5,
            updated_at_ms: 5,
        };
        fraud::insert_claim(&mut conn, &opened).await.unwrap();
        let again = Claim {
            id: "clm_2".into(),
            ..opened.clone()
        };
        assert!(matches!(
            fraud::insert_claim(&mut conn, &again).await,
            Err(crate::StoreError::Duplicate(_))
        ));
        let reviewing = Claim {
            state: ClaimState::UnderReview.as_str().into(),
            updated_at_ms: 6,
            ..opened.clone()
        };
        fraud::update_claim(&mut conn, &opened, &reviewing)
            .await
            .unwrap();
        // A second writer that still saw it opened loses.
        let rejected = Claim {
            state: ClaimState::Rejected.as_str().into(),
            ..opened.clone()
        };
        assert!(
            fraud::update_claim(&mut conn, &opened, &rejected)
                .await
                .is_err()
        );
        let listed = fraud::claims(&mut conn, Some(ClaimState::UnderReview), None, 10)
            .await
            .unwrap();
        assert_eq!(listed.len(), 1);
        assert!(
            fraud::claims(&mut conn, Some(ClaimState::Opened), Some("u1"), 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(!ClaimState::Accepted.can_become(ClaimState::Rejected));
        assert!(!ClaimState::Rejected.can_become(ClaimState::Accepted));
        assert!(!ClaimState::UnderReview.can_become(ClaimState::Opened));
    }
}

/// A user as enrolment stores one; the store takes the phone's hash and
/// sealed number as the caller made them, so stand-ins do here.
async fn seed_user(conn: &mut crate::Connection, id: &str, phone: &str) {
    let stored = parties::StoredPhone {
        hash: format!("hash-of-{id}"),
        key_id: format!("dek_phone_{id}"),
        nonce: vec![1; 12],
        ciphertext: vec![2; 28],
    };
    parties::insert_account(
        conn,
        &parties::NewAccount {
            id,
            phone: &stored,
            phone_last4: &phone[phone.len() - 4..],
            pin_hash: "x",
            token_hash: id,
            created_at_ms: 1,
        },
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn phones_in_clear_are_sealed_once_and_a_deleted_user_keeps_none() {
    use crate::keys::{self, DataKeyRow};

    let dir = tempfile::tempdir().unwrap();
    for store in testing::stores(dir.path()).await.unwrap() {
        let backend = store.backend().name();
        let mut conn = store.acquire().await.unwrap();
        // Two users in the old form, and their enrolments' keys.
        for (id, phone) in [("u1", "+821011110001"), ("u2", "+821011110002")] {
            let old = parties::NewUser {
                id,
                phone,
                phone_last4: &phone[phone.len() - 4..],
                pin_hash: "x",
                token_hash: id,
                created_at_ms: 1,
            };
            parties::insert_user(&mut conn, &old).await.unwrap();
            let scope = format!("app:{phone}");
            idempotency::claim(&mut conn, &scope, "e1", "h", 1, 10)
                .await
                .unwrap();
        }
        let found = parties::phones_in_clear(&mut conn, "", 10).await.unwrap();
        assert_eq!(found.len(), 2, "{backend}");
        let stored = |n: u8| parties::StoredPhone {
            hash: format!("hash-{n}"),
            key_id: format!("dek_{n}"),
            nonce: vec![n; 12],
            ciphertext: vec![n; 20],
        };
        for n in 1..=2u8 {
            let key = DataKeyRow {
                id: format!("dek_{n}"),
                kek_id: "kek".into(),
                nonce: vec![0; 12],
                wrapped: vec![0; 48],
            };
            keys::insert(&mut conn, &key, 1).await.unwrap();
        }
        let (id, phone) = &found[0];
        let sealed = parties::seal_phone(&mut conn, id, phone, &stored(1))
            .await
            .unwrap();
        assert_eq!(sealed, parties::SealedPhone::Sealed, "{backend}");
        // Sealing again, or from a stale read, writes nothing.
        let again = parties::seal_phone(&mut conn, id, phone, &stored(1))
            .await
            .unwrap();
        assert_eq!(again, parties::SealedPhone::Changed, "{backend}");
        // A hash another account holds is left out, the number sealed anyway.
        let (other, other_phone) = &found[1];
        let mut same_hash = stored(2);
        same_hash.hash = stored(1).hash;
        let taken = parties::seal_phone(&mut conn, other, other_phone, &same_hash)
            .await
            .unwrap();
        assert_eq!(
            taken,
            parties::SealedPhone::HashTaken { by: id.clone() },
            "{backend}"
        );
        assert!(
            parties::phones_in_clear(&mut conn, "", 10)
                .await
                .unwrap()
                .is_empty()
        );
        let user = parties::user(&mut conn, id).await.unwrap().unwrap();
        assert_eq!(user.phone_hash.as_deref(), Some("hash-1"), "{backend}");
        assert_eq!(
            user.sealed_phone(),
            Some(("dek_1", &[1u8; 12][..], &[1u8; 20][..]))
        );
        assert!(parties::any_phone_hash(&mut conn).await.unwrap());

        // Scopes holding a number move to the hash's scope, answers and all.
        let scopes = idempotency::scopes_after(&mut conn, "app:+", "", 10)
            .await
            .unwrap();
        assert_eq!(scopes, ["app:+821011110001", "app:+821011110002"]);
        let moved = idempotency::move_scope(&mut conn, &scopes[0], "app:hash-1")
            .await
            .unwrap();
        assert_eq!(moved, 1, "{backend}");
        let claim = idempotency::claim(&mut conn, "app:hash-1", "e1", "h", 100, 10)
            .await
            .unwrap();
        assert_eq!(claim, Claim::Claimed, "{backend}: its lease ran out");
        assert_eq!(
            idempotency::forget_scope(&mut conn, &scopes[1])
                .await
                .unwrap(),
            1
        );
        assert!(
            idempotency::scopes_after(&mut conn, "app:+", "", 10)
                .await
                .unwrap()
                .is_empty()
        );

        // Deleting the user clears the hash and the sealed number, and
        // destroys the number's data key.
        parties::delete_user(&mut conn, id, 5).await.unwrap();
        let user = parties::user(&mut conn, id).await.unwrap().unwrap();
        assert_eq!(
            (user.phone_hash.as_deref(), user.sealed_phone().is_none()),
            (None, true),
            "{backend}"
        );
        assert!(keys::get(&mut conn, "dek_1").await.unwrap().is_none());
        assert!(keys::get(&mut conn, "dek_2").await.unwrap().is_some());
        assert!(!parties::any_phone_hash(&mut conn).await.unwrap());
    }
}

#[tokio::test]
async fn a_data_key_of_a_fixed_name_is_stored_once() {
    use crate::keys::{self, DataKeyRow};

    let dir = tempfile::tempdir().unwrap();
    for store in testing::stores(dir.path()).await.unwrap() {
        let mut conn = store.acquire().await.unwrap();
        let key = |wrapped: u8| DataKeyRow {
            id: "lookup-phone".into(),
            kek_id: "kek".into(),
            nonce: vec![0; 12],
            wrapped: vec![wrapped; 48],
        };
        assert!(keys::insert_if_absent(&mut conn, &key(1), 1).await.unwrap());
        assert!(!keys::insert_if_absent(&mut conn, &key(2), 1).await.unwrap());
        let kept = keys::get(&mut conn, "lookup-phone").await.unwrap().unwrap();
        assert_eq!(kept.wrapped, vec![1; 48]);
    }
}

async fn has_reward(conn: &mut crate::Connection) -> bool {
    crate::loyalty::payer_loyalty(conn, "m1", "u1", 100)
        .await
        .unwrap()
        .usable
        .into_iter()
        .any(|c| c.id == "c_reward")
}

fn coupon(id: &str, kind: &str, value: i64) -> crate::loyalty::Coupon {
    crate::loyalty::Coupon {
        id: id.into(),
        merchant_id: "m1".into(),
        name: id.into(),
        kind: kind.into(),
        value,
        min_spend_minor: 0,
        valid_from_ms: 0,
        valid_until_ms: 10_000,
        per_user_max: 1,
        total_max: None,
        used_count: 0,
        stackable: 0,
        granted_only: 0,
        status: "active".into(),
        created_at_ms: 1,
    }
}

#[test]
fn coupon_discounts_respect_minimum_spend_and_never_exceed_the_amount() {
    let fixed = coupon("c_fixed", "fixed", 1_000);
    assert_eq!(fixed.discount_minor(4_500), 1_000);
    assert_eq!(fixed.discount_minor(600), 600, "never more than the amount");
    let tenth = coupon("c_pct", "percent", 1_000);
    assert_eq!(tenth.discount_minor(4_505), 450, "rounded down");
    let floor = crate::loyalty::Coupon {
        min_spend_minor: 5_000,
        ..fixed
    };
    assert_eq!(floor.discount_minor(4_999), 0);
    assert_eq!(floor.discount_minor(5_000), 1_000);
}

#[tokio::test]
async fn two_first_uses_of_a_coupon_by_one_payer_at_once_both_count() {
    use crate::loyalty;

    let dir = tempfile::tempdir().unwrap();
    for store in testing::stores(dir.path()).await.unwrap() {
        let backend = store.backend().name();
        let template = seed(&store).await;
        let mut conn = store.acquire().await.unwrap();
        seed_user(&mut conn, "u1", "+821011110001").await;
        for id in ["pay_2", "pay_3", "pay_4"] {
            let p = Payment {
                id: id.into(),
                idempotency_key: id.into(),
                ..template.clone()
            };
            payments::insert(&mut conn, &p).await.unwrap();
        }
        let twice = loyalty::Coupon {
            per_user_max: 2,
            ..coupon("c_twice", "fixed", 500)
        };
        loyalty::insert_coupon(&mut conn, &twice).await.unwrap();
        drop(conn);

        // The first use's holding is not committed when the second looks
        // for one: on PostgreSQL the second's insert waits for the first,
        // then finds its holding and counts the use there.
        let mut first = store.begin().await.unwrap();
        let used = loyalty::use_coupon(&mut first, "m1", &twice, "u1", "pay_2", 500, 100);
        assert!(used.await.unwrap(), "{backend}");
        let second = tokio::spawn({
            let (store, twice) = (store.clone(), twice.clone());
            async move {
                let mut tx = store.begin().await.unwrap();
                let used = loyalty::use_coupon(&mut tx, "m1", &twice, "u1", "pay_3", 500, 100)
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
                used
            }
        });
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        first.commit().await.unwrap();
        assert!(
            second.await.unwrap(),
            "{backend}: the second use counts too"
        );
        let mut conn = store.acquire().await.unwrap();
        let third = loyalty::use_coupon(&mut conn, "m1", &twice, "u1", "pay_4", 500, 100)
            .await
            .unwrap();
        assert!(!third, "{backend}: two uses a payer");
        let after = loyalty::coupon(&mut conn, "c_twice")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(after.used_count, 2, "{backend}");
        assert!(
            loyalty::coupon_uses(&mut conn, "pay_4")
                .await
                .unwrap()
                .is_empty(),
            "{backend}: the refused use left no record"
        );
    }
}

#[tokio::test]
async fn coupons_are_limited_granted_restored_and_the_last_use_goes_to_one_payment() {
    use crate::loyalty;

    let dir = tempfile::tempdir().unwrap();
    for store in testing::stores(dir.path()).await.unwrap() {
        let template = seed(&store).await;
        let mut conn = store.acquire().await.unwrap();
        seed_user(&mut conn, "u1", "+821011110001").await;
        seed_user(&mut conn, "u2", "+821011110002").await;
        for i in 2..=4 {
            let p = Payment {
                id: format!("pay_{i}"),
                idempotency_key: format!("k{i}"),
                ..template.clone()
            };
            payments::insert(&mut conn, &p).await.unwrap();
        }
        let last = loyalty::Coupon {
            total_max: Some(1),
            ..coupon("c_last", "fixed", 500)
        };
        loyalty::insert_coupon(&mut conn, &last).await.unwrap();
        drop(conn);

        // Two payments race for the last use: exactly one has it.
        let race = |user: &'static str, payment: &'static str| {
            let store = store.clone();
            let last = last.clone();
            async move {
                let mut tx = store.begin().await.unwrap();
                let won = loyalty::use_coupon(&mut tx, "m1", &last, user, payment, 500, 100)
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
                won
            }
        };
        let (a, b) = tokio::join!(race("u1", "pay_1"), race("u2", "pay_2"));
        assert!(a ^ b, "exactly one wins: {a} {b}");
        let mut conn = store.acquire().await.unwrap();
        let winner = if a { "u1" } else { "u2" };
        let loser = if a { "u2" } else { "u1" };
        let lost = if a { "pay_2" } else { "pay_1" };
        assert!(
            loyalty::coupon_uses(&mut conn, lost)
                .await
                .unwrap()
                .is_empty(),
            "the losing payment keeps no use of the coupon"
        );
        assert!(
            loyalty::payer_loyalty(&mut conn, "m1", loser, 100)
                .await
                .unwrap()
                .usable
                .is_empty()
        );
        // A full refund gives the use back.
        let paid = if a { "pay_1" } else { "pay_2" };
        assert_eq!(loyalty::restore_coupons(&mut conn, paid).await.unwrap(), 1);
        assert_eq!(loyalty::restore_coupons(&mut conn, paid).await.unwrap(), 0);
        let usable = loyalty::payer_loyalty(&mut conn, "m1", loser, 100)
            .await
            .unwrap()
            .usable;
        assert_eq!(usable.len(), 1);

        // Per user, validity, pause, and granted-only coupons.
        let once = coupon("c_once", "percent", 1_000);
        loyalty::insert_coupon(&mut conn, &once).await.unwrap();
        assert!(
            loyalty::use_coupon(&mut conn, "m1", &once, winner, "pay_3", 450, 100)
                .await
                .unwrap()
        );
        assert!(
            !loyalty::use_coupon(&mut conn, "m1", &once, winner, "pay_4", 450, 100)
                .await
                .unwrap(),
            "one use per user"
        );
        let after = loyalty::coupon(&mut conn, "c_once").await.unwrap().unwrap();
        assert_eq!(after.used_count, 1, "the refused use was given back");
        assert!(
            !loyalty::use_coupon(&mut conn, "m1", &last, loser, "pay_4", 500, 20_000)
                .await
                .unwrap(),
            "expired"
        );
        assert!(
            loyalty::set_coupon_status(&mut conn, "m1", "c_last", "paused")
                .await
                .unwrap()
        );
        assert!(
            !loyalty::use_coupon(&mut conn, "m1", &last, loser, "pay_4", 500, 100)
                .await
                .unwrap(),
            "paused"
        );
        let reward = loyalty::Coupon {
            granted_only: 1,
            per_user_max: 100,
            ..coupon("c_reward", "fixed", 3_000)
        };
        loyalty::insert_coupon(&mut conn, &reward).await.unwrap();
        assert!(!has_reward(&mut conn).await, "not granted yet");
        loyalty::grant_coupon(&mut conn, "c_reward", "u1")
            .await
            .unwrap();
        assert!(has_reward(&mut conn).await);
        assert!(
            loyalty::use_coupon(&mut conn, "m1", &reward, "u1", "pay_4", 3_000, 100)
                .await
                .unwrap()
        );
        assert!(!has_reward(&mut conn).await, "its one grant is used");
        assert_eq!(
            loyalty::coupon_uses(&mut conn, "pay_4")
                .await
                .unwrap()
                .len(),
            1
        );
    }
}

#[tokio::test]
async fn points_balance_never_goes_negative_and_the_points_ledger_verifies() {
    use crate::loyalty::{self, PointsKind, PointsMove};

    let dir = tempfile::tempdir().unwrap();
    for store in testing::stores(dir.path()).await.unwrap() {
        let template = seed(&store).await;
        let mut conn = store.acquire().await.unwrap();
        seed_user(&mut conn, "u1", "+821011110001").await;
        let reward = loyalty::Coupon {
            granted_only: 1,
            ..coupon("c_reward", "fixed", 3_000)
        };
        loyalty::insert_coupon(&mut conn, &reward).await.unwrap();
        let program = loyalty::Program {
            id: "lp1".into(),
            merchant_id: "m1".into(),
            kind: "points".into(),
            status: "active".into(),
            points_bps: Some(100),
            points_cap: Some(1_000),
            stamps_per_reward: None,
            reward_coupon_id: None,
            created_at_ms: 1,
        };
        loyalty::insert_program(&mut conn, &program).await.unwrap();
        let stamps = loyalty::Program {
            id: "lp2".into(),
            kind: "stamps".into(),
            points_bps: None,
            points_cap: None,
            stamps_per_reward: Some(3),
            reward_coupon_id: Some("c_reward".into()),
            ..program.clone()
        };
        loyalty::insert_program(&mut conn, &stamps).await.unwrap();
        assert_eq!(loyalty::programs(&mut conn, "m1").await.unwrap().len(), 2);
        for (expected, payment) in [(1, "pay_1"), (2, "pay_2"), (3, "pay_3")] {
            if payment != "pay_1" {
                let p = Payment {
                    id: payment.into(),
                    idempotency_key: payment.into(),
                    ..template.clone()
                };
                payments::insert(&mut conn, &p).await.unwrap();
            }
            assert_eq!(
                loyalty::add_stamp(&mut conn, "lp2", "u1", payment)
                    .await
                    .unwrap(),
                expected
            );
        }
        let again = loyalty::add_stamp(&mut conn, "lp2", "u1", "pay_3").await;
        assert!(
            matches!(again, Err(StoreError::Duplicate(_))),
            "one stamp a payment: {again:?}"
        );
        loyalty::mark_rewarded(&mut conn, "pay_3", "lp2")
            .await
            .unwrap();
        loyalty::grant_coupon(&mut conn, "c_reward", "u1")
            .await
            .unwrap();
        // A full refund of the third payment takes its stamp and its
        // unused reward back; a second time does nothing.
        assert_eq!(
            loyalty::take_back_stamps(&mut conn, "pay_3", "u1")
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            loyalty::take_back_stamps(&mut conn, "pay_3", "u1")
                .await
                .unwrap(),
            0
        );
        assert!(
            !has_reward(&mut conn).await,
            "the reward went with the stamp"
        );
        let mv = |transfer_id: &'static str, kind, points| PointsMove {
            transfer_id,
            merchant_id: "m1",
            user_id: "u1",
            payment_id: Some("pay_1"),
            kind,
            points,
            now_ms: 5,
        };
        // Each move answers the balance after it.
        let mut post = async |id, kind, points| {
            loyalty::post_points(&mut conn, mv(id, kind, points))
                .await
                .unwrap()
        };
        assert_eq!(post("pay_1:earn", PointsKind::Earn, 45).await, Some(45));
        assert_eq!(
            post("pay_1:redeem", PointsKind::Redeem, 46).await,
            None,
            "more than the balance"
        );
        assert_eq!(post("pay_1:redeem", PointsKind::Redeem, 40).await, Some(5));
        assert_eq!(
            post("pay_1:clawback", PointsKind::Clawback, 5).await,
            Some(0)
        );
        assert_eq!(
            post("pay_1:restore", PointsKind::Restore, 20).await,
            Some(20)
        );
        // A move posted twice is refused, and its transaction rolls back.
        drop(conn);
        let mut tx = store.begin().await.unwrap();
        assert!(
            loyalty::post_points(&mut tx, mv("pay_1:earn", PointsKind::Earn, 1))
                .await
                .is_err(),
            "a move posted twice"
        );
        drop(tx);
        let mut conn = store.acquire().await.unwrap();
        assert_eq!(
            loyalty::points_balance(&mut conn, "m1", "u1")
                .await
                .unwrap(),
            20
        );
        let p = loyalty::payment_points(&mut conn, "pay_1").await.unwrap();
        assert_eq!(
            (p.earned, p.redeemed, p.clawed_back, p.restored),
            (45, 40, 5, 20)
        );
        let report = loyalty::points_report(&mut conn, "m1").await.unwrap();
        assert_eq!(
            (report.issued, report.redeemed, report.outstanding),
            (45, 40, 20)
        );
        let v = loyalty::verify(&mut conn).await.unwrap();
        assert!(v.ok(), "{:?}", v.problems);
        assert_eq!((v.transfers, v.balances), (4, 1));

        // A balance edited behind the ledger's back is found.
        sqlx::query("UPDATE points_balances SET points = 999")
            .execute(&mut *conn)
            .await
            .unwrap();
        let v = loyalty::verify(&mut conn).await.unwrap();
        assert!(!v.ok());
        assert!(
            v.problems.iter().any(|p| p.contains("balance 999")),
            "{:?}",
            v.problems
        );

        // A payment that ended without a capture keeps none of the points
        // it redeemed, and one authorised is charged all its discount did
        // not pay.
        sqlx::query("UPDATE payments SET state = 'declined' WHERE id = 'pay_1'")
            .execute(&mut *conn)
            .await
            .unwrap();
        let v = loyalty::verify(&mut conn).await.unwrap();
        assert!(
            v.problems
                .iter()
                .any(|p| p.contains("pay_1 (declined)") && p.contains("20 points were not")),
            "{:?}",
            v.problems
        );
        sqlx::query(
            "UPDATE payments SET state = 'authorised', authorised_minor = 4500 WHERE id = 'pay_1'",
        )
        .execute(&mut *conn)
        .await
        .unwrap();
        let v = loyalty::verify(&mut conn).await.unwrap();
        assert!(
            v.problems
                .iter()
                .any(|p| p.contains("pay_1 (authorised): 4500 less coupons 0 and points 40")),
            "{:?}",
            v.problems
        );
    }
}

#[tokio::test]
async fn a_payers_choice_balance_and_usable_coupons_are_read_together() {
    use crate::loyalty::{self, Choice, PointsKind, PointsMove};

    let dir = tempfile::tempdir().unwrap();
    for store in testing::stores(dir.path()).await.unwrap() {
        let backend = store.backend().name();
        seed(&store).await;
        let mut conn = store.acquire().await.unwrap();
        seed_user(&mut conn, "u1", "+821011110001").await;
        seed_user(&mut conn, "u2", "+821011110002").await;
        let nothing = loyalty::payer_loyalty(&mut conn, "m1", "u1", 100)
            .await
            .unwrap();
        assert!(nothing.choice.is_none(), "{backend}");
        assert_eq!(nothing.points_balance, 0, "{backend}");
        assert!(nothing.usable.is_empty(), "{backend}");

        // A choice and a balance with no coupon usable.
        let choice = Choice {
            user_id: "u1".into(),
            merchant_id: "m1".into(),
            coupon_id: None,
            redeem_points: 1,
            updated_at_ms: 7,
        };
        loyalty::set_choice(&mut conn, &choice).await.unwrap();
        let earned = PointsMove {
            transfer_id: "pay_1:earn",
            merchant_id: "m1",
            user_id: "u1",
            payment_id: Some("pay_1"),
            kind: PointsKind::Earn,
            points: 45,
            now_ms: 5,
        };
        loyalty::post_points(&mut conn, earned).await.unwrap();
        let alone = loyalty::payer_loyalty(&mut conn, "m1", "u1", 100)
            .await
            .unwrap();
        assert_eq!(alone.choice, Some(choice.clone()), "{backend}");
        assert_eq!(alone.points_balance, 45, "{backend}");
        assert!(alone.usable.is_empty(), "{backend}");

        // Usable coupons in id order, each row carrying the same choice;
        // a coupon out of its validity or granted to no one is left out.
        for c in [
            coupon("c_b", "fixed", 500),
            coupon("c_a", "percent", 1_000),
            loyalty::Coupon {
                valid_from_ms: 200,
                ..coupon("c_later", "fixed", 500)
            },
            loyalty::Coupon {
                granted_only: 1,
                ..coupon("c_granted", "fixed", 500)
            },
        ] {
            loyalty::insert_coupon(&mut conn, &c).await.unwrap();
        }
        let picked = Choice {
            coupon_id: Some("c_b".into()),
            ..choice
        };
        loyalty::set_choice(&mut conn, &picked).await.unwrap();
        let all = loyalty::payer_loyalty(&mut conn, "m1", "u1", 100)
            .await
            .unwrap();
        assert_eq!(all.choice, Some(picked.clone()), "{backend}");
        assert_eq!(all.points_balance, 45, "{backend}");
        let ids: Vec<&str> = all.usable.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["c_a", "c_b"], "{backend}");
        assert_eq!(all.usable[0].value, 1_000, "{backend}");

        // Another payer sees the coupons without this one's choice or
        // points, and their own balance without a choice.
        let theirs = PointsMove {
            transfer_id: "pay_1:earn:u2",
            user_id: "u2",
            points: 12,
            ..earned
        };
        loyalty::post_points(&mut conn, theirs).await.unwrap();
        let other = loyalty::payer_loyalty(&mut conn, "m1", "u2", 100)
            .await
            .unwrap();
        assert!(other.choice.is_none(), "{backend}");
        assert_eq!(other.points_balance, 12, "{backend}");
        assert_eq!(other.usable.len(), 2, "{backend}");

        // Another merchant's coupons, choice and points stay out.
        let elsewhere = Merchant {
            id: "m2".into(),
            name: "Bakery".into(),
            fee_bps: 250,
            status: "active".into(),
        };
        parties::insert_merchant(&mut conn, &elsewhere, 1)
            .await
            .unwrap();
        let theirs = loyalty::Coupon {
            merchant_id: "m2".into(),
            ..coupon("c_m2", "fixed", 500)
        };
        loyalty::insert_coupon(&mut conn, &theirs).await.unwrap();
        let there = Choice {
            merchant_id: "m2".into(),
            redeem_points: 0,
            coupon_id: None,
            ..picked.clone()
        };
        loyalty::set_choice(&mut conn, &there).await.unwrap();
        let at_m2 = PointsMove {
            transfer_id: "pay_1:earn:m2",
            merchant_id: "m2",
            points: 7,
            ..earned
        };
        loyalty::post_points(&mut conn, at_m2).await.unwrap();
        let here = loyalty::payer_loyalty(&mut conn, "m1", "u1", 100)
            .await
            .unwrap();
        assert_eq!(here.choice, Some(picked.clone()), "{backend}");
        assert_eq!(here.points_balance, 45, "{backend}");
        let ids: Vec<&str> = here.usable.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["c_a", "c_b"], "{backend}");
        let there_now = loyalty::payer_loyalty(&mut conn, "m2", "u1", 100)
            .await
            .unwrap();
        assert_eq!(there_now.choice, Some(there), "{backend}");
        assert_eq!(there_now.points_balance, 7, "{backend}");
        assert_eq!(there_now.usable.len(), 1, "{backend}");

        // Past the bound, the first by id, with the choice and balance.
        for i in 0..loyalty::USABLE_MAX {
            let c = coupon(&format!("c_z{i:03}"), "fixed", 100);
            loyalty::insert_coupon(&mut conn, &c).await.unwrap();
        }
        let many = loyalty::payer_loyalty(&mut conn, "m1", "u1", 100)
            .await
            .unwrap();
        assert_eq!(many.usable.len(), loyalty::USABLE_MAX, "{backend}");
        assert_eq!(many.usable[0].id, "c_a", "{backend}");
        assert_eq!(many.usable[99].id, "c_z097", "{backend}");
        assert_eq!(many.choice, Some(picked), "{backend}");
        assert_eq!(many.points_balance, 45, "{backend}");
    }
}

#[tokio::test]
async fn a_payment_without_a_score_does_not_spoil_the_next_insert_on_its_connection() {
    let dir = tempfile::tempdir().unwrap();
    for store in testing::stores(dir.path()).await.unwrap() {
        let template = seed(&store).await;
        // One connection throughout: its statement cache is what a missing
        // score once poisoned on PostgreSQL.
        let mut conn = store.acquire().await.unwrap();
        for (i, score) in [None, Some(0.83), None, Some(0.91)].into_iter().enumerate() {
            let p = Payment {
                id: format!("pay_score_{i}"),
                idempotency_key: format!("score{i}"),
                match_score: score,
                ..template.clone()
            };
            payments::insert(&mut conn, &p).await.unwrap();
            let mut after = p.clone();
            after.match_score = Some(0.5);
            after.state = "requires_step_up".into();
            payments::transition(&mut conn, &p, &after).await.unwrap();
            let stored = payments::get(&mut conn, &p.id).await.unwrap().unwrap();
            assert_eq!(stored.match_score, Some(0.5));
        }
    }
}

#[tokio::test]
async fn a_connector_event_is_recorded_once_until_purged() {
    use crate::connector_events;

    let dir = tempfile::tempdir().unwrap();
    for store in testing::stores(dir.path()).await.unwrap() {
        let backend = store.backend().name();
        let mut conn = store.acquire().await.unwrap();
        let hs = "hyperswitch";
        assert!(
            !connector_events::seen(&mut conn, hs, "evt_1")
                .await
                .unwrap()
        );
        let first = connector_events::record(&mut conn, hs, "evt_1", "payment_cancelled", 1_000);
        assert!(first.await.unwrap(), "{backend}");
        let again = connector_events::record(&mut conn, hs, "evt_1", "payment_cancelled", 2_000);
        assert!(!again.await.unwrap(), "{backend}: a repeat");
        assert!(
            connector_events::seen(&mut conn, hs, "evt_1")
                .await
                .unwrap()
        );
        assert!(
            !connector_events::seen(&mut conn, "other", "evt_1")
                .await
                .unwrap()
        );
        assert_eq!(connector_events::purge(&mut conn, 1_000).await.unwrap(), 0);
        assert_eq!(connector_events::purge(&mut conn, 1_001).await.unwrap(), 1);
        assert!(
            !connector_events::seen(&mut conn, hs, "evt_1")
                .await
                .unwrap()
        );
    }
}

/// A payment's lease, taken at once by eight requests: exactly one holds
/// it. It is refused to others until given back or ended, a renewal moves
/// its end, a holder whose lease ended can neither renew nor give back
/// its successor's, and purging forgets only ended leases.
#[tokio::test]
async fn one_request_at_a_time_holds_a_payments_lease() {
    use crate::leases;
    async fn take(
        conn: &mut crate::Connection,
        payment: &str,
        holder: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> bool {
        leases::take(conn, payment, holder, now_ms, until_ms)
            .await
            .unwrap()
    }
    let dir = tempfile::tempdir().unwrap();
    for store in testing::stores(dir.path()).await.unwrap() {
        let backend = store.backend().name();
        let takers = (0..8).map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut conn = store.acquire().await.unwrap();
                take(&mut conn, "pay_1", &format!("h{i}"), 0, 1_000).await
            })
        });
        let mut taken = 0;
        for taker in takers.collect::<Vec<_>>() {
            taken += usize::from(taker.await.unwrap());
        }
        assert_eq!(taken, 1, "{backend}");
        let mut conn = store.acquire().await.unwrap();
        let (first,): (String,) =
            sqlx::query_as("SELECT holder FROM payment_leases WHERE payment_id = 'pay_1'")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
        assert!(
            !take(&mut conn, "pay_1", "late", 999, 2_000).await,
            "{backend}"
        );
        assert!(
            take(&mut conn, "pay_1", "next", 1_000, 2_000).await,
            "{backend}"
        );
        let renewed = leases::renew(&mut conn, "pay_1", &first, 5_000).await;
        assert!(!renewed.unwrap(), "{backend}: an ended holder renewed");
        let renewed = leases::renew(&mut conn, "pay_1", "next", 2_500).await;
        assert!(renewed.unwrap(), "{backend}");
        assert!(
            !take(&mut conn, "pay_1", "third", 2_000, 3_000).await,
            "{backend}: a renewed lease ended at its old end"
        );
        leases::give_back(&mut conn, "pay_1", &first).await.unwrap();
        assert!(
            !take(&mut conn, "pay_1", "third", 2_000, 3_000).await,
            "{backend}: an ended holder gave back its successor's lease"
        );
        leases::give_back(&mut conn, "pay_1", "next").await.unwrap();
        assert!(
            take(&mut conn, "pay_1", "third", 2_000, 3_000).await,
            "{backend}"
        );
        assert!(
            take(&mut conn, "pay_2", "other", 2_000, 2_100).await,
            "{backend}"
        );
        let purged = leases::purge(&mut conn, 2_500).await.unwrap();
        assert_eq!(purged, 1, "{backend}");
        assert!(
            !take(&mut conn, "pay_1", "fourth", 2_500, 3_500).await,
            "{backend}"
        );
    }
}

/// One use of `name` at `at` of `rate_windows::take`, at most 5.
async fn take_use(store: &Store, name: &str, at: i64) -> Option<i64> {
    let mut conn = store.acquire().await.unwrap();
    crate::rate_windows::take(&mut conn, name, at, 5)
        .await
        .unwrap()
}

async fn give_use_back(store: &Store, name: &str, at: i64) {
    let mut conn = store.acquire().await.unwrap();
    crate::rate_windows::give_back(&mut conn, name, at)
        .await
        .unwrap();
}

#[tokio::test]
async fn uses_taken_at_once_stop_at_the_windows_limit() {
    use crate::rate_windows::window_start_ms;
    let dir = tempfile::tempdir().unwrap();
    for store in testing::stores(dir.path()).await.unwrap() {
        let backend = store.backend().name();
        let window = window_start_ms(125_000, 60_000);
        assert_eq!(window, 120_000);
        let taken = (0..12).map(|_| {
            let store = store.clone();
            tokio::spawn(async move { take_use(&store, "w", window).await })
        });
        let mut uses = 0;
        for one in taken.collect::<Vec<_>>() {
            uses += i32::from(one.await.unwrap().is_some());
        }
        assert_eq!(uses, 5, "{backend}");
        assert_eq!(take_use(&store, "w", window).await, None, "{backend}");
        assert_eq!(
            take_use(&store, "x", window).await,
            Some(window),
            "{backend}"
        );
        // A clock behind counts in the current window, and gives back there.
        let behind = window - 60_000;
        for _ in 1..5 {
            assert_eq!(
                take_use(&store, "x", behind).await,
                Some(window),
                "{backend}"
            );
        }
        assert_eq!(take_use(&store, "x", behind).await, None, "{backend}");
        give_use_back(&store, "x", window).await;
        assert_eq!(
            take_use(&store, "x", window).await,
            Some(window),
            "{backend}"
        );
        assert_eq!(take_use(&store, "x", window).await, None, "{backend}");
        // The next window starts again, and a give-back for the last is lost.
        let next = window + 60_000;
        assert_eq!(take_use(&store, "x", next).await, Some(next), "{backend}");
        give_use_back(&store, "x", window).await;
        for _ in 1..5 {
            assert_eq!(take_use(&store, "x", next).await, Some(next), "{backend}");
        }
        assert_eq!(take_use(&store, "x", next).await, None, "{backend}");
        let mut conn = store.acquire().await.unwrap();
        let none_allowed = crate::rate_windows::take(&mut conn, "y", next, 0).await;
        assert_eq!(none_allowed.unwrap(), None, "{backend}");
    }
}
