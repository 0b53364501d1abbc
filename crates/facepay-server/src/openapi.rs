//! The OpenAPI 3.1 document served at `/openapi.json`: the routes' own
//! `utoipa::path` descriptions (registered with the router, `routes`),
//! this module's conventions, and the answers every route shares because
//! its extractors give them (`edge_responses`).

use std::sync::LazyLock;

use facepay_payments::signing::{
    HEADER_NONCE, HEADER_SIGNATURE, HEADER_TERMINAL, HEADER_TIMESTAMP, NONCE_LEN_MAX,
    NONCE_LEN_MIN, WINDOW_MS,
};
use facepay_payments::{IDEMPOTENCY_KEY_LEN_MAX, IDEMPOTENCY_RETENTION_MS, WebhookEvent};
use serde_json::{Map, Value, json};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::edge::{ApiError, ErrorResponse};

const MILLISECONDS_PER_HOUR: i64 = 3_600_000;

#[derive(OpenApi)]
#[openapi(
    info(title = "facepay"),
    components(schemas(ErrorResponse, WebhookEvent)),
    modifiers(&Conventions),
    tags(
        (name = "users", description = "The payer's own account, with a user token."),
        (name = "terminal", description = "Payments at a till, signed by the terminal."),
        (name = "merchant", description = "The merchant's back office, with an API key."),
        (name = "operator", description = "Fraud claims, the review queue, flagged terminals and the blocklist, with an operator key (`risk` to change them)."),
        (name = "onboarding", description = "Merchants, stores and terminals, onboarded by an `admin` operator; terminals pair themselves with a one-time code."),
        (name = "keys", description = "Merchant API keys with their scope, operators with their role, and their keys: made (the secret shown once), listed, rotated with an overlap, revoked."),
        (name = "hub", description = "The cross-border hub: QR payments between member networks with FX, cash codes for foreign ATMs, settlement windows. Members call with their network's key; windows need an operator key. A transfer's Idempotency-Key with the same quote answers the same transfer; quotes and cash codes take none (an unused one expires)."),
        (name = "service", description = "Health, metrics, the face engine and these docs."),
        (name = "connectors", description = "What acquirers send: Hyperswitch's signed webhooks."),
        (name = "webhooks", description = "The merchant's webhook endpoints and their deliveries, with an API key. Each delivery POSTs a `WebhookEvent` signed in its `Facepay-Signature` header (docs/webhooks.md). These writes take no Idempotency-Key: changing or deleting an endpoint twice does the same as once."),
    )
)]
struct ApiDoc;

/// The document before any route is added to it.
pub fn base() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The served document: made once, on first use.
static DOCUMENT: LazyLock<Result<String, String>> = LazyLock::new(|| {
    let (_, api) = crate::routes::api().split_for_parts();
    let mut document = serde_json::to_value(&api).map_err(|e| e.to_string())?;
    edge_responses(&mut document);
    describe_itself(&mut document);
    serde_json::to_string(&document).map_err(|e| e.to_string())
});

/// The document as JSON text.
pub fn json() -> Result<&'static str, ApiError> {
    DOCUMENT
        .as_deref()
        .map_err(|e| ApiError::internal("the OpenAPI document could not be made", e))
}

/// The info description and the security schemes. Written here rather than
/// in the attribute so the numbers in the text are the constants the code
/// enforces.
struct Conventions;

