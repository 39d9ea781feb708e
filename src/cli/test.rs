//! `cohort test run`: the benchmark's reference workflow with any part swapped for a local
//! (not yet submitted) or registered cube, or another demo dataset; submits nothing.

use clap::{Args, Subcommand};
use cohort::workflow::benchmarks;

use super::error::{CliError, CliResult};
use super::session::Session;
use super::settings::Settings;

#[derive(Debug, Args)]
pub struct TestArgs {
    #[command(subcommand)]
    command: TestCommand,
}

#[derive(Debug, Subcommand)]
enum TestCommand {
    /// Run the compatibility test.
    Run {
        /// The benchmark.
        #[arg(short = 'b', long = "benchmark")]
        benchmark: String,
        /// Data preparator: a local cube folder or a registered NAME[:VERSION].
        #[arg(
            short = 'p',
            long = "data-preparator",
            value_name = "CUBE_OR_PATH",
            conflicts_with = "dataset"
        )]
        prep: Option<String>,
        /// Model: a local cube folder or a registered NAME[:VERSION].
        #[arg(short = 'm', long = "model", value_name = "CUBE_OR_PATH")]
        model: Option<String>,
        /// Metrics cube: a local cube folder or a registered NAME[:VERSION].
        #[arg(short = 'e', long = "evaluator", value_name = "CUBE_OR_PATH")]
        metrics: Option<String>,
        /// Another demo dataset (tarball with paths.yaml).
        #[arg(long, value_name = "URL_OR_PATH", conflicts_with = "dataset")]
        demo_dataset: Option<String>,
        /// A dataset prepared on this machine (name, id or id prefix) instead of the demo
        /// data: only infer and evaluate run; the metrics stay here.
        #[arg(short = 'd', long = "dataset")]
        dataset: Option<String>,
        /// Per-task time limit (e.g. 10m).
        #[arg(long, value_parser = humantime::parse_duration)]
        timeout: Option<std::time::Duration>,
        #[command(flatten)]
        devices: super::devices::DeviceArgs,
    },
}

pub fn run(settings: &Settings, args: TestArgs) -> CliResult {
    let TestCommand::Run {
        benchmark,
        prep,
        model,
        metrics,
        demo_dataset,
        dataset,
        timeout,
        devices,
    } = args.command;
    let mut s = Session::new(settings);
    s.devices = devices.devices()?;
    if timeout.is_some() {
        s.task_timeout = timeout;
    }
    let opened = s.open()?;
    let out = match &dataset {
        Some(d) => benchmarks::test_run_on_dataset(
            &s.ctx(),
            &opened,
            &benchmark,
            model.as_deref(),
            metrics.as_deref(),
            d,
        )?,
        None => benchmarks::test_run(
            &s.ctx(),
            &opened,
            &benchmark,
            prep.as_deref(),
            model.as_deref(),
            metrics.as_deref(),
            demo_dataset.as_deref(),
        )?,
    };
    let ui = &settings.ui;
    super::steps::print(ui, &out.steps);
    if ui.json {
        ui.json(&super::json::Tested {
            ok: out.report.ok,
            report: &out.report,
            run_dir: out.run_dir.clone(),
        });
    } else if let Some(m) = &out.metrics {
        ui.out(super::mlcube::fmt_metrics(m));
    }
    if out.report.ok {
        ui.status(format!(
            "compatibility test passed ({})",
            out.run_dir.display()
        ));
        Ok(())
    } else {
        Err(CliError::verdict(format!(
            "compatibility test failed at step {}",
            out.steps
                .failed()
                .map(|f| f.report.step.as_str())
                .unwrap_or("?")
        )))
    }
}
