//! The gallery's rows as a byte stream, so that a restart can skip opening
//! every template in the store: codes, scales, floats and partitions go out
//! and come back as they are, without quantising again. The stream is as
//! toxic as the templates: the caller encrypts it before it touches disk.
//!
//! Layout (little-endian): magic, dim `u32`, binary-code words `u32`,
//! floats kept `u8`, rows expected `u64` (a hint to size the maps),
//! inverted-file cells `u32` (0 when untrained) and their centroids
//! (`cells` × `dim` × `f32`); then per row `1u8`, id (`u16` length, bytes),
//! partitions (`u8` count, each `u16` length and bytes), scale `f32`, codes
//! (`dim` bytes), floats (`dim` × `f32`, when kept), code words (`u64`),
//! cell (`u32`, when there are cells); then `0u8` and the row count `u64`.
//!
//! The cells travel with the rows so that a restart files ten million rows
//! without assigning them again; their 1-bit codes are made again from the
//! int8 codes (a pass over the row, cheaper to make than to read).
//! The magic carries the version: a stream of another version is refused.

use std::io::{Read, Write};
use std::sync::Arc;

use crate::ivf::{Coarse, Encoded};
use crate::{
    CELLS_MAX, CHUNK_ROWS, Gallery, GalleryError, IndexKind, PARTITIONS_PER_ROW_MAX, Placed,
    ROWS_MAX, dequantised,
};

const MAGIC: &[u8; 8] = b"FPGROWS2";
/// Magics of earlier versions, named in the refusal.
const MAGIC_PREFIX: &[u8; 7] = b"FPGROWS";
/// Rows placed per write lock when reading back.
const READ_BATCH_ROWS: usize = 4_096;
/// Batches read ahead of the one being placed, at most.
const READ_BATCHES_QUEUED: usize = 4;
/// The longest user id or partition key in a stream.
const KEY_BYTES_MAX: usize = 1_024;

fn io(e: std::io::Error) -> GalleryError {
    GalleryError::Rows(e.to_string())
}

fn bad(what: &str) -> GalleryError {
    GalleryError::Rows(what.to_owned())
}

fn put_key(buf: &mut Vec<u8>, key: &str) {
    // Keys are short by construction; the reader rejects long ones anyway.
    assert!(key.len() <= KEY_BYTES_MAX);
    buf.extend_from_slice(&(key.len() as u16).to_le_bytes());
    buf.extend_from_slice(key.as_bytes());
}

/// What the stream's header says of its rows.
struct Shape {
    has_floats: bool,
    /// The stream's inverted-file cells (0 without).
    cells: usize,
    /// Those cells, when this gallery took them as its own: rows are then
    /// filed in the cells they name.
    adopted: Option<Arc<Coarse>>,
}

/// Rows read and checked, not yet placed.
struct ReadBatch {
    keys: Vec<(String, Vec<String>)>,
    codes: Vec<i8>,
    scales: Vec<f32>,
    floats: Option<Vec<f32>>,
    bits: Vec<u64>,
    encoded: Option<Encoded>,
}

impl ReadBatch {
    fn with_capacity(dim: usize, words: usize, has_floats: bool) -> Self {
        ReadBatch {
            keys: Vec::with_capacity(READ_BATCH_ROWS),
            codes: Vec::with_capacity(READ_BATCH_ROWS * dim),
            scales: Vec::with_capacity(READ_BATCH_ROWS),
            floats: has_floats.then(|| Vec::with_capacity(READ_BATCH_ROWS * dim)),
            bits: Vec::with_capacity(READ_BATCH_ROWS * words),
            encoded: None,
        }
    }

