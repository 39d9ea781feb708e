//! `cohort association`: list associations of both kinds, approve or reject requests
//! (committee, never the requester), set model priorities, and invite a model (committee).

use clap::{Args, Subcommand};
use cohort::workflow::associations;

use super::error::CliResult;
use super::registry::report_landed;
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
    Ls {
        /// The benchmark.
        #[arg(short = 'b', long = "benchmark")]
        benchmark: Option<String>,
        #[arg(long)]
        pending: bool,
    },
    /// Approve a request (a committee member who did not request it): merges it into main.
    Approve(Target),
    /// Reject a request (a committee member who did not request it).
    Reject {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Set a model's priority in a benchmark (committee); higher runs first.
    #[command(name = "set_priority", alias = "set-priority")]
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
        AssociationCommand::Ls { benchmark, pending } => {
            let opened = s.open()?;
            if pending {
                let _ = cohort::workflow::registry_ops::sync(&s.ctx(), &opened);
            }
            let rows = associations::associations(&opened, benchmark.as_deref(), pending)?;
            if ui.json {
                ui.json(&rows.iter().map(|r| serde_json::json!({
                    "benchmark": r.benchmark,
                    "kind": match r.key { cohort::model::AssocKey::Model(_) => "model", cohort::model::AssocKey::Dataset(_) => "dataset" },
                    "name": r.name, "version": r.version, "requested_by": r.requested_by,
                    "state": r.state, "priority": r.priority, "path": r.path,
                })).collect::<Vec<_>>());
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
            report_landed(
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
        Some(l) => report_landed(s, &format!("{verb} {} ({})", key, sub.subject), &l),
        None => s.settings.ui.status(format!("{verb} {key}")),
    }
    Ok(())
}
