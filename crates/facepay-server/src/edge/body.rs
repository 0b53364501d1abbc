//! What a request carries besides its caller: the idempotency key, a JSON
//! command, and path and query parameters. Text PostgreSQL cannot store
//! (a NUL character, bytes that are not UTF-8) is refused here with
//! `text_invalid`, so no query ever sees it.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, RawPathParams, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use facepay_payments::{IDEMPOTENCY_KEY_LEN_MAX, check_idempotency_key, json_value};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::de::DeserializeOwned;
use serde_json::Value;
use utoipa::IntoParams;
use utoipa::openapi::Required;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Type};

use tokio::sync::OwnedSemaphorePermit;

use super::ApiError;
use super::limits::{BodyKind, BodyRead, RequestLimits};

/// The idempotency key's characters: printable ASCII, no space.
pub const IDEMPOTENCY_KEY_PATTERN: &str = "^[!-~]+$";

/// A JSON request body the edge reads for a handler.
pub trait Command: DeserializeOwned {
    /// The limit the body is held to: refused (413) over it from its
    /// Content-Length before anything is read, else while it is read.
    const BODY: BodyKind = BodyKind::Command;

    /// What an empty body means for a command whose every field has a
    /// default; `None` when a body is required.
    fn when_empty() -> Option<Self> {
        None
    }
}

/// A JSON command, checked and parsed, with its raw bytes: the core keys
/// idempotent replays on them.
pub struct ApiJson<T> {
    pub value: T,
    pub bytes: Bytes,
    /// The body's place in its budget, given back with the bytes.
    _held: Option<OwnedSemaphorePermit>,
}

impl<T: Command, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, _: &S) -> Result<Self, ApiError> {
        let content_type = content_type(request.headers());
        let body = read_body(request, T::BODY).await?;
        parse(content_type.as_deref(), body)
    }
}

/// A request body read whole, with its place in its budget, if any.
pub struct ReadBody {
    pub bytes: Bytes,
    held: Option<OwnedSemaphorePermit>,
}

pub(super) fn content_type(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// Reads a body of `kind`, at most its limit (the server's configuration,
/// else the defaults): one announced as longer is refused before a byte
/// of it is read, and with the connection closed, so the client stops
/// sending it.
pub async fn read_body(request: Request, kind: BodyKind) -> Result<ReadBody, ApiError> {
    let limits = request.extensions().get::<Arc<RequestLimits>>().cloned();
    let limits = limits.unwrap_or_else(|| Arc::new(RequestLimits::of(&Default::default())));
    let limit = limits.bytes_max(kind);
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            kind.too_large_code(),
            format!("the request body is over {limit} bytes"),
        )
        .closing()
    };
    let announced = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let expected = announced.map_or(limit, |n| n as usize);
    let held = limits.reserve(kind, expected).await;
    let body_read = request.extensions().get::<BodyRead>().cloned();
    let body: Body = request.into_body();
    let bytes = match Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<LengthLimitError>() => return Err(too_large()),
        Err(e) => {
            return Err(ApiError::bad_request(
                "body_unreadable",
                format!("the request body could not be read: {e}"),
            ));
        }
    };
    if let Some(body_read) = body_read {
        body_read.done();
    }
    Ok(ReadBody { bytes, held })
}

/// Refuses a body that is not `application/json`.
pub(super) fn check_json_type(content_type: Option<&str>) -> Result<(), ApiError> {
    let essence = content_type
        .and_then(|t| t.split(';').next())
        .map(str::trim)
        .unwrap_or("");
    if essence.eq_ignore_ascii_case("application/json") {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        format!(
            "send JSON with Content-Type: application/json, not `{}`",
            content_type.unwrap_or("")
        ),
    ))
}

