//! `cohort benchmark run` rendering and `cohort result ls|view|submit`: run the models at the
//! site, see the values, submit them sealed.

use clap::{Args, Subcommand};
use cohort::model::ResultStatus;
use cohort::workflow::execution::{self, ModelRun, RunOptions};
use cohort::workflow::{WorkflowError, results};

use super::error::{CliError, CliResult};
use super::session::Session;
use super::settings::Settings;

#[derive(Debug, Args)]
pub struct ResultArgs {
    #[command(subcommand)]
    command: ResultCommand,
}

#[derive(Debug, Subcommand)]
enum ResultCommand {
    /// Results computed here (submitted or not) and, with --registered, those in the registry.
    #[command(visible_alias = "list")]
    Ls {
        /// The benchmark.
        #[arg(short = 'b', long = "benchmark")]
        benchmark: Option<String>,
        /// The results registered on main instead (= --state approved).
        #[arg(long)]
        registered: bool,
        #[command(flatten)]
        filter: super::filter::ListFilter,
    },
    /// Show a registered result (its values if you are a recipient).
    View {
        /// The result's path in the registry, as `cohort result ls --registered` lists it.
        path: String,
    },
    /// Release the benchmark's results (committee): aggregate them under the sharing policy and
    /// sign the leaderboard (co-signed up to the release threshold).
    Release {
        /// The benchmark.
        #[arg(short = 'b', long = "benchmark")]
        benchmark: String,
    },
    /// Submit results (after showing you the exact values), sealed to the committee and you.
    Submit {
        /// The benchmark.
        #[arg(short = 'b', long = "benchmark")]
        benchmark: Option<String>,
        /// The dataset (name, id or id prefix).
        #[arg(short = 'd', long = "dataset")]
        dataset: Option<String>,
        /// Every pending result, of every benchmark and dataset.
        #[arg(long)]
        all: bool,
    },
}

fn print_runs(settings: &Settings, runs: &[ModelRun]) {
    let ui = &settings.ui;
    if ui.json {
        ui.json(
            &runs
                .iter()
                .map(|r| super::json::RunRow {
                    model: r.model.name.clone(),
                    version: r.model.version,
                    priority: r.priority,
                    status: r.status.clone(),
                    seconds: r.seconds,
                    metrics: r.result.metrics.as_ref(),
                    failure: r.result.failure.as_ref(),
                    key: r.result.key.to_string(),
                })
                .collect::<Vec<_>>(),
        );
        return;
    }
    let mut t = super::table::new(&["model", "priority", "status", "time", "metrics"]);
    for r in runs {
        let detail = match (&r.result.metrics, &r.result.failure) {
            (Some(m), _) => super::mlcube::fmt_metrics(m),
            (_, Some(f)) => format!(
                "failed at {} ({}{})",
                f.stage,
                f.reason,
                f.exit_code
                    .map(|c| format!(", exit {c}"))
                    .unwrap_or_default()
            ),
            _ => String::new(),
        };
        t.add_row(vec![
            format!("{} v{}", r.model.name, r.model.version),
            r.priority.map(|p| p.to_string()).unwrap_or_default(),
            r.status.clone(),
            format!("{:.1}s", r.seconds),
            detail,
        ]);
    }
    ui.out(t.to_string());
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The benchmark.
    #[arg(short = 'b', long = "benchmark")]
    pub benchmark: String,
    /// The dataset (name, id or id prefix), prepared on this machine.
    #[arg(short = 'd', long = "dataset")]
    pub dataset: String,
    /// Only these models (repeatable).
    #[arg(short = 'm', long = "model")]
    pub models: Vec<String>,
    /// Keep going when a model fails (its failure receipt is kept).
    #[arg(long)]
    pub ignore_model_errors: bool,
    /// Run again even when a result for the same inputs exists.
    #[arg(long)]
    pub no_cache: bool,
    /// Run again (as --no-cache) and submit the new results as replacing the registered ones
    /// (`supersedes`); releases use only the newest result of each model on each dataset.
    #[arg(long)]
    pub rerun: bool,
    /// Re-hash every byte of the prepared data instead of only the files whose size, times
    /// or inode changed since the last check.
    #[arg(long)]
    pub full_check: bool,
    /// Per-task time limit (e.g. 30m).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub timeout: Option<std::time::Duration>,
    /// Largest predictions a model may write (e.g. 500M, 2G; default 1G).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_output: Option<u64>,
    #[command(flatten)]
    pub devices: super::devices::DeviceArgs,
}

