//! Transform secrets as files in one directory.
//!
//! `<id>.transform` holds 32 random bytes (mode 0600) and `current` names
//! the transform new templates are stored under. Another process (a re-issue
//! command) may add a secret and move `current`; every [`TransformKeys`]
//! notices on its next call, so servers follow without a restart.

use std::collections::HashMap;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use zeroize::Zeroizing;

use crate::transform::{SECRET_BYTES, Transform, TransformError, random_bytes};

const CURRENT_FILE: &str = "current";
const SECRET_SUFFIX: &str = ".transform";
/// Suffix of a file being written; renamed into place when complete, so a
/// reader never sees half a secret.
const STAGED_SUFFIX: &str = ".staged";
const ID_PREFIX: &str = "tfm-";
const ID_RANDOM_BYTES: usize = 8;
/// Directory entries read at most. A deployment holds a few secrets (the
/// current one and those whose records are still being converted).
const DIR_ENTRIES_MAX: usize = 1024;
/// Built matrices kept at most, as (id, dimension) pairs; at `DIM_MAX` each
/// is 8 MiB, so the cache stays under 128 MiB whatever callers ask for.
const BUILT_MAX: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    #[error("cannot read or write {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("the transform secret {0} is not {SECRET_BYTES} bytes")]
    BadSecretFile(String),
    #[error("{0:?} is not a transform id (tfm- and 16 hex digits)")]
    BadId(String),
    #[error("no transform {0:?} is known; was it retired?")]
    UnknownTransform(String),
    #[error("transform {0:?} is current: re-issue before retiring it")]
    RetireCurrent(String),
    #[error("{dir} has more than {DIR_ENTRIES_MAX} entries")]
    TooManyFiles { dir: String },
    #[error(transparent)]
    Transform(#[from] TransformError),
}

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> KeysError + '_ {
    move |source| KeysError::Io {
        path: path.display().to_string(),
        source,
    }
}

struct Ring {
    current: String,
    secrets: HashMap<String, Zeroizing<[u8; SECRET_BYTES]>>,
    built: HashMap<(String, usize), Arc<Transform>>,
}

/// The transform secrets of one deployment, kept as files.
pub struct TransformKeys {
    dir: PathBuf,
    ring: RwLock<Ring>,
}

impl TransformKeys {
    /// Opens the directory, creating it (mode 0700), and a first secret made
    /// current if no `current` file names one.
    pub fn open(dir: &Path) -> Result<Self, KeysError> {
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(dir).map_err(io_error(dir))?;
        let mut ring = load_ring(dir)?;
        if ring.current.is_empty() {
            create_secret(dir)?;
            ring = load_ring(dir)?;
        }
        Ok(Self {
            dir: dir.to_owned(),
            ring: RwLock::new(ring),
        })
    }

    /// The transform new templates of `dim` values are stored under.
    pub fn current(&self, dim: usize) -> Result<Arc<Transform>, KeysError> {
        let on_disk = read_current(&self.dir)?;
        let known = self.ring.read().unwrap_or_else(|e| e.into_inner()).current == on_disk;
        if !known {
            self.reload()?;
        }
        self.by_id(&on_disk, dim)
    }

    /// The id of the transform new templates are stored under.
    pub fn current_id(&self) -> Result<String, KeysError> {
        read_current(&self.dir)
    }

