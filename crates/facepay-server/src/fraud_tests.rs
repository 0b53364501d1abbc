//! The risk engine's decisions acted on over HTTP, on SQLite and (when CI
//! gives one) PostgreSQL: a step-up by card tap (and a replayed
//! cryptogram), by PIN until it locks, by the whole phone number; a payment
//! held for review and released; a decline; a fraud claim accepted with
//! compensation, the face suspended until enrolled again, and recovery from
//! the merchant; a terminal throttled after refused attempts.

use std::sync::Arc;

use facepay_connector::simulator::{SIMULATED_CARD_PSN, SIMULATED_EMV_MASTER_KEY};
use facepay_emv::{DesKey, SimulatedCard, TransactionData};
use facepay_payments::{Config, DecisionPolicy};
use serde_json::{Value, json};

use super::flow_tests::{Harness, engine_with_logs, enrolment, lenient, payment, verify};
use crate::seed::{self as demo, OperatorFile};

/// Rules where one always-firing rule's weight picks the decision:
/// 45 asks for the phone number, 60 the PIN, 75 a card tap, 85 holds for
/// review, 120 declines; 0 approves.
pub(super) fn rules(weight: u32) -> String {
    format!(
        "[decision]\nstep_up_from = 30\nreview_from = 80\ndecline_from = 100\n\
         factors = [{{ from = 30, factor = \"phone_last4\" }}, {{ from = 45, factor = \"phone_full\" }}, \
         {{ from = 60, factor = \"pin\" }}, {{ from = 70, factor = \"card_tap\" }}]\n\
         [[rule]]\nname = \"test\"\nsignal = \"account_age_days\"\nbelow = 100000\nweight = {weight}\n"
    )
}

const OBAMA_CARD: &str = "4242424242424242";

fn tap(card: &mut SimulatedCard, challenge: &Value) -> Value {
    let number =
        u32::from_str_radix(challenge["unpredictable_number"].as_str().unwrap(), 16).unwrap();
    let date = challenge["date"].as_str().unwrap();
    let two = |i: usize| date[i..i + 2].parse::<u8>().unwrap();
    let asked = TransactionData {
        amount_minor: challenge["amount_minor"].as_u64().unwrap(),
        other_amount_minor: 0,
        terminal_country: challenge["country_numeric"].as_u64().unwrap() as u16,
        tvr: [0; 5],
        currency: challenge["currency_numeric"].as_u64().unwrap() as u16,
        date: (two(0), two(2), two(4)),
        transaction_type: 0,
        unpredictable_number: number,
        aip: [0; 2],
        atc: 0,
    };
    let (data, arqc) = card.tap(&asked).unwrap();
    json!({ "card_tap": {
        "atc": data.atc, "arqc": hex::encode(arqc), "aip": hex::encode(data.aip),
    }})
}

impl Harness {
    pub(super) async fn step_up(&self, id: &str, key: &str, body: &Value) -> (u16, Value) {
        let path = format!("/v1/terminal/payments/{id}/step-up");
        let body = serde_json::to_vec(body).unwrap();
        let (status, json, _) = self.send(self.signed(&path, key, &body)).await;
        (status, json)
    }
}

