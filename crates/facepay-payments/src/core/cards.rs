//! The core's side of the card vault: the core keeps a token, the card's
//! public details and its own share of the number, sealed under its own
//! keys; the vault keeps the other share. See `facepay-vault`.

use facepay_store::audit;
use facepay_store::keys::DataKeyRow;
use facepay_store::parties::{self, PaymentMethod};
use facepay_vault::NewCard;
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
}

impl Core {
    /// Puts a card in the vault and seals the core's share. Returns the row
    /// to insert and the share's data key; if the caller does not commit
    /// them, it must [`forget`](facepay_vault::Vault::forget) the token.
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
        };
        Ok((method, sealed.data_key))
    }

    /// Gives the vault's token back after the core failed to store it.
    pub(crate) async fn forget_card(&self, token: String) {
        if let Err(e) = self.vault.forget(token).await {
            // The vault's share alone is worthless; it is only clutter.
            tracing::warn!(error = %e, "an unused vault share was not deleted");
        }
    }

    /// The vault's token and the core's share of a card, opened.
    pub(crate) async fn card_share(
        &self,
        method: &PaymentMethod,
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
        let data_key = self.data_key(&mut *self.conn().await?, key_id).await?;
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
