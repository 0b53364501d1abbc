//! `SignedTerminal`: a terminal's request, verified. The signature covers
//! the body, so the extractor that verifies it must read the body: it is a
//! `FromRequest` that hands the handler both the terminal and its parsed
//! command, rather than a middleware that buffers the body, puts it back
//! and leaves a note in the extensions that a handler could forget to
//! read (a runtime miss instead of a compile error).

use std::sync::Arc;

use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, StatusCode};
use facepay_payments::signing::{
    self, HEADER_NONCE, HEADER_SIGNATURE, HEADER_TERMINAL, HEADER_TIMESTAMP, SignedHeaders,
};
use facepay_store::parties::TerminalContext;

use super::body::{check_json_type, content_type, parse, read_body};
use super::{ApiError, ApiJson, Command};
use crate::AppState;

/// Longest terminal id read; ids this server registers are far shorter.
const TERMINAL_ID_LEN_MAX: usize = 64;
/// Longest signature read: base64 of an Ed25519 signature is 88 characters.
const SIGNATURE_LEN_MAX: usize = 128;

/// A request signed by a registered, active terminal of an active
/// merchant: the signature over the request's own method, path and query,
/// timestamp, nonce and body verified, the timestamp inside the window,
/// the nonce used for the first time. Before a byte of the body is read,
/// the headers are checked as far as they can be without it (a registered
/// terminal, a fresh timestamp), and the body is bounded (413 from its
/// Content-Length alone when announced as too long).
pub struct SignedTerminal<T> {
    pub terminal: TerminalContext,
    pub body: ApiJson<T>,
}

impl<T: Command> FromRequest<Arc<AppState>> for SignedTerminal<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &Arc<AppState>) -> Result<Self, ApiError> {
        // Every terminal command has a body: its type is checked first, as
        // cheaply as the headers and before any of it is read.
        let content_type = content_type(request.headers());
        check_json_type(content_type.as_deref())?;
        let signed = signed_headers(request.headers())?;
        let method = request.method().as_str().to_owned();
        let target = request.uri().path_and_query().map_or_else(
            || request.uri().path().to_owned(),
            |p| p.as_str().to_owned(),
        );
        let payments = &state.services.payments;
        let known = payments.terminal_before_body(&signed).await?;
        let body = read_body(request, T::BODY).await?;
        let terminal = payments
            .verify_terminal(known, &signed, &method, &target, &body.bytes)
            .await?;
        let body = parse(content_type.as_deref(), body)?;
        Ok(Self { terminal, body })
    }
}

/// The four signature headers, each present once and well formed.
fn signed_headers(headers: &HeaderMap) -> Result<SignedHeaders, ApiError> {
    let missing = || {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "signature_missing",
            "terminal requests carry one each of the x-facepay-terminal, -timestamp, -nonce \
             and -signature headers",
        )
    };
    let one = |name: &str, len_max: usize| {
        let mut values = headers.get_all(name).iter();
        match (values.next(), values.next()) {
            (Some(v), None) => v
                .to_str()
                .ok()
                .filter(|s| !s.is_empty() && s.len() <= len_max)
                .ok_or_else(missing),
            _ => Err(missing()),
        }
    };
    let nonce = one(HEADER_NONCE, signing::NONCE_LEN_MAX)?;
    signing::check_nonce(nonce)
        .map_err(|e| ApiError::new(StatusCode::UNAUTHORIZED, e.code(), e.to_string()))?;
    let timestamp_ms = one(HEADER_TIMESTAMP, 20)?
        .parse::<i64>()
        .map_err(|_| missing())?;
    Ok(SignedHeaders {
        terminal_id: one(HEADER_TERMINAL, TERMINAL_ID_LEN_MAX)?.to_owned(),
        timestamp_ms,
        nonce: nonce.to_owned(),
        signature: one(HEADER_SIGNATURE, SIGNATURE_LEN_MAX)?.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn signature_headers_are_each_present_once_and_well_formed() {
        let good = [
            (HEADER_TERMINAL, "term_1"),
            (HEADER_TIMESTAMP, "1767225600000"),
            (HEADER_NONCE, "0123456789abcdef"),
            (HEADER_SIGNATURE, "c2ln"),
        ];
        let signed = signed_headers(&headers(&good)).unwrap();
        assert_eq!(signed.terminal_id, "term_1");
        assert_eq!(signed.timestamp_ms, 1_767_225_600_000);
        let code = |pairs: &[(&'static str, &str)]| {
            signed_headers(&headers(pairs)).err().map(|e| e.code())
        };
        assert_eq!(code(&good[1..]), Some("signature_missing"));
        let mut twice = good.to_vec();
        twice.push((HEADER_SIGNATURE, "c2ln"));
        assert_eq!(code(&twice), Some("signature_missing"));
        let mut late = good;
        late[1].1 = "soon";
        assert_eq!(code(&late), Some("signature_missing"));
        let mut short = good;
        short[2].1 = "abc";
        assert_eq!(code(&short), Some("nonce_invalid"));
    }
}
