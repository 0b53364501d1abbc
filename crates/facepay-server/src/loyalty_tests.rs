//! Loyalty after payment over HTTP, on SQLite and (when CI gives one)
//! PostgreSQL, with the demo merchant's points program (1%, at most 1,000
//! a payment) and stamp card (every fifth visit a free americano): points
//! and stamps earned with the capture, a reward coupon granted, points
//! taken back in proportion by refunds, nothing earned before a manual
//! capture, and the merchant's programs, coupons and report; coupons and
//! points paying part of a payment, chosen by the stacking rules or the
//! payer's pick, given back by refunds and voids, and raced for.

use std::sync::Arc;

use facepay_payments::{Config, DecisionPolicy};
use serde_json::json;

use super::flow_tests::{Harness, engine_with_logs, enrolment, lenient, payment, verify};

#[tokio::test]
async fn points_and_stamps_follow_captures_and_refunds() {
    let engine = engine_with_logs();
    let dir = tempfile::tempdir().unwrap();
    for store in facepay_store::testing::stores(dir.path()).await.unwrap() {
        let backend = store.backend().name();
        let data = dir.path().join(backend);
        let config = lenient(DecisionPolicy::default());
        let h = Harness::new(store.clone(), Arc::clone(&engine), &data, config).await;
        let (status, body, _) = h
            .enrol(
                "e1",
                &enrolment(
                    "+821012345678",
                    "face_recognition/obama.jpg",
                    "4242424242424242",
                ),
            )
            .await;
        assert_eq!(status, 201, "{backend}: {body}");
        let token = body["token"].as_str().unwrap().to_owned();

        // Five visits: 1% of 4,500 each time, and the fifth stamp earns
        // the reward coupon.
        let mut paid = Vec::new();
        for visit in 1..=5 {
            let (status, body, _) = h
                .pay(
                    &format!("p{visit}"),
                    &payment("face_recognition/obama2.jpg", "4500"),
                )
                .await;
            assert_eq!(status, 201, "{backend}: {body}");
            let loyalty = &body["receipt"]["loyalty"];
            assert_eq!(loyalty["points_earned"], 45, "{body}");
            assert_eq!(loyalty["points_balance"], 45 * visit, "{body}");
            assert_eq!(loyalty["stamps"], visit);
            let rewards = loyalty["rewards"].as_array().cloned().unwrap_or_default();
            assert_eq!(rewards.len(), usize::from(visit == 5), "{body}");
            paid.push(body["id"].as_str().unwrap().to_owned());
        }
        // The payer's wallet: points, the stamp card and the reward.
        let (status, me) = h.with_bearer(&token, "GET", "/v1/users/me", "", None).await;
        assert_eq!(status, 200, "{me}");
        assert_eq!(me["points"][0]["points"], 225, "{me}");
        assert_eq!(me["points"][0]["merchant"], "Demo Coffee");
        assert_eq!(me["stamps"][0]["stamps"], 5);
        assert_eq!(me["coupons"][0]["name"], "Free americano");
        assert_eq!(me["coupons"][0]["uses_left"], 1);
        // The cap: 1% of 200,000 is 2,000, capped at 1,000.
        let (_, big, _) = h
            .pay("p6", &payment("face_recognition/obama2.jpg", "200000"))
            .await;
        assert_eq!(big["receipt"]["loyalty"]["points_earned"], 1_000, "{big}");

        // A third refunded takes back a third of the points; the rest, the
        // rest.
        let first = &paid[0];
        let refunds = format!("/v1/merchant/payments/{first}/refunds");
        let (status, _) = h
            .merchant("POST", &refunds, "r1", Some(json!({"amount": "1500"})))
            .await;
        assert_eq!(status, 200);
        let (_, view) = h.merchant("GET", "/v1/merchant/loyalty", "", None).await;
        assert_eq!(view["points"]["clawed_back"], 15, "{view}");
        let (status, _) = h.merchant("POST", &refunds, "r2", None).await;
        assert_eq!(status, 200);
        let (_, view) = h.merchant("GET", "/v1/merchant/loyalty", "", None).await;
        assert_eq!(view["points"]["clawed_back"], 45, "{view}");
        // Refunded in full, the first visit's stamp is taken back too.
        let (_, me) = h.with_bearer(&token, "GET", "/v1/users/me", "", None).await;
        assert_eq!(
            me["stamps"][0]["stamps"], 5,
            "six visits, one refunded: {me}"
        );
        assert_eq!(view["points"]["issued"], 45 * 5 + 1_000);
        assert_eq!(view["points"]["outstanding"], 45 * 4 + 1_000);
        assert_eq!(view["programs"].as_array().unwrap().len(), 2);

        // A manual capture earns nothing until it is captured.
        let mut manual = payment("face_recognition/obama2.jpg", "3000");
        manual["capture"] = json!("manual");
        let (status, held, _) = h.pay("p7", &manual).await;
        assert_eq!(status, 201, "{held}");
        assert!(held["receipt"]["loyalty"].is_null(), "{held}");
        let id = held["id"].as_str().unwrap();
        let (status, _) = h
            .merchant(
                "POST",
                &format!("/v1/merchant/payments/{id}/capture"),
                "c1",
                None,
            )
            .await;
        assert_eq!(status, 200);
        let (_, view) = h.merchant("GET", "/v1/merchant/loyalty", "", None).await;
        assert_eq!(view["points"]["issued"], 45 * 5 + 1_000 + 30);

        // The merchant's API: coupons and programs, paused and resumed.
        let coupon = json!({
            "name": "10% off", "kind": "percent", "value": 1000,
            "valid_from_ms": 0, "valid_until_ms": 4_102_444_800_000_i64,
        });
        let (status, created) = h
            .merchant("POST", "/v1/merchant/loyalty/coupons", "k1", Some(coupon))
            .await;
        assert_eq!(status, 201, "{created}");
        let coupon_id = created["id"].as_str().unwrap();
        let pause = format!("/v1/merchant/loyalty/coupons/{coupon_id}/pause");
        let (status, paused) = h.merchant("POST", &pause, "", None).await;
        assert_eq!((status, paused["status"].as_str()), (200, Some("paused")));
        for (bad, what, status_code) in [
            (
                json!({"kind": "points", "points_bps": 0}),
                "no points",
                (422, "loyalty_invalid"),
            ),
            (
                json!({"kind": "points", "points_bps": 20000}),
                "over 100%",
                (422, "loyalty_invalid"),
            ),
            (
                json!({"kind": "stamps", "stamps_per_reward": 5}),
                "no reward",
                (400, "json_invalid_field"),
            ),
            (
                json!({"kind": "stamps", "stamps_per_reward": 5, "reward_coupon_id": "cpn_other"}),
                "another merchant's coupon",
                (422, "loyalty_invalid"),
            ),
            (
                json!({"kind": "points", "points_bps": 50, "stamps_per_reward": 5}),
                "a stamp card's field on a points program",
                (400, "json_invalid_field"),
            ),
            (
                json!({"kind": "cashback"}),
                "unknown kind",
                (400, "json_invalid_field"),
            ),
        ] {
            let (status, body) = h
                .merchant(
                    "POST",
                    "/v1/merchant/loyalty/programs",
                    &what.replace(' ', "-"),
                    Some(bad),
                )
                .await;
            assert_eq!(
                (status, body["error"]["code"].as_str().unwrap_or("")),
                status_code,
                "{what}: {body}"
            );
        }
        let (status, program) = h
            .merchant(
                "POST",
                "/v1/merchant/loyalty/programs",
                "k2",
                Some(json!({"kind": "points", "points_bps": 50})),
            )
            .await;
        assert_eq!(status, 201, "{program}");
        let (status, _) = h
            .merchant(
                "POST",
                "/v1/merchant/loyalty/programs/lp_nope/pause",
                "",
                None,
            )
            .await;
        assert_eq!(status, 404);
        verify(&store).await;
    }
}

