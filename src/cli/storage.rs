//! `cohort storage ls|cleanup`: what cohort keeps on this machine, by benchmark and dataset,
//! and removing what nothing approved needs any more (asking first).

use clap::{Args, Subcommand};
use cohort::mlcube::ContainerRuntime;
use cohort::workflow::engine::Engine;
use cohort::workflow::housekeeping::{self, Item, Kind};
use serde::Serialize;

use super::error::{CliError, CliResult};
use super::session::{Session, confirm};
use super::settings::Settings;

#[derive(Debug, Args)]
pub struct StorageArgs {
    #[command(subcommand)]
    command: StorageCommand,
}

#[derive(Debug, Subcommand)]
enum StorageCommand {
    /// What cohort keeps under its home and in the Docker Engine, with sizes and whether
    /// cleanup would remove it.
    #[command(visible_alias = "list")]
    Ls,
    /// Remove runs, caches, logs and images that nothing approved needs any more (shows what
    /// it frees and asks first; -y to skip).
    Cleanup {
        /// Also delete prepared datasets with no unsubmitted results (asks a second time).
        #[arg(long)]
        include_datasets: bool,
        /// Show what would be removed, remove nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Serialize)]
struct ItemJson<'a> {
    kind: Kind,
    name: &'a str,
    benchmark: Option<&'a str>,
    dataset: Option<&'a str>,
    bytes: u64,
    removable: bool,
    kept_because: Option<&'a str>,
}

fn to_json<'a>(items: &[&'a Item]) -> Vec<ItemJson<'a>> {
    items
        .iter()
        .map(|i| ItemJson {
            kind: i.kind,
            name: &i.name,
            benchmark: i.benchmark.as_deref(),
            dataset: i.dataset.as_deref(),
            bytes: i.bytes,
            removable: i.removable(),
            kept_because: i.kept.as_deref(),
        })
        .collect()
}

pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn table(items: &[&Item]) -> String {
    let mut t = super::table::new(&["benchmark", "dataset", "kind", "name", "size", "cleanup"]);
    for i in items {
        t.add_row(vec![
            i.benchmark.clone().unwrap_or_else(|| "-".into()),
            i.dataset.clone().unwrap_or_else(|| "-".into()),
            i.kind.as_str().into(),
            i.name.clone(),
            human(i.bytes),
            match &i.kept {
                None => "removable".into(),
                Some(why) => format!("kept: {why}"),
            },
        ]);
    }
    t.to_string()
}

/// Sorted by benchmark and dataset (items of none last), then kind and name.
fn grouped(items: &[Item]) -> Vec<&Item> {
    let mut v: Vec<&Item> = items.iter().collect();
    v.sort_by(|a, b| {
        (
            a.benchmark.is_none(),
            &a.benchmark,
            a.dataset.is_none(),
            &a.dataset,
            a.kind,
            &a.name,
        )
            .cmp(&(
                b.benchmark.is_none(),
                &b.benchmark,
                b.dataset.is_none(),
                &b.dataset,
                b.kind,
                &b.name,
            ))
    });
    v
}

pub fn run(settings: &Settings, args: StorageArgs) -> CliResult {
    let ui = &settings.ui;
    let s = Session::new(settings);
    let opened = s.open_local()?;
    let ix = opened.index()?;
    let ctx = s.ctx();
    let engine = match Engine::connect(&ctx) {
        Ok(e) => Some(e),
        Err(e) => {
            ui.warn(format!("images not listed: {e}"));
            None
        }
    };
    let rt = engine.as_ref().map(|e| &e.runtime as &dyn ContainerRuntime);
    match args.command {
        StorageCommand::Ls => {
            let items = housekeeping::usage(&ctx, &ix, rt)?;
            let rows = grouped(&items);
            if ui.json {
                ui.json(&to_json(&rows));
            } else {
                ui.out(table(&rows));
                let total: u64 = items.iter().map(|i| i.bytes).sum();
                let free: u64 = items
                    .iter()
                    .filter(|i| i.removable() && i.kind != Kind::Dataset)
                    .map(|i| i.bytes)
                    .sum();
                ui.status(format!(
                    "{} in all; `cohort storage cleanup` would free {}",
                    human(total),
                    human(free)
                ));
            }
            Ok(())
        }
        StorageCommand::Cleanup {
            include_datasets,
            dry_run,
        } => {
            let _lock = housekeeping::lock_storage(&ctx)?;
            let items = housekeeping::usage(&ctx, &ix, rt)?;
            let mut plan: Vec<Item> = items
                .into_iter()
                .filter(|i| i.removable() && (include_datasets || i.kind != Kind::Dataset))
                .collect();
            plan.sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
            let rows = grouped(&plan);
            let bytes: u64 = plan.iter().map(|i| i.bytes).sum();
            if plan.is_empty() {
                if ui.json {
                    ui.json(&to_json(&[]));
                }
                ui.status("nothing to clean up");
                return Ok(());
            }
            if !ui.json || dry_run {
                if ui.json {
                    ui.json(&to_json(&rows));
                } else {
                    ui.out(table(&rows));
                }
            }
            ui.status(format!("{} item(s), {} to free", plan.len(), human(bytes)));
            if dry_run {
                return Ok(());
            }
            if !confirm(
                settings,
                &format!("Remove these and free {}?", human(bytes)),
            )? {
                return Err(CliError::user("cleanup cancelled; nothing was removed"));
            }
            let datasets: Vec<&str> = plan
                .iter()
                .filter(|i| i.kind == Kind::Dataset)
                .filter_map(|i| i.dataset.as_deref())
                .collect();
            if !datasets.is_empty()
                && !confirm(
                    settings,
                    &format!(
                        "Delete the prepared data of {}? It comes back only by preparing the raw data again",
                        datasets.join(", ")
                    ),
                )?
            {
                plan.retain(|i| i.kind != Kind::Dataset);
            }
            let done = housekeeping::cleanup(&ctx, &ix, &plan, rt)?;
            for (item, why) in &done.skipped {
                ui.warn(format!("kept {}: {why}", item.name));
            }
            let freed: u64 = done.removed.iter().map(|i| i.bytes).sum();
            if ui.json {
                ui.json(&to_json(&done.removed.iter().collect::<Vec<_>>()));
            }
            ui.status(format!(
                "removed {} item(s), freed {}",
                done.removed.len(),
                human(freed)
            ));
            Ok(())
        }
    }
}
