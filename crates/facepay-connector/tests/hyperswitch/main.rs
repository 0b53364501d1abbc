//! The Hyperswitch connector against a fake Hyperswitch on 127.0.0.1 that
//! answers from the documented samples and checks every request facepay
//! sends (see `fake.rs` and `fixtures/README.md`).

mod fake;

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use facepay_connector::hyperswitch::webhook::{self, WebhookError, WebhookObject};
use facepay_connector::hyperswitch::{
    HyperswitchConfig, HyperswitchConnector, PaymentStatus, REQUESTS_PER_CALL_MAX, RefundStatus,
    object_id,
};
use facepay_connector::{
    AuthoriseRequest, CaptureMethod, CardDetails, Connector, ConnectorError, Decline, Reversal,
    StoredCredential, VerifyRequest,
};
use fake::{API_KEY, FakeHyperswitch, Fault, Route};
use serde_json::{Value, json};

const PROFILE_ID: &str = "pro_facepay_tests";
const WEBHOOK_SECRET: &str = "payment_response_hash_key_for_tests";
const CARD_APPROVED: &str = "4242424242424242";
/// Far enough ahead that the tests do not expire with the calendar.
const EXPIRY_YEAR_FUTURE: u16 = 2099;
/// Short, so a stalled answer times out quickly; the fake stalls longer.
const TIMEOUT_MS_SHORT: u64 = 300;
const STALL: Duration = Duration::from_millis(1_200);

fn config(fake: &FakeHyperswitch, timeout_ms: u64) -> HyperswitchConfig {
    HyperswitchConfig {
        base_url: fake.base_url(),
        api_key: API_KEY.into(),
        profile_id: Some(PROFILE_ID.into()),
        webhook_secret: WEBHOOK_SECRET.into(),
        timeout_ms,
    }
}

fn connector(fake: &FakeHyperswitch) -> HyperswitchConnector {
    connector_with_timeout(fake, 2_000)
}

fn connector_with_timeout(fake: &FakeHyperswitch, timeout_ms: u64) -> HyperswitchConnector {
    match HyperswitchConnector::new(&config(fake, timeout_ms)) {
        Ok(connector) => connector,
        Err(e) => panic!("the test configuration is valid: {e}"),
    }
}

fn request(
    reference: &str,
    pan: &str,
    amount_minor: i64,
    capture: CaptureMethod,
) -> AuthoriseRequest {
    AuthoriseRequest {
        reference: reference.into(),
        card: CardDetails {
            pan: pan.into(),
            expiry_month: 7,
            expiry_year: EXPIRY_YEAR_FUTURE,
            security_code: Some("123".into()),
        },
        amount_minor,
        currency: "USD".into(),
        tap: None,
        capture,
        stored_credential: None,
    }
}

/// The card as its holder adds it, security code and all.
fn verification(reference: &str, pan: &str) -> VerifyRequest {
    VerifyRequest {
        reference: reference.into(),
        customer: "usr_0123456789abcdef".into(),
        card: CardDetails {
            pan: pan.into(),
            expiry_month: 7,
            expiry_year: EXPIRY_YEAR_FUTURE,
            security_code: Some("123".into()),
        },
        currency: "USD".into(),
        // 2026-01-01T00:00:00Z.
        agreed_at_ms: 1_767_225_600_000,
    }
}

/// A payment on the card on file: no security code, the credential.
fn on_file(
    reference: &str,
    pan: &str,
    credential: &StoredCredential,
    capture: CaptureMethod,
) -> AuthoriseRequest {
    let mut request = request(reference, pan, 6_540, capture);
    request.card.security_code = None;
    request.stored_credential = Some(credential.clone());
    request
}

async fn verified(
    connector: &HyperswitchConnector,
    reference: &str,
    pan: &str,
) -> StoredCredential {
    match connector.verify_card(verification(reference, pan)).await {
        Ok(credential) => credential,
        Err(e) => panic!("expected a verification, got {e}"),
    }
}

/// A facepay payment id as facepay makes them.
fn payment_reference(n: u8) -> String {
    format!("pay_{n:032x}")
}

async fn authorised(
    connector: &HyperswitchConnector,
    reference: &str,
    capture: CaptureMethod,
) -> String {
    match connector
        .authorise(request(reference, CARD_APPROVED, 6_540, capture))
        .await
    {
        Ok(authorisation) => authorisation.issuer_ref,
        Err(e) => panic!("expected an authorisation, got {e}"),
    }
}

fn no_violations(fake: &FakeHyperswitch) {
    let violations = fake.violations();
    assert!(
        violations.is_empty(),
        "facepay broke the documented API: {violations:#?}"
    );
}

