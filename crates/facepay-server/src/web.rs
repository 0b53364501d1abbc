//! The four web pages (terminal, app, dashboard, operator console) and
//! their files, built into the binary: `facepay serve` is the only server
//! to run. Plain ES modules and one stylesheet, served as written: no build
//! step.

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::edge::ApiPath;

/// Each file: its name under `/web/`, its type and its text.
const FILES: [(&str, &str, &str); 10] = [
    (
        "facepay.css",
        "text/css",
        include_str!("../web/facepay.css"),
    ),
    ("lib.js", "text/javascript", include_str!("../web/lib.js")),
    (
        "terminal.js",
        "text/javascript",
        include_str!("../web/terminal.js"),
    ),
    ("app.js", "text/javascript", include_str!("../web/app.js")),
    (
        "dashboard.js",
        "text/javascript",
        include_str!("../web/dashboard.js"),
    ),
    (
        "operator.js",
        "text/javascript",
        include_str!("../web/operator.js"),
    ),
    (
        "terminal.html",
        "text/html",
        include_str!("../web/terminal.html"),
    ),
    ("app.html", "text/html", include_str!("../web/app.html")),
    (
        "dashboard.html",
        "text/html",
        include_str!("../web/dashboard.html"),
    ),
    (
        "operator.html",
        "text/html",
        include_str!("../web/operator.html"),
    ),
];

/// Scripts only from here, and no framing: the pages hold keys and money.
const CSP: &str = "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; \
                   style-src 'self'; script-src 'self'; frame-ancestors 'none'";

fn page(content_type: &'static str, text: &'static str) -> Response {
    let mut response = (StatusCode::OK, text).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

fn file(name: &str) -> Option<(&'static str, &'static str)> {
    FILES
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, content_type, text)| (*content_type, *text))
}

/// A file by name; a name that is not UTF-8 once decoded is refused in the
/// API's error shape, like every path.
async fn asset(ApiPath(name): ApiPath<String>) -> Response {
    match file(&name) {
        Some((content_type, text)) => page(content_type, text),
        None => crate::edge::not_found().await.into_response(),
    }
}

pub(super) fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let html = |name: &'static str| {
        let (content_type, text) = file(name).unwrap_or(("text/html", ""));
        get(move || async move { page(content_type, text) })
    };
    Router::new()
        .route("/terminal", html("terminal.html"))
        .route("/app", html("app.html"))
        .route("/dashboard", html("dashboard.html"))
        .route("/operator", html("operator.html"))
        .route("/web/{name}", get(asset))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_and_file_is_there() {
        for name in [
            "terminal.html",
            "app.html",
            "dashboard.html",
            "operator.html",
            "operator.js",
            "lib.js",
            "facepay.css",
        ] {
            let (_, text) = file(name).unwrap();
            assert!(!text.is_empty(), "{name}");
        }
        assert!(file("../Cargo.toml").is_none());
    }
}
