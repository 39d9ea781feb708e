//! `storage ls` / `storage cleanup`: what cohort keeps under COHORT_HOME and in the Docker
//! Engine, by benchmark and dataset, and which of it nothing approved needs any more (MedPerf
//! #229: sites ran out of disk with no way to tell what was safe to delete).
//!
//! Kept always: keys, verified state, local results (records, not caches), partial downloads
//! (they resume), anything a running cohort process holds locked, prepared datasets with results
//! not yet submitted, the images of registered local-only cubes, and every image, cached asset
//! and kept image tarball of a cube that an approved benchmark uses or an active model
//! association names.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::mlcube::ContainerRuntime;
use crate::model::Sha256;
use crate::storage::{Cache, DirLock, LockError, disk_usage, remove_via};
use crate::trust::Index;

use super::compat::RUN_LOCK;
use super::datasets::{dataset_dir, local_datasets, lock_dataset};
use super::execution::{local_results, models_to_run};
use super::results::is_submitted;
use super::{Ctx, Result, WorkflowError};

/// What an item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Dataset,
    Result,
    Run,
    Cache,
    PartialDownload,
    Log,
    ImageTarball,
    Image,
    Keys,
    State,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Dataset => "dataset",
            Kind::Result => "result",
            Kind::Run => "run",
            Kind::Cache => "cache",
            Kind::PartialDownload => "partial download",
            Kind::Log => "log",
            Kind::ImageTarball => "image tarball",
            Kind::Image => "image",
            Kind::Keys => "keys",
            Kind::State => "state",
        }
    }
}

/// One thing cohort keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub kind: Kind,
    /// The path under COHORT_HOME, or the image id.
    pub name: String,
    pub benchmark: Option<String>,
    pub dataset: Option<String>,
    pub bytes: u64,
    /// Why cleanup keeps it; `None`: cleanup may remove it (a dataset only when asked to).
    pub kept: Option<String>,
}

impl Item {
    pub fn removable(&self) -> bool {
        self.kept.is_none()
    }
}

/// The image ids and asset hashes approved benchmarks need, with the benchmarks needing each.
#[derive(Debug, Default)]
struct Needed {
    images: BTreeMap<String, BTreeSet<String>>,
    hashes: BTreeMap<String, BTreeSet<String>>,
    /// Images of registered local-only cubes (`--local-only`): no site can fetch them again,
    /// so a cube waiting for its association keeps its image, by cube label.
    local_only: BTreeMap<String, String>,
}

fn needed(ix: &Index) -> Needed {
    let mut n = Needed::default();
    let add = |map: &mut BTreeMap<String, BTreeSet<String>>, k: &str, b: &str| {
        map.entry(k.to_string()).or_default().insert(b.to_string());
    };
    for versions in ix.cubes.values() {
        for p in versions.values() {
            if let Some(crate::model::Record::Mlcube(c)) = ix.record(p)
                && c.image.source == crate::model::ImageSource::Local
            {
                n.local_only
                    .insert(c.image.id.clone(), format!("{} v{}", c.name, c.version));
            }
        }
    }
    for name in ix.benchmarks.keys() {
        let Some((_, b)) = ix.latest_benchmark(name) else {
            continue;
        };
        add(&mut n.hashes, b.demo_dataset.sha256.as_str(), name);
        let mut cubes = vec![b.data_preparator.clone(), b.metrics.clone()];
        cubes.extend(models_to_run(ix, b).into_iter().map(|(c, _)| c));
        for c in cubes {
            let Some((_, rec)) = ix.cube(&c.name, c.version) else {
                continue;
            };
            add(&mut n.images, &rec.image.id, name);
            let private = rec.image.private.iter();
            let ciphertexts = private.flat_map(|p| {
                std::iter::once(&p.ciphertext)
                    .chain(p.files.as_deref())
                    .chain(p.parameters.as_deref())
            });
            for asset in rec
                .image
                .tarball
                .iter()
                .chain(&rec.additional_files)
                .chain(ciphertexts)
            {
                add(&mut n.hashes, asset.sha256.as_str(), name);
            }
        }
    }
    n
}

fn joined(set: Option<&BTreeSet<String>>) -> Option<String> {
    set.map(|s| s.iter().cloned().collect::<Vec<_>>().join(","))
}

fn rel(ctx: &Ctx, p: &Path) -> String {
    p.strip_prefix(ctx.home.root())
        .unwrap_or(p)
        .display()
        .to_string()
}

/// Whether another cohort process holds the lock at `path` now (taking and releasing it).
fn busy(path: &Path) -> bool {
    matches!(
        DirLock::try_acquire(path, "check"),
        Err(LockError::Busy { .. })
    )
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    out.sort();
    out
}

