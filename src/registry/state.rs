//! The verified-state file, kept under COHORT_HOME by registry id (outside any clone), so that
//! deleting and re-cloning a registry does not forget which main was last verified: a remote
//! that rewinds or rewrites history is refused (rollback and freeze protection).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use std::sync::Arc;

use crate::model::Sha256;
use crate::storage::{DirLock, Home, write_atomic};
use crate::trust::SigCache;

use super::{RegistryError, Result};

/// What this machine knows about one registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    pub registry_id: String,
    /// The newest main commit verified on this machine.
    pub verified_commit: String,
    pub verified_at: String,
    /// How many first-parent commits that main had (informational: nothing is skipped by
    /// position; older state files may lack it).
    #[serde(default)]
    pub verified_length: usize,
}

/// The store of [`State`] files.
#[derive(Debug, Clone)]
pub struct StateStore {
    dir: PathBuf,
}

impl StateStore {
    pub fn new(home: &Home) -> StateStore {
        StateStore {
            dir: home.state_dir(),
        }
    }

    fn path(&self, id: &Sha256) -> PathBuf {
        self.dir.join(format!("{id}.toml"))
    }

    /// Holds the lock guarding one registry's state while verifying and recording.
    pub fn lock(&self, id: &Sha256) -> Result<DirLock> {
        DirLock::try_acquire(
            &self.dir.join(format!("{id}.lock")),
            &format!("registry {}", id.short()),
        )
        .map_err(|e| RegistryError::Refused(e.to_string()))
    }

    pub fn load(&self, id: &Sha256) -> Result<Option<State>> {
        let p = self.path(id);
        match std::fs::read_to_string(&p) {
            Ok(text) => toml::from_str(&text)
                .map(Some)
                .map_err(|e| RegistryError::Refused(format!("{}: {e}", p.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(RegistryError::Io { path: p, source: e }),
        }
    }

    pub fn save(&self, state: &State) -> Result<()> {
        let id: Sha256 = state.registry_id.parse().map_err(RegistryError::Refused)?;
        let p = self.path(&id);
        let text = toml::to_string(state).expect("state serializes");
        write_atomic(&p, text.as_bytes()).map_err(|e| RegistryError::Io { path: p, source: e })
    }

    fn memo_path(&self, id: &Sha256) -> PathBuf {
        self.dir.join(format!("{id}.sigmemo"))
    }

    /// The memo of signature checks done on this machine for one registry (empty when there
    /// is none or it cannot be read: it only saves time).
    pub fn memo(&self, id: &Sha256) -> Arc<SigCache> {
        let bytes = std::fs::read(self.memo_path(id)).unwrap_or_default();
        Arc::new(SigCache::from_bytes(&bytes))
    }

    /// Saves the memo when this run added to it.
    pub fn save_memo(&self, id: &Sha256, memo: &SigCache) -> Result<()> {
        if memo.added_bytes().is_empty() {
            return Ok(());
        }
        let p = self.memo_path(id);
        write_atomic(&p, &memo.to_bytes()).map_err(|e| RegistryError::Io { path: p, source: e })
    }

    fn listing_path(&self, id: &Sha256) -> PathBuf {
        // A folder: one file per top folder of the registry (see `listing`).
        self.dir.join(format!("{id}.listing"))
    }

    /// The records under `folders` (and the root) that `keep` accepts, from the listing index
    /// of exactly `commit`; `None` when there is none for that commit (see [`super::listing`]).
    pub fn listing(
        &self,
        id: &Sha256,
        commit: git2::Oid,
        folders: &[&str],
        keep: &dyn Fn(&str) -> bool,
    ) -> Option<crate::trust::Index> {
        super::listing::load(&self.listing_path(id), commit, folders, keep)
    }

    /// Saves the listing index of `ix`, the index of the verified `commit`; when `ix` only
    /// adds to the main `grown_from`, whose listing is kept, only what it adds is written.
    pub fn save_listing(
        &self,
        id: &Sha256,
        commit: git2::Oid,
        ix: &crate::trust::Index,
        grown_from: Option<git2::Oid>,
    ) -> Result<()> {
        let p = self.listing_path(id);
        super::listing::save(&p, commit, ix, grown_from)
            .map_err(|e| RegistryError::Io { path: p, source: e })
    }

    /// The bytes of the rows file `name` (see [`super::rows`]) of the listing index of
    /// `commit`, when that listing is the one kept and the file whole.
    pub fn rows(&self, id: &Sha256, commit: git2::Oid, name: &str) -> Option<Vec<u8>> {
        super::listing::load_rows(&self.listing_path(id), commit, name)
    }

    /// Saves one rows file of the listing index of `commit` (when that is the listing kept),
    /// computed again from its records.
    pub fn save_rows(
        &self,
        id: &Sha256,
        commit: git2::Oid,
        name: &str,
        bytes: &[u8],
    ) -> Result<()> {
        let p = self.listing_path(id);
        super::listing::save_rows(&p, commit, name, bytes)
            .map_err(|e| RegistryError::Io { path: p, source: e })
    }

    /// The files of the mains accepted here, carried into the next verification (empty when
    /// there are none usable: the carry only saves time, see [`super::carry`]).
    pub fn carry(&self, id: &Sha256) -> crate::trust::Carried {
        super::carry::load(&super::carry::dir(&self.dir, id))
    }

    /// The files of the main `commit` exactly, when the carry is that main's and whole (see
    /// [`super::carry::load_main`]).
    pub fn carry_main(&self, id: &Sha256, commit: git2::Oid) -> Option<crate::trust::Carried> {
        super::carry::load_main(&super::carry::dir(&self.dir, id), &commit.to_string())
    }

    /// Saves what the verification of the accepted main `commit` read, for the next one to
    /// carry.
    pub fn save_carry(
        &self,
        id: &Sha256,
        commit: git2::Oid,
        ix: &crate::trust::Index,
        tree: &super::GitTree,
    ) -> Result<()> {
        let p = super::carry::dir(&self.dir, id);
        let blob = |path: &str| tree.blob_id(path);
        super::carry::save(&p, &commit.to_string(), ix, &blob)
            .map_err(|e| RegistryError::Io { path: p, source: e })
    }

    fn timeline_path(&self, id: &Sha256) -> PathBuf {
        self.dir.join(format!("{id}.timeline"))
    }

    /// The timeline of the main last verified here, if it is whole (see
    /// [`super::timeline_from`] for how it is used: only for the commit it names).
    pub fn timeline(&self, id: &Sha256) -> Option<crate::trust::Timeline> {
        super::timeline_file::decode(&std::fs::read(self.timeline_path(id)).ok()?)
    }

    /// Saves the timeline of a verified main (one with history problems is not kept).
    pub fn save_timeline(&self, id: &Sha256, tl: &crate::trust::Timeline) -> Result<()> {
        let Some(bytes) = super::timeline_file::encode(tl) else {
            return Ok(());
        };
        let p = self.timeline_path(id);
        write_atomic(&p, &bytes).map_err(|e| RegistryError::Io { path: p, source: e })
    }

    /// Every registry this machine has pinned.
    pub fn all(&self) -> Result<Vec<State>> {
        let mut out = Vec::new();
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Ok(out);
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "toml")
                && let Ok(text) = std::fs::read_to_string(&p)
                && let Ok(s) = toml::from_str(&text)
            {
                out.push(s);
            }
        }
        Ok(out)
    }
}
