//! `cohort user`: ask to join, admit users, grant roles, revoke keys, list participants.

use clap::{Args, Subcommand, ValueEnum};
use cohort::model::Role;
use cohort::registry::forge_compare_url;
use cohort::workflow::SubmissionKind;
use cohort::workflow::identity;
use cohort::workflow::registry_ops;
use serde::Serialize;

use super::error::CliResult;
use super::landed::report_proposal;
use super::session::Session;
use super::settings::Settings;

#[derive(Debug, Args)]
pub struct UserArgs {
    #[command(subcommand)]
    command: UserCommand,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum RoleArg {
    BenchmarkOwner,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Role {
        match r {
            RoleArg::BenchmarkOwner => Role::BenchmarkOwner,
        }
    }
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Ask to join the registry (or register a new key): a signed user record on a branch.
    Request {
        /// Your handle; your local key of that name signs.
        #[arg(long)]
        handle: Option<String>,
        /// Your full name, shown to the registry's admins and participants.
        #[arg(long)]
        name: String,
        /// A contact address, shown to the registry's admins and participants.
        #[arg(long)]
        email: String,
    },
    /// Admit a user (admin): approve their request and merge it into main.
    Approve {
        /// The handle of the user who asked to join.
        handle: String,
        /// Forge mode: push the signed approval onto the request's branch and leave the merge
        /// to the pull request's merge button.
        #[arg(long)]
        no_merge: bool,
    },
    /// Turn a request down (admin): a signed rejection lands on main, the branch is deleted.
    Reject {
        /// The handle of the user who asked to join.
        handle: String,
        /// Why, recorded in the signed rejection.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Grant a role (admin).
    Grant {
        /// The user's handle.
        handle: String,
        /// The role to grant.
        #[arg(long, value_enum)]
        role: RoleArg,
        /// Take the role away instead.
        #[arg(long)]
        revoke: bool,
    },
    /// Revoke a user's current key (admin): it stops counting from the commit that merges this.
    Revoke {
        /// The user whose key stops counting.
        handle: String,
        /// Why, recorded in the signed revocation.
        #[arg(long)]
        reason: Option<String>,
    },
    /// List participants.
    #[command(visible_alias = "list")]
    Ls(super::filter::ListFilter),
}

#[derive(Serialize)]
struct UserJson {
    handle: String,
    name: String,
    email: String,
    key_id: String,
    admin: bool,
    roles: Vec<String>,
    revoked: bool,
    version: u32,
}

pub fn run(settings: &Settings, args: UserArgs) -> CliResult {
    let s = Session::new(settings);
    let ui = &settings.ui;
    match args.command {
        UserCommand::Request {
            handle,
            name,
            email,
        } => {
            let opened = s.open()?;
            let handle = match handle {
                Some(h) => h,
                None => s.handle()?,
            };
            let signer = s.unlock(&handle)?;
            let sub = identity::user_request(&s.ctx(), &opened, &signer, &name, &email)?;
            if ui.json {
                ui.json(&super::json::Requested {
                    branch: sub.branch.clone(),
                    commit: sub.commit.to_string(),
                    files: sub.files.clone(),
                });
            } else {
                ui.out(&sub.branch);
                ui.status(format!(
                    "request written on branch {} (your work tree was not touched)",
                    sub.branch
                ));
                match opened.reg.remote_url() {
                    Some(url) => {
                        ui.status("next: `cohort registry push` to send it; an admin then runs `cohort user approve`");
                        if let Some(u) = forge_compare_url(&url, &sub.branch) {
                            ui.status(format!("after pushing, open a pull request: {u}"));
                        }
                    }
                    None => ui.status(format!(
                        "next: an admin runs `cohort user approve {handle}`"
                    )),
                }
            }
        }
        UserCommand::Approve { handle, no_merge } => {
            let opened = s.open()?;
            let signer = s.signer()?;
            let ctx = s.ctx();
            let _ = registry_ops::sync(&ctx, &opened);
            let branch =
                identity::branch_for(&opened, SubmissionKind::User, &format!("users/{handle}/"))?;
            let (sub, landed) = registry_ops::approve(&ctx, &opened, &signer, &branch, !no_merge)?;
            match landed {
                Some(l) => super::landed::report_decided(
                    &s,
                    &format!("admitted {handle} ({})", sub.subject),
                    &l,
                ),
                None => {
                    super::landed::decided_json(
                        &s,
                        &format!("approved {handle}"),
                        None,
                        Some((&branch, 0)),
                    );
                    ui.status(format!(
                        "approval pushed onto {branch}; merge its pull request once CI passes"
                    ))
                }
            }
        }
        UserCommand::Reject { handle, reason } => {
            let opened = s.open()?;
            let signer = s.signer()?;
            let ctx = s.ctx();
            let _ = registry_ops::sync(&ctx, &opened);
            let branch =
                identity::branch_for(&opened, SubmissionKind::User, &format!("users/{handle}/"))?;
            let (_, landed) = registry_ops::reject(&ctx, &opened, &signer, &branch, reason)?;
            super::landed::report_decided(
                &s,
                &format!("rejected the request of {handle}"),
                &landed,
            );
        }
        UserCommand::Grant {
            handle,
            role,
            revoke,
        } => {
            let opened = s.open()?;
            let signer = s.signer()?;
            let p = identity::grant(&s.ctx(), &opened, &signer, &handle, role.into(), revoke)?;
            report_proposal(
                &s,
                &format!(
                    "{} {} for {handle}",
                    if revoke { "revoked" } else { "granted" },
                    Role::from(role).as_str()
                ),
                &p,
            );
        }
        UserCommand::Revoke { handle, reason } => {
            let opened = s.open()?;
            let signer = s.signer()?;
            let p = identity::revoke(&s.ctx(), &opened, &signer, &handle, reason)?;
            report_proposal(&s, &format!("revoked the key of {handle}"), &p);
        }
        UserCommand::Ls(filter) => {
            let f = filter.resolve(&s)?;
            let opened = s.open()?;
            if f.off_main() {
                return super::filter::print_submissions(
                    &s,
                    &opened,
                    SubmissionKind::User,
                    &f,
                    "user",
                );
            }
            let mut rows = opened.user_rows(&s.ctx())?;
            rows.retain(|r| f.keeps(&r.handle));
            if ui.json {
                ui.json(
                    &rows
                        .into_iter()
                        .map(|r| UserJson {
                            handle: r.handle,
                            name: r.name,
                            email: r.email,
                            key_id: r.key_id,
                            admin: r.admin,
                            roles: r.roles,
                            revoked: r.revoked,
                            version: r.version,
                        })
                        .collect::<Vec<_>>(),
                );
            } else {
                let mut t = super::table::new(&["handle", "name", "email", "key id", "roles"]);
                for r in rows {
                    let mut roles = r.roles.join(", ");
                    if r.revoked {
                        roles.push_str(" (key revoked)");
                    }
                    t.add_row(vec![r.handle, r.name, r.email, r.key_id, roles]);
                }
                super::table::print(ui, &t, "no users yet");
            }
        }
    }
    Ok(())
}