    /// Places the batch, under one write lock.
    fn place_in(&self, gallery: &Gallery) -> Result<(), GalleryError> {
        let keys: Vec<(&str, &[String])> = self
            .keys
            .iter()
            .map(|(id, p)| (id.as_str(), p.as_slice()))
            .collect();
        gallery.place(&Placed {
            keys: &keys,
            codes: &self.codes,
            scales: &self.scales,
            floats: self.floats.as_deref(),
            bits: &self.bits,
            encoded: self.encoded.as_ref(),
        })
    }
}

struct Input<'a, R: Read> {
    inner: &'a mut R,
}

impl<R: Read> Input<'_, R> {
    fn bytes<const N: usize>(&mut self) -> Result<[u8; N], GalleryError> {
        let mut buf = [0; N];
        self.inner.read_exact(&mut buf).map_err(io)?;
        Ok(buf)
    }

    fn fill(&mut self, buf: &mut [u8]) -> Result<(), GalleryError> {
        self.inner.read_exact(buf).map_err(io)
    }

    fn key(&mut self) -> Result<String, GalleryError> {
        let len = u16::from_le_bytes(self.bytes()?) as usize;
        if len > KEY_BYTES_MAX {
            return Err(bad("a key longer than allowed"));
        }
        let mut buf = vec![0; len];
        self.fill(&mut buf)?;
        String::from_utf8(buf).map_err(|_| bad("a key that is not UTF-8"))
    }
}

