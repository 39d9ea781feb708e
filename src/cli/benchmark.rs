//! `cohort benchmark`: submit a benchmark (after its reference workflow passes on the demo
//! data), approve or reject it (admin), list and view benchmarks.

use clap::{Args, Subcommand, ValueEnum};
use cohort::model::{DatasetNaming, Policy, Ranking, Release, Sha256, Weighting};
use cohort::workflow::identity::branch_for;
use cohort::workflow::{SubmissionKind, benchmarks, registry_ops};

use super::error::{CliError, CliResult};
use super::session::Session;
use super::settings::Settings;

#[derive(Debug, Args)]
pub struct BenchmarkArgs {
    #[command(subcommand)]
    command: BenchmarkCommand,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ReleaseArg {
    Aggregate,
    PerModel,
    CrossProduct,
}

#[derive(Debug, Args)]
struct SubmitArgs {
    /// The benchmark's name (a-z, 0-9, '_' and '-').
    #[arg(long)]
    name: String,
    /// A short description shown in listings and on the leaderboard site.
    #[arg(long)]
    description: Option<String>,
    /// The data preparator cube (NAME or NAME:VERSION, on main).
    #[arg(long, value_name = "CUBE")]
    data_preparator: String,
    /// The reference model cube.
    #[arg(long, value_name = "CUBE")]
    reference_model: String,
    /// The metrics (evaluator) cube.
    #[arg(long, value_name = "CUBE")]
    metrics: String,
    /// The public demo dataset: a MedPerf-style tarball with paths.yaml at its root, as an
    /// https:// URL or a local file (at most 25 MiB) stored in the registry as a blob.
    #[arg(long, value_name = "URL_OR_PATH")]
    demo_dataset: String,
    /// The demo tarball's expected sha256.
    #[arg(long, value_name = "SHA256")]
    demo_hash: Option<String>,
    /// Other committee members (you are on it), comma-separated.
    #[arg(long, value_delimiter = ',')]
    committee: Vec<String>,
    /// Distinct committee signatures a leaderboard release needs.
    #[arg(long, default_value_t = 1)]
    release_threshold: u32,
    /// What releases show: one score per model, every metric per model, or every model x dataset cell.
    #[arg(long, value_enum, default_value = "per-model")]
    policy: ReleaseArg,
    /// Show dataset names in releases (default: pseudonyms site-1, site-2, ...).
    #[arg(long)]
    show_dataset_names: bool,
    /// Datasets a model needs before any of its numbers are shown.
    #[arg(long, default_value_t = 1)]
    min_datasets: u32,
    /// The metric models are ranked by; it must be one the reference workflow reports on the
    /// demo data. Default: the only one it reports that does not count cases.
    #[arg(long, value_name = "METRIC")]
    primary_metric: Option<String>,
    /// A metric that counts cases, besides `n` (repeatable): shown as a total per model, never
    /// ranked, averaged or charted.
    #[arg(long = "size-metric", value_name = "METRIC")]
    size_metrics: Vec<String>,
    /// Rank lower values first (e.g. an error rate).
    #[arg(long)]
    lower_is_better: bool,
    /// Weight datasets by their size (each result's `n` metric) when aggregating.
    #[arg(long)]
    weight_by_size: bool,
    /// Per-task time limit for the reference workflow (e.g. 10m).
    #[arg(long, value_parser = humantime::parse_duration)]
    timeout: Option<std::time::Duration>,
}

#[derive(Debug, Subcommand)]
enum BenchmarkCommand {
    /// Submit a benchmark: runs the reference workflow on the demo dataset, records its report.
    Submit(Box<SubmitArgs>),
    /// Approve a submitted benchmark (admin): merges it into main.
    Approve {
        #[command(flatten)]
        name: super::entity::BenchmarkRef,
        /// Forge mode: push the approval onto the branch; the pull request's merge does the rest.
        #[arg(long)]
        no_merge: bool,
    },
    /// Reject a submitted benchmark (admin).
    Reject {
        #[command(flatten)]
        name: super::entity::BenchmarkRef,
        /// Why, recorded in the signed rejection.
        #[arg(long)]
        reason: Option<String>,
    },
    /// List approved benchmarks (with --pending: the submissions waiting).
    #[command(visible_alias = "list")]
    Ls {
        /// The submissions waiting on branches instead (= --state pending).
        #[arg(long, conflicts_with = "state")]
        pending: bool,
        #[command(flatten)]
        filter: super::filter::ListFilter,
    },
    /// Show a benchmark.
    View {
        #[command(flatten)]
        name: super::entity::BenchmarkRef,
    },
    /// Run every approved model (priority order) on a prepared dataset: infer, then evaluate.
    Run(super::result::RunArgs),
}

pub fn run(settings: &Settings, args: BenchmarkArgs) -> CliResult {
    let ui = &settings.ui;
    match args.command {
        BenchmarkCommand::Submit(a) => {
            let mut s = Session::new(settings);
            if a.timeout.is_some() {
                s.task_timeout = a.timeout;
            }
            let opened = s.open()?;
            let signer = s.signer()?;
            let demo_hash = match &a.demo_hash {
                Some(h) => Some(
                    h.parse::<Sha256>()
                        .map_err(|e| CliError::usage(format!("--demo-hash: {e}")))?,
                ),
                None => None,
            };
            let sub = benchmarks::BenchmarkSubmission {
                name: a.name.clone(),
                description: a.description.clone(),
                data_preparator: a.data_preparator.clone(),
                reference_model: a.reference_model.clone(),
                metrics: a.metrics.clone(),
                demo_dataset: a.demo_dataset.clone(),
                demo_hash,
                committee: a.committee.clone(),
                release_threshold: a.release_threshold,
                policy: Policy {
                    release: match a.policy {
                        ReleaseArg::Aggregate => Release::Aggregate,
                        ReleaseArg::PerModel => Release::PerModel,
                        ReleaseArg::CrossProduct => Release::CrossProduct,
                    },
                    dataset_names: if a.show_dataset_names {
                        DatasetNaming::Shown
                    } else {
                        DatasetNaming::Pseudonymised
                    },
                    min_datasets: a.min_datasets,
                    primary_metric: a.primary_metric.clone().unwrap_or_default(),
                    ranking: if a.lower_is_better {
                        Ranking::LowerIsBetter
                    } else {
                        Ranking::HigherIsBetter
                    },
                    weighting: if a.weight_by_size {
                        Weighting::Size
                    } else {
                        Weighting::Equal
                    },
                    size_metrics: a.size_metrics.clone(),
                },
                primary_metric: a.primary_metric.clone(),
            };
            let out = benchmarks::submit_benchmark(&s.ctx(), &opened, &signer, &sub)?;
            super::steps::print(ui, &out.compat.steps);
            if let Some(m) = &out.chosen_metric {
                ui.status(format!(
                    "primary metric: {m}, the only metric the reference workflow reports that does not count cases (`--primary-metric` chooses another)"
                ));
            }
            match out.submitted {
                Some((submitted, record)) => {
                    if ui.json {
                        ui.json(&super::json::BenchmarkSubmitted {
                            branch: submitted.branch.clone(),
                            version: record.version,
                            primary_metric: record.policy.primary_metric.clone(),
                            report: &record.report,
                        });
                    } else {
                        ui.out(&submitted.branch);
                        if let Some(m) = &out.compat.metrics {
                            ui.status(format!(
                                "reference metrics on the demo dataset: {}",
                                super::mlcube::fmt_metrics(m)
                            ));
                        }
                        ui.status(format!("benchmark {} v{} written on {}; next: `cohort registry push`, then an admin runs `cohort benchmark approve {}`", record.name, record.version, submitted.branch, record.name));
                    }
                    Ok(())
                }
                None => Err(CliError::verdict(format!(
                    "the reference workflow failed at step {}; the benchmark was not submitted",
                    out.compat
                        .steps
                        .failed()
                        .map(|f| f.report.step.as_str())
                        .unwrap_or("?")
                ))),
            }
        }
        BenchmarkCommand::Approve { name, no_merge } => {
            let name = name.name();
            let s = Session::new(settings);
            let opened = s.open()?;
            let signer = s.signer()?;
            let ctx = s.ctx();
            let _ = registry_ops::sync(&ctx, &opened);
            let branch = branch_for(
                &opened,
                SubmissionKind::Benchmark,
                &format!("benchmarks/{name}/"),
            )?;
            let (sub, landed) = registry_ops::approve(&ctx, &opened, &signer, &branch, !no_merge)?;
            match landed {
                Some(l) => super::landed::report_decided(
                    &s,
                    &format!("approved benchmark {name} ({})", sub.subject),
                    &l,
                ),
                None => {
                    super::landed::decided_json(
                        &s,
                        &format!("approved benchmark {name}"),
                        None,
                        Some((&branch, 0)),
                    );
                    ui.status(format!(
                        "approval pushed onto {branch}; merge its pull request once CI passes"
                    ))
                }
            }
            Ok(())
        }
        BenchmarkCommand::Reject { name, reason } => {
            let name = name.name();
            let s = Session::new(settings);
            let opened = s.open()?;
            let signer = s.signer()?;
            let ctx = s.ctx();
            let _ = registry_ops::sync(&ctx, &opened);
            let branch = branch_for(
                &opened,
                SubmissionKind::Benchmark,
                &format!("benchmarks/{name}/"),
            )?;
            let (_, landed) = registry_ops::reject(&ctx, &opened, &signer, &branch, reason)?;
            super::landed::report_decided(&s, &format!("rejected benchmark {name}"), &landed);
            Ok(())
        }
        BenchmarkCommand::Ls { pending, filter } => {
            let s = Session::new(settings);
            let mut f = filter.resolve(&s)?;
            if pending {
                f.state = Some(super::filter::State::Pending);
            }
            let opened = s.open()?;
            if f.off_main() {
                return super::filter::print_submissions(
                    &s,
                    &opened,
                    SubmissionKind::Benchmark,
                    &f,
                    "benchmark",
                );
            }
            let ix = opened.listing(&s.ctx(), &["benchmarks/"], &|_| true)?;
            let mut all = benchmarks::benchmarks(&ix);
            all.retain(|(_, b)| f.keeps(&b.owner));
            if ui.json {
                ui.json(
                    &all.iter()
                        .map(|(p, b)| super::json::BenchmarkRow {
                            name: b.name.clone(),
                            version: b.version,
                            owner: b.owner.clone(),
                            committee: b.committee.clone(),
                            data_preparator: &b.data_preparator,
                            reference_model: &b.reference_model,
                            metrics: &b.metrics,
                            policy: &b.policy,
                            path: p.clone(),
                        })
                        .collect::<Vec<_>>(),
                );
            } else {
                let mut t = super::table::new(&[
                    "benchmark",
                    "version",
                    "owner",
                    "committee",
                    "preparator",
                    "reference model",
                    "metrics",
                ]);
                for (_, b) in all {
                    t.add_row(vec![
                        b.name,
                        b.version.to_string(),
                        b.owner,
                        b.committee.join(", "),
                        format!("{} v{}", b.data_preparator.name, b.data_preparator.version),
                        format!("{} v{}", b.reference_model.name, b.reference_model.version),
                        format!("{} v{}", b.metrics.name, b.metrics.version),
                    ]);
                }
                super::table::print(
                    ui,
                    &t,
                    "no benchmarks yet (`cohort benchmark ls --pending` shows submitted ones)",
                );
            }
            Ok(())
        }
        BenchmarkCommand::Run(a) => super::result::run_benchmark(settings, a),
        BenchmarkCommand::View { name } => {
            let name = name.name();
            let s = Session::new(settings);
            let opened = s.open()?;
            let ix = opened.index_of(&[&format!("benchmarks/{name}/")])?;
            let (p, b, r) = benchmarks::approved_in(&opened, &ix, &name)?;
            if ui.json {
                ui.json(&super::json::Viewed {
                    path: p.clone(),
                    sha256: r.sha256.to_string(),
                    record: &b,
                    local_only: None,
                });
            } else {
                ui.out(format!("# {p} (sha256 {})", r.sha256));
                ui.out(String::from_utf8_lossy(ix.bytes(&p).unwrap_or_default()));
            }
            Ok(())
        }
    }
}