pub fn run_benchmark(settings: &Settings, a: RunArgs) -> CliResult {
    let RunArgs {
        benchmark: bench,
        dataset,
        models,
        ignore_model_errors: ignore_errors,
        no_cache,
        rerun,
        full_check,
        timeout,
        max_output,
        devices,
    } = a;
    let mut s = Session::new(settings);
    s.devices = devices.devices()?;
    if timeout.is_some() {
        s.task_timeout = timeout;
    }
    if let Some(m) = max_output {
        s.max_output_bytes = m;
    }
    let opened = s.open()?;
    // The site's key only when a private model is among the benchmark's models (the records
    // that decide it alone: no full index twice).
    let ix = opened.index_of(&["mlcubes/", "benchmarks/", "associations/"])?;
    let site_key = if execution::has_private_models(&ix, &bench) {
        let signer = s.signer()?;
        Some(cohort::workflow::private::SiteKey::of(&signer, None))
    } else {
        None
    };
    let opts = RunOptions {
        models,
        ignore_errors,
        no_cache,
        rerun,
        site_key,
        full_check,
    };
    match execution::run_benchmark(&s.ctx(), &opened, &bench, &dataset, &opts) {
        Ok(runs) => {
            print_runs(settings, &runs);
            let failed = runs
                .iter()
                .filter(|r| r.result.status == ResultStatus::Failed)
                .count();
            settings.ui.status(format!(
                "{} model(s) run on `{dataset}`{}; next: `cohort result submit -b {bench} -d {dataset}`",
                runs.len(),
                if failed > 0 { format!(", {failed} failed (failure receipts kept)") } else { String::new() }
            ));
            Ok(())
        }
        Err(WorkflowError::ModelFailed { model, runs }) => {
            print_runs(settings, &runs);
            if let Some(last) = runs.last() {
                super::steps::print(&settings.ui, &last.steps);
            }
            Err(CliError::verdict(format!("model {model} failed on `{dataset}`; its failure receipt was kept"))
                .hint("pass --ignore-model-errors to run the other models anyway; the receipt can be submitted like a result"))
        }
        Err(e) => Err(e.into()),
    }
}

