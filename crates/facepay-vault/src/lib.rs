//! The card vault.
//!
//! A card number never rests whole anywhere. At enrolment the vault splits
//! it into two shares ([`split`]): it seals one in its own database under a
//! data key wrapped by its master key, and hands the other back to the core,
//! which seals it under its own keys in its own database. Neither database,
//! nor either side's keys, recovers a digit. At payment the core opens its
//! share and passes it in with the token; the vault joins the shares in
//! memory, checks that they make a card number, calls the issuer, and
//! wipes the number. A card's one verification (when its holder adds it)
//! goes the same way, with the security code its holder just typed: the
//! code passes through the vault for that one call and is wiped; nothing
//! keeps it.
//!
//! The rest of facepay sees a token, the last four digits, the brand, the
//! expiry and a keyed fingerprint. The vault's master key is under dual
//! control ([`custody`]): the vault starts locked and opens with two key
//! parts. It runs in-process ([`LocalVault`]) or as its own process behind
//! an authenticated, encrypted channel ([`channel`], [`RemoteVault`]).

pub mod channel;
pub mod custody;
mod local;
mod remote;
pub mod serve;
mod split;
pub mod wire;

use std::sync::Arc;

use facepay_connector::{
    Authorisation, BoxFuture, CardTap, Connector, ConnectorError, StoredCredential,
};
use zeroize::Zeroizing;

pub use custody::KeyPart;
pub use local::{LocalVault, Unlock, open_stored_share};
pub use remote::RemoteVault;

/// The longest card number (ISO/IEC 7812) the vault takes.
pub const PAN_DIGITS_MAX: usize = 19;
pub const PAN_DIGITS_MIN: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("the card vault is locked: it waits for both custodians' key parts")]
    Locked,
    #[error("the key parts do not open this vault: {0}")]
    KeyParts(String),
    #[error("the card vault has no card for this token")]
    UnknownToken,
    #[error("the card's shares do not join into its number")]
    ShareMismatch,
    #[error("the card number is not {PAN_DIGITS_MIN} to {PAN_DIGITS_MAX} digits")]
    BadCard,
    #[error("the card vault's store failed: {0}")]
    Store(#[from] facepay_store::StoreError),
    #[error("sealing or opening a share failed")]
    Crypto,
    #[error("the card vault cannot be reached: {0}")]
    Unavailable(String),
    #[error("the card vault refused the request: {0}")]
    Channel(String),
    #[error("the operating system's random generator failed")]
    Random,
}

impl VaultError {
    /// A stable machine code, the same on both sides of the channel.
    pub fn code(&self) -> &'static str {
        match self {
            VaultError::Locked => "vault_locked",
            VaultError::KeyParts(_) => "vault_key_parts",
            VaultError::UnknownToken => "vault_token_unknown",
            VaultError::ShareMismatch => "vault_share_mismatch",
            VaultError::BadCard => "vault_bad_card",
            VaultError::Store(_) => "vault_store",
            VaultError::Crypto => "vault_crypto",
            VaultError::Unavailable(_) => "vault_unavailable",
            VaultError::Channel(_) => "vault_channel",
            VaultError::Random => "random_unavailable",
        }
    }

    /// Rebuilds an error from its code and message across the channel.
    pub fn from_code(code: &str, message: String) -> Self {
        match code {
            "vault_locked" => VaultError::Locked,
            "vault_key_parts" => VaultError::KeyParts(message),
            "vault_token_unknown" => VaultError::UnknownToken,
            "vault_share_mismatch" => VaultError::ShareMismatch,
            "vault_bad_card" => VaultError::BadCard,
            "vault_unavailable" => VaultError::Unavailable(message),
            "random_unavailable" => VaultError::Random,
            _ => VaultError::Channel(format!("{code}: {message}")),
        }
    }
}

/// A card to put in the vault.
pub struct NewCard {
    pub pan: Zeroizing<String>,
}

/// What the vault gives back for a new card.
pub struct Tokenized {
    pub token: String,
    /// A keyed hash of the number, kept by the core only: the vault stores
    /// none, so its store and keys together give nothing to test guesses of
    /// the number against.
    pub fingerprint: String,
    /// The core's share: as long as the number, and alone worthless.
    pub core_share: Zeroizing<Vec<u8>>,
}

