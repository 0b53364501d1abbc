//! Keys and what they protect, changed while servers keep running: data
//! keys re-wrapped under the current key-encryption key, templates
//! re-issued under the current transform, cards stored whole by an early
//! release moved into the vault, and phone numbers stored in clear by an
//! early release hashed and sealed.
//!
//! Re-wrapping and re-issuing need no running service (`facepay keys`
//! runs them against the store), so they are functions of the store, the
//! envelope and a clock; moving cards needs the vault and sealing phones
//! the phone lookup key, so they are the service's.

use std::sync::Arc;

use facepay_store::parties::{self, SealedPhone, StoredTemplate};
use facepay_store::{Backend, Clock, Store, idempotency, maintenance};
use facepay_template_transform::TransformKeys;

use crate::core::{
    Core, enrolment_scope, hash_phone, normalise_phone, template_aad, vector_from_bytes,
    vector_to_bytes,
};
use crate::error::Failure;
use crate::keys::Envelope;
use crate::templates::convert;

/// Cards moved into the vault per batch at start-up.
const MOVE_BATCH: i64 = 100;
/// Users (or idempotency scopes) whose phone numbers are converted per
/// transaction at start-up.
const PHONE_BATCH: i64 = 200;
/// How an enrolment's idempotency scope began when it held the number
/// (`app:+8210...`); a keyed hash's scope is hex digits.
const SCOPE_WITH_NUMBER: &str = "app:+";

/// What [`KeyManagement::seal_phones`] converted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PhonesSealed {
    /// Users whose number left `users.phone` for a hash and a seal.
    pub users: usize,
    /// Idempotency scopes that held a number, moved to the hash's scope
    /// (or dropped, for a number that is not one).
    pub scopes: usize,
}

pub struct KeyManagement {
    core: Arc<Core>,
}

impl KeyManagement {
    pub fn new(core: Arc<Core>) -> Self {
        Self { core }
    }

    /// Moves the cards stored whole before the vault into it. A locked
    /// vault leaves them for later: each moves on its next payment.
    pub async fn move_cards_to_vault(&self) -> Result<usize, Failure> {
        let mut moved = 0usize;
        loop {
            let batch =
                parties::cards_without_vault(&mut *self.core.conn().await?, MOVE_BATCH).await?;
            if batch.is_empty() {
                break;
            }
            for method in &batch {
                match self.core.move_card(method).await {
                    Ok(_) => moved += 1,
                    Err(f) if f.code == "vault_locked" => {
                        tracing::warn!("card vault locked: cards stored whole move later");
                        return Ok(moved);
                    }
                    Err(f) => return Err(f),
                }
            }
        }
        if moved > 0 {
            tracing::info!(cards = moved, "cards moved into the vault");
        }
        Ok(moved)
    }
}

