//! Two servers on one store changing one payment at once, as nodes behind
//! a load balancer do: each its own process lock, one issuer between
//! them. The payment's lease lets one of them at a time reach the issuer,
//! so what the issuer did and what the store recorded agree. On SQLite
//! and (when CI gives one) PostgreSQL.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use facepay_connector::{
    Authorisation, AuthoriseRequest, BoxFuture, Connector, ConnectorError, Reversal,
    SimulatedIssuer, SimulatorConfig, StoredCredential, VerifyRequest,
};
use facepay_payments::DecisionPolicy;
use facepay_store::payments;
use serde_json::{Value, json};

use super::flow_tests::{Harness, engine_with_logs, enrolment, lenient, payment, verify};
use crate::root::embedded_app_paying;

/// Long enough that a second server's request reads the payment while the
/// first one's call is at the issuer.
const ISSUER_CALL_MS: u64 = 150;

/// The simulated issuer, slow to capture, void and refund, counting what
/// it did.
struct Counting {
    issuer: SimulatedIssuer,
    /// How long a capture takes; others take `ISSUER_CALL_MS`.
    capture_ms: AtomicU64,
    captured_minor: AtomicI64,
    voids: AtomicI64,
    refunded_minor: AtomicI64,
}

impl Counting {
    fn new() -> Self {
        Self {
            issuer: SimulatedIssuer::new(SimulatorConfig::default()),
            capture_ms: AtomicU64::new(ISSUER_CALL_MS),
            captured_minor: AtomicI64::new(0),
            voids: AtomicI64::new(0),
            refunded_minor: AtomicI64::new(0),
        }
    }
}

/// Adds `amount_minor` to `done` if `call`, made after `delay_ms`,
/// succeeded.
fn counted<'a>(
    call: BoxFuture<'a, Result<(), ConnectorError>>,
    done: &'a AtomicI64,
    (amount_minor, delay_ms): (i64, u64),
) -> BoxFuture<'a, Result<(), ConnectorError>> {
    Box::pin(async move {
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        call.await?;
        done.fetch_add(amount_minor, Ordering::SeqCst);
        Ok(())
    })
}

impl Connector for Counting {
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
        self.issuer.authorise(request)
    }

    fn capture(
        &self,
        issuer_ref: &str,
        amount_minor: i64,
        reference: &str,
    ) -> BoxFuture<'_, Result<(), ConnectorError>> {
        let call = self.issuer.capture(issuer_ref, amount_minor, reference);
        let delay_ms = self.capture_ms.load(Ordering::SeqCst);
        counted(call, &self.captured_minor, (amount_minor, delay_ms))
    }

    fn void(&self, issuer_ref: &str) -> BoxFuture<'_, Result<(), ConnectorError>> {
        counted(
            self.issuer.void(issuer_ref),
            &self.voids,
            (1, ISSUER_CALL_MS),
        )
    }

    fn refund(
        &self,
        issuer_ref: &str,
        amount_minor: i64,
        reference: &str,
    ) -> BoxFuture<'_, Result<(), ConnectorError>> {
        let call = self.issuer.refund(issuer_ref, amount_minor, reference);
        counted(call, &self.refunded_minor, (amount_minor, ISSUER_CALL_MS))
    }

    fn reverse(&self, reference: &str) -> BoxFuture<'_, Result<Reversal, ConnectorError>> {
        self.issuer.reverse(reference)
    }
}

/// Two servers on `store` paying through `issuer`, with one payer.
async fn two_servers(
    store: &facepay_store::Store,
    dir: &std::path::Path,
    issuer: &Arc<Counting>,
) -> (Harness, Harness) {
    let engine = engine_with_logs();
    let mut servers = Vec::new();
    for _ in 0..2 {
        let config = lenient(DecisionPolicy::default());
        let app = embedded_app_paying(
            store.clone(),
            Arc::clone(&engine),
            Arc::new(facepay_store::SystemClock),
            dir,
            config,
            issuer.clone(),
        )
        .await
        .unwrap();
        servers.push(Harness::from_app(app, dir).await);
    }
    let b = servers.pop().unwrap();
    let a = servers.pop().unwrap();
    let photo = "face_recognition/obama.jpg";
    let (status, body, _) = a
        .enrol("e1", &enrolment("+821012345678", photo, "4242424242424242"))
        .await;
    assert_eq!(status, 201, "{body}");
    (a, b)
}

/// A payment of 9,000 authorised at `server` and left for its merchant to
/// capture: its id.
async fn authorised(server: &Harness, backend: &str) -> String {
    let mut manual = payment("face_recognition/obama2.jpg", "9000");
    manual["capture"] = json!("manual");
    let (status, held, _) = server.pay("m1", &manual).await;
    assert_eq!(status, 201, "{backend}: {held}");
    held["id"].as_str().unwrap().to_owned()
}

async fn stored(store: &facepay_store::Store, id: &str) -> payments::Payment {
    let mut conn = store.acquire().await.unwrap();
    payments::get(&mut conn, id).await.unwrap().unwrap()
}

