//! `registry status`: where each of my submissions stands, and which submissions wait for me.

use crate::model::{DecisionKind, Record, RecordPath};
use crate::trust::Index;

use super::Result;
use super::registry_ops::{Opened, submissions};
use super::submission::{Submission, SubmissionKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubState {
    /// Only in this clone.
    Local,
    /// On the remote, waiting.
    Pushed,
    /// Merged into main.
    Merged,
    /// Rejected (a signed rejection is on main).
    Rejected,
}

impl SubState {
    pub fn as_str(self) -> &'static str {
        match self {
            SubState::Local => "local",
            SubState::Pushed => "pushed",
            SubState::Merged => "merged",
            SubState::Rejected => "rejected",
        }
    }
}

pub struct StatusRow {
    pub sub: Submission,
    pub state: SubState,
    /// What it waits for (who must act), when pending.
    pub waiting_for: String,
}

pub struct Status {
    pub mine: Vec<StatusRow>,
    pub awaiting_me: Vec<StatusRow>,
    /// Access decisions waiting on my private models.
    pub private: Vec<super::private::AccessNotice>,
}

pub(super) fn state_of(ix: &Index, sub: &Submission, has_local: bool, pushed: bool) -> SubState {
    if ix.sha(&sub.subject) == Some(&sub.subject_sha256) {
        return SubState::Merged;
    }
    let rejected = ix
        .decisions
        .get(&sub.subject)
        .into_iter()
        .flatten()
        .any(|p| {
            matches!(ix.record(p), Some(Record::Decision(d))
            if d.kind == DecisionKind::Rejection.as_str() && d.subject_sha256 == sub.subject_sha256)
        });
    if rejected {
        SubState::Rejected
    } else if pushed || !has_local {
        SubState::Pushed
    } else {
        SubState::Local
    }
}

/// The benchmark a dataset or result submission is for, read from its record on the branch.
fn bench_of(opened: &Opened, sub: &Submission) -> Option<String> {
    let bytes = opened
        .reg
        .tree(sub.tip)
        .ok()?
        .read_path(&sub.subject)
        .ok()?;
    let rp = crate::model::classify(&sub.subject).ok()?;
    match crate::model::parse_record(&sub.subject, &rp, &bytes).ok()? {
        crate::model::Record::Dataset(d) => Some(d.benchmark.name),
        crate::model::Record::Result(r) => Some(r.benchmark.name),
        _ => None,
    }
}

/// Who may act on a pending submission, and whether `me` is one of them.
fn deciders(ix: &Index, sub: &Submission, me: &str, sealed_for: Option<String>) -> (String, bool) {
    let sealed_for_any = super::unseal::carries_sealed(sub);
    let admins: Vec<String> = ix
        .root()
        .map(|r| r.admins.iter().map(|a| a.handle.clone()).collect())
        .unwrap_or_default();
    let is_admin = admins.iter().any(|a| a == me);
    let committee_of = |bench: &str| -> Vec<String> {
        ix.latest_benchmark(bench)
            .map(|(_, b)| b.committee.clone())
            .unwrap_or_default()
    };
    match sub.kind {
        SubmissionKind::User | SubmissionKind::Benchmark => {
            ("an admin's approval".into(), is_admin)
        }
        SubmissionKind::Association => {
            let bench = match crate::model::classify(&sub.subject) {
                Ok(RecordPath::Association { bench, .. }) => bench,
                _ => String::new(),
            };
            let committee = committee_of(&bench);
            let ok = committee.iter().any(|m| m == me) && sub.owner != me;
            (
                format!(
                    "approval by the {bench} committee ({})",
                    committee.join(", ")
                ),
                ok,
            )
        }
        SubmissionKind::Dataset | SubmissionKind::Result => {
            // Sealed statistics and results are merged by a committee member, who decrypts
            // them first (an admin holds no key to them); a failure receipt seals nothing.
            let bench = sealed_for.unwrap_or_default();
            let committee = committee_of(&bench);
            if sealed_for_any {
                (
                    format!(
                        "a merge by the {bench} committee ({}), who decrypt it first",
                        committee.join(", ")
                    ),
                    committee.iter().any(|m| m == me),
                )
            } else {
                (
                    "a maintainer's merge".into(),
                    is_admin || committee.iter().any(|m| m == me),
                )
            }
        }
        SubmissionKind::Mlcube => ("a maintainer's merge".into(), is_admin),
        SubmissionKind::Grant | SubmissionKind::Root => {
            ("admin co-signatures".into(), is_admin && sub.owner != me)
        }
        SubmissionKind::Leaderboard => {
            let bench = match crate::model::classify(&sub.subject) {
                Ok(RecordPath::Leaderboard { bench, .. }) => bench,
                _ => String::new(),
            };
            (
                "committee co-signatures".into(),
                committee_of(&bench).iter().any(|m| m == me) && sub.owner != me,
            )
        }
    }
}

pub fn status(opened: &Opened, me: &str) -> Result<Status> {
    let ix = opened.index()?;
    let mut mine = Vec::new();
    let mut awaiting_me = Vec::new();
    for (sub, has_local, pushed) in submissions(opened)? {
        let state = state_of(&ix, &sub, has_local, pushed);
        let bench = matches!(sub.kind, SubmissionKind::Dataset | SubmissionKind::Result)
            .then(|| bench_of(opened, &sub))
            .flatten();
        let (who, me_too) = deciders(&ix, &sub, me, bench);
        let pending = matches!(state, SubState::Local | SubState::Pushed);
        if sub.owner == me {
            mine.push(StatusRow {
                sub,
                state,
                waiting_for: if pending { who } else { String::new() },
            });
        } else if pending && me_too {
            awaiting_me.push(StatusRow {
                sub,
                state,
                waiting_for: who,
            });
        }
    }
    let private = super::private::notices(&ix, me);
    Ok(Status {
        mine,
        awaiting_me,
        private,
    })
}
