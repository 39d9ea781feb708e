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
        /// The raw data folder (read only; it never leaves this machine).
        #[arg(long, value_name = "DIR")]
        data_path: PathBuf,
        /// The raw labels folder (read only; it never leaves this machine).
        #[arg(long, value_name = "DIR")]
        labels_path: PathBuf,
        /// Per-task time limit (e.g. 30m).
        #[arg(long, value_parser = humantime::parse_duration)]
        timeout: Option<std::time::Duration>,
        #[command(flatten)]
        devices: super::devices::DeviceArgs,
    },
    /// Register a prepared dataset's metadata (shows exactly what is shared first).
    Submit {
        #[command(flatten)]
        name: super::entity::DatasetRef,
        /// What the data is, for the committee only (sealed to it and you, never public).
        #[arg(long)]
        description: Option<String>,
        /// Where the data comes from (a hospital, a ward), for the committee only (sealed).
        #[arg(long)]
        location: Option<String>,
    },
    /// Run the reference model and metrics on the prepared data and ask to join the benchmark.
    Associate {
        /// The dataset (name, id or id prefix).
        #[arg(short = 'd', long = "dataset")]
        dataset: String,
        /// The benchmark.
        #[arg(short = 'b', long = "benchmark")]
        benchmark: String,
        /// Per-task time limit (e.g. 30m).
        #[arg(long, value_parser = humantime::parse_duration)]
        timeout: Option<std::time::Duration>,
        #[command(flatten)]
        devices: super::devices::DeviceArgs,
    },
    /// Recompute the prepared data's content hash and compare it with the registry.
    Check {
        #[command(flatten)]
        dataset: super::entity::DatasetRef,
        /// Re-hash only the files whose size, times or inode changed since the last check
        /// (what `benchmark run` does); by default every byte is read.
        #[arg(long)]
        quick: bool,
    },
    /// Datasets prepared here and registered datasets.
    #[command(visible_alias = "list")]
    Ls(super::filter::ListFilter),
    /// Show a dataset (name, id or id prefix); its statistics too if you may read them.
    View {
        #[command(flatten)]
        dataset: super::entity::DatasetRef,
    },
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
                        ui.json(&super::json::Prepared {
                            name: d.name.clone(),
                            id: d.id.clone(),
                            content_sha256: d.content_sha256.to_string(),
                            files: d.files,
                            bytes: d.bytes,
                            statistics: &d.statistics,
                        });
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
        DatasetCommand::Submit {
            name,
            description,
            location,
        } => {
            let name = name.name();
            let opened = s.open()?;
            let signer = s.signer()?;
            let ctx = s.ctx();
            let about = cohort::model::About {
                description,
                location,
            };
            let preview = datasets::preview_dataset(&ctx, &opened, &signer, &name, &about)?;
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
            if preview.sealed_about.is_some() {
                eprintln!(
                    "The description and location are sealed to the same people; the record above does not show them."
                );
            }
            eprintln!("The data itself never leaves this machine.");
            if !super::session::confirm(settings, "Submit this dataset?")? {
                return Err(CliError::user("not submitted"));
            }
            let sub = datasets::submit_dataset(&opened, &signer, preview)?;
            if ui.json {
                ui.json(&super::json::Written {
                    branch: Some(sub.branch.clone()),
                    files: sub.files.clone(),
                });
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
                        ui.json(&super::json::DatasetAssociated {
                            branch: sub.branch.clone(),
                            metrics: out.metrics.as_ref(),
                        });
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
            let dataset = dataset.name();
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
                        ui.json(&super::json::DatasetChecked {
                            ok: true,
                            content_sha256: Some(expected.to_string()),
                            changes: Vec::new(),
                        });
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
                        ui.json(&super::json::DatasetChecked {
                            ok: false,
                            content_sha256: None,
                            changes: changes.clone(),
                        });
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
        DatasetCommand::Ls(filter) => {
            let f = filter.resolve(&s)?;
            let opened = s.open()?;
            if f.off_main() {
                return super::filter::print_submissions(
                    &s,
                    &opened,
                    cohort::workflow::SubmissionKind::Dataset,
                    &f,
                    "dataset",
                );
            }
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
            // Approved: registered on main (prepared here or not).
            let approved_only = f.state.is_some();
            rows.retain(|r| f.keeps(&r.2) && (!approved_only || r.4.ends_with("registered")));
            if ui.json {
                ui.json(
                    &rows
                        .iter()
                        .map(|r| super::json::DatasetRow {
                            name: r.0.clone(),
                            id: r.1.clone(),
                            owner: r.2.clone(),
                            benchmark: r.3.clone(),
                            state: r.4.clone(),
                        })
                        .collect::<Vec<_>>(),
                );
            } else {
                let mut t = super::table::new(&["dataset", "id", "owner", "benchmark", "state"]);
                for r in rows {
                    t.add_row(vec![r.0, r.1, r.2, r.3, r.4]);
                }
                super::table::print(ui, &t, "no datasets yet");
            }
            Ok(())
        }
        DatasetCommand::View { dataset } => {
            let dataset = dataset.name();
            let opened = s.open()?;
            let ix = opened.index()?;
            let id = datasets::resolve_dataset_id(&ix, &dataset)?;
            let (p, _) = ix.dataset(&id).expect("resolved");
            if ui.json {
                let signer = s.signer().ok();
                let sealed = signer
                    .as_ref()
                    .and_then(|k| datasets::statistics(&ix, &id, k).ok());
                ui.json(&super::json::SealedView {
                    path: p.to_string(),
                    sha256: ix.sha(p).map(|h| h.to_string()),
                    record: super::json::toml_record(ix.bytes(p).unwrap_or_default()),
                    sealed,
                    reader: signer.map(|k| k.handle.clone()),
                });
                return Ok(());
            }
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
                match datasets::about(&ix, &id, &signer) {
                    Ok(Some(a)) => {
                        let mut text = format!("# about (decrypted with {}'s key)", signer.handle);
                        if let Some(d) = &a.description {
                            text.push_str(&format!("\ndescription: {d}"));
                        }
                        if let Some(l) = &a.location {
                            text.push_str(&format!("\nlocation: {l}"));
                        }
                        ui.out(text);
                    }
                    Ok(None) => {}
                    Err(_) => ui.status(format!(
                        "the description and location are sealed; {} is not among their recipients",
                        signer.handle
                    )),
                }
            }
            Ok(())
        }
    }
}
