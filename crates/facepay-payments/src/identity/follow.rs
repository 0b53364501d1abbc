//! Keeping this server's gallery in step with the other servers on the same
//! database. Every enrolment and face deletion is recorded in the change
//! log in the transaction that makes it, and a first payment at a merchant
//! just after its own commits; each server applies every change in order
//! (its own too), woken by PostgreSQL's NOTIFY, or by a poll when
//! notifications are lost.

use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use facepay_store::Connection;
use facepay_store::changes::{self, Change, Kind, Wakeup};
use facepay_store::parties;

use super::Identity;
use super::identify::merchant_partition;
use crate::error::Failure;

/// Changes read per query.
const CHANGES_BATCH: i64 = 1_000;
/// The longest a change waits when its notification is lost.
pub const FOLLOW_POLL: Duration = Duration::from_millis(500);
/// Changes are kept this long; a server away longer reloads at start-up
/// anyway.
const CHANGES_KEPT_MS: i64 = 24 * 3_600_000;
const PRUNE_EVERY: Duration = Duration::from_secs(3_600);
/// How often the gallery snapshot, if configured, is written again when it
/// is due (`Identity::write_snapshot_if_due`: the gallery changed, the file
/// is getting old, or a deletion destroyed its key).
const SNAPSHOT_EVERY: Duration = Duration::from_secs(600);

/// New regulars announced at most at once, in one statement.
pub(crate) const ANNOUNCE_BATCH_MAX: usize = 256;
/// New regulars waiting to be announced, at most.
const ANNOUNCE_QUEUE_MAX: usize = 16_384;

/// Announcements of new regulars not yet written, and whether a writer is
/// at work on them.
#[derive(Default)]
pub(crate) struct Announcements {
    pending: Vec<(String, String)>,
    writing: bool,
}

/// Writes the queued announcements, a batch a transaction, until none is
/// left; then the next announcement starts a writer again.
async fn write_announcements(core: Arc<crate::core::Core>, queue: Arc<StdMutex<Announcements>>) {
    let _unless_it_panics = WriterGone(Arc::clone(&queue));
    loop {
        let batch: Vec<(String, String)> = {
            let mut queue = queue.lock().unwrap_or_else(|e| e.into_inner());
            if queue.pending.is_empty() {
                queue.writing = false;
                return;
            }
            let n = queue.pending.len().min(ANNOUNCE_BATCH_MAX);
            queue.pending.drain(..n).collect()
        };
        let rows: Vec<_> = batch
            .iter()
            .map(|(user, merchant)| (user.as_str(), Kind::Regular, Some(merchant.as_str())))
            .collect();
        let written = async {
            let mut tx = core.begin().await?;
            changes::append_all(&mut tx, &rows, core.now_ms()).await?;
            tx.commit().await.map_err(facepay_store::StoreError::from)?;
            Ok::<(), Failure>(())
        };
        if let Err(e) = written.await {
            tracing::warn!(regulars = rows.len(), error = %e,
                "new regulars were not announced to the other servers");
        }
    }
}

/// Lets the next announcement start a writer if this one panics, instead
/// of leaving the queue to fill with no one writing it.
struct WriterGone(Arc<StdMutex<Announcements>>);

impl Drop for WriterGone {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.lock().unwrap_or_else(|e| e.into_inner()).writing = false;
        }
    }
}

impl Identity {
    /// Records, in the caller's transaction, a change the other servers
    /// must apply to their galleries.
    pub(crate) async fn record_change(
        &self,
        conn: &mut Connection,
        user_id: &str,
        kind: Kind,
        merchant_id: Option<&str>,
    ) -> Result<(), Failure> {
        changes::append(conn, user_id, kind, merchant_id, self.core.now_ms()).await?;
        Ok(())
    }

    /// Tells the other servers, after the payment that made the user a
    /// regular of a merchant committed, to search them first there. Not in
    /// the payment's transaction: the log's lock would be held through the
    /// whole recording, and first payments would queue behind each other.
    /// Nor does the payment's answer wait for it: the announcement is
    /// queued, and one writer at a time writes the queue, a transaction
    /// for each [`ANNOUNCE_BATCH_MAX`] or fewer.
    ///
    /// If the write fails, the queue is full or the process stops first,
    /// the payment stands and this server knows the regular; another
    /// server finds the payer by a full search (which may ask for a
    /// step-up a strong match among regulars would not), reads the
    /// regulars from the payments when it loads from the store, and
    /// announces the payer itself at their next payment through it.
    pub(crate) fn announce_regular(&self, user_id: &str, merchant_id: &str) {
        let start_writer = {
            let mut queue = self.announcements.lock().unwrap_or_else(|e| e.into_inner());
            if queue.pending.len() >= ANNOUNCE_QUEUE_MAX {
                tracing::warn!(
                    user = user_id,
                    merchant = merchant_id,
                    "a new regular was not announced to the other servers: the queue is full"
                );
                return;
            }
            queue
                .pending
                .push((user_id.to_owned(), merchant_id.to_owned()));
            !std::mem::replace(&mut queue.writing, true)
        };
        if start_writer {
            let (core, queue) = (Arc::clone(&self.core), Arc::clone(&self.announcements));
            tokio::spawn(write_announcements(core, queue));
        }
    }

