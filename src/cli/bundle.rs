//! `cohort bundle create|import`: carry a registry, its images and artifacts to an air-gapped
//! site, and the site's submissions back, as files (docs/bundles.md).

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use cohort::workflow::bundle::{self, BundleKind, Created, Imported, ImportedBranch};
use serde::Serialize;

use super::error::CliResult;
use super::registry::pin_check;
use super::session::Session;
use super::settings::Settings;

#[derive(Debug, Args)]
pub struct BundleArgs {
    #[command(subcommand)]
    command: BundleCommand,
}

#[derive(Debug, Subcommand)]
enum BundleCommand {
    /// Write a registry bundle (main, the images and artifacts of the benchmarks named with
    /// -b), or with --submissions the submission branches not yet carried.
    Create {
        /// A benchmark whose cubes' images, demo data and additional files to include
        /// (repeatable).
        #[arg(short = 'b', long = "benchmark", conflicts_with = "submissions")]
        benchmarks: Vec<String>,
        /// Pack local submit/* branches that are not on main and not in an earlier
        /// submissions bundle.
        #[arg(long)]
        submissions: bool,
        /// The bundle file to write.
        #[arg(short = 'o', long = "output")]
        output: PathBuf,
    },
    /// Import a bundle: with DIR, make a new clone from a registry bundle; without, update
    /// this clone from a registry bundle or add a submissions bundle's branches.
    Import {
        /// The bundle file (written by `cohort bundle create`).
        file: PathBuf,
        /// Where to make a new clone.
        dir: Option<PathBuf>,
        /// The registry id you were given (sha256 of root/v1.toml).
        #[arg(long, requires = "dir", conflicts_with = "trust_on_first_use")]
        root: Option<String>,
        /// Accept whatever registry id the bundle holds, without asking.
        #[arg(long, requires = "dir")]
        trust_on_first_use: bool,
    },
}

#[derive(Serialize)]
struct CreatedJson<'a> {
    path: &'a std::path::Path,
    kind: BundleKind,
    registry_id: &'a str,
    bytes: u64,
    images: Vec<&'a str>,
    artifacts: usize,
    branches: &'a [String],
}

#[derive(Serialize)]
struct BranchJson<'a> {
    branch: &'a str,
    /// `added`, `unchanged` or `kept` (a different local tip was kept).
    status: &'a str,
}

#[derive(Serialize)]
struct ImportedJson<'a> {
    kind: BundleKind,
    registry_id: String,
    path: Option<&'a std::path::Path>,
    main: Option<String>,
    new_commits: Option<usize>,
    branches: Vec<BranchJson<'a>>,
    images: &'a [String],
    artifacts: usize,
}

pub fn run(settings: &Settings, args: BundleArgs) -> CliResult {
    match args.command {
        BundleCommand::Create {
            benchmarks,
            submissions,
            output,
        } => create(settings, &benchmarks, submissions, &output),
        BundleCommand::Import {
            file,
            dir,
            root,
            trust_on_first_use,
        } => import(settings, &file, dir, root.as_deref(), trust_on_first_use),
    }
}

fn create(settings: &Settings, benches: &[String], submissions: bool, out: &Path) -> CliResult {
    let s = Session::new(settings);
    let ui = &settings.ui;
    let opened = s.open_local()?;
    let ctx = s.ctx();
    let created: Created = if submissions {
        bundle::create_submissions_bundle(&ctx, &opened, out)?
    } else {
        bundle::create_registry_bundle(&ctx, &opened, benches, out)?
    };
    let m = &created.manifest;
    if ui.json {
        ui.json(&CreatedJson {
            path: &created.path,
            kind: m.kind,
            registry_id: &m.registry_id,
            bytes: created.bytes,
            images: m.images.iter().map(|e| e.what.as_str()).collect(),
            artifacts: m.artifacts.len(),
            branches: &created.branches,
        });
        return Ok(());
    }
    ui.out(created.path.display().to_string());
    match m.kind {
        BundleKind::Registry => ui.status(format!(
            "wrote a registry bundle of main ({} image{}, {} artifact{}, {} bytes)",
            m.images.len(),
            if m.images.len() == 1 { "" } else { "s" },
            m.artifacts.len(),
            if m.artifacts.len() == 1 { "" } else { "s" },
            created.bytes
        )),
        BundleKind::Submissions => {
            for b in &created.branches {
                ui.status(format!("  {b}"));
            }
            ui.status(format!(
                "wrote a submissions bundle ({} branch{}); carry it to a connected clone and run `cohort bundle import FILE` there, then `cohort registry push`",
                created.branches.len(),
                if created.branches.len() == 1 { "" } else { "es" }
            ));
        }
    }
    Ok(())
}

fn import(
    settings: &Settings,
    file: &Path,
    dir: Option<PathBuf>,
    root: Option<&str>,
    tofu: bool,
) -> CliResult {
    let s = Session::new(settings);
    let ui = &settings.ui;
    let ctx = s.ctx();
    let source = format!("bundle {}", file.display());
    let imported: Imported = match &dir {
        Some(dest) => {
            let check = pin_check(settings, &ctx, &source, root, tofu)?;
            bundle::import_clone(&ctx, file, dest, &check)?.1
        }
        None => {
            let opened = s.open_local()?;
            bundle::import_into(&ctx, &opened, file)?
        }
    };
    let branches: Vec<BranchJson> = imported
        .branches
        .iter()
        .map(|b| match b {
            ImportedBranch::Added(n) => BranchJson {
                branch: n,
                status: "added",
            },
            ImportedBranch::Unchanged(n) => BranchJson {
                branch: n,
                status: "unchanged",
            },
            ImportedBranch::Kept(n) => BranchJson {
                branch: n,
                status: "kept",
            },
        })
        .collect();
    if ui.json {
        ui.json(&ImportedJson {
            kind: imported.kind,
            registry_id: imported.registry_id.to_string(),
            path: dir.as_deref(),
            main: imported.main.map(|m| m.to_string()),
            new_commits: imported.synced.as_ref().map(|s| s.new_commits),
            branches,
            images: &imported.images,
            artifacts: imported.artifacts,
        });
        return Ok(());
    }
    ui.out(imported.registry_id.to_string());
    match (imported.kind, &dir) {
        (BundleKind::Registry, Some(d)) => ui.status(format!(
            "cloned and verified {} into {} ({} files); {} image{} loaded, {} artifact{} cached",
            file.display(),
            d.display(),
            imported.files,
            imported.images.len(),
            if imported.images.len() == 1 { "" } else { "s" },
            imported.artifacts,
            if imported.artifacts == 1 { "" } else { "s" },
        )),
        (BundleKind::Registry, None) => ui.status(format!(
            "verified and synced from {} ({} new commit{}); {} image{} loaded, {} artifact{} cached",
            file.display(),
            imported.synced.as_ref().map_or(0, |s| s.new_commits),
            if imported.synced.as_ref().map_or(0, |s| s.new_commits) == 1 { "" } else { "s" },
            imported.images.len(),
            if imported.images.len() == 1 { "" } else { "s" },
            imported.artifacts,
            if imported.artifacts == 1 { "" } else { "s" },
        )),
        (BundleKind::Submissions, _) => {
            for b in &branches {
                ui.status(format!("  {} ({})", b.branch, b.status));
            }
            if branches.iter().any(|b| b.status == "kept") {
                ui.warn("a branch that exists here with another tip was kept as it is");
            }
            ui.status("next: `cohort registry push BRANCH` for each, or merge and approve them here");
        }
    }
    Ok(())
}
