//! The messages between the core and a remote vault, inside the channel.
//! Each operation is `POST /vault/v1/{op}` with one of these as its body.

use facepay_connector::{Authorisation, CardTap, ConnectorError, Decline, StoredCredential};
use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

use crate::VaultError;

pub const OP_TOKENIZE: &str = "tokenize";
pub const OP_AUTHORISE: &str = "authorise";
pub const OP_VERIFY: &str = "verify";
pub const OP_FORGET: &str = "forget";
pub const OP_CAPTURE: &str = "capture";
pub const OP_VOID: &str = "void";
pub const OP_REFUND: &str = "refund";
pub const OP_REVERSE: &str = "reverse";
pub const OP_UNLOCK: &str = "unlock";

#[derive(Serialize, Deserialize)]
pub struct TokenizeRequest {
    pub pan: String,
}

impl Drop for TokenizeRequest {
    fn drop(&mut self) {
        self.pan.zeroize();
    }
}

#[derive(Serialize, Deserialize)]
pub struct TokenizeResponse {
    pub token: String,
    pub fingerprint: String,
    /// Hex.
    pub core_share: String,
}

impl Drop for TokenizeResponse {
    fn drop(&mut self) {
        self.core_share.zeroize();
    }
}

#[derive(Serialize, Deserialize)]
pub struct AuthoriseRequest {
    pub token: String,
    /// Hex.
    pub core_share: String,
    pub expiry_month: u8,
    pub expiry_year: u16,
    pub reference: String,
    pub amount_minor: i64,
    pub currency: String,
    #[serde(default)]
    pub tap: Option<CardTap>,
    #[serde(default)]
    pub stored_credential: Option<StoredCredential>,
}

impl Drop for AuthoriseRequest {
    fn drop(&mut self) {
        self.core_share.zeroize();
    }
}

/// A new card's verification: as an authorisation's card, with the
/// security code its holder just typed.
#[derive(Serialize, Deserialize)]
pub struct VerifyRequest {
    pub token: String,
    /// Hex.
    pub core_share: String,
    pub expiry_month: u8,
    pub expiry_year: u16,
    pub security_code: String,
    pub reference: String,
    pub customer: String,
    pub currency: String,
    pub agreed_at_ms: i64,
}

impl Drop for VerifyRequest {
    fn drop(&mut self) {
        self.core_share.zeroize();
        self.security_code.zeroize();
    }
}

#[derive(Serialize, Deserialize)]
pub struct VerifyResponse {
    pub outcome: Outcome<StoredCredential>,
    pub connector_us: u64,
}

#[derive(Serialize, Deserialize)]
pub struct AuthoriseResponse {
    pub outcome: Outcome<Authorisation>,
    pub connector_us: u64,
}

#[derive(Serialize, Deserialize)]
pub struct ForgetRequest {
    pub token: String,
}

/// A capture or a refund.
#[derive(Serialize, Deserialize)]
pub struct MoveRequest {
    pub issuer_ref: String,
    pub amount_minor: i64,
    pub reference: String,
}

#[derive(Serialize, Deserialize)]
pub struct VoidRequest {
    pub issuer_ref: String,
}

/// A reversal, found by our reference alone.
#[derive(Serialize, Deserialize)]
pub struct ReverseRequest {
    pub reference: String,
}

#[derive(Serialize, Deserialize)]
pub struct UnlockRequest {
    /// Hex.
    pub part: String,
}

impl Drop for UnlockRequest {
    fn drop(&mut self) {
        self.part.zeroize();
    }
}

#[derive(Serialize, Deserialize)]
pub struct UnlockResponse {
    pub unlocked: bool,
}

/// What the issuer said, carried across.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome<T> {
    Ok(T),
    Failed { code: String, message: String },
}

impl<T> Outcome<T> {
    pub fn of(result: Result<T, ConnectorError>) -> Self {
        match result {
            Ok(value) => Outcome::Ok(value),
            Err(e) => Outcome::Failed {
                code: e.code().to_owned(),
                message: e.to_string(),
            },
        }
    }

    pub fn into_result(self) -> Result<T, ConnectorError> {
        match self {
            Outcome::Ok(value) => Ok(value),
            Outcome::Failed { code, message } => Err(connector_error(&code, message)),
        }
    }
}

fn connector_error(code: &str, message: String) -> ConnectorError {
    let declines = [
        Decline::InsufficientFunds,
        Decline::ExpiredCard,
        Decline::DoNotHonour,
        Decline::InvalidCard,
        Decline::CardTapInvalid,
        Decline::IncorrectSecurityCode,
    ];
    if let Some(decline) = declines.into_iter().find(|d| d.code() == code) {
        return ConnectorError::Declined(decline);
    }
    match code {
        "issuer_timeout" => ConnectorError::Timeout,
        "card_needs_verification" => ConnectorError::NeedsVerification,
        _ => ConnectorError::Rejected(message),
    }
}

/// Every answer: the value, or the vault's error.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer<T> {
    Ok(T),
    Error { code: String, message: String },
}

impl<T> Answer<T> {
    pub fn of(result: Result<T, VaultError>) -> Self {
        match result {
            Ok(value) => Answer::Ok(value),
            Err(e) => Answer::Error {
                code: e.code().to_owned(),
                message: e.to_string(),
            },
        }
    }

    pub fn into_result(self) -> Result<T, VaultError> {
        match self {
            Answer::Ok(value) => Ok(value),
            Answer::Error { code, message } => Err(VaultError::from_code(&code, message)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuer_outcomes_cross_unchanged() {
        for e in [
            ConnectorError::Declined(Decline::InsufficientFunds),
            ConnectorError::Declined(Decline::ExpiredCard),
            ConnectorError::Declined(Decline::DoNotHonour),
            ConnectorError::Declined(Decline::InvalidCard),
            ConnectorError::Declined(Decline::CardTapInvalid),
            ConnectorError::Declined(Decline::IncorrectSecurityCode),
            ConnectorError::Timeout,
            ConnectorError::Rejected("over capture".into()),
            ConnectorError::NeedsVerification,
        ] {
            let code = e.code();
            let text = serde_json::to_string(&Outcome::<()>::of(Err(e))).unwrap();
            let back: Outcome<()> = serde_json::from_str(&text).unwrap();
            assert_eq!(back.into_result().unwrap_err().code(), code);
        }
        for e in [
            VaultError::Locked,
            VaultError::UnknownToken,
            VaultError::ShareMismatch,
        ] {
            let code = e.code();
            let text = serde_json::to_string(&Answer::<()>::of(Err(e))).unwrap();
            let back: Answer<()> = serde_json::from_str(&text).unwrap();
            assert_eq!(back.into_result().unwrap_err().code(), code);
        }
    }
}
