//! The audit log: every access to biometric or card data and every
//! administrative action, appended in the transaction that does it, and
//! hash-chained so that `verify` detects an edited, removed or reordered
//! entry. The chain's hash is SHA-256, hand-chained here because no crate
//! does this over a SQL table.

use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::{FromRow, Row};

use crate::{Connection, Result};

const GENESIS: &str = "genesis";
/// Entries read per query by `verify`.
const VERIFY_PAGE: i64 = 1000;

#[derive(Debug, Clone, FromRow, Serialize, PartialEq, Eq)]
pub struct Entry {
    pub seq: i64,
    pub at_ms: i64,
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub prev_hash: String,
    pub hash: String,
}

fn chain_hash(
    prev_hash: &str,
    seq: i64,
    at_ms: i64,
    actor: &str,
    action: &str,
    subject: &str,
) -> String {
    let mut h = Sha256::new();
    for part in [
        prev_hash,
        &seq.to_string(),
        &at_ms.to_string(),
        actor,
        action,
        subject,
    ] {
        // Length-prefixed, so that no two different entries hash alike.
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    hex::encode(h.finalize())
}

/// Appends an entry; call inside the transaction of the action it records.
pub async fn append(
    conn: &mut Connection,
    at_ms: i64,
    actor: &str,
    action: &str,
    subject: &str,
) -> Result<i64> {
    let head = sqlx::query("UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash")
        .fetch_one(&mut *conn)
        .await?;
    let seq: i64 = head.try_get("seq")?;
    let prev_hash: String = head.try_get("hash")?;
    let hash = chain_hash(&prev_hash, seq, at_ms, actor, action, subject);
    sqlx::query(
        "INSERT INTO audit_log (seq, at_ms, actor, action, subject, prev_hash, hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(seq)
    .bind(at_ms)
    .bind(actor)
    .bind(action)
    .bind(subject)
    .bind(&prev_hash)
    .bind(&hash)
    .execute(&mut *conn)
    .await?;
    sqlx::query("UPDATE audit_head SET hash = $1 WHERE id = 1")
        .bind(&hash)
        .execute(conn)
        .await?;
    Ok(seq)
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct AuditVerification {
    pub entries: i64,
    /// The first entry where the chain breaks, and why.
    pub broken: Option<(i64, String)>,
}

/// Walks the whole chain: sequence numbers without gaps from 1, each
/// entry's `prev_hash` the hash before it, each hash recomputed, and the
/// head pointing at the last entry.
pub async fn verify(conn: &mut Connection) -> Result<AuditVerification> {
    let mut v = AuditVerification::default();
    let mut prev_hash = GENESIS.to_owned();
    let mut expected_seq = 1;
    loop {
        let page: Vec<Entry> = sqlx::query_as(
            "SELECT seq, at_ms, actor, action, subject, prev_hash, hash FROM audit_log \
             WHERE seq >= $1 ORDER BY seq LIMIT $2",
        )
        .bind(expected_seq)
        .bind(VERIFY_PAGE)
        .fetch_all(&mut *conn)
        .await?;
        let full = page.len() as i64 == VERIFY_PAGE;
        for e in &page {
            let problem = if e.seq != expected_seq {
                Some(format!("entry {expected_seq} is missing"))
            } else if e.prev_hash != prev_hash {
                Some("its link to the entry before does not match".to_owned())
            } else if e.hash
                != chain_hash(
                    &e.prev_hash,
                    e.seq,
                    e.at_ms,
                    &e.actor,
                    &e.action,
                    &e.subject,
                )
            {
                Some("its content does not match its hash (edited)".to_owned())
            } else {
                None
            };
            if let Some(problem) = problem {
                v.broken = Some((expected_seq.min(e.seq), problem));
                return Ok(v);
            }
            v.entries += 1;
            prev_hash = e.hash.clone();
            expected_seq += 1;
        }
        if !full {
            break;
        }
    }
    let head = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
        .fetch_one(conn)
        .await?;
    let head_seq: i64 = head.try_get("seq")?;
    let head_hash: String = head.try_get("hash")?;
    if head_seq != expected_seq - 1 || head_hash != prev_hash {
        v.broken = Some((
            expected_seq,
            format!(
                "the log ends at entry {} but its head says {head_seq}: entries were removed",
                expected_seq - 1
            ),
        ));
    }
    Ok(v)
}
