//! main's first-parent history as a timeline: which commit introduced each file, and every
//! commit that changed or deleted a file instead of only adding (history is append-only).

use std::collections::HashMap;
use std::rc::Rc;

use git2::{Oid, Repository, Tree};

use crate::model::{RecordPath, classify};
use crate::trust::{Code, Problem, Rule, Timeline};

use super::Result;
use super::rawtree::{Entry, RawTree, check_depth};

/// Walks the first-parent chain from the root commit to `head`.
pub fn timeline(repo: &Repository, head: Oid) -> Result<Timeline> {
    timeline_from(repo, head, None)
}

/// Like [`timeline`], continuing `known` (the timeline of a commit it was built for, whose
/// last commit is that commit) when that commit is on `head`'s first-parent chain: then only
/// the commits after it are walked. A commit id names its whole history, so the result is the
/// full walk's; `known` with problems, or off the chain, is not used.
pub fn timeline_from(repo: &Repository, head: Oid, known: Option<Timeline>) -> Result<Timeline> {
    let mut known = known.filter(|k| k.problems.is_empty());
    let known_head = known
        .as_ref()
        .and_then(|k| k.commits.last())
        .and_then(|c| Oid::from_str(c).ok());
    let mut chain = Vec::new();
    let mut base = None;
    for commit in super::first_parents(repo, head) {
        let id = commit?.id();
        if Some(id) == known_head {
            base = known.take();
            break;
        }
        chain.push(id);
    }
    chain.reverse();
    let (mut tl, mut prev) = match (base, known_head) {
        (Some(k), Some(h)) => (k, Some(repo.find_commit(h)?.tree_id())),
        _ => (Timeline::default(), None),
    };
    let offset = tl.commits.len();
    tl.commits.extend(chain.iter().map(|o| o.to_string()));
    let mut trees = Trees::new(repo)?;
    for (j, oid) in chain.iter().enumerate() {
        let i = offset + j;
        let tree = repo.find_commit(*oid)?.tree_id();
        match prev {
            None => {
                let (changes, bad) = diff_trees(None, tree, &mut trees)?;
                for (path, _) in changes {
                    tl.intro.insert(path, i);
                }
                record_malformed(bad, &oid.to_string(), &mut tl);
            }
            Some(p) => {
                let (changes, bad) = diff_trees(Some(p), tree, &mut trees)?;
                record_changes(changes, i, &oid.to_string(), &mut tl);
                record_malformed(bad, &oid.to_string(), &mut tl);
            }
        }
        prev = Some(tree);
        trees.next_commit();
    }
    Ok(tl)
}

/// Trees read while diffing one commit, kept for the next: what a commit's diff reads as new
/// is what the next one reads as old, so a large folder's tree (thousands of entries) is read
/// once per commit instead of twice.
struct Trees<'r> {
    odb: git2::Odb<'r>,
    prev: HashMap<Oid, Rc<RawTree>>,
    cur: HashMap<Oid, Rc<RawTree>>,
}

impl<'r> Trees<'r> {
    fn new(repo: &'r Repository) -> Result<Trees<'r>> {
        Ok(Trees {
            odb: repo.odb()?,
            prev: HashMap::new(),
            cur: HashMap::new(),
        })
    }
    fn get(&mut self, id: Oid) -> Result<Rc<RawTree>> {
        if let Some(t) = self.cur.get(&id).or_else(|| self.prev.get(&id)) {
            let t = t.clone();
            self.cur.insert(id, t.clone());
            return Ok(t);
        }
        let t = Rc::new(RawTree::read(&self.odb, id)?);
        self.cur.insert(id, t.clone());
        Ok(t)
    }
    fn next_commit(&mut self) {
        self.prev = std::mem::take(&mut self.cur);
    }
}

/// How one path differs between two trees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Added,
    Modified,
    Deleted,
}

/// The files that differ between `old` and `new` (`old` = None: everything in `new` is added).
/// Subtrees with equal ids are skipped without being read, so a merge that adds a few files
/// costs the trees on their paths, not the size of the registry.
pub fn tree_changes(
    repo: &Repository,
    old: Option<&Tree>,
    new: &Tree,
) -> Result<Vec<(String, Change)>> {
    let mut trees = Trees::new(repo)?;
    Ok(diff_trees(old.map(Tree::id), new.id(), &mut trees)?.0)
}

