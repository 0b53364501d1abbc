//! Bulk import: accounts whose faces were embedded elsewhere by this
//! server's model and whose PINs were hashed already, as a migration from
//! another system brings them, stored in batches in exactly the form an
//! enrolment stores (phone sealed, template sealed under a data key of its
//! own, card split through the vault and verified with its issuer). The
//! benchmarks fill a store with a million payers through it. No route
//! calls it.

use facepay_face::liveness::LivenessDecision;
use facepay_store::ids;
use facepay_store::keys::DataKeyRow;
use facepay_store::parties::PaymentMethod;

use super::Identity;
use super::enrol::{CheckedCard, NewAccount, NewFace};
use crate::api::CardInput;
use crate::core::{commit, normalise_phone};
use crate::error::Failure;

/// Accounts stored per transaction.
pub const IMPORT_BATCH_MAX: usize = 1_000;

/// An account brought from another system.
pub struct ImportedAccount {
    pub phone: String,
    /// An Argon2id hash in its PHC form, as [`crate::keys::hash_pin`] makes.
    pub pin_hash: String,
    pub card: CardInput,
    /// Unit length, from this server's model.
    pub vector: Vec<f32>,
}

/// An imported account checked, before its card goes to the vault.
struct CheckedImport {
    user_id: String,
    /// The normalised number and its keyed hash.
    phone: (String, String),
    pin_hash: String,
    card: CheckedCard,
    face: NewFace,
}

impl Identity {
    /// Stores `accounts` in one transaction; returns how many. Unlike an
    /// enrolment it does not search the gallery for each face first: an
    /// import trusts its source to hold one account per face, and a search
    /// per face of a million-face import would cost more than the import.
    /// A failure stores none of the batch and gives its cards back to the
    /// vault.
    pub async fn import(&self, accounts: Vec<ImportedAccount>) -> Result<usize, Failure> {
        if accounts.is_empty() {
            return Ok(0);
        }
        if accounts.len() > IMPORT_BATCH_MAX {
            return Err(Failure::unprocessable(
                "import_too_large",
                format!("an import batch holds at most {IMPORT_BATCH_MAX} accounts"),
            ));
        }
        let mut checked = Vec::with_capacity(accounts.len());
        for account in accounts {
            checked.push(self.check_import(account).await?);
        }
        let cards = checked
            .iter()
            .map(|one| one.card.to_vault(&one.user_id))
            .collect::<Result<Vec<_>, _>>()?;
        let vaulted = self.core.vault_cards(cards).await?;
        let tokens: Vec<String> = vaulted
            .iter()
            .filter_map(|(method, _)| method.vault_token.clone())
            .collect();
        let stored = match self.accounts_of(checked, vaulted) {
            Ok(prepared) => self.store_import(&prepared).await.map(|()| prepared.len()),
            Err(failure) => Err(failure),
        };
        match stored {
            Ok(_) => self.apply_own_changes().await,
            Err(_) => {
                for token in tokens {
                    self.core.forget_card(token).await;
                }
            }
        }
        stored
    }

    /// An imported account checked, its phone hashed and its face sealed.
    async fn check_import(&self, account: ImportedAccount) -> Result<CheckedImport, Failure> {
        if !account.pin_hash.starts_with("$argon2id$") {
            return Err(Failure::unprocessable(
                "pin_hash_invalid",
                "an imported PIN hash must be an Argon2id hash in its PHC form",
            ));
        }
        let phone = normalise_phone(&account.phone)?;
        let card = self.check_card(&account.card)?;
        let phone_hash = self.core.phone_hash(&phone).await?;
        let user_id = ids::new("usr")?;
        let face = self.seal_face(&user_id, &account.vector, LivenessDecision::Live)?;
        Ok(CheckedImport {
            user_id,
            phone: (phone, phone_hash),
            pin_hash: account.pin_hash,
            card,
            face,
        })
    }

    fn accounts_of(
        &self,
        checked: Vec<CheckedImport>,
        vaulted: Vec<(PaymentMethod, DataKeyRow)>,
    ) -> Result<Vec<(NewAccount, NewFace)>, Failure> {
        assert_eq!(checked.len(), vaulted.len());
        checked
            .into_iter()
            .zip(vaulted)
            .map(|(one, card)| {
                let account = self.account_of(one.user_id, one.phone, one.pin_hash, card)?;
                Ok((account, one.face))
            })
            .collect()
    }

    async fn store_import(&self, prepared: &[(NewAccount, NewFace)]) -> Result<(), Failure> {
        let mut tx = self.core.begin().await?;
        // The change log's lock before any audit chain's head, as an
        // enrolment takes them: two batches at once would otherwise
        // deadlock on PostgreSQL, each holding a head the other wants.
        facepay_store::changes::lock(&mut tx).await?;
        let enrolled: Vec<_> = prepared
            .iter()
            .map(|(account, face)| (account, face))
            .collect();
        self.insert_enrolments(&mut tx, &enrolled).await?;
        commit(tx).await
    }
}
