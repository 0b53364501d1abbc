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

use crate::ivf::Coarse;
use crate::{
    CELLS_MAX, CHUNK_ROWS, Gallery, GalleryError, IndexKind, PARTITIONS_PER_ROW_MAX, Placed,
    ROWS_MAX, dequantised,
};

const MAGIC: &[u8; 8] = b"FPGROWS2";
/// Magics of earlier versions, named in the refusal.
const MAGIC_PREFIX: &[u8; 7] = b"FPGROWS";
/// Rows placed per write lock when reading back.
const READ_BATCH_ROWS: usize = 4_096;
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
                    let partitions = rows.directory.partitions_of(slot as u32);
                    buf.push(partitions.len() as u8);
                    for key in partitions {
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
        let mut cells = Vec::with_capacity(if stream_cells > 0 { READ_BATCH_ROWS } else { 0 });
        let mut count = 0u64;
        let mut keys: Vec<(String, Vec<String>)> = Vec::with_capacity(READ_BATCH_ROWS);
        let mut codes = Vec::with_capacity(READ_BATCH_ROWS * dim);
        let mut scales = Vec::with_capacity(READ_BATCH_ROWS);
        let mut floats = Vec::with_capacity(if has_floats { READ_BATCH_ROWS * dim } else { 0 });
        let mut bits = Vec::with_capacity(READ_BATCH_ROWS * words);
        let mut row_bytes = vec![0u8; dim * if has_floats { 5 } else { 1 } + 8 * words];
        loop {
            let more = input.bytes::<1>()?[0] == 1;
            if more {
                let id = input.key()?;
                let n = input.bytes::<1>()?[0] as usize;
                if n > PARTITIONS_PER_ROW_MAX {
                    return Err(GalleryError::TooManyPartitions);
                }
                let partitions = (0..n).map(|_| input.key()).collect::<Result<_, _>>()?;
                keys.push((id, partitions));
                scales.push(f32::from_le_bytes(input.bytes()?));
                input.fill(&mut row_bytes)?;
                let (code, rest) = row_bytes.split_at(dim);
                codes.extend(code.iter().map(|&x| x as i8));
                let rest = if has_floats {
                    let (f, rest) = rest.split_at(4 * dim);
                    floats.extend(
                        f.chunks_exact(4)
                            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
                    );
                    rest
                } else {
                    rest
                };
                bits.extend(
                    rest.chunks_exact(8).map(|b| {
                        u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
                    }),
                );
                if stream_cells > 0 {
                    let cell = u32::from_le_bytes(input.bytes()?);
                    if cell as usize >= stream_cells {
                        return Err(bad("a row of a cell the stream does not have"));
                    }
                    cells.push(cell);
                }
            }
            if keys.len() == READ_BATCH_ROWS || (!more && !keys.is_empty()) {
                if !scales.iter().chain(&floats).all(|x| x.is_finite()) {
                    return Err(GalleryError::NotFinite);
                }
                let refs: Vec<(&str, &[String])> = keys
                    .iter()
                    .map(|(id, p)| (id.as_str(), p.as_slice()))
                    .collect();
                let encoded = match &adopted {
                    Some(coarse) => {
                        Some(coarse.encode_all(&dequantised(&codes, &scales, dim), Some(&cells)))
                    }
                    None => self.encode(&codes, &scales, None),
                };
                self.place(&Placed {
                    keys: &refs,
                    codes: &codes,
                    scales: &scales,
                    floats: has_floats.then_some(floats.as_slice()),
                    bits: &bits,
                    encoded: encoded.as_ref(),
                })?;
                cells.clear();
                count += keys.len() as u64;
                keys.clear();
                codes.clear();
                scales.clear();
                floats.clear();
                bits.clear();
            }
            if !more {
                break;
            }
        }
        if u64::from_le_bytes(input.bytes()?) != count {
            return Err(bad("the row count does not match the rows"));
        }
        self.train_if_due()?;
        Ok(count)
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
