//! Registry-level operations shared by every workflow step: open a clone and check its pin,
//! verify (every signature, through this machine's memo) and record the result, sync with the
//! remote (refusing rollbacks), land commits on main with push-and-retry, approve, reject and
//! merge submissions, push pending branches, and report the state of submissions.

use git2::Oid;

use crate::model::Sha256;
use crate::registry::{
    self, MAIN_REF, MainUpdate, NewFile, REMOTE_MAIN_REF, Registry, RegistryError, State,
    StateStore, VERIFIED_REF,
};
use crate::trust::{Code, Problem, Report, Rule, Signer, VerifyOptions};

use super::submission::sign_all;
use super::{Ctx, Result, WorkflowError};

/// How many times a push that lost a race is retried (fetch, re-merge, re-verify).
const PUSH_RETRIES: usize = 5;

/// An open registry clone with its id.
pub struct Opened {
    pub reg: Registry,
    pub id: Sha256,
}

impl Opened {
    /// cohort's view of main: the verified ref.
    pub fn view(&self) -> Result<Oid> {
        Ok(self.reg.read_commit()?)
    }
    pub fn index(&self) -> Result<crate::trust::Index> {
        Ok(self.reg.index_at(self.view()?)?.0)
    }
    /// The registry as `index` sees it, restricted to the files under `folders` (and the
    /// root): for listings and views that need one kind or one entity.
    pub fn index_of(&self, folders: &[&str]) -> Result<crate::trust::Index> {
        Ok(self.reg.index_of(self.view()?, folders, &|_| true)?)
    }
    /// `index_of`, keeping only the files `keep` accepts (a listing of records, not assets).
    pub fn index_of_files(
        &self,
        folders: &[&str],
        keep: &dyn Fn(&str) -> bool,
    ) -> Result<crate::trust::Index> {
        Ok(self.reg.index_of(self.view()?, folders, keep)?)
    }
    /// The records (no other files, no bytes) under `folders` and the root that `keep`
    /// accepts, for listings: from the listing index of the verified commit when there is one
    /// for exactly that commit, else from git, rebuilding the listing index on the way.
    pub fn listing(
        &self,
        ctx: &Ctx,
        folders: &[&str],
        keep: &dyn Fn(&str) -> bool,
    ) -> Result<crate::trust::Index> {
        let store = StateStore::new(ctx.home);
        let view = self.view()?;
        if let Some(ix) = store.listing(&self.id, view, folders, keep) {
            return Ok(ix);
        }
        if self.reg.ref_target(VERIFIED_REF) != Some(view) {
            // Nothing verified on this clone yet: no index is built for an unverified commit.
            return self.index_of_files(folders, keep);
        }
        let ix = self.reg.index_at(view)?.0;
        // The index only saves time: failing to save it changes nothing.
        let _ = store.save_listing(&self.id, view, &ix, None);
        Ok(ix)
    }
}

/// Opens the registry at `path` (or the one containing it). A clone whose verified ref is
/// missing is verified first, so reads always come from a verified commit.
pub fn open(ctx: &Ctx, reg: Registry) -> Result<Opened> {
    let main = reg.read_commit()?;
    let id = reg.registry_id(main)?;
    let opened = Opened { reg, id };
    if opened.reg.ref_target(VERIFIED_REF).is_none() {
        let outcome = verify_commit(ctx, &opened, main, true)?;
        if !outcome.report.is_clean() || outcome.rollback.is_some() {
            return Err(problems_error(
                format!(
                    "{} does not verify; fix it before using it",
                    opened.reg.display_path().display()
                ),
                outcome.refusals(),
            ));
        }
    }
    Ok(opened)
}

pub fn problems_error(summary: String, problems: Vec<Problem>) -> WorkflowError {
    WorkflowError::Problems { summary, problems }
}

/// The result of verifying one commit.
pub struct VerifyOutcome {
    /// The verdict on the commit alone (independent of what this machine verified before).
    pub report: Report,
    pub commit: Oid,
    /// Whether the state file now records this commit.
    pub recorded: bool,
    /// Set when the commit does not have the main this machine verified last on its
    /// first-parent chain (a rollback or a rewrite).
    pub rollback: Option<Problem>,
    /// Warnings (records only newer trust rules refuse) on files that arrived after the main
    /// this machine verified last: a change, which the newer rules refuse.
    pub new_warnings: Vec<Problem>,
}

