//! `cohort association`: list associations of both kinds, approve or reject requests
//! (committee, never the requester), set model priorities, and invite a model (committee).

use clap::{Args, Subcommand};
use cohort::workflow::associations;

use super::error::CliResult;
use super::session::Session;
use super::settings::Settings;

#[derive(Debug, Args)]
pub struct AssociationArgs {
    #[command(subcommand)]
    command: AssociationCommand,
}

#[derive(Debug, Args)]
struct Target {
    /// The benchmark.
    #[arg(short = 'b', long = "benchmark")]
    benchmark: String,
    /// The model (cube name).
    #[arg(
        short = 'm',
        long = "model",
        conflicts_with = "dataset",
        required_unless_present = "dataset"
    )]
    model: Option<String>,
    /// The dataset (name, id or id prefix).
    #[arg(short = 'd', long = "dataset")]
    dataset: Option<String>,
}

#[derive(Debug, Subcommand)]
enum AssociationCommand {
    /// List associations (models and datasets); --pending adds requests waiting for approval.
    #[command(visible_alias = "list")]
    Ls {
        /// The benchmark.
        #[arg(short = 'b', long = "benchmark")]
        benchmark: Option<String>,
        /// Also the requests waiting for approval on branches.
        #[arg(long)]
        pending: bool,
        #[command(flatten)]
        filter: super::filter::ListFilter,
    },
    /// Approve a request (a committee member who did not request it): merges it into main.
    Approve(Target),
    /// Reject a request (a committee member who did not request it).
    Reject {
        #[command(flatten)]
        target: Target,
        /// Why, recorded in the signed rejection.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Set a model's priority in a benchmark (committee); higher runs first.
    #[command(alias = "set_priority")]
    SetPriority {
        /// The benchmark.
        #[arg(short = 'b', long = "benchmark")]
        benchmark: String,
        /// The model cube (name).
        #[arg(short = 'm', long = "model")]
        model: String,
        /// The priority (higher runs first).
        #[arg(short = 'p', long = "priority", allow_negative_numbers = true)]
        priority: i64,
    },
    /// Invite a model into a benchmark (committee): runs its compatibility test, then requests.
    Request {
        /// The benchmark.
        #[arg(short = 'b', long = "benchmark")]
        benchmark: String,
        /// The model cube (name).
        #[arg(short = 'm', long = "model")]
        model: String,
    },
}

pub fn run(settings: &Settings, args: AssociationArgs) -> CliResult {
    let ui = &settings.ui;
    let s = Session::new(settings);
    match args.command {
        AssociationCommand::Ls {
            benchmark,
            pending,
            filter,
        } => {
            use super::filter::State;
            let f = filter.resolve(&s)?;
            let opened = s.open()?;
            if f.state == Some(State::Rejected) {
                return super::filter::print_submissions(
                    &s,
                    &opened,
                    cohort::workflow::SubmissionKind::Association,
                    &f,
                    "association",
                );
            }
            let pending = pending || f.state == Some(State::Pending);
            if pending {
                let _ = cohort::workflow::registry_ops::sync(&s.ctx(), &opened);
            }
            let mut rows = associations::associations(&opened, benchmark.as_deref(), pending)?;
            // Waiting requests carry their branch's state (`local`, `pushed`); the rest is on main.
            let waiting = |st: &str| matches!(st, "local" | "pushed");
            rows.retain(|r| {
                f.keeps(&r.requested_by)
                    && match f.state {
                        Some(State::Pending) => waiting(&r.state),
                        Some(State::Approved) => !waiting(&r.state),
                        _ => true,
                    }
            });
            if ui.json {
                ui.json(
                    &rows
                        .iter()
                        .map(|r| super::json::AssociationRow {
                            benchmark: r.benchmark.clone(),
                            kind: match r.key {
                                cohort::model::AssocKey::Model(_) => "model",
                                cohort::model::AssocKey::Dataset(_) => "dataset",
                            },
                            name: r.name.clone(),
                            version: r.version,
                            requested_by: r.requested_by.clone(),
                            state: r.state.clone(),
                            priority: r.priority,
                            path: r.path.clone(),
                        })
                        .collect::<Vec<_>>(),
                );
            } else {
                let mut t = super::table::new(&[
                    "benchmark",
                    "kind",
                    "name",
                    "version",
                    "requested by",
                    "state",
                    "priority",
                ]);
                for r in rows {
                    let kind = match r.key {
                        cohort::model::AssocKey::Model(_) => "model",
                        cohort::model::AssocKey::Dataset(_) => "dataset",
                    };
                    t.add_row(vec![
                        r.benchmark,
                        kind.into(),
                        r.name,
                        r.version.to_string(),
                        r.requested_by,
                        r.state,
                        r.priority.map(|p| p.to_string()).unwrap_or_default(),
                    ]);
                }
                super::table::print(ui, &t, "no associations yet");
            }
        }
        AssociationCommand::Approve(t) => decide(&s, t, true, None)?,
        AssociationCommand::Reject { target, reason } => decide(&s, target, false, reason)?,
        AssociationCommand::SetPriority {
            benchmark,
            model,
            priority,
        } => {
            let opened = s.open()?;
            let signer = s.signer()?;
            let landed = associations::set_priority(
                &s.ctx(),
                &opened,
                &signer,
                &benchmark,
                &model,
                priority,
            )?;
            super::landed::report_decided(
                &s,
                &format!("priority of {model} in {benchmark} set to {priority}"),
                &landed,
            );
        }
        AssociationCommand::Request { benchmark, model } => {
            return super::mlcube::associate(
                settings,
                super::mlcube::AssociateArgs {
                    benchmark,
                    model,
                    timeout: None,
                    devices: Default::default(),
                },
            );
        }
    }
    Ok(())
}

fn decide(s: &Session, t: Target, approve: bool, reason: Option<String>) -> CliResult {
    let opened = s.open()?;
    let signer = s.signer()?;
    let ix = opened.index()?;
    let key = associations::key_for(&ix, t.model.as_deref(), t.dataset.as_deref())?;
    let (sub, landed) = associations::decide(
        &s.ctx(),
        &opened,
        &signer,
        &t.benchmark,
        &key,
        approve,
        reason,
    )?;
    let verb = if approve { "approved" } else { "rejected" };
    match landed {
        Some(l) => {
            super::landed::report_decided(s, &format!("{verb} {} ({})", key, sub.subject), &l)
        }
        None => {
            super::landed::decided_json(s, &format!("{verb} {key}"), None, Some((&sub.branch, 0)));
            s.settings.ui.status(format!("{verb} {key}"))
        }
    }
    Ok(())
}
