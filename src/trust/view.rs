//! What one record's check may see: the index as it stood at the record's horizon, the last
//! commit that brought the record or anything attached to it (its signatures, the decisions on
//! it and theirs, its sealed payloads, its cube folder's files). Every read the policy makes
//! goes through here, so a record whose horizon precedes a commit reads exactly what it read
//! before that commit: the rule pass of a main grown by a few commits re-checks only the new
//! records and those the new files attach to (docs/design.md, "Verifying what changed").

use std::borrow::Borrow;
use std::collections::btree_map;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use crate::model::{self, DecisionKind, Record, RecordPath, Sha256, build};

use super::index::{FileInfo, Index, Versions};

/// The index restricted to the files that arrived by commit index `h`.
#[derive(Clone, Copy)]
pub(super) struct View<'a> {
    ix: &'a Index,
    h: usize,
    pub files: Files<'a>,
    pub roots: Vs<'a>,
    pub metas: Vs<'a>,
    pub users: Lookup<'a, String>,
    pub grants: Lookup<'a, String>,
    pub cubes: Lookup<'a, String>,
    pub benchmarks: Lookup<'a, String>,
    pub datasets: Lookup<'a, String>,
    pub leaderboards: Lookup<'a, String>,
    pub associations: Lookup<'a, (String, model::AssocKey)>,
    pub priorities: Lookup<'a, (String, String)>,
    pub results: Lookup<'a, (String, String, String)>,
    pub access: Lookup<'a, (String, u32, String)>,
    pub signatures: Sigs<'a>,
}

/// Files visible in a [`View`].
#[derive(Clone, Copy)]
pub(super) struct Files<'a> {
    ix: &'a Index,
    h: usize,
}

impl<'a> Files<'a> {
    pub fn get(&self, path: &str) -> Option<&'a FileInfo> {
        self.ix.need_path(path);
        self.ix.files.get(path).filter(|f| f.intro <= self.h)
    }
    pub fn contains_key(&self, path: &str) -> bool {
        self.get(path).is_some()
    }
}

/// The versions (or numbers) of one id visible in a [`View`].
#[derive(Clone, Copy)]
pub(super) struct Vs<'a> {
    m: &'a Versions,
    files: Files<'a>,
    /// The folder these versions live in, when the lookup that gave them did not name it.
    unit: Option<&'static str>,
}

impl<'a> Vs<'a> {
    fn need(&self) {
        if let Some(u) = self.unit {
            self.files.ix.need(u);
        }
    }
    pub fn get(&self, n: &u32) -> Option<&'a String> {
        self.need();
        self.m
            .get(n)
            .filter(|p| self.files.contains_key(p.as_str()))
    }
    pub fn contains_key(&self, n: &u32) -> bool {
        self.get(n).is_some()
    }
    pub fn iter(self) -> VsIter<'a> {
        self.need();
        VsIter {
            it: self.m.iter(),
            files: self.files,
        }
    }
    pub fn values(self) -> impl DoubleEndedIterator<Item = &'a String> + 'a {
        self.iter().map(|(_, p)| p)
    }
    pub fn is_empty(self) -> bool {
        self.iter().next().is_none()
    }
}

impl<'a> IntoIterator for Vs<'a> {
    type Item = (&'a u32, &'a String);
    type IntoIter = VsIter<'a>;
    fn into_iter(self) -> VsIter<'a> {
        self.iter()
    }
}

pub(super) struct VsIter<'a> {
    it: btree_map::Iter<'a, u32, String>,
    files: Files<'a>,
}

impl<'a> Iterator for VsIter<'a> {
    type Item = (&'a u32, &'a String);
    fn next(&mut self) -> Option<Self::Item> {
        let files = self.files;
        self.it.find(|(_, p)| files.contains_key(p))
    }
}

impl DoubleEndedIterator for VsIter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        let files = self.files;
        self.it.rfind(|(_, p)| files.contains_key(p))
    }
}

