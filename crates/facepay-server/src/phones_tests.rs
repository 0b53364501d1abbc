//! Phone numbers at rest, on SQLite and (when CI gives one) PostgreSQL: an
//! enrolled number is kept as a keyed hash and a sealed copy, never in
//! clear, and still holds one account, confirms its payer in a step-up and
//! scopes its enrolment's idempotency key; numbers an earlier release
//! stored in clear are converted at start, and deleting the user clears
//! what is left.

use std::path::Path;
use std::sync::Arc;

use facepay_face::FaceEngine;
use facepay_payments::{DecisionPolicy, PhonesSealed};
use facepay_store::Store;
use serde_json::{Value, json};

use crate::flow_tests::{Harness, engine_with_logs, enrolment, lenient, payment, verify};
use crate::fraud_tests::rules;
use crate::idempotency_tests::everything_stored;

const OBAMA_PHONE: &str = "+821012345678";
const BIDEN_PHONE: &str = "+821098765432";

fn obama() -> Value {
    enrolment(
        OBAMA_PHONE,
        "face_recognition/obama.jpg",
        "4242424242424242",
    )
}

fn biden(phone: &str) -> Value {
    enrolment(phone, "face_recognition/biden.jpg", "5555555555554444")
}

/// A third person, for a number already taken (a face already enrolled is
/// refused before its number is looked at).
fn salley(phone: &str) -> Value {
    enrolment(
        phone,
        "johns/John_Salley/000179_02159509.jpg",
        "5555555555554444",
    )
}

async fn harness(store: &Store, engine: &Arc<FaceEngine>, data: &Path) -> Harness {
    let config = lenient(DecisionPolicy::default());
    Harness::new(store.clone(), Arc::clone(engine), data, config).await
}

/// Every way a number could be written: with and without its `+`, in its
/// national form (the country code 82 for a trunk 0, and without it), and
/// as the hex of its digits (a binary column in a dump). Each is longer
/// than the last four digits, which are kept in clear.
fn forms(phone: &str) -> Vec<String> {
    let international = phone.trim_start_matches('+');
    let national = international.strip_prefix("82").expect("a Korean number");
    vec![
        phone.to_owned(),
        international.to_owned(),
        format!("0{national}"),
        national.to_owned(),
        hex::encode(international),
    ]
}

/// Which forms of each of `phones` the store holds anywhere, by number.
async fn found_in<P: AsRef<str>>(
    store: &Store,
    scanned: &Path,
    phones: impl IntoIterator<Item = P>,
) -> Vec<(String, Vec<String>)> {
    let stored = everything_stored(store, scanned).await;
    assert!(stored.len() > 1_000, "the scan read the store");
    phones
        .into_iter()
        .map(|phone| {
            let found = forms(phone.as_ref())
                .into_iter()
                .filter(|form| memchr::memmem::find(stored.as_bytes(), form.as_bytes()).is_some())
                .collect();
            (phone.as_ref().to_owned(), found)
        })
        .collect()
}

/// The numbers of `phones` the store holds in some form, with the forms.
async fn at_rest<P: AsRef<str>>(
    store: &Store,
    scanned: &Path,
    phones: impl IntoIterator<Item = P>,
) -> Vec<(String, Vec<String>)> {
    let mut found = found_in(store, scanned, phones).await;
    found.retain(|(_, forms)| !forms.is_empty());
    found
}

fn code(body: &Value) -> Option<&str> {
    body["error"]["code"].as_str()
}