#[tokio::test]
async fn risk_decisions_factors_lockouts_claims_and_throttling() {
    let engine = engine_with_logs();
    let dir = tempfile::tempdir().unwrap();
    for store in facepay_store::testing::stores(dir.path()).await.unwrap() {
        let backend = store.backend().name();
        let data = dir.path().join(backend);
        let config = Config {
            terminal_attempts_max: 3,
            ..lenient(DecisionPolicy::default())
        };
        let h = Harness::new(store.clone(), Arc::clone(&engine), &data, config).await;
        let operator: OperatorFile =
            serde_json::from_str(&std::fs::read_to_string(demo::operator_file(&data)).unwrap())
                .unwrap();
        let op = operator.operator_key.as_str();
        let set_rules = |weight| {
            h.app
                .services
                .payments
                .reload_risk_rules(&rules(weight))
                .unwrap()
        };

        let (status, obama, _) = h
            .enrol(
                "e1",
                &enrolment("+821012345678", "face_recognition/obama.jpg", OBAMA_CARD),
            )
            .await;
        assert_eq!(status, 201, "{backend}: {obama}");
        let token = obama["token"].as_str().unwrap().to_owned();
        let mut card = SimulatedCard::issue(
            &DesKey::new(SIMULATED_EMV_MASTER_KEY),
            OBAMA_CARD,
            SIMULATED_CARD_PSN,
        )
        .unwrap();

        // A card tap: asked for from 70, answered by the card, verified by
        // the issuer; the same cryptogram on the next payment is refused.
        set_rules(75);
        let (status, asked, _) = h
            .pay("p1", &payment("face_recognition/obama2.jpg", "4500"))
            .await;
        assert_eq!(status, 202, "{backend}: {asked}");
        assert_eq!(asked["reason"], "risk_step_up");
        assert_eq!(asked["step_up"]["methods"], json!(["card_tap"]));
        let id = asked["id"].as_str().unwrap().to_owned();
        let tapped = tap(&mut card, &asked["step_up"]["card_challenge"]);
        let (status, paid) = h.step_up(&id, "s1", &tapped).await;
        assert_eq!(
            (status, paid["state"].as_str()),
            (201, Some("captured")),
            "{paid}"
        );
        let (status, again, _) = h
            .pay("p2", &payment("face_recognition/obama2.jpg", "4500"))
            .await;
        assert_eq!(status, 202, "{again}");
        let id = again["id"].as_str().unwrap().to_owned();
        let (status, replayed) = h.step_up(&id, "s2", &tapped).await;
        assert_eq!(
            (status, replayed["error"]["code"].as_str()),
            (402, Some("card_tap_invalid")),
            "{replayed}"
        );
        // A weaker factor than the one asked for is not accepted.
        let (status, again, _) = h
            .pay("p3", &payment("face_recognition/obama2.jpg", "4500"))
            .await;
        assert_eq!(status, 202);
        let id = again["id"].as_str().unwrap().to_owned();
        let (status, weak) = h.step_up(&id, "s3", &json!({"pin": "123456"})).await;
        assert_eq!(
            (status, weak["error"]["code"].as_str()),
            (409, Some("step_up_method_not_accepted"))
        );

        // The PIN: three wrong answers decline a payment; five lock the PIN,
        // and then even the right one is refused until the lock ends.
        set_rules(60);
        let (_, first, _) = h
            .pay("p4", &payment("face_recognition/obama2.jpg", "4500"))
            .await;
        assert_eq!(
            first["step_up"]["methods"],
            json!(["pin", "card_tap"]),
            "{first}"
        );
        let id = first["id"].as_str().unwrap().to_owned();
        for (i, expected) in [(0, 422), (1, 422), (2, 402)] {
            let (status, _) = h
                .step_up(&id, &format!("w{i}"), &json!({"pin": "000000"}))
                .await;
            assert_eq!(status, expected, "{backend}: wrong PIN {i}");
        }
        let (_, second, _) = h
            .pay("p5", &payment("face_recognition/obama2.jpg", "4500"))
            .await;
        let id = second["id"].as_str().unwrap().to_owned();
        for i in 3..5 {
            let (status, _) = h
                .step_up(&id, &format!("w{i}"), &json!({"pin": "000000"}))
                .await;
            assert_eq!(status, 422, "wrong PIN {i}");
        }
        let (status, locked) = h.step_up(&id, "right", &json!({"pin": "123456"})).await;
        assert_eq!(
            (status, locked["error"]["code"].as_str()),
            (423, Some("factor_locked")),
            "{locked}"
        );
        // A stronger factor still works.
        let tapped = tap(&mut card, &second["step_up"]["card_challenge"]);
        let (status, paid) = h.step_up(&id, "tap", &tapped).await;
        assert_eq!(status, 201, "{paid}");

        // The whole phone number, and the PIN is not asked for.
        set_rules(45);
        let (_, asked, _) = h
            .pay("p6", &payment("face_recognition/obama2.jpg", "4500"))
            .await;
        assert_eq!(asked["step_up"]["methods"][0], "phone");
        let id = asked["id"].as_str().unwrap().to_owned();
        let (status, _) = h
            .step_up(&id, "ph1", &json!({"phone": "+821012340000"}))
            .await;
        assert_eq!(status, 422);
        let (status, paid) = h
            .step_up(&id, "ph2", &json!({"phone": "821012345678"}))
            .await;
        assert_eq!(status, 201, "{paid}");

        // Review: authorised, capture held, released by an operator.
        set_rules(85);
        let (status, held, _) = h
            .pay("p7", &payment("face_recognition/obama2.jpg", "4500"))
            .await;
        assert_eq!(
            (status, held["state"].as_str(), held["reason"].as_str()),
            (201, Some("authorised"), Some("held_for_review")),
            "{held}"
        );
        let held_id = held["id"].as_str().unwrap().to_owned();
        // The merchant it would pay cannot capture it.
        let capture_path = format!("/v1/merchant/payments/{held_id}/capture");
        let (status, refused) = h.merchant("POST", &capture_path, "mc1", None).await;
        assert_eq!(
            (status, refused["error"]["code"].as_str()),
            (409, Some("payment_held_for_review"))
        );
        let (status, queue) = h
            .with_bearer(op, "GET", "/v1/operator/reviews", "q1", None)
            .await;
        assert_eq!(status, 200);
        assert_eq!(queue["payments"][0]["payment_id"], held_id.as_str());
        assert_eq!(queue["payments"][0]["fired"][0]["rule"], "test", "{queue}");
        let (status, released) = h
            .with_bearer(
                op,
                "POST",
                &format!("/v1/operator/reviews/{held_id}/release"),
                "r1",
                None,
            )
            .await;
        assert_eq!(
            (status, released["state"].as_str()),
            (200, Some("captured")),
            "{released}"
        );
        let (status, _) = h
            .with_bearer("fpo_wrong", "GET", "/v1/operator/reviews", "q2", None)
            .await;
        assert_eq!(status, 401);

        // Decline: recorded, nothing authorised.
        set_rules(120);
        let (status, declined, _) = h
            .pay("p8", &payment("face_recognition/obama2.jpg", "4500"))
            .await;
        assert_eq!(
            (status, declined["error"]["code"].as_str()),
            (402, Some("risk_declined")),
            "{declined}"
        );
        assert_eq!(declined["payment"]["authorised_minor"], 0);

        // A claim on an approved payment: accepted, the user is paid back
        // by the platform, the face is suspended until enrolled again.
        set_rules(0);
        let (status, paid, _) = h
            .pay("p9", &payment("face_recognition/obama2.jpg", "4500"))
            .await;
        assert_eq!(status, 201, "{paid}");
        let paid_id = paid["id"].as_str().unwrap().to_owned();
        let claim_body = json!({"payment_id": paid_id, "reason": "that was not me"});
        let (status, claim) = h
            .with_bearer(
                &token,
                "POST",
                "/v1/users/me/claims",
                "c1",
                Some(claim_body.clone()),
            )
            .await;
        assert_eq!(
            (status, claim["state"].as_str()),
            (201, Some("opened")),
            "{claim}"
        );
        let (status, twice) = h
            .with_bearer(
                &token,
                "POST",
                "/v1/users/me/claims",
                "c2",
                Some(claim_body),
            )
            .await;
        assert_eq!(
            (status, twice["error"]["code"].as_str()),
            (409, Some("claim_exists"))
        );
        let declined_id = declined["payment"]["id"].as_str().unwrap();
        let (status, nothing) = h
            .with_bearer(
                &token,
                "POST",
                "/v1/users/me/claims",
                "c3",
                Some(json!({"payment_id": declined_id, "reason": "x"})),
            )
            .await;
        assert_eq!(
            (status, nothing["error"]["code"].as_str()),
            (409, Some("payment_not_claimable"))
        );
        let claim_id = claim["id"].as_str().unwrap().to_owned();
        let claim_path = format!("/v1/operator/claims/{claim_id}");
        let (status, reviewing) = h
            .with_bearer(
                op,
                "POST",
                &claim_path,
                "d1",
                Some(json!({"action": "review"})),
            )
            .await;
        assert_eq!(
            (status, reviewing["state"].as_str()),
            (200, Some("under_review"))
        );
        let (status, accepted) = h
            .with_bearer(
                op,
                "POST",
                &claim_path,
                "d2",
                Some(json!({"action": "accept", "note": "photo at a far store"})),
            )
            .await;
        assert_eq!(
            (status, accepted["state"].as_str()),
            (200, Some("accepted")),
            "{accepted}"
        );
        assert_eq!(accepted["compensated_minor"], 4500);
        let (status, late) = h
            .with_bearer(
                op,
                "POST",
                &claim_path,
                "d3",
                Some(json!({"action": "reject"})),
            )
            .await;
        assert_eq!(
            (status, late["error"]["code"].as_str()),
            (409, Some("claim_state"))
        );
        let (_, payment_after) = h
            .merchant(
                "GET",
                &format!("/v1/merchant/payments/{paid_id}"),
                "g1",
                None,
            )
            .await;
        assert_eq!(
            payment_after["payment"]["state"], "refunded",
            "{payment_after}"
        );
        verify(&store).await;
        // Suspended: the face no longer pays, and the account is blocked.
        let (status, gone, _) = h
            .pay("p10", &payment("face_recognition/obama2.jpg", "4500"))
            .await;
        assert_eq!(
            (status, gone["error"]["code"].as_str()),
            (422, Some("face_not_recognised")),
            "{gone}"
        );
        let (_, blocks) = h
            .with_bearer(op, "GET", "/v1/operator/blocks", "b1", None)
            .await;
        assert_eq!(blocks["blocks"][0]["kind"], "user");
        // Enrolled again: the block is lifted and the face pays.
        let frames = json!({"frames": [super::flow_tests::frame("face_recognition/obama.jpg")]});
        let (status, again) = h
            .with_bearer(&token, "PUT", "/v1/users/me/face", "f1", Some(frames))
            .await;
        assert_eq!(status, 201, "{again}");
        let (status, paid, _) = h
            .pay("p11", &payment("face_recognition/obama2.jpg", "4500"))
            .await;
        assert_eq!(status, 201, "{backend}: {paid}");
        // The merchant pays the platform back.
        let (status, recovered) = h
            .with_bearer(op, "POST", &format!("{claim_path}/recover"), "rc1", None)
            .await;
        assert_eq!(
            (status, recovered["recovered_minor"].as_i64()),
            (200, Some(4500)),
            "{recovered}"
        );
        let (status, _) = h
            .with_bearer(op, "POST", &format!("{claim_path}/recover"), "rc2", None)
            .await;
        assert_eq!(status, 409);
        let (_, mine) = h
            .with_bearer(&token, "GET", "/v1/users/me/claims", "m1", None)
            .await;
        assert_eq!(mine["claims"][0]["state"], "accepted");
        verify(&store).await;

        // Refused attempts: the suspended face above and two faces nobody
        // enrolled make three; the terminal is throttled and flagged.
        for i in 0..2 {
            let (status, body, _) = h
                .pay(
                    &format!("n{i}"),
                    &payment("face_recognition/biden.jpg", "4500"),
                )
                .await;
            assert_eq!(body["error"]["code"], "face_not_recognised", "{status}");
        }
        let (status, throttled, _) = h
            .pay("n3", &payment("face_recognition/obama2.jpg", "4500"))
            .await;
        assert_eq!(
            (status, throttled["error"]["code"].as_str()),
            (429, Some("terminal_throttled"))
        );
        let (_, flagged) = h
            .with_bearer(op, "GET", "/v1/operator/terminals/flagged", "t1", None)
            .await;
        assert_eq!(
            flagged["terminals"][0]["terminal_id"],
            h.terminal_id.as_str()
        );
        verify(&store).await;
    }
}

