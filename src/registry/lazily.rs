//! A main grown from the one accepted here, verified from the files the commits since add and
//! only the parts of the rest its checks read, loaded from git as they miss (see
//! `trust::verify_lazily`): a sync then costs what it brings, not what the registry holds.

use std::collections::HashSet;

use git2::Oid;

use crate::model::{RecordPath, classify};
use crate::trust::{self, Index, Lazy, Report, Timeline, TreeEntry, TrustError};

use super::tree::Folders;
use super::{GitTree, Registry, Result, carry};

impl Registry {
    /// `commit`'s verification from `added` (what it adds to the main `kept` describes, whose
    /// timeline has `at` commits) and the parts of that main its checks read. `None` when
    /// that cannot stand for the whole: an addition that rewrites every user's listing row
    /// (a root, user or grant record), a path that may differ only in case from another, a
    /// part that does not read as it did when that main was accepted, or a record of it the
    /// new files reach that fails (records that relied on it may change too).
    pub(super) fn read_lazily(
        &self,
        commit: Oid,
        tl: &Timeline,
        at: usize,
        added: &[TreeEntry],
        kept: carry::Kept,
        opts: &trust::VerifyOptions,
    ) -> Result<Option<(Report, Index)>> {
        let people = added.iter().any(|e| {
            matches!(
                classify(&e.path),
                Ok(RecordPath::Root { .. } | RecordPath::User { .. } | RecordPath::Grant { .. })
            )
        });
        let mut folders = Folders::of(&self.repo, commit)?;
        if !kept.room || people || may_collide(&mut folders, added)? {
            return Ok(None);
        }
        let memo = opts.cache.as_deref();
        let tree = GitTree::of_entries(&self.repo, added.to_vec()).opened_by(self.opener.clone());
        let (mut ix, problems) = Index::build_checking(&tree, tl, memo)?;
        ix.fresh = Some(ix.files.keys().cloned().collect());
        ix.carried = kept.files;
        ix.lazy = Some(Lazy {
            counts: (kept.files + ix.files.len(), kept.records + ix.records.len()),
            ..Lazy::default()
        });
        // Every path the commits add, classified or not: what reading them showed is reported
        // already, and any other problem in a part means it is not what was accepted.
        let new: HashSet<&str> = added.iter().map(|e| e.path.as_str()).collect();
        let mut load = |units: &[String]| -> std::result::Result<Option<Index>, TrustError> {
            let part = GitTree::at_units(&self.repo, &mut folders, units)
                .map_err(|e| TrustError::Read {
                    what: format!("{} of commit {commit}", units.join(", ")),
                    why: e.to_string(),
                })?
                .opened_by(self.opener.clone());
            let (more, problems) = Index::build_checking(&part, tl, memo)?;
            Ok(problems
                .iter()
                .all(|p| new.contains(p.path.as_str()))
                .then_some(more))
        };
        let base = trust::Accepted { commits: at };
        Ok(trust::verify_lazily(
            (ix, problems),
            tl,
            opts,
            base,
            &mut load,
        )?)
    }
}

/// Whether a path of `added` may differ only in case from another path of the tree `folders`
/// reads: it holds an upper-case letter, or a folder on its way holds an entry with one that
/// differs from the path's name there only in case. (A whole read reports an actual
/// collision; this only declines to read lazily.)
fn may_collide(folders: &mut Folders, added: &[TreeEntry]) -> Result<bool> {
    if added
        .iter()
        .any(|e| e.path.bytes().any(|b| b.is_ascii_uppercase()))
    {
        return Ok(true);
    }
    // Folder -> whether one of its names with an upper-case letter matches, by name.
    for e in added {
        let mut folder = String::new();
        for name in e.path.split('/') {
            if let Some(tree) = folders.folder(&folder)? {
                let upper = tree.entries.iter().map(|t| tree.name(t)).any(|n| {
                    n.iter().any(u8::is_ascii_uppercase) && n.eq_ignore_ascii_case(name.as_bytes())
                });
                if upper {
                    return Ok(true);
                }
            }
            folder.push_str(name);
            folder.push('/');
        }
    }
    Ok(false)
}
