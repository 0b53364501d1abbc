//! The core's side of the card vault: the core keeps a token, the card's
//! public details and its own share of the number, sealed under its own
//! keys; the vault keeps the other share. See `facepay-vault`.

use facepay_connector::{ConnectorError, StoredCredential};
use facepay_store::audit;
use facepay_store::keys::DataKeyRow;
use facepay_store::parties::{self, PaymentMethod};
use facepay_vault::{NewCard, Tokenized, VaultVerify};
use zeroize::Zeroizing;

use super::Core;
use super::sealed::{card_aad, card_share_aad};
use crate::error::Failure;

/// A card about to be stored.
pub(crate) struct CardToVault<'a> {
    pub method_id: String,
    pub user_id: String,
    pub pan: &'a Zeroizing<String>,
    pub brand: String,
    pub expiry_month: i64,
    pub expiry_year: i64,
    /// The code its holder just typed, for the card's one verification
    /// with the issuer; `None` for a card moved from an earlier release,
    /// which has none and stays unverified. Never stored.
    pub security_code: Option<&'a Zeroizing<String>>,
}

impl Core {
    /// Puts a card in the vault, verifies it with the issuer when its
    /// security code is given, and seals the core's share. Returns the row
    /// to insert and the share's data key; if the caller does not commit
    /// them, it must [`forget`](facepay_vault::Vault::forget) the token. A
    /// card the issuer does not verify is forgotten here and refused.
    pub(crate) async fn vault_card(
        &self,
        card: CardToVault<'_>,
    ) -> Result<(PaymentMethod, DataKeyRow), Failure> {
        let tokenized = self
            .vault
            .tokenize(NewCard {
                pan: card.pan.clone(),
            })
            .await?;
        self.vaulted(card, tokenized).await
    }

    /// [`Self::vault_card`] for at most [`facepay_vault::TOKENIZE_MANY_MAX`]
    /// cards, stored by the vault at once: all of them or none.
    pub(crate) async fn vault_cards(
        &self,
        cards: Vec<CardToVault<'_>>,
    ) -> Result<Vec<(PaymentMethod, DataKeyRow)>, Failure> {
        let new = cards
            .iter()
            .map(|card| NewCard {
                pan: card.pan.clone(),
            })
            .collect();
        let tokens = self.vault.tokenize_many(new).await?;
        assert_eq!(tokens.len(), cards.len());
        let mut vaulted = Vec::with_capacity(cards.len());
        let mut pairs = cards.into_iter().zip(tokens);
        while let Some((card, tokenized)) = pairs.next() {
            match self.vaulted(card, tokenized).await {
                Ok(one) => vaulted.push(one),
                Err(failure) => {
                    let rest = pairs.map(|(_, tokenized)| tokenized.token);
                    let made = vaulted.into_iter().filter_map(|(m, _)| m.vault_token);
                    for token in made.chain(rest) {
                        self.forget_card(token).await;
                    }
                    return Err(failure);
                }
            }
        }
        Ok(vaulted)
    }

    /// A card the vault took: verified when its security code is given,
    /// and the core's share sealed. A card the issuer does not verify is
    /// forgotten here and refused.
    async fn vaulted(
        &self,
        card: CardToVault<'_>,
        tokenized: Tokenized,
    ) -> Result<(PaymentMethod, DataKeyRow), Failure> {
        let credential = match card.security_code {
            Some(security_code) => {
                let verified = self.verify_card(&card, &tokenized, security_code).await;
                match verified {
                    Ok(credential) => Some(credential),
                    Err(failure) => {
                        self.forget_card(tokenized.token).await;
                        return Err(failure);
                    }
                }
            }
            None => None,
        };
        let (credential_connector, credential_id) = credential
            .map(|c| (Some(c.connector), Some(c.id)))
            .unwrap_or_default();
        let sealed = self.envelope.seal(
            &tokenized.core_share,
            &card_share_aad(&card.method_id, &tokenized.token),
        )?;
        let method = PaymentMethod {
            id: card.method_id,
            user_id: card.user_id,
            brand: card.brand,
            last4: facepay_connector::card::last4(card.pan).to_owned(),
            expiry_month: card.expiry_month,
            expiry_year: card.expiry_year,
            key_id: Some(sealed.key_id),
            nonce: Some(sealed.nonce),
            ciphertext: Some(sealed.ciphertext),
            vault_token: Some(tokenized.token),
            fingerprint: Some(tokenized.fingerprint),
            status: "active".into(),
            credential_connector,
            credential_id,
            is_default: 0,
        };
        Ok((method, sealed.data_key))
    }

    /// The card's one customer-initiated verification, through the vault:
    /// nothing is charged, the code is used for this call only, and the
    /// issuer's stored credential comes back for later payments.
    async fn verify_card(
        &self,
        card: &CardToVault<'_>,
        tokenized: &Tokenized,
        security_code: &Zeroizing<String>,
    ) -> Result<StoredCredential, Failure> {
        let verified = self
            .vault
            .verify(VaultVerify {
                token: tokenized.token.clone(),
                core_share: tokenized.core_share.clone(),
                expiry_month: u8::try_from(card.expiry_month).unwrap_or(0),
                expiry_year: u16::try_from(card.expiry_year).unwrap_or(0),
                security_code: security_code.clone(),
                reference: card.method_id.clone(),
                customer: card.user_id.clone(),
                currency: self.config.card_verification_currency.clone(),
                agreed_at_ms: self.now_ms(),
            })
            .await?;
        verified.outcome.map_err(verification_refused)
    }

