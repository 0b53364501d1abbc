//! The vault's side of the channel, without the HTTP: the binary's
//! `facepay vault serve` feeds each request here and sends back the bytes.

use facepay_store::now_ms;
use serde::Serialize;
use serde::de::DeserializeOwned;
use zeroize::Zeroizing;

use crate::channel::{ChannelError, ChannelKey, ReplayGuard, SealedRequest};
use crate::wire::{self, Answer, Outcome};
use crate::{KeyPart, LocalVault, NewCard, Unlock, Vault, VaultAuthorise, VaultError, VaultVerify};

/// Answers one sealed request; `Err` when the request itself does not pass
/// the channel (then the caller answers in clear with the error's code).
pub async fn answer(
    vault: &LocalVault,
    key: &ChannelKey,
    guard: &ReplayGuard,
    op: &str,
    request: &SealedRequest,
) -> Result<Vec<u8>, ChannelError> {
    let plaintext = key.open_request(op, request, now_ms(), guard)?;
    let reply = dispatch(vault, op, &plaintext).await;
    key.seal_response(&request.nonce, &reply)
}

async fn dispatch(vault: &LocalVault, op: &str, plaintext: &[u8]) -> Zeroizing<Vec<u8>> {
    match op {
        wire::OP_TOKENIZE => reply(parse(plaintext).map(|r| tokenize(vault, r))).await,
        wire::OP_AUTHORISE => reply(parse(plaintext).map(|r| authorise(vault, r))).await,
        wire::OP_VERIFY => reply(parse(plaintext).map(|r| verify(vault, r))).await,
        wire::OP_FORGET => {
            reply(
                parse(plaintext)
                    .map(|r: wire::ForgetRequest| async move { vault.forget(r.token).await }),
            )
            .await
        }
        wire::OP_CAPTURE => {
            reply(parse(plaintext).map(|r: wire::MoveRequest| async move {
                let result = vault
                    .connector()
                    .capture(&r.issuer_ref, r.amount_minor, &r.reference)
                    .await;
                Ok(Outcome::of(result))
            }))
            .await
        }
        wire::OP_REFUND => {
            reply(parse(plaintext).map(|r: wire::MoveRequest| async move {
                let result = vault
                    .connector()
                    .refund(&r.issuer_ref, r.amount_minor, &r.reference)
                    .await;
                Ok(Outcome::of(result))
            }))
            .await
        }
        wire::OP_VOID => {
            reply(parse(plaintext).map(|r: wire::VoidRequest| async move {
                Ok(Outcome::of(vault.connector().void(&r.issuer_ref).await))
            }))
            .await
        }
        wire::OP_REVERSE => {
            reply(parse(plaintext).map(|r: wire::ReverseRequest| async move {
                Ok(Outcome::of(vault.connector().reverse(&r.reference).await))
            }))
            .await
        }
        wire::OP_UNLOCK => {
            reply(parse(plaintext).map(|r: wire::UnlockRequest| async move {
                let state = vault.give_part(KeyPart::from_hex(&r.part)?).await?;
                Ok(wire::UnlockResponse {
                    unlocked: state == Unlock::Unlocked,
                })
            }))
            .await
        }
        other => encode(&Answer::<()>::Error {
            code: "vault_unknown_operation".into(),
            message: format!("the vault has no operation {other:?}"),
        }),
    }
}

async fn tokenize(
    vault: &LocalVault,
    request: wire::TokenizeRequest,
) -> Result<wire::TokenizeResponse, VaultError> {
    let tokenized = vault
        .tokenize(NewCard {
            pan: Zeroizing::new(request.pan.clone()),
        })
        .await?;
    Ok(wire::TokenizeResponse {
        token: tokenized.token,
        fingerprint: tokenized.fingerprint,
        core_share: hex::encode(tokenized.core_share.as_slice()),
    })
}

async fn authorise(
    vault: &LocalVault,
    request: wire::AuthoriseRequest,
) -> Result<wire::AuthoriseResponse, VaultError> {
    let authorised = vault
        .authorise(VaultAuthorise {
            token: request.token.clone(),
            core_share: core_share(&request.core_share)?,
            expiry_month: request.expiry_month,
            expiry_year: request.expiry_year,
            reference: request.reference.clone(),
            amount_minor: request.amount_minor,
            currency: request.currency.clone(),
            tap: request.tap.clone(),
            stored_credential: request.stored_credential.clone(),
        })
        .await?;
    Ok(wire::AuthoriseResponse {
        outcome: Outcome::of(authorised.outcome),
        connector_us: authorised.connector_us,
    })
}

/// The security code is copied once, into memory wiped when the call
/// ends; the wire request wipes its own copy when dropped.
async fn verify(
    vault: &LocalVault,
    request: wire::VerifyRequest,
) -> Result<wire::VerifyResponse, VaultError> {
    let verified = vault
        .verify(VaultVerify {
            token: request.token.clone(),
            core_share: core_share(&request.core_share)?,
            expiry_month: request.expiry_month,
            expiry_year: request.expiry_year,
            security_code: Zeroizing::new(request.security_code.clone()),
            reference: request.reference.clone(),
            customer: request.customer.clone(),
            currency: request.currency.clone(),
            agreed_at_ms: request.agreed_at_ms,
        })
        .await?;
    Ok(wire::VerifyResponse {
        outcome: Outcome::of(verified.outcome),
        connector_us: verified.connector_us,
    })
}

fn core_share(hex_share: &str) -> Result<Zeroizing<Vec<u8>>, VaultError> {
    hex::decode(hex_share)
        .map(Zeroizing::new)
        .map_err(|_| VaultError::ShareMismatch)
}

fn parse<T: DeserializeOwned>(plaintext: &[u8]) -> Result<T, VaultError> {
    serde_json::from_slice(plaintext).map_err(|e| VaultError::Channel(format!("bad request: {e}")))
}

async fn reply<T, F>(parsed: Result<F, VaultError>) -> Zeroizing<Vec<u8>>
where
    T: Serialize,
    F: std::future::Future<Output = Result<T, VaultError>>,
{
    let result = match parsed {
        Ok(work) => work.await,
        Err(e) => Err(e),
    };
    encode(&Answer::of(result))
}

fn encode<T: Serialize>(answer: &Answer<T>) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(serde_json::to_vec(answer).unwrap_or_else(|_| {
        br#"{"error":{"code":"vault_internal","message":"the answer did not serialise"}}"#.to_vec()
    }))
}
