//! Local state under `$COHORT_HOME`: where keys, caches, prepared datasets, run outputs, logs
//! and the verified-state file live, plus the atomic-write and locking primitives every
//! writer uses so an interrupted command never leaves a half-written file behind, and the
//! asset primitives built on them (downloads, the verified cache, safe extraction, the
//! dataset content hash).
//!
//! # API used by the rest of cohort
//!
//! - [`NetConfig`]: proxies (`http_proxy`, `https_proxy`, `all_proxy`, `no_proxy`), extra CA
//!   bundles, timeouts, retries, size cap. The CLI builds it with
//!   `NetConfig::from_env_lookup(|k| std::env::var(k).ok())`; the core never reads env vars.
//! - [`fetch`]`(source, expected, dest, &net, reporter, &cancel) -> Result<`[`Fetched`]`>`:
//!   `http(s)://`, `file://` or a local path to the file `dest`, streamed, hashed, resumed,
//!   retried, verified, renamed into place only when complete.
//! - [`Cache`]: `Cache::new(&home).get_or_fetch(source, expected, &net, reporter, &cancel)`
//!   and `get(&sha256, ..)` (offline); entries under `cache/sha256/<hex>` are re-hashed on
//!   every use, and a bad one is removed and fetched again with a warning.
//! - [`extract_tarball`]`(archive, dest, &`[`ExtractLimits`]`) -> Result<`[`Extracted`]`>`:
//!   `.tar`/`.tar.gz` (sniffed) with plain files and folders only, all-or-nothing, bounded by
//!   the unpacked size and file count an asset's record states ([`ExtractLimits::for_asset`]).
//! - [`hash_tree`]`(root, threads, reporter) -> Result<`[`ContentHash`]`>`: the dataset
//!   content hash (docs/content-hash.md), with per-file digests and [`ContentHash::diff`];
//!   [`hash_file`] for one file.
//! - [`ImageLedger`]: the images cohort put into the Docker Engine; [`disk_usage`] and
//!   [`remove_via`] (rename into `tmp/`, then delete) for `storage ls` / `storage cleanup`.
//! - [`StorageError`]: messages name the URL/file and what to do;
//!   [`StorageError::is_environment`] is true for network, DNS, timeout, server and disk-full
//!   failures (exit code 3).

mod atomic;
mod cache;
mod content;
mod download;
mod error;
mod extract;
mod guard;
mod headers;
mod http;
mod ledger;
mod lock;
mod net;
mod pace;
mod statcache;
mod usage;
mod walk;
mod words;

pub use atomic::{AtomicDir, write_atomic, write_atomic_mode};
pub use cache::Cache;
pub use content::{CONTENT_HASH_HEADER, ContentHash, FileChange, FileDigest, hash_file, hash_tree};
pub use download::{Fetched, fetch};
pub use error::{NetFailure, StorageError};
pub use extract::{
    DEFAULT_MAX_RATIO, DEFAULT_MAX_UNPACKED, ExtractLimits, Extracted, extract_reader,
    extract_tarball,
};
pub use guard::private_registry_host;
pub use ledger::{Acquired, ImageLedger, LedgerEntry};
pub use lock::{DirLock, LockError};
pub use net::{DEFAULT_MAX_UNRECORDED, DEFAULT_MIN_RATE, NetConfig, no_proxy_matches};
pub use statcache::{CacheUse, hash_tree_cached};
pub use usage::{disk_usage, remove_via};
pub use words::{innermost_io, io_hint, plain_io};

/// Feeds one string to every header-value and source parser downloads use (fuzzing).
pub(crate) fn fuzz_header_values(text: &str) {
    let _ = headers::parse_content_range(text);
    let _ = headers::parse_unsatisfied_range(text);
    let _ = headers::retry_after(text);
    let _ = download::Source::parse(text);
}

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
    /// Records of what running tasks handed the container's user (private to the caller):
    /// a run killed before taking it back is finished by the next.
    pub fn access_dir(&self) -> PathBuf {
        self.root.join("access")
    }
    /// Per-task logs.
    pub fn logs_dir(&self) -> PathBuf {
        self.root.join("logs")
    }
    /// Image tarballs by image id (`<hex>.tar`), filled by `bundle import`: an air-gapped
    /// site reloads an image from here (its config digest re-checked) instead of pulling it.
    pub fn images_dir(&self) -> PathBuf {
        self.root.join("images")
    }
    /// The images cohort pulled, built or loaded into the Docker Engine.
    pub fn image_ledger(&self) -> ImageLedger {
        ImageLedger::new(&self.images_dir())
    }
    /// Scratch space on the same filesystem as the rest, so renames stay atomic.
    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }
}
