//! Keys and what they protect, changed while servers keep running: data
//! keys re-wrapped under the current key-encryption key, templates
//! re-issued under the current transform, and cards stored whole by an
//! early release moved into the vault.
//!
//! Re-wrapping and re-issuing need no running service (`facepay keys`
//! runs them against the store), so they are functions of the store, the
//! envelope and a clock; moving cards needs the vault, so it is the
//! service's.

use std::sync::Arc;

use facepay_store::parties::{self, StoredTemplate};
use facepay_store::{Clock, Store};
use facepay_template_transform::TransformKeys;

use crate::core::{Core, template_aad, vector_from_bytes, vector_to_bytes};
use crate::error::Failure;
use crate::keys::Envelope;
use crate::templates::convert;

/// Cards moved into the vault per batch at start-up.
const MOVE_BATCH: i64 = 100;

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
