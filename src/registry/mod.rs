//! The git store: reads registry trees from git's object database (never the work tree),
//! derives the timeline of main's first-parent history, writes submissions as commits on
//! branches without touching the work tree, merges, and talks to the shared remote.

mod bundle;
pub mod carry;
mod history;
mod init;
mod lazily;
pub mod listing;
mod rawtree;
mod remote;
pub mod rows;
mod state;
mod timeline_file;
mod tree;
mod write;

use std::path::{Path, PathBuf};

use git2::{Oid, Repository};

use crate::model::Sha256;
use crate::trust::{self, Index, Problem, Timeline};

pub use bundle::{init_for_bundle, read_bundle, start_main, write_bundle};
pub use history::{timeline, timeline_from};
pub use init::create;
pub use remote::{Transport, clone, forge_compare_url, is_local};
pub use state::{State, StateStore};
pub use tree::GitTree;
pub use write::{MainUpdate, NewFile, advance_main, commit_files, merge, set_branch, set_ref};

/// What [`Registry::verify_carrying`] found, with the tree it verified (whose blob ids say
/// what to carry into the next verification).
pub struct Verified<'r> {
    pub report: trust::Report,
    pub index: Index,
    pub timeline: Timeline,
    pub tree: GitTree<'r>,
}

/// What [`Registry::verify_kept`]'s first attempt gave: the verification, or the timeline
/// the whole read continues from.
enum Grown<'r> {
    Verified(Box<Verified<'r>>),
    Not(Option<Timeline>),
}

/// The ref cohort reads from: the last main commit it verified.
pub const VERIFIED_REF: &str = "refs/cohort/verified";
pub const MAIN_REF: &str = "refs/heads/main";
pub const REMOTE: &str = "origin";
pub const REMOTE_MAIN_REF: &str = "refs/remotes/origin/main";
/// Prefix of submission branches: `submit/<handle>/<kind>-<id>`.
pub const SUBMIT_PREFIX: &str = "submit/";

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{path} is not a cohort registry clone ({why})")]
    NotARegistry { path: PathBuf, why: String },
    #[error("git: {0}")]
    Git(String),
    #[error("{0}")]
    Refused(String),
    #[error("{path}: already exists in main with other content; registry files are never changed")]
    Conflict { path: String },
    #[error("the remote refused {refname}: {reason}")]
    PushRejected {
        refname: String,
        reason: String,
        non_fast_forward: bool,
    },
    #[error("remote `{remote}`: {why}")]
    Remote { remote: String, why: String },
    #[error("{path}: {}", crate::storage::plain_io(.source))]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Trust(#[from] trust::TrustError),
}

impl RegistryError {
    /// Whether the failure comes from the environment (unreachable remote, missing git).
    pub fn is_environment(&self) -> bool {
        matches!(self, RegistryError::Remote { .. })
    }
}

impl From<git2::Error> for RegistryError {
    fn from(e: git2::Error) -> RegistryError {
        RegistryError::Git(e.message().to_string())
    }
}

pub type Result<T, E = RegistryError> = std::result::Result<T, E>;

/// A registry clone (or the bare shared repository, inside a hook).
pub struct Registry {
    repo: Repository,
    /// How to open more handles on the same objects for worker threads.
    opener: Opener,
}

/// How a repository was opened. A `pre-receive` hook's new objects live in a quarantine
/// directory that only the handle git's environment opened can see, so reads there stay on that
/// handle and one thread; a repository opened by path gets extra handles for worker threads.
#[derive(Debug, Clone)]
pub enum Opener {
    Path(PathBuf),
    Env,
}

/// Object reads are not re-hashed, as git itself does not re-hash them: every object in a
/// clone came through git's `index-pack` or `unpack-objects` (a clone, fetch, push or bundle,
/// each naming every object by hashing its bytes) or was written by cohort, so a read that
/// hashed again would check git's own work, and it cost 40% of a history walk. What signatures
/// bind is the sha256 of the bytes read, which every verification computes.
fn read_objects_as_git_does() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| git2::opts::strict_hash_verification(false));
}