/// Everything cohort keeps here, with what cleanup would do to each item. `runtime` (when the
/// engine is reachable) adds the images cohort put into it.
pub fn usage(ctx: &Ctx, ix: &Index, runtime: Option<&dyn ContainerRuntime>) -> Result<Vec<Item>> {
    let need = needed(ix);
    let home = ctx.home;
    let mut items = Vec::new();
    let results = local_results(ctx);
    for d in local_datasets(ctx)? {
        let pending = results
            .iter()
            .filter(|r| r.dataset_name == d.name && !is_submitted(ix, r))
            .count();
        let dir = dataset_dir(ctx, &d.name);
        let kept = if pending > 0 {
            Some(format!("{pending} result(s) not submitted yet"))
        } else if busy(&home.datasets_dir().join(format!(".{}.lock", d.name))) {
            Some("in use by a running cohort process".into())
        } else {
            None
        };
        items.push(Item {
            kind: Kind::Dataset,
            name: rel(ctx, &dir),
            benchmark: Some(d.benchmark.name.clone()),
            dataset: Some(d.name.clone()),
            bytes: disk_usage(&dir),
            kept,
        });
    }
    for r in &results {
        let dir = home.runs_dir().join("results").join(r.key.as_str());
        items.push(Item {
            kind: Kind::Result,
            name: rel(ctx, &dir),
            benchmark: Some(r.benchmark.name.clone()),
            dataset: Some(r.dataset_name.clone()),
            bytes: disk_usage(&dir),
            kept: Some(if is_submitted(ix, r) {
                "the record of a submitted result".into()
            } else {
                "not submitted yet".into()
            }),
        });
    }
    for kind_dir in entries(&home.runs_dir()) {
        if kind_dir.file_name().is_some_and(|n| n == "results") || !kind_dir.is_dir() {
            continue;
        }
        for run in entries(&kind_dir) {
            let (benchmark, dataset) = super::runs::run_labels(&run);
            items.push(Item {
                kind: Kind::Run,
                name: rel(ctx, &run),
                benchmark,
                dataset,
                bytes: disk_usage(&run),
                kept: busy(&run.join(RUN_LOCK)).then(|| "running".into()),
            });
        }
    }
    for entry in entries(&home.cache_dir().join("sha256")) {
        let file = entry.file_name().unwrap_or_default().to_string_lossy();
        let (kind, kept, bench) = if file.contains(".partial") {
            (
                Kind::PartialDownload,
                Some("an unfinished download resumes from it".to_string()),
                None,
            )
        } else {
            let bench = joined(need.hashes.get(file.as_ref()));
            let kept = bench.as_ref().map(|b| format!("needed by {b}"));
            (Kind::Cache, kept, bench)
        };
        items.push(Item {
            kind,
            name: rel(ctx, &entry),
            benchmark: bench,
            dataset: None,
            bytes: disk_usage(&entry),
            kept,
        });
    }
    for log in entries(&home.logs_dir()) {
        items.push(Item {
            kind: Kind::Log,
            name: rel(ctx, &log),
            benchmark: None,
            dataset: None,
            bytes: disk_usage(&log),
            kept: None,
        });
    }
    for tar in entries(&home.images_dir()) {
        let file = tar.file_name().unwrap_or_default().to_string_lossy();
        let Some(hex) = file.strip_suffix(".tar") else {
            continue;
        };
        let bench = joined(need.images.get(&format!("sha256:{hex}")));
        items.push(Item {
            kind: Kind::ImageTarball,
            name: rel(ctx, &tar),
            kept: bench.as_ref().map(|b| format!("needed by {b}")),
            benchmark: bench,
            dataset: None,
            bytes: disk_usage(&tar),
        });
    }
    if let Some(rt) = runtime {
        for e in home.image_ledger().entries() {
            let bytes = match rt.image_size(&e.id) {
                Ok(Some(b)) => b,
                Ok(None) => continue,
                Err(err) => {
                    ctx.reporter
                        .warn(&format!("images not listed: the Docker Engine: {err}"));
                    break;
                }
            };
            let bench = joined(need.images.get(&e.id));
            let kept = match (&bench, need.local_only.get(&e.id)) {
                (Some(b), _) => Some(format!("needed by {b}")),
                (None, Some(cube)) => Some(format!("the only copy of local-only cube {cube}")),
                _ => None,
            };
            items.push(Item {
                kind: Kind::Image,
                name: e.id.clone(),
                kept,
                benchmark: bench,
                dataset: None,
                bytes,
            });
        }
    }
    for (kind, dir) in [
        (Kind::Keys, home.keys_dir()),
        (Kind::State, home.state_dir()),
    ] {
        if dir.exists() {
            items.push(Item {
                kind,
                name: rel(ctx, &dir),
                benchmark: None,
                dataset: None,
                bytes: disk_usage(&dir),
                kept: Some("never removed".into()),
            });
        }
    }
    Ok(items)
}

/// Only one cleanup at a time.
pub fn lock_storage(ctx: &Ctx) -> Result<DirLock> {
    DirLock::try_acquire(&ctx.home.root().join("cleanup.lock"), "storage cleanup")
        .map_err(|e| WorkflowError::Refused(format!("{e}; wait for it to finish")))
}

