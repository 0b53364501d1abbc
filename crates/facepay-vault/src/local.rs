//! The vault in this process, on its own store.

use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use facepay_connector::{AuthoriseRequest, BoxFuture, CardDetails, Connector, VerifyRequest};
use facepay_store::{Store, now_ms, vault};
use zeroize::Zeroizing;

use crate::custody::{KeyPart, MasterKey};
use crate::split::{join, split};
use crate::{
    Authorised, NewCard, Tokenized, Vault, VaultAuthorise, VaultError, VaultVerify, Verified,
    check_pan, random_bytes_into,
};

const NONCE_BYTES: usize = 12;

/// Where an unlock stands after a key part was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unlock {
    /// One part is in; the other custodian's is awaited.
    AwaitingSecondPart,
    Unlocked,
}

pub struct LocalVault {
    store: Store,
    connector: Arc<dyn Connector>,
    key: RwLock<Option<Arc<MasterKey>>>,
    /// The first custodian's part while the second is awaited.
    pending: Mutex<Option<KeyPart>>,
}

impl LocalVault {
    /// A locked vault on `store` (a vault schema, see `Store::open_vault`).
    pub fn new(store: Store, connector: Arc<dyn Connector>) -> Self {
        Self {
            store,
            connector,
            key: RwLock::new(None),
            pending: Mutex::new(None),
        }
    }

    pub fn is_unlocked(&self) -> bool {
        self.key.read().unwrap_or_else(|e| e.into_inner()).is_some()
    }

    /// Opens the vault with both parts. The first unlock of a new vault
    /// records the master key's check value; later unlocks must match it.
    pub async fn unlock(&self, a: &KeyPart, b: &KeyPart) -> Result<(), VaultError> {
        let master = MasterKey::combine(a, b)?;
        let mut conn = self.store.acquire().await?;
        if vault::key_check(&mut conn).await?.is_none() {
            vault::init_key_check(&mut conn, &master.check, now_ms()).await?;
        }
        let expected = vault::key_check(&mut conn).await?;
        if expected.as_deref() != Some(master.check.as_str()) {
            return Err(VaultError::KeyParts(
                "they make another master key than this vault's".into(),
            ));
        }
        *self.key.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(master));
        tracing::info!("card vault unlocked");
        Ok(())
    }

    /// Takes one custodian's part; the second part unlocks. Parts that do
    /// not open the vault are both dropped, so the custodians start over.
    pub async fn give_part(&self, part: KeyPart) -> Result<Unlock, VaultError> {
        if self.is_unlocked() {
            return Ok(Unlock::Unlocked);
        }
        let first = {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            match pending.take() {
                None => {
                    *pending = Some(part);
                    return Ok(Unlock::AwaitingSecondPart);
                }
                Some(first) => first,
            }
        };
        self.unlock(&first, &part).await?;
        Ok(Unlock::Unlocked)
    }

    pub fn lock(&self) {
        *self.key.write().unwrap_or_else(|e| e.into_inner()) = None;
    }

    fn master(&self) -> Result<Arc<MasterKey>, VaultError> {
        self.key
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or(VaultError::Locked)
    }

    async fn tokenize_now(&self, card: NewCard) -> Result<Tokenized, VaultError> {
        let (row, tokenized) = self.share_of(card)?;
        vault::insert_share(&mut *self.store.acquire().await?, &row, now_ms()).await?;
        Ok(tokenized)
    }

    /// Every card's share in one transaction.
    async fn tokenize_many_now(&self, cards: Vec<NewCard>) -> Result<Vec<Tokenized>, VaultError> {
        assert!(cards.len() <= crate::TOKENIZE_MANY_MAX);
        let shares = cards
            .into_iter()
            .map(|card| self.share_of(card))
            .collect::<Result<Vec<_>, _>>()?;
        let (rows, tokenized): (Vec<_>, Vec<_>) = shares.into_iter().unzip();
        let mut tx = self.store.begin().await?;
        vault::insert_shares(&mut tx, &rows, now_ms()).await?;
        tx.commit().await.map_err(facepay_store::StoreError::from)?;
        Ok(tokenized)
    }

    /// A new card's token and split number: the vault's share sealed as
    /// its row, and what goes back to the core.
    fn share_of(&self, card: NewCard) -> Result<(vault::ShareRow, Tokenized), VaultError> {
        check_pan(&card.pan)?;
        let master = self.master()?;
        let mut token_bytes = [0u8; 16];
        random_bytes_into(&mut token_bytes)?;
        let token = format!("tok_{}", hex::encode(token_bytes));
        let fingerprint = master.fingerprint(card.pan.as_bytes());
        let (vault_share, core_share) = split(card.pan.as_bytes())?;
        let mut data_key = Zeroizing::new([0u8; 32]);
        random_bytes_into(data_key.as_mut_slice())?;
        let share_cipher =
            Aes256Gcm::new_from_slice(data_key.as_slice()).map_err(|_| VaultError::Crypto)?;
        let (nonce, ciphertext) = seal(&share_cipher, &vault_share, &share_aad(&token))?;
        let (key_nonce, wrapped_key) = seal(&master.wrap, data_key.as_slice(), &key_aad(&token))?;
        let row = vault::ShareRow {
            token: token.clone(),
            key_nonce,
            wrapped_key,
            nonce,
            ciphertext,
        };
        let tokenized = Tokenized {
            token,
            fingerprint,
            core_share,
        };
        Ok((row, tokenized))
    }

    /// The card number, joined in memory from the two shares.
    async fn join_card(
        &self,
        token: &str,
        core_share: &[u8],
    ) -> Result<Zeroizing<String>, VaultError> {
        let master = self.master()?;
        let row = vault::share(&mut *self.store.acquire().await?, token)
            .await?
            .ok_or(VaultError::UnknownToken)?;
        let vault_share = open_share(&master, &row)?;
        let joined = join(&vault_share, core_share).ok_or(VaultError::ShareMismatch)?;
        // A wrong core share still joins into some bytes. The vault keeps
        // no hash of the number to compare with (see the migration), so the
        // Luhn check digit, which catches any one wrong digit, has to do.
        let pan = Zeroizing::new(
            String::from_utf8(joined.to_vec()).map_err(|_| VaultError::ShareMismatch)?,
        );
        check_pan(&pan).map_err(|_| VaultError::ShareMismatch)?;
        if !facepay_connector::card::luhn_valid(&pan) {
            return Err(VaultError::ShareMismatch);
        }
        Ok(pan)
    }

    async fn authorise_now(&self, request: VaultAuthorise) -> Result<Authorised, VaultError> {
        let pan = self.join_card(&request.token, &request.core_share).await?;
        let card = CardDetails {
            pan: pan.as_str().to_owned(),
            expiry_month: request.expiry_month,
            expiry_year: request.expiry_year,
            security_code: None,
        };
        drop(pan);
        let start = Instant::now();
        let outcome = self
            .connector
            .authorise(AuthoriseRequest {
                reference: request.reference,
                card,
                amount_minor: request.amount_minor,
                currency: request.currency,
                tap: request.tap,
                capture: facepay_connector::CaptureMethod::Manual,
                stored_credential: request.stored_credential,
            })
            .await;
        Ok(Authorised {
            outcome,
            connector_us: start.elapsed().as_micros() as u64,
        })
    }

    /// The card joined, its security code beside it for this one call;
    /// both are wiped when the request is dropped (`CardDetails`).
    async fn verify_now(&self, request: VaultVerify) -> Result<Verified, VaultError> {
        let pan = self.join_card(&request.token, &request.core_share).await?;
        let card = CardDetails {
            pan: pan.as_str().to_owned(),
            expiry_month: request.expiry_month,
            expiry_year: request.expiry_year,
            security_code: Some(request.security_code.as_str().to_owned()),
        };
        drop(pan);
        drop(request.security_code);
        let start = Instant::now();
        let outcome = self
            .connector
            .verify_card(VerifyRequest {
                reference: request.reference,
                customer: request.customer,
                card,
                currency: request.currency,
                agreed_at_ms: request.agreed_at_ms,
            })
            .await;
        Ok(Verified {
            outcome,
            connector_us: start.elapsed().as_micros() as u64,
        })
    }
}