impl VerifyOutcome {
    /// Whether this commit may replace the main this machine verified before.
    pub fn acceptable_as_new_main(&self) -> bool {
        self.report.is_clean() && self.rollback.is_none() && self.new_warnings.is_empty()
    }

    /// Every reason not to accept it as the new main.
    pub fn refusals(&self) -> Vec<Problem> {
        let mut all = self.report.problems.clone();
        all.extend(self.rollback.clone());
        all.extend(self.new_warnings.iter().cloned().map(|mut p| {
            p.message = format!("{} (a new record: refused)", p.message);
            p
        }));
        all
    }
}

/// The rollback problem when the last verified main is not on `chain` (first-parent commits
/// of the new main, oldest first), else the index in `chain` after which files are new.
fn against_state(
    state: Option<&State>,
    commit: Oid,
    chain: &[String],
) -> (Option<Problem>, Option<usize>) {
    let Some(st) = state else {
        return (None, None);
    };
    if let Some(i) = chain.iter().position(|c| c == &st.verified_commit) {
        return (None, Some(i));
    }
    let problem = Problem {
        path: "main".into(),
        rule: Rule::Rollback,
        code: Code::NotFirstParentDescendant,
        message: format!(
            "commit {} does not descend from {} (the main this machine verified last) along its first-parent history: history was rewritten or rolled back",
            registry::short(commit),
            &st.verified_commit[..st.verified_commit.len().min(10)]
        ),
        commit: Some(commit.to_string()),
    };
    (Some(problem), None)
}

/// Warnings on files that arrived after commit index `after` of `chain`.
pub fn warnings_after(report: &Report, chain: &[String], after: usize) -> Vec<Problem> {
    let old: std::collections::HashSet<&str> = chain
        .iter()
        .take(after.saturating_add(1))
        .map(String::as_str)
        .collect();
    report
        .warnings
        .iter()
        .filter(|w| w.commit.as_deref().is_none_or(|c| !old.contains(c)))
        .cloned()
        .collect()
}

/// Verifies main's history up to `commit`: every file and signature, with this machine's
/// memo of signature cryptography unless `ctx.full`. With `record`, a commit acceptable as
/// the new main is recorded as the newest verified shared main.
pub fn verify_commit(
    ctx: &Ctx,
    opened: &Opened,
    commit: Oid,
    record: bool,
) -> Result<VerifyOutcome> {
    let store = StateStore::new(ctx.home);
    let state = if ctx.full {
        None
    } else {
        store.load(&opened.id)?
    };
    let memo = (!ctx.full).then(|| store.memo(&opened.id));
    let task = ctx.reporter.begin("verify", None);
    let opts = VerifyOptions {
        expected_registry: Some(opened.id.clone()),
        cache: memo.clone(),
    };
    // The timeline of the main verified last here: the history walk then covers new commits.
    let known = (!ctx.full).then(|| store.timeline(&opened.id)).flatten();
    let loaded = known.as_ref().map(|k| k.commits.len());
    // With the carry of that main whole, only what the commits since add is read from git;
    // else each carried file whose blob the tree names is taken.
    let verified = opened.reg.verify_kept(
        commit,
        &opts,
        known,
        // Read lazily only when the listing can grow by what the main adds, as the carry
        // can (its rows are written from the records of the new files alone).
        |base| {
            store
                .kept(&opened.id, base)
                .filter(|_| !record || store.listing_can_grow(&opened.id, base))
        },
        |base| store.carry_main(&opened.id, base),
        || {
            if ctx.full {
                Default::default()
            } else {
                store.carry(&opened.id)
            }
        },
    )?;
    let (report, tl) = (verified.report, verified.timeline);
    ctx.reporter.end(task, report.is_clean());
    if let Some(memo) = &memo {
        // The memo only saves time: failing to save it changes nothing.
        let _ = store.save_memo(&opened.id, memo);
    }
    let (rollback, after) = against_state(state.as_ref(), commit, &tl.commits);
    if record && !ctx.full && report.is_clean() && rollback.is_none() {
        // A main this machine accepts: listings read its records from here once it is
        // cohort's view, and the next verification continues its timeline and carries its
        // files. Like the memo, all three only save time.
        let grown_from = report.grown_from.as_deref().and_then(|c| c.parse().ok());
        let _ = store.save_listing(&opened.id, commit, &verified.index, grown_from);
        let _ = store.save_timeline(&opened.id, &tl, loaded);
        let _ = store.save_carry(&opened.id, commit, &verified.index, &verified.tree, &report);
    }
    let new_warnings = match after {
        Some(i) => warnings_after(&report, &tl.commits, i),
        None => Vec::new(),
    };
    let mut outcome = VerifyOutcome {
        report,
        commit,
        recorded: false,
        rollback,
        new_warnings,
    };
    if record && !ctx.full && outcome.acceptable_as_new_main() {
        let _lock = store.lock(&opened.id)?;
        store.save(&State {
            registry_id: opened.id.to_string(),
            verified_commit: commit.to_string(),
            verified_at: ctx.timestamp(),
            verified_length: tl.commits.len(),
        })?;
        outcome.recorded = true;
    }
    free_in_background((verified.index, tl));
    Ok(outcome)
}