/// Two partial refunds of one payment sent at once to two servers, under
/// different keys: both are made and both recorded, one after the other.
/// Without the lease both read the same refunded amount, both reach the
/// issuer, and only one is recorded.
#[tokio::test]
async fn refunds_sent_to_two_servers_at_once_are_all_recorded() {
    let dir = tempfile::tempdir().unwrap();
    for store in facepay_store::testing::stores(dir.path()).await.unwrap() {
        let backend = store.backend().name();
        let issuer = Arc::new(Counting::new());
        let (a, b) = two_servers(&store, &dir.path().join(backend), &issuer).await;
        let (status, paid, _) = a
            .pay("p1", &payment("face_recognition/obama2.jpg", "9000"))
            .await;
        assert_eq!(status, 201, "{backend}: {paid}");
        let id = paid["id"].as_str().unwrap().to_owned();
        let refunds = format!("/v1/merchant/payments/{id}/refunds");
        let third = Some(json!({"amount": "3000"}));
        let ((status_a, body_a), (status_b, body_b)) = tokio::join!(
            a.merchant("POST", &refunds, "ra", third.clone()),
            b.merchant("POST", &refunds, "rb", third),
        );
        assert_eq!(
            (status_a, status_b),
            (200, 200),
            "{backend}: {body_a} {body_b}"
        );
        let recorded = stored(&store, &id).await;
        assert_eq!(recorded.refunded_minor, 6_000, "{backend}");
        assert_eq!(
            issuer.refunded_minor.load(Ordering::SeqCst),
            recorded.refunded_minor,
            "{backend}: the issuer refunded what the store recorded"
        );
        verify(&store).await;
    }
}

/// A capture and a void of one authorisation sent at once to two
/// servers: one of them is made, the other finds the payment moved on
/// (409 `payment_not_authorised`) before it reaches the issuer. Without
/// the lease both reach the issuer, and a recorded void can stand beside
/// a capture the issuer made.
#[tokio::test]
async fn a_capture_and_a_void_sent_to_two_servers_at_once_agree_with_the_issuer() {
    let dir = tempfile::tempdir().unwrap();
    for store in facepay_store::testing::stores(dir.path()).await.unwrap() {
        let backend = store.backend().name();
        let issuer = Arc::new(Counting::new());
        let (a, b) = two_servers(&store, &dir.path().join(backend), &issuer).await;
        let id = authorised(&a, backend).await;
        let (capture, void) = (
            format!("/v1/merchant/payments/{id}/capture"),
            format!("/v1/merchant/payments/{id}/void"),
        );
        let ((status_a, body_a), (status_b, body_b)) = tokio::join!(
            a.merchant("POST", &capture, "c1", Some(json!({"amount": "6000"}))),
            b.merchant("POST", &void, "v1", None),
        );
        let mut answers = [(status_a, body_a), (status_b, body_b)];
        answers.sort_by_key(|(status, _)| *status);
        let refused: &Value = &answers[1].1;
        assert_eq!(
            (
                answers[0].0,
                answers[1].0,
                refused["error"]["code"].as_str()
            ),
            (200, 409, Some("payment_not_authorised")),
            "{backend}: {answers:?}"
        );
        let recorded = stored(&store, &id).await;
        let (captured, voids) = (
            issuer.captured_minor.load(Ordering::SeqCst),
            issuer.voids.load(Ordering::SeqCst),
        );
        assert_eq!(captured, recorded.captured_minor, "{backend}");
        assert_eq!(voids, i64::from(recorded.state == "voided"), "{backend}");
        verify(&store).await;
    }
}

/// A capture whose issuer call outlasts the lease's renewal period keeps
/// the lease: it is renewed while the call runs, so no other server can
/// take the payment over from a live request. The test waits out one
/// renewal period (10 s) on each store.
#[tokio::test]
async fn a_lease_is_renewed_while_a_slow_issuer_call_runs() {
    use facepay_payments::core::{LEASE_MS, LEASE_RENEW_MS};
    let dir = tempfile::tempdir().unwrap();
    for store in facepay_store::testing::stores(dir.path()).await.unwrap() {
        let backend = store.backend().name();
        let issuer = Arc::new(Counting::new());
        issuer
            .capture_ms
            .store(LEASE_RENEW_MS + 1_500, Ordering::SeqCst);
        let (a, _) = two_servers(&store, &dir.path().join(backend), &issuer).await;
        let id = authorised(&a, backend).await;
        let capture = format!("/v1/merchant/payments/{id}/capture");
        let lease_left_ms = async {
            tokio::time::sleep(Duration::from_millis(LEASE_RENEW_MS + 700)).await;
            let mut conn = store.acquire().await.unwrap();
            let until_ms: i64 = sqlx::query_scalar(
                "SELECT expires_at_ms FROM payment_leases WHERE payment_id = $1",
            )
            .bind(&id)
            .fetch_one(&mut *conn)
            .await
            .unwrap();
            until_ms - facepay_store::now_ms()
        };
        let ((status, body), left_ms) =
            tokio::join!(a.merchant("POST", &capture, "c1", None), lease_left_ms);
        assert_eq!(status, 200, "{backend}: {body}");
        // Taken for `LEASE_MS` when the capture began, it would have under
        // `LEASE_MS - LEASE_RENEW_MS` left by now without its renewal.
        let unrenewed_ms = LEASE_MS - i64::try_from(LEASE_RENEW_MS).unwrap();
        assert!(left_ms > unrenewed_ms, "{backend}: {left_ms} ms left");
        assert_eq!(stored(&store, &id).await.state, "captured", "{backend}");
    }
}
