//! The one error type the payments core answers with: an HTTP status, a
//! stable machine code and a message for people.

use facepay_store::StoreError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Failure {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

impl Failure {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(400, code, message)
    }

    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(422, code, message)
    }

    pub fn unauthorised(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(401, code, message)
    }

    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(403, code, message)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(404, "not_found", format!("no such {what}"))
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(409, code, message)
    }

    pub fn internal() -> Self {
        Self::new(
            500,
            "internal",
            "something went wrong on our side; nothing was charged twice, retry with the same idempotency key",
        )
    }

    pub fn unavailable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(503, code, message)
    }

    /// The operating system's random generator failed before anything was
    /// written: no id, key, nonce or token was drawn from it.
    pub fn random_unavailable() -> Self {
        Self::unavailable(RANDOM_UNAVAILABLE, RANDOM_UNAVAILABLE_MESSAGE)
    }
}

/// The code of a request refused because the random generator failed.
pub const RANDOM_UNAVAILABLE: &str = "random_unavailable";
pub const RANDOM_UNAVAILABLE_MESSAGE: &str = "the server cannot draw random numbers right now; nothing was written, retry with the same idempotency key";

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => Failure::not_found(what),
            StoreError::Duplicate(what) => Failure::conflict(
                "conflict",
                format!("{what} already exists or changed meanwhile; retry"),
            ),
            StoreError::Random(e) => {
                tracing::error!(error = %e, "random generator failed");
                Failure::random_unavailable()
            }
            other => {
                tracing::error!(error = %other, "store failure");
                if other.is_busy() {
                    return Failure::unavailable(
                        "busy",
                        "the server is busy; retry with the same idempotency key",
                    );
                }
                Failure::internal()
            }
        }
    }
}

impl From<crate::keys::KeyError> for Failure {
    fn from(e: crate::keys::KeyError) -> Self {
        tracing::error!(error = %e, "key failure");
        match e {
            crate::keys::KeyError::Random(_) => Failure::random_unavailable(),
            _ => Failure::internal(),
        }
    }
}

impl From<facepay_money::MoneyError> for Failure {
    fn from(e: facepay_money::MoneyError) -> Self {
        Failure::unprocessable(e.code(), e.to_string())
    }
}

impl From<facepay_vault::VaultError> for Failure {
    fn from(e: facepay_vault::VaultError) -> Self {
        use facepay_vault::VaultError;
        match e {
            VaultError::Locked => Failure::unavailable(
                "vault_locked",
                "the card vault is locked until both custodians give their key parts; retry later",
            ),
            VaultError::Unavailable(_) => {
                tracing::error!(error = %e, "card vault unreachable");
                Failure::unavailable(
                    "vault_unavailable",
                    "the card vault cannot be reached; retry with the same idempotency key",
                )
            }
            VaultError::BadCard => Failure::unprocessable("card_invalid", e.to_string()),
            VaultError::Random => {
                tracing::error!("the card vault's random generator failed");
                Failure::random_unavailable()
            }
            other => {
                tracing::error!(error = %other, "card vault failure");
                Failure::internal()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the operating system's generator returns when it cannot serve.
    const RNG_DOWN: getrandom::Error = getrandom::Error::UNSUPPORTED;

    #[test]
    fn a_failed_random_generator_is_a_coded_503_from_every_layer() {
        let failures = [
            Failure::from(StoreError::Random(RNG_DOWN)),
            Failure::from(crate::keys::KeyError::Random(RNG_DOWN)),
            Failure::from(facepay_vault::VaultError::Random),
            Failure::from(facepay_vault::VaultError::from_code(
                "random_unavailable",
                String::new(),
            )),
        ];
        for failure in failures {
            assert_eq!((failure.status, failure.code), (503, RANDOM_UNAVAILABLE));
            assert!(failure.message.contains("nothing was written"));
        }
    }
}
