//! Filling the gallery at start-up: from the snapshot file when there is a
//! usable one (then the change log since it), otherwise from the store, a
//! batch of templates at a time.

use std::sync::atomic::Ordering;
use std::time::Instant;

use facepay_store::parties::{self, ActiveTemplate};

use super::Identity;
use super::identify::{merchant_partition, phone_partition};
use crate::core::{template_aad, vector_from_bytes};
use crate::error::Failure;

/// A template in the gallery's space and its partitions.
pub(crate) type GalleryEntry = (Vec<f32>, Vec<String>);

/// Start-up logs its progress every this many templates.
const GALLERY_PROGRESS_EVERY: i64 = 100_000;
/// Templates read from the store per query at start-up: the gallery is
/// built a batch at a time, never holding every ciphertext at once.
const GALLERY_LOAD_BATCH: i64 = 10_000;

impl Identity {
    /// Fills the gallery from the snapshot or the store, and records in
    /// the audit log that templates were opened.
    pub(crate) async fn load_gallery(&self) -> Result<(), Failure> {
        let reading = Instant::now();
        if let Some(rows) = self.restore_snapshot().await? {
            let reading_ms = reading.elapsed().as_millis() as u64;
            let changes = self.catch_up().await?;
            self.audit_gallery("gallery_restored").await?;
            self.gallery_restored.store(true, Ordering::Relaxed);
            tracing::info!(
                rows,
                reading_ms,
                changes,
                templates = self.gallery.len(),
                "gallery restored from its snapshot"
            );
            return Ok(());
        }
        let mut conn = self.core.conn().await?;
        // Read before the templates: a change made while they load is
        // applied again by `catch_up`, which is harmless.
        *self.changes_seen.lock().await = facepay_store::changes::last_seq(&mut conn).await?;
        let total = parties::active_template_count(&mut conn).await?;
        let (mut after, mut loaded, mut reported) = (String::new(), 0i64, 0i64);
        loop {
            let batch = parties::active_templates(&mut conn, &after, GALLERY_LOAD_BATCH).await?;
            let Some(last) = batch.last() else {
                break;
            };
            after = last.template.user_id.clone();
            self.insert_batch(&batch)?;
            loaded += batch.len() as i64;
            if loaded - reported >= GALLERY_PROGRESS_EVERY {
                reported = loaded;
                let percent = loaded * 100 / total.max(1);
                tracing::info!(loaded, total, percent, "loading the gallery");
            }
            if (batch.len() as i64) < GALLERY_LOAD_BATCH {
                break;
            }
        }
        for (user_id, merchant_id) in parties::regulars(&mut conn).await? {
            // A user past the partition limit is still found by a full search.
            let _ = self
                .gallery
                .join_partition(&user_id, &merchant_partition(&merchant_id));
        }
        drop(conn);
        self.audit_gallery("templates_decrypted").await?;
        tracing::info!(templates = self.gallery.len(), "gallery loaded");
        Ok(())
    }

    fn insert_batch(&self, batch: &[ActiveTemplate]) -> Result<(), Failure> {
        let mut entries = Vec::with_capacity(batch.len());
        for active in batch {
            if let Some((vector, partitions)) = self.gallery_entry(active)? {
                entries.push((active.template.user_id.as_str(), vector, partitions));
            }
        }
        let rows: Vec<(&str, &[f32], &[String])> = entries
            .iter()
            .map(|(id, vector, partitions)| (*id, vector.as_slice(), partitions.as_slice()))
            .collect();
        self.gallery.insert_many(&rows)?;
        Ok(())
    }

    /// Records in the audit log how many templates the gallery holds.
    async fn audit_gallery(&self, action: &str) -> Result<(), Failure> {
        let mut tx = self.core.begin().await?;
        let count = self.gallery.len().to_string();
        facepay_store::audit::append(&mut tx, self.core.now_ms(), "server", action, &count).await?;
        tx.commit().await.map_err(facepay_store::StoreError::from)?;
        Ok(())
    }

    /// A stored template opened into the gallery's space, with its phone
    /// partition; `None` (logged) for a template of another model.
    pub(crate) fn gallery_entry(
        &self,
        active: &ActiveTemplate,
    ) -> Result<Option<GalleryEntry>, Failure> {
        let stored = &active.template;
        let data_key = active.data_key();
        if stored.key_id.starts_with("dek_") && data_key.is_none() {
            tracing::error!(key_id = %stored.key_id, "data key missing");
            return Err(Failure::internal());
        }
        if stored.model != self.engine.model_id().to_string() {
            tracing::warn!(user = %stored.user_id, model = %stored.model, "template of another model skipped; re-enrol");
            return Ok(None);
        }
        let plain = self.core.envelope.open(
            &stored.key_id,
            data_key.as_ref(),
            &stored.nonce,
            &stored.ciphertext,
            &template_aad(&stored.user_id, &stored.model),
        )?;
        let vector = self.stored_in_gallery_space(stored, vector_from_bytes(&plain)?)?;
        let partitions = active
            .phone_last4
            .as_deref()
            .map(phone_partition)
            .into_iter()
            .collect();
        Ok(Some((vector, partitions)))
    }
}
