//! The parsed contents of one registry tree: every file classified, every record parsed, and
//! the lookups (versions by id, decisions by subject, signatures by file) that verification and
//! the workflow share. Building an index checks only what one file can show on its own.

use std::collections::BTreeMap;

use crate::model::{self, AssocKey, DecisionKind, Record, RecordPath, Sha256, classify};

use super::view::View;
use super::{Problem, Rule, Timeline};

/// One classified file.
#[derive(Debug, Clone)]
pub struct FileInfo {
    pub path: String,
    pub rp: RecordPath,
    pub sha256: Sha256,
    pub intro: usize,
    /// Shared: files carried from an earlier verification are slices of one buffer.
    pub bytes: bytes::Bytes,
    /// The record as [`Record::to_json`] writes it, when the file was taken from the carry
    /// (empty otherwise): the listing index reuses it.
    pub json: bytes::Bytes,
}

pub type Versions = BTreeMap<u32, String>;

/// The next version or number after those in `m` (1 when there are none).
pub fn next_number(m: Option<&Versions>) -> u32 {
    m.and_then(|m| m.last_key_value())
        .map(|(n, _)| n + 1)
        .unwrap_or(1)
}

/// Everything in a registry tree, parsed.
#[derive(Debug, Default)]
pub struct Index {
    pub registry_id: Option<Sha256>,
    pub files: BTreeMap<String, FileInfo>,
    pub records: BTreeMap<String, Record>,
    pub roots: Versions,
    pub metas: Versions,
    pub users: BTreeMap<String, Versions>,
    pub grants: BTreeMap<String, Versions>,
    pub cubes: BTreeMap<String, Versions>,
    pub benchmarks: BTreeMap<String, Versions>,
    pub associations: BTreeMap<(String, AssocKey), Versions>,
    pub priorities: BTreeMap<(String, String), Versions>,
    pub datasets: BTreeMap<String, Versions>,
    pub results: BTreeMap<(String, String, String), Versions>,
    pub leaderboards: BTreeMap<String, Versions>,
    /// (cube name, cube version, dataset id) -> access record numbers.
    pub access: BTreeMap<(String, u32, String), Versions>,
    /// subject path -> decision paths
    pub decisions: BTreeMap<String, Vec<String>>,
    /// signed path -> (signer, signature path)
    pub signatures: BTreeMap<String, Vec<(String, String)>>,
    /// owner record path -> sealed payload paths
    pub sealed: BTreeMap<String, Vec<String>>,
    pub meta_files: Vec<String>,
    /// Signature checks made while the files were read ([`Index::build_checking`]): facts of
    /// cryptography only, like the memo's; the policy stages still decide which key counts.
    pub early: super::cache::Early,
    /// When the build was given files carried from an earlier verification: the paths it
    /// read from the tree instead (new or changed files). `None` when it read every file.
    pub fresh: Option<Vec<String>>,
    /// How many files the build took from the carry instead of reading them.
    pub carried: usize,
    /// When the index holds only the parts of a main its checks read (see [`Lazy`]).
    pub lazy: Option<Lazy>,
}

/// An index of a main grown from one accepted here that holds the new files and only the parts
/// of the rest (see [`super::view::unit_of`]) its checks read: each read of a part not loaded
/// is noted, the parts are loaded and the checks run again until none is missing.
#[derive(Debug, Default)]
pub struct Lazy {
    /// The parts loaded (`*`: everything; a folder covers what is under it).
    pub loaded: std::collections::BTreeSet<String>,
    /// Parts read and not loaded since they were last taken.
    pub misses: std::sync::Mutex<std::collections::BTreeSet<String>>,
    /// The files and records of the whole main.
    pub counts: (usize, usize),
}

impl Lazy {
    /// Whether `unit` is loaded: itself or a folder holding it.
    pub fn covers(&self, unit: &str) -> bool {
        self.loaded.contains("*")
            || self.loaded.contains(unit)
            || unit
                .match_indices('/')
                .any(|(i, _)| i + 1 < unit.len() && self.loaded.contains(&unit[..=i]))
    }

    /// Notes a read of `unit`, unless it is loaded.
    pub fn note(&self, unit: &str) {
        if !self.covers(unit) {
            self.misses
                .lock()
                .expect("never poisoned")
                .insert(unit.to_string());
        }
    }

