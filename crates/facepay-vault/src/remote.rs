//! The vault in another process (`facepay vault serve`), reached over the
//! [`channel`](crate::channel).

use std::sync::Arc;
use std::time::Duration;

use facepay_connector::{
    Authorisation, AuthoriseRequest, BoxFuture, Connector, ConnectorError, Reversal,
    StoredCredential, VerifyRequest,
};
use facepay_store::now_ms;
use serde::Serialize;
use serde::de::DeserializeOwned;
use zeroize::Zeroizing;

use crate::channel::{BODY_BYTES_MAX, ChannelKey, HEADER_NONCE, HEADER_TIMESTAMP};
use crate::wire::{self, Answer, Outcome};
use crate::{
    Authorised, NewCard, Tokenized, Vault, VaultAuthorise, VaultError, VaultVerify, Verified,
};

/// A vault call waits this long at most; the issuer's own timeout is
/// shorter, so a slow issuer still answers before the channel gives up.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

struct Channel {
    base_url: String,
    key: ChannelKey,
    agent: ureq::Agent,
}

impl Channel {
    /// One request, on a blocking thread (ureq is synchronous).
    async fn call<Req, Resp>(
        self: &Arc<Self>,
        op: &'static str,
        request: Req,
    ) -> Result<Resp, VaultError>
    where
        Req: Serialize + Send + 'static,
        Resp: DeserializeOwned + Send + 'static,
    {
        let channel = Arc::clone(self);
        tokio::task::spawn_blocking(move || channel.call_blocking(op, &request))
            .await
            .map_err(|e| VaultError::Unavailable(e.to_string()))?
    }

    fn call_blocking<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        op: &str,
        request: &Req,
    ) -> Result<Resp, VaultError> {
        let plaintext = Zeroizing::new(
            serde_json::to_vec(request).map_err(|e| VaultError::Channel(e.to_string()))?,
        );
        let sealed = self
            .key
            .seal_request(op, &plaintext, now_ms())
            .map_err(|_| VaultError::Random)?;
        let mut response = self
            .agent
            .post(&format!("{}/vault/v1/{op}", self.base_url))
            .header("content-type", "application/octet-stream")
            .header(HEADER_TIMESTAMP, &sealed.timestamp_ms.to_string())
            .header(HEADER_NONCE, &sealed.nonce)
            .send(&sealed.body[..])
            .map_err(|e| VaultError::Unavailable(e.to_string()))?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(BODY_BYTES_MAX as u64)
            .read_to_vec()
            .map_err(|e| VaultError::Unavailable(e.to_string()))?;
        if status != 200 {
            // Channel refusals come in clear: the vault could not open the
            // request, so it has nothing to encrypt the answer for.
            let text = String::from_utf8_lossy(&body);
            return Err(VaultError::Channel(format!("{status}: {text}")));
        }
        let opened = self
            .key
            .open_response(&sealed.nonce, &body)
            .map_err(|e| VaultError::Channel(e.to_string()))?;
        let answer: Answer<Resp> =
            serde_json::from_slice(&opened).map_err(|e| VaultError::Channel(e.to_string()))?;
        answer.into_result()
    }
}

/// A client of a vault in another process.
#[derive(Clone)]
pub struct RemoteVault {
    channel: Arc<Channel>,
}

impl RemoteVault {
    pub fn new(base_url: &str, key: ChannelKey) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(CALL_TIMEOUT))
            .build()
            .new_agent();
        Self {
            channel: Arc::new(Channel {
                base_url: base_url.trim_end_matches('/').to_owned(),
                key,
                agent,
            }),
        }
    }

    /// Gives one custodian's key part; true once the vault is unlocked.
    pub async fn give_part(&self, part: &crate::KeyPart) -> Result<bool, VaultError> {
        let request = wire::UnlockRequest {
            part: part.to_hex().as_str().to_owned(),
        };
        let answer: wire::UnlockResponse = self.channel.call(wire::OP_UNLOCK, request).await?;
        Ok(answer.unlocked)
    }
}

