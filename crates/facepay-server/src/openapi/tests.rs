use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use facepay_face::{EngineConfig, FaceEngine};
use facepay_models::ModelStore;
use facepay_payments::merchant::PAGE_LIMIT_MAX;
use facepay_store::payments::PaymentState;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::*;

fn document() -> Value {
    serde_json::from_str(json().unwrap()).unwrap()
}

fn schema<'a>(document: &'a Value, name: &str) -> &'a Value {
    let schema = &document["components"]["schemas"][name];
    assert!(schema.is_object(), "no schema {name}");
    schema
}

fn keys(value: &Value) -> BTreeSet<String> {
    value.as_object().unwrap().keys().cloned().collect()
}

fn methods(item: &Value) -> BTreeSet<String> {
    keys(item)
        .into_iter()
        .filter(|k| METHODS.contains(&k.as_str()))
        .collect()
}

/// Every schema in the document, with where it is.
fn schemas<'a>(value: &'a Value, at: String, out: &mut Vec<(String, &'a Value)>) {
    match value {
        Value::Object(map) => {
            if map.contains_key("type") || map.contains_key("properties") {
                out.push((at.clone(), value));
            }
            for (k, v) in map {
                schemas(v, format!("{at}/{k}"), out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                schemas(v, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

fn is_object_type(schema: &Value) -> bool {
    match &schema["type"] {
        Value::String(t) => t == "object",
        Value::Array(ts) => ts.iter().any(|t| t == "object"),
        _ => false,
    }
}

#[test]
fn no_schema_is_an_object_without_properties() {
    let document = document();
    let mut found = Vec::new();
    schemas(&document, String::new(), &mut found);
    assert!(found.len() > 100, "{}", found.len());
    let opaque: Vec<&String> = found
        .iter()
        .filter(|(_, s)| is_object_type(s))
        .filter(|(_, s)| {
            // A typed map, or an object that takes nothing (`{}` exactly).
            let extra = &s["additionalProperties"];
            let typed_map = extra.as_object().is_some_and(|a| !a.is_empty());
            let closed = extra == &json!(false);
            s.get("properties").is_none() && !typed_map && !closed
        })
        .map(|(at, _)| at)
        .collect();
    assert!(opaque.is_empty(), "objects without properties: {opaque:?}");
}

#[test]
fn no_store_row_is_a_schema_and_states_are_enums() {
    let document = document();
    let names = keys(&document["components"]["schemas"]);
    for row in [
        "Claim",
        "Block",
        "Held",
        "Program",
        "Coupon",
        "Choice",
        "TerminalStatus",
    ] {
        assert!(!names.contains(row), "{row} is a store row");
    }
    let enums = [
        ("PaymentView", "state"),
        ("PaymentView", "capture_mode"),
        ("ClaimView", "state"),
        ("TerminalView", "status"),
        ("CouponView", "kind"),
        ("BlockView", "kind"),
        ("TransferView", "state"),
        ("WindowView", "state"),
        ("PaymentMethod", "brand"),
        ("MerchantView", "status"),
        ("OnboardedTerminal", "status"),
        ("KeyView", "state"),
    ];
    for (name, field) in enums {
        let property = &schema(&document, name)["properties"][field];
        let target = property["$ref"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}.{field} is {property}"));
        let target = target.trim_start_matches("#/components/schemas/");
        assert!(
            schema(&document, target)["enum"].is_array(),
            "{name}.{field}"
        );
    }
    let states = &schema(&document, "PaymentStateView")["enum"];
    for s in PaymentState::ALL {
        assert!(
            states.as_array().unwrap().contains(&json!(s.as_str())),
            "{s:?}"
        );
    }
    for flag in ["stackable", "granted_only"] {
        assert_eq!(
            schema(&document, "CouponView")["properties"][flag]["type"],
            "boolean"
        );
    }
}

#[test]
fn onboarding_pairing_and_keys_are_documented_with_their_refusals() {
    let document = document();
    let paths = &document["paths"];
    for (path, method) in [
        ("/v1/operator/merchants", "post"),
        ("/v1/operator/merchants", "get"),
        ("/v1/operator/merchants/{id}", "get"),
        ("/v1/operator/merchants/{id}/{action}", "post"),
        ("/v1/operator/stores", "post"),
        ("/v1/operator/terminals", "post"),
        ("/v1/operator/terminals/{id}/re-pair", "post"),
        ("/v1/operator/terminals/{id}/retire", "post"),
        ("/v1/terminals/pair", "post"),
        ("/v1/merchant/keys", "get"),
        ("/v1/merchant/keys", "post"),
        ("/v1/merchant/keys/{id}/rotate", "post"),
        ("/v1/merchant/keys/{id}/revoke", "post"),
        ("/v1/operator/merchants/{id}/keys", "post"),
        ("/v1/operator/merchants/{id}/keys/{key_id}/revoke", "post"),
        ("/v1/operator/operators", "post"),
        ("/v1/operator/keys", "post"),
        ("/v1/operator/keys/{id}/rotate", "post"),
        ("/v1/operator/keys/{id}/revoke", "post"),
    ] {
        assert!(
            paths[path][method].is_object(),
            "{method} {path} is not documented"
        );
    }
    let pair = &paths["/v1/terminals/pair"]["post"]["responses"];
    for (status, code) in [
        ("401", "pairing_code_invalid"),
        ("409", "pairing_code_used"),
        ("410", "pairing_code_expired"),
        ("429", "pairing_throttled"),
    ] {
        let text = pair[status]["description"].as_str().unwrap_or("");
        assert!(text.contains(code), "{status}: {text}");
    }
    let refund = &paths["/v1/merchant/payments/{id}/refunds"]["post"]["responses"];
    assert!(
        refund["403"]["description"]
            .as_str()
            .unwrap()
            .contains("insufficient_scope")
    );
    assert!(
        refund["401"]["description"]
            .as_str()
            .unwrap()
            .contains("key_revoked")
    );
    assert!(
        refund["409"]["description"]
            .as_str()
            .unwrap()
            .contains("payment_busy")
    );
}

#[test]
fn the_document_states_the_limits_the_edge_enforces() {
    let document = document();
    let pay = schema(&document, "PayRequest");
    let frames = &pay["properties"]["frames"];
    assert_eq!(
        frames["maxItems"],
        json!(facepay_payments::face::FRAMES_MAX),
        "{frames}"
    );
    assert_eq!(frames["minItems"], json!(1));
    for field in ["amount", "currency", "frames"] {
        assert!(pay["required"].as_array().unwrap().contains(&json!(field)));
    }
    assert_eq!(pay["additionalProperties"], json!(false));
    let list = &document["paths"]["/v1/merchant/payments"]["get"]["parameters"];
    let limit = list
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "limit")
        .unwrap();
    assert_eq!(limit["schema"]["maximum"], json!(PAGE_LIMIT_MAX));
    let enrol = &document["paths"]["/v1/users"]["post"];
    let key = enrol["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "Idempotency-Key")
        .unwrap();
    assert_eq!(key["required"], true);
    assert_eq!(key["schema"]["maxLength"], json!(IDEMPOTENCY_KEY_LEN_MAX));
    assert!(enrol["requestBody"]["required"].as_bool().unwrap());
    for status in ["400", "413", "415", "422"] {
        assert!(enrol["responses"][status].is_object(), "{status}");
    }
    // Face work without a credential is rate-limited per address.
    let analyze = &document["paths"]["/api/v1/face/analyze"]["post"];
    for operation in [enrol, analyze] {
        let limited = &operation["responses"]["429"];
        assert!(limited["headers"]["Retry-After"].is_object(), "{limited}");
    }
    let pay = &document["paths"]["/v1/terminal/payments"]["post"]["responses"]["429"];
    assert!(
        !pay["description"]
            .as_str()
            .unwrap_or("")
            .contains("rate_limited")
    );
    let claims = &document["paths"]["/v1/operator/claims"]["get"]["parameters"][0];
    assert_eq!(
        (&claims["name"], &claims["in"]),
        (&json!("state"), &json!("query"))
    );
    let date = &document["paths"]["/v1/merchant/reports/daily"]["get"]["parameters"][0];
    assert_eq!(date["schema"]["format"], "date");
    let report = &document["paths"]["/v1/merchant/reports/daily"]["get"];
    assert!(report["responses"]["401"].is_object());
    assert!(report["responses"]["403"].is_object());
}

#[test]
fn the_document_is_3_1_with_conventions_and_resolvable_refs() {
    let document = document();
    assert!(document["openapi"].as_str().unwrap().starts_with("3.1"));
    let description = document["info"]["description"].as_str().unwrap();
    for needle in [
        "\"error\"",
        "Idempotency-Key",
        "idempotency_key_reused",
        "24 hours",
        "x-facepay-signature",
        "hex(sha256(body))",
        "amount_minor",
        "text_invalid",
    ] {
        assert!(description.contains(needle), "{needle}");
    }
    let schemes = keys(&document["components"]["securitySchemes"]);
    for scheme in [
        "user_token",
        "merchant_key",
        "operator_key",
        "hub_member_key",
        "terminal_id",
        "terminal_timestamp",
        "terminal_nonce",
        "terminal_signature",
    ] {
        assert!(schemes.contains(scheme), "{scheme}");
    }
    let mut operation_ids = BTreeSet::new();
    for item in document["paths"].as_object().unwrap().values() {
        for method in methods(item) {
            let id = item[&method]["operationId"].as_str().unwrap().to_owned();
            assert!(operation_ids.insert(id.clone()), "operationId {id} twice");
        }
    }
    let mut refs = Vec::new();
    collect_refs(&document, &mut refs);
    assert!(refs.len() > 50);
    for reference in refs {
        let name = reference.trim_start_matches("#/components/schemas/");
        schema(&document, name);
    }
}

fn collect_refs(value: &Value, refs: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(reference)) = map.get("$ref") {
                refs.push(reference.clone());
            }
            map.values().for_each(|v| collect_refs(v, refs));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, refs)),
        _ => {}
    }
}

async fn router() -> (axum::Router, tempfile::TempDir) {
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
    (crate::router(&app), dir)
}

async fn send(router: &axum::Router, method: &str, uri: &str) -> (StatusCode, String, Value) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::empty())
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
    (status, content_type, json)
}

