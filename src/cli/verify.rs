//! `cohort verify`: check a registry commit (and main's history up to it), a proposed change
//! (`--range`), or a push inside a pre-receive hook (`--from-git-env --since OLD NEW`).

use clap::Args;
use cohort::registry::{self, MAIN_REF, REMOTE_MAIN_REF, Registry};
use cohort::trust::{Problem, Report, VerifyOptions};
use cohort::workflow::registry_ops::{self, Opened};
use serde::Serialize;

use super::error::{CliError, CliResult, problem_line};
use super::session::Session;
use super::settings::Settings;

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The commit to verify (default: main). The verdict is about that commit alone.
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
    /// Re-check every record and signature from the root and read every file from git,
    /// ignoring this machine's memo of earlier checks, the files and verdict earlier
    /// verifications kept (the carry) and its record of the main verified last (nothing is
    /// recorded).
    #[arg(long)]
    full: bool,
    /// Also fail on warnings: records that older trust rules allowed and the current ones
    /// refuse (a registry whose root predates them), and artifact URLs holding a password.
    #[arg(long)]
    strict: bool,
    /// As a committee member (the `--as` key): also open the sealed pseudonym mapping of every
    /// release of your benchmarks and check each cell against the result it comes from.
    #[arg(long, conflicts_with_all = ["range", "from_git_env"])]
    committee: bool,
}

#[derive(Serialize)]
struct ProblemJson<'a> {
    path: &'a str,
    rule: cohort::trust::Rule,
    code: cohort::trust::Code,
    message: &'a str,
    commit: Option<&'a str>,
}

impl<'a> From<&'a Problem> for ProblemJson<'a> {
    fn from(p: &'a Problem) -> ProblemJson<'a> {
        ProblemJson {
            path: &p.path,
            rule: p.rule,
            code: p.code,
            message: &p.message,
            commit: p.commit.as_deref(),
        }
    }
}

#[derive(Serialize)]
struct VerifyJson<'a> {
    ok: bool,
    registry_id: Option<&'a str>,
    commit: String,
    files: usize,
    records: usize,
    /// Records whose checks ran: fewer than `records` when the main grew from one accepted
    /// here, whose records the new files do not reach keep their verdict.
    records_checked: usize,
    signatures_checked: usize,
    signatures_cached: usize,
    /// Files taken from what the last verification on this machine read (same path, same
    /// git blob) instead of being read from git again.
    files_carried: usize,
    /// The main verified here before that this one grew from, when every file of that main
    /// came from the carry and only what the commits since add was read from git.
    grown_from: Option<&'a str>,
    /// When only the parts of that main the checks needed were read from git (an id's
    /// folder, a blob): how many.
    parts_read: Option<usize>,
    problems: Vec<ProblemJson<'a>>,
    warnings: Vec<ProblemJson<'a>>,
    /// Whether this machine now records the commit as the last verified main.
    recorded: bool,
}

struct Verdict<'a> {
    what: &'a str,
    commit: String,
    report: &'a Report,
    strict: bool,
    recorded: bool,
}

fn render(settings: &Settings, v: Verdict) -> CliResult {
    let ui = &settings.ui;
    let report = v.report;
    let ok = report.is_clean() && (!v.strict || report.warnings.is_empty());
    if ui.json {
        ui.json(&VerifyJson {
            ok,
            registry_id: report.registry_id.as_deref(),
            commit: v.commit,
            files: report.files,
            records: report.records,
            records_checked: report.records_checked,
            signatures_checked: report.signatures_checked,
            signatures_cached: report.signatures_cached,
            files_carried: report.files_carried,
            grown_from: report.grown_from.as_deref(),
            parts_read: report.parts_read,
            problems: report.problems.iter().map(ProblemJson::from).collect(),
            warnings: report.warnings.iter().map(ProblemJson::from).collect(),
            recorded: v.recorded,
        });
    } else {
        for p in &report.problems {
            ui.out(problem_line(p));
        }
        for p in &report.warnings {
            let line = format!("warning: {}", problem_line(p));
            if v.strict {
                ui.out(line)
            } else {
                ui.warn(line)
            }
        }
        if ok {
            let sigs = match report.signatures_cached {
                0 => format!("{} signatures checked", report.signatures_checked),
                n => format!(
                    "{} signatures checked ({n} of them through the memo of earlier checks)",
                    report.signatures_checked + n
                ),
            };
            let files = match (report.files_carried, &report.grown_from) {
                (0, _) => format!("{} files", report.files),
                (n, Some(base)) => format!(
                    "{} files ({n} of them those of {}, verified here before{})",
                    report.files,
                    &base[..base.len().min(10)],
                    match report.parts_read {
                        Some(p) =>
                            format!("; {p} of its parts read again where checks needed them"),
                        None => String::new(),
                    }
                ),
                (n, None) => format!(
                    "{} files ({n} of them as the last verification read them)",
                    report.files
                ),
            };
            let records = if report.records_checked < report.records {
                format!(
                    "{} records ({} checked again, the rest out of reach of the new files)",
                    report.records, report.records_checked
                )
            } else {
                format!("{} records", report.records)
            };
            ui.status(format!("{} verifies: {files}, {records}, {sigs}", v.what));
        }
    }
    if ok {
        return Ok(());
    }
    let n = report.problems.len() + if v.strict { report.warnings.len() } else { 0 };
    let err = CliError::verdict(format!("{} does not verify: {n} problem(s)", v.what));
    Err(if report.is_clean() {
        err.hint("the warnings are records older trust rules allowed (admins adopt the current rules with `cohort registry rotate-root`) or artifact URLs that publish a password (code url-credentials); each warning says what to do")
    } else {
        err
    })
}

