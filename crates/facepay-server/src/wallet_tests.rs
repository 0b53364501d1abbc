//! The wallet over HTTP, on SQLite and (when CI gives one) PostgreSQL:
//! cards added, made the default, replaced and removed without enrolling
//! the face again; the next face payment uses the default; a wallet left
//! empty stops face payments with a code and charges nothing; another
//! user's token can neither see nor touch a card; and a replaced card's
//! shares are gone from the core's store and from the vault's.

use std::path::Path;
use std::sync::Arc;

use facepay_face::FaceEngine;
use facepay_payments::DecisionPolicy;
use facepay_store::{Backend, Store, ledger};
use serde_json::{Value, json};

use crate::flow_tests::{
    Harness, engine_with_logs, enrolment, files_under, lenient, payment, verify,
};

const OBAMA_CARD: &str = "4242424242424242";
const MASTERCARD: &str = "5555555555554444";
const RENEWED_VISA: &str = "4111111111111111";

async fn harness(store: &Store, engine: &Arc<FaceEngine>, data: &Path) -> Harness {
    Harness::new(
        store.clone(),
        Arc::clone(engine),
        data,
        lenient(DecisionPolicy::default()),
    )
    .await
}

fn card(number: &str, expiry_month: u32, expiry_year: u32) -> Value {
    json!({
        "number": number, "expiry_month": expiry_month, "expiry_year": expiry_year,
        "security_code": facepay_connector::simulator::printed_security_code(number),
    })
}

fn code(body: &Value) -> Option<&str> {
    body["error"]["code"].as_str()
}

/// The user's token and user id, enrolled with `number`.
async fn enrol(h: &Harness, key: &str, phone: &str, photo: &str, number: &str) -> (String, String) {
    let (status, body, _) = h.enrol(key, &enrolment(phone, photo, number)).await;
    assert_eq!(status, 201, "{body}");
    (
        body["token"].as_str().unwrap().to_owned(),
        body["payment_method"]["id"].as_str().unwrap().to_owned(),
    )
}

/// The ids of the user's cards, the default first, with their flags.
async fn cards(h: &Harness, token: &str) -> Vec<(String, bool, bool)> {
    let (status, body) = h
        .with_bearer(token, "GET", "/v1/users/me/cards", "-", None)
        .await;
    assert_eq!(status, 200, "{body}");
    body["cards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["id"].as_str().unwrap().to_owned(),
                c["is_default"].as_bool().unwrap(),
                c["expires_soon"].as_bool().unwrap(),
            )
        })
        .collect()
}

/// The card the latest payment was made with, as the store recorded it.
async fn last_paid_with(store: &Store) -> String {
    let mut conn = store.acquire().await.unwrap();
    let (id,): (String,) = sqlx::query_as(
        "SELECT payment_method_id FROM payments ORDER BY created_at_ms DESC, id DESC LIMIT 1",
    )
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    id
}

async fn pay_ok(h: &Harness, key: &str) {
    let (status, body, _) = h
        .pay(key, &payment("face_recognition/obama3.jpg", "100"))
        .await;
    assert_eq!(status, 201, "{body}");
}

async fn payment_count(store: &Store) -> i64 {
    let mut conn = store.acquire().await.unwrap();
    ledger::verify(&mut conn).await.unwrap().payments
}

/// This month and the next, as (month, year), by the app's clock.
fn next_month(h: &Harness) -> (u32, u32) {
    let (year, month, _) = facepay_connector::card::utc_date(h.now_ms());
    let (year, month) = (u32::from(year), u32::from(month));
    if month == 12 {
        (1, year + 1)
    } else {
        (month + 1, year)
    }
}

