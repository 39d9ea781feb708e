//! The listing filters every `ls` takes: `--mine`, `--owner H`, `--state
//! pending|approved|rejected` (MedPerf's habit). Approved rows are each listing's own; pending
//! and rejected rows have one shape for every kind of record.

use clap::{Args, ValueEnum};
use cohort::workflow::SubmissionKind;
use cohort::workflow::listing;
use cohort::workflow::registry_ops::Opened;
use cohort::workflow::status::SubState;

use super::error::CliResult;
use super::json::SubmissionRow;
use super::session::Session;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum State {
    /// Waiting on a submission branch not merged into main yet (local or pushed).
    Pending,
    /// On main: admitted, merged or approved.
    Approved,
    /// Turned down: a signed rejection is on main.
    Rejected,
}

#[derive(Debug, Clone, Default, Args)]
pub struct ListFilter {
    /// Only what you own: submitted or requested by the `--as` key's handle.
    #[arg(long, conflicts_with = "owner")]
    pub mine: bool,
    /// Only what HANDLE owns (submitted or requested).
    #[arg(long, value_name = "HANDLE")]
    pub owner: Option<String>,
    /// Only records in this state (default: what the listing shows without it).
    #[arg(long, value_enum, value_name = "STATE")]
    pub state: Option<State>,
}

/// A filter with `--mine` resolved to a handle.
pub struct Filter {
    pub owner: Option<String>,
    pub state: Option<State>,
}

impl ListFilter {
    pub fn resolve(&self, s: &Session) -> CliResult<Filter> {
        let owner = if self.mine {
            Some(s.handle()?)
        } else {
            self.owner.clone()
        };
        Ok(Filter {
            owner,
            state: self.state,
        })
    }
}

impl Filter {
    /// Whether a row owned by `owner` stays.
    pub fn keeps(&self, owner: &str) -> bool {
        self.owner.as_deref().is_none_or(|o| o == owner)
    }

    /// Whether the listing shows the submissions waiting or turned down, not its own rows.
    pub fn off_main(&self) -> bool {
        matches!(self.state, Some(State::Pending | State::Rejected))
    }
}

/// A waiting submission as a row.
pub fn waiting_row(sub: &cohort::workflow::Submission, state: SubState) -> SubmissionRow {
    SubmissionRow {
        subject: sub.subject.clone(),
        owner: Some(sub.owner.clone()),
        state: state.as_str().into(),
        branch: Some(sub.branch.clone()),
        rejected_by: None,
        at: None,
        reason: None,
    }
}

/// `--state pending|rejected`: the submissions of `kind` in that state, owner-filtered.
pub fn submissions(
    opened: &Opened,
    kind: SubmissionKind,
    f: &Filter,
) -> CliResult<Vec<SubmissionRow>> {
    let mut rows = Vec::new();
    match f.state {
        Some(State::Pending) => {
            for (sub, st) in listing::waiting(opened, kind)? {
                rows.push(waiting_row(&sub, st));
            }
        }
        Some(State::Rejected) => {
            for r in listing::rejected(opened, kind)? {
                rows.push(SubmissionRow {
                    subject: r.subject,
                    owner: r.owner,
                    state: "rejected".into(),
                    branch: r.branch,
                    rejected_by: Some(r.by),
                    at: Some(r.at),
                    reason: r.reason,
                });
            }
        }
        _ => {}
    }
    rows.retain(|r| f.owner.is_none() || r.owner.as_deref().is_some_and(|o| f.keeps(o)));
    Ok(rows)
}

/// Prints the rows of [`submissions`] as JSON or a table headed `what`.
pub fn print_submissions(
    s: &Session,
    opened: &Opened,
    kind: SubmissionKind,
    f: &Filter,
    what: &str,
) -> CliResult {
    let rows = submissions(opened, kind, f)?;
    let ui = &s.settings.ui;
    if ui.json {
        ui.json(&rows);
        return Ok(());
    }
    let state = match f.state {
        Some(State::Rejected) => "rejected",
        _ => "pending",
    };
    let mut t = super::table::new(&[
        &format!("{state} {what}"),
        "owner",
        "state",
        "branch or reason",
    ]);
    for r in rows {
        let last = match (&r.branch, &r.reason, &r.rejected_by) {
            (Some(b), _, None) => b.clone(),
            (_, reason, Some(by)) => format!(
                "by {by}{}",
                reason
                    .as_deref()
                    .map(|x| format!(": {x}"))
                    .unwrap_or_default()
            ),
            _ => String::new(),
        };
        t.add_row(vec![
            r.subject,
            r.owner.unwrap_or_else(|| "?".into()),
            r.state,
            last,
        ]);
    }
    ui.out(t.to_string());
    Ok(())
}