impl Vault for LocalVault {
    fn tokenize(&self, card: NewCard) -> BoxFuture<'_, Result<Tokenized, VaultError>> {
        Box::pin(self.tokenize_now(card))
    }

    fn tokenize_many(
        &self,
        cards: Vec<NewCard>,
    ) -> BoxFuture<'_, Result<Vec<Tokenized>, VaultError>> {
        Box::pin(self.tokenize_many_now(cards))
    }

    fn authorise(&self, request: VaultAuthorise) -> BoxFuture<'_, Result<Authorised, VaultError>> {
        Box::pin(self.authorise_now(request))
    }

    fn verify(&self, request: VaultVerify) -> BoxFuture<'_, Result<Verified, VaultError>> {
        Box::pin(self.verify_now(request))
    }

    fn forget(&self, token: String) -> BoxFuture<'_, Result<(), VaultError>> {
        Box::pin(async move {
            vault::delete_share(&mut *self.store.acquire().await?, &token).await?;
            Ok(())
        })
    }

    fn connector(&self) -> Arc<dyn Connector> {
        Arc::clone(&self.connector)
    }
}

/// Opens a stored share with the master key: one share, never a number.
fn open_share(master: &MasterKey, row: &vault::ShareRow) -> Result<Zeroizing<Vec<u8>>, VaultError> {
    let data_key = open(
        &master.wrap,
        &row.key_nonce,
        &row.wrapped_key,
        &key_aad(&row.token),
    )?;
    let share_cipher =
        Aes256Gcm::new_from_slice(data_key.as_slice()).map_err(|_| VaultError::Crypto)?;
    open(
        &share_cipher,
        &row.nonce,
        &row.ciphertext,
        &share_aad(&row.token),
    )
}

/// What someone holding the vault's store and both key parts can read of
/// a card without the core: its vault share, a one-time pad. For audits
/// and for the test that dumps each store.
pub fn open_stored_share(
    a: &KeyPart,
    b: &KeyPart,
    row: &vault::ShareRow,
) -> Result<Zeroizing<Vec<u8>>, VaultError> {
    open_share(&MasterKey::combine(a, b)?, row)
}

fn share_aad(token: &str) -> String {
    format!("vault-share:{token}")
}

fn key_aad(token: &str) -> String {
    format!("vault-key:{token}")
}

fn seal(cipher: &Aes256Gcm, plaintext: &[u8], aad: &str) -> Result<(Vec<u8>, Vec<u8>), VaultError> {
    let mut nonce = [0u8; NONCE_BYTES];
    random_bytes_into(&mut nonce)?;
    let ciphertext = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: aad.as_bytes(),
            },
        )
        .map_err(|_| VaultError::Crypto)?;
    Ok((nonce.to_vec(), ciphertext))
}

fn open(
    cipher: &Aes256Gcm,
    nonce: &[u8],
    ciphertext: &[u8],
    aad: &str,
) -> Result<Zeroizing<Vec<u8>>, VaultError> {
    if nonce.len() != NONCE_BYTES {
        return Err(VaultError::Crypto);
    }
    cipher
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad: aad.as_bytes(),
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| VaultError::Crypto)
}
