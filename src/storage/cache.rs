//! The content-addressed asset cache (`$COHORT_HOME/cache/sha256/<hex>`). Every use re-hashes
//! the cached file, so a corrupted, truncated or swapped entry is caught, removed and fetched
//! again (MedPerf's stale-cache bugs #202/#549 cannot happen). A lock per entry lets several
//! cohort processes fetch the same asset without corrupting it.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::model::Sha256;
use crate::progress::{Cancel, Reporter};

use super::content::hash_file;
use super::download::{Fetched, fetch};
use super::error::{Result, StorageError};
use super::net::NetConfig;
use super::{DirLock, Home, LockError};

/// How often a process waiting for another one's download polls the lock.
const LOCK_POLL: Duration = Duration::from_millis(100);

/// Downloaded assets by sha256.
#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
}

impl Cache {
    /// The cache under `home` (`cache/`).
    pub fn new(home: &Home) -> Cache {
        Cache::at(home.cache_dir())
    }

    /// A cache rooted anywhere (tests, a shared cache the CLI was pointed at).
    pub fn at(root: impl Into<PathBuf>) -> Cache {
        Cache { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the asset with this hash lives once cached.
    pub fn path_for(&self, sha256: &Sha256) -> PathBuf {
        self.root.join("sha256").join(sha256.as_str())
    }

    /// The cached file with this hash, re-hashed now; `None` if absent. A corrupted entry is
    /// removed (with a warning) and reported absent. Does not touch the network, so an
    /// offline run can ask whether everything it needs is here.
    pub fn get(
        &self,
        sha256: &Sha256,
        reporter: &dyn Reporter,
        cancel: &Cancel,
    ) -> Result<Option<Fetched>> {
        let _lock = self.lock(
            &format!("sha256-{sha256}"),
            sha256.short(),
            reporter,
            cancel,
        )?;
        self.verified(sha256, reporter)
    }

    /// The asset from the cache when present and intact, otherwise fetched from `source`
    /// into the cache. With no `expected` hash the source is always fetched (its content
    /// may have changed) and stored under the hash it turned out to have.
    pub fn get_or_fetch(
        &self,
        source: &str,
        expected: Option<&Sha256>,
        net: &NetConfig,
        reporter: &dyn Reporter,
        cancel: &Cancel,
    ) -> Result<Fetched> {
        match expected {
            Some(h) => {
                let _lock = self.lock(&format!("sha256-{h}"), source, reporter, cancel)?;
                if let Some(hit) = self.verified(h, reporter)? {
                    return Ok(hit);
                }
                fetch(source, Some(h), &self.path_for(h), net, reporter, cancel)
            }
            None => {
                // Keyed by the source so a rerun resumes the same partial download.
                let key = Sha256::of(source.as_bytes());
                let _lock = self.lock(&format!("source-{key}"), source, reporter, cancel)?;
                let incoming = self.root.join("incoming").join(key.as_str());
                let got = fetch(source, None, &incoming, net, reporter, cancel)?;
                let dest = self.path_for(&got.sha256);
                let parent = dest.parent().expect("entries live under sha256/");
                fs::create_dir_all(parent).map_err(|e| StorageError::io("create", parent, e))?;
                // Replacing an existing entry is harmless: same verified bytes, atomic rename,
                // and readers keep the inode they opened.
                fs::rename(&incoming, &dest)
                    .map_err(|e| StorageError::io("move into the cache", &dest, e))?;
                Ok(Fetched { path: dest, ..got })
            }
        }
    }

    /// Removes the entry for `sha256` (via `tmp_dir`) unless another process holds its lock
    /// (it is being fetched or read): returns whether it was removed.
    pub fn remove_entry(&self, sha256: &Sha256, tmp_dir: &Path) -> Result<bool> {
        let path = self
            .root
            .join("locks")
            .join(format!("sha256-{sha256}.lock"));
        let _lock = match DirLock::try_acquire(&path, "cache entry") {
            Ok(l) => l,
            Err(LockError::Busy { .. }) => return Ok(false),
            Err(e) => return Err(StorageError::Lock(e)),
        };
        let entry = self.path_for(sha256);
        super::remove_via(tmp_dir, &entry)
            .map_err(|e| StorageError::io("remove the cache entry", &entry, e))?;
        Ok(true)
    }

    /// Re-hashes the entry for `sha256`; removes it if it is not exactly those bytes.
    fn verified(&self, sha256: &Sha256, reporter: &dyn Reporter) -> Result<Option<Fetched>> {
        let path = self.path_for(sha256);
        let meta = match fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StorageError::io("inspect", &path, e)),
        };
        if !meta.is_file() {
            reporter.warn(&format!(
                "cache entry {} is not a regular file; removing it and fetching again",
                path.display()
            ));
            remove_any(&path)?;
            return Ok(None);
        }
        let (actual, bytes) = hash_file(&path, reporter)?;
        if actual == *sha256 {
            return Ok(Some(Fetched {
                path,
                sha256: actual,
                bytes,
            }));
        }
        reporter.warn(&format!(
            "cache entry {} is corrupted (its sha256 is {actual}, expected {sha256}); removing it \
             and fetching again",
            path.display()
        ));
        remove_any(&path)?;
        Ok(None)
    }

