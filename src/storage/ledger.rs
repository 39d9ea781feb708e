//! The images cohort itself put into the Docker Engine (pulled, built or loaded), so that
//! `storage cleanup` removes only those, by id, and never an image the user made by other means.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{DirLock, LockError, write_atomic};

/// How an image reached the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Acquired {
    Pulled,
    Built,
    Loaded,
}

/// One image cohort acquired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// `sha256:...`
    pub id: String,
    /// The tag or reference it was acquired under.
    pub reference: String,
    pub how: Acquired,
    pub at: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct LedgerFile {
    #[serde(default)]
    image: Vec<LedgerEntry>,
}

/// `images/acquired.toml` under COHORT_HOME, read and rewritten under its lock.
#[derive(Debug, Clone)]
pub struct ImageLedger {
    path: PathBuf,
}

/// How long a writer waits for another cohort process's ledger update (they take milliseconds).
const LOCK_TRIES: u32 = 200;
const LOCK_POLL: Duration = Duration::from_millis(25);

impl ImageLedger {
    pub fn new(images_dir: &Path) -> ImageLedger {
        ImageLedger {
            path: images_dir.join("acquired.toml"),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The images recorded, oldest first, each id once.
    pub fn entries(&self) -> Vec<LedgerEntry> {
        std::fs::read_to_string(&self.path)
            .ok()
            .and_then(|t| toml::from_str::<LedgerFile>(&t).ok())
            .map(|f| f.image)
            .unwrap_or_default()
    }

    /// Records an image (an id already recorded keeps its first entry).
    pub fn record(&self, entry: LedgerEntry) -> Result<(), LockError> {
        self.update(|f| {
            if !f.image.iter().any(|e| e.id == entry.id) {
                f.image.push(entry);
            }
        })
    }

    /// Forgets images (removed from the engine).
    pub fn forget(&self, ids: &[String]) -> Result<(), LockError> {
        self.update(|f| f.image.retain(|e| !ids.contains(&e.id)))
    }

    fn update(&self, change: impl FnOnce(&mut LedgerFile)) -> Result<(), LockError> {
        let lock_path = self.path.with_extension("lock");
        let mut tries = 0;
        let _lock = loop {
            match DirLock::try_acquire(&lock_path, "the image ledger") {
                Ok(l) => break l,
                Err(LockError::Busy { .. }) if tries < LOCK_TRIES => {
                    tries += 1;
                    std::thread::sleep(LOCK_POLL);
                }
                Err(e) => return Err(e),
            }
        };
        let mut file = std::fs::read_to_string(&self.path)
            .ok()
            .and_then(|t| toml::from_str::<LedgerFile>(&t).ok())
            .unwrap_or_default();
        change(&mut file);
        write_atomic(
            &self.path,
            toml::to_string(&file).expect("serializes").as_bytes(),
        )
        .map_err(|source| LockError::Io {
            path: self.path.clone(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_each_image_once_and_forgets() {
        let dir = tempfile::tempdir().unwrap();
        let l = ImageLedger::new(dir.path());
        let e = |id: &str| LedgerEntry {
            id: id.into(),
            reference: "x:1".into(),
            how: Acquired::Built,
            at: "2026-01-01T00:00:00Z".into(),
        };
        l.record(e("sha256:a")).unwrap();
        l.record(e("sha256:a")).unwrap();
        l.record(e("sha256:b")).unwrap();
        assert_eq!(l.entries().len(), 2);
        l.forget(&["sha256:a".into()]).unwrap();
        assert_eq!(l.entries(), vec![e("sha256:b")]);
    }
}
