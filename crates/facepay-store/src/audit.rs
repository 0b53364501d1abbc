//! The audit log: every access to biometric or card data and every
//! administrative action, appended in the transaction that does it, and
//! hash-chained so that `verify` detects an edited, removed or reordered
//! entry. The chain's hash is SHA-256, hand-chained here because no crate
//! does this over a SQL table.
//!
//! The log is [`CHAINS`] chains, each with its own head row, so that
//! transactions appending at once (payments recorded on several
//! connections) seldom wait for each other: an appender holds its chain's
//! head until it commits. An entry's subject (a batch's first entry's)
//! picks its chain on SQLite, whose one writer appends in turn anyway; on
//! PostgreSQL the subject's chain is tried first and, when another
//! transaction holds it, the next chain no one holds, so that appenders
//! wait only when every chain is held. Verification walks each chain
//! whatever its entries' subjects.

use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::{FromRow, Row};

use crate::{Connection, Result, StoreError};

const GENESIS: &str = "genesis";
/// The chains the log is kept in (migration 0020 made their heads).
pub const CHAINS: u64 = 16;
/// Entries one [`append_all`] appends at most.
pub const APPEND_ALL_MAX: usize = 10_000;
/// Entries read per query by `verify`.
const VERIFY_PAGE: i64 = 1000;

#[derive(Debug, Clone, FromRow, Serialize, PartialEq, Eq)]
pub struct Entry {
    pub seq: i64,
    pub chain: i64,
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

/// The chain an entry about `subject` goes to, 1 to [`CHAINS`]: on SQLite
/// the same for every entry about it appended alone or first in a batch
/// (the others of a batch go with the first); on PostgreSQL the chain
/// tried first. Migration 0020's note that a subject's entries share a
/// chain holds in those cases only since.
fn chain_of(subject: &str) -> i64 {
    let digest = Sha256::digest(subject.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    // At most CHAINS, which fits.
    (u64::from_le_bytes(first) % CHAINS + 1) as i64
}

/// Takes a chain's head for `$2` entries and draws the first entry's
/// number in one statement. The number is drawn once the head's row is
/// held (a `RETURNING` expression runs after its row is updated), so it is
/// above every number the chain's earlier entries drew. It counts across
/// chains: from a sequence on PostgreSQL, which no transaction waits for;
/// from the log on SQLite, whose one writer appends in turn. On PostgreSQL
/// the chain is the first from `$1` on that no other transaction holds
/// (`SKIP LOCKED`), or `$1` itself, waited for, when all are held.
fn take_head_sql(conn: &Connection) -> &'static str {
    const _: () = assert!(CHAINS == 16, "the chain's order below counts 16 chains");
    if crate::on_postgres(conn) {
        "UPDATE audit_chains SET entries = entries + $2 WHERE chain = COALESCE(\
         (SELECT chain FROM audit_chains ORDER BY (chain + 16 - $1) % 16 \
         LIMIT 1 FOR UPDATE SKIP LOCKED), $1) \
         RETURNING chain, hash, nextval('audit_seq') AS seq"
    } else {
        "UPDATE audit_chains SET entries = entries + $2 WHERE chain = $1 \
         RETURNING chain, hash, (SELECT CAST(COALESCE(MAX(seq), 0) + 1 AS BIGINT) FROM audit_log) AS seq"
    }
}

/// Appends an entry; call inside the transaction of the action it records.
/// Returns its number.
pub async fn append(
    conn: &mut Connection,
    at_ms: i64,
    actor: &str,
    action: &str,
    subject: &str,
) -> Result<i64> {
    let numbers = append_all(conn, at_ms, actor, &[(action, subject)]).await?;
    Ok(numbers[0])
}

/// Appends entries of (action, subject), in their order, to one chain
/// (the first subject's, or a free one): a bulk import records thousands
/// in a few statements. Returns their numbers.
pub async fn append_all(
    conn: &mut Connection,
    at_ms: i64,
    actor: &str,
    entries: &[(&str, &str)],
) -> Result<Vec<i64>> {
    assert!(!entries.is_empty() && entries.len() <= APPEND_ALL_MAX);
    let preferred = chain_of(entries[0].1);
    let head = sqlx::query(take_head_sql(conn))
        .bind(preferred)
        .bind(entries.len() as i64)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("the audit log has no chain {preferred}")))?;
    let chain: i64 = head.try_get("chain")?;
    let mut prev_hash: String = head.try_get("hash")?;
    let numbers = more_numbers(conn, head.try_get("seq")?, entries.len()).await?;
    let mut rows = Vec::with_capacity(entries.len());
    for (&seq, &(action, subject)) in numbers.iter().zip(entries) {
        let hash = chain_hash(&prev_hash, seq, at_ms, actor, action, subject);
        rows.push(Entry {
            seq,
            chain,
            at_ms,
            actor: actor.to_owned(),
            action: action.to_owned(),
            subject: subject.to_owned(),
            prev_hash: std::mem::replace(&mut prev_hash, hash.clone()),
            hash,
        });
    }
    insert_entries(conn, &rows, (chain, &prev_hash)).await?;
    Ok(numbers)
}