impl Gallery {
    /// Writes every row to `out`; returns how many. One chunk is copied at
    /// a time under the read lock, so searches and updates go on between
    /// chunks, and a row changed meanwhile is written as it was or as it
    /// is (the caller replays the changes made since it started).
    pub fn write_rows(&self, out: &mut impl Write) -> Result<u64, GalleryError> {
        let dim = self.config.dim;
        let words = self.words;
        let keep_floats = self.config.keep_floats;
        out.write_all(MAGIC).map_err(io)?;
        out.write_all(&(dim as u32).to_le_bytes()).map_err(io)?;
        out.write_all(&(words as u32).to_le_bytes()).map_err(io)?;
        out.write_all(&[u8::from(keep_floats)]).map_err(io)?;
        out.write_all(&(self.len() as u64).to_le_bytes())
            .map_err(io)?;
        let coarse = self.read().ivf.as_ref().map(|i| Arc::clone(&i.coarse));
        let cells = coarse.as_ref().map_or(0, |c| c.cells);
        out.write_all(&(cells as u32).to_le_bytes()).map_err(io)?;
        if let Some(coarse) = &coarse {
            let bytes: Vec<u8> = coarse
                .centroids
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect();
            out.write_all(&bytes).map_err(io)?;
        }
        let mut count = 0u64;
        let mut buf = Vec::new();
        for c in 0.. {
            buf.clear();
            {
                let rows = self.read();
                let Some(chunk) = rows.chunks.get(c) else {
                    break;
                };
                let now = rows.ivf.as_ref().map(|i| &i.coarse);
                let same = match (&coarse, now) {
                    (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                    (None, _) => true,
                    (Some(_), None) => false,
                };
                if !same {
                    return Err(bad("the gallery was emptied while its rows were written"));
                }
                for r in (0..CHUNK_ROWS).filter(|r| chunk.alive[*r]) {
                    let slot = c * CHUNK_ROWS + r;
                    buf.push(1);
                    put_key(&mut buf, rows.directory.id(slot as u32));
                    buf.push(rows.directory.partition_count(slot as u32) as u8);
                    for key in rows.directory.partitions_of(slot as u32) {
                        put_key(&mut buf, key);
                    }
                    buf.extend_from_slice(&chunk.scales[r].to_le_bytes());
                    buf.extend(chunk.codes[r * dim..(r + 1) * dim].iter().map(|&x| x as u8));
                    if keep_floats {
                        for x in &chunk.floats[r * dim..(r + 1) * dim] {
                            buf.extend_from_slice(&x.to_le_bytes());
                        }
                    }
                    for w in &chunk.bits[r * words..(r + 1) * words] {
                        buf.extend_from_slice(&w.to_le_bytes());
                    }
                    if coarse.is_some() {
                        buf.extend_from_slice(&u32::from(chunk.cells[r]).to_le_bytes());
                    }
                    count += 1;
                }
            }
            out.write_all(&buf).map_err(io)?;
        }
        out.write_all(&[0]).map_err(io)?;
        out.write_all(&count.to_le_bytes()).map_err(io)?;
        Ok(count)
    }

    /// Adds (or replaces) the rows [`Gallery::write_rows`] wrote; returns
    /// how many. A stream from a gallery of another shape is refused.
    pub fn read_rows(&self, input: &mut impl Read) -> Result<u64, GalleryError> {
        let dim = self.config.dim;
        let words = self.words;
        let mut input = Input { inner: input };
        let magic = input.bytes::<8>()?;
        if magic.starts_with(MAGIC_PREFIX) && &magic != MAGIC {
            return Err(GalleryError::Rows(format!(
                "gallery rows of another version ({}); this gallery reads {}",
                String::from_utf8_lossy(&magic),
                String::from_utf8_lossy(MAGIC)
            )));
        }
        if &magic != MAGIC {
            return Err(bad("not a stream of gallery rows"));
        }
        let stream_dim = u32::from_le_bytes(input.bytes()?) as usize;
        let stream_words = u32::from_le_bytes(input.bytes()?) as usize;
        let has_floats = input.bytes::<1>()?[0] == 1;
        if stream_dim != dim || stream_words != words {
            return Err(bad("rows of a gallery of another shape"));
        }
        let expected = u64::from_le_bytes(input.bytes()?);
        // Growing the maps row by row rehashes them again and again.
        self.reserve(usize::try_from(expected).unwrap_or(ROWS_MAX).min(ROWS_MAX));
        let stream_cells = u32::from_le_bytes(input.bytes()?) as usize;
        let adopted = self.read_cells(&mut input, stream_cells)?;
        let shape = Shape {
            has_floats,
            cells: stream_cells,
            adopted,
        };
        // Two stages on two threads: this one decrypts, parses and encodes
        // a batch while the other places the one before, so a restart
        // takes about as long as the slower stage, not both.
        let (count, placed) = std::thread::scope(|scope| {
            let (batches, queue) = std::sync::mpsc::sync_channel::<ReadBatch>(READ_BATCHES_QUEUED);
            let placer = scope.spawn(move || -> Result<u64, GalleryError> {
                let mut placed = 0u64;
                for batch in queue {
                    batch.place_in(self)?;
                    placed += batch.keys.len() as u64;
                }
                Ok(placed)
            });
            let read = self.read_batches(&mut input, &shape, |batch| batches.send(batch).is_ok());
            drop(batches);
            let placed = placer
                .join()
                .map_err(|_| bad("placing the rows panicked"))?;
            // A placing error ends the reading early: report it first.
            let placed = placed?;
            Ok::<_, GalleryError>((read?, placed))
        })?;
        assert_eq!(count, placed, "a row read but not placed");
        if u64::from_le_bytes(input.bytes()?) != count {
            return Err(bad("the row count does not match the rows"));
        }
        self.train_if_due()?;
        Ok(count)
    }

    /// Reads rows in batches of [`READ_BATCH_ROWS`], each handed to
    /// `place` (which returns false to stop), up to the end marker; returns
    /// how many rows were read.
    fn read_batches<R: Read>(
        &self,
        input: &mut Input<'_, R>,
        shape: &Shape,
        mut place: impl FnMut(ReadBatch) -> bool,
    ) -> Result<u64, GalleryError> {
        let mut count = 0u64;
        loop {
            let (batch, more) = self.read_batch(input, shape)?;
            if !batch.keys.is_empty() {
                count += batch.keys.len() as u64;
                if !place(batch) {
                    return Ok(count);
                }
            }
            if !more {
                return Ok(count);
            }
        }
    }

    /// Up to [`READ_BATCH_ROWS`] rows, checked and encoded for the cells,
    /// and whether more follow.
    fn read_batch<R: Read>(
        &self,
        input: &mut Input<'_, R>,
        shape: &Shape,
    ) -> Result<(ReadBatch, bool), GalleryError> {
        let (dim, words) = (self.config.dim, self.words);
        let mut batch = ReadBatch::with_capacity(dim, words, shape.has_floats);
        let mut cells = Vec::with_capacity(if shape.cells > 0 { READ_BATCH_ROWS } else { 0 });
        let mut row_bytes = vec![0u8; dim * if shape.has_floats { 5 } else { 1 } + 8 * words];
        let mut more = true;
        while more && batch.keys.len() < READ_BATCH_ROWS {
            more = input.bytes::<1>()?[0] == 1;
            if !more {
                break;
            }
            let id = input.key()?;
            let n = input.bytes::<1>()?[0] as usize;
            if n > PARTITIONS_PER_ROW_MAX {
                return Err(GalleryError::TooManyPartitions);
            }
            let partitions = (0..n).map(|_| input.key()).collect::<Result<_, _>>()?;
            batch.keys.push((id, partitions));
            batch.scales.push(f32::from_le_bytes(input.bytes()?));
            input.fill(&mut row_bytes)?;
            let (code, rest) = row_bytes.split_at(dim);
            batch.codes.extend(code.iter().map(|&x| x as i8));
            let rest = match batch.floats.as_mut() {
                Some(floats) => {
                    let (f, rest) = rest.split_at(4 * dim);
                    floats.extend(
                        f.chunks_exact(4)
                            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
                    );
                    rest
                }
                None => rest,
            };
            batch.bits.extend(
                rest.chunks_exact(8)
                    .map(|b| u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])),
            );
            if shape.cells > 0 {
                let cell = u32::from_le_bytes(input.bytes()?);
                if cell as usize >= shape.cells {
                    return Err(bad("a row of a cell the stream does not have"));
                }
                cells.push(cell);
            }
        }
        let floats = batch.floats.as_deref().unwrap_or(&[]);
        if !batch.scales.iter().chain(floats).all(|x| x.is_finite()) {
            return Err(GalleryError::NotFinite);
        }
        if !batch.keys.is_empty() {
            batch.encoded = match &shape.adopted {
                Some(coarse) => Some(
                    coarse.encode_all(&dequantised(&batch.codes, &batch.scales, dim), Some(&cells)),
                ),
                None => self.encode(&batch.codes, &batch.scales, None),
            };
        }
        Ok((batch, more))
    }

    /// Reads the stream's centroids, if it has any, and makes them this
    /// gallery's cells when it is an untrained inverted file of as many
    /// cells: then the rows' cells are used as they are. Otherwise the
    /// rows are filed as if inserted.
    fn read_cells<R: Read>(
        &self,
        input: &mut Input<'_, R>,
        cells: usize,
    ) -> Result<Option<Arc<Coarse>>, GalleryError> {
        if cells == 0 {
            return Ok(None);
        }
        if cells > CELLS_MAX {
            return Err(bad("more cells than allowed"));
        }
        let dim = self.config.dim;
        let mut bytes = vec![0u8; cells * dim * 4];
        input.fill(&mut bytes)?;
        let centroids: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        if !centroids.iter().all(|x| x.is_finite()) {
            return Err(GalleryError::NotFinite);
        }
        let IndexKind::Ivf { cells: ours, .. } = self.config.kind else {
            return Ok(None);
        };
        let mut rows = self.rows.write().unwrap_or_else(|e| e.into_inner());
        if ours != cells || rows.ivf.is_some() {
            return Ok(None);
        }
        let coarse = Arc::new(Coarse::new(dim, centroids));
        self.file_all(&mut rows, Arc::clone(&coarse));
        Ok(Some(coarse))
    }
}
