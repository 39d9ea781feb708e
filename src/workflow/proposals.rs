//! Proposals through submission branches: writing a signed submission, approving (decision on
//! top of the branch, no-fast-forward merge), rejecting, merging what needs no approval, pushing
//! pending branches, and reading branches back as submissions.

use std::rc::Rc;

use git2::Oid;

use crate::model::{self, Decision, DecisionKind, build};
use crate::registry::{self, NewFile, REMOTE_MAIN_REF, Transport};
use crate::trust::{Code, Problem, Signer};

use super::registry_ops::{Landed, Opened, apply_to_main, land, problems_error, verify_range};
use super::submission::{self, Submission, record_file, sign_all};
use super::unseal;
use super::{Ctx, Result, WorkflowError};

/// Result of writing a submission.
pub struct Submitted {
    pub branch: String,
    pub commit: Oid,
    pub files: Vec<String>,
}

/// Signs `records` and writes them as a submission branch from cohort's view of main.
pub fn submit(
    opened: &Opened,
    signer: &Signer,
    branch: &str,
    records: Vec<NewFile>,
    extra: Vec<NewFile>,
    message: &str,
) -> Result<Submitted> {
    let mut files = sign_all(signer, &opened.id, records)?;
    files.extend(extra);
    let base = opened.view()?;
    // A submission must verify on its own apart from the approval it waits for; the branch is
    // set only then, so a refused submission leaves everything as it was.
    let commit = registry::commit_files(opened.reg.repo(), base, &files, message, &signer.handle)?;
    let report = verify_range(opened, base, commit)?;
    let blocking: Vec<Problem> = report
        .problems
        .into_iter()
        .filter(|p| p.code != Code::AwaitingApproval)
        .collect();
    if !blocking.is_empty() {
        return Err(problems_error(
            format!("{message}: the submission does not verify; nothing was written"),
            blocking,
        ));
    }
    registry::set_branch(
        opened.reg.repo(),
        branch,
        commit,
        &format!("cohort: {message}"),
    )?;
    Ok(Submitted {
        branch: branch.to_string(),
        commit,
        files: files.into_iter().map(|f| f.path).collect(),
    })
}

/// A decision record about `sub`'s subject, by `signer`.
fn decision_file(
    ctx: &Ctx,
    sub: &Submission,
    signer: &Signer,
    kind: DecisionKind,
    reason: Option<String>,
) -> NewFile {
    let d = Decision {
        format: model::FORMAT_VERSION,
        kind: kind.as_str().into(),
        subject: sub.subject.clone(),
        subject_sha256: sub.subject_sha256.clone(),
        by: signer.handle.clone(),
        at: ctx.timestamp(),
        reason,
    };
    record_file(build::decision(&sub.subject, kind, &signer.handle), &d)
}

/// Finds a submission branch and reads what it proposes.
pub fn find_submission(opened: &Opened, branch: &str) -> Result<Submission> {
    let tip = opened.reg.branch_tip(branch).ok_or_else(|| {
        WorkflowError::NotFound(format!(
            "no submission branch `{branch}` (run `cohort registry sync` to fetch new ones)"
        ))
    })?;
    submission::describe(&opened.reg, opened.view()?, branch, tip)
}

/// All submission branches (local and fetched), read back, newest view of each.
pub fn submissions(opened: &Opened) -> Result<Vec<(Submission, bool, bool)>> {
    let view = opened.view()?;
    let local = opened.reg.submission_branches(false)?;
    let remote = opened.reg.submission_branches(true)?;
    let mut names: Vec<String> = local
        .iter()
        .chain(remote.iter())
        .map(|(n, _)| n.clone())
        .collect();
    names.sort();
    names.dedup();
    let mut out = Vec::new();
    for name in names {
        let l = local.iter().find(|(n, _)| n == &name).map(|(_, o)| *o);
        let r = remote.iter().find(|(n, _)| n == &name).map(|(_, o)| *o);
        let tip = l.or(r).expect("name came from one of the lists");
        if let Ok(sub) = submission::describe(&opened.reg, view, &name, tip) {
            out.push((sub, l.is_some(), r.is_some() && r == l.or(r)));
        }
    }
    Ok(out)
}