/// `first` and the numbers of `count - 1` entries after it, increasing.
async fn more_numbers(conn: &mut Connection, first: i64, count: usize) -> Result<Vec<i64>> {
    let mut numbers = vec![first];
    if count == 1 {
        return Ok(numbers);
    }
    if crate::on_postgres(conn) {
        let rest: Vec<(i64,)> =
            sqlx::query_as("SELECT nextval('audit_seq') AS seq FROM generate_series(2, $1)")
                .bind(count as i64)
                .fetch_all(&mut *conn)
                .await?;
        numbers.extend(rest.into_iter().map(|(seq,)| seq));
        // Drawn after `first`, but the rows' order is the plan's.
        numbers[1..].sort_unstable();
    } else {
        numbers.extend((1..count as i64).map(|more| first + more));
    }
    assert_eq!(numbers.len(), count);
    Ok(numbers)
}

/// Inserts a chain's new entries and moves its head to the last one's hash.
async fn insert_entries(
    conn: &mut Connection,
    entries: &[Entry],
    (chain, last_hash): (i64, &str),
) -> Result<()> {
    const INSERT: &str = "INSERT INTO audit_log (seq, chain, at_ms, actor, action, subject, \
                          prev_hash, hash) VALUES";
    if !crate::on_postgres(conn) {
        crate::insert_rows(conn, INSERT, entries, bind_entry).await?;
        sqlx::query("UPDATE audit_chains SET hash = $1 WHERE chain = $2")
            .bind(last_hash)
            .bind(chain)
            .execute(conn)
            .await?;
        return Ok(());
    }
    const COLUMNS: usize = 8;
    // Leaves room for the head's two values in the last statement.
    let mut chunks = entries
        .chunks(crate::rows_per_statement(COLUMNS) - 1)
        .peekable();
    while let Some(chunk) = chunks.next() {
        let values = crate::values_placeholders(chunk.len(), COLUMNS);
        let moves_head = chunks.peek().is_none();
        let sql = if moves_head {
            // One round trip: PostgreSQL's statements may write in a WITH.
            let (hash, chain) = (chunk.len() * COLUMNS + 1, chunk.len() * COLUMNS + 2);
            format!(
                "WITH entry AS ({INSERT} {values}) \
                 UPDATE audit_chains SET hash = ${hash} WHERE chain = ${chain}"
            )
        } else {
            format!("{INSERT} {values}")
        };
        let mut query = sqlx::query(&sql);
        for entry in chunk {
            query = bind_entry(query, entry);
        }
        if moves_head {
            query = query.bind(last_hash).bind(chain);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

fn bind_entry<'q>(query: crate::AnyQuery<'q>, entry: &'q Entry) -> crate::AnyQuery<'q> {
    query
        .bind(entry.seq)
        .bind(entry.chain)
        .bind(entry.at_ms)
        .bind(&entry.actor)
        .bind(&entry.action)
        .bind(&entry.subject)
        .bind(&entry.prev_hash)
        .bind(&entry.hash)
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct AuditVerification {
    pub entries: i64,
    /// The first entry where a chain breaks, and why.
    pub broken: Option<(i64, String)>,
}

/// Walks every chain: each entry's `prev_hash` the hash of the entry
/// before it in its chain (the first's the genesis), each hash
/// recomputed, numbers increasing, and the chain's head counting its
/// entries and holding the last one's hash. No entry may sit outside the
/// chains.
///
/// It reads in one snapshot, so that entries committed while it reads are
/// not taken for removals: on PostgreSQL a repeatable-read transaction;
/// on SQLite a read transaction is one snapshot already.
pub async fn verify(conn: &mut Connection) -> Result<AuditVerification> {
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    if crate::on_postgres(&tx) {
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            .execute(&mut *tx)
            .await?;
    }
    let v = verify_in(&mut tx).await?;
    tx.rollback().await?;
    Ok(v)
}

async fn verify_in(conn: &mut Connection) -> Result<AuditVerification> {
    let mut v = AuditVerification::default();
    let heads: Vec<(i64, i64, String)> =
        sqlx::query_as("SELECT chain, entries, hash FROM audit_chains ORDER BY chain")
            .fetch_all(&mut *conn)
            .await?;
    for (chain, entries, hash) in heads {
        let walked = walk_chain(conn, chain).await?;
        v.entries += walked.entries;
        if let Some(broken) = walked.broken {
            v.broken = Some(broken);
            return Ok(v);
        }
        if walked.entries != entries || walked.last_hash != hash {
            let message = format!(
                "chain {chain} ends after {} entries but its head says {entries}: entries were removed",
                walked.entries
            );
            v.broken = Some((walked.last_seq + 1, message));
            return Ok(v);
        }
    }
    let (all,): (i64,) = sqlx::query_as("SELECT CAST(COUNT(*) AS BIGINT) FROM audit_log")
        .fetch_one(&mut *conn)
        .await?;
    if all != v.entries {
        let message = format!("{} entries are in no chain", all - v.entries);
        v.broken = Some((0, message));
    }
    Ok(v)
}

/// What walking one chain found.
struct Walked {
    entries: i64,
    last_seq: i64,
    last_hash: String,
    broken: Option<(i64, String)>,
}

async fn walk_chain(conn: &mut Connection, chain: i64) -> Result<Walked> {
    let mut w = Walked {
        entries: 0,
        last_seq: 0,
        last_hash: GENESIS.to_owned(),
        broken: None,
    };
    loop {
        let page: Vec<Entry> = sqlx::query_as(
            "SELECT seq, chain, at_ms, actor, action, subject, prev_hash, hash FROM audit_log \
             WHERE chain = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        )
        .bind(chain)
        .bind(w.last_seq)
        .bind(VERIFY_PAGE)
        .fetch_all(&mut *conn)
        .await?;
        let full = page.len() as i64 == VERIFY_PAGE;
        for e in &page {
            if let Some(problem) = problem_of(e, &w.last_hash) {
                w.broken = Some((e.seq, problem));
                return Ok(w);
            }
            w.entries += 1;
            w.last_seq = e.seq;
            w.last_hash = e.hash.clone();
        }
        if !full {
            return Ok(w);
        }
    }
}

fn problem_of(e: &Entry, prev_hash: &str) -> Option<String> {
    if e.prev_hash != prev_hash {
        return Some(
            "its link to the entry before does not match: an entry was removed or moved".to_owned(),
        );
    }
    let hash = chain_hash(
        &e.prev_hash,
        e.seq,
        e.at_ms,
        &e.actor,
        &e.action,
        &e.subject,
    );
    (e.hash != hash).then(|| "its content does not match its hash (edited)".to_owned())
}
