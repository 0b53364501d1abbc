//! The gallery snapshot: every row of the in-memory gallery in one sealed
//! file, so that a restart reads one file instead of opening each template
//! in the store, then replays the change log from where the file was
//! written.
//!
//! The file is a header (magic, then a JSON header: its data key's id, the
//! change-log position, when it was written, model and transform) and the
//! gallery's row stream sealed in segments by STREAM (AES-256-GCM with a
//! 32-bit counter, RustCrypto `aead::stream`), the header bound to every
//! segment, the last segment marked so that a cut file does not open.
//!
//! Its data key is a row of `data_keys` like any other (rotation re-wraps
//! it), listed in `snapshot_keys`, and every deletion of a face destroys
//! all of them in the deletion's own transaction: a snapshot never outlives a deletion, and the next restart
//! loads from the store instead (see [`Identity::record_deletion`]).

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::KeyInit;
use aes_gcm::aead::stream::{DecryptorBE32, EncryptorBE32};
use facepay_store::Connection;
use facepay_store::changes::{self, Kind};
use facepay_store::keys::SnapshotKeys;
use serde::{Deserialize, Serialize};

use facepay_gallery::{Gallery, GalleryError};
use zeroize::Zeroizing;

use super::Identity;
use crate::error::Failure;
use crate::keys::{KEY_BYTES, random_bytes};

const MAGIC: &[u8; 8] = b"FPSNAP01";
/// Data keys of snapshots have ids starting with this.
pub(crate) const KEY_PREFIX: &str = "snapshot-";
/// Plaintext bytes per sealed segment.
const SEGMENT_BYTES: usize = 1 << 20;
const TAG_BYTES: usize = 16;
/// The longest header accepted.
const HEADER_BYTES_MAX: usize = 4_096;
/// STREAM's nonce prefix for a 12-byte nonce and a 5-byte counter.
const NONCE_PREFIX_BYTES: usize = 7;
/// A snapshot older than this is not used: the changes after it may be
/// pruned from the log (which keeps a day) by now.
const SNAPSHOT_AGE_MAX_MS: i64 = 20 * 3_600_000;
/// A snapshot is written again after this long even if the gallery has
/// not changed, so that it is never too old to start from, nor its key
/// destroyed as too old by another server.
const SNAPSHOT_REFRESH_MS: i64 = SNAPSHOT_AGE_MAX_MS / 2;

/// The snapshot file this server wrote last, or started from.
#[derive(Debug)]
pub(crate) struct Written {
    key_id: String,
    /// Every change up to this one is in the file.
    seq: i64,
    written_at_ms: i64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    key_id: String,
    /// Every change up to this one is in the rows.
    seq: i64,
    written_at_ms: i64,
    model: String,
    transform_id: String,
    nonce_prefix: String,
}

fn io_failure(path: &Path) -> impl Fn(std::io::Error) -> Failure + '_ {
    move |e| {
        tracing::error!(path = %path.display(), error = %e, "gallery snapshot file");
        Failure::internal()
    }
}

fn stream_error() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        "a snapshot segment does not open",
    )
}

/// Seals what is written to it, a segment at a time.
struct SealedWriter<W: Write> {
    inner: W,
    encryptor: Option<EncryptorBE32<Aes256Gcm>>,
    header: Vec<u8>,
    buf: Vec<u8>,
}

impl<W: Write> SealedWriter<W> {
    fn seal_segment(&mut self, last: bool) -> std::io::Result<()> {
        let take = self.buf.len().min(SEGMENT_BYTES);
        let mut segment: Vec<u8> = self.buf.drain(..take).collect();
        segment.reserve(TAG_BYTES);
        let sealed = if last {
            self.encryptor
                .take()
                .map(|e| e.encrypt_last_in_place(&self.header, &mut segment))
        } else {
            self.encryptor
                .as_mut()
                .map(|e| e.encrypt_next_in_place(&self.header, &mut segment))
        };
        match sealed {
            Some(Ok(())) => {}
            _ => return Err(stream_error()),
        }
        self.inner.write_all(&[u8::from(last)])?;
        self.inner
            .write_all(&(segment.len() as u32).to_le_bytes())?;
        self.inner.write_all(&segment)
    }

