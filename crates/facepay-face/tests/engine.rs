//! The engine on real models and real photos. Needs `facepay models fetch`
//! (scripts/test.sh runs it) and the face photos (scripts/faces.sh).

use facepay_face::detect::{self, Detection, DetectorConfig};
use facepay_face::runtime::{Model, RuntimeOptions, load_model};
use facepay_face::{
    Backend, DecodeError, EngineConfig, EngineError, FaceEngine, QualityPolicy, QualityReason,
    decode,
};
use facepay_models::{ModelStore, catalogue};

fn store() -> ModelStore {
    ModelStore::open_default()
}

fn photo(relative: &str) -> Vec<u8> {
    let path = facepay_models::faces_dir().join(relative);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}; run scripts/faces.sh", path.display()))
}

fn engine(backend: Backend) -> FaceEngine {
    let config = EngineConfig {
        backend,
        ..EngineConfig::default()
    };
    FaceEngine::load(&store(), config).unwrap_or_else(|e| panic!("{e}; run `facepay models fetch`"))
}

fn model(file: &str, backend: Backend) -> Box<dyn Model> {
    let store = store();
    let library = store.require(catalogue::ONNXRUNTIME_LIBRARY).unwrap();
    let options = RuntimeOptions {
        backend,
        threads_intra: 1,
        sessions: 1,
        onnxruntime_library: Some(&library),
    };
    load_model(&store.require(file).unwrap(), &options).unwrap()
}

fn max_landmark_distance_px(a: &Detection, b: &Detection) -> f32 {
    a.landmarks
        .iter()
        .zip(&b.landmarks)
        .map(|(p, q)| p.distance(*q))
        .fold(0.0, f32::max)
}

/// The folded block-quantized YuNet against the official float32 YuNet: same
/// faces, same landmarks within a pixel or two, close scores. They cannot be
/// equal: int8 weights round the float ones.
#[test]
fn folded_yunet_agrees_with_the_float32_original() {
    let folded = model(catalogue::YUNET, Backend::Tract);
    let original = model(catalogue::YUNET_REFERENCE, Backend::Tract);
    let config = DetectorConfig::default();
    for file in [
        "insightface/t1.jpg",
        "face_recognition/obama.jpg",
        "johns/John_Simm/000288_00470387.jpg",
    ] {
        let image = decode(&photo(file)).unwrap();
        let a = detect::detect(folded.as_ref(), &image, &config).unwrap();
        let b = detect::detect(original.as_ref(), &image, &config).unwrap();
        assert_eq!(a.len(), b.len(), "{file}: face counts differ");
        for face in &a {
            let twin = b
                .iter()
                .max_by(|x, y| {
                    x.bbox
                        .intersection_over_union(&face.bbox)
                        .total_cmp(&y.bbox.intersection_over_union(&face.bbox))
                })
                .unwrap();
            assert!(
                twin.bbox.intersection_over_union(&face.bbox) > 0.9,
                "{file}: {face:?} vs {twin:?}"
            );
            let eye_distance = face.landmarks[0].distance(face.landmarks[1]);
            assert!(
                max_landmark_distance_px(face, twin) < 0.05 * eye_distance,
                "{file}: landmarks drift {face:?} vs {twin:?}"
            );
            assert!(
                (face.score - twin.score).abs() < 0.05,
                "{file}: scores {} vs {}",
                face.score,
                twin.score
            );
        }
    }
}

/// ONNX Runtime and tract on the same inputs give the same raw outputs.
#[test]
fn runtimes_agree() {
    let image = decode(&photo("insightface/t1.jpg")).unwrap();
    let input = detect::letterbox(&image);
    let shape = [1, 3, detect::INPUT_SIZE_PX, detect::INPUT_SIZE_PX];
    let ort = model(catalogue::YUNET, Backend::Ort)
        .run(&shape, &input.tensor)
        .unwrap();
    let tract = model(catalogue::YUNET, Backend::Tract)
        .run(&shape, &input.tensor)
        .unwrap();
    assert_eq!(ort.len(), 12);
    for (a, b) in ort.iter().zip(&tract) {
        assert_eq!(a.shape, b.shape);
        let worst = a
            .data
            .iter()
            .zip(&b.data)
            .map(|(x, y)| (x - y).abs() / (1.0 + x.abs()))
            .fold(0.0, f32::max);
        assert!(worst < 1e-3, "YuNet outputs differ by {worst}");
    }

    let ort_engine = engine(Backend::Ort);
    let tract_engine = engine(Backend::Tract);
    let faces = ort_engine.detect(&image).unwrap();
    let aligned: Vec<_> = faces
        .iter()
        .map(|f| ort_engine.align(&image, f).unwrap())
        .collect();
    let a = ort_engine.embed(&aligned).unwrap();
    let b = tract_engine.embed(&aligned).unwrap();
    for (x, y) in a.iter().zip(&b) {
        let cosine = x.cosine(y).unwrap();
        assert!(cosine > 0.9999, "SFace embeddings differ: cosine {cosine}");
    }
}