    /// The transform a stored record names. Built once per id and dimension.
    pub fn by_id(&self, id: &str, dim: usize) -> Result<Arc<Transform>, KeysError> {
        check_id(id)?;
        // One stat per call, so that a secret retired by another process
        // stops working here too instead of living on in this cache.
        let path = secret_path(&self.dir, id);
        match fs::symlink_metadata(&path) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.reload()?;
                return Err(KeysError::UnknownTransform(id.to_owned()));
            }
            Err(e) => return Err(io_error(&path)(e)),
        }
        let key = (id.to_owned(), dim);
        let secret = {
            let ring = self.ring.read().unwrap_or_else(|e| e.into_inner());
            if let Some(built) = ring.built.get(&key) {
                return Ok(Arc::clone(built));
            }
            ring.secrets.get(id).cloned()
        };
        let secret = match secret {
            Some(secret) => secret,
            None => {
                self.reload()?;
                let ring = self.ring.read().unwrap_or_else(|e| e.into_inner());
                ring.secrets
                    .get(id)
                    .cloned()
                    .ok_or_else(|| KeysError::UnknownTransform(id.to_owned()))?
            }
        };
        // Built outside the lock so readers of other transforms never wait
        // on a QR; two threads may build the same one, and one copy is kept.
        let built = Arc::new(Transform::new(id, &secret, dim)?);
        let mut ring = self.ring.write().unwrap_or_else(|e| e.into_inner());
        if ring.built.len() >= BUILT_MAX && !ring.built.contains_key(&key) {
            ring.built.clear();
        }
        Ok(Arc::clone(ring.built.entry(key).or_insert(built)))
    }

    /// Every transform id held, sorted.
    pub fn ids(&self) -> Result<Vec<String>, KeysError> {
        self.reload()?;
        let ring = self.ring.read().unwrap_or_else(|e| e.into_inner());
        let mut ids: Vec<String> = ring.secrets.keys().cloned().collect();
        ids.sort();
        Ok(ids)
    }

    /// Makes a new secret and makes it current. Returns its id. Records
    /// stored under older transforms stay readable until they are retired.
    pub fn reissue(&self) -> Result<String, KeysError> {
        let id = create_secret(&self.dir)?;
        self.reload()?;
        Ok(id)
    }

    /// Deletes the secret of a transform no record uses any more. The
    /// current transform is refused.
    pub fn retire(&self, id: &str) -> Result<(), KeysError> {
        check_id(id)?;
        // No process can make `id` current after this check: a re-issue only
        // ever makes a new id current.
        if read_current(&self.dir)? == id {
            return Err(KeysError::RetireCurrent(id.to_owned()));
        }
        let path = secret_path(&self.dir, id);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(KeysError::UnknownTransform(id.to_owned()));
            }
            Err(e) => return Err(io_error(&path)(e)),
        }
        sync_dir(&self.dir)?;
        self.reload()
    }

    /// Reads the directory again, keeping the matrices of secrets that are
    /// still there and unchanged.
    fn reload(&self) -> Result<(), KeysError> {
        let mut fresh = load_ring(&self.dir)?;
        let mut ring = self.ring.write().unwrap_or_else(|e| e.into_inner());
        let built = std::mem::take(&mut ring.built);
        fresh.built = built
            .into_iter()
            .filter(
                |((id, _), _)| match (fresh.secrets.get(id), ring.secrets.get(id)) {
                    (Some(new), Some(old)) => new.as_slice() == old.as_slice(),
                    _ => false,
                },
            )
            .collect();
        *ring = fresh;
        Ok(())
    }
}

fn secret_path(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("{id}{SECRET_SUFFIX}"))
}

