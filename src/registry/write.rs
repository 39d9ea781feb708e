//! Writing to the registry without touching the user's work: new files become blobs, trees and
//! a commit on a branch through the object database; main moves only by compare-and-swap, and
//! the work tree follows only when main is checked out and clean.

use std::collections::BTreeMap;

use git2::{Oid, Repository, Signature, Status, StatusOptions, Tree, build::CheckoutBuilder};

use super::{MAIN_REF, RegistryError, Result, history};

/// A file to add to the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFile {
    pub path: String,
    pub bytes: Vec<u8>,
}

impl NewFile {
    pub fn new(path: impl Into<String>, bytes: impl Into<Vec<u8>>) -> NewFile {
        NewFile {
            path: path.into(),
            bytes: bytes.into(),
        }
    }
}

/// What happened to the local `main` branch and work tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MainUpdate {
    /// main moved and the checked-out work tree was updated.
    MovedWithWorkTree,
    /// main moved; it is not checked out, so no file changed.
    Moved,
    /// main was already there.
    Unchanged,
    /// main was left alone because moving it would touch the user's work.
    Kept { reason: String },
}

fn signature(repo: &Repository, who: &str) -> Result<Signature<'static>> {
    if let Ok(sig) = repo.signature() {
        return Ok(sig.to_owned());
    }
    Ok(Signature::now(who, &format!("{who}@cohort.invalid"))?)
}

/// Adds `files` under `base` (a tree), creating only the subtrees on their paths. A path that
/// exists with other bytes is a conflict; with the same bytes it is left as is.
fn build_tree(
    repo: &Repository,
    base: Option<&Tree>,
    files: &BTreeMap<&str, Oid>,
    prefix: &str,
) -> Result<Oid> {
    let mut tb = repo.treebuilder(base)?;
    let mut dirs: BTreeMap<&str, BTreeMap<&str, Oid>> = BTreeMap::new();
    for (path, oid) in files {
        match path.split_once('/') {
            Some((dir, rest)) => {
                dirs.entry(dir).or_default().insert(rest, *oid);
            }
            None => {
                if let Some(existing) = tb.get(path)? {
                    if existing.id() != *oid {
                        return Err(RegistryError::Conflict {
                            path: format!("{prefix}{path}"),
                        });
                    }
                    continue;
                }
                tb.insert(path, *oid, 0o100644)?;
            }
        }
    }
    for (dir, sub) in dirs {
        let existing = match tb.get(dir)? {
            Some(e) if e.kind() == Some(git2::ObjectType::Tree) => Some(repo.find_tree(e.id())?),
            Some(_) => {
                return Err(RegistryError::Conflict {
                    path: format!("{prefix}{dir}"),
                });
            }
            None => None,
        };
        let oid = build_tree(repo, existing.as_ref(), &sub, &format!("{prefix}{dir}/"))?;
        tb.insert(dir, oid, 0o040000)?;
    }
    Ok(tb.write()?)
}

/// `base` plus `files`, written to the object database.
pub(super) fn tree_with_files(
    repo: &Repository,
    base: Option<&Tree>,
    files: &[NewFile],
) -> Result<Oid> {
    let mut oids = BTreeMap::new();
    for f in files {
        oids.insert(f.path.as_str(), repo.blob(&f.bytes)?);
    }
    build_tree(repo, base, &oids, "")
}

/// A new commit with `parents` whose tree is `base` plus `files`.
pub(super) fn commit_tree(
    repo: &Repository,
    tree: Oid,
    parents: &[Oid],
    message: &str,
    who: &str,
) -> Result<Oid> {
    let tree = repo.find_tree(tree)?;
    let parents: Vec<git2::Commit> = parents
        .iter()
        .map(|p| repo.find_commit(*p))
        .collect::<Result<_, _>>()?;
    let refs: Vec<&git2::Commit> = parents.iter().collect();
    let sig = signature(repo, who)?;
    Ok(repo.commit(None, &sig, &sig, message, &tree, &refs)?)
}

/// A new commit on top of `parent` whose tree adds `files`.
pub fn commit_files(
    repo: &Repository,
    parent: Oid,
    files: &[NewFile],
    message: &str,
    who: &str,
) -> Result<Oid> {
    let base = repo.find_commit(parent)?.tree()?;
    let tree = tree_with_files(repo, Some(&base), files)?;
    commit_tree(repo, tree, &[parent], message, who)
}