/// Four wrong PINs, then four more sent at once from four payments of the
/// same payer, as four terminals (or servers) would: each guess is counted
/// before it is checked, so at most one more is checked before the lockout
/// (5) holds, the rest are refused as locked, and each wrong one is
/// counted once. Checked first and counted after, all four would be.
#[tokio::test]
async fn wrong_pins_sent_at_once_stop_at_the_lockout() {
    let engine = engine_with_logs();
    let dir = tempfile::tempdir().unwrap();
    for store in facepay_store::testing::stores(dir.path()).await.unwrap() {
        let backend = store.backend().name();
        let data = dir.path().join(backend);
        let policy = lenient(DecisionPolicy::default());
        let h = Harness::new(store.clone(), Arc::clone(&engine), &data, policy).await;
        let payments = &h.app.services.payments;
        payments.reload_risk_rules(&rules(60)).unwrap();
        let card = enrolment("+821012345678", "face_recognition/obama.jpg", OBAMA_CARD);
        let (status, enrolled, _) = h.enrol("e1", &card).await;
        assert_eq!(status, 201, "{backend}: {enrolled}");
        let mut ids = Vec::new();
        for i in 0..6 {
            let paying = payment("face_recognition/obama2.jpg", "4500");
            let (status, asked, _) = h.pay(&format!("p{i}"), &paying).await;
            assert_eq!(status, 202, "{backend}: {asked}");
            ids.push(asked["id"].as_str().unwrap().to_owned());
        }
        let wrong = json!({"pin": "000000"});
        // Four one after the other: three end the first payment, one more.
        for (i, (id, expected)) in [(0, 422), (0, 422), (0, 402), (1, 422)].iter().enumerate() {
            let (status, _) = h.step_up(&ids[*id], &format!("s{i}"), &wrong).await;
            assert_eq!(status, *expected, "{backend}: wrong PIN {i}");
        }
        let guess = |n: usize| {
            let (h, wrong, id) = (&h, &wrong, ids[n].clone());
            async move {
                let (status, answer) = h.step_up(&id, &format!("w{n}"), wrong).await;
                (status, answer["error"]["code"].clone())
            }
        };
        let answers = tokio::join!(guess(2), guess(3), guess(4), guess(5));
        let answers = [answers.0, answers.1, answers.2, answers.3];
        let checked = answers.iter().filter(|(s, _)| *s == 422).count();
        let locked = answers
            .iter()
            .filter(|(s, code)| *s == 423 && code == "factor_locked")
            .count();
        assert!(
            checked <= 1 && checked + locked == answers.len(),
            "{backend}: {answers:?}"
        );
        let (counted,): (i64,) =
            sqlx::query_as("SELECT CAST(COUNT(*) AS BIGINT) FROM factor_failures")
                .fetch_one(&mut *store.acquire().await.unwrap())
                .await
                .unwrap();
        assert_eq!(counted, 4 + i64::try_from(checked).unwrap(), "{backend}");
    }
}