/// Folders (with why) whose tree object git never writes, among the new trees a diff read.
type Malformed = Vec<(String, String)>;

/// The changes, and the malformed folders among the trees of `new` the diff read (every tree
/// that differs from `old`: each commit's new trees are checked as the walk reaches it).
fn diff_trees(
    old: Option<Oid>,
    new: Oid,
    trees: &mut Trees,
) -> Result<(Vec<(String, Change)>, Malformed)> {
    let mut d = Diff::default();
    let old = old.map(|o| trees.get(o)).transpose()?;
    let new = trees.get(new)?;
    d.trees(trees, old.as_deref(), &new, "")?;
    Ok((d.out, d.bad))
}

/// The files tree `new` adds to tree `old`, with their modes and blob ids, when that is all
/// it does: `None` when a file is changed or deleted, a folder `new` adds or changes is
/// malformed, or a name it adds is not UTF-8 (the full read of the tree reports each). Only
/// the trees on the changed paths are read: a verification of a main grown by a few commits,
/// beside the files of the main it grew from, reads these alone.
pub fn added_files(
    repo: &Repository,
    old: Oid,
    new: Oid,
) -> Result<Option<Vec<crate::trust::TreeEntry>>> {
    use crate::trust::{EntryMode, TreeEntry};
    let mut trees = Trees::new(repo)?;
    let mut d = Diff::default();
    let (o, n) = (trees.get(old)?, trees.get(new)?);
    d.trees(&mut trees, Some(&o), &n, "")?;
    if !d.bad.is_empty() {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(d.out.len());
    for ((path, change), (mode, blob, utf8)) in d.out.into_iter().zip(d.files) {
        if change != Change::Added || !utf8 {
            return Ok(None);
        }
        out.push(TreeEntry {
            path,
            mode: EntryMode::of_git(mode),
            blob: Some(blob),
        });
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(Some(out))
}

/// A commit of main's history holding a tree git never writes: readers disagree on it.
fn record_malformed(bad: Malformed, commit: &str, tl: &mut Timeline) {
    for (folder, why) in bad {
        note(
            tl,
            Problem {
                path: if folder.is_empty() {
                    "/".into()
                } else {
                    folder
                },
                rule: Rule::DefaultDeny,
                code: Code::MalformedTree,
                message: why,
                commit: Some(commit.to_string()),
            },
        );
    }
}

/// History problems listed at most: commits that add and delete the same folder over and
/// over cost a push little, and would otherwise make a report (and the hook's memory) grow
/// with commits x files. The verdict is a failure either way.
const MAX_HISTORY_PROBLEMS: usize = 10_000;

/// Records a history problem, up to [`MAX_HISTORY_PROBLEMS`] and then one saying more exist.
fn note(tl: &mut Timeline, p: Problem) {
    match tl.problems.len() {
        n if n < MAX_HISTORY_PROBLEMS => tl.problems.push(p),
        MAX_HISTORY_PROBLEMS => tl.problems.push(Problem {
            path: "/".into(),
            message: format!(
                "main's history holds more than {MAX_HISTORY_PROBLEMS} problems; the rest are not listed"
            ),
            ..p
        }),
        _ => {}
    }
}

/// One tree diff's findings.
#[derive(Default)]
struct Diff {
    out: Vec<(String, Change)>,
    /// For each of `out`'s files as it is in the new tree (as in the old one, deleted): its
    /// mode, its blob id, and whether its name is UTF-8 (a name that is not reads lossily in
    /// `out`).
    files: Vec<(u32, [u8; 20], bool)>,
    bad: Malformed,
}

fn entry_name(t: &RawTree, e: &Entry, dir: &str) -> String {
    // Non-UTF-8 names are refused by the tree reader; here they only need a stable spelling.
    format!("{dir}{}", String::from_utf8_lossy(t.name(e)))
}

impl Diff {
    fn push(&mut self, t: &RawTree, e: &Entry, path: String, change: Change) {
        let id = t.id_bytes(e).try_into().unwrap_or([0; 20]);
        let utf8 = std::str::from_utf8(t.name(e)).is_ok();
        self.files.push((e.mode, id, utf8));
        self.out.push((path, change));
    }

    /// Every file under entry `e` of `t` (a file or a subtree), reported as `change`; the
    /// malformed folders among those added are reported too.
    fn all_files(
        &mut self,
        trees: &mut Trees,
        t: &RawTree,
        e: &Entry,
        dir: &str,
        change: Change,
    ) -> Result<()> {
        let path = entry_name(t, e, dir);
        if !e.is_tree() {
            self.push(t, e, path, change);
            return Ok(());
        }
        let dir = format!("{path}/");
        check_depth(&dir)?;
        let sub = trees.get(t.id(e))?;
        if change == Change::Added
            && let Some(why) = sub.malformed()
        {
            self.bad.push((dir.clone(), why.to_string()));
        }
        for child in &sub.entries {
            self.all_files(trees, &sub, child, &dir, change)?;
        }
        Ok(())
    }

    /// Walks both trees' entries together in git's order (a merge join): equal subtrees are
    /// skipped by id, and no entry is looked up by name. An entry that turns from file to
    /// folder has two names in that order (`x`, `x/`): it is deleted and added.
    fn trees(
        &mut self,
        trees: &mut Trees,
        old: Option<&RawTree>,
        new: &RawTree,
        dir: &str,
    ) -> Result<()> {
        check_depth(dir)?;
        let (head, tail) = old.map_or((0, 0), |o| o.shared_ends(new));
        let why = match old {
            Some(o) => new.malformed_beside(o, (head, tail)),
            None => new.malformed(),
        };
        if let Some(why) = why {
            self.bad.push((dir.to_string(), why.to_string()));
        }
        let empty = [];
        let olds = old.map_or(&empty[..], |o| &o.entries[..]);
        let olds = &olds[head..olds.len() - tail];
        let news = &new.entries[head..new.entries.len() - tail];
        let (mut i, mut j) = (0, 0);
        while i < olds.len() || j < news.len() {
            let order = match (olds.get(i), news.get(j)) {
                (Some(o), Some(n)) => old.expect("entries come from a tree").order(o, new, n),
                (Some(_), None) => std::cmp::Ordering::Less,
                _ => std::cmp::Ordering::Greater,
            };
            match order {
                std::cmp::Ordering::Less => {
                    let ot = old.expect("entries come from a tree");
                    self.all_files(trees, ot, &olds[i], dir, Change::Deleted)?;
                    i += 1;
                }
                std::cmp::Ordering::Greater => {
                    self.all_files(trees, new, &news[j], dir, Change::Added)?;
                    j += 1;
                }
                std::cmp::Ordering::Equal => {
                    let ot = old.expect("entries come from a tree");
                    let (o, n) = (&olds[i], &news[j]);
                    if ot.id_bytes(o) != new.id_bytes(n) || o.mode != n.mode {
                        if n.is_tree() {
                            let (a, b) = (trees.get(ot.id(o))?, trees.get(new.id(n))?);
                            let sub = format!("{}/", entry_name(new, n, dir));
                            self.trees(trees, Some(&a), &b, &sub)?;
                        } else {
                            self.push(new, n, entry_name(new, n, dir), Change::Modified);
                        }
                    }
                    i += 1;
                    j += 1;
                }
            }
        }
        Ok(())
    }
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
    record_changes(tree_changes(repo, Some(old), new)?, index, commit, tl);
    Ok(())
}

fn record_changes(changes: Vec<(String, Change)>, index: usize, commit: &str, tl: &mut Timeline) {
    for (path, change) in changes {
        let meta = || matches!(classify(&path), Ok(RecordPath::MetaFile));
        let problem = |msg: &str| Problem {
            path: path.clone(),
            rule: Rule::History,
            code: Code::Rewritten,
            message: msg.to_string(),
            commit: Some(commit.to_string()),
        };
        match change {
            Change::Added => {
                tl.intro.insert(path, index);
            }
            Change::Modified if meta() => {
                tl.intro.insert(path, index);
            }
            Change::Deleted if meta() => {
                tl.intro.remove(&path);
            }
            Change::Modified => {
                note(
                    tl,
                    problem("was changed after it was merged; registry files are append-only"),
                );
                tl.intro.insert(path, index);
            }
            Change::Deleted => {
                note(
                    tl,
                    problem("was deleted after it was merged; registry files are append-only"),
                );
                tl.intro.remove(&path);
            }
        }
    }
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
    let mut out = Changes::default();
    for (path, change) in tree_changes(repo, Some(&old), &new)? {
        match change {
            Change::Added => out.added.push(path),
            _ => out.changed.push(path),
        }
    }
    Ok(out)
}

#[cfg(test)]
#[path = "history_tests.rs"]
mod history_tests;
