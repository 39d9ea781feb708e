//! Advisory locks that guard a dataset, a run or the verified-state file against concurrent
//! cohort processes. The OS releases them when a process dies, so kill -9 never leaves a stale
//! lock behind.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("{what} is in use by another cohort process ({holder}); lock file {path}")]
    Busy {
        what: String,
        holder: String,
        path: PathBuf,
    },
    #[error("cannot create lock file {path}: {}", crate::storage::plain_io(.source))]
    Io { path: PathBuf, source: io::Error },
}

/// A held lock; released on drop.
#[derive(Debug)]
pub struct DirLock {
    file: File,
    path: PathBuf,
}

impl DirLock {
    /// Takes the lock at `path` without waiting. `what` names the guarded thing in the error.
    pub fn try_acquire(path: &Path, what: &str) -> Result<DirLock, LockError> {
        let io_err = |source| LockError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(io_err)?;
        }
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)
            .map_err(io_err)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                let holder = fs::read_to_string(path)
                    .ok()
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| "unknown process".into());
                return Err(LockError::Busy {
                    what: what.to_string(),
                    holder,
                    path: path.to_path_buf(),
                });
            }
            Err(fs::TryLockError::Error(e)) => return Err(io_err(e)),
        }
        file.set_len(0).map_err(io_err)?;
        let _ = write!(file, "pid {}", std::process::id());
        Ok(DirLock {
            file,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_is_refused_until_first_drops() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d.lock");
        let first = DirLock::try_acquire(&p, "dataset d").unwrap();
        let err = DirLock::try_acquire(&p, "dataset d").unwrap_err();
        assert!(err.to_string().contains("dataset d is in use"), "{err}");
        drop(first);
        DirLock::try_acquire(&p, "dataset d").unwrap();
    }
}
