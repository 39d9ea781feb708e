//! Local state under `$COHORT_HOME`: where keys, caches, prepared datasets, run outputs, logs
//! and the verified-state file live, plus the atomic-write and locking primitives every
//! writer uses so an interrupted command never leaves a half-written file behind.

mod atomic;
mod lock;

pub use atomic::{AtomicDir, write_atomic, write_atomic_mode};
pub use lock::{DirLock, LockError};

use std::path::{Path, PathBuf};

/// The layout of cohort's local storage. The CLI decides the root (COHORT_HOME or XDG dirs);
/// the core only joins paths below it.
#[derive(Debug, Clone)]
pub struct Home {
    root: PathBuf,
}

impl Home {
    pub fn new(root: impl Into<PathBuf>) -> Home {
        Home { root: root.into() }
    }
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// Secret and public keys, one folder per handle.
    pub fn keys_dir(&self) -> PathBuf {
        self.root.join("keys")
    }
    pub fn key_dir(&self, handle: &str) -> PathBuf {
        self.keys_dir().join(handle)
    }
    /// Verified-state files, one per registry id (rollback protection survives re-clones).
    pub fn state_dir(&self) -> PathBuf {
        self.root.join("state")
    }
    /// Downloaded assets by sha256 (re-verified on every use).
    pub fn cache_dir(&self) -> PathBuf {
        self.root.join("cache")
    }
    /// Prepared datasets by id.
    pub fn datasets_dir(&self) -> PathBuf {
        self.root.join("datasets")
    }
    /// Predictions and results keyed by content hashes.
    pub fn runs_dir(&self) -> PathBuf {
        self.root.join("runs")
    }
    /// Per-task logs.
    pub fn logs_dir(&self) -> PathBuf {
        self.root.join("logs")
    }
    /// Scratch space on the same filesystem as the rest, so renames stay atomic.
    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }
}
