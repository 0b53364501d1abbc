//! The hub's API over HTTP, on SQLite and (when CI gives one) PostgreSQL,
//! with the demo's simulated member networks and their keys: a QR payment
//! quoted and paid once, its ISO 20022 renderings, a cash withdrawal, the
//! window closed and settled by an operator, and the refusals on the way;
//! members onboarded with caps, funds and rates, a payee found by alias, a
//! screening hit held and released, and settlement through the simulated
//! settlement bank.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use facepay_hub::demo::{PHO_HANOI_QR_ID, merchant_qr, promptpay_qr, vietqr_qr};
use facepay_payments::hub_member::FACEPAY_MEMBER_ID;
use facepay_payments::{Config, DecisionPolicy};
use facepay_store::ManualClock;
use serde_json::{Value, json};

use super::flow_tests::{Harness, engine_with_logs, enrolment, lenient, verify};
use crate::seed::{self as demo, HubFile, OperatorFile};

const KOREA: &str = "kr.wallet.sim";
const INDONESIA: &str = "id.co.qris.sim";
const THAILAND: &str = "th.promptpay.sim";
const VIETNAM: &str = "vn.napas.sim";
const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

fn jakarta_qr() -> String {
    merchant_qr(
        (INDONESIA, "warung-01"),
        ("Warung Makan", "Jakarta", "ID"),
        360,
        Some("55000"),
        "INV-0042",
    )
    .unwrap()
}

/// The demo's member keys, by network id.
fn member_keys(data: &std::path::Path) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(demo::hub_file(data)).unwrap();
    serde_json::from_str::<HubFile>(&text).unwrap().member_keys
}

/// A GET with a bearer key: status, JSON (or null) and the text.
async fn raw(h: &Harness, secret: &str, path: &str) -> (u16, Value, String) {
    let request = Request::get(path)
        .header("authorization", format!("Bearer {secret}"))
        .body(Body::empty())
        .unwrap();
    h.send(request).await
}

/// A Korean payer pays the codes shops in Vietnam and Thailand print:
/// a VietQR and a PromptPay code, neither with a merchant name, city or
/// category code. Each is read as its scheme, shown by its account, and
/// paid once.
#[tokio::test]
async fn a_korean_payer_pays_a_vietqr_and_a_promptpay_code() {
    let engine = engine_with_logs();
    let dir = tempfile::tempdir().unwrap();
    for store in facepay_store::testing::stores(dir.path()).await.unwrap() {
        let backend = store.backend().name();
        let data = dir.path().join(backend);
        let config: Config = lenient(DecisionPolicy::default());
        // 10:00 in Hanoi and 10:00 in Bangkok, today: NAPAS closes from
        // 23:00 to 00:30 local time.
        let today_ms = facepay_store::now_ms() / DAY_MS * DAY_MS;
        let clock = Arc::new(ManualClock::new(today_ms + 3 * HOUR_MS));
        let h = Harness::with_clock(store.clone(), Arc::clone(&engine), clock, &data, config).await;
        let korea = member_keys(&data)[KOREA].clone();
        let (bin, account) = PHO_HANOI_QR_ID.split_once('-').unwrap();
        let codes = [
            (
                vietqr_qr((bin, account), (VIETNAM, "pho-hanoi")).unwrap(),
                "120000",
                ("vietqr", "Pho Hanoi"),
            ),
            (
                promptpay_qr("0066812345678", (THAILAND, "siam-market")).unwrap(),
                "150.00",
                ("promptpay", "Siam Market"),
            ),
        ];
        for (n, (qr, amount, (scheme, payee))) in codes.into_iter().enumerate() {
            let body = json!({"payer_account": "kim", "qr": qr, "amount": amount});
            let (status, quote) = h
                .with_bearer(&korea, "POST", "/v1/hub/quotes", "", Some(body))
                .await;
            assert_eq!(status, 201, "{backend}: {quote}");
            assert_eq!(quote["code"]["scheme"], scheme, "{quote}");
            assert_eq!(quote["payee_name"], payee, "{quote}");
            assert!(
                quote["code"]["display_name"]
                    .as_str()
                    .is_some_and(|name| !name.is_empty())
            );
            let pay = json!({"quote_id": quote["id"]});
            let key = format!("asia-{n}");
            let (status, paid) = h
                .with_bearer(&korea, "POST", "/v1/hub/transfers", &key, Some(pay.clone()))
                .await;
            assert_eq!(
                (status, paid["state"].as_str()),
                (201, Some("committed")),
                "{paid}"
            );
            let (status, again) = h
                .with_bearer(&korea, "POST", "/v1/hub/transfers", &key, Some(pay))
                .await;
            assert_eq!((status, &again["id"]), (201, &paid["id"]), "{backend}");
        }
        verify(&store).await;
    }
}

