//! The verified-state file, kept under COHORT_HOME by registry id (outside any clone), so that
//! deleting and re-cloning a registry does not forget which main was last verified: a remote
//! that rewinds or rewrites history is refused (rollback and freeze protection).

use std::io::BufRead;
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

    /// Saves what this run added to the memo: appended to the file when it holds whole
    /// entries, else (no file, or an interrupted append left part of an entry, which would
    /// shift every entry after it) the memo written whole. Entries are facts of cryptography,
    /// so one appended by another run at the same time is as true as this run's.
    pub fn save_memo(&self, id: &Sha256, memo: &SigCache) -> Result<()> {
        let added = memo.added_bytes();
        if added.is_empty() {
            return Ok(());
        }
        let p = self.memo_path(id);
        let append = || -> std::io::Result<bool> {
            let mut f = std::fs::OpenOptions::new().append(true).open(&p)?;
            if f.metadata()?.len() % 32 != 0 {
                return Ok(false);
            }
            std::io::Write::write_all(&mut f, &added)?;
            f.sync_data()?;
            Ok(true)
        };
        if append().unwrap_or(false) {
            return Ok(());
        }
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

    /// What the carry says of the main `commit` (see [`super::carry::kept`]).
    pub fn kept(&self, id: &Sha256, commit: git2::Oid) -> Option<super::carry::Kept> {
        super::carry::kept(&super::carry::dir(&self.dir, id), &commit.to_string())
    }

    /// Whether the listing index kept for `commit` can grow by a main grown from it (see
    /// [`super::listing::can_grow`]).
    pub fn listing_can_grow(&self, id: &Sha256, commit: git2::Oid) -> bool {
        super::listing::can_grow(&self.listing_path(id), commit)
    }

    /// The files of the main `commit` exactly, when the carry is that main's and whole (see
    /// [`super::carry::load_main`]).
    pub fn carry_main(&self, id: &Sha256, commit: git2::Oid) -> Option<crate::trust::Carried> {
        super::carry::load_main(&super::carry::dir(&self.dir, id), &commit.to_string())
    }

    /// Saves what the verification of the accepted main `commit` read, for the next one to
    /// carry, and whether its `report` leaves nothing for a grown main to check again.
    pub fn save_carry(
        &self,
        id: &Sha256,
        commit: git2::Oid,
        ix: &crate::trust::Index,
        tree: &super::GitTree,
        report: &crate::trust::Report,
    ) -> Result<()> {
        let p = super::carry::dir(&self.dir, id);
        let accepted = report.is_strictly_clean();
        let blob = |path: &str| tree.blob_id(path);
        super::carry::save(&p, &commit.to_string(), ix, accepted, &blob)
            .map_err(|e| RegistryError::Io { path: p, source: e })
    }

    fn timeline_path(&self, id: &Sha256) -> PathBuf {
        self.dir.join(format!("{id}.timeline"))
    }

    fn timeline_more_path(&self, id: &Sha256) -> PathBuf {
        self.dir.join(format!("{id}.timeline-more"))
    }

    /// The timeline of the main last verified here, if it is whole (see
    /// [`super::timeline_from`] for how it is used: only for the commit it names), continued
    /// by the frames kept since (see [`super::timeline_file`]).
    pub fn timeline(&self, id: &Sha256) -> Option<crate::trust::Timeline> {
        let base = std::fs::read(self.timeline_path(id)).ok()?;
        let more = std::fs::read(self.timeline_more_path(id)).unwrap_or_default();
        super::timeline_file::decode_with_more(&base, &more)
    }

    /// Saves the timeline of a verified main (one with history problems is not kept). When
    /// `loaded`, the number of commits of the timeline [`StateStore::timeline`] gave this run,
    /// is where `tl` continues what is kept, only a frame with what it adds is written, and
    /// nothing when it adds nothing.
    pub fn save_timeline(
        &self,
        id: &Sha256,
        tl: &crate::trust::Timeline,
        loaded: Option<usize>,
    ) -> Result<()> {
        let more = self.timeline_more_path(id);
        let io = |path: &PathBuf| {
            let path = path.clone();
            move |source| RegistryError::Io { path, source }
        };
        match loaded.and_then(|n| self.continued(id, tl, n)) {
            Some(None) => return Ok(()),
            Some(Some(frames)) => return write_atomic(&more, &frames).map_err(io(&more)),
            None => {}
        }
        let Some(bytes) = super::timeline_file::encode(tl) else {
            return Ok(());
        };
        let p = self.timeline_path(id);
        write_atomic(&p, &bytes).map_err(io(&p))?;
        // The frames continued the timeline replaced: none applies to this one.
        match std::fs::remove_file(&more) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(&more)(e)),
            _ => Ok(()),
        }
    }

    /// The frames file taking what is kept to `tl`: the frames that applied up to the `loaded`
    /// commits read this run, then one with what `tl` adds (`Some(None)` when it adds nothing:
    /// what is kept is `tl`); `None` when `tl` does not continue them, or the frames are to be
    /// folded into a timeline written whole.
    fn continued(
        &self,
        id: &Sha256,
        tl: &crate::trust::Timeline,
        loaded: usize,
    ) -> Option<Option<Vec<u8>>> {
        use super::timeline_file::{MAX_FRAMES, encode_frame, frames, header};
        let base = std::fs::File::open(self.timeline_path(id)).ok()?;
        let size = base.metadata().ok()?.len();
        let mut first = String::new();
        std::io::BufReader::new(std::io::Read::take(base, 4096))
            .read_line(&mut first)
            .ok()?;
        let (last, n, _) = header(first.trim_end())?;
        if n == 0 || tl.commits.get(n - 1).map(String::as_str) != Some(last) {
            return None;
        }
        let more = std::fs::read(self.timeline_more_path(id)).unwrap_or_default();
        let (mut at, mut keep, mut count) = (n, 0, 0);
        for f in frames(&more) {
            let end = at + f.commits;
            if end > loaded || tl.commits.get(end - 1).map(String::as_str) != Some(f.after) {
                break;
            }
            (at, keep, count) = (end, keep + f.bytes.len(), count + 1);
        }
        if at != loaded {
            return None;
        }
        if at == tl.commits.len() {
            return Some(None);
        }
        if count >= MAX_FRAMES {
            return None;
        }
        let frame = encode_frame(tl, at)?;
        // Frames past a quarter of the timeline (or 64 KiB, for a small one) cost the reader
        // more than the writer saves: a first sync of a long history writes it whole.
        if (keep + frame.len()) as u64 > (size / 4).max(1 << 16) {
            return None;
        }
        let mut out = more[..keep].to_vec();
        out.extend(frame);
        Some(Some(out))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memo_is_appended_to_while_it_holds_whole_entries() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path());
        std::fs::create_dir_all(home.state_dir()).unwrap();
        let (store, id) = (StateStore::new(&home), Sha256::of(b"r"));
        let path = dir.path().join("state").join(format!("{id}.sigmemo"));
        let entry = |n: u8| [n; 32];
        let memo = SigCache::default();
        memo.insert(entry(1));
        store.save_memo(&id, &memo).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), entry(1));
        let memo = store.memo(&id);
        memo.insert(entry(2));
        store.save_memo(&id, &memo).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), [entry(1), entry(2)].concat());
        // Part of an entry left by an interrupted append: ignored when read, and the next
        // save writes the memo whole.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(&entry(9)[..5]);
        std::fs::write(&path, &bytes).unwrap();
        let memo = store.memo(&id);
        assert_eq!(memo.len(), 2);
        memo.insert(entry(3));
        store.save_memo(&id, &memo).unwrap();
        let back = store.memo(&id);
        assert_eq!(std::fs::read(&path).unwrap().len(), 3 * 32);
        assert!([1, 2, 3].iter().all(|&n| back.contains(&entry(n))));
    }
}