impl Modify for Conventions {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        openapi.info.description = Some(overview());
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = |description: &str| {
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(description))
                    .build(),
            )
        };
        for (name, description) in [
            ("user_token", "The user token that enrolment answered with."),
            (
                "merchant_key",
                "A merchant's secret API key, with its scope: `read` (reads), `refund_capture` \
                 (also captures, voids and refunds) or `admin` (every route, keys included). \
                 A key whose scope is short of a route's is refused with 403 `insufficient_scope`.",
            ),
            (
                "operator_key",
                "An operator's secret key, acting with the operator's role: `support` (reads), \
                 `risk` (also claims, reviews, the blocklist and terminal flags) or `admin` \
                 (everything: onboarding, operators, keys, hub windows). A role short of a \
                 route's is refused with 403 `insufficient_scope`.",
            ),
            (
                "hub_member_key",
                "A member network's secret key for the hub.",
            ),
        ] {
            components.add_security_scheme(name, bearer(description));
        }
        for (name, header, description) in TERMINAL_SCHEMES {
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

/// The document's overview: errors, idempotency, signatures and money,
/// with the numbers the code enforces.
fn overview() -> String {
    let retention_hours = IDEMPOTENCY_RETENTION_MS / MILLISECONDS_PER_HOUR;
    let window_s = WINDOW_MS / 1000;
    format!(
        "Enrol a face and a card, pay at a terminal by looking at it, and run a merchant's \
back office: capture, void, refund and report.

## Errors

Every error answers with a 4xx or 5xx status and the body \
`{{\"error\": {{\"code\": \"...\", \"message\": \"...\"}}}}`. The `code` is stable and meant \
for programs; the `message` is for people and may change. A declined or failed payment also \
carries the payment it left: `{{\"error\": {{...}}, \"payment\": {{...}}}}`. Text no field can \
hold (a NUL character, bytes that are not UTF-8) in a path, a query or a body is refused with \
400 `text_invalid`. A body announced as over its route's limit gets 413 before it is read; \
a request whose headers or body do not arrive in time gets 408 (`header_timeout`, \
`request_timeout`), one the server could not finish in time 503 `request_timeout`, and a \
connection over the server's cap 503 `too_many_connections`. Enrolments and photo analyses, \
which need no credential, are counted per client address: one over the server's rate gets 429 \
`rate_limited` with a `Retry-After` header (seconds).

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
`METHOD\\nPATH\\nTIMESTAMP\\nNONCE\\nhex(sha256(body))`, where PATH is the request's path \
and query as sent, for example `POST\\n/v1/terminal/payments\\n1767225600000\\n...`.

## Money

Amounts in requests are decimal strings in major units: `\"4500\"` won, `\"12.34\"` dollars. \
Answers give them the same way (`amount`) and as integers in minor units (`amount_minor`, \
`captured_minor`, `refunded_minor`, `fee_minor`, ...)."
    )
}

/// The four signature headers, as security schemes that a terminal's
/// operations require together.
const TERMINAL_SCHEMES: [(&str, &str, &str); 4] = [
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

/// The HTTP methods an OpenAPI path item may hold.
pub const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// What an operation's extractors refuse, from its description: a JSON
/// body (`ApiJson`: 400, 413, 415), an `Idempotency-Key` (400), path and
/// query parameters (`ApiPath`, `ApiQuery`: 400), a caller (401, and 403
/// for a suspended merchant or terminal). Answers an operation documents
/// itself are kept as they are.
fn edge_responses(document: &mut Value) {
    let Some(paths) = document.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for item in paths.values_mut() {
        for method in METHODS {
            if let Some(operation) = item.get_mut(method).and_then(Value::as_object_mut) {
                add_edge_responses(operation);
            }
        }
    }
}

fn add_edge_responses(operation: &mut Map<String, Value>) {
    let json_body = operation
        .get("requestBody")
        .and_then(|b| b.get("content"))
        .is_some_and(|c| c.get("application/json").is_some());
    let parameters: Vec<(String, String)> = operation
        .get("parameters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|p| {
            let field = |name: &str| p[name].as_str().unwrap_or("").to_owned();
            (field("in"), field("name"))
        })
        .collect();
    let schemes: Vec<String> = operation
        .get("security")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .flat_map(|requirement| requirement.keys().cloned())
        .collect();
    let mut added = input_responses(json_body, &parameters);
    added.extend(caller_responses(&schemes));
    let Some(responses) = operation
        .entry("responses")
        .or_insert_with(|| json!({}))
        .as_object_mut()
    else {
        return;
    };
    for (status, description) in added {
        responses.entry(status).or_insert_with(|| {
            json!({
                "description": description,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}},
            })
        });
    }
}