impl KeyManagement {
    /// Converts the phone numbers earlier releases stored in clear: each
    /// user's number becomes its keyed hash and a sealed copy (under a data
    /// key of its own) and leaves `users.phone`; each enrolment's
    /// idempotency scope holding a number moves, keys and answers, to the
    /// scope of its hash. The server runs it at start, before it serves.
    ///
    /// A batch per transaction, each row written only if it still holds
    /// what was read: a run stopped anywhere (a crash) has converted whole
    /// rows only, and the next start finishes. Bounded: every row is read
    /// once per run, in key order. On SQLite the file is then rebuilt, once
    /// ([`Store::scrub`]). With nothing in clear it costs three queries.
    pub async fn seal_phones(&self) -> Result<PhonesSealed, Failure> {
        // Read (or made) before any transaction takes the connection; a
        // start whose store lost the key stops here.
        let key = self.core.phone_key().await?;
        let mut done = PhonesSealed::default();
        let mut after = String::new();
        loop {
            let batch = {
                let mut conn = self.core.conn().await?;
                parties::phones_in_clear(&mut conn, &after, PHONE_BATCH).await?
            };
            let Some((last, _)) = batch.last() else {
                break;
            };
            after = last.clone();
            let now = self.core.now_ms();
            let mut tx = self.core.begin().await?;
            let mut sealed = 0;
            for (user_id, in_clear) in &batch {
                // Stored normalised since the first release; anything else
                // is hashed as it is, so it can still be sealed and cleared.
                let phone = normalise_phone(in_clear).unwrap_or_else(|_| in_clear.clone());
                let hash = hash_phone(key, &phone);
                let (stored, data_key) = self.core.seal_phone(user_id, &phone, hash)?;
                facepay_store::keys::insert(&mut tx, &data_key, now).await?;
                match parties::seal_phone(&mut tx, user_id, in_clear, &stored).await? {
                    SealedPhone::Sealed => {}
                    SealedPhone::HashTaken { by } => {
                        tracing::warn!(
                            user_id = %user_id,
                            holder = %by,
                            "two accounts had one phone number: this one's number is \
                             sealed, and cannot be found by it"
                        );
                    }
                    SealedPhone::Changed => {
                        facepay_store::keys::delete(&mut tx, &data_key.id).await?;
                        continue;
                    }
                }
                facepay_store::audit::append(&mut tx, now, "server", "phone_sealed", user_id)
                    .await?;
                sealed += 1;
            }
            maintenance::mark_due(&mut tx, maintenance::SCRUB, now).await?;
            tx.commit().await.map_err(facepay_store::StoreError::from)?;
            done.users += sealed;
        }
        let mut after = String::new();
        loop {
            let scopes = {
                let mut conn = self.core.conn().await?;
                idempotency::scopes_after(&mut conn, SCOPE_WITH_NUMBER, &after, PHONE_BATCH).await?
            };
            let Some(last) = scopes.last() else {
                break;
            };
            after = last.clone();
            let mut tx = self.core.begin().await?;
            maintenance::mark_due(&mut tx, maintenance::SCRUB, self.core.now_ms()).await?;
            for scope in &scopes {
                let in_clear = scope.strip_prefix("app:").unwrap_or(scope);
                match normalise_phone(in_clear) {
                    Ok(phone) => {
                        let to = enrolment_scope(&hash_phone(key, &phone));
                        idempotency::move_scope(&mut tx, scope, &to).await?;
                    }
                    // No enrolment can name it again: nothing to replay.
                    Err(_) => {
                        idempotency::forget_scope(&mut tx, scope).await?;
                    }
                }
            }
            tx.commit().await.map_err(facepay_store::StoreError::from)?;
            done.scopes += scopes.len();
        }
        if done != PhonesSealed::default() {
            tracing::info!(
                users = done.users,
                scopes = done.scopes,
                "phone numbers stored in clear were hashed and sealed"
            );
        }
        self.scrub_if_due().await?;
        Ok(done)
    }
}

impl KeyManagement {
    /// The numbers' old copies leave the SQLite files: the rebuild the
    /// conversion marked due (in its own transactions, so a start that
    /// stopped before it gets it done by the next).
    async fn scrub_if_due(&self) -> Result<(), Failure> {
        let store = &self.core.store;
        if !maintenance::is_due(&mut *self.core.conn().await?, maintenance::SCRUB).await? {
            return Ok(());
        }
        if store.backend() == Backend::Sqlite {
            tracing::info!(
                "rebuilding the database, once, so that no old copy of a number is left"
            );
        }
        if !store.scrub().await? {
            tracing::warn!(
                "the database log was busy: old copies of phone numbers stay in it until it is reused"
            );
        }
        maintenance::done(&mut *self.core.conn().await?, maintenance::SCRUB).await?;
        Ok(())
    }
}