    /// Gives the vault's token back after the core failed to store it.
    pub(crate) async fn forget_card(&self, token: String) {
        if let Err(e) = self.vault.forget(token).await {
            // The vault's share alone is worthless; it is only clutter.
            tracing::warn!(error = %e, "an unused vault share was not deleted");
        }
    }

    /// The vault's token and the core's share of a card, opened.
    /// `read_with_card` is the share's wrapped data key when it was read
    /// with the card; otherwise, or when the card has moved to another
    /// key since, the key is read here.
    pub(crate) async fn card_share(
        &self,
        method: &PaymentMethod,
        read_with_card: Option<&DataKeyRow>,
    ) -> Result<(String, Zeroizing<Vec<u8>>), Failure> {
        let moved;
        let method = match (&method.vault_token, &method.ciphertext) {
            (None, Some(_)) => {
                moved = self.move_card(method).await?;
                &moved
            }
            _ => method,
        };
        let (Some(token), Some(nonce), Some(ciphertext)) =
            (&method.vault_token, &method.nonce, &method.ciphertext)
        else {
            return Err(Failure::unprocessable(
                "no_payment_method",
                "the payer's card was deleted",
            ));
        };
        let key_id = method.key_id.as_deref().unwrap_or_default();
        let data_key = match read_with_card.filter(|key| key.id == key_id) {
            Some(key) => Some(key.clone()),
            None => self.data_key(&mut *self.conn().await?, key_id).await?,
        };
        let share = self.envelope.open(
            key_id,
            data_key.as_ref(),
            nonce,
            ciphertext,
            &card_share_aad(&method.id, token),
        )?;
        Ok((token.clone(), share))
    }

    /// Splits one card stored whole into the vault and the core's share;
    /// the whole number's data key is destroyed in the same transaction.
    pub(crate) async fn move_card(&self, method: &PaymentMethod) -> Result<PaymentMethod, Failure> {
        let (Some(nonce), Some(ciphertext)) = (&method.nonce, &method.ciphertext) else {
            return Err(Failure::internal());
        };
        let old_key_id = method.key_id.clone().unwrap_or_default();
        let data_key = self.data_key(&mut *self.conn().await?, &old_key_id).await?;
        let pan = self.envelope.open(
            &old_key_id,
            data_key.as_ref(),
            nonce,
            ciphertext,
            &card_aad(&method.id),
        )?;
        let pan = Zeroizing::new(String::from_utf8(pan.to_vec()).map_err(|_| Failure::internal())?);
        let (moved, share_key) = self
            .vault_card(CardToVault {
                method_id: method.id.clone(),
                user_id: method.user_id.clone(),
                pan: &pan,
                brand: method.brand.clone(),
                expiry_month: method.expiry_month,
                expiry_year: method.expiry_year,
                security_code: None,
            })
            .await?;
        let token = moved.vault_token.clone().unwrap_or_default();
        let stored = async {
            let now = self.now_ms();
            let mut tx = self.store.begin().await?;
            facepay_store::keys::insert(&mut tx, &share_key, now).await?;
            if !parties::set_card_share(&mut tx, &moved, &old_key_id).await? {
                return Ok(false);
            }
            facepay_store::keys::delete(&mut tx, &old_key_id).await?;
            audit::append(&mut tx, now, "server", "card_moved_to_vault", &method.id).await?;
            tx.commit().await?;
            Ok::<_, facepay_store::StoreError>(true)
        }
        .await;
        match stored {
            Ok(true) => Ok(moved),
            Ok(false) => {
                // Another process moved it first; use its row.
                self.forget_card(token).await;
                parties::payment_method(&mut *self.conn().await?, &method.id)
                    .await?
                    .ok_or_else(|| Failure::not_found("payment method"))
            }
            Err(e) => {
                self.forget_card(token).await;
                Err(e.into())
            }
        }
    }
}

/// Why the issuer did not verify a new card, as the person adding it
/// should hear it. A declined card is the card's fault (402, the decline's
/// code, such as `incorrect_security_code`); an issuer that did not answer
/// or refused the request is not, and adding the card again may work.
fn verification_refused(e: ConnectorError) -> Failure {
    match e {
        ConnectorError::Declined(decline) => Failure::new(402, decline.code(), decline.message()),
        ConnectorError::Timeout => Failure::new(
            504,
            "issuer_timeout",
            "the card issuer did not answer the card's verification; retry with the same idempotency key",
        ),
        other => {
            tracing::warn!(error = %other, "the issuer did not verify a card");
            Failure::new(
                502,
                "card_verification_failed",
                "the card issuer could not verify the card; try again later or add another card",
            )
        }
    }
}

/// The stored credential a card's verification left, if it had one: what
/// a payment on the card names instead of its security code.
pub(crate) fn stored_credential(method: &PaymentMethod) -> Option<StoredCredential> {
    match (&method.credential_connector, &method.credential_id) {
        (Some(connector), Some(id)) => Some(StoredCredential {
            connector: connector.clone(),
            id: id.clone(),
        }),
        _ => None,
    }
}
