//! The OpenAPI 3.1 document, made from the handlers' `utoipa::path`
//! annotations and the API types' schemas, served at `/openapi.json`, and
//! the page at `/docs` that renders it. The page is one self-contained file
//! with no assets to fetch, so it works on a machine with no internet.

use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use facepay_face::decode::{IMAGE_BYTES_MAX, IMAGE_PIXELS_MAX};
use facepay_payments::api::ErrorBody;
use facepay_payments::signing::{
    HEADER_NONCE, HEADER_SIGNATURE, HEADER_TERMINAL, HEADER_TIMESTAMP, NONCE_LEN_MAX,
    NONCE_LEN_MIN, WINDOW_MS,
};
use facepay_payments::{IDEMPOTENCY_KEY_LEN_MAX, IDEMPOTENCY_RETENTION_MS};
use serde::Serialize;
use utoipa::openapi::path::{HttpMethod, OperationBuilder};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, Required, ResponseBuilder};
use utoipa::{Modify, OpenApi, ToSchema};

use super::ApiError;
use super::{api, hub, loyalty, operator};

const DOCS_HTML: &str = include_str!("docs.html");
const MILLISECONDS_PER_HOUR: i64 = 3_600_000;

/// Every error answer of the API.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorResponse<'a> {
    pub error: ErrorBody<'a>,
}

#[derive(OpenApi)]
#[openapi(
    info(title = "facepay"),
    paths(
        api::enrol,
        api::me,
        api::delete_me,
        api::delete_my_face,
        api::pay,
        api::step_up,
        api::list_payments,
        api::get_payment,
        api::capture,
        api::void,
        api::refund,
        api::daily_report,
        api::terminals,
        loyalty::view,
        loyalty::create_program,
        loyalty::create_coupon,
        loyalty::set_status,
        loyalty::choose,
        operator::enrol_my_face,
        operator::open_claim,
        operator::my_claims,
        operator::list_claims,
        operator::decide_claim,
        operator::recover_claim,
        operator::review_queue,
        operator::settle_review,
        operator::flagged_terminals,
        operator::clear_terminal_flag,
        operator::list_blocks,
        operator::add_block,
        operator::remove_block,
        hub::quote,
        hub::pay,
        hub::my_quote,
        hub::my_pay,
        hub::get_transfer,
        hub::cash_code,
        hub::withdraw,
        hub::confirm,
        hub::close_window,
        hub::report,
        hub::settle_window,
        hub::my_report,
        json,
        docs,
    ),
    modifiers(&Conventions, &ServiceEndpoints),
    tags(
        (name = "users", description = "The payer's own account, with a user token."),
        (name = "terminal", description = "Payments at a till, signed by the terminal."),
        (name = "merchant", description = "The merchant's back office, with an API key."),
        (name = "operator", description = "Fraud claims, the review queue, flagged terminals and the blocklist, with an operator key."),
        (name = "hub", description = "The cross-border hub: QR payments between member networks with FX, cash codes for foreign ATMs, settlement windows. Members call with their network's key; windows need an operator key. A transfer's Idempotency-Key with the same quote answers the same transfer; quotes and cash codes take none (an unused one expires)."),
        (name = "service", description = "Health, metrics, the face engine and these docs."),
    )
)]
pub struct ApiDoc;

/// The info description and the security schemes. Written here rather than
/// in the attribute so the numbers in the text are the constants the code
/// enforces.
struct Conventions;

