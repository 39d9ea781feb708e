//! How a change that landed on main, a decision, or a proposal waiting for co-signatures is
//! told to the user (text on stderr, an object with `--json`): one wording for every command.

use cohort::registry::MainUpdate;
use cohort::workflow::identity::Proposal;
use cohort::workflow::registry_ops::Landed;
use serde::Serialize;

use super::session::Session;

#[derive(Serialize)]
struct LandedJson {
    commit: String,
    pushed: Option<bool>,
    main: String,
}

pub fn landed_json(l: &Landed) -> serde_json::Value {
    serde_json::to_value(LandedJson {
        commit: l.commit.to_string(),
        pushed: l.pushed,
        main: main_update_text(&l.main),
    })
    .expect("serializes")
}

pub fn main_update_text(m: &MainUpdate) -> String {
    match m {
        MainUpdate::MovedWithWorkTree => "main updated (work tree too)".into(),
        MainUpdate::Moved => "main updated".into(),
        MainUpdate::Unchanged => "main unchanged".into(),
        MainUpdate::Kept { reason } => format!("your main was left as is: {reason}"),
    }
}

/// Tells the user where a landed change went.
pub fn report_landed(s: &Session, what: &str, l: &Landed) {
    let ui = &s.settings.ui;
    match (&l.pushed, &l.offline) {
        (Some(true), _) => ui.status(format!("{what}: merged into main and pushed ({})", &l.commit.to_string()[..10])),
        (Some(false), Some(why)) => ui.warn(format!("{what}: merged locally; the remote is unreachable ({why}); run `cohort registry push` later")),
        (Some(false), None) => ui.status(format!("{what}: merged locally; run `cohort registry push`")),
        (None, _) => ui.status(format!("{what}: merged into main ({})", &l.commit.to_string()[..10])),
    }
    if let MainUpdate::Kept { .. } = l.main {
        ui.warn(main_update_text(&l.main));
    }
}

/// `--json` of a decision or change: what, where it landed, or the branch it waits on.
pub fn decided_json(s: &Session, what: &str, landed: Option<&Landed>, waits: Option<(&str, u32)>) {
    if s.settings.ui.json {
        s.settings.ui.json(&super::json::Decided {
            what: what.to_string(),
            landed: landed.map(landed_json),
            branch: waits.map(|(b, _)| b.to_string()),
            needs: waits.map(|(_, n)| n).filter(|n| *n > 0),
        });
    }
}

/// [`report_landed`], with the `--json` object first.
pub fn report_decided(s: &Session, what: &str, l: &Landed) {
    decided_json(s, what, Some(l), None);
    report_landed(s, what, l);
}

pub fn report_proposal(s: &Session, what: &str, p: &Proposal) {
    match p {
        Proposal::Landed(l) => decided_json(s, what, Some(l), None),
        Proposal::NeedsCosign { branch, threshold } => {
            decided_json(s, what, None, Some((branch, *threshold)))
        }
    }
    match p {
        Proposal::Landed(l) => report_landed(s, what, l),
        Proposal::NeedsCosign { branch, threshold } => {
            s.settings.ui.status(format!(
                "{what}: needs {threshold} admin signatures; proposed on branch {branch}. Other admins run `cohort registry cosign {branch}`, then `cohort registry merge {branch}`"
            ));
        }
    }
}
