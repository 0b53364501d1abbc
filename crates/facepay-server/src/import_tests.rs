//! The bulk import (`Identity::import`) stores accounts as an enrolment
//! does, so an imported payer pays by face; a batch with one bad account
//! stores none of it. On SQLite and (when CI gives one) PostgreSQL.

use std::sync::Arc;

use facepay_face::{FaceEngine, QualityPolicy};
use facepay_payments::DecisionPolicy;
use facepay_payments::api::CardInput;
use facepay_payments::identity::import::{IMPORT_BATCH_MAX, ImportedAccount};

use super::flow_tests::{Harness, engine_with_logs, lenient, payment, photos, verify};

const OBAMA_PHONE: &str = "+821012345678";
const BIDEN_PHONE: &str = "+821098765432";

/// The face in `photo` as this server's model embeds it.
fn embedded(engine: &FaceEngine, photo: &str) -> Vec<f32> {
    let bytes = std::fs::read(photos().join(photo)).unwrap();
    let analysis = engine.analyze(&bytes, &QualityPolicy::enrolment()).unwrap();
    analysis.chosen.unwrap().template.unwrap().vector
}

fn account(phone: &str, pin_hash: &str, card: &str, vector: &[f32]) -> ImportedAccount {
    ImportedAccount {
        phone: phone.to_owned(),
        pin_hash: pin_hash.to_owned(),
        card: CardInput {
            number: card.to_owned(),
            expiry_month: 12,
            expiry_year: 2031,
            security_code: facepay_connector::simulator::printed_security_code(card).to_owned(),
        },
        vector: vector.to_vec(),
    }
}

#[tokio::test]
async fn an_imported_payer_pays_by_face_and_a_bad_batch_stores_nothing() {
    let engine = engine_with_logs();
    let obama = embedded(&engine, "face_recognition/obama.jpg");
    let biden = embedded(&engine, "face_recognition/biden.jpg");
    let pin_hash = facepay_payments::keys::hash_pin("123456").unwrap();
    let dir = tempfile::tempdir().unwrap();
    for store in facepay_store::testing::stores(dir.path()).await.unwrap() {
        let backend = store.backend().name();
        let data = dir.path().join(backend);
        let config = lenient(DecisionPolicy::default());
        let h = Harness::new(store.clone(), Arc::clone(&engine), &data, config).await;
        let identity = &h.app.services.identity;

        let too_many = (0..=IMPORT_BATCH_MAX)
            .map(|_| account(OBAMA_PHONE, &pin_hash, "4242424242424242", &obama))
            .collect();
        let refused = identity.import(too_many).await.unwrap_err();
        assert_eq!(refused.code, "import_too_large", "{backend}");

        // A PIN that is not hashed spoils its batch: nothing of it is kept,
        // so both phones import afterwards.
        let spoilt = vec![
            account(OBAMA_PHONE, &pin_hash, "4242424242424242", &obama),
            account(BIDEN_PHONE, "123456", "5555555555554444", &biden),
        ];
        let refused = identity.import(spoilt).await.unwrap_err();
        assert_eq!(refused.code, "pin_hash_invalid", "{backend}");
        assert_eq!(identity.gallery_len(), 0, "{backend}");
        assert_eq!(identity.import(Vec::new()).await.unwrap(), 0, "{backend}");

        let batch = vec![
            account(OBAMA_PHONE, &pin_hash, "4242424242424242", &obama),
            account(BIDEN_PHONE, &pin_hash, "5555555555554444", &biden),
        ];
        assert_eq!(identity.import(batch).await.unwrap(), 2, "{backend}");
        assert_eq!(identity.gallery_len(), 2, "{backend}");
        let again = vec![account(OBAMA_PHONE, &pin_hash, "4242424242424242", &obama)];
        let refused = identity.import(again).await.unwrap_err();
        assert_eq!(refused.code, "phone_already_enrolled", "{backend}");

        let (status, paid, _) = h
            .pay("p1", &payment("face_recognition/obama3.jpg", "4500"))
            .await;
        assert_eq!(status, 201, "{backend}: {paid}");
        assert_eq!(paid["state"], "captured", "{backend}");
        assert_eq!(paid["receipt"]["payer"], "***-****-5678", "{backend}");
        verify(&store).await;
    }
}