/// Re-wraps every data key not yet under the current KEK, a batch at a
/// time, while servers keep running; safe to interrupt and run again.
/// Returns how many it re-wrapped.
pub async fn rewrap_data_keys(
    store: &Store,
    envelope: &Envelope,
    clock: &dyn Clock,
    batch: i64,
    mut progress: impl FnMut(usize),
) -> Result<usize, Failure> {
    assert!(batch > 0);
    let mut done = 0;
    loop {
        let current = envelope.provider().current()?;
        let rows = {
            let mut conn = store.acquire().await?;
            facepay_store::keys::not_under(&mut conn, current.id(), batch).await?
        };
        if rows.is_empty() {
            return Ok(done);
        }
        let mut tx = store.begin().await?;
        let mut rewrapped = 0;
        for row in rows {
            let after = envelope.rewrap(&row)?;
            if facepay_store::keys::rewrap(&mut tx, &row, &after).await? {
                rewrapped += 1;
            }
        }
        let subject = format!("{rewrapped} data keys to {}", current.id());
        facepay_store::audit::append(
            &mut tx,
            clock.now_ms(),
            "operator",
            "data_keys_rewrapped",
            &subject,
        )
        .await?;
        tx.commit().await.map_err(facepay_store::StoreError::from)?;
        done += rewrapped;
        progress(done);
    }
}

/// Moves every template to the current transform, each re-sealed under a
/// new data key (the old one is destroyed with it), while servers keep
/// running; resumable, since a converted template is skipped. Returns how
/// many were converted.
pub async fn reissue_templates(
    store: &Store,
    envelope: &Envelope,
    transforms: &TransformKeys,
    clock: &dyn Clock,
    batch: i64,
    mut progress: impl FnMut(usize),
) -> Result<usize, Failure> {
    assert!(batch > 0);
    let mut done = 0;
    loop {
        let current = transforms.current_id()?;
        let rows = {
            let mut conn = store.acquire().await?;
            parties::templates_not_under(&mut conn, &current, batch).await?
        };
        if rows.is_empty() {
            return Ok(done);
        }
        let now = clock.now_ms();
        let mut tx = store.begin().await?;
        let mut converted = 0;
        for row in rows {
            if reissue_one(&mut tx, envelope, transforms, &current, &row, now).await? {
                converted += 1;
            }
        }
        let subject = format!("{converted} templates to {current}");
        facepay_store::audit::append(&mut tx, now, "operator", "templates_reissued", &subject)
            .await?;
        tx.commit().await.map_err(facepay_store::StoreError::from)?;
        done += converted;
        progress(done);
    }
}

/// Re-seals one template under `current`, in the caller's transaction;
/// `false` when another process replaced it first.
async fn reissue_one(
    tx: &mut facepay_store::Connection,
    envelope: &Envelope,
    transforms: &TransformKeys,
    current: &str,
    row: &StoredTemplate,
    now: i64,
) -> Result<bool, Failure> {
    let data_key = facepay_store::keys::get(tx, &row.key_id).await?;
    let aad = template_aad(&row.user_id, &row.model);
    let plain = envelope.open(
        &row.key_id,
        data_key.as_ref(),
        &row.nonce,
        &row.ciphertext,
        &aad,
    )?;
    let vector = convert(
        transforms,
        row.transform_id.as_deref(),
        current,
        vector_from_bytes(&plain)?,
    )?;
    let sealed = envelope.seal(&vector_to_bytes(&vector), &aad)?;
    facepay_store::keys::insert(tx, &sealed.data_key, now).await?;
    let replaced = StoredTemplate {
        user_id: row.user_id.clone(),
        model: row.model.clone(),
        key_id: sealed.key_id,
        nonce: sealed.nonce,
        ciphertext: sealed.ciphertext,
        transform_id: Some(current.to_owned()),
    };
    if parties::replace_template(tx, &replaced, &row.key_id).await? {
        facepay_store::keys::delete(tx, &row.key_id).await?;
        return Ok(true);
    }
    facepay_store::keys::delete(tx, &replaced.key_id).await?;
    Ok(false)
}