    /// The parts read and not loaded, taken.
    pub fn take_misses(&self) -> Vec<String> {
        let mut m = self.misses.lock().expect("never poisoned");
        std::mem::take(&mut *m).into_iter().collect()
    }
}

/// The value under `key` in `m`, made empty when missing: the key is cloned only then.
fn slot<'m, V: Default>(m: &'m mut BTreeMap<String, V>, key: &str) -> &'m mut V {
    if !m.contains_key(key) {
        m.insert(key.to_string(), V::default());
    }
    m.get_mut(key).expect("just made")
}

pub(super) fn problem(path: &str, rule: Rule, message: impl Into<String>) -> Problem {
    Problem {
        path: path.to_string(),
        rule,
        code: super::Code::of_rule(rule),
        message: message.into(),
        commit: None,
    }
}

impl Index {
    /// Notes a read of the part `unit` of the main (see [`Lazy`]); nothing for a whole index.
    #[inline]
    pub(super) fn need(&self, unit: &str) {
        if let Some(l) = &self.lazy {
            l.note(unit);
        }
    }

    /// [`Index::need`], for the part of `path`.
    #[inline]
    pub(super) fn need_path(&self, path: &str) {
        if let Some(l) = &self.lazy {
            l.note(super::view::unit_of(path));
        }
    }

    /// Whether this index holds only parts of its main (see [`Lazy`]).
    pub fn is_partial(&self) -> bool {
        self.lazy.is_some()
    }

    /// How many files the main has (all of them, also for a partial index).
    pub fn file_count(&self) -> usize {
        self.lazy
            .as_ref()
            .map(|l| l.counts.0)
            .unwrap_or(self.files.len())
    }

    /// How many records the main has.
    pub fn record_count(&self) -> usize {
        self.lazy
            .as_ref()
            .map(|l| l.counts.1)
            .unwrap_or(self.records.len())
    }

    /// Files `path` (classified as `rp`) under its kind's lookup. Every file of a registry
    /// passes here once per verification: a key already in its map is found, not cloned.
    pub(super) fn add(&mut self, path: &str, rp: &RecordPath) {
        // Made only for the kinds that keep it.
        let p = || path.to_string();
        match rp {
            RecordPath::Root { version } => {
                self.roots.insert(*version, p());
            }
            RecordPath::Meta { version } => {
                self.metas.insert(*version, p());
            }
            RecordPath::User { handle, version } => {
                slot(&mut self.users, handle).insert(*version, p());
            }
            RecordPath::Grant { handle, number } => {
                slot(&mut self.grants, handle).insert(*number, p());
            }
            RecordPath::Mlcube { name, version } => {
                slot(&mut self.cubes, name).insert(*version, p());
            }
            RecordPath::MlcubeFile { .. } => {}
            RecordPath::Benchmark { name, version } => {
                slot(&mut self.benchmarks, name).insert(*version, p());
            }
            RecordPath::Association {
                bench,
                key,
                version,
            } => {
                self.associations
                    .entry((bench.clone(), key.clone()))
                    .or_default()
                    .insert(*version, p());
            }
            RecordPath::Priority {
                bench,
                model,
                number,
            } => {
                self.priorities
                    .entry((bench.clone(), model.clone()))
                    .or_default()
                    .insert(*number, p());
            }
            RecordPath::Dataset { id, version } => {
                slot(&mut self.datasets, id).insert(*version, p());
            }
            RecordPath::Result {
                bench,
                dataset,
                model,
                number,
            } => {
                self.results
                    .entry((bench.clone(), dataset.clone(), model.clone()))
                    .or_default()
                    .insert(*number, p());
            }
            RecordPath::Access {
                name,
                version,
                dataset,
                number,
            } => {
                self.access
                    .entry((name.clone(), *version, dataset.clone()))
                    .or_default()
                    .insert(*number, p());
            }
            RecordPath::Leaderboard { bench, number } => {
                slot(&mut self.leaderboards, bench).insert(*number, p());
            }
            RecordPath::Decision { subject, .. } => {
                slot(&mut self.decisions, subject).push(p());
            }
            RecordPath::Sealed { owner, .. } => {
                slot(&mut self.sealed, owner).push(p());
            }
            RecordPath::Signature { signed, signer, .. } => {
                slot(&mut self.signatures, signed).push((signer.clone(), p()));
            }
            RecordPath::MetaFile => self.meta_files.push(p()),
            // Blobs are found through `files`; the blob checks walk them there.
            RecordPath::Blob { .. } => {}
        }
    }

