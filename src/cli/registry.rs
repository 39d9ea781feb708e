//! `cohort registry`: create, clone, sync and push a registry; list, merge and co-sign
//! submissions; rotate the root; install the pre-receive hook.

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use cohort::model::Sha256;
use cohort::registry::{MainUpdate, forge_compare_url};
use cohort::workflow::identity::{self, Proposal};
use cohort::workflow::registry_ops;
use cohort::workflow::status;

use super::error::{CliError, CliResult};
use super::landed::{landed_json, main_update_text, report_landed, report_proposal};
use super::session::Session;
use super::settings::Settings;

#[derive(Debug, Args)]
pub struct RegistryArgs {
    #[command(subcommand)]
    command: RegistryCommand,
}

#[derive(Debug, Subcommand)]
enum RegistryCommand {
    /// Create a new registry: a git repository with a signed root naming its admins.
    Init {
        /// Folder to create (must not exist or be empty).
        path: PathBuf,
        /// The registry's display name.
        #[arg(long)]
        name: String,
        /// Admin handles (their keys must be in local storage); comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        admin: Vec<String>,
        /// Distinct admin signatures needed for grants and root rotation.
        #[arg(long, default_value_t = 1)]
        threshold: u32,
    },
    /// Clone a registry, pin its id and verify it.
    Clone {
        /// The shared repository (path, file://, ssh or https URL).
        url: String,
        /// Where to clone (default: the repository's name).
        path: Option<PathBuf>,
        /// The registry id you were given (sha256 of root/v1.toml).
        #[arg(long, conflicts_with = "trust_on_first_use")]
        root: Option<String>,
        /// Accept whatever registry id the remote serves, without asking.
        #[arg(long)]
        trust_on_first_use: bool,
    },
    /// Print the registry id (sha256 of root/v1.toml).
    Fingerprint,
    /// Fetch, verify the remote's new commits and update local main when it is safe.
    Sync,
    /// Push pending submission branches (yours, or the one named) and unpushed merges.
    Push {
        /// One branch to push.
        branch: Option<String>,
    },
    /// My submissions and what waits for my approval.
    Status,
    /// Merge submissions that need no approval (cubes, datasets, results, co-signed records)
    /// once they verify.
    Merge {
        /// The branch to merge.
        #[arg(required_unless_present = "all")]
        branch: Option<String>,
        /// Merge every pending submission that verifies.
        #[arg(long, conflicts_with = "branch")]
        all: bool,
    },
    /// Add your signature to a pending root rotation, grant or leaderboard release.
    Cosign {
        /// The proposal's branch (submit/<handle>/...), as `cohort registry status` lists it.
        branch: String,
    },
    /// Propose a new root (admins and threshold), signed by the current admins' threshold and
    /// the new one's.
    ///
    /// Also adopts the current trust rules. To change your own key, generate the new one under
    /// another local name (`cohort key generate --handle admin-next`), pass `--new-key
    /// admin-next`: both keys sign the new root; once it is merged, `cohort key adopt
    /// admin-next --handle admin` makes it your key.
    RotateRoot {
        /// The new admin handles, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        admins: Vec<String>,
        /// Distinct admin signatures the new root needs for grants and root rotation.
        #[arg(long, default_value_t = 1)]
        threshold: u32,
        /// A local identity whose key replaces yours (the `--as` handle's) in the new root.
        #[arg(long, value_name = "LOCAL_HANDLE")]
        new_key: Option<String>,
    },
    /// Install the pre-receive hook into a bare repository on this machine.
    InstallHook {
        /// The bare repository (e.g. /srv/git/registry.git).
        bare: PathBuf,
    },
}

fn access_notice_json(n: &cohort::workflow::private::AccessNotice) -> super::json::AccessNotice {
    use cohort::workflow::private::AccessNotice as N;
    match n {
        N::Undecided {
            model,
            bench,
            dataset,
            dataset_name,
        } => super::json::AccessNotice {
            notice: "undecided",
            model: model.name.clone(),
            version: model.version,
            benchmark: Some(bench.clone()),
            dataset: dataset.clone(),
            dataset_name: dataset_name.clone(),
            handle: None,
        },
        N::Rotated {
            model,
            dataset,
            dataset_name,
            handle,
        } => super::json::AccessNotice {
            notice: "rotated",
            model: model.name.clone(),
            version: model.version,
            benchmark: None,
            dataset: dataset.clone(),
            dataset_name: dataset_name.clone(),
            handle: Some(handle.clone()),
        },
    }
}

