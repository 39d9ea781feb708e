//! Atomic file and directory creation: write to a temporary sibling, fsync, rename.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Writes `bytes` to `path` atomically: readers see the old file or the new one, never a
/// partial write. Creates missing parent directories.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    // A plain file's usual mode (temporary files start 0600, which containers running as
    // another user could not read).
    write_atomic_mode(path, bytes, Some(0o644))
}

/// Like [`write_atomic`], with Unix permission bits applied before the rename (0600 for
/// secret keys, so the secret never exists with wider permissions).
pub fn write_atomic_mode(path: &Path, bytes: &[u8], mode: Option<u32>) -> io::Result<()> {
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(parent)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".cohort-tmp-")
        .tempfile_in(parent)?;
    #[cfg(unix)]
    if let Some(mode) = mode {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(fs::Permissions::from_mode(mode))?;
    }
    #[cfg(not(unix))]
    let _ = mode;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    if let Ok(dir) = fs::File::open(parent) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// A directory built under a temporary name and renamed into place only when complete, so a
/// crash leaves either nothing or a finished directory at the final path.
#[derive(Debug)]
pub struct AtomicDir {
    tmp: Option<tempfile::TempDir>,
    target: PathBuf,
}

impl AtomicDir {
    /// Starts building `target`. The staging folder is a sibling of `target`.
    pub fn new(target: &Path) -> io::Result<AtomicDir> {
        AtomicDir::new_with_prefix(target, ".cohort-staging-")
    }

    /// Like [`AtomicDir::new`], with a staging name starting with `prefix` so a later run can
    /// recognise (and remove) what a killed run left behind.
    pub fn new_with_prefix(target: &Path, prefix: &str) -> io::Result<AtomicDir> {
        let parent = target.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(parent)?;
        let tmp = tempfile::Builder::new().prefix(prefix).tempdir_in(parent)?;
        Ok(AtomicDir {
            tmp: Some(tmp),
            target: target.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        self.tmp.as_ref().expect("present until commit").path()
    }

    /// Moves the finished directory into place, replacing an existing one.
    pub fn commit(mut self) -> io::Result<PathBuf> {
        let tmp = self.tmp.take().expect("present until commit");
        let staged = tmp.keep();
        if self.target.exists() {
            let old = self
                .target
                .with_extension(format!("old-{}", std::process::id()));
            fs::rename(&self.target, &old)?;
            fs::rename(&staged, &self.target)?;
            let _ = fs::remove_dir_all(&old);
        } else {
            fs::rename(&staged, &self.target)?;
        }
        Ok(self.target.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_sets_mode() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a/b/secret");
        write_atomic_mode(&p, b"one", Some(0o600)).unwrap();
        write_atomic_mode(&p, b"two", Some(0o600)).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let leftovers: Vec<_> = fs::read_dir(p.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers.len(), 1, "no temp files left: {leftovers:?}");
    }

    #[test]
    fn atomic_dir_appears_only_on_commit() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("prepared");
        let staging = AtomicDir::new(&target).unwrap();
        fs::write(staging.path().join("x"), b"1").unwrap();
        assert!(!target.exists());
        staging.commit().unwrap();
        assert_eq!(fs::read(target.join("x")).unwrap(), b"1");
    }
}