#[tokio::test]
async fn cards_are_added_made_default_replaced_and_removed() {
    let engine = engine_with_logs();
    let dir = tempfile::tempdir().unwrap();
    for store in facepay_store::testing::stores(dir.path()).await.unwrap() {
        let backend = store.backend().name();
        let data = dir.path().join(backend);
        let h = harness(&store, &engine, &data).await;
        let (token, first) = enrol(
            &h,
            "e1",
            "+821012345678",
            "face_recognition/obama.jpg",
            OBAMA_CARD,
        )
        .await;
        assert_eq!(cards(&h, &token).await, vec![(first.clone(), true, false)]);

        // A card expiring next month is added, not the default yet; its
        // replay answers the same; the same card twice is refused.
        let (month, year) = next_month(&h);
        let add = json!({ "card": card(MASTERCARD, month, year) });
        let path = "/v1/users/me/cards";
        let (status, added) = h
            .with_bearer(&token, "POST", path, "c1", Some(add.clone()))
            .await;
        assert_eq!(status, 201, "{backend}: {added}");
        assert_eq!(
            (&added["is_default"], &added["expires_soon"]),
            (&json!(false), &json!(true))
        );
        let second = added["id"].as_str().unwrap().to_owned();
        let (status, replay) = h
            .with_bearer(&token, "POST", path, "c1", Some(add.clone()))
            .await;
        assert_eq!((status, &replay), (201, &added), "{backend}");
        let (status, twice) = h.with_bearer(&token, "POST", path, "c2", Some(add)).await;
        assert_eq!((status, code(&twice)), (409, Some("card_already_added")));
        let (status, me) = h
            .with_bearer(&token, "GET", "/v1/users/me", "-", None)
            .await;
        assert_eq!(status, 200);
        let soon: Vec<_> = me["payment_methods"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["expires_soon"].as_bool().unwrap())
            .collect();
        assert_eq!(soon, vec![false, true], "{backend}: the app shows it");

        // Made the default, it pays.
        let default_path = format!("/v1/users/me/cards/{second}/default");
        let (status, body) = h
            .with_bearer(&token, "POST", &default_path, "d1", None)
            .await;
        assert_eq!((status, &body["is_default"]), (200, &json!(true)), "{body}");
        assert_eq!(
            cards(&h, &token).await,
            vec![(second.clone(), true, true), (first.clone(), false, false)]
        );
        pay_ok(&h, "t1").await;
        assert_eq!(last_paid_with(&store).await, second, "{backend}");

        // Replaced by a renewed card, which takes its default and pays.
        let replace = json!({ "card": card(RENEWED_VISA, 12, 2031) });
        let (status, renewed) = h
            .with_bearer(
                &token,
                "POST",
                &format!("/v1/users/me/cards/{second}/replace"),
                "r1",
                Some(replace),
            )
            .await;
        assert_eq!(status, 201, "{backend}: {renewed}");
        let third = renewed["id"].as_str().unwrap().to_owned();
        assert_eq!(
            cards(&h, &token).await,
            vec![(third.clone(), true, false), (first.clone(), false, false)]
        );
        pay_ok(&h, "t2").await;
        assert_eq!(last_paid_with(&store).await, third, "{backend}");

        // Both removed: the next face payment is refused, nothing charged.
        for (i, id) in [&first, &third].into_iter().enumerate() {
            let (status, body) = h
                .with_bearer(
                    &token,
                    "DELETE",
                    &format!("/v1/users/me/cards/{id}"),
                    &format!("x{i}"),
                    None,
                )
                .await;
            assert_eq!(status, 200, "{backend}: {body}");
            assert_eq!(body["cards_left"], json!(1 - i as i64), "{backend}");
        }
        assert!(cards(&h, &token).await.is_empty());
        let before = payment_count(&store).await;
        let (status, body, _) = h
            .pay("t3", &payment("face_recognition/obama3.jpg", "100"))
            .await;
        assert_eq!(
            (status, code(&body)),
            (422, Some("no_payment_method")),
            "{backend}: {body}"
        );
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("app"), "{backend}: {message}");
        assert_eq!(payment_count(&store).await, before, "{backend}");

        // A card added to an empty wallet is its default, and pays again.
        let add = json!({ "card": card(MASTERCARD, 12, 2031) });
        let (status, body) = h.with_bearer(&token, "POST", path, "c3", Some(add)).await;
        assert_eq!((status, &body["is_default"]), (201, &json!(true)), "{body}");
        pay_ok(&h, "t4").await;
        verify(&store).await;
    }
}

