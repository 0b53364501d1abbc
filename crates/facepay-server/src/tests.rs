//! The API on real models: good photos answer, bad input gets a 4xx with a
//! stable code, never a panic.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use facepay_face::{EngineConfig, FaceEngine};
use facepay_models::ModelStore;
use http_body_util::BodyExt;
use tower::ServiceExt;

async fn app() -> axum::Router {
    let engine = FaceEngine::load(&ModelStore::open_default(), EngineConfig::default())
        .unwrap_or_else(|e| panic!("{e}; run `facepay models fetch`"));
    let dir = tempfile::tempdir().unwrap();
    let store = facepay_store::Store::open(&facepay_store::Store::sqlite_url(dir.path()).unwrap())
        .await
        .unwrap();
    let app = crate::root::embedded_app(
        store,
        std::sync::Arc::new(engine),
        std::sync::Arc::new(facepay_store::SystemClock),
        dir.path(),
        facepay_payments::Config::default(),
    )
    .await
    .unwrap();
    super::router(&app)
}

fn photo() -> Vec<u8> {
    let dir = std::env::var_os("FACEPAY_FACES_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/faces")
        });
    std::fs::read(dir.join("face_recognition/obama.jpg")).expect("run scripts/faces.sh")
}

async fn post(
    app: axum::Router,
    content_type: &str,
    body: Vec<u8>,
) -> (StatusCode, serde_json::Value) {
    let request = Request::post("/api/v1/face/analyze")
        .header("content-type", content_type)
        .body(Body::from(body))
        .unwrap();
    let response = app.oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    (status, json)
}

#[tokio::test]
async fn a_photo_is_analysed() {
    let (status, body) = post(app().await, "image/jpeg", photo()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["faces"].as_array().unwrap().len(), 1);
    assert_eq!(body["rejections"].as_array().unwrap().len(), 0);
    assert_eq!(
        body["chosen"]["template"]["vector"]
            .as_array()
            .unwrap()
            .len(),
        128
    );
}

#[tokio::test]
async fn bad_input_is_a_client_error_with_a_code() {
    let jpeg = photo();
    let cases = [
        (
            "application/json",
            b"{\"a\":1}".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            "image/jpeg",
            jpeg[..jpeg.len() / 2].to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "image_truncated",
        ),
        (
            "image/png",
            b"not a png at all".to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "not_an_image",
        ),
        (
            "image/jpeg",
            Vec::new(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "image_empty",
        ),
    ];
    for (content_type, body, status, code) in cases {
        let (got_status, got) = post(app().await, content_type, body).await;
        assert_eq!(got_status, status, "{content_type} {got}");
        assert_eq!(got["error"]["code"], code, "{got}");
        assert!(
            got["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
}

#[tokio::test]
async fn an_oversized_upload_is_refused() {
    let (status, body) = post(app().await, "image/jpeg", vec![0xFF; 9 * 1024 * 1024]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["error"]["code"], "image_too_large");
}