/// What `ApiJson`, `IdempotencyKey`, `ApiPath` and `ApiQuery` refuse.
fn input_responses(
    json_body: bool,
    parameters: &[(String, String)],
) -> Vec<(&'static str, String)> {
    let mut bad_request = Vec::new();
    if json_body {
        bad_request.push("`json_malformed`, `json_invalid_field`, `body_unreadable`");
    }
    if parameters
        .iter()
        .any(|(at, name)| at == "header" && name == "Idempotency-Key")
    {
        bad_request.push(
            "`idempotency_key_missing`, `idempotency_key_invalid`, `idempotency_key_duplicate`",
        );
    }
    if parameters.iter().any(|(at, _)| at == "path") {
        bad_request.push("`path_invalid`");
    }
    if parameters.iter().any(|(at, _)| at == "query") {
        bad_request.push("`query_invalid`");
    }
    let mut added = Vec::new();
    if !bad_request.is_empty() {
        let codes = bad_request.join(", ");
        added.push((
            "400",
            format!("{codes}; `text_invalid` for text no field can hold."),
        ));
    }
    if json_body {
        added.push(("413", "`body_too_large`.".to_owned()));
        added.push((
            "415",
            "`unsupported_media_type`: not `application/json`.".to_owned(),
        ));
    }
    added
}

/// What the caller extractors refuse, by the security schemes required.
fn caller_responses(schemes: &[String]) -> Vec<(&'static str, String)> {
    let mut added = Vec::new();
    if schemes.iter().any(|s| s.starts_with("terminal_")) {
        added.push((
            "401",
            "`unknown_terminal`, `terminal_not_paired`, or the signature is missing (`signature_missing`), expired \
             (`request_expired`), replayed (`nonce_reused`, `nonce_invalid`) or does not verify \
             (`signature_invalid`)."
                .to_owned(),
        ));
        added.push((
            "403",
            "`terminal_suspended`, `terminal_retired`, `merchant_suspended` or `merchant_closed`."
                .to_owned(),
        ));
    } else if !schemes.is_empty() {
        added.push((
            "401",
            "`authorization_missing`, `authorization_malformed`, or the secret is not valid \
             (`api_key_invalid`, `token_invalid`, `operator_key_invalid`, `hub_key_invalid`), \
             or the key was revoked (`key_revoked`) or has expired (`key_expired`)."
                .to_owned(),
        ));
    }
    if schemes.iter().any(|s| s == "merchant_key") {
        added.push((
            "403",
            "`insufficient_scope`: the key's scope is short of the route's; \
             `merchant_suspended` or `merchant_closed`."
                .to_owned(),
        ));
    } else if schemes.iter().any(|s| s == "operator_key") {
        added.push((
            "403",
            "`insufficient_scope`: the operator's role is short of the route's.".to_owned(),
        ));
    }
    added
}

/// The schema of `/openapi.json`'s answer, this document: its outline,
/// written here because no Rust type is serialised to make it.
fn describe_itself(document: &mut Value) {
    let text = json!({"type": "string"});
    let outline = json!({
        "type": "object",
        "required": ["openapi", "info", "paths"],
        "properties": {
            "openapi": {"type": "string", "pattern": "^3\\.1\\.[0-9]+$"},
            "info": {
                "type": "object",
                "required": ["title", "version"],
                "properties": {"title": text, "version": text, "description": text},
            },
            "paths": {
                "type": "object",
                "description": "Each path with its operations by method.",
                "additionalProperties": {
                    "type": "object",
                    "additionalProperties": {
                        "type": "object",
                        "properties": {"summary": text, "description": text, "tags": {"type": "array", "items": text}},
                    },
                },
            },
            "components": {
                "type": "object",
                "properties": {
                    "schemas": {"type": "object", "additionalProperties": {"type": ["object", "boolean"], "properties": {"description": text}}},
                    "securitySchemes": {"type": "object", "additionalProperties": {"type": "object", "required": ["type"], "properties": {"type": text}}},
                },
            },
            "tags": {"type": "array", "items": {"type": "object", "required": ["name"], "properties": {"name": text, "description": text}}},
        },
    });
    let target = &mut document["paths"]["/openapi.json"]["get"]["responses"]["200"]["content"]["application/json"]
        ["schema"];
    *target = outline;
}

#[cfg(test)]
mod tests;