    /// Sets when each file arrived, for an index built before its timeline was known.
    pub fn set_arrivals(&mut self, timeline: &Timeline) {
        for f in self.files.values_mut() {
            f.intro = timeline.intro(&f.path);
        }
    }

    /// Every record of the (id -> versions) map `m`, oldest version first.
    pub fn records_in<'a, K>(
        &'a self,
        m: &'a BTreeMap<K, Versions>,
    ) -> impl Iterator<Item = (&'a str, &'a Record)> + 'a {
        m.values()
            .flat_map(|v| v.values())
            .filter_map(move |p| self.records.get(p).map(|r| (p.as_str(), r)))
    }

    pub fn record(&self, path: &str) -> Option<&Record> {
        self.records.get(path)
    }
    pub fn sha(&self, path: &str) -> Option<&Sha256> {
        self.files.get(path).map(|f| &f.sha256)
    }
    pub fn intro(&self, path: &str) -> usize {
        self.files.get(path).map(|f| f.intro).unwrap_or(usize::MAX)
    }
    pub fn bytes(&self, path: &str) -> Option<&[u8]> {
        self.files.get(path).map(|f| &f.bytes[..])
    }

    /// Everything in the index, as the checks read it (the same reads, unbounded).
    fn all(&self) -> View<'_> {
        View::at(self, usize::MAX)
    }

    /// Decisions of `kind` about `subject` that bind its current bytes.
    pub fn decisions_on<'a>(
        &'a self,
        subject: &str,
        kind: DecisionKind,
    ) -> Vec<(&'a str, &'a model::Decision)> {
        self.all().decisions_on(subject, kind)
    }

    /// The root in force at commit index `t` among the roots `valid` accepts.
    pub fn root_at(&self, t: usize, valid: &dyn Fn(&str) -> bool) -> Option<&model::Root> {
        self.all().root_at(t, valid)
    }

    /// The newest root (on a verified tree).
    pub fn root(&self) -> Option<&model::Root> {
        self.root_at(usize::MAX - 1, &|_| true)
    }

    pub fn is_admin_at(&self, handle: &str, t: usize, valid: &dyn Fn(&str) -> bool) -> bool {
        self.all().is_admin_at(handle, t, valid)
    }

    /// A benchmark record by name and version.
    pub fn benchmark(&self, name: &str, version: u32) -> Option<(&str, &model::Benchmark)> {
        self.all().benchmark(name, version)
    }

    /// The newest version of a benchmark.
    pub fn latest_benchmark(&self, name: &str) -> Option<(&str, &model::Benchmark)> {
        let (v, _) = self.benchmarks.get(name)?.last_key_value()?;
        self.benchmark(name, *v)
    }

    pub fn cube(&self, name: &str, version: u32) -> Option<(&str, &model::Mlcube)> {
        self.all().cube(name, version)
    }

    pub fn latest_cube(&self, name: &str) -> Option<(&str, &model::Mlcube)> {
        let (v, _) = self.cubes.get(name)?.last_key_value()?;
        self.cube(name, *v)
    }

    pub fn dataset(&self, id: &str) -> Option<(&str, &model::Dataset)> {
        let (_, p) = self.datasets.get(id)?.last_key_value()?;
        match self.records.get(p) {
            Some(Record::Dataset(d)) => Some((p.as_str(), d)),
            _ => None,
        }
    }

    pub fn user(&self, handle: &str) -> Option<(&str, &model::User)> {
        let (_, p) = self.users.get(handle)?.last_key_value()?;
        match self.records.get(p) {
            Some(Record::User(u)) => Some((p.as_str(), u)),
            _ => None,
        }
    }

    /// Whether a reference to a cube version resolves to exactly those bytes.
    pub fn resolves_cube(&self, r: &model::CubeRef) -> Option<&str> {
        self.all().resolves_cube(r)
    }

    pub fn resolves_bench(&self, r: &model::BenchRef) -> Option<&str> {
        self.all().resolves_bench(r)
    }

    pub fn resolves_dataset(&self, r: &model::DatasetRef) -> Option<&str> {
        self.all().resolves_dataset(r)
    }
}

/// Parser messages start with the path; problems already carry it.
pub(super) fn strip_path(path: &str, msg: &str) -> String {
    msg.strip_prefix(path)
        .and_then(|m| m.strip_prefix(": "))
        .unwrap_or(msg)
        .to_string()
}

