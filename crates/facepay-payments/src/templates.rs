//! Templates under the deployment's keyed transform (see
//! `facepay-template-transform`): every template is rotated by the
//! deployment's secret matrix before it is sealed or searched, so templates
//! taken from two deployments do not match each other, and a deployment can
//! re-issue all of its templates under a new secret.
//!
//! The gallery lives in the space of the transform that was current when
//! this process started; probes are moved into it, and stored templates
//! under any other transform are moved into it as they load.

use facepay_store::parties::{self, StoredTemplate};
use facepay_store::{Clock, Store};
use facepay_template_transform::{KeysError, TransformError, TransformKeys};

use crate::{Envelope, Failure, Payments, template_aad, vector_from_bytes, vector_to_bytes};

impl From<KeysError> for Failure {
    fn from(e: KeysError) -> Self {
        tracing::error!(error = %e, "template transform failure");
        Failure::internal()
    }
}

impl From<TransformError> for Failure {
    fn from(e: TransformError) -> Self {
        tracing::error!(error = %e, "template transform failure");
        Failure::internal()
    }
}

impl Payments {
    /// A fresh template moved into the gallery's space.
    pub(crate) fn protect(&self, raw: &[f32]) -> Result<Vec<f32>, Failure> {
        Ok(self
            .transforms
            .by_id(&self.transform_id, raw.len())?
            .apply(raw)?)
    }

    /// The id stored with templates this process seals.
    pub(crate) fn transform_id(&self) -> &str {
        &self.transform_id
    }

    /// A stored template, opened, in the gallery's space.
    pub(crate) fn stored_in_gallery_space(
        &self,
        stored: &StoredTemplate,
        vector: Vec<f32>,
    ) -> Result<Vec<f32>, Failure> {
        convert(
            &self.transforms,
            stored.transform_id.as_deref(),
            &self.transform_id,
            vector,
        )
    }
}

/// `vector` from the space of `from` (`None`: untransformed) to `to`.
fn convert(
    transforms: &TransformKeys,
    from: Option<&str>,
    to: &str,
    vector: Vec<f32>,
) -> Result<Vec<f32>, Failure> {
    if from == Some(to) {
        return Ok(vector);
    }
    let raw = match from {
        Some(id) => transforms.by_id(id, vector.len())?.invert(&vector)?,
        None => vector,
    };
    Ok(transforms.by_id(to, raw.len())?.apply(&raw)?)
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
            let data_key = facepay_store::keys::get(&mut tx, &row.key_id).await?;
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
                &current,
                vector_from_bytes(&plain)?,
            )?;
            let sealed = envelope.seal(&vector_to_bytes(&vector), &aad)?;
            facepay_store::keys::insert(&mut tx, &sealed.data_key, now).await?;
            let replaced = StoredTemplate {
                user_id: row.user_id.clone(),
                model: row.model.clone(),
                key_id: sealed.key_id,
                nonce: sealed.nonce,
                ciphertext: sealed.ciphertext,
                transform_id: Some(current.clone()),
            };
            if parties::replace_template(&mut tx, &replaced, &row.key_id).await? {
                facepay_store::keys::delete(&mut tx, &row.key_id).await?;
                converted += 1;
            } else {
                facepay_store::keys::delete(&mut tx, &replaced.key_id).await?;
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
