//! Submissions: signed records written as one commit on `submit/<handle>/<kind>-<id>`, built
//! from the latest verified main through the object database; and reading a branch back as a
//! submission (what it adds, whose it is, what it asks for).

use git2::Oid;

use crate::model::{self, Kind, RecordPath, Sha256, build, classify};
use crate::registry::{NewFile, Registry, SUBMIT_PREFIX};
use crate::trust::{Signer, sign};

use super::{Result, WorkflowError};

/// What a submission branch proposes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SubmissionKind {
    User,
    Mlcube,
    Benchmark,
    Association,
    Dataset,
    Result,
    Leaderboard,
    Grant,
    Root,
}

impl SubmissionKind {
    pub fn of(kind: Kind) -> Option<SubmissionKind> {
        Some(match kind {
            Kind::User => SubmissionKind::User,
            Kind::Mlcube => SubmissionKind::Mlcube,
            Kind::Benchmark => SubmissionKind::Benchmark,
            Kind::Association => SubmissionKind::Association,
            Kind::Dataset => SubmissionKind::Dataset,
            Kind::Result => SubmissionKind::Result,
            Kind::Leaderboard => SubmissionKind::Leaderboard,
            Kind::Grant => SubmissionKind::Grant,
            Kind::Root => SubmissionKind::Root,
            _ => return None,
        })
    }
    pub fn as_str(self) -> &'static str {
        match self {
            SubmissionKind::User => "user",
            SubmissionKind::Mlcube => "mlcube",
            SubmissionKind::Benchmark => "benchmark",
            SubmissionKind::Association => "association",
            SubmissionKind::Dataset => "dataset",
            SubmissionKind::Result => "result",
            SubmissionKind::Leaderboard => "leaderboard",
            SubmissionKind::Grant => "grant",
            SubmissionKind::Root => "root",
        }
    }
    /// Whether merging needs someone's signed approval (else a clean `verify --range` suffices).
    pub fn needs_approval(self) -> bool {
        matches!(
            self,
            SubmissionKind::User | SubmissionKind::Benchmark | SubmissionKind::Association
        )
    }
}

/// One submission branch, read back.
#[derive(Debug, Clone)]
pub struct Submission {
    pub branch: String,
    /// The handle in the branch name.
    pub owner: String,
    pub kind: SubmissionKind,
    /// Path of the record it proposes.
    pub subject: String,
    pub subject_sha256: Sha256,
    pub tip: Oid,
    pub added: Vec<String>,
}

/// The branch a submission lives on.
pub fn branch_name(handle: &str, kind: SubmissionKind, id: &str) -> String {
    format!("{SUBMIT_PREFIX}{handle}/{}-{id}", kind.as_str())
}

/// Signs each record with `signer` and returns the records with their signature files.
pub fn sign_all(signer: &Signer, registry: &Sha256, records: Vec<NewFile>) -> Result<Vec<NewFile>> {
    let mut out = Vec::new();
    for f in records {
        let rp = classify(&f.path)?;
        if let Some(kind) = rp.kind() {
            let sig = sign::sign(signer, registry, &f.path, kind.as_str(), &f.bytes)?;
            out.push(NewFile::new(build::signature(&f.path, &signer.handle), sig));
        }
        out.push(f);
    }
    Ok(out)
}

/// Reads what `branch` (at `tip`) proposes relative to `base`.
pub fn describe(reg: &Registry, base: Oid, branch: &str, tip: Oid) -> Result<Submission> {
    let owner = branch
        .strip_prefix(SUBMIT_PREFIX)
        .and_then(|r| r.split('/').next())
        .unwrap_or_default()
        .to_string();
    let changes = reg.changes(fork_point(reg, base, tip)?, tip)?;
    let tree = reg.tree(tip)?;
    let mut best: Option<(SubmissionKind, String)> = None;
    for p in &changes.added {
        if let Ok(rp) = classify(p) {
            if matches!(
                rp,
                RecordPath::Decision { .. } | RecordPath::Signature { .. }
            ) {
                continue;
            }
            if let Some(k) = rp.kind().and_then(SubmissionKind::of)
                && best.as_ref().is_none_or(|(bk, _)| k > *bk)
            {
                best = Some((k, p.clone()));
            }
        }
    }
    let (kind, subject) = best.ok_or_else(|| {
        WorkflowError::Refused(format!(
            "branch {branch} proposes no record (nothing to approve or merge)"
        ))
    })?;
    let bytes = tree.read_path(&subject)?;
    Ok(Submission {
        branch: branch.to_string(),
        owner,
        kind,
        subject,
        subject_sha256: Sha256::of(&bytes),
        tip,
        added: changes.added,
    })
}

/// Where a submission branch left main: the newest commit on its first-parent chain that is
/// also on main's first-parent chain (still right after the branch was merged).
fn fork_point(reg: &Registry, main: Oid, tip: Oid) -> Result<Oid> {
    let repo = reg.repo();
    let err = crate::registry::RegistryError::from;
    repo.find_commit(main).map_err(err)?;
    repo.find_commit(tip).map_err(err)?;
    // Main's chain as far as it can be read (a parent missing here ends it, as before).
    let on_main: std::collections::HashSet<Oid> = crate::registry::first_parents(repo, main)
        .map_while(|c| c.ok().map(|c| c.id()))
        .collect();
    for commit in crate::registry::first_parents(repo, tip) {
        match commit {
            Ok(c) if on_main.contains(&c.id()) => return Ok(c.id()),
            Ok(_) => {}
            Err(_) => break,
        }
    }
    Ok(repo.merge_base(main, tip).map_err(err)?)
}

/// Serializes a record and returns it as a file at `path`.
pub fn record_file<T: serde::Serialize>(path: String, record: &T) -> NewFile {
    NewFile::new(path, model::to_bytes(record))
}
