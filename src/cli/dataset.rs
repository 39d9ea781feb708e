//! `cohort dataset`: prepare private data at the site, register its metadata (statistics
//! sealed), associate it with a benchmark (metrics sealed), check it, list and view datasets.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use cohort::workflow::datasets;

use super::error::{CliError, CliResult};
use super::session::Session;
use super::settings::Settings;

#[derive(Debug, Args)]
pub struct DatasetArgs {
    #[command(subcommand)]
    command: DatasetCommand,
}

#[derive(Debug, Subcommand)]
enum DatasetCommand {
    /// Prepare raw data with the benchmark's preparator (prepare, sanity_check, statistics).
    Prepare {
        /// The benchmark.
        #[arg(short = 'b', long = "benchmark")]
        benchmark: String,
        /// A name for the dataset (a-z, 0-9, '_' and '-').
        #[arg(long)]
        name: String,
        #[arg(long, value_name = "DIR")]
        data_path: PathBuf,
        #[arg(long, value_name = "DIR")]
        labels_path: PathBuf,
        /// Per-task time limit (e.g. 30m).
        #[arg(long, value_parser = humantime::parse_duration)]
        timeout: Option<std::time::Duration>,
        #[command(flatten)]
        devices: super::devices::DeviceArgs,
    },
    /// Register a prepared dataset's metadata (shows exactly what is shared first).
    Submit { name: String },
    /// Run the reference model and metrics on the prepared data and ask to join the benchmark.
    Associate {
        /// The dataset (name, id or id prefix).
        #[arg(short = 'd', long = "dataset")]
        dataset: String,
        /// The benchmark.
        #[arg(short = 'b', long = "benchmark")]
        benchmark: String,
        #[arg(long, value_parser = humantime::parse_duration)]
        timeout: Option<std::time::Duration>,
        #[command(flatten)]
        devices: super::devices::DeviceArgs,
    },
    /// Recompute the prepared data's content hash and compare it with the registry.
    Check {
        dataset: String,
        /// Re-hash only the files whose size, times or inode changed since the last check
        /// (what `benchmark run` does); by default every byte is read.
        #[arg(long)]
        quick: bool,
    },
    /// Datasets prepared here and registered datasets.
    Ls,
    /// Show a dataset (name, id or id prefix); its statistics too if you may read them.
    View { dataset: String },
}