/// An authorisation on a vaulted card.
pub struct VaultAuthorise {
    pub token: String,
    pub core_share: Zeroizing<Vec<u8>>,
    pub expiry_month: u8,
    pub expiry_year: u16,
    pub reference: String,
    pub amount_minor: i64,
    pub currency: String,
    /// The card's cryptogram when the payer tapped it as a step-up.
    pub tap: Option<CardTap>,
    /// What the card's verification left with the issuer, if it had one:
    /// the payment is made on file with it.
    pub stored_credential: Option<StoredCredential>,
}

/// A new card's verification with the issuer: joined as for an
/// authorisation, with the security code its holder just typed.
pub struct VaultVerify {
    pub token: String,
    pub core_share: Zeroizing<Vec<u8>>,
    pub expiry_month: u8,
    pub expiry_year: u16,
    /// Used for this one call and wiped; never stored, never logged.
    pub security_code: Zeroizing<String>,
    /// The card's id in the core; the issuer deduplicates on it.
    pub reference: String,
    /// The card holder's user id, as the issuer knows the customer.
    pub customer: String,
    pub currency: String,
    /// When the holder agreed to keep the card on file, Unix ms.
    pub agreed_at_ms: i64,
}

/// The issuer's answer to a verification, and how long it took.
pub struct Verified {
    pub outcome: Result<StoredCredential, ConnectorError>,
    pub connector_us: u64,
}

/// The issuer's answer, and how long the issuer took, so the caller can
/// tell the vault's own cost from the issuer's.
pub struct Authorised {
    pub outcome: Result<Authorisation, ConnectorError>,
    pub connector_us: u64,
}

/// Cards one [`Vault::tokenize_many`] takes.
pub const TOKENIZE_MANY_MAX: usize = 1_000;

/// The card vault, in-process or remote.
pub trait Vault: Send + Sync {
    fn tokenize(&self, card: NewCard) -> BoxFuture<'_, Result<Tokenized, VaultError>>;

    /// [`Vault::tokenize`] for at most [`TOKENIZE_MANY_MAX`] cards, in
    /// order: all of them or none. A vault that can store them in one
    /// transaction does (a bulk import would otherwise wait for one disk
    /// flush per card); this default takes them one at a time, giving the
    /// tokens made back if one fails.
    fn tokenize_many(
        &self,
        cards: Vec<NewCard>,
    ) -> BoxFuture<'_, Result<Vec<Tokenized>, VaultError>> {
        Box::pin(async move {
            assert!(cards.len() <= TOKENIZE_MANY_MAX);
            let mut made = Vec::with_capacity(cards.len());
            for card in cards {
                match self.tokenize(card).await {
                    Ok(tokenized) => made.push(tokenized),
                    Err(e) => {
                        for tokenized in made {
                            let _ = self.forget(tokenized.token).await;
                        }
                        return Err(e);
                    }
                }
            }
            Ok(made)
        })
    }

    fn authorise(&self, request: VaultAuthorise) -> BoxFuture<'_, Result<Authorised, VaultError>>;

    /// Verifies a card just added, with its security code, and gives the
    /// issuer's stored credential for it.
    fn verify(&self, request: VaultVerify) -> BoxFuture<'_, Result<Verified, VaultError>>;

    /// Destroys the vault's share: the card cannot be joined again.
    fn forget(&self, token: String) -> BoxFuture<'_, Result<(), VaultError>>;

    /// The issuer, for the calls that need no card number (capture, void,
    /// refund). Only the vault talks to the issuer, so a remote vault
    /// relays these too.
    fn connector(&self) -> Arc<dyn Connector>;
}

/// Fills `buf` from the operating system's generator. Its failure is an
/// error, never a panic and never a fallback: a key or pad from a weaker
/// source would not be safe.
pub(crate) fn random_bytes_into(buf: &mut [u8]) -> Result<(), VaultError> {
    getrandom::fill(buf).map_err(|e| {
        tracing::error!(error = %e, "random generator failed");
        VaultError::Random
    })
}

fn check_pan(pan: &str) -> Result<(), VaultError> {
    let digits_ok = pan.bytes().all(|b| b.is_ascii_digit());
    if !digits_ok || !(PAN_DIGITS_MIN..=PAN_DIGITS_MAX).contains(&pan.len()) {
        return Err(VaultError::BadCard);
    }
    Ok(())
}
#[cfg(test)]
mod tests;