/// Ids are joined into file names, so only the shape this module issues is
/// accepted: nothing like `../` ever reaches a path.
fn is_id(id: &str) -> bool {
    id.strip_prefix(ID_PREFIX).is_some_and(|hex| {
        hex.len() == 2 * ID_RANDOM_BYTES
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

fn check_id(id: &str) -> Result<(), KeysError> {
    if is_id(id) {
        Ok(())
    } else {
        Err(KeysError::BadId(id.to_owned()))
    }
}

/// Reads at most `bytes_max` bytes, so a wrong file cannot fill memory.
fn read_bounded(path: &Path, bytes_max: usize) -> Result<Zeroizing<Vec<u8>>, std::io::Error> {
    let mut bytes = Zeroizing::new(Vec::with_capacity(bytes_max + 1));
    fs::File::open(path)?
        .take(bytes_max as u64 + 1)
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

fn read_current(dir: &Path) -> Result<String, KeysError> {
    let path = dir.join(CURRENT_FILE);
    let bytes =
        read_bounded(&path, ID_PREFIX.len() + 2 * ID_RANDOM_BYTES + 1).map_err(io_error(&path))?;
    let id = String::from_utf8_lossy(&bytes).trim().to_owned();
    check_id(&id)?;
    Ok(id)
}

fn read_secret(path: &Path) -> Result<Zeroizing<[u8; SECRET_BYTES]>, KeysError> {
    let bytes = read_bounded(path, SECRET_BYTES).map_err(io_error(path))?;
    let mut secret = Zeroizing::new([0u8; SECRET_BYTES]);
    if bytes.len() != SECRET_BYTES {
        return Err(KeysError::BadSecretFile(path.display().to_string()));
    }
    secret.copy_from_slice(&bytes);
    Ok(secret)
}

fn load_ring(dir: &Path) -> Result<Ring, KeysError> {
    let mut secrets = HashMap::new();
    for (count, entry) in fs::read_dir(dir).map_err(io_error(dir))?.enumerate() {
        if count >= DIR_ENTRIES_MAX {
            return Err(KeysError::TooManyFiles {
                dir: dir.display().to_string(),
            });
        }
        let entry = entry.map_err(io_error(dir))?;
        let name = entry.file_name();
        let Some(id) = name.to_str().and_then(|n| n.strip_suffix(SECRET_SUFFIX)) else {
            continue;
        };
        if is_id(id) {
            secrets.insert(id.to_owned(), read_secret(&entry.path())?);
        }
    }
    let current = match read_current(dir) {
        Ok(id) => id,
        Err(KeysError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            String::new()
        }
        Err(e) => return Err(e),
    };
    if !current.is_empty() && !secrets.contains_key(&current) {
        return Err(KeysError::UnknownTransform(current));
    }
    Ok(Ring {
        current,
        secrets,
        built: HashMap::new(),
    })
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), KeysError> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(io_error(path))?;
    file.write_all(bytes).map_err(io_error(path))?;
    file.sync_all().map_err(io_error(path))
}

/// Makes renames and removals in `dir` durable: a secret lost in a crash
/// would make every template stored under it unreadable for good.
fn sync_dir(dir: &Path) -> Result<(), KeysError> {
    #[cfg(unix)]
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error(dir))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Writes a new secret and points `current` at it. Each file is written
/// under a staged name and renamed into place, so readers see all of it or
/// nothing; the secret is durable before `current` names it.
fn create_secret(dir: &Path) -> Result<String, KeysError> {
    let id = format!(
        "{ID_PREFIX}{}",
        hex::encode(random_bytes::<ID_RANDOM_BYTES>()?)
    );
    let secret = Zeroizing::new(random_bytes::<SECRET_BYTES>()?);
    let path = secret_path(dir, &id);
    let staged = dir.join(format!("{id}{SECRET_SUFFIX}{STAGED_SUFFIX}"));
    write_private(&staged, secret.as_slice())?;
    fs::rename(&staged, &path).map_err(io_error(&path))?;
    sync_dir(dir)?;
    let current = dir.join(CURRENT_FILE);
    let staged = dir.join(format!("{CURRENT_FILE}.{id}{STAGED_SUFFIX}"));
    write_private(&staged, id.as_bytes())?;
    fs::rename(&staged, &current).map_err(io_error(&current))?;
    sync_dir(dir)?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIM: usize = 128;

    fn secret_files(dir: &Path) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().ends_with(SECRET_SUFFIX))
            .collect();
        files.sort();
        files
    }

    #[test]
    fn open_creates_one_private_secret() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("transforms");
        let keys = TransformKeys::open(&dir).unwrap();
        let files = secret_files(&dir);
        assert_eq!(files.len(), 1);
        assert_eq!(fs::metadata(&files[0]).unwrap().len(), SECRET_BYTES as u64);
        let current = keys.current(DIM).unwrap();
        assert!(is_id(current.id()), "{}", current.id());
        assert_eq!(current.dim(), DIM);
        assert_eq!(keys.ids().unwrap(), vec![current.id().to_owned()]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&files[0]), 0o600);
            assert_eq!(mode(&dir.join(CURRENT_FILE)), 0o600);
            assert_eq!(mode(&dir), 0o700);
        }
        // Opening again finds the same secret rather than making another.
        let again = TransformKeys::open(&dir).unwrap();
        assert_eq!(again.current(DIM).unwrap().id(), current.id());
        assert_eq!(secret_files(&dir).len(), 1);
    }

    #[test]
    fn matrices_are_built_once_per_id_and_dimension() {
        let dir = tempfile::tempdir().unwrap();
        let keys = TransformKeys::open(dir.path()).unwrap();
        let a = keys.current(DIM).unwrap();
        let b = keys.by_id(a.id(), DIM).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        let wider = keys.by_id(a.id(), 2 * DIM).unwrap();
        assert_eq!(wider.dim(), 2 * DIM);
    }

    #[test]
    fn reissue_moves_current_and_other_processes_follow() {
        let dir = tempfile::tempdir().unwrap();
        let server = TransformKeys::open(dir.path()).unwrap();
        let old = server.current(DIM).unwrap();
        let v: Vec<f32> = (0..DIM).map(|i| if i == 0 { 1.0 } else { 0.0 }).collect();
        let stored = old.apply(&v).unwrap();

        let command = TransformKeys::open(dir.path()).unwrap();
        let new_id = command.reissue().unwrap();
        assert_ne!(new_id, old.id());
        let new = server.current(DIM).unwrap();
        assert_eq!(new.id(), new_id);
        assert_ne!(new.apply(&v).unwrap(), stored);

        // A record under the old transform still opens, and converts.
        let back = server
            .by_id(old.id(), DIM)
            .unwrap()
            .invert(&stored)
            .unwrap();
        let converted = new.apply(&back).unwrap();
        let direct = new.apply(&v).unwrap();
        for (a, b) in converted.iter().zip(&direct) {
            assert!((a - b).abs() < 1e-6);
        }
        assert_eq!(server.ids().unwrap().len(), 2);
    }

    #[test]
    fn retire_refuses_current_and_removes_the_old() {
        let dir = tempfile::tempdir().unwrap();
        let server = TransformKeys::open(dir.path()).unwrap();
        let old_id = server.current(DIM).unwrap().id().to_owned();
        assert!(matches!(
            server.retire(&old_id),
            Err(KeysError::RetireCurrent(_))
        ));

        let command = TransformKeys::open(dir.path()).unwrap();
        let new_id = command.reissue().unwrap();
        assert!(matches!(
            command.retire(&new_id),
            Err(KeysError::RetireCurrent(_))
        ));
        command.retire(&old_id).unwrap();
        assert_eq!(secret_files(dir.path()).len(), 1);
        // The server had the old matrix cached; it stops using it anyway.
        assert!(matches!(
            server.by_id(&old_id, DIM),
            Err(KeysError::UnknownTransform(_))
        ));
        assert!(matches!(
            command.retire(&old_id),
            Err(KeysError::UnknownTransform(_))
        ));
        assert_eq!(server.current(DIM).unwrap().id(), new_id);
    }

    #[test]
    fn ids_that_are_not_ours_never_reach_a_path() {
        let dir = tempfile::tempdir().unwrap();
        let keys = TransformKeys::open(dir.path()).unwrap();
        for id in [
            "../current",
            "tfm-0123456789abcde",
            "tfm-0123456789ABCDEF",
            "",
        ] {
            assert!(matches!(keys.by_id(id, DIM), Err(KeysError::BadId(_))));
            assert!(matches!(keys.retire(id), Err(KeysError::BadId(_))));
        }
        assert!(matches!(
            keys.by_id("tfm-0123456789abcdef", DIM),
            Err(KeysError::UnknownTransform(_))
        ));
    }

    #[test]
    fn a_short_secret_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        TransformKeys::open(dir.path()).unwrap();
        fs::write(dir.path().join("tfm-0123456789abcdef.transform"), [1u8; 31]).unwrap();
        assert!(matches!(
            TransformKeys::open(dir.path()),
            Err(KeysError::BadSecretFile(_))
        ));
    }
}