impl Registry {
    pub(crate) fn from_repo(repo: Repository) -> Registry {
        read_objects_as_git_does();
        let opener = Opener::Path(repo.path().to_path_buf());
        Registry { repo, opener }
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("path", &self.repo.path())
            .finish()
    }
}

impl Registry {
    /// Opens the repository at exactly `path`.
    pub fn open(path: &Path) -> Result<Registry> {
        let repo = Repository::open(path).map_err(|e| RegistryError::NotARegistry {
            path: path.to_path_buf(),
            why: e.message().to_string(),
        })?;
        Ok(Registry::from_repo(repo))
    }

    /// Finds the repository containing `from`.
    pub fn discover(from: &Path) -> Result<Registry> {
        let repo = Repository::discover(from).map_err(|_| RegistryError::NotARegistry {
            path: from.to_path_buf(),
            why: "no git repository here or above".into(),
        })?;
        Ok(Registry::from_repo(repo))
    }

    /// Opens the repository git describes through GIT_DIR and friends, including the quarantine
    /// object directory of a `pre-receive` hook. The caller decides this is a hook context.
    pub fn open_from_env() -> Result<Registry> {
        let repo = Repository::open_from_env()?;
        read_objects_as_git_does();
        Ok(Registry {
            repo,
            opener: Opener::Env,
        })
    }

    pub fn repo(&self) -> &Repository {
        &self.repo
    }

    /// The work tree, if this is not a bare repository.
    pub fn workdir(&self) -> Option<&Path> {
        self.repo.workdir()
    }

    /// Where this registry lives, for messages.
    pub fn display_path(&self) -> PathBuf {
        self.repo
            .workdir()
            .unwrap_or_else(|| self.repo.path())
            .to_path_buf()
    }

    pub fn resolve(&self, rev: &str) -> Result<Oid> {
        let obj = self.repo.revparse_single(rev).map_err(|e| {
            RegistryError::Refused(format!("cannot resolve `{rev}`: {}", e.message()))
        })?;
        let commit = obj
            .peel_to_commit()
            .map_err(|_| RegistryError::Refused(format!("`{rev}` is not a commit")))?;
        Ok(commit.id())
    }

    pub fn ref_target(&self, name: &str) -> Option<Oid> {
        self.repo.refname_to_id(name).ok()
    }

    pub fn main(&self) -> Result<Oid> {
        self.ref_target(MAIN_REF)
            .ok_or_else(|| RegistryError::NotARegistry {
                path: self.display_path(),
                why: "it has no main branch".into(),
            })
    }

    /// The commit cohort reads from: the verified ref, or main before anything was verified.
    pub fn read_commit(&self) -> Result<Oid> {
        match self.ref_target(VERIFIED_REF) {
            Some(v) => Ok(v),
            None => self.main(),
        }
    }