/// Frees `x` on a thread of its own: the index of a large registry holds an allocation or
/// more per file and record (some 55 ms to free at 10,000 entities), which a command about
/// to exit need not wait for.
fn free_in_background<T: Send + 'static>(x: T) {
    let _ = std::thread::Builder::new()
        .name("free".into())
        .spawn(move || drop(x));
}

/// Verifies a proposed change `base..head` (a pull request): everything it adds, under the
/// newest trust rules whatever the registry's history was allowed.
pub fn verify_range(opened: &Opened, base: Oid, head: Oid) -> Result<Report> {
    let repo = opened.reg.repo();
    let opts = VerifyOptions {
        expected_registry: Some(opened.id.clone()),
        cache: None,
    };
    let mut head = head;
    if head != base
        && !repo
            .graph_descendant_of(head, base)
            .map_err(RegistryError::from)?
    {
        let mb = repo.merge_base(base, head).map_err(RegistryError::from)?;
        if mb != base {
            // A PR branch built on an older main: check what it adds on top of the merge base,
            // under today's main, by merging it in memory.
            head = registry::merge(repo, base, head, "verify --range (in memory)", "cohort")?;
        }
    }
    let (mut report, _) = opened.reg.verify_range(base, head, &opts)?;
    // Everything the change adds arrives in one commit on top of base, named `head`.
    let head = head.to_string();
    let fresh = report
        .warnings
        .iter()
        .filter(|w| w.commit.as_deref().is_none_or(|c| c == head))
        .cloned();
    report.problems.extend(fresh);
    report.problems.sort();
    Ok(report)
}

/// What happened when landing a commit on main.
#[derive(Debug, Clone)]
pub struct Landed {
    pub commit: Oid,
    pub main: MainUpdate,
    /// Pushed to origin; `None` when there is no remote.
    pub pushed: Option<bool>,
    /// Why the push did not happen (offline).
    pub offline: Option<String>,
}

/// The outcome of a sync.
pub struct Synced {
    pub remote_main: Option<Oid>,
    pub view: Oid,
    pub new_commits: usize,
    pub unpushed: usize,
    pub main: MainUpdate,
}