/// What a cleanup did: items removed, and items left because they turned out to be in use.
#[derive(Debug, Default)]
pub struct Cleaned {
    pub removed: Vec<Item>,
    pub skipped: Vec<(Item, String)>,
}

/// Removes the given removable items (from [`usage`]), each under its own lock, checked again
/// at the moment of removal. The caller holds [`lock_storage`].
pub fn cleanup(
    ctx: &Ctx,
    ix: &Index,
    items: &[Item],
    runtime: Option<&dyn ContainerRuntime>,
) -> Result<Cleaned> {
    let home = ctx.home;
    let tmp = home.tmp_dir();
    let io = |p: &str, e: std::io::Error| WorkflowError::Refused(format!("{p}: {e}"));
    let mut out = Cleaned::default();
    let mut forgotten = Vec::new();
    for item in items.iter().filter(|i| i.removable()) {
        let path = home.root().join(&item.name);
        let skipped: Option<String> = match item.kind {
            Kind::Dataset => {
                let name = item.dataset.as_deref().unwrap_or_default();
                match lock_dataset(ctx, name) {
                    Err(_) => Some("in use by a running cohort process".into()),
                    Ok(_lock) => {
                        let pending = local_results(ctx)
                            .iter()
                            .any(|r| r.dataset_name == name && !is_submitted(ix, r));
                        if pending {
                            Some("it has results not submitted yet".into())
                        } else {
                            remove_via(&tmp, &path).map_err(|e| io(&item.name, e))?;
                            None
                        }
                    }
                }
            }
            Kind::Run => match DirLock::try_acquire(&path.join(RUN_LOCK), "run") {
                Err(LockError::Busy { .. }) => Some("running".into()),
                _ => {
                    remove_via(&tmp, &path).map_err(|e| io(&item.name, e))?;
                    None
                }
            },
            Kind::Cache => {
                let hex = path.file_name().unwrap_or_default().to_string_lossy();
                let sha: Sha256 = hex
                    .parse()
                    .map_err(|_| WorkflowError::Refused(format!("{}: not a sha256", item.name)))?;
                if Cache::new(home).remove_entry(&sha, &tmp)? {
                    None
                } else {
                    Some("being fetched or read".into())
                }
            }
            Kind::Log | Kind::ImageTarball => {
                remove_via(&tmp, &path).map_err(|e| io(&item.name, e))?;
                None
            }
            Kind::Image => match runtime {
                Some(rt) => {
                    rt.remove_image(&item.name)?;
                    forgotten.push(item.name.clone());
                    None
                }
                None => Some("the Docker Engine is not reachable".into()),
            },
            Kind::Result | Kind::PartialDownload | Kind::Keys | Kind::State => {
                Some("never removed".into())
            }
        };
        match skipped {
            None => out.removed.push(item.clone()),
            Some(why) => out.skipped.push((item.clone(), why)),
        }
    }
    if !forgotten.is_empty() {
        home.image_ledger()
            .forget(&forgotten)
            .map_err(|e| WorkflowError::Refused(e.to_string()))?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Home;

    fn ctx(home: &Home) -> Ctx<'_> {
        Ctx::offline_for_tests(home)
    }

    #[test]
    fn cleanup_removes_what_is_idle_and_keeps_what_is_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path());
        let ctx = ctx(&home);
        let ix = Index::default();
        let done = super::super::runs::new_run_dir(&ctx, "compat").unwrap();
        // This process made `done` and holds its lock for as long as it lives (a lock is per
        // open file, so cleanup's own attempt below is refused like another process's);
        // `idle` is a run whose process is gone.
        let idle = home.runs_dir().join("compat/idle");
        std::fs::create_dir_all(&idle).unwrap();
        std::fs::write(idle.join("x"), b"12345").unwrap();
        let cache = home.cache_dir().join("sha256");
        std::fs::create_dir_all(&cache).unwrap();
        let stale = "ab".repeat(32);
        std::fs::write(cache.join(&stale), b"old").unwrap();
        std::fs::write(cache.join(format!("{}.partial", "cd".repeat(32))), b"half").unwrap();
        std::fs::create_dir_all(home.keys_dir()).unwrap();

        let items = usage(&ctx, &ix, None).unwrap();
        let find = |name: &str| items.iter().find(|i| i.name.ends_with(name)).unwrap();
        assert!(find("compat/idle").removable());
        assert_eq!(find("compat/idle").bytes, 5);
        let running = done.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(find(&running).kept.as_deref(), Some("running"));
        assert!(find(&stale).removable());
        assert_eq!(find(".partial").kind, Kind::PartialDownload);
        assert!(!find(".partial").removable());
        assert!(!find("keys").removable());

        let cleaned = cleanup(&ctx, &ix, &items, None).unwrap();
        assert_eq!(cleaned.removed.len(), 2, "{:?}", cleaned.removed);
        assert!(!idle.exists() && !cache.join(&stale).exists());
        assert!(done.exists(), "a run in progress stays");
        assert_eq!(std::fs::read_dir(home.tmp_dir()).unwrap().count(), 0);
    }
}