#[tokio::test]
async fn members_pay_qr_codes_and_take_cash_and_an_operator_settles_the_window() {
    let engine = engine_with_logs();
    let dir = tempfile::tempdir().unwrap();
    for store in facepay_store::testing::stores(dir.path()).await.unwrap() {
        let backend = store.backend().name();
        let data = dir.path().join(backend);
        let config: Config = lenient(DecisionPolicy::default());
        let h = Harness::new(store.clone(), Arc::clone(&engine), &data, config).await;
        let keys: BTreeMap<String, String> = serde_json::from_str::<HubFile>(
            &std::fs::read_to_string(demo::hub_file(&data)).unwrap(),
        )
        .unwrap()
        .member_keys;
        let operator: OperatorFile =
            serde_json::from_str(&std::fs::read_to_string(demo::operator_file(&data)).unwrap())
                .unwrap();
        let korea = &keys[KOREA];
        let quote_body = json!({"payer_account": "kim", "qr": jakarta_qr()});

        // Refusals first: no key, a stranger's key, a broken QR code.
        let request = Request::post("/v1/hub/quotes")
            .header("content-type", "application/json")
            .body(Body::from(quote_body.to_string()))
            .unwrap();
        let (status, body, _) = h.send(request).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (401, Some("authorization_missing"))
        );
        let (status, body) = h
            .with_bearer(
                "fph_stranger",
                "POST",
                "/v1/hub/quotes",
                "",
                Some(quote_body.clone()),
            )
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (401, Some("hub_key_invalid"))
        );
        let mut broken = jakarta_qr();
        broken.replace_range(broken.len() - 4.., "0000");
        let (status, body) = h
            .with_bearer(
                korea,
                "POST",
                "/v1/hub/quotes",
                "",
                Some(json!({"payer_account": "kim", "qr": broken})),
            )
            .await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(body["error"]["code"], "qr_bad_crc", "{body}");

        // Kim's wallet quotes and pays the warung once.
        let (status, quote) = h
            .with_bearer(
                korea,
                "POST",
                "/v1/hub/quotes",
                "",
                Some(quote_body.clone()),
            )
            .await;
        assert_eq!(status, 201, "{backend}: {quote}");
        assert_eq!(quote["destination_minor"], 5_500_000);
        assert_eq!(quote["payee_name"], "Warung Makan");
        assert_eq!(quote["code"]["scheme"], "emvco", "{quote}");
        assert_eq!(quote["code"]["display_name"], "Warung Makan");
        assert_eq!(quote["code"]["warnings"], json!([]));

        // A PromptPay code as Thai apps print it, without a merchant name,
        // city or category code: quoted, with the proxy as the name to
        // show and what the scheme left out.
        let promptpay = promptpay_qr("0066812345678", (THAILAND, "siam-market")).unwrap();
        let body = json!({"payer_account": "kim", "qr": promptpay, "amount": "150.00"});
        let (status, thai) = h
            .with_bearer(korea, "POST", "/v1/hub/quotes", "", Some(body))
            .await;
        assert_eq!(status, 201, "{thai}");
        assert_eq!(thai["payee_name"], "Siam Market");
        assert_eq!(thai["destination_minor"], 15_000);
        assert_eq!(thai["code"]["scheme"], "promptpay");
        assert_eq!(thai["code"]["display_name"], "PromptPay +66812345678");
        let warnings = thai["code"]["warnings"].as_array().unwrap();
        let fields: Vec<u64> = warnings
            .iter()
            .filter_map(|w| w["field"].as_u64())
            .collect();
        assert_eq!(fields, [52, 59, 60], "{thai}");
        assert!(warnings.iter().all(|w| w["code"] == "qr_field_omitted"));
        let pay = json!({"quote_id": quote["id"]});
        let (status, body) = h
            .with_bearer(korea, "POST", "/v1/hub/transfers", "", Some(pay.clone()))
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("idempotency_key_missing"))
        );
        let (status, paid) = h
            .with_bearer(korea, "POST", "/v1/hub/transfers", "t1", Some(pay.clone()))
            .await;
        assert_eq!(status, 201, "{paid}");
        assert_eq!(paid["state"], "committed");
        assert_eq!(paid["iso20022_status"], "ACCC");
        assert!(
            paid["quote"].get("code").is_none(),
            "kept quotes hold no code"
        );
        let (status, again) = h
            .with_bearer(korea, "POST", "/v1/hub/transfers", "t1", Some(pay.clone()))
            .await;
        assert_eq!(
            (status, &again["id"]),
            (201, &paid["id"]),
            "the retry is the same transfer"
        );
        let (status, body) = h
            .with_bearer(korea, "POST", "/v1/hub/transfers", "t2", Some(pay.clone()))
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (409, Some("hub_quote_used"))
        );
        let (status, body) = h
            .with_bearer(
                &keys[INDONESIA],
                "POST",
                "/v1/hub/transfers",
                "t3",
                Some(pay),
            )
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (404, Some("hub_unknown_quote"))
        );
        let request = Request::post("/v1/hub/transfers")
            .header("authorization", format!("Bearer {korea}"))
            .header("idempotency-key", "t4")
            .header("content-type", "application/json")
            .body(Body::from("{\"quote_id\": "))
            .unwrap();
        let (status, body, _) = h.send(request).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("json_malformed"))
        );

        // Both networks see it, as JSON and as ISO 20022; others do not.
        let id = paid["id"].as_str().unwrap();
        let (status, _, xml) = raw(
            &h,
            &keys[INDONESIA],
            &format!("/v1/hub/transfers/{id}?format=pacs.008"),
        )
        .await;
        assert_eq!(status, 200);
        assert!(
            xml.contains("<IntrBkSttlmAmt Ccy=\"IDR\">55000.00</IntrBkSttlmAmt>"),
            "{xml}"
        );
        let (status, _, xml) = raw(
            &h,
            korea,
            &format!("/v1/hub/transfers/{id}?format=pacs.002"),
        )
        .await;
        assert_eq!(status, 200);
        assert!(xml.contains("<TxSts>ACCC</TxSts>"), "{xml}");
        let (status, _, _) = raw(&h, &keys[THAILAND], &format!("/v1/hub/transfers/{id}")).await;
        assert_eq!(status, 404);

        // Cash in Bangkok: a code, presented once, dispensed and confirmed.
        let (status, cash) = h
            .with_bearer(
                korea,
                "POST",
                "/v1/hub/cash-codes",
                "",
                Some(json!({"payer_account": "kim", "atm_network": THAILAND, "amount_minor": 100_000})),
            )
            .await;
        assert_eq!(status, 201, "{cash}");
        let withdrawal = json!({"code": cash["code"], "amount_minor": 100_000});
        let thailand = &keys[THAILAND];
        let (status, reserved) = h
            .with_bearer(
                thailand,
                "POST",
                "/v1/hub/withdrawals",
                "",
                Some(withdrawal.clone()),
            )
            .await;
        assert_eq!(
            (status, reserved["state"].as_str()),
            (201, Some("reserved")),
            "{reserved}"
        );
        // The ATM's retry is the same withdrawal.
        let (status, retry) = h
            .with_bearer(
                thailand,
                "POST",
                "/v1/hub/withdrawals",
                "",
                Some(withdrawal.clone()),
            )
            .await;
        assert_eq!((status, &retry["id"]), (201, &reserved["id"]), "{retry}");
        let confirm = format!(
            "/v1/hub/withdrawals/{}/confirm",
            reserved["id"].as_str().unwrap()
        );
        let (status, done) = h
            .with_bearer(
                thailand,
                "POST",
                &confirm,
                "",
                Some(json!({"dispensed": true})),
            )
            .await;
        assert_eq!(
            (status, done["state"].as_str()),
            (200, Some("committed")),
            "{done}"
        );

        let (status, body) = h
            .with_bearer(
                thailand,
                "POST",
                "/v1/hub/withdrawals",
                "",
                Some(withdrawal),
            )
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (409, Some("atm_code_used"))
        );

        // The operator closes the window: every currency nets to zero.
        let (status, body) = h
            .with_bearer(korea, "POST", "/v1/hub/windows/close", "", None)
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (401, Some("operator_key_invalid"))
        );
        let (status, window) = h
            .with_bearer(
                &operator.operator_key,
                "POST",
                "/v1/hub/windows/close",
                "",
                None,
            )
            .await;
        assert_eq!(
            (status, window["transfer_count"].as_i64()),
            (200, Some(2)),
            "{window}"
        );
        let path = format!("/v1/hub/windows/{}", window["id"].as_str().unwrap());
        let (status, report) = h
            .with_bearer(&operator.operator_key, "GET", &path, "", None)
            .await;
        assert_eq!(status, 200, "{report}");
        let mut sums: BTreeMap<String, i64> = BTreeMap::new();
        for p in report["positions"].as_array().unwrap() {
            *sums
                .entry(p["currency"].as_str().unwrap().to_owned())
                .or_default() += p["net_minor"].as_i64().unwrap();
        }
        assert_eq!(
            sums.keys().cloned().collect::<Vec<_>>(),
            ["IDR", "KRW", "THB"]
        );
        assert!(sums.values().all(|s| *s == 0), "{sums:?}");
        let costs: &Value = &report["costs"][0];
        assert!(
            costs["hub_minor"].as_i64() < costs["card_minor"].as_i64(),
            "{costs}"
        );
        // Each member sees its own part: Thailand's network is paid the cash.
        let (status, mine) = h
            .with_bearer(thailand, "GET", &format!("{path}/mine"), "", None)
            .await;
        assert_eq!(status, 200, "{mine}");
        let positions = mine["positions"].as_array().unwrap();
        assert_eq!(positions.len(), 1, "{mine}");
        assert_eq!(positions[0]["participant"], THAILAND);
        assert_eq!(positions[0]["net_minor"], -100_000);
        assert_eq!(mine["transfers"].as_array().unwrap().len(), 1);
        let settle = format!("{path}/settle");
        let (status, settled) = h
            .with_bearer(&operator.operator_key, "POST", &settle, "", None)
            .await;
        assert_eq!(status, 200, "{settled}");
        assert_eq!(settled["window"]["state"], "settled", "{settled}");
        let instructions = settled["instructions"].as_array().unwrap();
        assert!(!instructions.is_empty());
        assert!(
            instructions.iter().all(|i| i["state"] == "confirmed"),
            "{settled}"
        );
        let (status, body) = h
            .with_bearer(&operator.operator_key, "POST", &settle, "", None)
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (409, Some("hub_window_not_closed"))
        );
        let (status, body) = h
            .with_bearer(
                &operator.operator_key,
                "GET",
                "/v1/hub/windows/win_nope",
                "",
                None,
            )
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (404, Some("hub_unknown_window"))
        );
        verify(&store).await;
    }
}

