//! What facepay needs to reach one Hyperswitch deployment.

use std::fmt;

/// A call to Hyperswitch waits this long by default. Hyperswitch answers
/// after the processor did, which normally takes well under this; a slower
/// answer is resolved by retrieving the payment, never guessed.
pub const TIMEOUT_MS_DEFAULT: u64 = 5_000;
pub const TIMEOUT_MS_MIN: u64 = 50;
/// One trait call makes at most [`super::REQUESTS_PER_CALL_MAX`] requests,
/// and the card vault's channel waits 30 seconds for the whole call, so a
/// request may not wait longer than this.
pub const TIMEOUT_MS_MAX: u64 = 6_000;
/// API keys and hash keys that Hyperswitch issues are far shorter; this only
/// keeps a mistaken file out of a header.
pub const SECRET_BYTES_MAX: usize = 1_024;
pub const BASE_URL_BYTES_MAX: usize = 2_048;

/// Plain data: the config crate reads the secrets and hands them over here.
/// `Debug` shows neither secret.
#[derive(Clone)]
pub struct HyperswitchConfig {
    /// Where the deployment's API answers, e.g. `https://hyperswitch.example.com`.
    /// Plain `http` is accepted for a loopback host only.
    pub base_url: String,
    /// The merchant account's API key, sent as the `api-key` header.
    pub api_key: String,
    /// The business profile payments are made under; Hyperswitch uses the
    /// merchant's default profile when this is `None`.
    pub profile_id: Option<String>,
    /// The profile's `payment_response_hash_key`, which signs webhooks.
    pub webhook_secret: String,
    /// How long one HTTP request may take, connect to last byte.
    pub timeout_ms: u64,
}

impl fmt::Debug for HyperswitchConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HyperswitchConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &"<redacted>")
            .field("profile_id", &self.profile_id)
            .field("webhook_secret", &"<redacted>")
            .field("timeout_ms", &self.timeout_ms)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "the Hyperswitch base URL must be https://host (http:// only for a loopback host), not {0:?}"
    )]
    BaseUrl(String),
    #[error("the Hyperswitch API key is empty or longer than {SECRET_BYTES_MAX} bytes")]
    ApiKey,
    #[error("the Hyperswitch webhook secret is empty or longer than {SECRET_BYTES_MAX} bytes")]
    WebhookSecret,
    #[error("the Hyperswitch profile id must be 1 to 64 letters, digits, '_' or '-'")]
    ProfileId,
    #[error("the Hyperswitch timeout must be {TIMEOUT_MS_MIN} to {TIMEOUT_MS_MAX} ms, not {0}")]
    Timeout(u64),
}

impl ConfigError {
    /// A stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            ConfigError::BaseUrl(_) => "hyperswitch_base_url_invalid",
            ConfigError::ApiKey => "hyperswitch_api_key_invalid",
            ConfigError::WebhookSecret => "hyperswitch_webhook_secret_invalid",
            ConfigError::ProfileId => "hyperswitch_profile_id_invalid",
            ConfigError::Timeout(_) => "hyperswitch_timeout_invalid",
        }
    }
}

impl HyperswitchConfig {
    /// Refuses a configuration that would send the API key or a card number
    /// in the clear, or wait without bound.
    pub fn check(&self) -> Result<(), ConfigError> {
        check_base_url(&self.base_url)?;
        if !secret_fits(&self.api_key) || self.api_key.contains(['\r', '\n']) {
            return Err(ConfigError::ApiKey);
        }
        if !secret_fits(&self.webhook_secret) {
            return Err(ConfigError::WebhookSecret);
        }
        if let Some(profile_id) = &self.profile_id
            && !super::api::is_object_id(profile_id)
        {
            return Err(ConfigError::ProfileId);
        }
        if !(TIMEOUT_MS_MIN..=TIMEOUT_MS_MAX).contains(&self.timeout_ms) {
            return Err(ConfigError::Timeout(self.timeout_ms));
        }
        Ok(())
    }

    /// The base URL without a trailing slash, so paths join with one.
    pub(crate) fn base_url_trimmed(&self) -> &str {
        self.base_url.trim_end_matches('/')
    }
}

fn secret_fits(secret: &str) -> bool {
    !secret.is_empty() && secret.len() <= SECRET_BYTES_MAX
}