impl Modify for Conventions {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let retention_hours = IDEMPOTENCY_RETENTION_MS / MILLISECONDS_PER_HOUR;
        let window_s = WINDOW_MS / 1000;
        openapi.info.description = Some(format!(
            "Enrol a face and a card, pay at a terminal by looking at it, and run a merchant's \
back office: capture, void, refund and report.

## Errors

Every error answers with a 4xx or 5xx status and the body \
`{{\"error\": {{\"code\": \"...\", \"message\": \"...\"}}}}`. The `code` is stable and meant \
for programs; the `message` is for people and may change. A declined or failed payment also \
carries the payment it left: `{{\"error\": {{...}}, \"payment\": {{...}}}}`.

## Idempotency

Every write needs an `Idempotency-Key` header: a fresh random string of 1 to \
{IDEMPOTENCY_KEY_LEN_MAX} printable ASCII characters per new request. The same key with the same \
body replays the first answer, status and body, without doing the work again, so a retry after a \
timeout is always safe. The same key with another body is refused with 409 \
`idempotency_key_reused`; while the first request still runs, a retry gets 409 \
`idempotency_in_progress`. Keys are scoped per caller (each terminal, each merchant, and for \
enrolment each phone number) and kept at least 24 hours (this server keeps them \
{retention_hours}). A request refused before it had any effect gives its key back.

## Terminal signatures

Terminal requests carry four headers: `{HEADER_TERMINAL}` (the terminal id), \
`{HEADER_TIMESTAMP}` (Unix time in milliseconds, within {window_s} s of the server's clock), \
`{HEADER_NONCE}` ({NONCE_LEN_MIN} to {NONCE_LEN_MAX} letters, digits, `-` or `_`, never reused) \
and `{HEADER_SIGNATURE}`: the base64 Ed25519 signature, by the terminal's key, of \
`METHOD\\nPATH\\nTIMESTAMP\\nNONCE\\nhex(sha256(body))`, for example \
`POST\\n/v1/terminal/payments\\n1767225600000\\n...`.

## Money

Amounts in requests are decimal strings in major units: `\"4500\"` won, `\"12.34\"` dollars. \
Answers give them the same way (`amount`) and as integers in minor units (`amount_minor`, \
`captured_minor`, `refunded_minor`, `fee_minor`, ...)."
        ));
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "user_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The user token that enrolment answered with."))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "merchant_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The merchant's secret API key."))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "operator_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An operator's secret key (fraud and risk staff)."))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "hub_member_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A member network's secret key for the hub."))
                    .build(),
            ),
        );
        let signature_headers = [
            ("terminal_id", HEADER_TERMINAL, "The terminal's id."),
            (
                "terminal_timestamp",
                HEADER_TIMESTAMP,
                "Unix time of the request in milliseconds.",
            ),
            (
                "terminal_nonce",
                HEADER_NONCE,
                "A fresh random string per request.",
            ),
            (
                "terminal_signature",
                HEADER_SIGNATURE,
                "Base64 Ed25519 signature of METHOD\\nPATH\\nTIMESTAMP\\nNONCE\\nhex(sha256(body)).",
            ),
        ];
        for (name, header, description) in signature_headers {
            components.add_security_scheme(
                name,
                SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                    header,
                    description,
                ))),
            );
        }
    }
}

/// The routes whose handlers live outside the payments API (`mod.rs`,
/// `observe.rs`), described with the builder so those handlers stay as they
/// are.
struct ServiceEndpoints;