#[tokio::test]
async fn a_facepay_user_pays_abroad_with_the_card_on_file_and_a_foreign_wallet_pays_a_facepay_merchant()
 {
    let engine = engine_with_logs();
    let dir = tempfile::tempdir().unwrap();
    for store in facepay_store::testing::stores(dir.path()).await.unwrap() {
        let backend = store.backend().name();
        let data = dir.path().join(backend);
        let h = Harness::new(
            store.clone(),
            Arc::clone(&engine),
            &data,
            lenient(DecisionPolicy::default()),
        )
        .await;
        let keys = member_keys(&data);
        assert!(
            !keys.contains_key(FACEPAY_MEMBER_ID),
            "facepay's own payers are users, never a key"
        );

        // Outbound: the user, signed in to the app, pays the warung in
        // Jakarta with the card on file.
        let (status, enrolled, _) = h
            .enrol(
                "e1",
                &enrolment(
                    "+821012345678",
                    "face_recognition/obama.jpg",
                    "4242424242424242",
                ),
            )
            .await;
        assert_eq!(status, 201, "{backend}: {enrolled}");
        let token = enrolled["token"].as_str().unwrap();
        let (status, quote) = h
            .with_bearer(
                token,
                "POST",
                "/v1/users/me/hub/quotes",
                "",
                Some(json!({"qr": jakarta_qr()})),
            )
            .await;
        assert_eq!(status, 201, "{quote}");
        assert_eq!(quote["source_currency"], "KRW");
        assert_eq!(quote["payer_network"], FACEPAY_MEMBER_ID);
        let out_minor = quote["source_minor"].as_i64().unwrap();
        let mine = json!({"quote_id": quote["id"]});

        // Another user cannot pay it, nor can a member network.
        let (status, broke, _) = h
            .enrol(
                "e2",
                &enrolment(
                    "+821087654321",
                    "face_recognition/biden.jpg",
                    "4000000000009995",
                ),
            )
            .await;
        assert_eq!(status, 201, "{backend}: {broke}");
        let other = broke["token"].as_str().unwrap();
        let (status, body) = h
            .with_bearer(
                other,
                "POST",
                "/v1/users/me/hub/transfers",
                "x1",
                Some(mine.clone()),
            )
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (404, Some("hub_unknown_quote"))
        );
        let (status, body) = h
            .with_bearer(
                &keys[INDONESIA],
                "POST",
                "/v1/hub/transfers",
                "x2",
                Some(mine.clone()),
            )
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (404, Some("hub_unknown_quote"))
        );
        let (status, paid) = h
            .with_bearer(
                token,
                "POST",
                "/v1/users/me/hub/transfers",
                "out-1",
                Some(mine),
            )
            .await;
        assert_eq!(
            (status, paid["state"].as_str()),
            (201, Some("committed")),
            "{paid}"
        );

        // A card the issuer declines: reversed, nothing held.
        let (status, quote) = h
            .with_bearer(
                other,
                "POST",
                "/v1/users/me/hub/quotes",
                "",
                Some(json!({"qr": jakarta_qr()})),
            )
            .await;
        assert_eq!(status, 201, "{quote}");
        let (status, declined) = h
            .with_bearer(
                other,
                "POST",
                "/v1/users/me/hub/transfers",
                "out-2",
                Some(json!({"quote_id": quote["id"]})),
            )
            .await;
        assert_eq!(status, 201, "{declined}");
        assert_eq!(declined["state"], "reversed");
        assert_eq!(declined["reason"], "network_insufficient_funds");

        // Inbound: Budi's Indonesian wallet pays the demo cafe's static code.
        let cafe = merchant_qr(
            (FACEPAY_MEMBER_ID, demo::MERCHANT_ID),
            ("Demo Coffee", "Seoul", "KR"),
            410,
            None,
            "T-1",
        )
        .unwrap();
        let (status, quote) = h
            .with_bearer(
                &keys[INDONESIA],
                "POST",
                "/v1/hub/quotes",
                "",
                Some(json!({"payer_account": "budi", "qr": cafe, "amount": "4500"})),
            )
            .await;
        assert_eq!(status, 201, "{quote}");
        assert_eq!(quote["payee_name"], "Demo Coffee");
        let (status, paid) = h
            .with_bearer(
                &keys[INDONESIA],
                "POST",
                "/v1/hub/transfers",
                "in-1",
                Some(json!({"quote_id": quote["id"]})),
            )
            .await;
        assert_eq!(
            (status, paid["state"].as_str()),
            (201, Some("committed")),
            "{paid}"
        );

        // facepay's books: the issuer owes what facepay owes the hub for
        // the user's payment, and the hub owes what the cafe is owed.
        let mut conn = store.acquire().await.unwrap();
        let balances = facepay_store::ledger::balances(&mut conn).await.unwrap();
        let balance = |id: &str| {
            balances
                .iter()
                .find(|b| b.account_id == id)
                .map(|b| b.balance_minor)
        };
        assert_eq!(balance("member:hub_payable:KRW"), Some(-out_minor));
        assert_eq!(balance("member:hub_pending:KRW"), Some(0), "no hold left");
        assert_eq!(balance("member:hub_receivable:KRW"), Some(4_500));
        drop(conn);
        verify(&store).await;
    }
}