/// Hand-written rather than a URL crate: only the scheme and host matter,
/// and ureq parses the rest when it sends.
fn check_base_url(base_url: &str) -> Result<(), ConfigError> {
    let refuse = || ConfigError::BaseUrl(base_url.to_owned());
    if base_url.len() > BASE_URL_BYTES_MAX || base_url.contains(['?', '#', ' ']) {
        return Err(refuse());
    }
    let (scheme, rest) = base_url.split_once("://").ok_or_else(refuse)?;
    let authority = rest.split('/').next().unwrap_or_default();
    let host = host_of(authority);
    if host.is_empty() || authority.contains('@') {
        return Err(refuse());
    }
    match scheme {
        "https" => Ok(()),
        "http" if matches!(host, "127.0.0.1" | "localhost" | "[::1]") => Ok(()),
        _ => Err(refuse()),
    }
}

/// The host of `host[:port]`, keeping an IPv6 literal's brackets.
fn host_of(authority: &str) -> &str {
    if authority.starts_with('[') {
        return authority.find(']').map_or("", |end| &authority[..=end]);
    }
    authority.split(':').next().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> HyperswitchConfig {
        HyperswitchConfig {
            base_url: "https://hyperswitch.example.com".into(),
            api_key: "snd_live_key".into(),
            profile_id: Some("pro_abcdefghij".into()),
            webhook_secret: "hash_key_secret".into(),
            timeout_ms: TIMEOUT_MS_DEFAULT,
        }
    }

    #[test]
    fn debug_hides_both_secrets() {
        let printed = format!("{:?} {:#?}", config(), config());
        assert!(!printed.contains("snd_live_key"), "{printed}");
        assert!(!printed.contains("hash_key_secret"), "{printed}");
        assert!(printed.contains("hyperswitch.example.com"), "{printed}");
    }

    #[test]
    fn accepts_https_and_loopback_http() {
        for base_url in [
            "https://hyperswitch.example.com",
            "https://hyperswitch.example.com:8443/",
            "https://hyperswitch.example.com/hs",
            "http://127.0.0.1:8080",
            "http://localhost:8080/",
            "http://[::1]:8080",
        ] {
            let checked = HyperswitchConfig {
                base_url: base_url.into(),
                ..config()
            }
            .check();
            assert_eq!(checked, Ok(()), "{base_url}");
        }
    }

    #[test]
    fn refuses_what_would_leak_or_hang() {
        let cases = [
            (
                HyperswitchConfig {
                    base_url: "http://hyperswitch.example.com".into(),
                    ..config()
                },
                "hyperswitch_base_url_invalid",
            ),
            (
                HyperswitchConfig {
                    base_url: "http://localhost.example.com".into(),
                    ..config()
                },
                "hyperswitch_base_url_invalid",
            ),
            (
                HyperswitchConfig {
                    base_url: "https://user:pw@example.com".into(),
                    ..config()
                },
                "hyperswitch_base_url_invalid",
            ),
            (
                HyperswitchConfig {
                    base_url: "hyperswitch.example.com".into(),
                    ..config()
                },
                "hyperswitch_base_url_invalid",
            ),
            (
                HyperswitchConfig {
                    api_key: String::new(),
                    ..config()
                },
                "hyperswitch_api_key_invalid",
            ),
            (
                HyperswitchConfig {
                    api_key: "key\r\nx-evil: 1".into(),
                    ..config()
                },
                "hyperswitch_api_key_invalid",
            ),
            (
                HyperswitchConfig {
                    webhook_secret: String::new(),
                    ..config()
                },
                "hyperswitch_webhook_secret_invalid",
            ),
            (
                HyperswitchConfig {
                    profile_id: Some("pro id".into()),
                    ..config()
                },
                "hyperswitch_profile_id_invalid",
            ),
            (
                HyperswitchConfig {
                    timeout_ms: TIMEOUT_MS_MAX + 1,
                    ..config()
                },
                "hyperswitch_timeout_invalid",
            ),
            (
                HyperswitchConfig {
                    timeout_ms: 0,
                    ..config()
                },
                "hyperswitch_timeout_invalid",
            ),
        ];
        for (bad, code) in cases {
            let checked = bad.check();
            assert_eq!(checked.map_err(|e| e.code()), Err(code), "{bad:?}");
        }
    }
}