impl Modify for ServiceEndpoints {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let text = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "text/plain",
                    ContentBuilder::new()
                        .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                        .build(),
                )
                .build()
        };
        let error = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorResponse")))
                        .build(),
                )
                .build()
        };
        let service = |summary: &str, description: &str| {
            OperationBuilder::new()
                .tag("service")
                .summary(Some(summary))
                .description(Some(description))
        };
        let paths = &mut openapi.paths;
        paths.add_path_operation(
            "/",
            vec![HttpMethod::Get],
            service(
                "Face engine demo page",
                "A page to try the face engine on a photo.",
            )
            .response(
                "200",
                ResponseBuilder::new()
                    .description("The page.")
                    .content("text/html", ContentBuilder::new().build()),
            ),
        );
        paths.add_path_operation(
            "/health",
            vec![HttpMethod::Get],
            service("Liveness probe", "Answers as long as the process serves.")
                .response("200", text("`ok`.")),
        );
        paths.add_path_operation(
            "/healthz",
            vec![HttpMethod::Get],
            service("Readiness probe", "Checks that the database answers.")
                .response("200", text("`ok`."))
                .response("503", text("The database is unreachable.")),
        );
        paths.add_path_operation(
            "/metrics",
            vec![HttpMethod::Get],
            service(
                "Prometheus metrics",
                "Request counts and latencies by route and status, and payment stage latencies.",
            )
            .response("200", text("The Prometheus text exposition format."))
            .response("503", text("The metrics recorder could not be installed.")),
        );
        let image = || {
            ContentBuilder::new()
                .schema(Some(
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary))),
                ))
                .build()
        };
        paths.add_path_operation(
            "/api/v1/face/analyze",
            vec![HttpMethod::Post],
            service(
                "Analyse a photo",
                "Finds the faces, checks the largest one against the payment quality gate and \
                 embeds it. The photo is analysed in memory and never stored.",
            )
            .request_body(Some(
                RequestBodyBuilder::new()
                    .description(Some(format!(
                        "The photo, at most {IMAGE_BYTES_MAX} bytes and {IMAGE_PIXELS_MAX} pixels."
                    )))
                    .required(Some(Required::True))
                    .content("image/jpeg", image())
                    .content("image/png", image())
                    .build(),
            ))
            .response(
                "200",
                ResponseBuilder::new()
                    .description(
                        "The analysis: `width`, `height`, `faces` (boxes, landmarks, scores), \
                         `chosen` (the largest face, with its template when quality passed), \
                         `rejections` (named quality reasons) and `timings` (microseconds per \
                         stage).",
                    )
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(ObjectBuilder::new().schema_type(Type::Object)))
                            .build(),
                    ),
            )
            .response("400", error("The body could not be read."))
            .response("413", error("`image_too_large`."))
            .response("415", error("Not `image/jpeg` or `image/png`."))
            .response("422", error("The image does not decode or is degenerate."))
            .response("503", error("`shutting_down`.")),
        );
    }
}

/// Serialised on each request: it takes well under a millisecond, and
/// nothing is kept that could go stale.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "service",
    summary = "This document",
    description = "The OpenAPI 3.1 description of this API.",
    responses((status = 200, description = "The document.", content_type = "application/json"))
)]
pub async fn json() -> Response {
    match ApiDoc::openapi().to_json() {
        Ok(document) => ([(header::CONTENT_TYPE, "application/json")], document).into_response(),
        Err(error) => {
            tracing::error!(%error, "OpenAPI document serialisation");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the API description could not be made",
            )
            .into_response()
        }
    }
}

#[utoipa::path(
    get,
    path = "/docs",
    tag = "service",
    summary = "API documentation page",
    description = "This document, readable in a browser; works offline.",
    responses((status = 200, description = "The page.", content_type = "text/html"))
)]
pub async fn docs() -> Html<&'static str> {
    Html(DOCS_HTML)
}

#[cfg(test)]
mod tests {
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

