//! `cohort verify`: check a registry commit (and main's history up to it), a proposed change
//! (`--range`), or a push inside a pre-receive hook (`--from-git-env --since OLD NEW`).

use clap::Args;
use cohort::registry::{MAIN_REF, REMOTE_MAIN_REF, Registry};
use cohort::trust::{Problem, Report, VerifyOptions};
use cohort::workflow::registry_ops::{self, Opened};
use serde::Serialize;

use super::error::{CliError, CliResult, problem_line};
use super::session::Session;
use super::settings::Settings;

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The commit to verify (default: main).
    rev: Option<String>,
    /// Verify a proposed change BASE..HEAD (a pull request): only additions, each allowed.
    #[arg(long, value_name = "BASE..HEAD", conflicts_with_all = ["rev", "since"])]
    range: Option<String>,
    /// With REV: main moves from OLD to REV; verify the commits in between (pre-receive hook).
    #[arg(long, value_name = "OLD", requires = "rev")]
    since: Option<String>,
    /// Open the repository from git's environment (inside a hook, with quarantined objects).
    #[arg(long)]
    from_git_env: bool,
}

#[derive(Serialize)]
struct ProblemJson<'a> {
    path: &'a str,
    rule: cohort::trust::Rule,
    message: &'a str,
    commit: Option<&'a str>,
}

#[derive(Serialize)]
struct VerifyJson<'a> {
    ok: bool,
    registry_id: Option<&'a str>,
    commit: String,
    files: usize,
    records: usize,
    signatures_checked: usize,
    problems: Vec<ProblemJson<'a>>,
}

fn render(settings: &Settings, what: &str, commit: String, report: &Report) -> CliResult {
    let ui = &settings.ui;
    if ui.json {
        ui.json(&VerifyJson {
            ok: report.is_clean(),
            registry_id: report.registry_id.as_deref(),
            commit,
            files: report.files,
            records: report.records,
            signatures_checked: report.signatures_checked,
            problems: report
                .problems
                .iter()
                .map(|p: &Problem| ProblemJson {
                    path: &p.path,
                    rule: p.rule,
                    message: &p.message,
                    commit: p.commit.as_deref(),
                })
                .collect(),
        });
    } else {
        for p in &report.problems {
            ui.out(problem_line(p));
        }
        if report.is_clean() {
            let sigs = match report.signatures_checked {
                0 => {
                    "no new signatures (everything was verified on this machine before)".to_string()
                }
                n => format!("{n} signatures checked"),
            };
            ui.status(format!(
                "{what} verifies: {} files, {} records, {sigs}",
                report.files, report.records
            ));
        }
    }
    if report.is_clean() {
        Ok(())
    } else {
        Err(CliError::verdict(format!(
            "{what} does not verify: {} problem(s)",
            report.problems.len()
        )))
    }
}

pub fn run(settings: &Settings, args: VerifyArgs) -> CliResult {
    let s = Session::new(settings);
    let reg = if args.from_git_env {
        Registry::open_from_env().map_err(|e| CliError::user(e.to_string()))?
    } else {
        s.registry()?
    };
    if let Some(range) = &args.range {
        let (a, b) = range
            .split_once("..")
            .ok_or_else(|| CliError::usage("--range takes BASE..HEAD"))?;
        let base = reg.resolve(a)?;
        let head = reg.resolve(b)?;
        let id = reg.registry_id(base)?;
        let opened = Opened { reg, id };
        let report = registry_ops::verify_range(&opened, base, head)?;
        return render(
            settings,
            &format!("change {range}"),
            head.to_string(),
            &report,
        );
    }
    if args.from_git_env {
        let rev = args.rev.as_deref().expect("the hook passes the new commit");
        let head = reg.resolve(rev)?;
        let (check_from, expected) = match &args.since {
            Some(old) => {
                let old = reg.resolve(old)?;
                if !reg.repo().graph_descendant_of(head, old).unwrap_or(false) {
                    return Err(CliError::verdict(format!(
                        "main would move from {} to {}, which does not descend from it: history rewrites are refused",
                        &old.to_string()[..10],
                        &rev[..rev.len().min(10)]
                    )));
                }
                (
                    cohort::registry::timeline(reg.repo(), old)?.commits.len(),
                    Some(reg.registry_id(old)?),
                )
            }
            None => (0, None),
        };
        let (report, _, _) = reg.verify(
            head,
            &VerifyOptions {
                check_from,
                expected_registry: expected,
            },
        )?;
        return render(settings, "push to main", head.to_string(), &report);
    }
    let rev = args.rev.clone().unwrap_or_else(|| "main".into());
    let commit = reg.resolve(&rev)?;
    let id = reg.registry_id(commit)?;
    let opened = Opened { reg, id };
    // Record only shared main (no remote, or equal to the remote's main): the state file guards
    // against rollbacks of what everybody sees.
    let shared = opened.reg.ref_target(MAIN_REF) == Some(commit)
        && (opened.reg.remote_url().is_none()
            || opened.reg.ref_target(REMOTE_MAIN_REF) == Some(commit));
    let outcome = registry_ops::verify_commit(&s.ctx(), &opened, commit, shared)?;
    render(settings, &rev, commit.to_string(), &outcome.report)
}