/// Creates a coupon of the demo merchant's; returns its id.
pub(super) async fn coupon(h: &Harness, key: &str, fields: serde_json::Value) -> String {
    let mut body = json!({
        "kind": "fixed", "valid_from_ms": 0, "valid_until_ms": 4_102_444_800_000_i64,
        "per_user_max": 5,
    });
    for (k, v) in fields.as_object().unwrap() {
        body[k] = v.clone();
    }
    let (status, created) = h
        .merchant("POST", "/v1/merchant/loyalty/coupons", key, Some(body))
        .await;
    assert_eq!(status, 201, "{created}");
    created["id"].as_str().unwrap().to_owned()
}

pub(super) async fn coupon_uses(h: &Harness) -> std::collections::BTreeMap<String, i64> {
    let (_, view) = h.merchant("GET", "/v1/merchant/loyalty", "", None).await;
    view["coupons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                c["used_count"].as_i64().unwrap(),
            )
        })
        .collect()
}

async fn points_of(h: &Harness, token: &str) -> i64 {
    let (_, me) = h.with_bearer(token, "GET", "/v1/users/me", "", None).await;
    me["points"]
        .as_array()
        .unwrap()
        .first()
        .map_or(0, |p| p["points"].as_i64().unwrap())
}

#[tokio::test]
async fn coupons_and_points_pay_part_and_come_back_with_refunds_and_voids() {
    let engine = engine_with_logs();
    let dir = tempfile::tempdir().unwrap();
    for store in facepay_store::testing::stores(dir.path()).await.unwrap() {
        let backend = store.backend().name();
        let data = dir.path().join(backend);
        let config = lenient(DecisionPolicy::default());
        let h = Harness::new(store.clone(), Arc::clone(&engine), &data, config).await;
        let obama = enrolment(
            "+821012345678",
            "face_recognition/obama.jpg",
            "4242424242424242",
        );
        let (status, body, _) = h.enrol("e1", &obama).await;
        assert_eq!(status, 201, "{backend}: {body}");
        let token = body["token"].as_str().unwrap().to_owned();

        coupon(
            &h,
            "c1",
            json!({"name": "1,000 off", "value": 1000, "min_spend_minor": 5000}),
        )
        .await;
        let five = coupon(
            &h,
            "c2",
            json!({"name": "5% off", "kind": "percent", "value": 500, "stackable": true}),
        )
        .await;
        coupon(
            &h,
            "c3",
            json!({"name": "300 off", "value": 300, "stackable": true}),
        )
        .await;
        // Outside their validity: never applied.
        coupon(
            &h,
            "c4",
            json!({"name": "Expired", "value": 3000, "valid_from_ms": 0, "valid_until_ms": 1000}),
        )
        .await;
        coupon(
            &h,
            "c5",
            json!({"name": "Next year", "value": 2000, "valid_from_ms": 4_000_000_000_000_i64}),
        )
        .await;

        // Under the minimum spend of "1,000 off", the two stackable ones
        // together take more off than nothing.
        let (status, first, _) = h
            .pay("p1", &payment("face_recognition/obama2.jpg", "4000"))
            .await;
        assert_eq!(status, 201, "{backend}: {first}");
        let loyalty = &first["receipt"]["loyalty"];
        assert_eq!(loyalty["discount_minor"], 500, "{first}");
        assert_eq!(loyalty["coupons"], json!(["300 off", "5% off"]));
        assert_eq!(first["amount_minor"], 4000);
        assert_eq!(first["captured_minor"], 3500);
        assert_eq!(loyalty["points_earned"], 35, "1% of what the card paid");

        // Over it, the lone coupon takes more off (1,000) than the stack
        // (500 + 300).
        let (status, second, _) = h
            .pay("p2", &payment("face_recognition/obama2.jpg", "10000"))
            .await;
        assert_eq!(status, 201, "{backend}: {second}");
        assert_eq!(
            second["receipt"]["loyalty"]["coupons"],
            json!(["1,000 off"])
        );
        assert_eq!(second["captured_minor"], 9000);
        assert_eq!(points_of(&h, &token).await, 125);

        // The app: pay with points here, and "5% off" first. A picked
        // stackable coupon brings the other stackable one along.
        let merchant = format!("/v1/users/me/loyalty/{}", crate::seed::MERCHANT_ID);
        let (status, body) = h
            .with_bearer(
                &token,
                "PUT",
                &merchant,
                "",
                Some(json!({"coupon_id": "cpn_nope"})),
            )
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (422, Some("coupon_unknown"))
        );
        let (status, body) = h
            .with_bearer(
                &token,
                "PUT",
                "/v1/users/me/loyalty/mer_nope",
                "",
                Some(json!({"redeem_points": true})),
            )
            .await;
        assert_eq!(status, 404, "{body}");
        let (status, body) = h
            .with_bearer(
                &token,
                "PUT",
                &merchant,
                "",
                Some(json!({"coupon_id": five, "redeem_points": true})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let (status, third, _) = h
            .pay("p3", &payment("face_recognition/obama2.jpg", "6000"))
            .await;
        assert_eq!(status, 201, "{backend}: {third}");
        let loyalty = &third["receipt"]["loyalty"];
        assert_eq!(loyalty["coupons"], json!(["5% off", "300 off"]), "{third}");
        assert_eq!(loyalty["points_redeemed"], 125);
        assert_eq!(loyalty["discount_minor"], 300 + 300 + 125);
        assert_eq!(third["captured_minor"], 6000 - 725);
        assert_eq!(loyalty["points_earned"], 52);
        assert_eq!(loyalty["points_balance"], 52);
        let uses = coupon_uses(&h).await;
        assert_eq!(
            (uses["5% off"], uses["300 off"], uses["1,000 off"]),
            (2, 2, 1)
        );

        // A partial refund gives back the redeemed points and takes back
        // the earned ones in proportion; the rest gives back the coupons.
        let id = third["id"].as_str().unwrap();
        let refunds = format!("/v1/merchant/payments/{id}/refunds");
        let (status, body) = h
            .merchant("POST", &refunds, "r1", Some(json!({"amount": "2000"})))
            .await;
        assert_eq!(status, 200, "{body}");
        // 125 × 2000/5275 = 47 back, 52 × 2000/5275 = 19 taken.
        assert_eq!(points_of(&h, &token).await, 52 + 47 - 19);
        assert_eq!(coupon_uses(&h).await["5% off"], 2, "a coupon is whole");
        let (status, _) = h.merchant("POST", &refunds, "r2", None).await;
        assert_eq!(status, 200);
        assert_eq!(points_of(&h, &token).await, 125, "as before the payment");
        let uses = coupon_uses(&h).await;
        assert_eq!((uses["5% off"], uses["300 off"]), (1, 1));
        verify(&store).await;

        // A void gives everything back at once.
        let mut manual = payment("face_recognition/obama2.jpg", "8000");
        manual["capture"] = json!("manual");
        let (status, held, _) = h.pay("p4", &manual).await;
        assert_eq!(status, 201, "{backend}: {held}");
        assert_eq!(held["authorised_minor"], 8000 - 400 - 300 - 125);
        assert_eq!(points_of(&h, &token).await, 0);
        let id = held["id"].as_str().unwrap();
        let (status, body) = h
            .merchant(
                "POST",
                &format!("/v1/merchant/payments/{id}/void"),
                "v1",
                None,
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(points_of(&h, &token).await, 125);
        let uses = coupon_uses(&h).await;
        assert_eq!((uses["5% off"], uses["300 off"]), (1, 1));
        assert_eq!((uses["Expired"], uses["Next year"]), (0, 0));

        // The report: points redeemed and given back.
        let (_, view) = h.merchant("GET", "/v1/merchant/loyalty", "", None).await;
        assert_eq!(view["points"]["redeemed"], 250, "{view}");
        assert_eq!(view["points"]["restored"], 250, "{view}");
        verify(&store).await;
    }
}

#[tokio::test]
async fn two_payments_race_for_the_last_use_of_a_coupon_and_one_wins() {
    let engine = engine_with_logs();
    let dir = tempfile::tempdir().unwrap();
    for store in facepay_store::testing::stores(dir.path()).await.unwrap() {
        let backend = store.backend().name();
        let data = dir.path().join(backend);
        let config = lenient(DecisionPolicy::default());
        let h = Harness::new(store.clone(), Arc::clone(&engine), &data, config).await;
        for (key, phone, photo, card) in [
            (
                "e1",
                "+821012345678",
                "face_recognition/obama.jpg",
                "4242424242424242",
            ),
            (
                "e2",
                "+821098765432",
                "face_recognition/biden.jpg",
                "5555555555554444",
            ),
        ] {
            let (status, body, _) = h.enrol(key, &enrolment(phone, photo, card)).await;
            assert_eq!(status, 201, "{backend}: {body}");
        }
        coupon(
            &h,
            "c1",
            json!({"name": "Last one", "value": 500, "total_max": 1}),
        )
        .await;
        let (obama, biden) = (
            payment("face_recognition/obama2.jpg", "3000"),
            payment("face_recognition/biden.jpg", "3000"),
        );
        let (a, b) = tokio::join!(h.pay("a", &obama), h.pay("b", &biden));
        assert_eq!((a.0, b.0), (201, 201), "{backend}: {} / {}", a.1, b.1);
        let mut charged = [
            a.1["captured_minor"].as_i64().unwrap(),
            b.1["captured_minor"].as_i64().unwrap(),
        ];
        charged.sort();
        assert_eq!(charged, [2500, 3000], "{backend}: {} / {}", a.1, b.1);
        assert_eq!(coupon_uses(&h).await["Last one"], 1);
        verify(&store).await;
    }
}

#[tokio::test]
async fn an_abandoned_step_up_is_declined_by_the_sweep() {
    let engine = engine_with_logs();
    let dir = tempfile::tempdir().unwrap();
    for store in facepay_store::testing::stores(dir.path()).await.unwrap() {
        let backend = store.backend().name();
        let data = dir.path().join(backend);
        let strict = DecisionPolicy {
            strong_threshold: 0.99,
            ..DecisionPolicy::default()
        };
        let config = Config {
            abandoned_after_ms: 0,
            ..lenient(strict)
        };
        let h = Harness::new(store.clone(), Arc::clone(&engine), &data, config).await;
        let obama = enrolment(
            "+821012345678",
            "face_recognition/obama.jpg",
            "4242424242424242",
        );
        let (status, body, _) = h.enrol("e1", &obama).await;
        assert_eq!(status, 201, "{backend}: {body}");
        let (status, pending, _) = h
            .pay("s1", &payment("face_recognition/obama2.jpg", "3000"))
            .await;
        assert_eq!(status, 202, "{backend}: {pending}");
        assert_eq!(
            h.app.services.merchant.close_abandoned(10).await.unwrap(),
            1
        );
        let id = pending["id"].as_str().unwrap();
        let (_, detail) = h
            .merchant("GET", &format!("/v1/merchant/payments/{id}"), "", None)
            .await;
        assert_eq!(detail["payment"]["state"], "declined", "{detail}");
        assert_eq!(detail["payment"]["reason"], "step_up_abandoned");
        assert_eq!(
            h.app.services.merchant.close_abandoned(10).await.unwrap(),
            0
        );
        verify(&store).await;
    }
}

#[tokio::test]
async fn a_declined_card_gives_back_the_coupon_it_was_to_use() {
    let engine = engine_with_logs();
    let dir = tempfile::tempdir().unwrap();
    for store in facepay_store::testing::stores(dir.path()).await.unwrap() {
        let backend = store.backend().name();
        let data = dir.path().join(backend);
        let config = lenient(DecisionPolicy::default());
        let h = Harness::new(store.clone(), Arc::clone(&engine), &data, config).await;
        // The simulated issuer declines this card: insufficient funds.
        let poor = enrolment(
            "+821012345678",
            "face_recognition/obama.jpg",
            "4000000000009995",
        );
        let (status, body, _) = h.enrol("e1", &poor).await;
        assert_eq!(status, 201, "{backend}: {body}");
        coupon(&h, "c1", json!({"name": "500 off", "value": 500})).await;
        let (status, declined, _) = h
            .pay("p1", &payment("face_recognition/obama2.jpg", "3000"))
            .await;
        assert_eq!(
            (status, declined["error"]["code"].as_str()),
            (402, Some("insufficient_funds")),
            "{backend}: {declined}"
        );
        assert_eq!(coupon_uses(&h).await["500 off"], 0, "given back");
        verify(&store).await;
    }
}
