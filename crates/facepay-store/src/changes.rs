//! The gallery's change log: what each server follows to keep its in-memory
//! gallery in step with the others that share the database.
//!
//! A change names a user and what changed, never a vector; the follower
//! reads the current template itself, so applying a change twice, or
//! applying an old one after a newer state, is harmless.

use std::time::Duration;

use sqlx::FromRow;
use sqlx::postgres::PgListener;

use crate::{Connection, Result, Store};

/// The PostgreSQL channel a committed change notifies.
pub const CHANNEL: &str = "facepay_gallery_changes";
/// Any constant works; it only has to be the same in every writer.
const APPEND_LOCK: i64 = 0x6661_6365_7061_7967;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A template was stored or erased: read the user's current one.
    Template,
    /// The user paid at a merchant: searched first there.
    Regular,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Template => "template",
            Kind::Regular => "regular",
        }
    }
}

#[derive(Debug, Clone, FromRow)]
pub struct Change {
    pub seq: i64,
    pub user_id: String,
    kind: String,
    pub merchant_id: Option<String>,
}

impl Change {
    pub fn kind(&self) -> Option<Kind> {
        match self.kind.as_str() {
            "template" => Some(Kind::Template),
            "regular" => Some(Kind::Regular),
            _ => None,
        }
    }
}

/// Records a change in the caller's transaction. On PostgreSQL the writer
/// first takes a lock held until its commit, so sequence numbers are handed
/// out in commit order and a follower reading past `seq` never skips a row
/// that commits later; the notification goes out with the commit.
pub async fn append(
    conn: &mut Connection,
    user_id: &str,
    kind: Kind,
    merchant_id: Option<&str>,
    now_ms: i64,
) -> Result<()> {
    append_all(conn, &[(user_id, kind, merchant_id)], now_ms).await
}

/// Changes appended together (`append`), under one take of the lock, a
/// statement for each few hundred.
pub async fn append_all(
    conn: &mut Connection,
    changes: &[(&str, Kind, Option<&str>)],
    now_ms: i64,
) -> Result<()> {
    assert!(!changes.is_empty());
    for (_, kind, merchant_id) in changes {
        assert!(*kind == Kind::Regular || merchant_id.is_none());
    }
    lock(conn).await?;
    const INSERT: &str =
        "INSERT INTO gallery_changes (user_id, kind, merchant_id, created_at_ms) VALUES";
    crate::insert_rows(
        conn,
        INSERT,
        changes,
        |query, (user_id, kind, merchant_id)| {
            (query.bind(*user_id).bind(kind.as_str()))
                .bind(*merchant_id)
                .bind(now_ms)
        },
    )
    .await?;
    if crate::on_postgres(conn) {
        sqlx::query("SELECT 1 FROM pg_notify($1, '')")
            .bind(CHANNEL)
            .execute(conn)
            .await?;
    }
    Ok(())
}

/// Takes the change log's writer lock until the caller's transaction ends
/// (on PostgreSQL; SQLite has one writer anyway). Besides appending, a
/// snapshot's key is stored under it, so a deletion either destroys that
/// key or is applied before the snapshot is written.
pub async fn lock(conn: &mut Connection) -> Result<()> {
    if crate::on_postgres(conn) {
        // In FROM so the row has a type the Any driver decodes (not void).
        sqlx::query("SELECT 1 FROM pg_advisory_xact_lock($1)")
            .bind(APPEND_LOCK)
            .execute(conn)
            .await?;
    }
    Ok(())
}

/// The last change so far (0 when none): a server that loads the gallery
/// reads this first and follows from it.
pub async fn last_seq(conn: &mut Connection) -> Result<i64> {
    let (seq,): (i64,) =
        sqlx::query_as("SELECT CAST(COALESCE(MAX(seq), 0) AS BIGINT) FROM gallery_changes")
            .fetch_one(conn)
            .await?;
    Ok(seq)
}

/// Changes after `seq`, oldest first, at most `limit`.
pub async fn after(conn: &mut Connection, seq: i64, limit: i64) -> Result<Vec<Change>> {
    assert!(limit > 0);
    Ok(sqlx::query_as(
        "SELECT seq, user_id, kind, merchant_id FROM gallery_changes \
         WHERE seq > $1 ORDER BY seq LIMIT $2",
    )
    .bind(seq)
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// Forgets changes made before `before_ms`: a server that was away longer
/// loads the gallery afresh when it starts.
pub async fn prune(conn: &mut Connection, before_ms: i64) -> Result<u64> {
    Ok(
        sqlx::query("DELETE FROM gallery_changes WHERE created_at_ms < $1")
            .bind(before_ms)
            .execute(conn)
            .await?
            .rows_affected(),
    )
}

/// Wakes a follower when a change commits: PostgreSQL's LISTEN where there
/// is one, and in any case after `poll`, so a lost notification (or a lost
/// listening connection) only delays a change by one poll.
pub struct Wakeup {
    listener: Option<PgListener>,
    poll: Duration,
}

impl Wakeup {
    pub async fn new(store: &Store, poll: Duration) -> Self {
        let listener = match store.backend() {
            crate::Backend::Postgres => match PgListener::connect(store.url()).await {
                Ok(mut listener) => match listener.listen(CHANNEL).await {
                    Ok(()) => Some(listener),
                    Err(e) => {
                        tracing::warn!(error = %e, "LISTEN failed; polling only");
                        None
                    }
                },
                Err(e) => {
                    tracing::warn!(error = %e, "no listening connection; polling only");
                    None
                }
            },
            crate::Backend::Sqlite => None,
        };
        Self { listener, poll }
    }

    /// Returns on a notification or after the poll interval.
    pub async fn wait(&mut self) {
        let Some(listener) = self.listener.as_mut() else {
            tokio::time::sleep(self.poll).await;
            return;
        };
        match tokio::time::timeout(self.poll, listener.recv()).await {
            Ok(Ok(_)) | Err(_) => {}
            Ok(Err(e)) => {
                // The listener reconnects on its next call; until then the
                // poll carries the changes.
                tracing::warn!(error = %e, "change notifications interrupted");
                tokio::time::sleep(self.poll).await;
            }
        }
    }
}