fn rejection_of<T: std::fmt::Debug>(result: Result<T, ConnectorError>) -> String {
    match result {
        Err(ConnectorError::Rejected(reason)) => reason,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[tokio::test]
async fn authorise_with_manual_capture_places_a_hold() {
    let fake = FakeHyperswitch::start();
    let connector = connector(&fake);
    let reference = payment_reference(1);
    let result = connector
        .authorise(request(
            &reference,
            CARD_APPROVED,
            6_540,
            CaptureMethod::Manual,
        ))
        .await;
    let Ok(authorisation) = result else {
        panic!("should authorise: {result:?}");
    };
    assert_eq!(
        authorisation.issuer_ref, reference,
        "our reference is the payment id"
    );
    assert_eq!(authorisation.approval_code, "txn_connectortransidxxxx");
    assert_eq!(
        fake.payment(&reference),
        Some(("requires_capture".into(), 6_540, None))
    );
    let sent = fake.bodies(Route::CreatePayment);
    assert_eq!(sent.len(), 1);
    let body = &sent[0];
    assert_eq!(body["payment_id"], json!(reference));
    assert_eq!(body["confirm"], json!(true));
    assert_eq!(body["capture_method"], json!("manual"));
    assert_eq!(body["authentication_type"], json!("no_three_ds"));
    assert_eq!(body["amount"], json!(6_540));
    assert_eq!(body["currency"], json!("USD"));
    assert_eq!(body["profile_id"], json!(PROFILE_ID));
    assert_eq!(body["payment_method"], json!("card"));
    assert_eq!(
        body["payment_method_data"]["card"],
        json!({"card_number": CARD_APPROVED, "card_exp_month": "07", "card_exp_year": "2099", "card_cvc": "123"})
    );
    no_violations(&fake);
}

#[tokio::test]
async fn authorise_with_automatic_capture_takes_the_money_at_once() {
    let fake = FakeHyperswitch::start();
    let connector = connector(&fake);
    let reference = payment_reference(2);
    let issuer_ref = authorised(&connector, &reference, CaptureMethod::Automatic).await;
    assert_eq!(
        fake.bodies(Route::CreatePayment)[0]["capture_method"],
        json!("automatic")
    );
    assert_eq!(
        fake.payment(&issuer_ref),
        Some(("succeeded".into(), 0, Some(6_540)))
    );
    assert_eq!(fake.count(Route::CapturePayment), 0);
    // Captured already, so a void has nothing to release.
    let void = connector.void(&issuer_ref).await;
    assert!(rejection_of(void).contains("nothing is held"));
    assert!(
        connector
            .refund(&issuer_ref, 6_540, "ref_all")
            .await
            .is_ok()
    );
    no_violations(&fake);
}

#[tokio::test]
async fn capture_takes_part_of_the_hold_once() {
    let fake = FakeHyperswitch::start();
    let connector = connector(&fake);
    let issuer_ref = authorised(&connector, &payment_reference(3), CaptureMethod::Manual).await;

    assert!(
        connector
            .capture(&issuer_ref, 2_000, "capture_1")
            .await
            .is_ok()
    );
    assert_eq!(
        fake.bodies(Route::CapturePayment)[0],
        json!({"amount_to_capture": 2_000})
    );
    assert_eq!(
        fake.payment(&issuer_ref),
        Some(("partially_captured".into(), 0, Some(2_000)))
    );
    // A retry: Hyperswitch refuses a second capture, and the payment shows
    // the first one landed with this amount.
    assert!(
        connector
            .capture(&issuer_ref, 2_000, "capture_1")
            .await
            .is_ok()
    );
    // Another amount is not a retry.
    let other = connector.capture(&issuer_ref, 1_000, "capture_2").await;
    assert!(rejection_of(other).contains("IR_14"));
    // After a partial capture nothing is held, as after a void; no cancel
    // is sent, which would make Hyperswitch refuse the refund below.
    assert!(connector.void(&issuer_ref).await.is_ok());
    assert_eq!(fake.count(Route::CancelPayment), 0);
    assert!(connector.refund(&issuer_ref, 2_000, "ref_1").await.is_ok());
    no_violations(&fake);
}

#[tokio::test]
async fn capture_more_than_held_is_rejected() {
    let fake = FakeHyperswitch::start();
    let connector = connector(&fake);
    let issuer_ref = authorised(&connector, &payment_reference(4), CaptureMethod::Manual).await;
    let over = connector.capture(&issuer_ref, 6_541, "capture_1").await;
    assert!(rejection_of(over).contains("amount_to_capture is greater than amount"));
    assert!(
        connector
            .capture(&issuer_ref, 6_540, "capture_1")
            .await
            .is_ok()
    );
    assert_eq!(
        fake.payment(&issuer_ref),
        Some(("succeeded".into(), 0, Some(6_540)))
    );
    no_violations(&fake);
}

#[tokio::test]
async fn void_releases_the_hold_and_is_idempotent() {
    let fake = FakeHyperswitch::start();
    let connector = connector(&fake);
    let issuer_ref = authorised(&connector, &payment_reference(5), CaptureMethod::Manual).await;
    assert!(connector.void(&issuer_ref).await.is_ok());
    assert_eq!(
        fake.payment(&issuer_ref),
        Some(("cancelled".into(), 0, None))
    );
    assert_eq!(
        fake.bodies(Route::CancelPayment)[0],
        json!({"cancellation_reason": "requested_by_merchant"})
    );
    // A retry reads the payment cancelled and sends nothing more.
    assert!(connector.void(&issuer_ref).await.is_ok());
    assert_eq!(fake.count(Route::CancelPayment), 1);
    let capture = connector.capture(&issuer_ref, 100, "capture_1").await;
    assert!(rejection_of(capture).contains("IR_14"));
    let unknown = connector.void("pay_nobody").await;
    assert!(rejection_of(unknown).contains("no payment"));
    no_violations(&fake);
}

/// A reversal finds the payment by our reference alone: a hold is
/// cancelled, an automatic capture refunded whole, a payment Hyperswitch
/// never made is nothing held; retried, it moves no more money.
#[tokio::test]
async fn a_reversal_by_reference_undoes_what_the_authorisation_did() {
    let fake = FakeHyperswitch::start();
    let connector = connector(&fake);
    let held = payment_reference(40);
    let issuer_ref = authorised(&connector, &held, CaptureMethod::Manual).await;
    assert_eq!(
        connector.reverse(&held).await.ok(),
        Some(Reversal::Released)
    );
    assert_eq!(
        fake.payment(&issuer_ref),
        Some(("cancelled".into(), 0, None))
    );
    assert_eq!(
        connector.reverse(&held).await.ok(),
        Some(Reversal::NothingHeld)
    );
    assert_eq!(fake.count(Route::CancelPayment), 1);

    let captured = payment_reference(41);
    authorised(&connector, &captured, CaptureMethod::Automatic).await;
    assert_eq!(
        connector.reverse(&captured).await.ok(),
        Some(Reversal::Released)
    );
    assert_eq!(fake.count(Route::CreateRefund), 1);
    assert_eq!(fake.bodies(Route::CreateRefund)[0]["amount"], 6_540);

    let never = payment_reference(42);
    assert_eq!(
        connector.reverse(&never).await.ok(),
        Some(Reversal::NothingHeld)
    );
    no_violations(&fake);
}

#[tokio::test]
async fn partial_refunds_are_idempotent_by_reference() {
    let fake = FakeHyperswitch::start();
    let connector = connector(&fake);
    let issuer_ref = authorised(&connector, &payment_reference(6), CaptureMethod::Automatic).await;

    assert!(connector.refund(&issuer_ref, 1_000, "ref_1").await.is_ok());
    assert_eq!(
        fake.bodies(Route::CreateRefund)[0],
        json!({"payment_id": issuer_ref, "refund_id": "ref_1", "amount": 1_000, "refund_type": "instant"})
    );
    // A retry finds the first refund by its id and makes no second one.
    assert!(connector.refund(&issuer_ref, 1_000, "ref_1").await.is_ok());
    assert_eq!(fake.refund_ids(), vec!["ref_1".to_owned()]);
    // The same reference for another amount is not a retry.
    let reused = connector.refund(&issuer_ref, 2_000, "ref_1").await;
    assert!(rejection_of(reused).contains("another refund"));
    // A reference that is not a Hyperswitch id gets a stable derived id.
    assert!(
        connector
            .refund(&issuer_ref, 500, "claim_9:refund")
            .await
            .is_ok()
    );
    assert!(fake.refund_ids().contains(&object_id("claim_9:refund")));
    // 5,040 of 6,540 is left.
    let over = connector.refund(&issuer_ref, 5_041, "ref_2").await;
    assert!(rejection_of(over).contains("IR_13"));
    assert!(connector.refund(&issuer_ref, 5_040, "ref_2").await.is_ok());
    no_violations(&fake);
}

#[tokio::test]
async fn declines_carry_the_processor_reason() {
    let fake = FakeHyperswitch::start();
    let connector = connector(&fake);
    let cases = [
        (fake::CARD_DECLINED, Decline::DoNotHonour),
        (fake::CARD_INSUFFICIENT_FUNDS, Decline::InsufficientFunds),
    ];
    for (index, (pan, expected)) in cases.into_iter().enumerate() {
        let reference = payment_reference(10 + index as u8);
        let result = connector
            .authorise(request(&reference, pan, 6_540, CaptureMethod::Manual))
            .await;
        assert!(
            matches!(result, Err(ConnectorError::Declined(decline)) if decline == expected),
            "{pan}: {result:?}"
        );
        // A retry of the declined payment gets the same answer.
        let retry = connector
            .authorise(request(&reference, pan, 6_540, CaptureMethod::Manual))
            .await;
        assert!(matches!(retry, Err(ConnectorError::Declined(decline)) if decline == expected));
    }
    no_violations(&fake);
}

#[tokio::test]
async fn a_processing_payment_is_retrieved_until_it_settles() {
    let fake = FakeHyperswitch::start();
    let connector = connector(&fake);
    let reference = payment_reference(12);
    let result = connector
        .authorise(request(
            &reference,
            fake::CARD_SLOW_PROCESSOR,
            6_540,
            CaptureMethod::Manual,
        ))
        .await;
    assert!(result.is_ok(), "{result:?}");
    assert_eq!(fake.count(Route::RetrievePayment), 1);
    no_violations(&fake);
}

#[tokio::test]
async fn a_5xx_after_the_create_landed_is_resolved_by_retrieving_it() {
    let fake = FakeHyperswitch::start();
    let connector = connector(&fake);
    fake.inject(Route::CreatePayment, Fault::ActThenFail(500), 1);
    let reference = payment_reference(13);
    let issuer_ref = authorised(&connector, &reference, CaptureMethod::Manual).await;
    assert_eq!(issuer_ref, reference);
    assert_eq!(fake.count(Route::CreatePayment), 1, "not sent twice");
    assert_eq!(fake.count(Route::RetrievePayment), 1);
    no_violations(&fake);
}

#[tokio::test]
async fn a_5xx_before_the_create_landed_is_sent_again() {
    let fake = FakeHyperswitch::start();
    let connector = connector(&fake);
    fake.inject(Route::CreatePayment, Fault::FailWithoutActing(503), 1);
    let reference = payment_reference(14);
    authorised(&connector, &reference, CaptureMethod::Manual).await;
    assert_eq!(fake.count(Route::CreatePayment), 2);
    let sent = fake.bodies(Route::CreatePayment);
    assert_eq!(sent[0], sent[1], "the same payment id both times");
    no_violations(&fake);
}

#[tokio::test]
async fn a_timeout_after_the_create_landed_is_resolved_by_retrieving_it() {
    let fake = FakeHyperswitch::start();
    let connector = connector_with_timeout(&fake, TIMEOUT_MS_SHORT);
    fake.inject(Route::CreatePayment, Fault::ActThenStall(STALL), 1);
    let reference = payment_reference(15);
    let started = Instant::now();
    let issuer_ref = authorised(&connector, &reference, CaptureMethod::Manual).await;
    assert_eq!(issuer_ref, reference);
    assert!(
        started.elapsed() < STALL,
        "did not wait for the stalled answer"
    );
    assert_eq!(fake.count(Route::CreatePayment), 1);
    no_violations(&fake);
}

#[tokio::test]
async fn a_timeout_that_retrieving_cannot_resolve_is_a_timeout() {
    let fake = FakeHyperswitch::start();
    let connector = connector_with_timeout(&fake, TIMEOUT_MS_SHORT);
    fake.inject(Route::CreatePayment, Fault::ActThenStall(STALL), 1);
    // Every retrieve this call can make fails.
    let retrieves = REQUESTS_PER_CALL_MAX as usize - 1;
    fake.inject(
        Route::RetrievePayment,
        Fault::FailWithoutActing(503),
        retrieves,
    );
    let reference = payment_reference(16);
    let result = connector
        .authorise(request(
            &reference,
            CARD_APPROVED,
            6_540,
            CaptureMethod::Manual,
        ))
        .await;
    assert!(matches!(result, Err(ConnectorError::Timeout)), "{result:?}");
    let requests = fake.count(Route::CreatePayment) + fake.count(Route::RetrievePayment);
    assert_eq!(requests, REQUESTS_PER_CALL_MAX as usize, "bounded");
    // The payment did land: the caller's retry with the same reference
    // finds it once Hyperswitch answers again.
    let retry = connector
        .authorise(request(
            &reference,
            CARD_APPROVED,
            6_540,
            CaptureMethod::Manual,
        ))
        .await;
    assert!(retry.is_ok(), "{retry:?}");
    assert_eq!(fake.count(Route::CreatePayment), 2);
    no_violations(&fake);
}

#[tokio::test]
async fn lost_capture_and_refund_answers_are_resolved_by_retrieving() {
    let fake = FakeHyperswitch::start();
    let connector = connector_with_timeout(&fake, TIMEOUT_MS_SHORT);
    let issuer_ref = authorised(&connector, &payment_reference(17), CaptureMethod::Manual).await;
    fake.inject(Route::CapturePayment, Fault::ActThenFail(502), 1);
    assert!(
        connector
            .capture(&issuer_ref, 6_540, "capture_1")
            .await
            .is_ok()
    );
    assert_eq!(fake.count(Route::CapturePayment), 1);
    fake.inject(Route::CreateRefund, Fault::ActThenStall(STALL), 1);
    assert!(connector.refund(&issuer_ref, 1_000, "ref_1").await.is_ok());
    assert_eq!(fake.count(Route::CreateRefund), 1);
    assert_eq!(fake.count(Route::RetrieveRefund), 1);
    no_violations(&fake);
}

#[tokio::test]
async fn what_hyperswitch_cannot_take_is_refused_before_sending() {
    let fake = FakeHyperswitch::start();
    let connector = connector(&fake);
    let mut tapped = request(
        &payment_reference(19),
        CARD_APPROVED,
        6_540,
        CaptureMethod::Manual,
    );
    tapped.tap = Some(facepay_connector::CardTap {
        data: facepay_emv_free_tap(),
        arqc: [0; 8],
    });
    assert!(rejection_of(connector.authorise(tapped).await).contains("tap"));
    assert!(connector.capture("../refunds", 1, "c").await.is_err());
    assert_eq!(fake.count(Route::CreatePayment), 0);
    no_violations(&fake);
}

/// Transaction data for a tap the connector must refuse; its content does
/// not matter.
fn facepay_emv_free_tap() -> facepay_emv::TransactionData {
    facepay_emv::TransactionData {
        amount_minor: 6_540,
        other_amount_minor: 0,
        terminal_country: 840,
        tvr: [0; 5],
        currency: 840,
        date: (26, 1, 1),
        transaction_type: 0,
        unpredictable_number: 1,
        aip: [0; 2],
        atc: 1,
    }
}

#[tokio::test]
async fn a_wrong_api_key_is_a_rejection_not_a_timeout() {
    let fake = FakeHyperswitch::start();
    let mut wrong = config(&fake, 2_000);
    wrong.api_key = "snd_not_the_key".into();
    let Ok(connector) = HyperswitchConnector::new(&wrong) else {
        panic!("a wrong key is still a well-formed key");
    };
    let result = connector
        .authorise(request(
            &payment_reference(20),
            CARD_APPROVED,
            6_540,
            CaptureMethod::Manual,
        ))
        .await;
    assert!(rejection_of(result).contains("IR_01"));
    assert_eq!(fake.violations().len(), 1, "the fake saw the missing key");
}

#[tokio::test]
async fn works_as_a_shared_trait_object() {
    let fake = FakeHyperswitch::start();
    let connector: Arc<dyn Connector> = Arc::new(connector(&fake));
    assert_eq!(connector.name(), "hyperswitch");
    let task = tokio::spawn({
        let connector = Arc::clone(&connector);
        async move {
            connector
                .authorise(request(
                    &payment_reference(21),
                    CARD_APPROVED,
                    100,
                    CaptureMethod::Manual,
                ))
                .await
        }
    });
    let result = task.await;
    assert!(matches!(result, Ok(Ok(_))), "{result:?}");
    no_violations(&fake);
}

#[tokio::test]
async fn a_card_is_verified_once_with_its_code_and_kept_by_its_network_id() {
    let fake = FakeHyperswitch::start();
    let connector = connector(&fake);
    let reference = "pm_0123456789abcdef0123456789abcdef";
    let credential = verified(&connector, reference, CARD_APPROVED).await;
    assert_eq!(credential.connector, "hyperswitch");
    assert_eq!(
        fake.card_of_network_id(&credential.id).as_deref(),
        Some(CARD_APPROVED),
        "the processor's network transaction id is the credential"
    );
    let sent = fake.bodies(Route::CreatePayment);
    assert_eq!(sent.len(), 1);
    let body = &sent[0];
    assert_eq!(body["payment_id"], json!(reference));
    assert_eq!(body["amount"], json!(0));
    assert_eq!(body["confirm"], json!(true));
    assert_eq!(body["payment_type"], json!("setup_mandate"));
    assert_eq!(body["setup_future_usage"], json!("off_session"));
    assert_eq!(body["customer_id"], json!("usr_0123456789abcdef"));
    assert_eq!(
        body["customer_acceptance"],
        json!({"acceptance_type": "offline", "accepted_at": "2026-01-01T00:00:00Z"})
    );
    assert!(body.get("capture_method").is_none(), "nothing to capture");
    assert_eq!(
        body["payment_method_data"]["card"],
        json!({"card_number": CARD_APPROVED, "card_exp_month": "07", "card_exp_year": "2099", "card_cvc": "123"})
    );
    // A retry finds the verification by its id and gives the same credential.
    let again = verified(&connector, reference, CARD_APPROVED).await;
    assert_eq!(again, credential);
    assert_eq!(fake.count(Route::RetrievePayment), 1);
    no_violations(&fake);
}

#[tokio::test]
async fn a_payment_on_file_names_the_stored_credential_without_the_code() {
    let fake = FakeHyperswitch::start();
    let connector = connector(&fake);
    let credential = verified(&connector, "pm_on_file", CARD_APPROVED).await;
    let reference = payment_reference(30);
    let result = connector
        .authorise(on_file(
            &reference,
            CARD_APPROVED,
            &credential,
            CaptureMethod::Manual,
        ))
        .await;
    let Ok(authorisation) = result else {
        panic!("a card on file pays on its credential: {result:?}");
    };
    assert_eq!(authorisation.issuer_ref, reference);
    let sent = fake.bodies(Route::CreatePayment);
    let body = &sent[1];
    assert_eq!(body["off_session"], json!(true));
    assert_eq!(body["capture_method"], json!("manual"));
    assert_eq!(
        body["recurring_details"],
        json!({
            "type": "network_transaction_id_and_card_details",
            "data": {
                "card_number": CARD_APPROVED,
                "card_exp_month": "07",
                "card_exp_year": "2099",
                "network_transaction_id": credential.id,
            },
        })
    );
    for absent in [
        "payment_method_data",
        "payment_method",
        "setup_future_usage",
        "customer_acceptance",
    ] {
        assert!(body.get(absent).is_none(), "{absent}: {body}");
    }
    assert!(!body.to_string().contains("card_cvc"), "{body}");
    assert!(
        connector
            .capture(&authorisation.issuer_ref, 6_540, "capture_1")
            .await
            .is_ok()
    );
    no_violations(&fake);
}

#[tokio::test]
async fn a_card_without_its_credential_is_refused_before_sending() {
    let fake = FakeHyperswitch::start();
    let connector = connector(&fake);
    let mut enrolled_before = request(
        &payment_reference(31),
        CARD_APPROVED,
        6_540,
        CaptureMethod::Manual,
    );
    enrolled_before.card.security_code = None;
    let refused = connector.authorise(enrolled_before).await;
    assert!(
        matches!(refused, Err(ConnectorError::NeedsVerification)),
        "{refused:?}"
    );
    let simulated = StoredCredential {
        connector: "simulated_issuer".into(),
        id: "sim-cit-1-00000000000000aa".into(),
    };
    let elsewhere = connector
        .authorise(on_file(
            &payment_reference(32),
            CARD_APPROVED,
            &simulated,
            CaptureMethod::Manual,
        ))
        .await;
    assert_eq!(
        elsewhere.map_err(|e| e.code()).err(),
        Some("card_needs_verification")
    );
    assert_eq!(fake.count(Route::CreatePayment), 0);
    no_violations(&fake);
}

#[tokio::test]
async fn a_network_id_of_another_card_is_declined_by_the_processor() {
    let fake = FakeHyperswitch::start();
    let connector = connector(&fake);
    let credential = verified(&connector, "pm_visa", CARD_APPROVED).await;
    let other_card = connector
        .authorise(on_file(
            &payment_reference(33),
            "5555555555554444",
            &credential,
            CaptureMethod::Automatic,
        ))
        .await;
    assert!(
        matches!(
            other_card,
            Err(ConnectorError::Declined(Decline::DoNotHonour))
        ),
        "{other_card:?}"
    );
    no_violations(&fake);
}

#[tokio::test]
async fn verifications_decline_as_the_processor_says() {
    let fake = FakeHyperswitch::start();
    let connector = connector(&fake);
    let declined = connector
        .verify_card(verification("pm_declined", fake::CARD_DECLINED))
        .await;
    assert!(
        matches!(
            declined,
            Err(ConnectorError::Declined(Decline::DoNotHonour))
        ),
        "{declined:?}"
    );
    // A zero amount needs no funds; the payment on file finds none.
    let credential = verified(&connector, "pm_poor", fake::CARD_INSUFFICIENT_FUNDS).await;
    let poor = connector
        .authorise(on_file(
            &payment_reference(34),
            fake::CARD_INSUFFICIENT_FUNDS,
            &credential,
            CaptureMethod::Manual,
        ))
        .await;
    assert!(matches!(
        poor,
        Err(ConnectorError::Declined(Decline::InsufficientFunds))
    ));
    let no_network_id = connector
        .verify_card(verification("pm_no_network_id", fake::CARD_NO_NETWORK_ID))
        .await;
    assert!(rejection_of(no_network_id).contains("network transaction id"));
    let mut no_code = verification("pm_no_code", CARD_APPROVED);
    no_code.card.security_code = None;
    assert!(rejection_of(connector.verify_card(no_code).await).contains("security code"));
    assert_eq!(fake.count(Route::CreatePayment), 4, "the last was not sent");
    no_violations(&fake);
}

#[tokio::test]
async fn a_lost_verification_answer_is_resolved_by_retrieving_it() {
    let fake = FakeHyperswitch::start();
    let connector = connector(&fake);
    fake.inject(Route::CreatePayment, Fault::ActThenFail(502), 1);
    let credential = verified(&connector, "pm_lost_answer", CARD_APPROVED).await;
    assert_eq!(fake.count(Route::CreatePayment), 1, "not sent twice");
    assert_eq!(
        fake.card_of_network_id(&credential.id).as_deref(),
        Some(CARD_APPROVED)
    );
    no_violations(&fake);
}

/// The durable version of this lives with the HTTP server; here, a bounded
/// in-memory stand-in shows that deliveries are told apart by event id.
struct SeenEvents {
    order: VecDeque<String>,
    ids: HashSet<String>,
    capacity: usize,
}

impl SeenEvents {
    fn new(capacity: usize) -> Self {
        SeenEvents {
            order: VecDeque::new(),
            ids: HashSet::new(),
            capacity,
        }
    }

    /// True the first time an event id is seen.
    fn first_delivery(&mut self, event_id: &str) -> bool {
        if self.ids.contains(event_id) {
            return false;
        }
        if self.order.len() == self.capacity
            && let Some(oldest) = self.order.pop_front()
        {
            self.ids.remove(&oldest);
        }
        self.order.push_back(event_id.to_owned());
        self.ids.insert(event_id.to_owned());
        true
    }
}

const WEBHOOK_PAYMENT: &str = include_str!("fixtures/webhooks/payment_succeeded.json");
const WEBHOOK_REFUND: &str = include_str!("fixtures/webhooks/refund_succeeded.json");

#[test]
fn a_duplicate_webhook_is_recognised_by_its_event_id() {
    let body = WEBHOOK_PAYMENT.as_bytes();
    let signature = webhook::sign(body, WEBHOOK_SECRET);
    let mut seen = SeenEvents::new(16);
    let mut handled = 0;
    for _delivery in 0..2 {
        let event = webhook::verify_and_parse(Some(&signature), body, WEBHOOK_SECRET);
        let Ok(event) = event else {
            panic!("a signed delivery verifies: {event:?}");
        };
        assert_eq!(event.id, "evt_0190a4b8c2d37e6f8a9b0c1d2e3f4a5b");
        assert_eq!(event.event_type, "payment_succeeded");
        assert_eq!(event.merchant_id, "merchant_myyyyyyyyyyyy");
        assert_eq!(
            event.object,
            WebhookObject::Payment {
                payment_id: "pay_savecard_xxxxxxxxxxxx".into(),
                status: PaymentStatus::Succeeded,
            }
        );
        if seen.first_delivery(&event.id) {
            handled += 1;
        }
    }
    assert_eq!(handled, 1, "the second delivery is a duplicate");
}

#[test]
fn the_seen_events_stand_in_is_bounded() {
    let mut seen = SeenEvents::new(2);
    assert!(seen.first_delivery("evt_1"));
    assert!(seen.first_delivery("evt_2"));
    assert!(!seen.first_delivery("evt_1"));
    assert!(seen.first_delivery("evt_3"));
    assert_eq!(seen.order.len(), 2);
    assert!(seen.first_delivery("evt_1"), "the oldest was let go");
}

#[test]
fn a_refund_webhook_names_the_refund_and_its_payment() {
    let body = WEBHOOK_REFUND.as_bytes();
    let signature = webhook::sign(body, WEBHOOK_SECRET);
    let event = webhook::verify_and_parse(Some(&signature), body, WEBHOOK_SECRET);
    let Ok(event) = event else {
        panic!("{event:?}");
    };
    assert_eq!(event.event_type, "refund_succeeded");
    assert_eq!(
        event.object,
        WebhookObject::Refund {
            refund_id: "ref_mbabizu24mvu3mela5njyhpit4".into(),
            payment_id: "pay_mbabizu24mvu3mela5njyhpit4".into(),
            status: RefundStatus::Succeeded,
        }
    );
}

#[test]
fn a_webhook_with_a_bad_signature_is_refused() {
    let body = WEBHOOK_PAYMENT.as_bytes();
    let signature = webhook::sign(body, WEBHOOK_SECRET);
    // One character of the body changed after signing.
    let tampered = WEBHOOK_PAYMENT.replace("\"succeeded\"", "\"failed\"");
    let refused = webhook::verify_and_parse(Some(&signature), tampered.as_bytes(), WEBHOOK_SECRET);
    assert_eq!(
        refused.map_err(|e| e.code()),
        Err("webhook_signature_invalid")
    );
    // Signed with another profile's key.
    let foreign = webhook::sign(body, "another_profile_key");
    let refused = webhook::verify_and_parse(Some(&foreign), body, WEBHOOK_SECRET);
    assert_eq!(refused, Err(WebhookError::SignatureInvalid));
    let refused = webhook::verify_and_parse(None, body, WEBHOOK_SECRET);
    assert_eq!(
        refused.map_err(|e| e.code()),
        Err("webhook_signature_missing")
    );
}

fn fixture_json(text: &str) -> Value {
    serde_json::from_str(text).expect("fixture is JSON")
}

/// The fake is only as honest as its checks: every documented request
/// example passes them, and what the document forbids does not.
#[test]
fn the_fake_accepts_the_documented_requests_and_nothing_else() {
    let documented = [
        (
            "PaymentsCreateRequest",
            include_str!("fixtures/requests/payments_create_manual_capture.json"),
        ),
        (
            "PaymentsCreateRequest",
            include_str!("fixtures/requests/payments_create_card_saved.json"),
        ),
        (
            "PaymentsCreateRequest",
            include_str!("fixtures/requests/payments_create_zero_auth.json"),
        ),
        (
            "PaymentsCreateRequest",
            include_str!("fixtures/requests/payments_create_on_file_network_id.json"),
        ),
        (
            "PaymentsCaptureRequest",
            include_str!("fixtures/requests/payments_capture_partial.json"),
        ),
        (
            "PaymentsCaptureRequest",
            include_str!("fixtures/requests/payments_capture_full.json"),
        ),
        (
            "PaymentsCancelRequest",
            include_str!("fixtures/requests/payments_cancel_reason.json"),
        ),
        (
            "PaymentsCancelRequest",
            include_str!("fixtures/requests/payments_cancel_minimal.json"),
        ),
        (
            "RefundRequest",
            include_str!("fixtures/requests/refunds_create_partial.json"),
        ),
        (
            "RefundRequest",
            include_str!("fixtures/requests/refunds_create_reason.json"),
        ),
    ];
    for (schema, text) in documented {
        let problems = fake::check_shape(schema, &fixture_json(text));
        assert!(problems.is_empty(), "{schema}: {problems:?}");
    }
    let broken = [
        ("PaymentsCreateRequest", json!({"amount": 6540})),
        (
            "PaymentsCreateRequest",
            json!({"amount": "6540", "currency": "USD"}),
        ),
        (
            "PaymentsCreateRequest",
            json!({"amount": 6540, "currency": "XXX"}),
        ),
        (
            "PaymentsCreateRequest",
            json!({"amount": 6540, "currency": "USD", "capture": true}),
        ),
        (
            "PaymentsCreateRequest",
            json!({"amount": 6540, "currency": "USD", "capture_method": "auto"}),
        ),
        (
            "PaymentsCreateRequest",
            json!({"amount": 6540, "currency": "USD", "payment_method_data": {"card": {"card_number": "4242424242424242"}}}),
        ),
        (
            "PaymentsCreateRequest",
            json!({"amount": 0, "currency": "USD", "customer_acceptance": {"acceptance_type": "maybe"}}),
        ),
        (
            "PaymentsCreateRequest",
            json!({"amount": 0, "currency": "USD", "customer_acceptance": {"acceptance_type": "offline", "accepted_at": "yesterday"}}),
        ),
        (
            "PaymentsCreateRequest",
            json!({"amount": 0, "currency": "USD", "customer_acceptance": {"acceptance_type": "offline", "signed": true}}),
        ),
        (
            "PaymentsCreateRequest",
            json!({"amount": 6540, "currency": "USD", "recurring_details": {"type": "network_transaction_id", "data": "483297487231504"}}),
        ),
        (
            "PaymentsCreateRequest",
            json!({"amount": 6540, "currency": "USD", "recurring_details": {"type": "network_transaction_id_and_card_details", "data": {"card_number": "4242424242424242", "card_exp_month": "10", "card_exp_year": "25"}}}),
        ),
        (
            "PaymentsCreateRequest",
            json!({"amount": 6540, "currency": "USD", "recurring_details": {"type": "payment_method_id", "data": {"id": "pm_1"}}}),
        ),
        ("RefundRequest", json!({"amount": 100})),
        (
            "PaymentsCaptureRequest",
            json!({"amount_to_capture": "654"}),
        ),
    ];
    for (schema, body) in broken {
        assert!(
            !fake::check_shape(schema, &body).is_empty(),
            "{schema}: {body}"
        );
    }
}

/// The cypress-tests pair for a security code of the wrong length, sent to
/// the fake as it is: the fake answers what Hyperswitch answers.
#[test]
fn the_fake_answers_the_documented_error() {
    let fake = FakeHyperswitch::start();
    let pair = fixture_json(include_str!(
        "fixtures/requests/payments_create_invalid_cvc.json"
    ));
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .new_agent();
    let sent = agent
        .post(&format!("{}/payments", fake.base_url()))
        .header("api-key", API_KEY)
        .header("content-type", "application/json")
        .send(pair["request"].to_string().as_bytes());
    let Ok(mut response) = sent else {
        panic!("the fake answers: {sent:?}");
    };
    assert_eq!(
        u64::from(response.status().as_u16()),
        pair["response"]["status"].as_u64().unwrap_or_default()
    );
    let text = match response.body_mut().read_to_string() {
        Ok(text) => text,
        Err(e) => panic!("the fake answers: {e}"),
    };
    let body = fixture_json(&text);
    assert_eq!(body, pair["response"]["body"]);
    no_violations(&fake);
}
