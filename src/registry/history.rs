//! main's first-parent history as a timeline: which commit introduced each file, and every
//! commit that changed or deleted a file instead of only adding (history is append-only).

use std::collections::HashMap;

use git2::{Delta, DiffOptions, Oid, Repository, Tree};

use crate::model::{RecordPath, classify};
use crate::trust::{Problem, Rule, Timeline};

use super::Result;

/// Walks the first-parent chain from the root commit to `head`.
pub fn timeline(repo: &Repository, head: Oid) -> Result<Timeline> {
    let mut chain = Vec::new();
    let mut cur = repo.find_commit(head)?;
    loop {
        chain.push(cur.id());
        match cur.parent(0) {
            Ok(p) => cur = p,
            Err(_) => break,
        }
    }
    chain.reverse();
    let mut tl = Timeline {
        commits: chain.iter().map(|o| o.to_string()).collect(),
        intro: HashMap::new(),
        problems: Vec::new(),
    };
    let mut prev: Option<Tree> = None;
    for (i, oid) in chain.iter().enumerate() {
        let tree = repo.find_commit(*oid)?.tree()?;
        match &prev {
            None => {
                tree.walk(git2::TreeWalkMode::PreOrder, |dir, e| {
                    if e.kind() != Some(git2::ObjectType::Tree)
                        && let Ok(n) = e.name()
                    {
                        tl.intro.insert(format!("{dir}{n}"), i);
                    }
                    git2::TreeWalkResult::Ok
                })?;
            }
            Some(p) => apply_diff(repo, p, &tree, i, &oid.to_string(), &mut tl)?,
        }
        prev = Some(tree);
    }
    Ok(tl)
}

/// Records what `new` adds over `old` as introduced at `index`, and reports edits and deletions.
pub fn apply_diff(
    repo: &Repository,
    old: &Tree,
    new: &Tree,
    index: usize,
    commit: &str,
    tl: &mut Timeline,
) -> Result<()> {
    let mut opts = DiffOptions::new();
    opts.include_typechange(true);
    let diff = repo.diff_tree_to_tree(Some(old), Some(new), Some(&mut opts))?;
    for d in diff.deltas() {
        let path = d
            .new_file()
            .path()
            .or_else(|| d.old_file().path())
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let meta = matches!(classify(&path), Ok(RecordPath::MetaFile));
        let problem = |msg: &str| Problem {
            path: path.clone(),
            rule: Rule::History,
            message: msg.to_string(),
            commit: Some(commit.to_string()),
        };
        match d.status() {
            Delta::Added => {
                tl.intro.insert(path.clone(), index);
            }
            Delta::Modified | Delta::Typechange if meta => {
                tl.intro.insert(path.clone(), index);
            }
            Delta::Deleted if meta => {
                tl.intro.remove(&path);
            }
            Delta::Modified | Delta::Typechange => {
                tl.problems.push(problem(
                    "was changed after it was merged; registry files are append-only",
                ));
                tl.intro.insert(path.clone(), index);
            }
            Delta::Deleted => {
                tl.problems.push(problem(
                    "was deleted after it was merged; registry files are append-only",
                ));
                tl.intro.remove(&path);
            }
            _ => {}
        }
    }
    Ok(())
}

/// What one commit adds relative to another.
#[derive(Debug, Default)]
pub struct Changes {
    pub added: Vec<String>,
    /// Paths changed or deleted (refused for anything but meta files).
    pub changed: Vec<String>,
}

pub fn changes(repo: &Repository, base: Oid, head: Oid) -> Result<Changes> {
    let old = repo.find_commit(base)?.tree()?;
    let new = repo.find_commit(head)?.tree()?;
    let diff = repo.diff_tree_to_tree(Some(&old), Some(&new), None)?;
    let mut out = Changes::default();
    for d in diff.deltas() {
        let path = d
            .new_file()
            .path()
            .or_else(|| d.old_file().path())
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        match d.status() {
            Delta::Added => out.added.push(path),
            _ => out.changed.push(path),
        }
    }
    Ok(out)
}
