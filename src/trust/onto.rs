//! The index of a main grown from one this machine accepted, built from that main's files as
//! the carry kept them and the files the new commits add, read from git: the reads follow
//! what changed, and the index is the one [`Index::build_checking`] gives for the whole tree,
//! so the policy then checks every file of it as always.

use std::collections::HashSet;

use rayon::prelude::*;

use crate::model::{self, Record, RecordPath, Sha256, classify};

use super::build::assemble;
use super::cache::SigCache;
use super::carry::{Carried, CarriedFile};
use super::{FileInfo, Index, Problem, Timeline, TreeRead, TrustError};

/// One carried file, classified, with its record (boxed: a record is large, and three in
/// four files are signatures, which have none).
type Taken = (FileInfo, Option<Box<Record>>);

impl Index {
    /// The index of the main the carry `carried` was saved for, whole (see
    /// `registry::carry::load_main`), with the arrivals of `timeline`. The carry is this
    /// machine's own record of a main it verified, kept under the commit id that names that
    /// main's every byte, and trusted as the memo is; `None` when a file does not classify or
    /// its record does not read back, which no carry of an accepted main holds.
    pub fn from_carried(carried: Carried, timeline: &Timeline) -> Option<Index> {
        // Each file's key in the file map is made here, on every core, with the rest.
        let taken: Vec<(String, Taken)> = carried
            .files
            .into_par_iter()
            .map(|f| take_saved(f, timeline).map(|t| (t.0.path.clone(), t)))
            .collect::<Option<_>>()?;
        let mut records = Vec::new();
        let mut files = Vec::with_capacity(taken.len());
        for (key, (info, record)) in taken {
            if let Some(r) = record {
                records.push((files.len(), *r));
            }
            files.push((key, info));
        }
        let mut ix = Index {
            carried: files.len(),
            ..Index::default()
        };
        assemble(&mut ix, files, records);
        Some(ix)
    }

    /// This index (of a main, from [`Index::from_carried`]) with the files of `added` (the
    /// files a later main adds to it, see `registry::history::added_files`) read, parsed and
    /// their signatures checked as [`Index::build_checking`] does, and the problems reading
    /// them showed. [`Index::fresh`] names the files read. `None` when an added path differs
    /// only in case from another path: the build of the whole tree reports each such pair.
    pub fn extend_checking(
        mut self,
        added: &dyn TreeRead,
        timeline: &Timeline,
        memo: Option<&SigCache>,
    ) -> Result<Option<(Index, Vec<Problem>)>, TrustError> {
        let entries = added.entries()?;
        if self.collides(entries.iter().map(|e| e.path.as_str())) {
            return Ok(None);
        }
        let (new, problems) = Index::build_checking(added, timeline, memo)?;
        let fresh = self.merge(new, true);
        self.fresh = Some(fresh);
        Ok(Some((self, problems)))
    }

    /// Adds the files of `new` this index does not hold, as [`Index::build_checking`] would
    /// have listed them (and its registry id, when this index has none yet), and returns their
    /// paths. With `signatures`, the checks made while `new` was read replace this index's
    /// (they are those of the files read last).
    pub(super) fn merge(&mut self, new: Index, signatures: bool) -> Vec<String> {
        if self.registry_id.is_none() {
            self.registry_id = new.registry_id.clone();
        }
        if signatures {
            self.early = new.early;
        }
        let mut added = Vec::with_capacity(new.files.len());
        let mut records = new.records;
        for (p, info) in new.files {
            if self.files.contains_key(&p) {
                continue;
            }
            self.add(&p, &info.rp);
            if let Some(r) = records.remove(&p) {
                self.records.insert(p.clone(), r);
            }
            added.push(p.clone());
            self.files.insert(p, info);
        }
        // The lists a build fills in path order, as the build of the whole tree has them.
        for p in &added {
            match &self.files[p].rp {
                RecordPath::Decision { subject, .. } => {
                    if let Some(v) = self.decisions.get_mut(subject) {
                        v.sort();
                    }
                }
                RecordPath::Sealed { owner, .. } => {
                    if let Some(v) = self.sealed.get_mut(owner) {
                        v.sort();
                    }
                }
                RecordPath::Signature { signed, .. } => {
                    if let Some(v) = self.signatures.get_mut(signed) {
                        v.sort_by(|a, b| a.1.cmp(&b.1));
                    }
                }
                RecordPath::MetaFile => self.meta_files.sort(),
                _ => {}
            }
        }
        added
    }

    /// Whether a path of `added` differs only in case from another of them or from a file
    /// of this index.
    fn collides<'a>(&self, added: impl Iterator<Item = &'a str>) -> bool {
        let folded_old: HashSet<String> = self
            .files
            .keys()
            .filter(|p| p.bytes().any(|b| b.is_ascii_uppercase()))
            .map(|p| p.to_ascii_lowercase())
            .collect();
        let mut folded_new = HashSet::new();
        for a in added {
            let f = a.to_ascii_lowercase();
            if (f != a && self.files.contains_key(&f)) || folded_old.contains(&f) {
                return true;
            }
            if !folded_new.insert(f) {
                return true;
            }
        }
        false
    }
}

/// A carried file of the main the carry was saved for, classified, with its record.
fn take_saved(f: CarriedFile, timeline: &Timeline) -> Option<Taken> {
    let path = std::str::from_utf8(&f.path).ok()?.to_string();
    let rp = classify(&path).ok()?;
    let record = match rp.kind() {
        None if f.json.is_empty() => return Some((info(path, rp, f, timeline), None)),
        None => return None,
        Some(_) if f.json.is_empty() => model::parse_record(&path, &rp, &f.bytes).ok()?,
        Some(kind) => Record::from_json(kind, std::str::from_utf8(&f.json).ok()?).ok()?,
    };
    Some((info(path, rp, f, timeline), Some(Box::new(record))))
}

fn info(path: String, rp: RecordPath, f: CarriedFile, timeline: &Timeline) -> FileInfo {
    FileInfo {
        intro: timeline.intro(&path),
        path,
        rp,
        sha256: Sha256::from_digest(&f.sha256),
        bytes: f.bytes,
        json: f.json,
    }
}