    /// Every route of `serve::router` with its methods, by hand: the router
    /// cannot list its routes, so a route added there must be added here.
    const ROUTES: &[(&str, &[&str])] = &[
        ("/", &["get"]),
        ("/health", &["get"]),
        ("/healthz", &["get"]),
        ("/metrics", &["get"]),
        ("/openapi.json", &["get"]),
        ("/docs", &["get"]),
        ("/api/v1/face/analyze", &["post"]),
        ("/v1/users", &["post"]),
        ("/v1/users/me", &["get", "delete"]),
        ("/v1/users/me/face", &["delete", "put"]),
        ("/v1/users/me/claims", &["get", "post"]),
        ("/v1/operator/claims", &["get"]),
        ("/v1/operator/claims/{id}", &["post"]),
        ("/v1/operator/claims/{id}/recover", &["post"]),
        ("/v1/operator/reviews", &["get"]),
        ("/v1/operator/reviews/{id}/{action}", &["post"]),
        ("/v1/operator/terminals/flagged", &["get"]),
        ("/v1/operator/terminals/{id}/clear-flag", &["post"]),
        ("/v1/operator/blocks", &["get", "post"]),
        ("/v1/operator/blocks/{kind}/{value}", &["delete"]),
        ("/v1/terminal/payments", &["post"]),
        ("/v1/terminal/payments/{id}/step-up", &["post"]),
        ("/v1/merchant/payments", &["get"]),
        ("/v1/merchant/payments/{id}", &["get"]),
        ("/v1/merchant/payments/{id}/capture", &["post"]),
        ("/v1/merchant/payments/{id}/void", &["post"]),
        ("/v1/merchant/payments/{id}/refunds", &["post"]),
        ("/v1/merchant/reports/daily", &["get"]),
        ("/v1/merchant/terminals", &["get"]),
        ("/v1/merchant/loyalty", &["get"]),
        ("/v1/merchant/loyalty/programs", &["post"]),
        ("/v1/merchant/loyalty/coupons", &["post"]),
        ("/v1/hub/quotes", &["post"]),
        ("/v1/users/me/hub/quotes", &["post"]),
        ("/v1/users/me/hub/transfers", &["post"]),
        ("/v1/hub/transfers", &["post"]),
        ("/v1/hub/transfers/{id}", &["get"]),
        ("/v1/hub/cash-codes", &["post"]),
        ("/v1/hub/withdrawals", &["post"]),
        ("/v1/hub/withdrawals/{id}/confirm", &["post"]),
        ("/v1/hub/windows/close", &["post"]),
        ("/v1/hub/windows/{id}", &["get"]),
        ("/v1/hub/windows/{id}/settle", &["post"]),
        ("/v1/hub/windows/{id}/mine", &["get"]),
        ("/v1/merchant/loyalty/{what}/{id}/{action}", &["post"]),
        ("/v1/users/me/loyalty/{merchant_id}", &["put"]),
    ];
    const METHODS: [&str; 8] = [
        "get", "put", "post", "delete", "options", "head", "patch", "trace",
    ];