    pub fn tree(&self, commit: Oid) -> Result<GitTree<'_>> {
        Ok(GitTree::at(&self.repo, commit)?.opened_by(self.opener.clone()))
    }

    /// The registry id (sha256 of `root/v1.toml`) at `commit`.
    pub fn registry_id(&self, commit: Oid) -> Result<Sha256> {
        // One path lookup, not a walk of the whole tree: every command starts here.
        let tree = self.repo.find_commit(commit)?.tree()?;
        let missing = || RegistryError::NotARegistry {
            path: self.display_path(),
            why: format!("commit {} has no root/v1.toml", short(commit)),
        };
        let entry = tree
            .get_path(Path::new(&crate::model::build::root(1)))
            .map_err(|_| missing())?;
        let blob = self.repo.find_blob(entry.id()).map_err(|_| missing())?;
        Ok(Sha256::of(blob.content()))
    }

    /// The parsed registry at `commit` (records assumed verified; see `trust::verify`). When
    /// each file arrived matters only to verification, so no history is walked here: reads
    /// stay independent of the length of main's history.
    pub fn index_at(&self, commit: Oid) -> Result<(Index, Vec<Problem>)> {
        let tree = self.tree(commit)?;
        Ok(Index::build(&tree, &Timeline::flat())?)
    }

    /// Like `index_at`, with only the root and the files under `folders` (e.g.
    /// `mlcubes/heart/`) that `keep` accepts: what one listing or view needs, at a cost
    /// independent of the rest of the registry.
    pub fn index_of(
        &self,
        commit: Oid,
        folders: &[&str],
        keep: &dyn Fn(&str) -> bool,
    ) -> Result<Index> {
        let mut scope = vec!["root/"];
        scope.extend_from_slice(folders);
        let keep = |p: &str| p.starts_with("root/") || keep(p);
        let tree =
            GitTree::at_folders(&self.repo, commit, &scope, &keep)?.opened_by(self.opener.clone());
        Ok(Index::build(&tree, &Timeline::flat())?.0)
    }

    /// Verifies main's history up to `commit`: additions only, each checked under the state at
    /// the commit that merged it. Every file and signature is checked (a memo in `opts` only
    /// saves recomputing signature cryptography).
    pub fn verify(
        &self,
        commit: Oid,
        opts: &trust::VerifyOptions,
    ) -> Result<(trust::Report, Index, Timeline)> {
        self.verify_from(commit, opts, None)
    }

    /// `verify`, continuing `known`, the timeline of an earlier main (see
    /// [`timeline_from`]): the history walk then costs the new commits only.
    pub fn verify_from(
        &self,
        commit: Oid,
        opts: &trust::VerifyOptions,
        known: Option<Timeline>,
    ) -> Result<(trust::Report, Index, Timeline)> {
        let v = self.verify_carrying(commit, opts, known, trust::Carried::default())?;
        Ok((v.report, v.index, v.timeline))
    }

    /// `verify_from`, taking from `carried` the files an earlier verification read that the
    /// tree still holds unchanged (same path, same blob): the rest is read from git.
    pub fn verify_carrying(
        &self,
        commit: Oid,
        opts: &trust::VerifyOptions,
        known: Option<Timeline>,
        carried: trust::Carried,
    ) -> Result<Verified<'_>> {
        // The history walk is sequential and independent of reading the tree: it runs on its
        // own thread (with its own repository handle) while the tree is read and parsed.
        let Opener::Path(dir) = self.opener.clone() else {
            // A hook's quarantined objects are visible only through the handle git's
            // environment opened: everything on that handle, one thread.
            let tree = self.tree(commit)?;
            let tl = timeline_from(&self.repo, commit, known)?;
            let memo = opts.cache.as_deref();
            let built = Index::build_carrying(&tree, &tl, memo, carried)?;
            let (report, index) = trust::verify_index(built, &tl, opts);
            return Ok(Verified {
                report,
                index,
                timeline: tl,
                tree,
            });
        };
        let (tl, built) = std::thread::scope(|scope| {
            let walk = scope.spawn(move || -> Result<Timeline> {
                timeline_from(&Repository::open(&dir)?, commit, known)
            });
            let built = self.tree(commit).and_then(|tree| {
                let memo = opts.cache.as_deref();
                let built = Index::build_carrying(&tree, &Timeline::flat(), memo, carried)?;
                Ok((built, tree))
            });
            let tl = walk.join().expect("the history walk does not panic");
            (tl, built)
        });
        let (tl, ((mut ix, problems), tree)) = (tl?, built?);
        ix.set_arrivals(&tl);
        let (report, index) = trust::verify_index((ix, problems), &tl, opts);
        Ok(Verified {
            report,
            index,
            timeline: tl,
            tree,
        })
    }

    /// Verifies `commit` with what this machine kept of the main it verified last: `known`,
    /// that main's timeline, and its carry. When `commit` grew from that main, only the files
    /// the commits since add are read from git: with the rest of that main read only where
    /// the checks need it when `lazily` says the main was accepted here and a grown main can
    /// be kept beside it (see [`carry::Kept`]), else with its files from `whole`, the carry of
    /// it whole (see [`carry::load_main`]). Otherwise the whole tree is read, taking from
    /// `carry()` each file whose blob the tree names, and the history walk continues from
    /// whatever timeline the first attempt reached. Every verdict is the one a verification
    /// of every file gives.
    pub fn verify_kept(
        &self,
        commit: Oid,
        opts: &trust::VerifyOptions,
        known: Option<Timeline>,
        lazily: impl FnOnce(Oid) -> Option<carry::Kept>,
        whole: impl FnOnce(Oid) -> Option<trust::Carried>,
        carry: impl FnOnce() -> trust::Carried,
    ) -> Result<Verified<'_>> {
        let base = known
            .as_ref()
            .and_then(|k| k.commits.last())
            .and_then(|c| Oid::from_str(c).ok());
        let mut known = known;
        if let (Some(base), Some(k)) = (base, known.take()) {
            known = match self.verify_grown(base, commit, opts, k, lazily, whole)? {
                Grown::Verified(v) => return Ok(*v),
                Grown::Not(timeline) => timeline,
            };
        }
        self.verify_carrying(commit, opts, known, carry())
    }

    /// Verifies `commit`, a main grown from `base`, whose timeline is `known`: only the files
    /// the commits since add are read from git, the rest of `base` lazily (see
    /// [`Registry::verify_kept`]) or whole from the carry `whole` gives. [`Grown::Not`] when
    /// `commit` is not such a main (`base` is not on its first-parent chain, or a commit
    /// since changes, deletes or malforms something, or adds a path that differs from another
    /// only in case) or the carry is not there: the whole read then reports why.
    fn verify_grown(
        &self,
        base: Oid,
        commit: Oid,
        opts: &trust::VerifyOptions,
        known: Timeline,
        lazily: impl FnOnce(Oid) -> Option<carry::Kept>,
        whole: impl FnOnce(Oid) -> Option<trust::Carried>,
    ) -> Result<Grown<'_>> {
        let base_id = base.to_string();
        let at = known.commits.len();
        if known.commits.last() != Some(&base_id) || !known.problems.is_empty() {
            return Ok(Grown::Not(Some(known)));
        }
        // From here on the walk has reached `commit`: a whole read continues from it.
        let tl = timeline_from(&self.repo, commit, Some(known))?;
        if !tl.problems.is_empty() || tl.commits.get(at - 1) != Some(&base_id) {
            return Ok(Grown::Not(Some(tl)));
        }
        let old = self.repo.find_commit(base)?.tree_id();
        let new = self.repo.find_commit(commit)?.tree_id();
        let Some(added) = history::added_files(&self.repo, old, new)? else {
            return Ok(Grown::Not(Some(tl)));
        };
        let verified = match lazily(base).filter(|k| k.accepted) {
            Some(kept) => self.read_lazily(commit, &tl, at, &added, kept, opts)?,
            None => None,
        };
        let tree = GitTree::of_entries(&self.repo, added).opened_by(self.opener.clone());
        let (mut report, index) = match verified {
            Some(v) => v,
            None => {
                let Some(carried) = whole(base) else {
                    return Ok(Grown::Not(Some(tl)));
                };
                let accepted = carried.accepted.then_some(trust::Accepted { commits: at });
                let Some(ix) = Index::from_carried(carried, &tl) else {
                    return Ok(Grown::Not(Some(tl)));
                };
                let Some(built) = ix.extend_checking(&tree, &tl, opts.cache.as_deref())? else {
                    return Ok(Grown::Not(Some(tl)));
                };
                match accepted {
                    Some(base) => trust::verify_grown(built, &tl, opts, base),
                    None => trust::verify_index(built, &tl, opts),
                }
            }
        };
        report.grown_from = Some(base_id);
        Ok(Grown::Verified(Box::new(Verified {
            report,
            index,
            timeline: tl,
            tree,
        })))
    }

    /// Verifies a proposed change `base..head`: everything `head` adds relative to `base` is
    /// checked as if merged in one new commit on top of `base`'s history.
    pub fn verify_range(
        &self,
        base: Oid,
        head: Oid,
        opts: &trust::VerifyOptions,
    ) -> Result<(trust::Report, Index)> {
        let tree = self.tree(head)?;
        let mut tl = timeline(&self.repo, base)?;
        let new_index = tl.commits.len();
        tl.commits.push(head.to_string());
        let base_tree = self.repo.find_commit(base)?.tree()?;
        let head_tree = self.repo.find_commit(head)?.tree()?;
        history::apply_diff(
            &self.repo,
            &base_tree,
            &head_tree,
            new_index,
            &head.to_string(),
            &mut tl,
        )?;
        let (report, ix) = trust::verify(&tree, &tl, opts)?;
        Ok((report, ix))
    }

    /// Local branch names under `submit/`.
    pub fn submission_branches(&self, remote: bool) -> Result<Vec<(String, Oid)>> {
        let prefix = if remote {
            "refs/remotes/origin/submit/"
        } else {
            "refs/heads/submit/"
        };
        let mut out = Vec::new();
        for r in self.repo.references_glob(&format!("{prefix}*"))? {
            let r = r?;
            let (Ok(name), Some(oid)) = (r.name(), r.target()) else {
                continue;
            };
            let short = name
                .strip_prefix(if remote {
                    "refs/remotes/origin/"
                } else {
                    "refs/heads/"
                })
                .unwrap_or(name)
                .to_string();
            out.push((short, oid));
        }
        Ok(out)
    }

    /// A submission branch's tip: the local branch, else the remote-tracking one.
    pub fn branch_tip(&self, branch: &str) -> Option<Oid> {
        self.ref_target(&format!("refs/heads/{branch}"))
            .or_else(|| self.ref_target(&format!("refs/remotes/origin/{branch}")))
    }

    /// Files `head` adds relative to `base` (paths and bytes), and paths it changes or deletes.
    pub fn changes(&self, base: Oid, head: Oid) -> Result<history::Changes> {
        history::changes(&self.repo, base, head)
    }
}