fn access_notice_text(n: &cohort::workflow::private::AccessNotice) -> String {
    use cohort::workflow::private::AccessNotice as N;
    match n {
        N::Undecided {
            model,
            bench,
            dataset,
            dataset_name,
        } => format!(
            "private model {} v{}: dataset `{dataset_name}` ({}) joined {bench} and holds no grant; `cohort mlcube grant -m {}:{} -d {dataset}` (or leave it: it gets a no-access receipt)",
            model.name,
            model.version,
            &dataset[..12],
            model.name,
            model.version
        ),
        N::Rotated {
            model,
            dataset,
            dataset_name,
            handle,
        } => format!(
            "private model {} v{}: {handle} (dataset `{dataset_name}`) changed their age key since your grant; grant again to re-seal it: `cohort mlcube grant -m {}:{} -d {dataset}`",
            model.name, model.version, model.name, model.version
        ),
    }
}

pub fn run(settings: &Settings, args: RegistryArgs) -> CliResult {
    let s = Session::new(settings);
    let ui = &settings.ui;
    match args.command {
        RegistryCommand::Init {
            path,
            name,
            admin,
            threshold,
        } => {
            let ctx = s.ctx();
            // The unlock error itself (with its hint naming the passphrase source) is what
            // the user sees, not the workflow's copy of its message.
            let mut failed_unlock = None;
            let mut unlock = |h: &str| {
                s.unlock(h).map_err(|e| {
                    let refused = cohort::workflow::WorkflowError::Refused(e.message.clone());
                    failed_unlock = Some(e);
                    refused
                })
            };
            let init = identity::init_registry(&ctx, &path, &name, &admin, threshold, &mut unlock);
            let init = match (init, failed_unlock) {
                (Ok(init), _) => init,
                (Err(_), Some(e)) => return Err(e),
                (Err(e), None) => return Err(e.into()),
            };
            if ui.json {
                ui.json(&super::json::RegistryId {
                    registry_id: init.registry_id.to_string(),
                    path: Some(init.path.clone()),
                    commit: Some(init.commit.to_string()),
                });
            } else {
                ui.out(init.registry_id.to_string());
                ui.status(format!("created registry `{name}` in {}; its id (share it with participants) is printed above", init.path.display()));
                ui.status("next: `cohort registry install-hook` on the shared bare repository, `git remote add origin ...`, `git push -u origin main`");
            }
        }
        RegistryCommand::Clone {
            url,
            path,
            root,
            trust_on_first_use,
        } => {
            let dest = path.unwrap_or_else(|| {
                let name = url
                    .trim_end_matches('/')
                    .rsplit(['/', ':'])
                    .next()
                    .unwrap_or("registry");
                PathBuf::from(name.trim_end_matches(".git"))
            });
            let ctx = s.ctx();
            let check = pin_check(settings, &ctx, &url, root.as_deref(), trust_on_first_use)?;
            let (opened, outcome) = identity::clone_registry(&ctx, &url, &dest, &check)?;
            for w in &outcome.report.warnings {
                ui.warn(format!("warning: {}", super::error::problem_line(w)));
            }
            if ui.json {
                ui.json(&super::json::RegistryId {
                    registry_id: opened.id.to_string(),
                    path: Some(dest.clone()),
                    commit: None,
                });
            } else {
                ui.out(opened.id.to_string());
                ui.status(format!(
                    "cloned and verified {} into {} ({} files)",
                    url,
                    dest.display(),
                    outcome.report.files
                ));
            }
        }
        RegistryCommand::Fingerprint => {
            let opened = s.open_local()?;
            if ui.json {
                ui.json(&super::json::RegistryId {
                    registry_id: opened.id.to_string(),
                    path: None,
                    commit: None,
                });
            } else {
                ui.out(opened.id.to_string());
            }
        }
        RegistryCommand::Sync => {
            let opened = s.open_local()?;
            let synced = registry_ops::sync(&s.ctx(), &opened)?;
            if ui.json {
                ui.json(&super::json::Synced {
                    remote_main: synced.remote_main.map(|o| o.to_string()),
                    view: synced.view.to_string(),
                    new_commits: synced.new_commits,
                    unpushed: synced.unpushed,
                    main: main_update_text(&synced.main),
                });
            } else {
                match synced.remote_main {
                    None => ui.status("no remote: nothing to fetch"),
                    Some(_) => ui.status(format!(
                        "{} new commit(s) verified; {}",
                        synced.new_commits,
                        main_update_text(&synced.main)
                    )),
                }
                if synced.unpushed > 0 {
                    ui.status(format!(
                        "{} local commit(s) on main wait to be pushed: `cohort registry push`",
                        synced.unpushed
                    ));
                }
                if let MainUpdate::Kept { .. } = synced.main {
                    ui.warn(main_update_text(&synced.main));
                }
            }
        }
        RegistryCommand::Push { branch } => {
            let opened = s.open_local()?;
            let me = s.handle().ok();
            // Fetch first, so branches merged since the last sync are recognised, not reopened.
            registry_ops::sync(&s.ctx(), &opened).ok();
            let registry_ops::Pushed {
                pushed,
                merged,
                landed,
            } = registry_ops::push(&s.ctx(), &opened, me.as_deref(), branch.as_deref())?;
            let url = opened.reg.remote_url().unwrap_or_default();
            if ui.json {
                ui.json(&super::json::Pushed {
                    branches: pushed
                        .iter()
                        .map(|b| super::json::PushedBranch {
                            branch: b.clone(),
                            review_url: forge_compare_url(&url, b),
                        })
                        .collect(),
                    main: landed.as_ref().map(landed_json),
                });
            } else {
                for b in &merged {
                    ui.status(format!(
                        "skipped {b}: main already holds it (merged); removed the branch"
                    ));
                }
                for b in &pushed {
                    ui.out(b);
                    ui.status(format!("pushed {b} to {url}"));
                    if let Some(u) = forge_compare_url(&url, b) {
                        ui.status(format!("  open a pull request: {u}"));
                    }
                }
                if pushed.is_empty() && landed.is_none() {
                    ui.status("nothing to push: every submission and main are on the remote");
                }
                if let Some(l) = &landed {
                    match l.pushed {
                        Some(true) => ui.status(format!(
                            "pushed main ({}) to {url}",
                            &l.commit.to_string()[..10]
                        )),
                        _ => report_landed(&s, "main", l),
                    }
                }
            }
        }
        RegistryCommand::Status => {
            let opened = s.open()?;
            let me = s.handle()?;
            let st = status::status(&opened, &me)?;
            if ui.json {
                let row = |r: &status::StatusRow| super::json::StatusRow {
                    branch: r.sub.branch.clone(),
                    kind: r.sub.kind.as_str(),
                    subject: r.sub.subject.clone(),
                    owner: r.sub.owner.clone(),
                    state: r.state.as_str(),
                    waiting_for: r.waiting_for.clone(),
                };
                ui.json(&super::json::Status {
                    handle: me.clone(),
                    mine: st.mine.iter().map(row).collect(),
                    awaiting_me: st.awaiting_me.iter().map(row).collect(),
                    private: st.private.iter().map(access_notice_json).collect(),
                });
            } else {
                let mut t = super::table::new(&["my submissions", "kind", "state", "waiting for"]);
                for r in &st.mine {
                    t.add_row(vec![
                        r.sub.branch.clone(),
                        r.sub.kind.as_str().into(),
                        r.state.as_str().into(),
                        r.waiting_for.clone(),
                    ]);
                }
                if st.mine.is_empty() {
                    ui.status(format!("{me} has no submissions"));
                } else {
                    ui.out(t.to_string());
                }
                for n in &st.private {
                    ui.status(access_notice_text(n));
                }
                if st.awaiting_me.is_empty() {
                    ui.status("nothing waits for you");
                } else {
                    let mut t = super::table::new(&["waiting for you", "kind", "from", "needs"]);
                    for r in &st.awaiting_me {
                        t.add_row(vec![
                            r.sub.branch.clone(),
                            r.sub.kind.as_str().into(),
                            r.sub.owner.clone(),
                            r.waiting_for.clone(),
                        ]);
                    }
                    ui.out(t.to_string());
                }
            }
        }
        RegistryCommand::Merge { branch, all } => {
            let opened = s.open()?;
            let me = s.handle()?;
            let ctx = s.ctx();
            let branches: Vec<String> = if all {
                registry_ops::sync(&ctx, &opened).ok();
                registry_ops::submissions(&opened)?
                    .into_iter()
                    .filter(|(sub, _, _)| !sub.kind.needs_approval())
                    .map(|(sub, _, _)| sub.branch)
                    .collect()
            } else {
                vec![branch.expect("clap requires a branch without --all")]
            };
            if all && branches.is_empty() && !ui.json {
                ui.status("nothing to merge: no cube, dataset or result submission waits (`cohort registry status` shows what does)");
            }
            let mut merged = Vec::new();
            let mut failed = Vec::new();
            // Unlocked once, and only if a submission carries sealed data to decrypt.
            let mut signer: Option<std::rc::Rc<cohort::trust::Signer>> = None;
            let mut key = || -> Result<_, cohort::workflow::WorkflowError> {
                if signer.is_none() {
                    let unlocked = s
                        .unlock(&me)
                        .map_err(|e| cohort::workflow::WorkflowError::Refused(e.message))?;
                    signer = Some(std::rc::Rc::new(unlocked));
                }
                Ok(signer.clone().expect("set above"))
            };
            for b in branches {
                match registry_ops::merge_submission(&ctx, &opened, &me, &b, &mut key) {
                    Ok((sub, landed)) => {
                        report_landed(&s, &format!("{} ({})", b, sub.subject), &landed);
                        merged.push(b);
                    }
                    Err(e) if all => {
                        let e: CliError = e.into();
                        ui.warn(format!("{b}: {}", e.message));
                        for d in e.details {
                            ui.warn(format!("  {d}"));
                        }
                        failed.push(b);
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            if ui.json {
                ui.json(&super::json::Merged {
                    merged: merged.clone(),
                    refused: failed.clone(),
                });
            }
            if !failed.is_empty() {
                return Err(CliError::verdict(format!(
                    "{} submission(s) could not be merged",
                    failed.len()
                )));
            }
        }
        RegistryCommand::Cosign { branch } => {
            let opened = s.open()?;
            let signer = s.signer()?;
            let files = identity::cosign(&s.ctx(), &opened, &signer, &branch)?;
            if ui.json {
                ui.json(&super::json::Cosigned {
                    branch: branch.clone(),
                    files: files.clone(),
                });
            } else {
                for f in &files {
                    ui.out(f);
                }
            }
            ui.status(format!("co-signed {} record(s) on {branch}; merge it with `cohort registry merge {branch}` once the threshold is met", files.len()));
        }
        RegistryCommand::RotateRoot {
            admins,
            threshold,
            new_key,
        } => {
            let opened = s.open()?;
            let signer = s.signer()?;
            let next = new_key.as_deref().map(|h| s.unlock(h)).transpose()?;
            let handle = signer.handle.clone();
            let p = identity::rotate_root(
                &s.ctx(),
                &opened,
                &[signer],
                &admins,
                threshold,
                next.as_ref(),
            )?;
            report_proposal(&s, "root rotation", &p);
            if let (Some(n), Proposal::Landed(_)) = (&new_key, &p) {
                ui.status(format!(
                    "your key in the new root is {n}'s; make it {handle}'s here with `cohort key adopt {n} --handle {handle}`"
                ));
            }
        }
        RegistryCommand::InstallHook { bare } => {
            let hooks = bare.join("hooks");
            if !bare.join("objects").is_dir() {
                return Err(CliError::user(format!(
                    "{} is not a bare git repository",
                    bare.display()
                ))
                .hint("create one with `git init --bare PATH`"));
            }
            let text = identity::TEMPLATE
                .iter()
                .find(|(p, _)| *p == "hooks/pre-receive")
                .map(|(_, t)| *t)
                .expect("template has the hook");
            let dest = hooks.join("pre-receive");
            cohort::storage::write_atomic_mode(&dest, text.as_bytes(), Some(0o755))?;
            if ui.json {
                ui.json(&super::json::Wrote {
                    files: vec![dest.clone()],
                    commit: None,
                });
            }
            ui.status(format!("installed {}; pushes to main now run `cohort verify` (cohort must be on the PATH of the git server)", dest.display()));
        }
    }
    Ok(())
}

/// How `registry clone` and `bundle import FILE DIR` pin a registry id: the one given with
/// `--root`, one this machine pinned before, `--trust-on-first-use`, or a confirmation.
pub(super) fn pin_check<'a>(
    settings: &'a Settings,
    ctx: &'a cohort::workflow::Ctx<'a>,
    source: &'a str,
    root: Option<&str>,
    trust_on_first_use: bool,
) -> CliResult<impl Fn(&Sha256) -> cohort::workflow::Result<()> + 'a> {
    let expected: Option<Sha256> = match root {
        Some(r) => Some(
            r.parse()
                .map_err(|e: String| CliError::usage(format!("--root: {e}")))?,
        ),
        None => None,
    };
    Ok(move |id: &Sha256| -> cohort::workflow::Result<()> {
        if let Some(want) = &expected {
            if want != id {
                return Err(cohort::workflow::WorkflowError::Refused(format!(
                    "{source} serves registry {id}, not {want} as given with --root; nothing was kept"
                )));
            }
            return Ok(());
        }
        if identity::pinned(ctx, id)?.is_some() || trust_on_first_use {
            return Ok(());
        }
        if std::io::stdin().is_terminal() && !settings.yes {
            eprintln!(
                "registry id of {source}:\n  {id}\nCompare it with the id the registry's admins published."
            );
            eprint!("Trust this registry? [y/N] ");
            let mut answer = String::new();
            let _ = std::io::stdin().read_line(&mut answer);
            if answer.trim().eq_ignore_ascii_case("y") || answer.trim().eq_ignore_ascii_case("yes")
            {
                return Ok(());
            }
        }
        Err(cohort::workflow::WorkflowError::Refused(format!(
            "refusing to trust registry {id} without confirmation; pass --root {id} if that is the id you were given (or --trust-on-first-use)"
        )))
    })
}