    fn document() -> Value {
        let text = ApiDoc::openapi().to_json().unwrap();
        serde_json::from_str(&text).unwrap()
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

    #[test]
    fn openapi_documents_every_route_with_its_methods() {
        let document = document();
        let paths = &document["paths"];
        for (path, expected) in ROUTES {
            let expected: BTreeSet<String> = expected.iter().map(|m| m.to_string()).collect();
            assert_eq!(methods(&paths[path]), expected, "{path}");
        }
        let routes: BTreeSet<String> = ROUTES.iter().map(|(p, _)| p.to_string()).collect();
        assert_eq!(keys(paths), routes, "documented paths that are not routes");
    }

    #[test]
    fn openapi_pay_request_has_amount_currency_and_frames() {
        let document = document();
        let pay = schema(&document, "PayRequest");
        for field in ["amount", "currency", "frames", "capture"] {
            assert!(pay["properties"][field].is_object(), "{field}");
        }
        let required = pay["required"].as_array().unwrap();
        for field in ["amount", "currency", "frames"] {
            assert!(required.contains(&json!(field)), "{field}");
        }
        assert_eq!(
            document["paths"]["/v1/terminal/payments"]["post"]["requestBody"]["content"]["application/json"]
                ["schema"]["$ref"],
            "#/components/schemas/PayRequest"
        );
    }

    #[test]
    fn openapi_serialises_as_3_1_with_conventions_and_resolvable_refs() {
        let text = ApiDoc::openapi().to_pretty_json().unwrap();
        let document: Value = serde_json::from_str(&text).unwrap();
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
        ] {
            assert!(description.contains(needle), "{needle}");
        }
        let schemes = keys(&document["components"]["securitySchemes"]);
        for scheme in [
            "user_token",
            "merchant_key",
            "terminal_id",
            "terminal_timestamp",
            "terminal_nonce",
            "terminal_signature",
        ] {
            assert!(schemes.contains(scheme), "{scheme}");
        }
        let mut refs = Vec::new();
        collect_refs(&document, &mut refs);
        assert!(refs.len() > 20);
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

    /// The store's rows have hand-written schemas; their real serialisation
    /// must have exactly the described fields.
    #[test]
    fn openapi_store_row_schemas_match_the_rows() {
        let document = document();
        let method = facepay_store::parties::PaymentMethod {
            id: "pm".into(),
            user_id: "u".into(),
            brand: "visa".into(),
            last4: "4242".into(),
            expiry_month: 12,
            expiry_year: 2030,
            key_id: Some("k".into()),
            nonce: Some(vec![1]),
            ciphertext: Some(vec![2]),
            vault_token: Some("tok".into()),
            fingerprint: Some("fp_1".into()),
            status: "active".into(),
        };
        let event = facepay_store::payments::Event {
            from_state: None,
            to_state: "created".into(),
            reason: "received".into(),
            at_ms: 1,
        };
        let store = facepay_store::parties::StoreRow {
            id: "s".into(),
            merchant_id: "m".into(),
            name: "n".into(),
            country: "KR".into(),
            city: "Seoul".into(),
            currency: "KRW".into(),
            latitude_e6: 1,
            longitude_e6: 2,
        };
        let row = facepay_store::payments::DailyReportRow {
            store_id: "s".into(),
            currency: "KRW".into(),
            count: 1,
            gross_minor: 1,
            refunds_minor: 0,
            fees_minor: 0,
            net_minor: 1,
        };
        let cases = [
            ("PaymentMethod", serde_json::to_value(&method).unwrap()),
            ("PaymentEvent", serde_json::to_value(&event).unwrap()),
            ("Store", serde_json::to_value(&store).unwrap()),
            ("DailyReportRow", serde_json::to_value(&row).unwrap()),
        ];
        for (name, value) in cases {
            assert_eq!(
                keys(&schema(&document, name)["properties"]),
                keys(&value),
                "{name}"
            );
        }
    }

    #[test]
    fn openapi_names_every_payment_state_and_the_page_limit() {
        let document = document();
        let state = schema(&document, "PaymentView")["properties"]["state"]["description"]
            .as_str()
            .unwrap();
        for s in PaymentState::ALL {
            assert!(state.contains(&format!("`{}`", s.as_str())), "{s:?}");
        }
        let parameters = document["paths"]["/v1/merchant/payments"]["get"]["parameters"]
            .as_array()
            .unwrap();
        let limit = parameters.iter().find(|p| p["name"] == "limit").unwrap();
        assert_eq!(limit["schema"]["maximum"], json!(PAGE_LIMIT_MAX));
    }

    async fn router() -> (axum::Router, tempfile::TempDir) {
        let engine = FaceEngine::load(&ModelStore::open_default(), EngineConfig::default())
            .unwrap_or_else(|e| panic!("{e}; run `facepay models fetch`"));
        let dir = tempfile::tempdir().unwrap();
        let store =
            facepay_store::Store::open(&facepay_store::Store::sqlite_url(dir.path()).unwrap())
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
        (super::super::router(&app), dir)
    }

    async fn get(router: &axum::Router, path: &str) -> (StatusCode, String, String) {
        let request = Request::get(path).body(Body::empty()).unwrap();
        let response = router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let content_type = response.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .to_owned();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            content_type,
            String::from_utf8(body.to_vec()).unwrap(),
        )
    }

    #[tokio::test]
    async fn openapi_and_docs_are_served_and_every_operation_is_routed() {
        let (router, _dir) = router().await;
        let (status, content_type, page) = get(&router, "/docs").await;
        assert_eq!(status, StatusCode::OK);
        assert!(content_type.starts_with("text/html"), "{content_type}");
        assert!(page.contains("/openapi.json"));
        let (status, content_type, text) = get(&router, "/openapi.json").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(content_type, "application/json");
        let served: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(served, document());
        // Without credentials or a body each operation stops at its first
        // check; what matters is that none falls through to "no such route".
        for (path, item) in served["paths"].as_object().unwrap() {
            for method in methods(item) {
                let request = Request::builder()
                    .method(method.to_uppercase().as_str())
                    .uri(path.replace("{id}", "pay_x"))
                    .body(Body::empty())
                    .unwrap();
                let status = router.clone().oneshot(request).await.unwrap().status();
                assert_ne!(status, StatusCode::NOT_FOUND, "{method} {path}");
                assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            }
        }
    }
}