/// The first-parent chain from `head` back to its root commit, newest first: main's history.
/// Objects are read without re-hashing (see `read_objects_as_git_does`), so a store written by
/// hand can name a commit as its own ancestor; the chain then ends in an error rather than
/// going round for ever. Every first-parent walk goes through here for that reason. A parent
/// that cannot be read is an error too.
pub fn first_parents(repo: &Repository, head: Oid) -> FirstParents<'_> {
    FirstParents {
        repo,
        next: Some(head),
        seen: std::collections::HashSet::new(),
    }
}

/// See [`first_parents`].
pub struct FirstParents<'r> {
    repo: &'r Repository,
    next: Option<Oid>,
    seen: std::collections::HashSet<Oid>,
}

impl<'r> Iterator for FirstParents<'r> {
    type Item = Result<git2::Commit<'r>>;

    fn next(&mut self) -> Option<Self::Item> {
        let id = self.next.take()?;
        if !self.seen.insert(id) {
            return Some(Err(RegistryError::Refused(format!(
                "commit {id} is its own ancestor: the object store is corrupt"
            ))));
        }
        let commit = match self.repo.find_commit(id) {
            Ok(c) => c,
            Err(e) => return Some(Err(e.into())),
        };
        if commit.parent_count() > 0 {
            match commit.parent_id(0) {
                Ok(p) => self.next = Some(p),
                Err(e) => return Some(Err(e.into())),
            }
        }
        Some(Ok(commit))
    }
}

/// Whether `ancestor` is on the first-parent chain of `head` (or is `head`): main's history
/// is its first-parent chain, and a commit reached only through a second parent was never
/// main. A chain that comes round to itself does not hold it.
pub fn on_first_parent_chain(repo: &Repository, head: Oid, ancestor: Oid) -> Result<bool> {
    for commit in first_parents(repo, head) {
        match commit {
            Ok(c) if c.id() == ancestor => return Ok(true),
            Ok(_) => {}
            Err(RegistryError::Refused(_)) => return Ok(false),
            Err(e) => return Err(e),
        }
    }
    Ok(false)
}

pub fn short(oid: Oid) -> String {
    oid.to_string()[..10].to_string()
}