/// One payment, then eight more of the same payer sent at once to two
/// servers sharing the store, with a rule that declines a payer's fourth payment in an hour: each payment's
/// row is written before the payer's history is read, so each read counts
/// the payments written before it and at most two of the eight go
/// through (none, when all eight rows come before the first read). Read
/// before the rows existed, all eight saw one payment in the hour and all
/// were charged.
#[tokio::test]
async fn payments_sent_at_once_count_each_other_in_the_payers_velocity() {
    let engine = engine_with_logs();
    let dir = tempfile::tempdir().unwrap();
    for store in facepay_store::testing::stores(dir.path()).await.unwrap() {
        let backend = store.backend().name();
        let data = dir.path().join(backend);
        let policy = || lenient(DecisionPolicy::default());
        let h = Harness::new(store.clone(), Arc::clone(&engine), &data, policy()).await;
        let other = Harness::new(store.clone(), Arc::clone(&engine), &data, policy()).await;
        let servers = [&h.app.services.payments, &other.app.services.payments];
        let velocity = "[decision]\nstep_up_from = 30\nreview_from = 80\ndecline_from = 100\n\
             factors = [{ from = 30, factor = \"pin\" }]\n\
             [[rule]]\nname = \"user_velocity\"\nsignal = \"user_payments_1h\"\nabove = 2\nweight = 120\n";
        for payments in servers {
            payments.reload_risk_rules(velocity).unwrap();
        }
        let card = enrolment("+821012345678", "face_recognition/obama.jpg", OBAMA_CARD);
        let (status, enrolled, _) = h.enrol("e1", &card).await;
        assert_eq!(status, 201, "{backend}: {enrolled}");
        let mut conn = store.acquire().await.unwrap();
        let (user_id,): (String,) = sqlx::query_as("SELECT id FROM users")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        let ctx = facepay_store::parties::terminal_context(&mut conn, &h.terminal_id)
            .await
            .unwrap()
            .unwrap();
        drop(conn);
        let pay = |n: usize| {
            let (ctx, user_id) = (&ctx, &user_id);
            async move {
                let key = format!("at-once-{n}");
                let payments = servers[n % 2];
                match payments.pay_identified(ctx, &key, 4500, user_id).await {
                    Ok(reply) => (reply.status, reply.body),
                    Err(e) => (e.status, e.message),
                }
            }
        };
        let (status, first) = pay(8).await;
        assert_eq!(status, 201, "{backend}: alone, within the limit");
        let s = tokio::join!(
            pay(0),
            pay(1),
            pay(2),
            pay(3),
            pay(4),
            pay(5),
            pay(6),
            pay(7)
        );
        let answers = [s.0, s.1, s.2, s.3, s.4, s.5, s.6, s.7];
        let charged = answers.iter().filter(|(s, _)| *s == 201).count();
        let declined = answers
            .iter()
            .filter(|(s, body)| *s == 402 && body.contains("risk_declined"))
            .count();
        assert!(
            charged <= 2 && charged + declined == answers.len(),
            "{backend}: {answers:?} after {first}"
        );
        let (captured,): (i64,) = sqlx::query_as(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM payments WHERE state = 'captured'",
        )
        .fetch_one(&mut *store.acquire().await.unwrap())
        .await
        .unwrap();
        assert_eq!(captured, 1 + i64::try_from(charged).unwrap(), "{backend}");
        // A refusal takes back the connector its early row named: nothing
        // was sent, so no sweep reverses it.
        let (named,): (i64,) = sqlx::query_as(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM payments \
             WHERE state = 'declined' AND connector IS NOT NULL",
        )
        .fetch_one(&mut *store.acquire().await.unwrap())
        .await
        .unwrap();
        assert_eq!(named, 0, "{backend}");
        verify(&store).await;
    }
}