/// Checks the content type and the text, then parses the command as the
/// payments core does (`facepay_payments::json_value`: numbers JSON Schema
/// calls integers, such as `10.0`, are integers), so the two agree.
pub(super) fn parse<T: Command>(
    content_type: Option<&str>,
    body: ReadBody,
) -> Result<ApiJson<T>, ApiError> {
    let ReadBody { bytes, held } = body;
    let json = |value: T, bytes: Bytes| ApiJson {
        value,
        bytes,
        _held: held,
    };
    if bytes.is_empty()
        && let Some(value) = T::when_empty()
    {
        return Ok(json(value, bytes));
    }
    check_json_type(content_type)?;
    let text = std::str::from_utf8(&bytes).map_err(|_| not_utf8("the request body"))?;
    if text.contains('\0') {
        return Err(has_nul("the request body"));
    }
    let value = json_value(text.as_bytes())?;
    if holds_nul(&value) {
        return Err(has_nul("the request body"));
    }
    if value.is_null()
        && let Some(empty) = T::when_empty()
    {
        return Ok(json(empty, bytes));
    }
    // Every command is an object; serde would also read a struct from an
    // array of its fields in order, which the document does not allow.
    if !value.is_object() {
        return Err(ApiError::bad_request(
            "json_invalid_field",
            "the request body must be a JSON object",
        ));
    }
    let value = T::deserialize(value).map_err(|e| {
        ApiError::bad_request(
            "json_invalid_field",
            format!("the request body is not the expected JSON: {e}"),
        )
    })?;
    Ok(json(value, bytes))
}

/// Whether a string or a key anywhere in the value holds a NUL. Depth is
/// bounded by the parser's recursion limit.
fn holds_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(holds_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || holds_nul(v)),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

fn not_utf8(what: &str) -> ApiError {
    ApiError::bad_request("text_invalid", format!("{what} is not valid UTF-8"))
}

fn has_nul(what: &str) -> ApiError {
    ApiError::bad_request(
        "text_invalid",
        format!("{what} holds a NUL character, which no text field takes"),
    )
}

/// The request's `Idempotency-Key`: exactly one, 1 to `LEN_MAX` printable
/// ASCII characters (`IDEMPOTENCY_KEY_LEN_MAX` unless the service keeps
/// shorter ones).
pub struct IdempotencyKey<const LEN_MAX: usize = IDEMPOTENCY_KEY_LEN_MAX>(pub String);

impl<const LEN_MAX: usize, S: Send + Sync> FromRequestParts<S> for IdempotencyKey<LEN_MAX> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let mut values = parts.headers.get_all("idempotency-key").iter();
        let value = values.next().map(|v| v.as_bytes()).unwrap_or_default();
        if values.next().is_some() {
            return Err(ApiError::bad_request(
                "idempotency_key_duplicate",
                "send one Idempotency-Key header, not several",
            ));
        }
        let key = std::str::from_utf8(value).unwrap_or("\u{fffd}");
        check_idempotency_key(key)?;
        if key.len() > LEN_MAX {
            return Err(ApiError::bad_request(
                "idempotency_key_invalid",
                format!("the Idempotency-Key must be 1 to {LEN_MAX} printable ASCII characters"),
            ));
        }
        Ok(Self(key.to_owned()))
    }
}

impl<const LEN_MAX: usize> IntoParams for IdempotencyKey<LEN_MAX> {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let schema = ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(LEN_MAX))
            .pattern(Some(IDEMPOTENCY_KEY_PATTERN));
        vec![
            ParameterBuilder::new()
                .name("Idempotency-Key")
                .parameter_in(ParameterIn::Header)
                .required(Required::True)
                .description(Some(
                    "A fresh random string per new request, resent unchanged on a retry; \
                     see Idempotency in the overview.",
                ))
                .schema(Some(schema))
                .build(),
        ]
    }
}

/// Path parameters, percent-decoded, refused when not UTF-8 or with a NUL.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let raw = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| not_utf8("a path segment"))?;
        if raw.iter().any(|(_, value)| value.contains('\0')) {
            return Err(has_nul("a path segment"));
        }
        let Path(value) = Path::<T>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::bad_request("path_invalid", e.body_text()))?;
        Ok(Self(value))
    }
}

/// Query parameters, refused when a name or value is not UTF-8 or holds a
/// NUL once percent-decoded, or when one is unknown or malformed.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        check_query(parts.uri.query().unwrap_or(""))?;
        let Query(value) = Query::<T>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::bad_request("query_invalid", e.body_text()))?;
        Ok(Self(value))
    }
}

