//! No money stuck: an authorisation whose answer never came is reversed by
//! its reference, at once after an issuer timeout, and by a retry or the
//! sweep after the process died between the issuer's approval and its
//! record. On SQLite and (when CI gives one) PostgreSQL.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use facepay_connector::{
    Authorisation, AuthoriseRequest, BoxFuture, CaptureMethod, CardDetails, Connector,
    ConnectorError, Reversal, SimulatedIssuer, SimulatorConfig, StoredCredential, VerifyRequest,
};

use facepay_store::{SystemClock, payments};
use serde_json::Value;
use tokio::sync::Notify;

use super::flow_tests::{Harness, engine_with_logs, enrolment, lenient, payment, verify};
use crate::root::embedded_app_paying;
use facepay_payments::{Config, DecisionPolicy};

/// The simulator's card whose approvals are lost on their way back.
const CARD_ANSWER_LOST: &str = "4000000000000127";
const CARD: &str = "4242424242424242";
/// The simulator's own deadline, short so that a timeout costs little.
const ISSUER_TIMEOUT_MS: u64 = 200;

/// The simulated issuer with faults on cue: with `hang_after_authorising`,
/// the answer to an authorisation never leaves it (the request waits
/// there as one in a process killed at that moment would, until the test
/// aborts it); the next `reversals_to_fail` reversals time out.
struct Scripted {
    issuer: SimulatedIssuer,
    hang_after_authorising: bool,
    authorised: Notify,
    reversals_to_fail: AtomicUsize,
}

impl Scripted {
    fn new(
        issuer: SimulatedIssuer,
        hang_after_authorising: bool,
        reversals_to_fail: usize,
    ) -> Self {
        Self {
            issuer,
            hang_after_authorising,
            authorised: Notify::new(),
            reversals_to_fail: AtomicUsize::new(reversals_to_fail),
        }
    }
}

impl Connector for Scripted {
    fn name(&self) -> &'static str {
        self.issuer.name()
    }

    fn verify_card(
        &self,
        request: VerifyRequest,
    ) -> BoxFuture<'_, Result<StoredCredential, ConnectorError>> {
        self.issuer.verify_card(request)
    }

    fn authorise(
        &self,
        request: AuthoriseRequest,
    ) -> BoxFuture<'_, Result<Authorisation, ConnectorError>> {
        if !self.hang_after_authorising {
            return self.issuer.authorise(request);
        }
        Box::pin(async move {
            let approved = self.issuer.authorise(request).await;
            assert!(approved.is_ok(), "{approved:?}");
            self.authorised.notify_one();
            std::future::pending().await
        })
    }

    fn capture(
        &self,
        issuer_ref: &str,
        amount_minor: i64,
        reference: &str,
    ) -> BoxFuture<'_, Result<(), ConnectorError>> {
        self.issuer.capture(issuer_ref, amount_minor, reference)
    }

    fn void(&self, issuer_ref: &str) -> BoxFuture<'_, Result<(), ConnectorError>> {
        self.issuer.void(issuer_ref)
    }

    fn refund(
        &self,
        issuer_ref: &str,
        amount_minor: i64,
        reference: &str,
    ) -> BoxFuture<'_, Result<(), ConnectorError>> {
        self.issuer.refund(issuer_ref, amount_minor, reference)
    }

    fn reverse(&self, reference: &str) -> BoxFuture<'_, Result<Reversal, ConnectorError>> {
        let fail = self
            .reversals_to_fail
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if fail {
            return Box::pin(async { Err(ConnectorError::Timeout) });
        }
        self.issuer.reverse(reference)
    }
}

/// The demo's parties on an app that pays through `connector`.
async fn paying_through(
    store: &facepay_store::Store,
    engine: &Arc<facepay_face::FaceEngine>,
    data: &std::path::Path,
    config: Config,
    connector: Arc<impl Connector + 'static>,
) -> Harness {
    let clock = Arc::new(SystemClock);
    let engine = Arc::clone(engine);
    let app = embedded_app_paying(store.clone(), engine, clock, data, config, connector)
        .await
        .unwrap();
    Harness::from_app(app, data).await
}

/// An authorisation under `reference`, as a retry of the payment would
/// send it.
fn authorisation(reference: &str, pan: &str) -> AuthoriseRequest {
    AuthoriseRequest {
        reference: reference.into(),
        card: CardDetails {
            pan: pan.into(),
            expiry_month: 12,
            expiry_year: 2031,
            security_code: Some(facepay_connector::simulator::printed_security_code(pan).into()),
        },
        amount_minor: 4_000,
        currency: "KRW".into(),
        tap: None,
        capture: CaptureMethod::Automatic,
        stored_credential: None,
    }
}

