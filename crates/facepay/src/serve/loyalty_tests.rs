//! Loyalty after payment over HTTP, on SQLite and (when CI gives one)
//! PostgreSQL, with the demo merchant's points program (1%, at most 1,000
//! a payment) and stamp card (every fifth visit a free americano): points
//! and stamps earned with the capture, a reward coupon granted, points
//! taken back in proportion by refunds, nothing earned before a manual
//! capture, and the merchant's programs, coupons and report.

use std::sync::Arc;

use facepay_payments::DecisionPolicy;
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
        for (bad, what) in [
            (json!({"kind": "points", "points_bps": 0}), "no points"),
            (json!({"kind": "points", "points_bps": 20000}), "over 100%"),
            (
                json!({"kind": "stamps", "stamps_per_reward": 5}),
                "no reward",
            ),
            (
                json!({"kind": "stamps", "stamps_per_reward": 5, "reward_coupon_id": "cpn_other"}),
                "another merchant's coupon",
            ),
            (json!({"kind": "cashback"}), "unknown kind"),
        ] {
            let (status, body) = h
                .merchant("POST", "/v1/merchant/loyalty/programs", what, Some(bad))
                .await;
            assert_eq!(
                (status, body["error"]["code"].as_str()),
                (422, Some("loyalty_invalid")),
                "{what}"
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