/// An (id -> versions) lookup seen through a [`View`]: an id none of whose versions is visible
/// is absent.
pub(super) struct Lookup<'a, K> {
    m: &'a BTreeMap<K, Versions>,
    files: Files<'a>,
    /// The folder of the records of one id is this, the id's first part, and `/`.
    prefix: &'static str,
}

impl<K> Clone for Lookup<'_, K> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<K> Copy for Lookup<'_, K> {}

/// A lookup key: its first part names the folder of its records.
pub(super) trait Key {
    fn first(&self) -> &str;
}
impl Key for str {
    fn first(&self) -> &str {
        self
    }
}
impl Key for String {
    fn first(&self) -> &str {
        self
    }
}
impl<B, C> Key for (String, B, C) {
    fn first(&self) -> &str {
        &self.0
    }
}
impl<B> Key for (String, B) {
    fn first(&self) -> &str {
        &self.0
    }
}

impl<'a, K: Ord> Lookup<'a, K> {
    pub fn get<Q>(&self, k: &Q) -> Option<Vs<'a>>
    where
        K: Borrow<Q>,
        Q: Ord + Key + ?Sized,
    {
        if self.files.ix.is_partial() {
            let unit = format!("{}{}/", self.prefix, k.first());
            self.files.ix.need(&unit);
        }
        let vs = Vs {
            m: self.m.get(k)?,
            files: self.files,
            unit: None,
        };
        (!vs.is_empty()).then_some(vs)
    }
}

type ResultKey = (String, String, String);

impl<'a> Lookup<'a, ResultKey> {
    /// Every id whose first part is `first` with a visible version, with those versions.
    pub fn of_first(&self, first: &str) -> impl Iterator<Item = (&'a ResultKey, Vs<'a>)> + 'a {
        self.files.ix.need(&format!("{}{first}/", self.prefix));
        let files = self.files;
        let from = (first.to_string(), String::new(), String::new());
        let first = first.to_string();
        self.m
            .range(from..)
            .take_while(move |(k, _)| k.0 == first)
            .map(move |(k, m)| {
                let vs = Vs {
                    m,
                    files,
                    unit: None,
                };
                (k, vs)
            })
            .filter(|(_, vs)| !vs.is_empty())
    }
}

/// Signatures by signed file, seen through a [`View`].
#[derive(Clone, Copy)]
pub(super) struct Sigs<'a> {
    ix: &'a Index,
    files: Files<'a>,
}

impl<'a> Sigs<'a> {
    /// The (signer, signature path) pairs on `signed` that are visible.
    pub fn get(&self, signed: &str) -> Option<impl Iterator<Item = &'a (String, String)> + 'a> {
        self.ix.need_path(signed);
        let files = self.files;
        let all = self.ix.signatures.get(signed)?;
        Some(all.iter().filter(move |(_, p)| files.contains_key(p)))
    }
    pub fn contains_key(&self, signed: &str) -> bool {
        self.get(signed).is_some_and(|mut s| s.next().is_some())
    }
}

impl<'a> View<'a> {
    pub fn at(ix: &'a Index, h: usize) -> View<'a> {
        let files = Files { ix, h };
        let lookup = |m, prefix| Lookup { m, files, prefix };
        View {
            ix,
            h,
            files,
            roots: Vs {
                m: &ix.roots,
                files,
                unit: Some(ROOT_UNIT),
            },
            metas: Vs {
                m: &ix.metas,
                files,
                unit: Some(META_UNIT),
            },
            users: lookup(&ix.users, "users/"),
            grants: lookup(&ix.grants, "grants/"),
            cubes: lookup(&ix.cubes, "mlcubes/"),
            benchmarks: lookup(&ix.benchmarks, "benchmarks/"),
            datasets: lookup(&ix.datasets, "datasets/"),
            leaderboards: lookup(&ix.leaderboards, "leaderboards/"),
            associations: Lookup {
                m: &ix.associations,
                files,
                prefix: "associations/",
            },
            priorities: Lookup {
                m: &ix.priorities,
                files,
                prefix: "associations/",
            },
            results: Lookup {
                m: &ix.results,
                files,
                prefix: "results/",
            },
            access: Lookup {
                m: &ix.access,
                files,
                prefix: "mlcubes/",
            },
            signatures: Sigs { ix, files },
        }
    }

    /// The last commit index this view sees.
    pub fn horizon(&self) -> usize {
        self.h
    }

    /// The registry id (the sha256 of root v1, in every commit's tree).
    pub fn registry_id(&self) -> Option<&'a Sha256> {
        self.ix.registry_id.as_ref()
    }