impl Vault for RemoteVault {
    fn tokenize(&self, card: NewCard) -> BoxFuture<'_, Result<Tokenized, VaultError>> {
        Box::pin(async move {
            let request = wire::TokenizeRequest {
                pan: card.pan.as_str().to_owned(),
            };
            let answer: wire::TokenizeResponse =
                self.channel.call(wire::OP_TOKENIZE, request).await?;
            let core_share = Zeroizing::new(
                hex::decode(&answer.core_share).map_err(|_| VaultError::ShareMismatch)?,
            );
            Ok(Tokenized {
                token: answer.token.clone(),
                fingerprint: answer.fingerprint.clone(),
                core_share,
            })
        })
    }

    fn authorise(&self, request: VaultAuthorise) -> BoxFuture<'_, Result<Authorised, VaultError>> {
        Box::pin(async move {
            let wire_request = wire::AuthoriseRequest {
                token: request.token,
                core_share: hex::encode(request.core_share.as_slice()),
                expiry_month: request.expiry_month,
                expiry_year: request.expiry_year,
                reference: request.reference,
                amount_minor: request.amount_minor,
                currency: request.currency,
                tap: request.tap,
                stored_credential: request.stored_credential,
            };
            let answer: wire::AuthoriseResponse =
                self.channel.call(wire::OP_AUTHORISE, wire_request).await?;
            Ok(Authorised {
                outcome: answer.outcome.into_result(),
                connector_us: answer.connector_us,
            })
        })
    }

    fn verify(&self, request: VaultVerify) -> BoxFuture<'_, Result<Verified, VaultError>> {
        Box::pin(async move {
            let wire_request = wire::VerifyRequest {
                token: request.token,
                core_share: hex::encode(request.core_share.as_slice()),
                expiry_month: request.expiry_month,
                expiry_year: request.expiry_year,
                security_code: request.security_code.as_str().to_owned(),
                reference: request.reference,
                customer: request.customer,
                currency: request.currency,
                agreed_at_ms: request.agreed_at_ms,
            };
            let answer: wire::VerifyResponse =
                self.channel.call(wire::OP_VERIFY, wire_request).await?;
            Ok(Verified {
                outcome: answer.outcome.into_result(),
                connector_us: answer.connector_us,
            })
        })
    }

    fn forget(&self, token: String) -> BoxFuture<'_, Result<(), VaultError>> {
        Box::pin(async move {
            self.channel
                .call::<_, ()>(wire::OP_FORGET, wire::ForgetRequest { token })
                .await
        })
    }

    fn connector(&self) -> Arc<dyn Connector> {
        Arc::new(Relay {
            channel: Arc::clone(&self.channel),
        })
    }
}

/// The issuer behind a remote vault, for calls that need no card.
struct Relay {
    channel: Arc<Channel>,
}

impl Relay {
    async fn relay<Req, T>(&self, op: &'static str, request: Req) -> Result<T, ConnectorError>
    where
        Req: Serialize + Send + 'static,
        T: DeserializeOwned + Send + 'static,
    {
        match self.channel.call::<_, Outcome<T>>(op, request).await {
            Ok(outcome) => outcome.into_result(),
            // The vault may have reached the issuer before the channel
            // failed: the outcome is unknown, so retry with the same reference.
            Err(e) => {
                tracing::warn!(op, error = %e, "card vault call failed");
                Err(ConnectorError::Timeout)
            }
        }
    }
}

impl Connector for Relay {
    /// Payments record that their issuer was reached through the vault.
    fn name(&self) -> &'static str {
        "card_vault"
    }

    fn verify_card(
        &self,
        _request: VerifyRequest,
    ) -> BoxFuture<'_, Result<StoredCredential, ConnectorError>> {
        Box::pin(async {
            Err(ConnectorError::Rejected(
                "card numbers stay in the vault: verify through it".into(),
            ))
        })
    }

    fn authorise(
        &self,
        _request: AuthoriseRequest,
    ) -> BoxFuture<'_, Result<Authorisation, ConnectorError>> {
        Box::pin(async {
            Err(ConnectorError::Rejected(
                "card numbers stay in the vault: authorise through it".into(),
            ))
        })
    }

    fn capture(
        &self,
        issuer_ref: &str,
        amount_minor: i64,
        reference: &str,
    ) -> BoxFuture<'_, Result<(), ConnectorError>> {
        let request = wire::MoveRequest {
            issuer_ref: issuer_ref.to_owned(),
            amount_minor,
            reference: reference.to_owned(),
        };
        Box::pin(self.relay(wire::OP_CAPTURE, request))
    }

    fn void(&self, issuer_ref: &str) -> BoxFuture<'_, Result<(), ConnectorError>> {
        let request = wire::VoidRequest {
            issuer_ref: issuer_ref.to_owned(),
        };
        Box::pin(self.relay(wire::OP_VOID, request))
    }

    fn refund(
        &self,
        issuer_ref: &str,
        amount_minor: i64,
        reference: &str,
    ) -> BoxFuture<'_, Result<(), ConnectorError>> {
        let request = wire::MoveRequest {
            issuer_ref: issuer_ref.to_owned(),
            amount_minor,
            reference: reference.to_owned(),
        };
        Box::pin(self.relay(wire::OP_REFUND, request))
    }

    fn reverse(&self, reference: &str) -> BoxFuture<'_, Result<Reversal, ConnectorError>> {
        let request = wire::ReverseRequest {
            reference: reference.to_owned(),
        };
        Box::pin(self.relay(wire::OP_REVERSE, request))
    }
}