#[tokio::test]
async fn another_users_token_cannot_see_or_touch_a_card() {
    let engine = engine_with_logs();
    let dir = tempfile::tempdir().unwrap();
    for store in facepay_store::testing::stores(dir.path()).await.unwrap() {
        let backend = store.backend().name();
        let data = dir.path().join(backend);
        let h = harness(&store, &engine, &data).await;
        let photo = "face_recognition/obama.jpg";
        let (obama, card_id) = enrol(&h, "e1", "+821012345678", photo, OBAMA_CARD).await;
        let photo = "face_recognition/biden.jpg";
        let (biden, _) = enrol(&h, "e2", "+821098765432", photo, MASTERCARD).await;
        let listed = cards(&h, &biden).await;
        assert!(listed.iter().all(|(id, _, _)| *id != card_id), "{backend}");
        let replace = json!({ "card": card(RENEWED_VISA, 12, 2031) });
        let attempts = [
            (
                "POST",
                format!("/v1/users/me/cards/{card_id}/default"),
                None,
            ),
            ("DELETE", format!("/v1/users/me/cards/{card_id}"), None),
            (
                "POST",
                format!("/v1/users/me/cards/{card_id}/replace"),
                Some(replace),
            ),
        ];
        for (i, (method, path, body)) in attempts.into_iter().enumerate() {
            let key = format!("w{i}");
            let (status, answer) = h.with_bearer(&biden, method, &path, &key, body).await;
            assert_eq!(
                (status, code(&answer)),
                (404, Some("card_not_found")),
                "{backend}: {method} {path}"
            );
        }
        assert_eq!(
            cards(&h, &obama).await,
            vec![(card_id.clone(), true, false)],
            "{backend}: nothing changed"
        );
        pay_ok(&h, "t1").await;
        assert_eq!(last_paid_with(&store).await, card_id, "{backend}");
    }
}

/// Many changes to one wallet at once: new defaults back and forth, and
/// the same card added under several keys. Each is answered with a code
/// (none fails), the card goes in once, and one card is the default.
#[tokio::test]
async fn concurrent_changes_to_one_wallet_keep_one_default() {
    const DEFAULTS: usize = 16;
    const ADDS: usize = 4;
    let engine = engine_with_logs();
    let dir = tempfile::tempdir().unwrap();
    for store in facepay_store::testing::stores(dir.path()).await.unwrap() {
        let backend = store.backend().name();
        let data = dir.path().join(backend);
        let h = Arc::new(harness(&store, &engine, &data).await);
        let photo = "face_recognition/obama.jpg";
        let (token, first) = enrol(&h, "e1", "+821012345678", photo, OBAMA_CARD).await;
        let add = json!({ "card": card(MASTERCARD, 12, 2031) });
        let (status, added) = h
            .with_bearer(&token, "POST", "/v1/users/me/cards", "c0", Some(add))
            .await;
        assert_eq!(status, 201, "{backend}: {added}");
        let second = added["id"].as_str().unwrap().to_owned();

        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..DEFAULTS {
            let (h, token) = (Arc::clone(&h), token.clone());
            let id = if i % 2 == 0 { &second } else { &first }.clone();
            tasks.spawn(async move {
                let path = format!("/v1/users/me/cards/{id}/default");
                h.with_bearer(&token, "POST", &path, &format!("d{i}"), None)
                    .await
            });
        }
        for i in 0..ADDS {
            let (h, token) = (Arc::clone(&h), token.clone());
            let add = json!({ "card": card(RENEWED_VISA, 12, 2031) });
            tasks.spawn(async move {
                h.with_bearer(
                    &token,
                    "POST",
                    "/v1/users/me/cards",
                    &format!("a{i}"),
                    Some(add),
                )
                .await
            });
        }
        let mut added = 0;
        while let Some(joined) = tasks.join_next().await {
            let (status, body) = joined.unwrap();
            match status {
                200 => assert_eq!(body["is_default"], json!(true), "{backend}: {body}"),
                201 => added += 1,
                409 => assert_eq!(code(&body), Some("card_already_added"), "{backend}"),
                _ => panic!("{backend}: {status} {body}"),
            }
        }
        assert_eq!(added, 1, "{backend}: the same card goes in once");
        let held = cards(&h, &token).await;
        assert_eq!(held.len(), 3, "{backend}: {held:?}");
        let defaults = held.iter().filter(|(_, is_default, _)| *is_default).count();
        assert_eq!(defaults, 1, "{backend}: {held:?}");
    }
}

/// What a stolen copy of both stores would hold of a card: the core's
/// sealed share and its wrapped data key, the vault's token, and the
/// vault's sealed share and its wrapped key.
struct CardAtRest {
    key_id: String,
    secrets: Vec<Vec<u8>>,
}