    /// Applies the changes made since the last call, in order; returns how
    /// many. This server's own are among them: the request that made one
    /// may not have reached the gallery yet, and applying a change twice is
    /// harmless, so once `changes_seen` passes a change the gallery holds
    /// it (what a snapshot relies on). A store failure stops at the change
    /// it could not apply, to be retried by the next call.
    pub async fn catch_up(&self) -> Result<usize, Failure> {
        let mut conn = self.core.conn().await?;
        self.catch_up_on(&mut conn).await
    }

    /// [`Self::catch_up`] on `conn`: an enrolment applies the log inside
    /// its transaction, which holds the log's lock and must not wait for a
    /// second connection that a transaction waiting for that lock holds.
    pub(crate) async fn catch_up_on(&self, conn: &mut Connection) -> Result<usize, Failure> {
        let mut seen = self.changes_seen.lock().await;
        let mut applied = 0;
        loop {
            let batch = changes::after(&mut *conn, *seen, CHANGES_BATCH).await?;
            let full = batch.len() as i64 == CHANGES_BATCH;
            for change in batch {
                assert!(change.seq > *seen);
                self.apply(&mut *conn, &change).await?;
                applied += 1;
                *seen = change.seq;
            }
            if !full {
                return Ok(applied);
            }
        }
    }

    /// After a request committed a change: the log applied up to it. A
    /// failure is logged, not returned (the change is committed, and the
    /// follower applies it at its next wake-up).
    pub(crate) async fn apply_own_changes(&self) {
        if let Err(e) = self.catch_up().await {
            tracing::warn!(error = %e, "gallery changes not applied yet");
        }
    }

    /// Takes a face whose deletion was just committed out of this server's
    /// gallery at once, before the change log gets to it.
    pub(crate) fn remove_face(&self, user_id: &str) -> Result<(), Failure> {
        self.gallery.remove(user_id)?;
        Ok(())
    }

    async fn apply(&self, conn: &mut Connection, change: &Change) -> Result<(), Failure> {
        let user_id = change.user_id.as_str();
        match (change.kind(), change.merchant_id.as_deref()) {
            (Some(Kind::Template), _) => match parties::active_template(conn, user_id).await? {
                None => {
                    self.gallery.remove(user_id)?;
                }
                // A user's vector in this gallery's space never changes
                // (re-issued templates open to the same vector).
                Some(_) if self.gallery.contains(user_id) => {}
                // One template that does not open must not hold up the
                // changes after it (deletions among them): it is logged and
                // that user cannot pay through this server.
                Some(active) => match self.gallery_entry(&active) {
                    Ok(Some((vector, partitions))) => {
                        self.gallery.insert(user_id, &vector, &partitions)?;
                    }
                    Ok(None) => {}
                    Err(_) => {
                        tracing::error!(
                            user = user_id,
                            "template does not open; not in this gallery"
                        );
                    }
                },
            },
            (Some(Kind::Regular), Some(merchant_id)) => {
                // A user past the partition limit is still found by a full
                // search.
                let _ = self
                    .gallery
                    .join_partition(user_id, &merchant_partition(merchant_id));
            }
            (kind, _) => {
                tracing::warn!(seq = change.seq, ?kind, "change not understood; skipped");
            }
        }
        Ok(())
    }

    /// Follows the change log until the task is dropped.
    pub async fn follow(self: Arc<Self>) {
        let mut wakeup = Wakeup::new(&self.core.store, FOLLOW_POLL).await;
        let mut pruned_at = Instant::now();
        loop {
            wakeup.wait().await;
            match self.catch_up().await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(changes = n, "gallery caught up"),
                Err(e) => tracing::warn!(error = %e, "gallery changes not applied yet"),
            }
            metrics::gauge!("facepay_gallery_templates").set(self.gallery.len() as f64);
            if pruned_at.elapsed() >= PRUNE_EVERY {
                pruned_at = Instant::now();
                // The risk windows that read refused attempts and wrong
                // answers are a day at most, like the change log's.
                let pruned = async {
                    let mut conn = self.core.conn().await?;
                    let before_ms = self.core.now_ms() - CHANGES_KEPT_MS;
                    changes::prune(&mut conn, before_ms).await?;
                    facepay_store::fraud::prune(&mut conn, before_ms).await?;
                    Ok::<_, Failure>(())
                };
                if let Err(e) = pruned.await {
                    tracing::warn!(error = %e, "change log or risk counts not pruned");
                }
            }
        }
    }

    /// Writes the snapshot at once, then again every [`SNAPSHOT_EVERY`],
    /// each time only if it is due ([`Self::write_snapshot_if_due`]: the
    /// gallery changed, or the last file is getting old), until the task
    /// is dropped; returns at once if no snapshot is configured.
    pub async fn keep_snapshot(self: Arc<Self>) {
        if self.core.config.gallery_snapshot.is_none() {
            return;
        }
        loop {
            // On a task of its own: when this loop is stopped at shutdown,
            // a write under way still finishes, and the shutdown's own
            // write waits for it (both take the snapshot's lock) instead of
            // staging the same file beside it.
            let this = Arc::clone(&self);
            let write = tokio::spawn(async move {
                if let Err(e) = this.write_snapshot_if_due().await {
                    tracing::warn!(error = %e, "gallery snapshot not written");
                }
            });
            if let Err(e) = write.await {
                tracing::error!(error = %e, "gallery snapshot writer panicked");
            }
            tokio::time::sleep(SNAPSHOT_EVERY).await;
        }
    }
}