/// Replays the first-parent commits `from..to` (cohort's own additions) onto `onto`.
fn replay(opened: &Opened, from: Oid, to: Oid, onto: Oid) -> Result<Oid> {
    let repo = opened.reg.repo();
    let mut commits = Vec::new();
    let mut reached = false;
    repo.find_commit(to).map_err(RegistryError::from)?;
    for commit in registry::first_parents(repo, to) {
        // An unreadable parent (or a chain that comes round) ends the chain short of `from`.
        let Ok(id) = commit.map(|c| c.id()) else {
            break;
        };
        if id == from {
            reached = true;
            break;
        }
        commits.push(id);
    }
    if !reached {
        return Err(WorkflowError::Refused(
            "cannot replay local commits: they do not descend from the remote's main".into(),
        ));
    }
    commits.reverse();
    let mut base = onto;
    for c in commits {
        let commit = repo.find_commit(c).map_err(RegistryError::from)?;
        let msg = commit.message().unwrap_or("cohort").to_string();
        let parent = commit.parent_id(0).map_err(RegistryError::from)?;
        let changes = opened.reg.changes(parent, c)?;
        let tree = opened.reg.tree(c)?;
        let mut files = Vec::new();
        for p in &changes.added {
            files.push(NewFile::new(p.clone(), tree.read_path(p)?));
        }
        base = registry::commit_files(repo, base, &files, &msg, "cohort")?;
        if let Ok(second) = commit.parent_id(1) {
            // Keep the submission branch in the history, as the original merge did.
            let tree_oid = repo
                .find_commit(base)
                .map_err(RegistryError::from)?
                .tree_id();
            let tree = repo.find_tree(tree_oid).map_err(RegistryError::from)?;
            let first = repo
                .find_commit(base)
                .map_err(RegistryError::from)?
                .parent_id(0)
                .map_err(RegistryError::from)?;
            let p1 = repo.find_commit(first).map_err(RegistryError::from)?;
            let p2 = repo.find_commit(second).map_err(RegistryError::from)?;
            let sig = commit.author().to_owned();
            base = repo
                .commit(None, &sig, &sig, &msg, &tree, &[&p1, &p2])
                .map_err(RegistryError::from)?;
        }
    }
    Ok(base)
}

/// Moves cohort's view (and local main, when safe) to `new`.
fn set_view(opened: &Opened, new: Oid, log: &str) -> Result<MainUpdate> {
    let repo = opened.reg.repo();
    registry::set_ref(repo, VERIFIED_REF, new, log)?;
    let current = opened.reg.ref_target(MAIN_REF);
    Ok(registry::advance_main(repo, current, new, log)?)
}

/// Fetches origin, refuses a remote main that rewinds or replaces what this machine verified,
/// verifies the new commits, and brings cohort's view and local main up to date.
pub fn sync(ctx: &Ctx, opened: &Opened) -> Result<Synced> {
    let view = opened.view()?;
    let Some(url) = opened.reg.remote_url() else {
        // No remote: the view is the shared main.
        let main = set_view(opened, view, "cohort sync")?;
        return Ok(Synced {
            remote_main: None,
            view,
            new_commits: 0,
            unpushed: 0,
            main,
        });
    };
    let transport = ctx.transport_for(&url)?;
    let task = ctx.reporter.begin("fetch", None);
    let fetched = opened.reg.fetch(transport);
    ctx.reporter.end(task, fetched.is_ok());
    fetched?;
    let remote = opened
        .reg
        .ref_target(REMOTE_MAIN_REF)
        .ok_or_else(|| WorkflowError::Refused(format!("remote {url} has no main branch")))?;
    let mut synced = adopt_main(ctx, opened, remote, &format!("remote {url}"))?;
    synced.remote_main = Some(remote);
    Ok(synced)
}

/// Makes `remote` (a main fetched from the remote or read from a registry bundle, named by
/// `source`) the new shared main under `sync`'s rules: the pinned registry id, verification of
/// its whole history, rollback refused (the last accepted main must be on its first-parent
/// chain), and unpushed local commits replayed on top. Nothing moves when it is refused.
pub fn adopt_main(ctx: &Ctx, opened: &Opened, remote: Oid, source: &str) -> Result<Synced> {
    let view = opened.view()?;
    let remote_id = opened.reg.registry_id(remote)?;
    if remote_id != opened.id {
        return Err(WorkflowError::Refused(format!(
            "{source} serves registry {}, not {} which this clone pinned; refusing to sync",
            remote_id.short(),
            opened.id.short()
        )));
    }
    let outcome = verify_commit(ctx, opened, remote, true)?;
    if !outcome.acceptable_as_new_main() {
        return Err(problems_error(
            format!(
                "the main of {source} ({}) does not verify; nothing was changed locally",
                registry::short(remote)
            ),
            outcome.refusals(),
        ));
    }
    let repo = opened.reg.repo();
    let count = |from: Oid, to: Oid| -> usize {
        let mut walk = match repo.revwalk() {
            Ok(w) => w,
            Err(_) => return 0,
        };
        let _ = walk.push(to);
        let _ = walk.hide(from);
        walk.simplify_first_parent().ok();
        walk.count()
    };
    let new_commits = count(view, remote);
    let first_parent =
        |head: Oid, old: Oid| registry::on_first_parent_chain(repo, head, old).unwrap_or(false);
    let (new_view, unpushed) = if view == remote || first_parent(remote, view) {
        (remote, 0)
    } else if first_parent(view, remote) {
        (view, count(remote, view))
    } else {
        let base = repo.merge_base(view, remote).map_err(RegistryError::from)?;
        let replayed = replay(opened, base, view, remote)?;
        let report = verify_range(opened, remote, replayed)?;
        if !report.is_clean() {
            return Err(problems_error(
                "your unpushed changes no longer verify on top of the remote's main".into(),
                report.problems,
            ));
        }
        (replayed, count(remote, replayed))
    };
    let main = set_view(opened, new_view, "cohort sync")?;
    Ok(Synced {
        remote_main: None,
        view: new_view,
        new_commits,
        unpushed,
        main,
    })
}