    /// Signature checks made while the index was built: facts of cryptography, not of time.
    pub fn early(&self) -> &'a super::cache::Early {
        &self.ix.early
    }

    pub fn record(&self, path: &str) -> Option<&'a Record> {
        self.files.get(path)?;
        self.ix.records.get(path)
    }
    pub fn sha(&self, path: &str) -> Option<&'a Sha256> {
        self.files.get(path).map(|f| &f.sha256)
    }
    pub fn intro(&self, path: &str) -> usize {
        self.files.get(path).map(|f| f.intro).unwrap_or(usize::MAX)
    }
    pub fn bytes(&self, path: &str) -> Option<&'a [u8]> {
        self.files.get(path).map(|f| &f.bytes[..])
    }

    /// Visible decisions of `kind` about `subject` that bind its current bytes.
    pub fn decisions_on(
        &self,
        subject: &str,
        kind: DecisionKind,
    ) -> Vec<(&'a str, &'a model::Decision)> {
        let Some(sha) = self.sha(subject) else {
            return Vec::new();
        };
        self.ix
            .decisions
            .get(subject)
            .into_iter()
            .flatten()
            .filter_map(|p| match self.record(p) {
                Some(Record::Decision(d))
                    if d.kind == kind.as_str() && &d.subject_sha256 == sha =>
                {
                    Some((p.as_str(), d))
                }
                _ => None,
            })
            .collect()
    }

    /// The root in force at commit index `t` among the visible roots `valid` accepts.
    pub fn root_at(&self, t: usize, valid: &dyn Fn(&str) -> bool) -> Option<&'a model::Root> {
        self.roots
            .values()
            .rev()
            .filter(|p| self.intro(p) <= t && valid(p))
            .find_map(|p| match self.record(p) {
                Some(Record::Root(r)) => Some(r),
                _ => None,
            })
    }

    pub fn is_admin_at(&self, handle: &str, t: usize, valid: &dyn Fn(&str) -> bool) -> bool {
        self.root_at(t, valid)
            .is_some_and(|r| r.admins.iter().any(|a| a.handle == handle))
    }

    pub fn benchmark(&self, name: &str, version: u32) -> Option<(&'a str, &'a model::Benchmark)> {
        let p = self.benchmarks.get(name)?.get(&version)?;
        match self.record(p) {
            Some(Record::Benchmark(b)) => Some((p.as_str(), b)),
            _ => None,
        }
    }

    pub fn cube(&self, name: &str, version: u32) -> Option<(&'a str, &'a model::Mlcube)> {
        let p = self.cubes.get(name)?.get(&version)?;
        match self.record(p) {
            Some(Record::Mlcube(c)) => Some((p.as_str(), c)),
            _ => None,
        }
    }

    pub fn resolves_cube(&self, r: &model::CubeRef) -> Option<&'a str> {
        let p = self.cubes.get(&r.name)?.get(&r.version)?;
        (self.sha(p) == Some(&r.sha256)).then_some(p.as_str())
    }

    pub fn resolves_bench(&self, r: &model::BenchRef) -> Option<&'a str> {
        let p = self.benchmarks.get(&r.name)?.get(&r.version)?;
        (self.sha(p) == Some(&r.sha256)).then_some(p.as_str())
    }

    pub fn resolves_dataset(&self, r: &model::DatasetRef) -> Option<&'a str> {
        let p = self.datasets.get(&r.id)?.get(&r.version)?;
        (self.sha(p) == Some(&r.sha256)).then_some(p.as_str())
    }
}