pub fn run(settings: &Settings, args: DatasetArgs) -> CliResult {
    let ui = &settings.ui;
    let mut s = Session::new(settings);
    match args.command {
        DatasetCommand::Prepare {
            benchmark,
            name,
            data_path,
            labels_path,
            timeout,
            devices,
        } => {
            s.devices = devices.devices()?;
            if timeout.is_some() {
                s.task_timeout = timeout;
            }
            let opened = s.open()?;
            let me = s.handle()?;
            let out = datasets::prepare_dataset(
                &s.ctx(),
                &opened,
                &me,
                &benchmark,
                &name,
                &data_path,
                &labels_path,
            )?;
            super::steps::print(ui, &out.steps);
            match out.dataset {
                Some(d) => {
                    if ui.json {
                        ui.json(&serde_json::json!({"name": d.name, "id": d.id, "content_sha256": d.content_sha256.to_string(), "files": d.files, "bytes": d.bytes, "statistics": d.statistics}));
                    } else {
                        ui.out(&d.id);
                        ui.status(format!(
                            "prepared `{}`: {} files, {} bytes, content hash {}; statistics: {}",
                            d.name,
                            d.files,
                            d.bytes,
                            d.content_sha256.short(),
                            super::mlcube::fmt_metrics(&d.statistics)
                        ));
                        ui.status(format!("next: `cohort dataset submit {}`", d.name));
                    }
                    Ok(())
                }
                None => Err(CliError::verdict(format!(
                    "preparation failed at step {}; nothing was kept (logs: {})",
                    out.steps
                        .failed()
                        .map(|f| f.report.step.as_str())
                        .unwrap_or("?"),
                    out.run_dir.join("logs").display()
                ))),
            }
        }
        DatasetCommand::Submit { name } => {
            let opened = s.open()?;
            let signer = s.signer()?;
            let ctx = s.ctx();
            let preview = datasets::preview_dataset(&ctx, &opened, &signer, &name)?;
            eprintln!(
                "This record will be shared with everyone who can read the registry ({}):\n",
                preview.path
            );
            eprintln!("{}", String::from_utf8_lossy(&preview.bytes));
            eprintln!(
                "The statistics ({} bytes, sealed) can be read only by: {}.",
                preview.sealed.len(),
                preview
                    .record
                    .statistics
                    .recipients
                    .iter()
                    .map(|r| r.handle.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            eprintln!("The data itself never leaves this machine.");
            if !super::session::confirm(settings, "Submit this dataset?")? {
                return Err(CliError::user("not submitted"));
            }
            let sub = datasets::submit_dataset(&opened, &signer, preview)?;
            if ui.json {
                ui.json(&serde_json::json!({"branch": sub.branch, "files": sub.files}));
            } else {
                ui.out(&sub.branch);
                ui.status(format!("dataset registration written on {}; next: `cohort registry push`; a committee member merges it after decrypting the sealed statistics (`cohort registry merge {}`)", sub.branch, sub.branch));
            }
            Ok(())
        }
        DatasetCommand::Associate {
            dataset,
            benchmark,
            timeout,
            devices,
        } => {
            s.devices = devices.devices()?;
            if timeout.is_some() {
                s.task_timeout = timeout;
            }
            let opened = s.open()?;
            let signer = s.signer()?;
            let out =
                datasets::associate_dataset(&s.ctx(), &opened, &signer, &dataset, &benchmark)?;
            super::steps::print(ui, &out.steps);
            if let Some(m) = &out.metrics {
                ui.status(format!(
                    "reference model on your data (sealed to the committee and you): {}",
                    super::mlcube::fmt_metrics(m)
                ));
            }
            match out.submitted {
                Some(sub) => {
                    if ui.json {
                        ui.json(&serde_json::json!({"branch": sub.branch, "metrics": out.metrics}));
                    } else {
                        ui.out(&sub.branch);
                        ui.status(format!("association request written on {}; push it, then the {benchmark} committee approves", sub.branch));
                    }
                    Ok(())
                }
                None => Err(CliError::verdict(format!(
                    "the reference workflow failed on `{dataset}` at step {}; nothing was submitted",
                    out.steps
                        .failed()
                        .map(|f| f.report.step.as_str())
                        .unwrap_or("?")
                ))),
            }
        }
        DatasetCommand::Check { dataset, quick } => {
            let opened = s.open()?;
            let ix = opened.index()?;
            let ctx = s.ctx();
            let (local, registered) = datasets::find(&ctx, &ix, &dataset)?;
            let expected = registered
                .as_ref()
                .map(|(_, d)| d.content_sha256.clone())
                .unwrap_or(local.content_sha256.clone());
            let against = if registered.is_some() {
                "the registry"
            } else {
                "its preparation (not registered yet)"
            };
            match datasets::check_content(&ctx, &local, &expected, quick)? {
                Ok(()) => {
                    if ui.json {
                        ui.json(&serde_json::json!({"ok": true, "content_sha256": expected.to_string()}));
                    }
                    ui.status(format!(
                        "`{}` matches {against} (content hash {})",
                        local.name,
                        expected.short()
                    ));
                    Ok(())
                }
                Err(changes) => {
                    if ui.json {
                        ui.json(&serde_json::json!({"ok": false, "changes": changes}));
                    } else {
                        for c in &changes {
                            ui.out(c);
                        }
                    }
                    Err(CliError::verdict(format!(
                        "the prepared data of `{}` does not match {against}",
                        local.name
                    ))
                    .hint("prepare the dataset again from the raw data"))
                }
            }
        }
        DatasetCommand::Ls => {
            let opened = s.open()?;
            let ix = opened.index()?;
            let ctx = s.ctx();
            let local = datasets::local_datasets(&ctx)?;
            let registered = datasets::registered(&ix);
            let mut rows: Vec<(String, String, String, String, String)> = Vec::new();
            for l in &local {
                let reg = registered.iter().any(|(_, d)| d.id == l.id);
                rows.push((
                    l.name.clone(),
                    l.id[..12].to_string(),
                    l.owner.clone(),
                    l.benchmark.name.clone(),
                    if reg {
                        "prepared here, registered".into()
                    } else {
                        "prepared here".into()
                    },
                ));
            }
            for (_, d) in &registered {
                if !local.iter().any(|l| l.id == d.id) {
                    rows.push((
                        d.name.clone(),
                        d.id[..12].to_string(),
                        d.owner.clone(),
                        d.benchmark.name.clone(),
                        "registered".into(),
                    ));
                }
            }
            if ui.json {
                ui.json(&rows.iter().map(|r| serde_json::json!({"name": r.0, "id": r.1, "owner": r.2, "benchmark": r.3, "state": r.4})).collect::<Vec<_>>());
            } else {
                let mut t = super::table::new(&["dataset", "id", "owner", "benchmark", "state"]);
                for r in rows {
                    t.add_row(vec![r.0, r.1, r.2, r.3, r.4]);
                }
                ui.out(t.to_string());
            }
            Ok(())
        }
        DatasetCommand::View { dataset } => {
            let opened = s.open()?;
            let ix = opened.index()?;
            let id = datasets::resolve_dataset_id(&ix, &dataset)?;
            let (p, _) = ix.dataset(&id).expect("resolved");
            ui.out(format!("# {p}"));
            ui.out(String::from_utf8_lossy(ix.bytes(p).unwrap_or_default()));
            if let Ok(signer) = s.signer() {
                match datasets::statistics(&ix, &id, &signer) {
                    Ok(m) => ui.out(format!(
                        "# statistics (decrypted with {}'s key)\n{}",
                        signer.handle,
                        super::mlcube::fmt_metrics(&m)
                    )),
                    Err(_) => ui.status(format!(
                        "the statistics are sealed; {} is not among their recipients",
                        signer.handle
                    )),
                }
            }
            Ok(())
        }
    }
}