async fn card_at_rest(store: &Store, vault: &Store, method_id: &str) -> CardAtRest {
    let mut conn = store.acquire().await.unwrap();
    let method = facepay_store::parties::payment_method(&mut conn, method_id)
        .await
        .unwrap()
        .unwrap();
    let key_id = method.key_id.clone().unwrap();
    let (wrapped,): (Vec<u8>,) = sqlx::query_as("SELECT wrapped FROM data_keys WHERE id = $1")
        .bind(&key_id)
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    let token = method.vault_token.clone().unwrap();
    let mut vault_conn = vault.acquire().await.unwrap();
    let share = facepay_store::vault::share(&mut vault_conn, &token)
        .await
        .unwrap()
        .unwrap();
    CardAtRest {
        key_id,
        secrets: vec![
            method.ciphertext.unwrap(),
            wrapped,
            token.into_bytes(),
            share.ciphertext,
            share.wrapped_key,
        ],
    }
}

/// Which of `secrets` the stores hold anywhere: in the SQLite files under
/// `dir` byte for byte, or in a PostgreSQL dump (binary columns as hex).
async fn found(store: &Store, vault: &Store, dir: &Path, secrets: &[Vec<u8>]) -> Vec<usize> {
    let haystack = match store.backend() {
        Backend::Sqlite => files_under(dir)
            .into_iter()
            .flat_map(|file| std::fs::read(file).unwrap())
            .collect::<Vec<u8>>(),
        Backend::Postgres => {
            let mut dump = facepay_store::testing::postgres_dump(store).await.unwrap();
            dump.push_str(&facepay_store::testing::postgres_dump(vault).await.unwrap());
            dump.into_bytes()
        }
    };
    let holds = |needle: &[u8]| haystack.windows(needle.len()).any(|w| w == needle);
    (0..secrets.len())
        .filter(|&i| holds(&secrets[i]) || holds(hex::encode(&secrets[i]).as_bytes()))
        .collect()
}

#[tokio::test]
async fn a_replaced_cards_shares_are_gone_from_both_stores() {
    let engine = engine_with_logs();
    let dir = tempfile::tempdir().unwrap();
    for store in facepay_store::testing::stores(dir.path()).await.unwrap() {
        let backend = store.backend().name();
        let data = dir.path().join(backend);
        let h = harness(&store, &engine, &data).await;
        let vault = facepay_store::testing::vault_beside(&store, &data.join("vault"))
            .await
            .unwrap();
        let photo = "face_recognition/obama.jpg";
        let (token, old_id) = enrol(&h, "e1", "+821012345678", photo, OBAMA_CARD).await;
        let old = card_at_rest(&store, &vault, &old_id).await;
        store.scrub().await.unwrap();
        vault.scrub().await.unwrap();
        let all: Vec<usize> = (0..old.secrets.len()).collect();
        let before = found(&store, &vault, dir.path(), &old.secrets).await;
        assert_eq!(before, all, "{backend}: the scan sees the card at rest");

        let replace = json!({ "card": card(RENEWED_VISA, 12, 2031) });
        let path = format!("/v1/users/me/cards/{old_id}/replace");
        let (status, body) = h
            .with_bearer(&token, "POST", &path, "r1", Some(replace))
            .await;
        assert_eq!(status, 201, "{backend}: {body}");
        let new_id = body["id"].as_str().unwrap().to_owned();
        let new = card_at_rest(&store, &vault, &new_id).await;

        // As an operator's scrub leaves the files (docs/operations.md): no
        // old page of either database is left in a log or free space.
        store.scrub().await.unwrap();
        vault.scrub().await.unwrap();
        let after = found(&store, &vault, dir.path(), &old.secrets).await;
        assert!(after.is_empty(), "{backend}: old card at rest: {after:?}");
        let mut conn = store.acquire().await.unwrap();
        let key: Option<(String,)> = sqlx::query_as("SELECT id FROM data_keys WHERE id = $1")
            .bind(&old.key_id)
            .fetch_optional(&mut *conn)
            .await
            .unwrap();
        assert!(key.is_none(), "{backend}: the old share's data key");
        drop(conn);
        let kept = found(&store, &vault, dir.path(), &new.secrets).await;
        assert_eq!(kept, all, "{backend}: the new card is whole");
        pay_ok(&h, "t1").await;
        assert_eq!(last_paid_with(&store).await, new_id, "{backend}");
    }
}