async fn stored(h: &Harness, id: &str) -> payments::Payment {
    let mut conn = h.app.services.store().acquire().await.unwrap();
    payments::get(&mut conn, id).await.unwrap().unwrap()
}

/// The issuer approves but its answer is lost: the payment answers 504,
/// the hold is reversed at once, and the payment ends failed with what the
/// reversal found. A retry replays the answer; the reference holds nothing.
#[tokio::test]
async fn an_issuer_timeout_reverses_the_hold_it_may_have_left() {
    let engine = engine_with_logs();
    let dir = tempfile::tempdir().unwrap();
    for store in facepay_store::testing::stores(dir.path()).await.unwrap() {
        let backend = store.backend().name();
        let data = dir.path().join(backend);
        let issuer = Arc::new(SimulatedIssuer::new(SimulatorConfig {
            timeout_ms: ISSUER_TIMEOUT_MS,
            ..SimulatorConfig::default()
        }));
        let config = lenient(DecisionPolicy::default());
        let h = paying_through(&store, &engine, &data, config, issuer.clone()).await;
        let lost = enrolment(
            "+821012345678",
            "face_recognition/obama.jpg",
            CARD_ANSWER_LOST,
        );
        let (status, body, _) = h.enrol("e1", &lost).await;
        assert_eq!(status, 201, "{backend}: {body}");

        let paid = payment("face_recognition/obama.jpg", "4000");
        let (status, answer, text) = h.pay("p1", &paid).await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (504, Some("issuer_timeout")),
            "{backend}: {text}"
        );
        assert_eq!(answer["payment"]["state"], "failed", "{backend}: {text}");
        let id = answer["payment"]["id"].as_str().unwrap().to_owned();
        assert_eq!(stored(&h, &id).await.reason, "issuer_timeout:released");
        // The reversal was the issuer's: retried, it answers as it did, and
        // the authorisation sent again under the reference holds nothing.
        assert_eq!(issuer.reverse(&id).await.ok(), Some(Reversal::Released));
        let again = issuer.authorise(authorisation(&id, CARD_ANSWER_LOST)).await;
        assert!(
            matches!(again, Err(ConnectorError::Rejected(_))),
            "{again:?}"
        );
        let (status, replay, _) = h.pay("p1", &paid).await;
        assert_eq!((status, &replay), (504, &answer), "{backend}");
        verify(&store).await;
    }
}

/// Neither the authorisation nor its reversal is answered: the payment
/// stays unfinished, its reversal pending, and the sweep retries the
/// reversal until the issuer answers, then ends the payment.
#[tokio::test]
async fn a_reversal_the_issuer_does_not_answer_is_retried_by_the_sweep() {
    let engine = engine_with_logs();
    let dir = tempfile::tempdir().unwrap();
    for store in facepay_store::testing::stores(dir.path()).await.unwrap() {
        let backend = store.backend().name();
        let data = dir.path().join(backend);
        let issuer = SimulatedIssuer::new(SimulatorConfig {
            timeout_ms: ISSUER_TIMEOUT_MS,
            ..SimulatorConfig::default()
        });
        // The reversal at the timeout and the first sweep's both fail.
        let connector = Arc::new(Scripted::new(issuer, false, 2));
        let config = Config {
            abandoned_after_ms: 0,
            ..lenient(DecisionPolicy::default())
        };
        let h = paying_through(&store, &engine, &data, config, connector.clone()).await;
        let lost = enrolment(
            "+821012345678",
            "face_recognition/obama.jpg",
            CARD_ANSWER_LOST,
        );
        let (status, body, _) = h.enrol("e1", &lost).await;
        assert_eq!(status, 201, "{backend}: {body}");

        let (status, answer, text) = h
            .pay("p1", &payment("face_recognition/obama.jpg", "4000"))
            .await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (504, Some("issuer_timeout")),
            "{backend}: {text}"
        );
        let id = answer["payment"]["id"].as_str().unwrap().to_owned();
        let pending = stored(&h, &id).await;
        assert_eq!(
            (pending.state.as_str(), pending.reason.as_str()),
            ("created", "reversal_pending"),
            "{backend}"
        );
        let sweep = &h.app.services.merchant;
        assert_eq!(sweep.close_abandoned(10).await.unwrap(), 0, "{backend}");
        assert_eq!(stored(&h, &id).await.state, "created", "{backend}");
        assert_eq!(sweep.close_abandoned(10).await.unwrap(), 1, "{backend}");
        let ended = stored(&h, &id).await;
        assert_eq!(
            (ended.state.as_str(), ended.reason.as_str()),
            ("failed", "interrupted:released"),
            "{backend}"
        );
        let again = connector
            .issuer
            .authorise(authorisation(&id, CARD_ANSWER_LOST))
            .await;
        assert!(
            matches!(again, Err(ConnectorError::Rejected(_))),
            "{again:?}"
        );
        verify(&store).await;
    }
}