/// The user's page: their phone number (opened from its seal) and the ids
/// of their payments.
async fn page(h: &Harness, token: &str) -> (Option<String>, Vec<String>) {
    let (status, me) = h.with_bearer(token, "GET", "/v1/users/me", "-", None).await;
    assert_eq!(status, 200, "{me}");
    let payments = me["payments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect();
    (me["phone"].as_str().map(str::to_owned), payments)
}

/// One row's phone columns: the number in clear, its hash, whether a
/// sealed copy is there, and its data key.
async fn phone_columns(
    store: &Store,
    user_id: &str,
) -> (Option<String>, Option<String>, bool, Option<String>) {
    let (phone, hash, key_id, sealed): (Option<String>, Option<String>, Option<String>, i64) =
        sqlx::query_as(
            "SELECT phone, phone_hash, phone_key_id, \
             CASE WHEN phone_ciphertext IS NULL THEN 0 ELSE 1 END FROM users WHERE id = $1",
        )
        .bind(user_id)
        .fetch_one(store.pool())
        .await
        .unwrap();
    (phone, hash, sealed == 1, key_id)
}

#[tokio::test]
async fn an_enrolled_phone_is_kept_hashed_and_sealed_and_never_in_clear() {
    let engine = engine_with_logs();
    let dir = tempfile::tempdir().unwrap();
    for store in facepay_store::testing::stores(dir.path()).await.unwrap() {
        let backend = store.backend().name();
        let data = dir.path().join(backend);
        let h = harness(&store, &engine, &data).await;
        let (status, first, _) = h.enrol("e1", &obama()).await;
        assert_eq!(status, 201, "{backend}: {first}");
        let user_id = first["user_id"].as_str().unwrap().to_owned();
        let (status, replay, _) = h.enrol("e1", &obama()).await;
        assert_eq!(status, 201, "{backend}: the scope is the hash's: {replay}");
        assert_eq!(replay["user_id"], first["user_id"], "{backend}");
        let token = replay["token"].as_str().unwrap().to_owned();

        // One number, one account, however it is written.
        for (key, phone) in [("e2", OBAMA_PHONE), ("e3", "821012345678")] {
            let (status, body, _) = h.enrol(key, &biden(phone)).await;
            assert_eq!(
                (status, code(&body)),
                (409, Some("phone_already_enrolled")),
                "{backend}: {phone}: {body}"
            );
        }

        // The user sees their number; the store holds its hash and a seal.
        assert_eq!(
            page(&h, &token).await.0.as_deref(),
            Some(OBAMA_PHONE),
            "{backend}"
        );
        let (in_clear, hash, sealed, _) = phone_columns(&store, &user_id).await;
        assert_eq!(in_clear, None, "{backend}");
        assert_eq!(hash.as_deref().map(str::len), Some(64), "{backend}");
        assert!(sealed, "{backend}");
        let found = at_rest(&store, dir.path(), [OBAMA_PHONE]).await;
        assert!(found.is_empty(), "{backend}: the number at rest: {found:?}");

        // Deleting the account clears the hash and the seal and destroys
        // the seal's data key.
        let (_, _, _, key_id) = phone_columns(&store, &user_id).await;
        let (status, body) = h
            .with_bearer(&token, "DELETE", "/v1/users/me", "d1", None)
            .await;
        assert_eq!(status, 200, "{backend}: {body}");
        let (in_clear, hash, sealed, key) = phone_columns(&store, &user_id).await;
        assert_eq!((in_clear, hash, sealed, key), (None, None, false, None));
        let mut conn = store.acquire().await.unwrap();
        let key = facepay_store::keys::get(&mut conn, &key_id.unwrap())
            .await
            .unwrap();
        assert!(key.is_none(), "{backend}: the number's data key is gone");
        drop(conn);
        // The number is free for a new account.
        let (status, body, _) = h.enrol("e4", &biden(OBAMA_PHONE)).await;
        assert_eq!(status, 201, "{backend}: {body}");
        verify(&store).await;
    }
}

/// Puts an enrolment back in the form of the releases before migration
/// 0015: its idempotency keys under `app:<number>`, and (`user_too`) the
/// number in `users.phone` with no hash, no seal and no seal's data key.
/// Without `user_too` it is a start that stopped between converting the
/// users and the scopes. Returns the hash it took away.
async fn as_before(store: &Store, user_id: &str, phone: &str, user_too: bool) -> String {
    let pool = store.pool();
    let (hash, key_id): (String, String) =
        sqlx::query_as("SELECT phone_hash, phone_key_id FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_one(pool)
            .await
            .unwrap();
    let moved = sqlx::query("UPDATE idempotency_keys SET scope = $1 WHERE scope = $2")
        .bind(format!("app:{phone}"))
        .bind(format!("app:{hash}"))
        .execute(pool)
        .await
        .unwrap();
    assert_eq!(moved.rows_affected(), 1);
    if user_too {
        sqlx::query(
            "UPDATE users SET phone = $2, phone_hash = NULL, phone_key_id = NULL, \
             phone_nonce = NULL, phone_ciphertext = NULL WHERE id = $1",
        )
        .bind(user_id)
        .bind(phone)
        .execute(pool)
        .await
        .unwrap();
        sqlx::query("DELETE FROM data_keys WHERE id = $1")
            .bind(key_id)
            .execute(pool)
            .await
            .unwrap();
    }
    hash
}

/// Users an old release enrolled: `OLD_USERS` (a few batches of the
/// conversion), one of them deleted since, its number cleared in place.
/// Those releases ran SQLite without `secure_delete`, so what they
/// overwrote stayed in the file's free space: so it does here. With
/// `converted`, a start converted them and stopped before its clean-up:
/// every number has left its row, and the rebuild is owed.
async fn old_release_users(store: &Store, converted: bool) {
    let sqlite = store.backend() == facepay_store::Backend::Sqlite;
    let pragma = |sql: &'static str| async move {
        if sqlite {
            sqlx::query(sql).execute(store.pool()).await.unwrap();
        }
    };
    pragma("PRAGMA secure_delete = OFF").await;
    let mut tx = store.begin().await.unwrap();
    for i in 0..OLD_USERS {
        let phone = old_phone(i);
        let old = facepay_store::parties::NewUser {
            id: &format!("usr_old_{i:04}"),
            phone: &phone,
            phone_last4: &phone[phone.len() - 4..],
            pin_hash: "x",
            token_hash: &format!("old-{i}"),
            created_at_ms: 1,
        };
        facepay_store::parties::insert_user(&mut tx, &old)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    // Into the database file, as time would have put them.
    pragma("PRAGMA wal_checkpoint(TRUNCATE)").await;
    let mut conn = store.acquire().await.unwrap();
    facepay_store::parties::delete_user(&mut conn, &format!("usr_old_{GONE:04}"), 2)
        .await
        .unwrap();
    if converted {
        sqlx::query("UPDATE users SET phone = NULL WHERE id LIKE 'usr_old_%'")
            .execute(&mut *conn)
            .await
            .unwrap();
        facepay_store::maintenance::mark_due(&mut conn, facepay_store::maintenance::SCRUB, 3)
            .await
            .unwrap();
    }
    drop(conn);
    pragma("PRAGMA wal_checkpoint(TRUNCATE)").await;
    pragma("PRAGMA secure_delete = ON").await;
}

const OLD_USERS: usize = 1_000;
/// The old user deleted since.
const GONE: usize = 700;

fn old_phone(i: usize) -> String {
    format!("+8210666{i:05}")
}

#[tokio::test]
async fn numbers_stored_in_clear_are_hashed_and_sealed_at_start() {
    let engine = engine_with_logs();
    let dir = tempfile::tempdir().unwrap();
    for store in facepay_store::testing::stores(dir.path()).await.unwrap() {
        let backend = store.backend().name();
        let data = dir.path().join(backend);
        let h = harness(&store, &engine, &data).await;
        let (status, obama_first, _) = h.enrol("e1", &obama()).await;
        assert_eq!(status, 201, "{backend}: {obama_first}");
        let obama_id = obama_first["user_id"].as_str().unwrap().to_owned();
        let (status, biden_first, _) = h.enrol("e2", &biden(BIDEN_PHONE)).await;
        assert_eq!(status, 201, "{backend}: {biden_first}");
        let biden_id = biden_first["user_id"].as_str().unwrap().to_owned();
        drop(h);

        // The old form, which the scan sees (so it would see a number left).
        let obama_hash = as_before(&store, &obama_id, OBAMA_PHONE, true).await;
        let biden_hash = as_before(&store, &biden_id, BIDEN_PHONE, false).await;
        old_release_users(&store, false).await;
        let old_form = [OBAMA_PHONE.to_owned(), BIDEN_PHONE.to_owned(), old_phone(0)];
        for (phone, found) in found_in(&store, dir.path(), &old_form).await {
            assert!(found.contains(&phone), "{backend}: {found:?}");
        }
        if store.backend() == facepay_store::Backend::Sqlite {
            // A dump shows live rows only; a file shows free space too.
            let found = at_rest(&store, dir.path(), [old_phone(GONE)]).await;
            assert!(!found.is_empty(), "{backend}: the file keeps old copies");
        }

        // A restart converts them; running the conversion again finds
        // nothing to do.
        let h = harness(&store, &engine, &data).await;
        let (in_clear, hash, sealed, _) = phone_columns(&store, &obama_id).await;
        assert_eq!(
            (in_clear, hash.as_deref(), sealed),
            (None, Some(obama_hash.as_str()), true),
            "{backend}: the same key gives the same hash"
        );
        let (_, hash, _, _) = phone_columns(&store, &biden_id).await;
        assert_eq!(hash.as_deref(), Some(biden_hash.as_str()), "{backend}");
        let hashed: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE phone_hash IS NOT NULL")
                .fetch_one(store.pool())
                .await
                .unwrap();
        assert_eq!(hashed as usize, 2 + OLD_USERS - 1, "{backend}");
        let again = h.app.services.keys.seal_phones().await.unwrap();
        assert_eq!(again, PhonesSealed::default(), "{backend}");
        let every = [OBAMA_PHONE.to_owned(), BIDEN_PHONE.to_owned()]
            .into_iter()
            .chain((0..OLD_USERS).map(old_phone));
        let found = at_rest(&store, dir.path(), every).await;
        assert!(found.is_empty(), "{backend}: numbers at rest: {found:?}");

        // The moved keys replay their enrolments; the numbers still hold
        // one account each and show on their users' pages.
        let (status, replay, _) = h.enrol("e1", &obama()).await;
        assert_eq!(status, 201, "{backend}: {replay}");
        assert_eq!(replay["user_id"], obama_first["user_id"], "{backend}");
        let obama_token = replay["token"].as_str().unwrap().to_owned();
        let (status, replay, _) = h.enrol("e2", &biden(BIDEN_PHONE)).await;
        assert_eq!(status, 201, "{backend}: {replay}");
        let biden_token = replay["token"].as_str().unwrap().to_owned();
        let (status, body, _) = h.enrol("e3", &salley(OBAMA_PHONE)).await;
        assert_eq!(
            (status, code(&body)),
            (409, Some("phone_already_enrolled")),
            "{backend}: {body}"
        );
        assert_eq!(page(&h, &obama_token).await.0.as_deref(), Some(OBAMA_PHONE));

        // A step-up by the whole number: another payer's number is refused,
        // the payer's own confirms them and pays from their account.
        h.app
            .services
            .payments
            .reload_risk_rules(&rules(45))
            .unwrap();
        let (status, asked, _) = h
            .pay("p1", &payment("face_recognition/obama2.jpg", "4500"))
            .await;
        assert_eq!(status, 202, "{backend}: {asked}");
        assert_eq!(asked["step_up"]["methods"][0], "phone", "{backend}");
        let id = asked["id"].as_str().unwrap().to_owned();
        let (status, refused) = h.step_up(&id, "s1", &json!({"phone": BIDEN_PHONE})).await;
        assert_eq!(
            (status, code(&refused)),
            (422, Some("step_up_mismatch")),
            "{backend}: {refused}"
        );
        let (status, paid) = h.step_up(&id, "s2", &json!({"phone": OBAMA_PHONE})).await;
        assert_eq!(status, 201, "{backend}: {paid}");
        assert!(page(&h, &obama_token).await.1.contains(&id), "{backend}");
        assert!(!page(&h, &biden_token).await.1.contains(&id), "{backend}");
        verify(&store).await;
    }
}

/// A start that converted the numbers and stopped before rebuilding the
/// SQLite file leaves the rebuild owed, and the next start does it.
#[tokio::test]
async fn a_start_that_stopped_before_its_clean_up_leaves_it_to_the_next() {
    let engine = engine_with_logs();
    let dir = tempfile::tempdir().unwrap();
    for store in facepay_store::testing::stores(dir.path()).await.unwrap() {
        let backend = store.backend().name();
        let data = dir.path().join(backend);
        // A deployment with its parties, then the old release's users.
        drop(harness(&store, &engine, &data).await);
        old_release_users(&store, true).await;
        let left = at_rest(&store, dir.path(), (0..OLD_USERS).map(old_phone)).await;
        if store.backend() == facepay_store::Backend::Sqlite {
            assert!(!left.is_empty(), "{backend}: the file keeps old copies");
        }
        let _restarted = harness(&store, &engine, &data).await;
        let found = at_rest(&store, dir.path(), (0..OLD_USERS).map(old_phone)).await;
        assert!(found.is_empty(), "{backend}: numbers at rest: {found:?}");
        let mut conn = store.acquire().await.unwrap();
        let due = facepay_store::maintenance::is_due(&mut conn, facepay_store::maintenance::SCRUB);
        assert!(
            !due.await.unwrap(),
            "{backend}: the clean-up is no longer owed"
        );
    }
}
