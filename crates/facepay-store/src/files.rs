//! Files and directories that hold records, keys or card shares: only
//! their owner may read them. New ones are made private; ones found open
//! to the group or others (made by an earlier version, or by hand) are
//! closed at start and the change is logged.

use std::io;
use std::path::Path;

/// A private directory: read, written and listed by its owner only.
pub const DIR_MODE: u32 = 0o700;
/// A private file: read and written by its owner only.
pub const FILE_MODE: u32 = 0o600;

/// Creates `dir` (and missing parents) private, or makes an existing one
/// private.
pub fn private_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(dir)?;
        restrict(dir, DIR_MODE)
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(dir)
}

/// Creates `file` empty and private if it does not exist, or makes an
/// existing one private. SQLite gives its WAL and shared-memory files the
/// mode of the database file, so a private database keeps them private.
pub fn private_file(file: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(FILE_MODE)
            .open(file)?;
        restrict(file, FILE_MODE)
    }
    #[cfg(not(unix))]
    {
        std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(file)?;
        Ok(())
    }
}

/// Creates (or truncates) `file` for writing, private.
pub fn create_private(file: &Path) -> io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, FILE_MODE);
    let opened = options.open(file)?;
    restrict(file, FILE_MODE)?;
    Ok(opened)
}

/// Makes `path` private when it exists and is open to anyone else.
pub fn restrict_if_present(path: &Path, mode: u32) -> io::Result<()> {
    match std::fs::metadata(path) {
        Ok(_) => restrict(path, mode),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(unix)]
fn restrict(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let found = std::fs::metadata(path)?.permissions().mode() & 0o777;
    if found & 0o077 != 0 {
        tracing::warn!(
            path = %path.display(),
            mode = format!("{found:o}"),
            "open to others: made private"
        );
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn restrict(_path: &Path, _mode: u32) -> io::Result<()> {
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path)
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or(0)
    }

    #[test]
    fn new_directories_and_files_are_private() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a/b");
        private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), DIR_MODE);
        let file = dir.join("facepay.db");
        private_file(&file).unwrap();
        assert_eq!(mode(&file), FILE_MODE);
        assert_eq!(std::fs::metadata(&file).unwrap().len(), 0);
    }

    #[test]
    fn open_ones_are_closed_and_contents_kept() {
        let root = tempfile::tempdir().unwrap();
        let file = root.path().join("facepay.db");
        std::fs::write(&file, b"records").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        private_dir(root.path()).unwrap();
        private_file(&file).unwrap();
        restrict_if_present(&root.path().join("facepay.db-wal"), FILE_MODE).unwrap();
        assert_eq!(mode(root.path()), DIR_MODE);
        assert_eq!(mode(&file), FILE_MODE);
        assert_eq!(std::fs::read(&file).unwrap(), b"records");
    }
}