impl Index {
    /// Whether `handle` holds `role` now (on a verified tree: every grant counts, in order).
    pub fn has_role(&self, handle: &str, role: crate::model::Role) -> bool {
        let mut granted = false;
        for p in self.grants.get(handle).into_iter().flat_map(|m| m.values()) {
            if let Some(Record::Grant(g)) = self.records.get(p)
                && g.role == Some(role)
            {
                match g.action {
                    crate::model::GrantAction::GrantRole => granted = true,
                    crate::model::GrantAction::RevokeRole => granted = false,
                    crate::model::GrantAction::RevokeKey => {}
                }
            }
        }
        granted
    }

    /// Whether an admin revoked the key `minisign` (base64) of `handle`, or the same raw key
    /// under any handle or label (on a verified tree). Key ids are labels: a revocation ends
    /// the raw keys its handle had registered under that id, wherever they show up again.
    pub fn key_revoked(&self, handle: &str, minisign: &str) -> bool {
        self.revocations().cover(handle, minisign)
    }

    /// Every key revocation, gathered once for callers that ask about many keys.
    pub fn revocations(&self) -> Revocations<'_> {
        Revocations(self.revoked_keys().collect())
    }

    /// Every revoke-key grant, with the raw keys its handle registered under the id it names.
    fn revoked_keys(&self) -> impl Iterator<Item = (&str, &str, [u8; 32])> + '_ {
        self.grants
            .values()
            .flat_map(|m| m.values())
            .flat_map(move |p| {
                let g = match self.records.get(p) {
                    Some(Record::Grant(g)) if g.action == crate::model::GrantAction::RevokeKey => g,
                    _ => return Vec::new(),
                };
                let id = g.key.as_deref().unwrap_or_default();
                self.users
                    .get(&g.handle)
                    .into_iter()
                    .flat_map(|v| v.values())
                    .filter_map(|up| match self.records.get(up) {
                        Some(Record::User(u))
                            if super::keys::key_id_of(&u.minisign).as_deref() == Some(id) =>
                        {
                            super::keys::raw_key_of(&u.minisign)
                        }
                        _ => None,
                    })
                    .map(|r| (g.handle.as_str(), id, r))
                    .collect()
            })
    }

    /// Whether `handle` is an admin now or a registered user.
    pub fn is_participant(&self, handle: &str) -> bool {
        self.root()
            .is_some_and(|r| r.admins.iter().any(|a| a.handle == handle))
            || self.users.contains_key(handle)
    }

    /// The age recipient of `handle` now.
    pub fn age_recipient(&self, handle: &str) -> Option<String> {
        if let Some(a) = self
            .root()
            .and_then(|r| r.admins.iter().find(|a| a.handle == handle))
        {
            return Some(a.age.clone());
        }
        self.user(handle).map(|(_, u)| u.age.clone())
    }
}

impl Index {
    /// An index of parsed records alone (no bytes, no signatures, no other files), from a
    /// listing index written for a verified commit: what listings read.
    pub fn from_records(records: impl IntoIterator<Item = (String, Sha256, Record)>) -> Index {
        let mut ix = Index::default();
        for (p, sha256, record) in records {
            let Ok(rp) = classify(&p) else { continue };
            ix.add(&p, &rp);
            ix.records.insert(p.clone(), record);
            let info = FileInfo {
                path: p.clone(),
                rp,
                sha256,
                intro: 0,
                bytes: bytes::Bytes::new(),
                json: bytes::Bytes::new(),
            };
            ix.files.insert(p, info);
        }
        if let Some(root1) = ix.files.get(&model::build::root(1)) {
            ix.registry_id = Some(root1.sha256.clone());
        }
        ix
    }
}

/// The key revocations of a verified tree: (handle, key id it names, raw key it ends).
pub struct Revocations<'a>(Vec<(&'a str, &'a str, [u8; 32])>);

impl Revocations<'_> {
    /// Whether the key `minisign` (base64) of `handle` is revoked: by its handle and key id,
    /// or as the same raw key under any handle or label.
    pub fn cover(&self, handle: &str, minisign: &str) -> bool {
        let id = super::keys::key_id_of(minisign);
        let raw = super::keys::raw_key_of(minisign);
        self.0.iter().any(|(h, key_id, r)| {
            (*h == handle && Some(*key_id) == id.as_deref()) || Some(*r) == raw
        })
    }
}