/// Approves a submission: the signed approval goes on top of its branch, which is merged
/// (no fast-forward) into main and pushed. With `merge == false` (forge mode) the approval is
/// pushed onto the branch and the pull request's merge button does the rest.
pub fn approve(
    ctx: &Ctx,
    opened: &Opened,
    signer: &Signer,
    branch: &str,
    merge: bool,
) -> Result<(Submission, Option<Landed>)> {
    let sub = find_submission(opened, branch)?;
    may_decide(opened, signer, &sub, "approve")?;
    // A sealed payload reaches main only once a committee member has read it.
    unseal::gate(opened, &sub, signer)?;
    let decision = sign_all(
        signer,
        &opened.id,
        vec![decision_file(
            ctx,
            &sub,
            signer,
            DecisionKind::Approval,
            None,
        )],
    )?;
    let approved_tip = registry::commit_files(
        opened.reg.repo(),
        sub.tip,
        &decision,
        &format!("approve {}", sub.subject),
        &signer.handle,
    )?;
    if !merge {
        let base = opened.view()?;
        let merged = registry::merge(
            opened.reg.repo(),
            base,
            approved_tip,
            "check",
            &signer.handle,
        )?;
        let report = verify_range(opened, base, merged)?;
        if !report.is_clean() {
            return Err(problems_error(
                format!("approving {branch} would not verify; nothing was pushed"),
                report.problems,
            ));
        }
        registry::set_branch(
            opened.reg.repo(),
            branch,
            approved_tip,
            "cohort approve --no-merge",
        )?;
        if let Some(url) = opened.reg.remote_url() {
            opened.reg.push(
                &[format!("{approved_tip}:refs/heads/{branch}")],
                ctx.transport_for(&url)?,
            )?;
        }
        return Ok((sub, None));
    }
    let message = format!("Merge {branch}: approve {}", sub.subject);
    let landed = land(ctx, opened, &message, &|base| {
        Ok(registry::merge(
            opened.reg.repo(),
            base,
            approved_tip,
            &message,
            &signer.handle,
        )?)
    })?;
    cleanup_branch(ctx, opened, branch, landed.pushed == Some(true));
    Ok((sub, Some(landed)))
}

/// Whether `signer` may approve or reject `sub` (the policy's deciders per kind), asked before
/// anything is signed.
fn may_decide(opened: &Opened, signer: &Signer, sub: &Submission, verb: &str) -> Result<()> {
    use super::permission::{Needs, require};
    use super::submission::SubmissionKind as K;
    let ix = opened.index()?;
    match sub.kind {
        K::User => require(opened, &ix, signer, Needs::Admin, &format!("{verb} users")),
        K::Benchmark => require(
            opened,
            &ix,
            signer,
            Needs::Admin,
            &format!("{verb} benchmarks"),
        ),
        K::Grant | K::Root => require(
            opened,
            &ix,
            signer,
            Needs::Admin,
            &format!("{verb} admin proposals"),
        ),
        K::Association | K::Leaderboard => {
            // `associations/<bench>/...`, `leaderboards/<bench>/...`
            let bench = sub.subject.split('/').nth(1).unwrap_or_default();
            match ix.latest_benchmark(bench) {
                Some((_, b)) => require(
                    opened,
                    &ix,
                    signer,
                    Needs::Committee(b),
                    &format!("{verb} its submissions"),
                ),
                None => require(opened, &ix, signer, Needs::Member, verb),
            }
        }
        K::Mlcube | K::Dataset | K::Result => require(
            opened,
            &ix,
            signer,
            Needs::Member,
            &format!("{verb} submissions"),
        ),
    }
}

/// Merges a submission that needs no approval (cubes, datasets, results) once it verifies.
/// One that adds sealed payloads merges only if `who` is on their committee and decrypts each
/// (`key` is asked for `who`'s unlocked key only then; the caller may keep it for the next).
pub fn merge_submission(
    ctx: &Ctx,
    opened: &Opened,
    who: &str,
    branch: &str,
    key: &mut dyn FnMut() -> Result<Rc<Signer>>,
) -> Result<(Submission, Landed)> {
    let sub = find_submission(opened, branch)?;
    if sub.kind.needs_approval() {
        return Err(WorkflowError::Refused(format!(
            "{branch} proposes a {} and needs a signed approval; use the matching `approve` command",
            sub.kind.as_str()
        )));
    }
    if unseal::carries_sealed(&sub) {
        let signer = key()?;
        unseal::gate(opened, &sub, &signer)?;
    }
    let message = format!("Merge {branch}: {}", sub.subject);
    let tip = sub.tip;
    let landed = land(ctx, opened, &message, &|base| {
        Ok(registry::merge(
            opened.reg.repo(),
            base,
            tip,
            &message,
            who,
        )?)
    })?;
    cleanup_branch(ctx, opened, branch, landed.pushed == Some(true));
    Ok((sub, landed))
}