/// A batch of faces gives the same templates as one face at a time.
#[test]
fn batch_embedding_equals_single() {
    for backend in [Backend::Ort, Backend::Tract] {
        let engine = engine(backend);
        let image = decode(&photo("insightface/t1.jpg")).unwrap();
        let faces = engine.detect(&image).unwrap();
        assert_eq!(faces.len(), 6, "the group photo has six people");
        let aligned: Vec<_> = faces
            .iter()
            .map(|f| engine.align(&image, f).unwrap())
            .collect();
        let batch = engine.embed(&aligned).unwrap();
        for (crop, from_batch) in aligned.iter().zip(&batch) {
            let single = engine.embed(std::slice::from_ref(crop)).unwrap().remove(0);
            assert!(single.cosine(from_batch).unwrap() > 0.99999, "{backend}");
        }
    }
}

/// One model used from several threads at once, through its pool of
/// ONNX Runtime sessions, gives each input exactly what one run alone gives.
/// The pool holds two sessions on two cores or more (one on a single core,
/// where the threads take turns on it).
#[test]
fn sessions_used_at_once_give_what_one_run_gives() {
    let config = EngineConfig {
        sessions: 2,
        ..EngineConfig::default()
    };
    let engine = FaceEngine::load(&store(), config).unwrap();
    let mut crops = Vec::new();
    for file in ["insightface/t1.jpg", "face_recognition/obama.jpg"] {
        let image = decode(&photo(file)).unwrap();
        for face in engine.detect(&image).unwrap() {
            crops.push(engine.align(&image, &face).unwrap());
        }
    }
    assert_eq!(crops.len(), 7, "six people in the group photo, one alone");
    let alone: Vec<_> = crops
        .iter()
        .map(|crop| engine.embed(std::slice::from_ref(crop)).unwrap())
        .collect();
    let (threads, rounds) = (4, 3);
    std::thread::scope(|scope| {
        for thread in 0..threads {
            let (engine, crops, alone) = (&engine, &crops, &alone);
            scope.spawn(move || {
                for turn in 0..rounds * crops.len() {
                    let i = (thread + turn) % crops.len();
                    let at_once = engine.embed(std::slice::from_ref(&crops[i])).unwrap();
                    assert_eq!(at_once, alone[i], "face {i} on thread {thread}");
                }
            });
        }
    });
}

#[test]
fn same_person_scores_above_threshold_and_others_below() {
    let engine = engine(Backend::Ort);
    let template = |file: &str| {
        let analysis = engine
            .analyze(&photo(file), &QualityPolicy::payment())
            .unwrap();
        analysis
            .chosen
            .and_then(|c| c.template)
            .expect("a template")
    };
    let obama = template("face_recognition/obama.jpg");
    let obama2 = template("face_recognition/obama2.jpg");
    let biden = template("face_recognition/biden.jpg");
    let simm = template("johns/John_Simm/000288_00470387.jpg");
    assert!(obama.cosine(&obama2).unwrap() > 0.5);
    assert!(obama.cosine(&biden).unwrap() < 0.3);
    assert!(obama.cosine(&simm).unwrap() < 0.3);
    assert_eq!(obama.vector.len(), 128);
    let norm: f32 = obama.vector.iter().map(|v| v * v).sum();
    assert!((norm - 1.0).abs() < 1e-4);
    assert_eq!(obama.model.name, "sface-2021dec");
}

#[test]
fn the_pipeline_names_its_rejections() {
    let engine = engine(Backend::Ort);
    // A blank frame has no face.
    let blank = image::RgbImage::from_pixel(640, 480, image::Rgb([128, 128, 128]));
    let mut bytes = Vec::new();
    image::codecs::png::PngEncoder::new(&mut bytes)
        .write_image(blank.as_raw(), 640, 480, image::ExtendedColorType::Rgb8)
        .unwrap();
    let analysis = engine.analyze(&bytes, &QualityPolicy::enrolment()).unwrap();
    assert_eq!(analysis.rejections, vec![QualityReason::NoFace]);
    assert!(analysis.chosen.is_none());

    // The group photo is refused for enrolment (several faces) but a
    // payment frame with bystanders still goes through.
    let group = photo("insightface/t1.jpg");
    let enrolment = engine.analyze(&group, &QualityPolicy::enrolment()).unwrap();
    assert!(enrolment.rejections.contains(&QualityReason::MultipleFaces));
    assert!(enrolment.chosen.unwrap().template.is_none());
    let payment = engine.analyze(&group, &QualityPolicy::payment()).unwrap();
    assert!(payment.rejections.is_empty(), "{:?}", payment.rejections);
    assert!(payment.chosen.unwrap().template.is_some());
}

use image::ImageEncoder;

/// Hostile uploads get a typed error with a stable code, never a panic.
#[test]
fn bad_inputs_are_typed_errors() {
    let engine = engine(Backend::Ort);
    let policy = QualityPolicy::payment();
    let jpeg = photo("face_recognition/obama.jpg");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", vec![], "image_empty"),
        ("text", b"{\"amount\": 100}".to_vec(), "not_an_image"),
        (
            "truncated jpeg",
            jpeg[..jpeg.len() / 3].to_vec(),
            "image_truncated",
        ),
        ("header only", jpeg[..600].to_vec(), "image_truncated"),
        (
            "over 8 MB",
            vec![0xFF; 8 * 1024 * 1024 + 1],
            "image_too_large",
        ),
    ];
    for (name, bytes, code) in cases {
        match engine.analyze(&bytes, &policy) {
            Err(error @ EngineError::Decode(_)) => {
                assert_eq!(error.code(), code, "{name}: {error}")
            }
            other => panic!("{name}: expected a decode error, got {other:?}"),
        }
    }
    assert!(matches!(decode(&[]), Err(DecodeError::Empty)));
}