/// A sanctions list naming the Jakarta warung, as `docs/hub.md` describes.
const SANCTIONS: &str = "# test list\nSDN-42|Warung Makan\n";

#[tokio::test]
async fn an_operator_onboards_a_member_whose_cap_refuses_before_reserve_and_releases_a_screening_hold()
 {
    let engine = engine_with_logs();
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("sanctions.txt");
    std::fs::write(&list, SANCTIONS).unwrap();
    for store in facepay_store::testing::stores(dir.path()).await.unwrap() {
        let backend = store.backend().name();
        let data = dir.path().join(backend);
        let env = vec![(
            "FACEPAY_HUB__SANCTIONS_LIST".to_owned(),
            list.display().to_string(),
        )];
        let config: Config = lenient(DecisionPolicy::default());
        let h = Harness::with_env(store.clone(), Arc::clone(&engine), &data, config, env).await;
        let keys = member_keys(&data);
        let operator: OperatorFile =
            serde_json::from_str(&std::fs::read_to_string(demo::operator_file(&data)).unwrap())
                .unwrap();
        let op = operator.operator_key.as_str();
        let korea = keys[KOREA].as_str();
        let member = format!("/v1/hub/members/{KOREA}");
        let terms = |cap: i64, per_minute: i64| {
            json!({"currency": "KRW", "settlement_account": "KR-SETTLE-001",
                   "net_debit_cap_minor": cap, "requests_per_minute": per_minute})
        };

        // Onboarding: the network's own currency only, a network the hub runs.
        let (status, body) = h
            .with_bearer(op, "PUT", &member, "", Some(terms(6_000, 100)))
            .await;
        assert_eq!(status, 200, "{backend}: {body}");
        assert_eq!(body["exposure_minor"], 0);
        let mut wrong = terms(6_000, 100);
        wrong["currency"] = json!("IDR");
        let (status, body) = h.with_bearer(op, "PUT", &member, "", Some(wrong)).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (422, Some("hub_bad_member"))
        );
        let (status, body) = h
            .with_bearer(
                op,
                "PUT",
                "/v1/hub/members/xx.nowhere",
                "",
                Some(terms(1, 1)),
            )
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (404, Some("hub_unknown_network"))
        );
        let (status, body) = h
            .with_bearer(korea, "PUT", &member, "", Some(terms(1, 1)))
            .await;
        assert_eq!(status, 401, "a member cannot set its own terms: {body}");

        // Funds in, once per key.
        let funds = format!("{member}/funds");
        let deposit = json!({"direction": "in", "amount_minor": 50_000});
        let (status, first) = h
            .with_bearer(op, "POST", &funds, "f-1", Some(deposit.clone()))
            .await;
        assert_eq!(status, 201, "{first}");
        let (status, again) = h
            .with_bearer(op, "POST", &funds, "f-1", Some(deposit))
            .await;
        assert_eq!((status, &again["id"]), (201, &first["id"]));

        // Korea's wallet finds the Bangkok market by phone, sees its name,
        // and pays it.
        let lookup =
            |alias: &str| json!({"payee_network": THAILAND, "kind": "phone", "alias": alias});
        let (status, payee) = h
            .with_bearer(
                korea,
                "POST",
                "/v1/hub/aliases/lookup",
                "",
                Some(lookup("+66812345678")),
            )
            .await;
        assert_eq!(status, 200, "{payee}");
        assert_eq!(payee["display_name"], "Siam Market");
        assert_eq!(payee["currency"], "THB");
        let (status, body) = h
            .with_bearer(
                korea,
                "POST",
                "/v1/hub/aliases/lookup",
                "",
                Some(lookup("+66000000000")),
            )
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (404, Some("network_unknown_account"))
        );
        let (status, quote) = h
            .with_bearer(
                korea,
                "POST",
                "/v1/hub/account-quotes",
                "",
                Some(json!({"payer_account": "kim", "payee_network": THAILAND,
                            "payee_account": payee["account"], "amount": "35.00"})),
            )
            .await;
        assert_eq!(status, 201, "{quote}");
        assert_eq!(quote["payee_name"], "Siam Market");
        let alias_cost = quote["source_minor"].as_i64().unwrap();
        let pay = |id: &Value| json!({"quote_id": id});
        let (status, paid) = h
            .with_bearer(
                korea,
                "POST",
                "/v1/hub/transfers",
                "t-1",
                Some(pay(&quote["id"])),
            )
            .await;
        assert_eq!(
            (status, paid["state"].as_str()),
            (201, Some("committed")),
            "{paid}"
        );

        // The Jakarta code would take Korea past its cap: refused, nothing
        // reserved, the quote still good once the cap is raised.
        let (status, jakarta) = h
            .with_bearer(
                korea,
                "POST",
                "/v1/hub/quotes",
                "",
                Some(json!({"payer_account": "kim", "qr": jakarta_qr()})),
            )
            .await;
        assert_eq!(status, 201, "{jakarta}");
        let (status, body) = h
            .with_bearer(
                korea,
                "POST",
                "/v1/hub/transfers",
                "t-2",
                Some(pay(&jakarta["id"])),
            )
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (409, Some("hub_member_cap")),
            "{body}"
        );
        let (status, body) = h
            .with_bearer(op, "PUT", &member, "", Some(terms(20_000, 100)))
            .await;
        assert_eq!(status, 200, "{body}");

        // Paid again, screening matches the warung: held, not refused.
        let (status, held) = h
            .with_bearer(
                korea,
                "POST",
                "/v1/hub/transfers",
                "t-2",
                Some(pay(&jakarta["id"])),
            )
            .await;
        assert_eq!(
            (status, held["state"].as_str()),
            (201, Some("held")),
            "{held}"
        );
        let path = format!("/v1/hub/transfers/{}", held["id"].as_str().unwrap());
        let (status, body) = h
            .with_bearer(korea, "POST", &format!("{path}/release"), "", None)
            .await;
        assert_eq!(status, 401, "only an operator decides: {body}");
        let (status, released) = h
            .with_bearer(op, "POST", &format!("{path}/release"), "", None)
            .await;
        assert_eq!(
            (status, released["state"].as_str()),
            (200, Some("committed")),
            "{released}"
        );
        let (status, body) = h
            .with_bearer(op, "POST", &format!("{path}/refuse"), "", None)
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (409, Some("hub_transfer_not_held"))
        );

        let (status, members) = h.with_bearer(op, "GET", "/v1/hub/members", "", None).await;
        assert_eq!(status, 200, "{members}");
        let exposure = alias_cost + jakarta["source_minor"].as_i64().unwrap();
        assert_eq!(members[0]["exposure_minor"], exposure, "{members}");
        assert_eq!(members[0]["funds_minor"], 50_000);

        // Settled through the simulated bank: Korea owes nothing after.
        let (status, window) = h
            .with_bearer(op, "POST", "/v1/hub/windows/close", "", None)
            .await;
        assert_eq!(status, 200, "{window}");
        let settle = format!("/v1/hub/windows/{}/settle", window["id"].as_str().unwrap());
        let (status, settled) = h.with_bearer(op, "POST", &settle, "", None).await;
        assert_eq!(
            (status, settled["window"]["state"].as_str()),
            (200, Some("settled")),
            "{settled}"
        );
        let korea_leg = settled["instructions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["participant"] == format!("hub:position:{KOREA}:KRW"))
            .unwrap();
        assert_eq!(korea_leg["net_minor"], exposure);
        assert_eq!(korea_leg["settlement_account"], "KR-SETTLE-001");
        assert_eq!(korea_leg["state"], "confirmed");
        let (_, members) = h.with_bearer(op, "GET", "/v1/hub/members", "", None).await;
        assert_eq!(members[0]["exposure_minor"], 0, "{members}");
        let retry = settle.replace("/settle", "/retry-settlement");
        let (status, body) = h.with_bearer(op, "POST", &retry, "", None).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (409, Some("hub_window_not_closed"))
        );

        // One request a minute: the next are refused with a time to wait.
        h.with_bearer(op, "PUT", &member, "", Some(terms(20_000, 1)))
            .await;
        let mut codes = Vec::new();
        for _ in 0..3 {
            let (status, body) = h
                .with_bearer(
                    korea,
                    "POST",
                    "/v1/hub/aliases/lookup",
                    "",
                    Some(lookup("+66812345678")),
                )
                .await;
            codes.push((status, body["error"]["code"].as_str().map(str::to_owned)));
        }
        assert!(
            codes.contains(&(429, Some("hub_rate_limited".to_owned()))),
            "{codes:?}"
        );
        verify(&store).await;
    }
}