/// Builds a commit on top of cohort's view with `make(base)`, verifies it as a change to main,
/// moves the view and local main, and pushes main (retrying after a fetch when another
/// maintainer pushed first). Offline, the commit stays local and is pushed later.
pub fn land(
    ctx: &Ctx,
    opened: &Opened,
    what: &str,
    make: &dyn Fn(Oid) -> Result<Oid>,
) -> Result<Landed> {
    let url = opened.reg.remote_url();
    let mut offline = ctx.offline.then(|| "--offline".to_string());
    if url.is_some() && offline.is_none() {
        match sync(ctx, opened) {
            Ok(_) => {}
            Err(e) if e.is_environment() => offline = Some(e.to_string()),
            Err(e) => return Err(e),
        }
    }
    for attempt in 0..=PUSH_RETRIES {
        let base = opened.view()?;
        let new = make(base)?;
        let report = verify_range(opened, base, new)?;
        if !report.is_clean() {
            return Err(problems_error(
                format!("{what} does not verify; nothing was merged"),
                report.problems,
            ));
        }
        let log = format!("cohort: {what}");
        let Some(url) = &url else {
            // No remote: this clone's main is the shared main.
            let main = set_view(opened, new, &log)?;
            verify_commit(ctx, opened, new, true)?;
            return Ok(Landed {
                commit: new,
                main,
                pushed: None,
                offline: None,
            });
        };
        if offline.is_some() {
            let main = set_view(opened, new, &log)?;
            return Ok(Landed {
                commit: new,
                main,
                pushed: Some(false),
                offline,
            });
        }
        // Push first: nothing moves locally unless the remote took it (or is unreachable).
        let transport = ctx.transport_for(url)?;
        match opened.reg.push(&[format!("{new}:{MAIN_REF}")], transport) {
            Ok(()) => {
                registry::set_ref(opened.reg.repo(), REMOTE_MAIN_REF, new, "cohort push")?;
                let main = set_view(opened, new, &log)?;
                verify_commit(ctx, opened, new, true)?;
                return Ok(Landed {
                    commit: new,
                    main,
                    pushed: Some(true),
                    offline: None,
                });
            }
            Err(RegistryError::PushRejected {
                non_fast_forward: true,
                ..
            }) if attempt < PUSH_RETRIES => {
                ctx.reporter.note(&format!(
                    "someone pushed main first; fetching and merging again (attempt {})",
                    attempt + 2
                ));
                sync(ctx, opened)?;
            }
            Err(e) if e.is_environment() => {
                let main = set_view(opened, new, &log)?;
                return Ok(Landed {
                    commit: new,
                    main,
                    pushed: Some(false),
                    offline: Some(e.to_string()),
                });
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(WorkflowError::Refused(format!(
        "{what}: gave up after {PUSH_RETRIES} retries; main moves too fast, try again"
    )))
}

/// Adds a maintainer's own records (grants, decisions, priorities) straight to main.
pub fn apply_to_main(
    ctx: &Ctx,
    opened: &Opened,
    signer: &Signer,
    records: Vec<NewFile>,
    message: &str,
) -> Result<Landed> {
    let files = sign_all(signer, &opened.id, records)?;
    land(ctx, opened, message, &|base| {
        Ok(registry::commit_files(
            opened.reg.repo(),
            base,
            &files,
            message,
            &signer.handle,
        )?)
    })
}

pub use super::proposals::{
    Pushed, Submitted, approve, find_submission, merge_submission, push, reject, submissions,
    submit,
};