/// A documented path with each parameter filled in.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|segment| {
            if segment.starts_with('{') {
                "x"
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The router and the document describe the same operations: each
/// documented one is routed (it never answers the fallback's 404 or a
/// 405), and each path answers exactly the methods the document lists.
#[tokio::test]
async fn the_router_serves_exactly_the_documented_operations() {
    let (router, _dir) = router().await;
    let (status, content_type, served) = send(&router, "GET", "/openapi.json").await;
    assert_eq!(
        (status, content_type.as_str()),
        (StatusCode::OK, "application/json")
    );
    assert_eq!(served, document());
    let probed = ["GET", "PUT", "POST", "DELETE", "PATCH"];
    let (mut documented, mut routed) = (0, 0);
    for (path, item) in served["paths"].as_object().unwrap() {
        let listed = methods(item);
        documented += listed.len();
        for method in probed {
            let (status, _, body) = send(&router, method, &concrete(path)).await;
            let fell_through = body["error"]["code"] == "not_found";
            assert!(!fell_through, "{method} {path} reached the fallback");
            if status != StatusCode::METHOD_NOT_ALLOWED {
                routed += 1;
                assert!(
                    listed.contains(&method.to_lowercase()),
                    "{method} {path} is routed but not documented ({status})"
                );
            } else {
                assert_eq!(
                    body["error"]["code"], "method_not_allowed",
                    "{method} {path}"
                );
            }
        }
    }
    assert_eq!(routed, documented);
}

#[tokio::test]
async fn unknown_routes_methods_and_bad_paths_answer_in_the_error_shape() {
    let (router, _dir) = router().await;
    let cases = [
        ("GET", "/v1/nowhere", StatusCode::NOT_FOUND, "not_found"),
        ("GET", "/web/nothing.js", StatusCode::NOT_FOUND, "not_found"),
        (
            "PATCH",
            "/v1/users/me",
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            "GET",
            "/v1/users",
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
    ];
    for (method, uri, status, code) in cases {
        let (got, content_type, body) = send(&router, method, uri).await;
        assert_eq!(
            (got, body["error"]["code"].as_str()),
            (status, Some(code)),
            "{method} {uri}"
        );
        assert_eq!(content_type, "application/json");
    }
    let request = Request::patch("/v1/users/me").body(Body::empty()).unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let allow = response.headers()[header::ALLOW]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(allow.contains("GET") && allow.contains("DELETE"), "{allow}");
}

#[tokio::test]
async fn the_docs_page_is_served() {
    let (router, _dir) = router().await;
    let request = Request::get("/docs").body(Body::empty()).unwrap();
    let response = router.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("/openapi.json"));
}