/// The process dies after the issuer approved and before anything was
/// recorded of it. The payment's row, written before the issuer was asked,
/// lets a retry with the same key, or the sweep when none comes, reverse
/// the hold and end the payment: nothing stays held, nothing is charged.
/// A retry that cannot have the hold reversed is refused and may come
/// again.
#[tokio::test]
async fn a_payment_cut_short_after_the_issuer_approved_is_reversed() {
    let engine = engine_with_logs();
    let dir = tempfile::tempdir().unwrap();
    for store in facepay_store::testing::stores(dir.path()).await.unwrap() {
        let backend = store.backend().name();
        let data = dir.path().join(backend);
        let issuer = SimulatedIssuer::new(SimulatorConfig::default());
        // The first retry's reversal goes unanswered.
        let connector = Arc::new(Scripted::new(issuer, true, 1));
        // The dead request's claim on its key and its row are taken over at
        // once, as they would be after their lease and the sweep's wait.
        let config = Config {
            abandoned_after_ms: 0,
            idempotency_lease_ms: 0,
            ..lenient(DecisionPolicy::default())
        };
        let h = Arc::new(paying_through(&store, &engine, &data, config, connector.clone()).await);
        let card = enrolment("+821012345678", "face_recognition/obama.jpg", CARD);
        let (status, body, _) = h.enrol("e1", &card).await;
        assert_eq!(status, 201, "{backend}: {body}");

        let paid = payment("face_recognition/obama.jpg", "4000");
        let retried = cut_short(&h, &connector, "k1", &paid).await;
        // A retry whose reversal is not answered is refused, its key given
        // back: an answer stored then would say `created` for good.
        let (status, answer, text) = h.pay("k1", &paid).await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (503, Some("payment_unfinished")),
            "{backend}: {text}"
        );
        assert_eq!(stored(&h, &retried).await.state, "created", "{backend}");
        // The next retry with the key ends the payment.
        let (status, answer, text) = h.pay("k1", &paid).await;
        assert_eq!(status, 200, "{backend}: {text}");
        assert_eq!(answer["id"].as_str(), Some(retried.as_str()));
        assert_eq!(answer["state"], "failed", "{backend}: {text}");
        assert_eq!(stored(&h, &retried).await.reason, "interrupted:released");

        // With no retry, the sweep does the same.
        let swept = cut_short(&h, &connector, "k2", &paid).await;
        assert_eq!(
            h.app.services.merchant.close_abandoned(10).await.unwrap(),
            1
        );
        let after = stored(&h, &swept).await;
        assert_eq!(
            (after.state.as_str(), after.reason.as_str()),
            ("failed", "interrupted:released"),
            "{backend}"
        );
        for id in [&retried, &swept] {
            let again = connector.issuer.authorise(authorisation(id, CARD)).await;
            assert!(
                matches!(again, Err(ConnectorError::Rejected(_))),
                "{backend}: {again:?}"
            );
        }
        assert_eq!(
            h.app.services.merchant.close_abandoned(10).await.unwrap(),
            0
        );
        verify(&store).await;
    }
}

/// Pays with `key` until the issuer approved, then aborts the request as a
/// killed process would stop. Returns the payment's id, whose row says
/// where its authorisation went.
async fn cut_short(h: &Arc<Harness>, connector: &Arc<Scripted>, key: &str, paid: &Value) -> String {
    let request = tokio::spawn({
        let (h, key, paid) = (Arc::clone(h), key.to_owned(), paid.clone());
        async move { h.pay(&key, &paid).await }
    });
    connector.authorised.notified().await;
    request.abort();
    assert!(request.await.unwrap_err().is_cancelled());
    let mut conn = h.app.services.store().acquire().await.unwrap();
    let (id,): (String,) =
        sqlx::query_as("SELECT id FROM payments WHERE idempotency_key = $1 AND state = 'created'")
            .bind(key)
            .fetch_one(&mut *conn)
            .await
            .unwrap();
    let row = payments::get(&mut conn, &id).await.unwrap().unwrap();
    assert_eq!(row.connector.as_deref(), Some("simulated_issuer"));
    id
}

