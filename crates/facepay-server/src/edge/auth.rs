//! Callers by their bearer secret: a handler that needs a merchant takes a
//! `MerchantKey`, and so on, so a route cannot forget to authenticate.

use std::sync::Arc;

use axum::extract::{FromRequestParts, MatchedPath};
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use facepay_payments::access::{self, Operator};
use facepay_store::parties::{Merchant, User};

use super::{ApiError, scope};
use crate::AppState;

/// Longest bearer secret read: every key and token this server hands out
/// is far shorter, so a longer one is malformed, not looked up.
const SECRET_LEN_MAX: usize = 256;

fn unauthorised(code: &'static str, message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, code, message)
}

/// The secret of the one `Authorization: Bearer <secret>` header.
fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    let mut values = parts.headers.get_all(AUTHORIZATION).iter();
    let value = match (values.next(), values.next()) {
        (None, _) => {
            return Err(unauthorised(
                "authorization_missing",
                "send Authorization: Bearer <token or API key>",
            ));
        }
        (Some(value), None) => value,
        (Some(_), Some(_)) => {
            return Err(unauthorised(
                "authorization_malformed",
                "send one Authorization header",
            ));
        }
    };
    let malformed = || {
        unauthorised(
            "authorization_malformed",
            "the Authorization header must be `Bearer <secret>`, the secret printable ASCII",
        )
    };
    let text = value.to_str().map_err(|_| malformed())?;
    let (scheme, secret) = text.split_once(' ').ok_or_else(malformed)?;
    let secret = secret.trim();
    let printable = secret.bytes().all(|b| b.is_ascii_graphic());
    if !scheme.eq_ignore_ascii_case("bearer")
        || secret.is_empty()
        || secret.len() > SECRET_LEN_MAX
        || !printable
    {
        return Err(malformed());
    }
    Ok(secret)
}

/// The route the router matched, as its pattern.
fn route(parts: &Parts) -> Option<&str> {
    parts
        .extensions
        .get::<MatchedPath>()
        .map(MatchedPath::as_str)
}

fn insufficient(has: &str, needs: &str) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "insufficient_scope",
        format!("this key is {has}; this request needs {needs}"),
    )
}

/// A merchant by one of its keys, whose scope covers the route (403
/// `insufficient_scope`); a revoked or expired key is refused (401
/// `key_revoked`, `key_expired`), and so is a suspended or closed
/// merchant (403).
async fn merchant_caller(
    parts: &Parts,
    state: &Arc<AppState>,
) -> Result<access::MerchantCaller, ApiError> {
    let key = bearer(parts)?;
    let caller = state.services.access.merchant(key).await?;
    let needs = scope::merchant_scope(&parts.method, route(parts));
    if caller.scope < needs {
        return Err(insufficient(caller.scope.as_str(), needs.as_str()));
    }
    Ok(caller)
}

/// A merchant, by an API key whose scope covers the route.
pub struct MerchantKey(pub Merchant);

impl FromRequestParts<Arc<AppState>> for MerchantKey {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        Ok(Self(merchant_caller(parts, state).await?.merchant))
    }
}

/// A merchant with the key it called with: for the routes that manage the
/// merchant's keys.
pub struct MerchantCaller(pub access::MerchantCaller);

impl FromRequestParts<Arc<AppState>> for MerchantCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        Ok(Self(merchant_caller(parts, state).await?))
    }
}

/// A user, by the token enrolment gave them. The token stays with the
/// user for the core's calls that take it.
pub struct UserToken {
    pub user: User,
    pub token: String,
}

impl FromRequestParts<Arc<AppState>> for UserToken {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        let token = bearer(parts)?;
        let user = state.services.identity.user_by_token(token).await?;
        Ok(Self {
            user,
            token: token.to_owned(),
        })
    }
}

/// An operator, by a key, whose role covers the route (403
/// `insufficient_scope`); a revoked or expired key is refused (401).
pub struct OperatorKey(pub Operator);

impl FromRequestParts<Arc<AppState>> for OperatorKey {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        let key = bearer(parts)?;
        let operator = state.services.access.operator(key).await?;
        let needs = scope::operator_role(&parts.method, route(parts));
        if operator.role < needs {
            return Err(insufficient(operator.role.as_str(), needs.as_str()));
        }
        Ok(Self(operator))
    }
}

/// A member network of the hub, by its key: the network's id.
pub struct MemberKey(pub String);

impl FromRequestParts<Arc<AppState>> for MemberKey {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        let key = bearer(parts)?;
        Ok(Self(state.hub.authenticate(key).await?))
    }
}

#[cfg(test)]
mod tests {
    use axum::http::Request;

    use super::*;

    fn parts(values: &[&str]) -> Parts {
        let mut request = Request::get("/");
        for v in values {
            request = request.header(AUTHORIZATION, *v);
        }
        request.body(()).unwrap().into_parts().0
    }

    #[test]
    fn a_bearer_secret_is_read_from_one_well_formed_header() {
        assert_eq!(bearer(&parts(&["Bearer fpk_abc"])), Ok("fpk_abc"));
        assert_eq!(bearer(&parts(&["bearer  fpk_abc "])), Ok("fpk_abc"));
        let code = |values: &[&str]| bearer(&parts(values)).unwrap_err().code();
        assert_eq!(code(&[]), "authorization_missing");
        for bad in [
            &["Basic dXNlcg=="][..],
            &["Bearer"],
            &["Bearer "],
            &["Bearer a b"],
            &["Bearer x", "Bearer y"],
        ] {
            assert_eq!(code(bad), "authorization_malformed", "{bad:?}");
        }
        let long = format!("Bearer {}", "k".repeat(SECRET_LEN_MAX + 1));
        assert_eq!(code(&[long.as_str()]), "authorization_malformed");
    }
}