/// Inside a pre-receive hook: main moves from `since` (absent: main is created) to `rev`.
fn hook(settings: &Settings, args: &VerifyArgs) -> CliResult {
    let reg = Registry::open_from_env().map_err(|e| CliError::user(e.to_string()))?;
    let rev = args
        .rev
        .as_deref()
        .expect("clap requires REV with --since; the hook passes it");
    let head = reg.resolve(rev)?;
    let mut expected = None;
    let mut since = None;
    if let Some(old) = &args.since {
        let old = reg.resolve(old)?;
        // main's history is its first-parent chain: the old main must be on the new one's,
        // not merely an ancestor through a second parent (a rewrite merged back in).
        if !registry::on_first_parent_chain(reg.repo(), head, old)? {
            return Err(CliError::verdict(format!(
                "main would move from {} to {}, which does not descend from it along its first-parent history: history rewrites are refused",
                registry::short(old),
                registry::short(head)
            )));
        }
        expected = Some(reg.registry_id(old)?);
        since = Some(old.to_string());
    }
    let store = registry::StateStore::new(&settings.home);
    // Local state of the registry the old main names: the memo, the timeline and files of the
    // main verified last here (when the push grew from it, only what the push adds is read),
    // or else the carry of what the last verification here read (a pushed file is taken from
    // it only where the pushed tree names the same path and blob and the bytes hash to it).
    let local = expected.as_ref().filter(|_| !args.full);
    let memo = local.map(|id| store.memo(id));
    let opts = VerifyOptions {
        expected_registry: expected.clone(),
        cache: memo.clone(),
    };
    let known = local.and_then(|id| store.timeline(id));
    let loaded = known.as_ref().map(|k| k.commits.len());
    let verified = reg.verify_kept(
        head,
        &opts,
        known,
        |base| local.and_then(|id| store.kept(id, base)),
        |base| local.and_then(|id| store.carry_main(id, base)),
        || local.map(|id| store.carry(id)).unwrap_or_default(),
    )?;
    let mut report = verified.report;
    // What older trust rules allowed stays allowed in history, never in a push.
    // The old main is on the new one's first-parent chain (checked above): files after it are
    // the push.
    let commits = &verified.timeline.commits;
    if let Some(at) = since.and_then(|old| commits.iter().position(|c| *c == old)) {
        let fresh = registry_ops::warnings_after(&report, commits, at);
        report.problems.extend(fresh);
    }
    if let (Some(id), Some(memo)) = (local, &memo) {
        // All three only save time: failing to save them changes nothing. The carry and the
        // timeline are kept only for a main this push makes (the next push grows from it).
        let _ = store.save_memo(id, memo);
        if report.is_clean() && (!args.strict || report.warnings.is_empty()) {
            let _ = store.save_carry(id, head, &verified.index, &verified.tree, &report);
            let _ = store.save_timeline(id, &verified.timeline, loaded);
        }
    }
    render(
        settings,
        Verdict {
            what: "push to main",
            commit: head.to_string(),
            report: &report,
            strict: args.strict,
            recorded: false,
        },
    )
}

pub fn run(settings: &Settings, args: VerifyArgs) -> CliResult {
    let mut s = Session::new(settings);
    s.full = args.full;
    if args.from_git_env {
        if args.range.is_some() {
            return Err(CliError::usage(
                "--from-git-env verifies a push: give --since OLD NEW",
            ));
        }
        return hook(settings, &args);
    }
    let reg = s.registry()?;
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
            Verdict {
                what: &format!("change {range}"),
                commit: head.to_string(),
                report: &report,
                strict: args.strict,
                recorded: false,
            },
        );
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
    let mut outcome = registry_ops::verify_commit(&s.ctx(), &opened, commit, shared)?;
    if args.committee && outcome.report.is_clean() {
        let signer = s.signer()?;
        let ix = opened.reg.index_at(commit)?.0;
        let (n, problems) = cohort::workflow::release::check_committee_releases(&ix, &signer);
        if problems.is_empty() {
            settings.ui.status(format!(
                "{n} release(s) of {}'s benchmarks opened: every cell matches its result",
                signer.handle
            ));
        }
        outcome.report.problems.extend(problems);
    }
    if shared && let Some(p) = &outcome.rollback {
        // The verdict is about REV alone; what this machine saw before is reported beside it.
        settings.ui.warn(format!(
            "warning: not recorded as the verified main: {}",
            p.message
        ));
    }
    render(
        settings,
        Verdict {
            what: &rev,
            commit: commit.to_string(),
            report: &outcome.report,
            strict: args.strict,
            recorded: outcome.recorded,
        },
    )
}
