//! What a merchant key's scope or an operator's role must be for each
//! route, in one place, read by the bearer extractors from the route the
//! router matched. Reads need the least; the few writes a lesser scope or
//! role may make are named; every other write, and anything about keys or
//! operators, needs `admin`. A route added later is an admin's until it
//! is named here.

use axum::http::Method;
use facepay_payments::access::{MerchantScope, OperatorRole};

/// Merchant routes a `refund_capture` key may write to.
const REFUND_CAPTURE_ROUTES: [&str; 3] = [
    "/v1/merchant/payments/{id}/capture",
    "/v1/merchant/payments/{id}/void",
    "/v1/merchant/payments/{id}/refunds",
];

/// Operator routes (and the routes under them) a `risk` operator may write
/// to: claims, the review queue, the blocklist and terminal flags.
const RISK_ROUTES: [&str; 4] = [
    "/v1/operator/claims",
    "/v1/operator/reviews",
    "/v1/operator/blocks",
    "/v1/operator/terminals/{id}/clear-flag",
];

/// Keys and operators are an admin's to see as well as change.
fn about_keys(route: &str) -> bool {
    route
        .split('/')
        .any(|segment| segment == "keys" || segment == "operators")
}

fn is_read(method: &Method) -> bool {
    method == Method::GET || method == Method::HEAD
}

/// The scope a merchant key needs for `method` on `route` (the router's
/// pattern; `None` when unknown, which needs `admin`).
pub fn merchant_scope(method: &Method, route: Option<&str>) -> MerchantScope {
    let Some(route) = route else {
        return MerchantScope::Admin;
    };
    if about_keys(route) {
        MerchantScope::Admin
    } else if is_read(method) {
        MerchantScope::Read
    } else if REFUND_CAPTURE_ROUTES.contains(&route) {
        MerchantScope::RefundCapture
    } else {
        MerchantScope::Admin
    }
}

/// The role an operator needs for `method` on `route`.
pub fn operator_role(method: &Method, route: Option<&str>) -> OperatorRole {
    let Some(route) = route else {
        return OperatorRole::Admin;
    };
    if about_keys(route) {
        OperatorRole::Admin
    } else if is_read(method) {
        OperatorRole::Support
    } else if RISK_ROUTES.iter().any(|r| route.starts_with(r)) {
        OperatorRole::Risk
    } else {
        OperatorRole::Admin
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merchant_reads_need_read_and_unknown_writes_need_admin() {
        use MerchantScope::*;
        let m = |method: Method, route: &str| merchant_scope(&method, Some(route));
        assert_eq!(m(Method::GET, "/v1/merchant/payments"), Read);
        assert_eq!(
            m(Method::POST, "/v1/merchant/payments/{id}/refunds"),
            RefundCapture
        );
        assert_eq!(m(Method::POST, "/v1/merchant/loyalty/programs"), Admin);
        assert_eq!(m(Method::GET, "/v1/merchant/keys"), Admin);
        assert_eq!(m(Method::POST, "/v1/merchant/anything-new"), Admin);
        assert_eq!(merchant_scope(&Method::GET, None), Admin);
    }

    #[test]
    fn operators_read_as_support_and_only_risk_routes_take_risk() {
        use OperatorRole::*;
        let o = |method: Method, route: &str| operator_role(&method, Some(route));
        assert_eq!(o(Method::GET, "/v1/operator/claims"), Support);
        assert_eq!(o(Method::POST, "/v1/operator/claims/{id}"), Risk);
        assert_eq!(
            o(Method::DELETE, "/v1/operator/blocks/{kind}/{value}"),
            Risk
        );
        assert_eq!(
            o(Method::POST, "/v1/operator/terminals/{id}/clear-flag"),
            Risk
        );
        assert_eq!(o(Method::POST, "/v1/operator/terminals/{id}/retire"), Admin);
        assert_eq!(o(Method::POST, "/v1/operator/merchants"), Admin);
        assert_eq!(o(Method::GET, "/v1/operator/keys"), Admin);
        assert_eq!(o(Method::POST, "/v1/hub/windows/close"), Admin);
    }
}