pub fn run(settings: &Settings, args: ResultArgs) -> CliResult {
    let ui = &settings.ui;
    let s = Session::new(settings);
    match args.command {
        ResultCommand::Ls {
            benchmark,
            registered,
            filter,
        } => {
            use super::filter::State;
            let f = filter.resolve(&s)?;
            let opened = s.open()?;
            if f.off_main() {
                return super::filter::print_submissions(
                    &s,
                    &opened,
                    cohort::workflow::SubmissionKind::Result,
                    &f,
                    "result",
                );
            }
            let ix = opened.index()?;
            if registered || f.state == Some(State::Approved) {
                let mut rows = results::registered(&ix, benchmark.as_deref());
                rows.retain(|(_, r)| f.keeps(&r.owner));
                if ui.json {
                    ui.json(
                        &rows
                            .iter()
                            .map(|(p, r)| super::json::RegisteredResultRow {
                                path: p.clone(),
                                model: r.model.name.clone(),
                                dataset: r.dataset.id.clone(),
                                owner: r.owner.clone(),
                                status: &r.status,
                            })
                            .collect::<Vec<_>>(),
                    );
                } else {
                    let mut t =
                        super::table::new(&["result", "model", "dataset", "owner", "status"]);
                    for (p, r) in rows {
                        t.add_row(vec![
                            p,
                            r.model.name,
                            r.dataset.id[..12].to_string(),
                            r.owner,
                            format!("{:?}", r.status).to_lowercase(),
                        ]);
                    }
                    super::table::print(ui, &t, "no results on main yet");
                }
                return Ok(());
            }
            let ctx = s.ctx();
            let rows: Vec<_> = execution::local_results(&ctx)
                .into_iter()
                .filter(|r| benchmark.as_deref().is_none_or(|b| b == r.benchmark.name))
                .filter(|r| f.keeps(&r.owner))
                .collect();
            if ui.json {
                ui.json(
                    &rows
                        .iter()
                        .map(|r| super::json::LocalResultRow {
                            benchmark: r.benchmark.name.clone(),
                            dataset: r.dataset_name.clone(),
                            model: r.model.name.clone(),
                            status: &r.status,
                            metrics: r.metrics.as_ref(),
                            failure: r.failure.as_ref(),
                            submitted: results::is_submitted(&ix, r),
                            key: r.key.to_string(),
                        })
                        .collect::<Vec<_>>(),
                );
            } else {
                let mut t = super::table::new(&[
                    "benchmark",
                    "dataset",
                    "model",
                    "status",
                    "submitted",
                    "values",
                ]);
                for r in rows {
                    let values = r
                        .metrics
                        .as_ref()
                        .map(super::mlcube::fmt_metrics)
                        .unwrap_or_else(|| {
                            r.failure
                                .as_ref()
                                .map(|f| format!("failed at {}", f.stage))
                                .unwrap_or_default()
                        });
                    t.add_row(vec![
                        r.benchmark.name.clone(),
                        r.dataset_name.clone(),
                        format!("{} v{}", r.model.name, r.model.version),
                        format!("{:?}", r.status).to_lowercase(),
                        if results::is_submitted(&ix, &r) {
                            "yes".into()
                        } else {
                            "no".into()
                        },
                        values,
                    ]);
                }
                super::table::print(
                    ui,
                    &t,
                    "no results here yet (`cohort benchmark run` makes them)",
                );
            }
        }
        ResultCommand::View { path } => {
            let opened = s.open()?;
            let ix = opened.index()?;
            let bytes = ix.bytes(&path).ok_or_else(|| {
                CliError::user(format!("no file {path} on main"))
                    .hint("`cohort result ls --registered` lists results")
            })?;
            if ui.json {
                let signer = s.signer().ok();
                let sealed = signer
                    .as_ref()
                    .and_then(|k| results::open_result(&ix, &path, k).ok());
                ui.json(&super::json::SealedView {
                    path: path.clone(),
                    sha256: ix.sha(&path).map(|h| h.to_string()),
                    record: super::json::toml_record(bytes),
                    sealed,
                    reader: signer.map(|k| k.handle.clone()),
                });
                return Ok(());
            }
            ui.out(String::from_utf8_lossy(bytes));
            if let Ok(signer) = s.signer() {
                match results::open_result(&ix, &path, &signer) {
                    Ok(m) => ui.out(format!(
                        "# values (decrypted with {}'s key)\n{}",
                        signer.handle,
                        super::mlcube::fmt_metrics(&m)
                    )),
                    Err(e) => ui.status(e.to_string()),
                }
            }
        }
        ResultCommand::Release { benchmark } => release(&s, &benchmark)?,
        ResultCommand::Submit {
            benchmark,
            dataset,
            all,
        } => {
            let opened = s.open()?;
            let signer = s.signer()?;
            let ix = opened.index()?;
            let ctx = s.ctx();
            if !all && benchmark.is_none() && dataset.is_none() {
                return Err(CliError::usage(
                    "say which results: -b BENCHMARK and/or -d DATASET, or --all",
                ));
            }
            let pending = results::pending(&ctx, &ix, benchmark.as_deref(), dataset.as_deref());
            let mine: Vec<_> = pending
                .into_iter()
                .filter(|r| r.owner == signer.handle)
                .collect();
            if mine.is_empty() {
                if ui.json {
                    ui.json(&super::json::Written {
                        branch: None,
                        files: Vec::new(),
                    });
                }
                ui.status("no results to submit");
                return Ok(());
            }
            eprintln!(
                "These values will be sealed to the benchmark committee and you; nobody else can read them:"
            );
            for r in &mine {
                let v = r
                    .metrics
                    .as_ref()
                    .map(super::mlcube::fmt_metrics)
                    .unwrap_or_else(|| {
                        r.failure
                            .as_ref()
                            .map(|f| {
                                format!("failure receipt: {} at {} (no data)", f.reason, f.stage)
                            })
                            .unwrap_or_default()
                    });
                eprintln!(
                    "  {} / {} / {} v{}: {v}",
                    r.benchmark.name, r.dataset_name, r.model.name, r.model.version
                );
            }
            if !super::session::confirm(settings, &format!("Submit {} result(s)?", mine.len()))? {
                return Err(CliError::user("not submitted"));
            }
            let sub = results::submit_results(&ctx, &opened, &signer, &mine)?;
            if ui.json {
                ui.json(&super::json::Written {
                    branch: Some(sub.branch.clone()),
                    files: sub.files.clone(),
                });
            } else {
                ui.out(&sub.branch);
                ui.status(format!("{} result(s) written on {}; next: `cohort registry push` (a committee member merges them, after decrypting them)", mine.len(), sub.branch));
            }
        }
    }
    Ok(())
}

fn release(s: &Session, benchmark: &str) -> CliResult {
    use cohort::workflow::release::Released;
    let ui = &s.settings.ui;
    let opened = s.open()?;
    let signer = s.signer()?;
    let released = cohort::workflow::release::release(&s.ctx(), &opened, &signer, benchmark)?;
    let record = match &released {
        Released::Landed { record, .. } | Released::NeedsCosign { record, .. } => record,
    };
    for x in &record.excluded {
        ui.warn(format!(
            "left out {} ({}); the signed release lists it",
            x.path, x.reason
        ));
    }
    let mut out = Vec::new();
    let rendered = if ui.json {
        cohort::report::render::json::write(record, &mut out)
    } else {
        cohort::report::render::table::write(record, &mut out)
    };
    rendered.map_err(|e| CliError::user(e.to_string()))?;
    ui.out(String::from_utf8_lossy(&out).trim_end());
    match released {
        Released::Landed { landed, record } => {
            super::landed::report_landed(s, &format!("release {} of {benchmark}", record.number), &landed)
        }
        Released::NeedsCosign { branch, threshold, .. } => ui.status(format!(
            "release proposed on {branch}; it needs {threshold} committee signatures: other members run `cohort registry cosign {branch}` (which recomputes it first), then `cohort registry merge {branch}`"
        )),
    }
    Ok(())
}

/// `--max-output` sizes, as docker spells them (`500m`, `2g`).
pub fn parse_size(s: &str) -> Result<u64, String> {
    cohort::mlcube::parse_bytes(s).map(|n| n as u64)
}