    fn finish(mut self) -> std::io::Result<W> {
        while self.buf.len() > SEGMENT_BYTES {
            self.seal_segment(false)?;
        }
        self.seal_segment(true)?;
        self.inner.flush()?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for SealedWriter<W> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        // One segment is always held back: only `finish` knows the last.
        while self.buf.len() > SEGMENT_BYTES {
            self.seal_segment(false)?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Opens what [`SealedWriter`] sealed; a segment that does not open, or an
/// end before the last segment, is an error.
struct SealedReader<R: Read> {
    inner: R,
    decryptor: Option<DecryptorBE32<Aes256Gcm>>,
    header: Vec<u8>,
    plain: Vec<u8>,
    at: usize,
}

impl<R: Read> SealedReader<R> {
    fn next_segment(&mut self) -> std::io::Result<()> {
        let mut flag_and_len = [0u8; 5];
        self.inner.read_exact(&mut flag_and_len)?;
        let last = flag_and_len[0] == 1;
        let len = u32::from_le_bytes([
            flag_and_len[1],
            flag_and_len[2],
            flag_and_len[3],
            flag_and_len[4],
        ]) as usize;
        if len > SEGMENT_BYTES + TAG_BYTES || flag_and_len[0] > 1 {
            return Err(stream_error());
        }
        self.plain.resize(len, 0);
        self.inner.read_exact(&mut self.plain)?;
        self.at = 0;
        let opened = if last {
            self.decryptor
                .take()
                .map(|d| d.decrypt_last_in_place(&self.header, &mut self.plain))
        } else {
            self.decryptor
                .as_mut()
                .map(|d| d.decrypt_next_in_place(&self.header, &mut self.plain))
        };
        match opened {
            Some(Ok(())) => Ok(()),
            _ => Err(stream_error()),
        }
    }
}

impl<R: Read> Read for SealedReader<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.plain.len() {
            if self.decryptor.is_none() {
                return Ok(0);
            }
            self.next_segment()?;
        }
        let n = out.len().min(self.plain.len() - self.at);
        out[..n].copy_from_slice(&self.plain[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

fn stream_cipher(key: &[u8; KEY_BYTES]) -> Aes256Gcm {
    Aes256Gcm::new(key.into())
}

impl Identity {
    /// In the caller's transaction: records that a user's face is gone and
    /// destroys every snapshot's key, after taking the change log's lock
    /// (see [`changes::lock`]).
    pub(crate) async fn record_deletion(
        &self,
        conn: &mut Connection,
        user_id: &str,
    ) -> Result<(), Failure> {
        self.record_change(conn, user_id, Kind::Template, None)
            .await?;
        facepay_store::keys::destroy_snapshot_keys(conn, SnapshotKeys::All).await?;
        Ok(())
    }

    fn snapshot_path(&self) -> Option<&Path> {
        self.core.config.gallery_snapshot.as_deref()
    }

    /// Writes the gallery to the snapshot file, if one is configured
    /// (replacing this server's last one, whose key is then destroyed);
    /// returns how many rows, and the change-log position they hold. The
    /// file is written on a blocking thread: seconds for millions of rows.
    pub async fn write_snapshot(self: &Arc<Self>) -> Result<Option<(u64, i64)>, Failure> {
        let Some(path) = self.snapshot_path().map(Path::to_path_buf) else {
            return Ok(None);
        };
        // One writer at a time (the periodic one and the one at shutdown).
        let mut own = self.snapshot.lock().await;
        self.write_as(&mut own, path).await.map(Some)
    }

    /// Writes the snapshot as [`Self::write_snapshot`] does, unless this
    /// server's last one (or the one it started from) holds every change
    /// applied since, is younger than [`SNAPSHOT_REFRESH_MS`] and its key
    /// still exists: at ten million rows a write is seconds of work and
    /// 2 GB on disk for nothing. `None` when nothing was written.
    pub async fn write_snapshot_if_due(self: &Arc<Self>) -> Result<Option<(u64, i64)>, Failure> {
        let Some(path) = self.snapshot_path().map(Path::to_path_buf) else {
            return Ok(None);
        };
        // Checked and written under one hold, so that the periodic writer
        // and the shutdown's do not both find it due.
        let mut own = self.snapshot.lock().await;
        if let Some(up_to_date) = own.as_ref()
            && !self.due(up_to_date).await?
        {
            let seq = up_to_date.seq;
            tracing::info!(seq, "gallery snapshot up to date; not written again");
            return Ok(None);
        }
        self.write_as(&mut own, path).await.map(Some)
    }

    /// Whether `own` must be written again: the gallery changed since, it
    /// is getting old, or its key is gone. A face deleted on another
    /// server destroys the key at once, before its change reaches this
    /// gallery (at shutdown the follower has stopped), and a write that
    /// met a deletion between storing its key and catching up made a file
    /// that no longer opens.
    async fn due(&self, own: &Written) -> Result<bool, Failure> {
        let seen = *self.changes_seen.lock().await;
        if own.seq != seen || self.core.now_ms() - own.written_at_ms >= SNAPSHOT_REFRESH_MS {
            return Ok(true);
        }
        let mut conn = self.core.conn().await?;
        Ok(facepay_store::keys::get(&mut conn, &own.key_id)
            .await?
            .is_none())
    }

    /// Writes the snapshot to `path`, with `own` the snapshot's lock held,
    /// and records it there.
    async fn write_as(
        self: &Arc<Self>,
        own: &mut Option<Written>,
        path: PathBuf,
    ) -> Result<(u64, i64), Failure> {
        let (row, key) = self.core.envelope.new_data_key(KEY_PREFIX)?;
        let mut tx = self.core.store.begin().await?;
        changes::lock(&mut tx).await?;
        facepay_store::keys::insert_snapshot_key(&mut tx, &row, self.core.now_ms()).await?;
        tx.commit().await.map_err(facepay_store::StoreError::from)?;
        // Every deletion committed before the key is applied now; any
        // later one destroys the key.
        self.catch_up().await?;
        let seq = *self.changes_seen.lock().await;
        let written_at_ms = self.core.now_ms();
        let header = Header {
            key_id: row.id.clone(),
            seq,
            written_at_ms,
            model: self.engine.model_id().to_string(),
            transform_id: self.transform_id.clone(),
            nonce_prefix: hex::encode(random_bytes::<NONCE_PREFIX_BYTES>()?),
        };
        let this = Arc::clone(self);
        let target = path.clone();
        let written =
            tokio::task::spawn_blocking(move || write_file(&this.gallery, &target, &header, &key))
                .await
                .map_err(|_| Failure::internal())?;
        let mut conn = self.core.conn().await?;
        let rows = match written {
            Ok(rows) => rows,
            Err(failure) => {
                facepay_store::keys::destroy_snapshot_keys(&mut conn, SnapshotKeys::One(&row.id))
                    .await?;
                return Err(failure);
            }
        };
        // This server's previous file is replaced; keys too old to be used
        // (of servers gone) are of no use either. Other servers' keep.
        let this_one = Written {
            key_id: row.id.clone(),
            seq,
            written_at_ms,
        };
        if let Some(previous) = own.replace(this_one) {
            let previous = SnapshotKeys::One(&previous.key_id);
            facepay_store::keys::destroy_snapshot_keys(&mut conn, previous).await?;
        }
        facepay_store::keys::destroy_snapshot_keys(
            &mut conn,
            SnapshotKeys::CreatedBefore(self.core.now_ms() - SNAPSHOT_AGE_MAX_MS),
        )
        .await?;
        tracing::info!(rows, seq, path = %path.display(), "gallery snapshot written");
        Ok((rows, seq))
    }

    /// Fills the (empty) gallery from the snapshot file if there is a
    /// usable one; returns how many rows, or `None` when the gallery must
    /// be loaded from the store. The changes made since are the caller's to
    /// replay.
    pub(crate) async fn restore_snapshot(&self) -> Result<Option<u64>, Failure> {
        let Some((file, header_bytes, header)) = self.snapshot_path().and_then(open_snapshot)
        else {
            return Ok(None);
        };
        let age_ms = self.core.now_ms() - header.written_at_ms;
        if header.model != self.engine.model_id().to_string()
            || header.transform_id != self.transform_id
            || !(0..SNAPSHOT_AGE_MAX_MS).contains(&age_ms)
        {
            tracing::info!(
                age_ms,
                "gallery snapshot of another model or transform, or too old; loading from the store"
            );
            return Ok(None);
        }
        let (row, last_seq) = {
            let mut conn = self.core.conn().await?;
            (
                facepay_store::keys::get(&mut conn, &header.key_id).await?,
                changes::last_seq(&mut conn).await?,
            )
        };
        if header.seq > last_seq {
            // The log is behind the file (a database restored from a
            // backup): changes after it could be missed.
            tracing::warn!(
                seq = header.seq,
                last_seq,
                "gallery snapshot ahead of the change log; loading from the store"
            );
            return Ok(None);
        }
        let Some(row) = row else {
            tracing::info!(
                "gallery snapshot key destroyed (a face was deleted since); loading from the store"
            );
            return Ok(None);
        };
        let Ok(key) = self.core.envelope.data_key(&row) else {
            tracing::warn!("gallery snapshot key does not unwrap; loading from the store");
            return Ok(None);
        };
        let Ok(prefix) = hex::decode(&header.nonce_prefix) else {
            return Ok(None);
        };
        if prefix.len() != NONCE_PREFIX_BYTES {
            return Ok(None);
        }
        match read_rows(&self.gallery, file, header_bytes, &prefix, &key) {
            Ok(rows) => {
                *self.changes_seen.lock().await = header.seq;
                *self.snapshot.lock().await = Some(Written {
                    key_id: header.key_id,
                    seq: header.seq,
                    written_at_ms: header.written_at_ms,
                });
                Ok(Some(rows))
            }
            Err(e) => {
                tracing::warn!(error = %e, "gallery snapshot unreadable; loading from the store");
                self.gallery.clear()?;
                Ok(None)
            }
        }
    }
}

/// The snapshot file at `path`, its header's bytes and its header; `None`
/// (logged unless the file is simply not there) when there is no usable
/// one.
fn open_snapshot(path: &Path) -> Option<(BufReader<File>, Vec<u8>, Header)> {
    let mut file = match File::open(path) {
        Ok(file) => BufReader::new(file),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "gallery snapshot unreadable; loading from the store");
            return None;
        }
    };
    let Some(header_bytes) = read_header(&mut file) else {
        tracing::warn!(path = %path.display(), "not a gallery snapshot; loading from the store");
        return None;
    };
    let Ok(header) = serde_json::from_slice::<Header>(&header_bytes) else {
        tracing::warn!("gallery snapshot header unreadable; loading from the store");
        return None;
    };
    Some((file, header_bytes, header))
}

fn write_file(
    gallery: &Gallery,
    path: &Path,
    header: &Header,
    key: &[u8; KEY_BYTES],
) -> Result<u64, Failure> {
    let header_bytes = serde_json::to_vec(header).map_err(|_| Failure::internal())?;
    assert!(header_bytes.len() <= HEADER_BYTES_MAX);
    let staged = PathBuf::from(format!("{}.new", path.display()));
    let failed = io_failure(&staged);
    let mut file = BufWriter::new(facepay_store::files::create_private(&staged).map_err(&failed)?);
    file.write_all(MAGIC).map_err(&failed)?;
    file.write_all(&(header_bytes.len() as u32).to_le_bytes())
        .map_err(&failed)?;
    file.write_all(&header_bytes).map_err(&failed)?;
    let prefix = hex::decode(&header.nonce_prefix).map_err(|_| Failure::internal())?;
    let mut sealed = SealedWriter {
        inner: file,
        encryptor: Some(EncryptorBE32::from_aead(
            stream_cipher(key),
            prefix.as_slice().into(),
        )),
        header: header_bytes,
        buf: Vec::with_capacity(2 * SEGMENT_BYTES),
    };
    let rows = gallery.write_rows(&mut sealed)?;
    let file = sealed.finish().map_err(&failed)?;
    let file = file.into_inner().map_err(|e| failed(e.into_error()))?;
    file.sync_all().map_err(&failed)?;
    std::fs::rename(&staged, path).map_err(io_failure(path))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_failure(dir))?;
    }
    Ok(rows)
}

fn read_rows(
    gallery: &Gallery,
    file: impl Read,
    header_bytes: Vec<u8>,
    prefix: &[u8],
    key: &[u8; KEY_BYTES],
) -> Result<u64, GalleryError> {
    assert_eq!(prefix.len(), NONCE_PREFIX_BYTES);
    let mut sealed = SealedReader {
        inner: file,
        decryptor: Some(DecryptorBE32::from_aead(stream_cipher(key), prefix.into())),
        header: header_bytes,
        plain: Vec::with_capacity(SEGMENT_BYTES + TAG_BYTES),
        at: 0,
    };
    gallery.read_rows(&mut sealed)
}

/// Writes `gallery` to `path` as a snapshot, under a fresh key it returns,
/// without the store: what `facepay bench gallery --snapshot` times.
pub fn write_for_bench(
    gallery: &Gallery,
    path: &Path,
    now_ms: i64,
) -> Result<(u64, Zeroizing<[u8; KEY_BYTES]>), Failure> {
    let key = Zeroizing::new(random_bytes::<KEY_BYTES>()?);
    let header = Header {
        key_id: format!("{KEY_PREFIX}bench"),
        seq: 0,
        written_at_ms: now_ms,
        model: "bench".into(),
        transform_id: "bench".into(),
        nonce_prefix: hex::encode(random_bytes::<NONCE_PREFIX_BYTES>()?),
    };
    Ok((write_file(gallery, path, &header, &key)?, key))
}

/// Reads what [`write_for_bench`] wrote into `gallery`, as a restart does.
pub fn read_for_bench(
    gallery: &Gallery,
    path: &Path,
    key: &[u8; KEY_BYTES],
) -> Result<u64, Failure> {
    let mut file = BufReader::new(File::open(path).map_err(io_failure(path))?);
    let header_bytes = read_header(&mut file).ok_or_else(Failure::internal)?;
    let header: Header = serde_json::from_slice(&header_bytes).map_err(|_| Failure::internal())?;
    let prefix = hex::decode(&header.nonce_prefix).map_err(|_| Failure::internal())?;
    if prefix.len() != NONCE_PREFIX_BYTES {
        return Err(Failure::internal());
    }
    Ok(read_rows(gallery, file, header_bytes, &prefix, key)?)
}

/// The header bytes after the magic, if the file starts like a snapshot.
fn read_header(file: &mut impl Read) -> Option<Vec<u8>> {
    let mut magic = [0u8; 8];
    file.read_exact(&mut magic).ok()?;
    if &magic != MAGIC {
        return None;
    }
    let mut len = [0u8; 4];
    file.read_exact(&mut len).ok()?;
    let len = u32::from_le_bytes(len) as usize;
    if len > HEADER_BYTES_MAX {
        return None;
    }
    let mut header = vec![0u8; len];
    file.read_exact(&mut header).ok()?;
    Some(header)
}