/// The store fails after the payment's row names its connector and before
/// the issuer is asked (here, at the loyalty reservation). Nothing was
/// sent, so a retry with the same key, or the sweep when none comes, ends
/// the payment after a reversal of nothing: no hold, no charge, the coupon
/// not used. The terminal's next payment pays once, with the coupon.
#[tokio::test]
async fn a_store_error_before_the_issuer_ends_the_payment_with_nothing_held() {
    let engine = engine_with_logs();
    let dir = tempfile::tempdir().unwrap();
    for store in facepay_store::testing::stores(dir.path()).await.unwrap() {
        let backend = store.backend().name();
        let data = dir.path().join(backend);
        let issuer = Arc::new(SimulatedIssuer::new(SimulatorConfig::default()));
        let config = Config {
            abandoned_after_ms: 0,
            ..lenient(DecisionPolicy::default())
        };
        let h = paying_through(&store, &engine, &data, config, issuer.clone()).await;
        let card = enrolment("+821012345678", "face_recognition/obama.jpg", CARD);
        let (status, body, _) = h.enrol("e1", &card).await;
        assert_eq!(status, 201, "{backend}: {body}");
        let off = serde_json::json!({"name": "300 off", "value": 300});
        super::loyalty_tests::coupon(&h, "c1", off).await;
        let paid = payment("face_recognition/obama.jpg", "4000");

        fail_coupon_uses(&h, true).await;
        let retried = failed_before_the_issuer(&h, "k1", &paid).await;
        let swept = failed_before_the_issuer(&h, "k2", &paid).await;
        fail_coupon_uses(&h, false).await;

        let (status, answer, text) = h.pay("k1", &paid).await;
        assert_eq!(status, 200, "{backend}: {text}");
        assert_eq!(answer["id"].as_str(), Some(retried.as_str()));
        assert_eq!(answer["state"], "failed", "{backend}: {text}");
        let sweep = &h.app.services.merchant;
        assert_eq!(sweep.close_abandoned(10).await.unwrap(), 1, "{backend}");
        for id in [&retried, &swept] {
            let ended = stored(&h, id).await;
            assert_eq!(
                (ended.state.as_str(), ended.reason.as_str()),
                ("failed", "interrupted:nothing_held"),
                "{backend}"
            );
            assert_eq!(issuer.reverse(id).await.ok(), Some(Reversal::NothingHeld));
        }
        let uses = super::loyalty_tests::coupon_uses(&h).await;
        assert_eq!(uses.get("300 off"), Some(&0), "{backend}: {uses:?}");

        let (status, next, text) = h.pay("k3", &paid).await;
        assert_eq!(status, 201, "{backend}: {text}");
        assert_eq!(next["captured_minor"], 3700, "{backend}: {text}");
        let uses = super::loyalty_tests::coupon_uses(&h).await;
        assert_eq!(uses.get("300 off"), Some(&1), "{backend}: {uses:?}");
        let (status, replay, _) = h.pay("k1", &paid).await;
        assert_eq!((status, &replay), (200, &answer), "{backend}");
        verify(&store).await;
    }
}

/// Pays with `key` while the store refuses coupon uses: the request fails
/// with the store's error and leaves its row unfinished, its connector
/// named. Returns the payment's id.
async fn failed_before_the_issuer(h: &Harness, key: &str, paid: &Value) -> String {
    let (status, answer, text) = h.pay(key, paid).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (500, Some("internal")),
        "{text}"
    );
    let mut conn = h.app.services.store().acquire().await.unwrap();
    let (id,): (String,) = sqlx::query_as("SELECT id FROM payments WHERE idempotency_key = $1")
        .bind(key)
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    let row = payments::get(&mut conn, &id).await.unwrap().unwrap();
    assert_eq!(
        (row.state.as_str(), row.connector.as_deref()),
        ("created", Some("simulated_issuer"))
    );
    id
}

/// A trigger that makes every insert into `coupon_uses` fail, or its
/// removal: a store error on cue, in SQL each backend understands.
async fn fail_coupon_uses(h: &Harness, fail: bool) {
    let store = h.app.services.store();
    let postgres = store.backend() == facepay_store::Backend::Postgres;
    let statements: &[&str] = match (fail, postgres) {
        (true, false) => &["CREATE TRIGGER fail_uses BEFORE INSERT ON coupon_uses \
             BEGIN SELECT RAISE(ABORT, 'injected'); END"],
        (false, false) => &["DROP TRIGGER fail_uses"],
        (true, true) => &[
            "CREATE FUNCTION fail_uses() RETURNS trigger LANGUAGE plpgsql \
             AS $$ BEGIN RAISE EXCEPTION 'injected'; END $$",
            "CREATE TRIGGER fail_uses BEFORE INSERT ON coupon_uses \
             FOR EACH ROW EXECUTE FUNCTION fail_uses()",
        ],
        (false, true) => &[
            "DROP TRIGGER fail_uses ON coupon_uses",
            "DROP FUNCTION fail_uses()",
        ],
    };
    let mut conn = store.acquire().await.unwrap();
    for statement in statements {
        sqlx::query(statement).execute(&mut *conn).await.unwrap();
    }
}