/// Each `name=value` pair of a query string, percent-decoded as UTF-8
/// without a NUL. (`form_urlencoded`, which the parser uses, replaces
/// bytes that are not UTF-8 instead of refusing them.)
fn check_query(query: &str) -> Result<(), ApiError> {
    for part in query.split('&').flat_map(|pair| pair.split('=')) {
        let decoded = percent_encoding::percent_decode_str(part)
            .decode_utf8()
            .map_err(|_| not_utf8("a query parameter"))?;
        if decoded.contains('\0') {
            return Err(has_nul("a query parameter"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use axum::http::Request as HttpRequest;
    use axum::response::IntoResponse;
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Probe {
        text: String,
        #[serde(default)]
        count: u8,
    }

    impl Command for Probe {}

    #[derive(Debug, Default, Deserialize)]
    struct Optional {
        #[serde(default)]
        amount: Option<String>,
    }

    impl Command for Optional {
        fn when_empty() -> Option<Self> {
            Some(Self::default())
        }
    }

    fn read(body: &[u8]) -> ReadBody {
        ReadBody {
            bytes: Bytes::copy_from_slice(body),
            held: None,
        }
    }

    fn code<T: Command>(content_type: Option<&str>, body: &[u8]) -> &'static str {
        match parse::<T>(content_type, read(body)) {
            Ok(_) => "ok",
            Err(e) => e.code(),
        }
    }

    #[test]
    fn a_command_is_json_of_the_right_shape_and_clean_text() {
        let json = Some("application/json; charset=utf-8");
        assert_eq!(code::<Probe>(json, br#"{"text":"hi"}"#), "ok");
        assert_eq!(
            code::<Probe>(Some("Application/JSON"), br#"{"text":"hi"}"#),
            "ok"
        );
        assert_eq!(
            code::<Probe>(Some("text/plain"), br#"{"text":"hi"}"#),
            "unsupported_media_type"
        );
        assert_eq!(
            code::<Probe>(None, br#"{"text":"hi"}"#),
            "unsupported_media_type"
        );
        assert_eq!(code::<Probe>(json, b""), "json_malformed");
        assert_eq!(code::<Probe>(json, br#"{"text":"#), "json_malformed");
        assert_eq!(code::<Probe>(json, br#"["hi", 3]"#), "json_invalid_field");
        assert_eq!(code::<Optional>(json, b"[]"), "json_invalid_field");
        assert_eq!(code::<Probe>(json, br#"{"text":1}"#), "json_invalid_field");
        assert_eq!(
            code::<Probe>(json, br#"{"text":"a","other":1}"#),
            "json_invalid_field"
        );
        assert_eq!(
            code::<Probe>(json, br#"{"text":"a","count":300}"#),
            "json_invalid_field"
        );
        assert_eq!(
            code::<Probe>(json, br#"{"text":"a","count":3.5}"#),
            "json_invalid_field"
        );
        assert_eq!(code::<Probe>(json, br#"{"text":"a","count":3.0}"#), "ok");
        assert_eq!(
            code::<Probe>(json, b"{\"text\":\"a\",\"n\\u0000\":1}"),
            "text_invalid"
        );
        assert_eq!(
            code::<Probe>(json, b"{\"text\":\"a\\u0000b\"}"),
            "text_invalid"
        );
        assert_eq!(code::<Probe>(json, b"{\"text\":\"a\\\\u0000b\"}"), "ok");
        assert_eq!(code::<Probe>(json, b"{\"text\":\"\xff\"}"), "text_invalid");
        assert_eq!(code::<Probe>(json, b"{\"text\":\"a\0\"}"), "text_invalid");
    }

    #[test]
    fn a_command_keeps_its_value_and_its_bytes() {
        let body = br#"{"text":"hi","count":3}"#;
        let parsed = parse::<Probe>(Some("application/json"), read(body)).unwrap();
        assert_eq!((parsed.value.text.as_str(), parsed.value.count), ("hi", 3));
        assert_eq!(&parsed.bytes[..], body);
        let empty = parse::<Optional>(None, read(b"")).unwrap();
        assert_eq!(empty.value.amount, None);
        let null = parse::<Optional>(Some("application/json"), read(b"null")).unwrap();
        assert_eq!(null.value.amount, None);
    }

    #[test]
    fn an_empty_body_is_a_default_command_only_where_every_field_has_one() {
        assert_eq!(code::<Optional>(None, b""), "ok");
        assert_eq!(code::<Optional>(Some("text/plain"), b""), "ok");
        assert_eq!(
            code::<Probe>(Some("application/json"), b""),
            "json_malformed"
        );
        assert_eq!(
            code::<Optional>(Some("text/plain"), b"{}"),
            "unsupported_media_type"
        );
    }

    #[tokio::test]
    async fn a_body_over_its_limit_is_refused_before_it_is_read() {
        let server = facepay_config::Server {
            json_body_bytes_max: 10,
            ..Default::default()
        };
        let limits = Arc::new(RequestLimits::of(&server));
        let request = |announced: Option<usize>, body: Vec<u8>| {
            let mut r = HttpRequest::post("/");
            if let Some(n) = announced {
                r = r.header(header::CONTENT_LENGTH, n);
            }
            let mut request = r.body(Body::from(body)).unwrap();
            request.extensions_mut().insert(Arc::clone(&limits));
            request
        };
        let status = |r: Result<ReadBody, ApiError>| r.map(|b| b.bytes.len()).map_err(|e| e.code());
        // Announced as too long: refused though the body sent is short, and
        // the connection closed so the client stops sending.
        let refused = read_body(request(Some(11), vec![1; 3]), BodyKind::Command).await;
        let response = refused.err().unwrap().into_response();
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(response.headers()[header::CONNECTION], "close");
        assert_eq!(
            status(read_body(request(None, vec![1; 11]), BodyKind::Command).await),
            Err("body_too_large")
        );
        assert_eq!(
            status(read_body(request(None, vec![1; 10]), BodyKind::Command).await),
            Ok(10)
        );
        assert_eq!(
            status(read_body(request(Some(10), vec![1; 10]), BodyKind::PaymentBurst).await),
            Ok(10)
        );
    }

    #[tokio::test]
    async fn an_idempotency_key_is_one_header_of_printable_ascii() {
        let code = |values: &[&[u8]]| {
            let mut r = HttpRequest::post("/");
            for v in values {
                r = r.header(
                    "idempotency-key",
                    axum::http::HeaderValue::from_bytes(v).unwrap(),
                );
            }
            let mut parts = r.body(()).unwrap().into_parts().0;
            async move {
                match IdempotencyKey::<IDEMPOTENCY_KEY_LEN_MAX>::from_request_parts(&mut parts, &())
                    .await
                {
                    Ok(IdempotencyKey(key)) => key,
                    Err(e) => e.code().to_owned(),
                }
            }
        };
        assert_eq!(code(&[b"k-1"]).await, "k-1");
        assert_eq!(code(&[]).await, "idempotency_key_missing");
        assert_eq!(code(&[b"a", b"b"]).await, "idempotency_key_duplicate");
        assert_eq!(code(&[b"a b"]).await, "idempotency_key_invalid");
        assert_eq!(code(&[b"caf\xc3\xa9"]).await, "idempotency_key_invalid");
        let long = vec![b'k'; IDEMPOTENCY_KEY_LEN_MAX + 1];
        assert_eq!(code(&[&long]).await, "idempotency_key_invalid");
    }

    #[test]
    fn query_text_must_decode_to_utf8_without_nul() {
        assert!(check_query("state=captured&limit=5").is_ok());
        assert!(check_query("name=caf%C3%A9+au+lait").is_ok());
        assert!(check_query("").is_ok());
        for bad in ["state=%00", "state=%FF", "%00=1", "a=b%C3"] {
            assert_eq!(
                check_query(bad).unwrap_err().code(),
                "text_invalid",
                "{bad}"
            );
        }
    }
}