/// Rejects a submission: a signed rejection record lands on main; the branch is deleted.
pub fn reject(
    ctx: &Ctx,
    opened: &Opened,
    signer: &Signer,
    branch: &str,
    reason: Option<String>,
) -> Result<(Submission, Landed)> {
    let sub = find_submission(opened, branch)?;
    may_decide(opened, signer, &sub, "reject")?;
    let record = decision_file(ctx, &sub, signer, DecisionKind::Rejection, reason);
    let landed = apply_to_main(
        ctx,
        opened,
        signer,
        vec![record],
        &format!("reject {}", sub.subject),
    )?;
    cleanup_branch(ctx, opened, branch, landed.pushed == Some(true));
    Ok((sub, landed))
}

fn cleanup_branch(ctx: &Ctx, opened: &Opened, branch: &str, online: bool) {
    let repo = opened.reg.repo();
    if let Ok(mut r) = repo.find_reference(&format!("refs/heads/{branch}")) {
        let _ = r.delete();
    }
    if online
        && let (Some(url), Ok(mut r)) = (
            opened.reg.remote_url(),
            repo.find_reference(&format!("refs/remotes/origin/{branch}")),
        )
        && let Ok(t) = ctx.transport_for(&url)
        && opened.reg.delete_remote_branch(branch, t).is_ok()
    {
        let _ = r.delete();
    }
}

/// What `registry push` did.
pub struct Pushed {
    /// Submission branches pushed.
    pub pushed: Vec<String>,
    /// Branches skipped because main already holds them: removed here, and on the remote when
    /// they were one's own.
    pub merged: Vec<String>,
    /// Main, when it had commits to push.
    pub landed: Option<Landed>,
}

/// Pushes pending submission branches (all of `handle`'s, or the one named) and unpushed
/// commits on main. A branch main already holds is not pushed again (that would reopen a
/// merged submission) but cleaned up.
pub fn push(
    ctx: &Ctx,
    opened: &Opened,
    handle: Option<&str>,
    branch: Option<&str>,
) -> Result<Pushed> {
    let url = opened
        .reg
        .remote_url()
        .ok_or_else(|| WorkflowError::Refused("this registry has no remote to push to".into()))?;
    let transport: Transport = ctx.transport_for(&url)?;
    let mut pushed = Vec::new();
    let mut merged = Vec::new();
    let view = opened.view()?;
    let repo = opened.reg.repo();
    for (name, tip) in opened.reg.submission_branches(false)? {
        let mine = handle.is_none_or(|h| name.starts_with(&format!("submit/{h}/")));
        if branch.is_some_and(|b| b != name) || (branch.is_none() && !mine) {
            continue;
        }
        if tip == view || repo.graph_descendant_of(view, tip).unwrap_or(false) {
            // Only one's own branch is deleted on the remote: others' are their owners' or
            // their maintainers' to remove.
            let own = handle.is_some_and(|h| name.starts_with(&format!("submit/{h}/")));
            cleanup_branch(ctx, opened, &name, own);
            merged.push(name);
            continue;
        }
        if opened
            .reg
            .ref_target(&format!("refs/remotes/origin/{name}"))
            == Some(tip)
        {
            continue;
        }
        // Own submission branches are rebuilt from the newest main when re-submitted, so they
        // may move sideways: force is limited to this one branch, and only to one's own. Others'
        // branches (carried in a submissions bundle by a gateway) are pushed without force, so
        // a decision someone added on the remote is never overwritten.
        let own = handle.is_some_and(|h| name.starts_with(&format!("submit/{h}/")));
        let force = if own { "+" } else { "" };
        opened
            .reg
            .push(&[format!("{force}{tip}:refs/heads/{name}")], transport)?;
        registry::set_ref(
            opened.reg.repo(),
            &format!("refs/remotes/origin/{name}"),
            tip,
            "cohort push",
        )?;
        pushed.push(name);
    }
    if let Some(b) = branch
        && !pushed.iter().any(|p| p == b)
        && !merged.iter().any(|p| p == b)
        && opened.reg.ref_target(&format!("refs/heads/{b}")).is_none()
    {
        return Err(WorkflowError::NotFound(format!(
            "no local submission branch `{b}`"
        )));
    }
    let remote_main = opened.reg.ref_target(REMOTE_MAIN_REF);
    let landed = if remote_main != Some(view) {
        Some(land(ctx, opened, "push main", &|base| Ok(base))?)
    } else {
        None
    };
    Ok(Pushed {
        pushed,
        merged,
        landed,
    })
}