/// A merge commit (no fast-forward) of `tip` into `main`: main's tree plus everything `tip`
/// adds since their merge base. Refuses tips that change or delete files, and conflicts.
pub fn merge(repo: &Repository, main: Oid, tip: Oid, message: &str, who: &str) -> Result<Oid> {
    let base = repo.merge_base(main, tip)?;
    let changes = history::changes(repo, base, tip)?;
    if let Some(p) = changes.changed.first() {
        return Err(RegistryError::Refused(format!(
            "{p}: the submission changes or deletes a file; submissions only add files"
        )));
    }
    let tip_tree = repo.find_commit(tip)?.tree()?;
    let mut oids = BTreeMap::new();
    for p in &changes.added {
        let entry = tip_tree.get_path(std::path::Path::new(p))?;
        oids.insert(p.as_str(), entry.id());
    }
    let main_tree = repo.find_commit(main)?.tree()?;
    let tree = build_tree(repo, Some(&main_tree), &oids, "")?;
    commit_tree(repo, tree, &[main, tip], message, who)
}

/// Points `refs/heads/<branch>` at `oid` (creating or replacing it).
pub fn set_branch(repo: &Repository, branch: &str, oid: Oid, log: &str) -> Result<()> {
    repo.reference(&format!("refs/heads/{branch}"), oid, true, log)?;
    Ok(())
}

/// Points a cohort-owned or remote-tracking ref at `oid`.
pub fn set_ref(repo: &Repository, name: &str, oid: Oid, log: &str) -> Result<()> {
    repo.reference(name, oid, true, log)?;
    Ok(())
}

fn main_checked_out(repo: &Repository) -> bool {
    if repo.is_bare() {
        return false;
    }
    match repo.find_reference("HEAD") {
        Ok(h) => h.symbolic_target().ok().flatten() == Some(MAIN_REF),
        Err(_) => false,
    }
}

/// Whether the work tree or index has changes (untracked files do not count; a checkout that
/// would overwrite one fails safely instead).
fn dirty(repo: &Repository) -> Result<Option<String>> {
    let mut opts = StatusOptions::new();
    opts.include_untracked(false).include_ignored(false);
    let statuses = repo.statuses(Some(&mut opts))?;
    let first = statuses
        .iter()
        .find(|s| s.status() != Status::CURRENT && !s.status().contains(Status::IGNORED));
    Ok(first.map(|s| s.path().unwrap_or("?").to_string()))
}

/// Moves local main from `expected` to `new` if nobody moved it meanwhile, updating the work
/// tree only when main is checked out and clean.
pub fn advance_main(
    repo: &Repository,
    expected: Option<Oid>,
    new: Oid,
    log: &str,
) -> Result<MainUpdate> {
    let current = repo.refname_to_id(MAIN_REF).ok();
    if current == Some(new) {
        return Ok(MainUpdate::Unchanged);
    }
    if current != expected {
        return Ok(MainUpdate::Kept {
            reason: "main moved while cohort was working; run `cohort registry sync`".into(),
        });
    }
    if let Some(cur) = current
        && !repo.graph_descendant_of(new, cur)?
    {
        return Ok(MainUpdate::Kept {
            reason: "your main has commits the new main does not contain".into(),
        });
    }
    if !main_checked_out(repo) {
        match current {
            Some(cur) => repo.reference_matching(MAIN_REF, new, true, cur, log)?,
            None => repo.reference(MAIN_REF, new, false, log)?,
        };
        return Ok(MainUpdate::Moved);
    }
    if let Some(path) = dirty(repo)? {
        return Ok(MainUpdate::Kept {
            reason: format!("main is checked out with uncommitted changes ({path})"),
        });
    }
    let tree = repo.find_commit(new)?.tree()?;
    let mut co = CheckoutBuilder::new();
    co.safe();
    if let Err(e) = repo.checkout_tree(tree.as_object(), Some(&mut co)) {
        return Ok(MainUpdate::Kept {
            reason: format!(
                "updating the work tree would overwrite your files ({})",
                e.message()
            ),
        });
    }
    match current {
        Some(cur) => repo.reference_matching(MAIN_REF, new, true, cur, log)?,
        None => repo.reference(MAIN_REF, new, false, log)?,
    };
    Ok(MainUpdate::MovedWithWorkTree)
}
