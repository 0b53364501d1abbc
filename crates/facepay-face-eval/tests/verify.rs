//! Accuracy on the labelled photos: dlib's five Johns (11 photos each),
//! Obama (3) and Biden (1). With SFace at OpenCV's threshold of 0.363 the
//! set must have no false match and no false non-match.

use facepay_face::{EngineConfig, FaceEngine, QualityPolicy};
use facepay_face_eval::verify;
use facepay_models::ModelStore;

#[test]
fn sface_makes_no_error_at_its_threshold() {
    let faces = facepay_models::faces_dir();
    let mut photos = verify::list_photos(&[faces.join("johns")]).expect("run scripts/faces.sh");
    for (person, file) in [
        ("Barack_Obama", "obama.jpg"),
        ("Barack_Obama", "obama2.jpg"),
        ("Barack_Obama", "obama3.jpg"),
        ("Joe_Biden", "biden.jpg"),
    ] {
        photos.push(verify::Photo {
            person: person.into(),
            path: faces.join("face_recognition").join(file),
        });
    }
    assert_eq!(photos.len(), 59);

    let engine = FaceEngine::load(&ModelStore::open_default(), EngineConfig::default())
        .unwrap_or_else(|e| panic!("{e}; run `facepay models fetch`"));
    // Comparison takes any face the detector finds; the quality gate is
    // for enrolment, and these 150x150 crops are small by design.
    let mut policy = QualityPolicy::payment();
    policy.eye_distance_px_min = 0.0;
    policy.sharpness_min = 0.0;
    policy.brightness_min = 0.0;
    let mut templates = Vec::new();
    for photo in &photos {
        let bytes = std::fs::read(&photo.path).unwrap();
        let analysis = engine.analyze(&bytes, &policy).unwrap();
        let template = analysis
            .chosen
            .and_then(|c| c.template)
            .unwrap_or_else(|| panic!("{}: {:?}", photo.path.display(), analysis.rejections));
        templates.push((photo.person.clone(), template.vector));
    }
    let report = verify::evaluate(&templates, Vec::new(), &[0.363]);
    assert_eq!(report.people, 7);
    assert_eq!(report.genuine_pairs, 5 * 55 + 3);
    let at = report.rates[0];
    assert_eq!(
        (at.false_matches, at.false_non_matches),
        (0, 0),
        "{report:?}"
    );
    assert_eq!(report.equal_error_rate, 0.0);
    assert!(report.genuine_score_min > 0.363 && report.impostor_score_max < 0.363);
}
