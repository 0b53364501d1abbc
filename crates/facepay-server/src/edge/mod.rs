//! The HTTP edge: what every request goes through before the payments core
//! or the hub sees it, and how every failure leaves.
//!
//! Handlers take typed extractors, one per kind of caller and input, so a
//! handler that forgets a check does not compile: a signed terminal
//! (`SignedTerminal`), a merchant, user, operator or member network by its
//! bearer secret (`MerchantKey`, `UserToken`, `OperatorKey`, `MemberKey`),
//! whose key's scope or operator's role covers the route (`scope`),
//! a turn at face work for a caller without one, counted per client
//! address (`EnrolmentTurn`, `AnalysisTurn`), an `IdempotencyKey`, a JSON command
//! (`ApiJson`) and path and query
//! parameters (`ApiPath`, `ApiQuery`) refused at the edge when they hold
//! text PostgreSQL cannot store. Every failure becomes one `ApiError`.

mod auth;
mod body;
mod error;
mod limits;
mod rate;
mod scope;
mod terminal;

pub use auth::{MemberKey, MerchantCaller, MerchantKey, OperatorKey, UserToken};
pub use body::{ApiJson, ApiPath, ApiQuery, Command, IdempotencyKey, read_body};
pub use error::{ApiError, ErrorResponse, answer, method_not_allowed, not_found};
pub use limits::{BodyKind, RequestLimits, limit_request};
pub use rate::{AnalysisTurn, EnrolmentTurn, FaceWorkLimiter};
pub use terminal::SignedTerminal;