    /// Takes the lock for one entry, waiting (and saying so) while another process holds it.
    fn lock(
        &self,
        key: &str,
        what: &str,
        reporter: &dyn Reporter,
        cancel: &Cancel,
    ) -> Result<DirLock> {
        let path = self.root.join("locks").join(format!("{key}.lock"));
        let mut told = false;
        loop {
            match DirLock::try_acquire(&path, &format!("cache entry for {what}")) {
                Ok(l) => return Ok(l),
                Err(LockError::Busy { holder, .. }) => {
                    if !told {
                        reporter.note(&format!(
                            "waiting for another cohort process ({holder}) fetching {what}"
                        ));
                        told = true;
                    }
                    if cancel.is_cancelled() {
                        return Err(StorageError::Cancelled {
                            what: format!("waiting for {what}"),
                        });
                    }
                    std::thread::sleep(LOCK_POLL);
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

fn remove_any(path: &Path) -> Result<()> {
    let r = if path.is_dir() && !path.is_symlink() {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    };
    r.map_err(|e| StorageError::io("remove the bad cache entry", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::Silent;

    #[test]
    fn local_source_is_cached_and_rechecked() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("asset.bin");
        fs::write(&src, b"weights").unwrap();
        let h = Sha256::of(b"weights");
        let cache = Cache::at(dir.path().join("cache"));
        let net = NetConfig::default();
        let cancel = Cancel::new();
        assert!(cache.get(&h, &Silent, &cancel).unwrap().is_none());
        let f = cache
            .get_or_fetch(src.to_str().unwrap(), Some(&h), &net, &Silent, &cancel)
            .unwrap();
        assert_eq!(f.path, cache.path_for(&h));
        assert_eq!(fs::read(&f.path).unwrap(), b"weights");
        // The source disappears: the cache still serves it.
        fs::remove_file(&src).unwrap();
        let again = cache.get(&h, &Silent, &cancel).unwrap().unwrap();
        assert_eq!(again.bytes, 7);
    }

    #[test]
    fn unknown_hash_is_stored_under_what_it_turned_out_to_be() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("demo.tar.gz");
        fs::write(&src, b"demo").unwrap();
        let cache = Cache::at(dir.path().join("cache"));
        let f = cache
            .get_or_fetch(
                src.to_str().unwrap(),
                None,
                &NetConfig::default(),
                &Silent,
                &Cancel::new(),
            )
            .unwrap();
        assert_eq!(f.sha256, Sha256::of(b"demo"));
        assert_eq!(f.path, cache.path_for(&f.sha256));
        assert!(
            fs::read_dir(cache.root().join("incoming"))
                .unwrap()
                .next()
                .is_none()
        );
    }
}