/// The record or file `rp` (a file of the index) is attached to, whose check reads it: a
/// signature's signed file, a decision's subject, a sealed payload's owner, a cube file's
/// cube. [`each_attachment`] is its inverse; the two are one relation.
pub(super) fn owner(rp: &RecordPath) -> Option<String> {
    match rp {
        RecordPath::Signature { signed, .. } => Some(signed.clone()),
        RecordPath::Decision { subject, .. } => Some(subject.clone()),
        RecordPath::Sealed { owner, .. } => Some(owner.clone()),
        RecordPath::MlcubeFile { name, version, .. } => Some(build::mlcube(name, *version)),
        _ => None,
    }
}

/// Calls `f` with each file of `ix` attached to `path` (those whose [`owner`] it is): all
/// next to it, in its folder.
pub(super) fn each_attachment<'a>(ix: &'a Index, path: &str, f: &mut dyn FnMut(&'a str)) {
    ix.need_path(path);
    for (_, p) in ix.signatures.get(path).into_iter().flatten() {
        f(p);
    }
    for m in [&ix.decisions, &ix.sealed] {
        for p in m.get(path).into_iter().flatten() {
            f(p);
        }
    }
    if let Some(RecordPath::Mlcube { .. }) = ix.files.get(path).map(|i| &i.rp)
        && let Some(end) = path.rfind('/')
    {
        let folder = &path[..=end];
        // The cube's files sit beside its record, in its version's folder.
        let from = (Bound::Included(folder), Bound::Unbounded);
        for (p, info) in ix.files.range::<str, _>(from) {
            if !p.starts_with(folder) {
                break;
            }
            if matches!(info.rp, RecordPath::MlcubeFile { .. }) {
                f(p);
            }
        }
    }
}

/// The horizon of `path`: the latest arrival among it and everything attached to it, at any
/// depth (a decision's signatures count for the record decided on).
pub(super) fn horizon(ix: &Index, path: &str) -> usize {
    let mut h = ix.intro(path);
    each_attachment(ix, path, &mut |a| h = h.max(horizon(ix, a)));
    h
}

/// What the new files of a grown main reach: themselves and, at any depth, what they attach to
/// (the files whose horizon they move), present or not.
#[derive(Debug, Default)]
pub(super) struct Reach {
    /// The new files.
    pub fresh: BTreeSet<String>,
    /// The new files and their owners at any depth (a missing owner included: a signature of
    /// a file that is not there reaches that path).
    pub files: BTreeSet<String>,
}

impl Reach {
    pub fn of(ix: &Index, fresh: &[String]) -> Reach {
        let mut files = BTreeSet::new();
        for f in fresh {
            let mut at = Some(f.clone());
            while let Some(p) = at.take() {
                ix.need_path(&p);
                at = ix.files.get(&p).and_then(|info| owner(&info.rp));
                if !files.insert(p) {
                    // Its owners are in already.
                    break;
                }
            }
        }
        Reach {
            fresh: fresh.iter().cloned().collect(),
            files,
        }
    }

    /// The reached files of `ix` that are records.
    pub fn records<'r>(&'r self, ix: &'r Index) -> impl Iterator<Item = &'r String> + 'r {
        self.files.iter().filter(|p| ix.records.contains_key(*p))
    }
}

/// The folder of the root versions, and of the meta manifests.
pub(super) const ROOT_UNIT: &str = "root/";
pub(super) const META_UNIT: &str = "meta/";

/// The part of a registry a read of `path` needs, as an index read lazily loads it: the folder
/// of the path's id (`users/<handle>/`, `mlcubes/<name>/`, `results/<bench>/`...), which holds
/// every version of that id and everything attached to them; `root/`, `meta/`, `hooks/` and
/// the like for their files; `""` for the top-level files; a blob alone.
pub fn unit_of(path: &str) -> &str {
    if path.starts_with("blobs/") {
        return path;
    }
    let mut slashes = path.match_indices('/');
    match (slashes.next(), slashes.next()) {
        (Some(_), Some((second, _))) => &path[..=second],
        (Some((first, _)), None) => &path[..=first],
        (None, _) => "",
    }
}
