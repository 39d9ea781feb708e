//! What the listing filters of every `ls` see beyond main: submissions of one kind waiting on
//! branches (`--state pending`) and those turned down (`--state rejected`, read from the
//! signed rejections on main, since rejecting deletes the branch).

use crate::model::{DecisionKind, Record, RecordPath, classify};

use super::Result;
use super::registry_ops::{Opened, submissions};
use super::status::SubState;
use super::submission::{Submission, SubmissionKind};

/// A submission an admin or committee member turned down.
#[derive(Debug, Clone)]
pub struct Rejection {
    /// The record it proposed.
    pub subject: String,
    /// Whose it was: from its branch while one survives in this clone, else from a path that
    /// names its owner (`users/<handle>/`); unknown otherwise.
    pub owner: Option<String>,
    pub branch: Option<String>,
    pub by: String,
    pub at: String,
    pub reason: Option<String>,
}

/// Submissions of `kind` waiting on a branch not merged into main (local or pushed).
pub fn waiting(opened: &Opened, kind: SubmissionKind) -> Result<Vec<(Submission, SubState)>> {
    super::benchmarks::pending(opened, kind)
}

/// Submissions of `kind` turned down by a signed rejection on main.
pub fn rejected(opened: &Opened, kind: SubmissionKind) -> Result<Vec<Rejection>> {
    let ix = opened.index()?;
    let branches = submissions(opened)?;
    let mut out = Vec::new();
    for (subject, paths) in &ix.decisions {
        let Ok(rp) = classify(subject) else {
            continue;
        };
        if rp.kind().and_then(SubmissionKind::of) != Some(kind) {
            continue;
        }
        for p in paths {
            let Some(Record::Decision(d)) = ix.record(p) else {
                continue;
            };
            if d.kind != DecisionKind::Rejection.as_str() {
                continue;
            }
            let branch = branches
                .iter()
                .find(|(s, _, _)| s.subject == *subject && s.subject_sha256 == d.subject_sha256);
            let owner = match (&branch, &rp) {
                (Some((s, _, _)), _) => Some(s.owner.clone()),
                (None, RecordPath::User { handle, .. }) => Some(handle.clone()),
                _ => None,
            };
            out.push(Rejection {
                subject: subject.clone(),
                owner,
                branch: branch.map(|(s, _, _)| s.branch.clone()),
                by: d.by.clone(),
                at: d.at.clone(),
                reason: d.reason.clone(),
            });
        }
    }
    Ok(out)
}
