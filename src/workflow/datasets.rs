//! Datasets at the site: preparation with the benchmark's preparator into local storage
//! (resumable, all-or-nothing, one preparation per name at a time), the content hash and id,
//! registration of metadata with statistics sealed to the committee and the owner, dataset
//! association with sealed metrics, and `dataset check`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::model::{self, CubeRef, Sha256, metrics::Metrics};
use crate::storage::{
    AtomicDir, DirLock, FileDigest, hash_tree, hash_tree_cached, write_atomic_mode,
};
use crate::trust::Index;

use super::benchmarks::approved_in;
use super::compat::{Prepared, Stage, Steps, new_run_dir, prepare};
use super::engine::{Engine, private_dir};
use super::registry_ops::Opened;
use super::{Ctx, Result, WorkflowError};

const LOCAL_FILE: &str = "dataset.toml";
const MANIFEST: &str = "files.toml";
/// The stat cache of the prepared data (beside it, on the same filesystem, not hashed).
const STAT_CACHE: &str = "statcache";

/// What this site keeps about a prepared dataset (`datasets/<name>/dataset.toml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalDataset {
    pub name: String,
    pub id: String,
    pub owner: String,
    pub benchmark: model::BenchRef,
    pub preparator: CubeRef,
    pub content_sha256: Sha256,
    pub files: u64,
    pub bytes: u64,
    pub raw_data: PathBuf,
    pub raw_labels: PathBuf,
    pub prepared_at: String,
    pub statistics: Metrics,
}

/// Per-file digests at preparation time, for `dataset check` to say what changed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    files: Vec<ManifestEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestEntry {
    path: String,
    sha256: Sha256,
    bytes: u64,
}

fn datasets_dir(ctx: &Ctx) -> PathBuf {
    ctx.home.datasets_dir()
}

/// The folder of a prepared dataset.
pub fn dataset_dir(ctx: &Ctx, name: &str) -> PathBuf {
    datasets_dir(ctx).join(name)
}

/// The prepared data (hashed) inside a dataset folder.
pub fn prepared_dir(dir: &Path) -> PathBuf {
    dir.join("prepared")
}

/// Where a prepared dataset's data and labels are, as task inputs.
pub fn prepared_data(ctx: &Ctx, name: &str) -> Prepared {
    let dir = prepared_dir(&dataset_dir(ctx, name));
    Prepared {
        data: dir.join("data"),
        labels: dir.join("labels"),
        statistics: None,
    }
}

/// Guards a dataset against two cohort processes at once (prepare, run).
pub fn lock_dataset(ctx: &Ctx, name: &str) -> Result<DirLock> {
    DirLock::try_acquire(
        &datasets_dir(ctx).join(format!(".{name}.lock")),
        &format!("dataset `{name}`"),
    )
    .map_err(|e| WorkflowError::Refused(format!("{e}; wait for it to finish")))
}

/// A prepared dataset by name.
pub fn load_local(ctx: &Ctx, name: &str) -> Result<Option<LocalDataset>> {
    let p = dataset_dir(ctx, name).join(LOCAL_FILE);
    match std::fs::read_to_string(&p) {
        Ok(t) => Ok(Some(toml::from_str(&t).map_err(|e| {
            WorkflowError::Refused(format!("{}: {e}", p.display()))
        })?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(WorkflowError::Refused(format!("{}: {e}", p.display()))),
    }
}

/// Every prepared dataset on this machine.
pub fn local_datasets(ctx: &Ctx) -> Result<Vec<LocalDataset>> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(datasets_dir(ctx)) else {
        return Ok(out);
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        if let Some(d) = load_local(ctx, &name)? {
            out.push(d);
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

fn check_raw(what: &str, p: &Path) -> Result<()> {
    let meta = std::fs::metadata(p)
        .map_err(|_| WorkflowError::Refused(format!("{what} {} does not exist", p.display())))?;
    if !meta.is_dir() {
        return Err(WorkflowError::Refused(format!(
            "{what} {} is not a folder",
            p.display()
        )));
    }
    let empty = std::fs::read_dir(p)
        .map(|mut d| d.next().is_none())
        .unwrap_or(true);
    if empty {
        return Err(WorkflowError::Refused(format!(
            "{what} {} is empty",
            p.display()
        )));
    }
    Ok(())
}

/// Removes staging folders a killed preparation left behind (the caller holds the lock).
fn clean_stale(ctx: &Ctx, name: &str) {
    let prefix = format!(".staging-{name}-");
    if let Ok(entries) = std::fs::read_dir(datasets_dir(ctx)) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with(&prefix) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

/// What a preparation did.
pub struct PrepareOutcome {
    pub steps: Steps,
    pub dataset: Option<LocalDataset>,
    pub run_dir: PathBuf,
}

/// Prepares raw data with benchmark `bench`'s preparator into `datasets/<name>/`. The folder
/// appears only when prepare, sanity_check, statistics and hashing all succeeded; a rerun after a
/// crash starts over cleanly.
pub fn prepare_dataset(
    ctx: &Ctx,
    opened: &Opened,
    owner: &str,
    bench: &str,
    name: &str,
    raw_data: &Path,
    raw_labels: &Path,
) -> Result<PrepareOutcome> {
    model::ids::check_name("dataset name", name)?;
    let ix = opened.index()?;
    let (_, b, bref) = approved_in(opened, &ix, bench)?;
    check_raw("--data-path", raw_data)?;
    check_raw("--labels-path", raw_labels)?;
    // Prepared data is private: only the caller may enter the datasets folder.
    private_dir(&datasets_dir(ctx))
        .map_err(|e| WorkflowError::Refused(format!("{}: {e}", datasets_dir(ctx).display())))?;
    let _lock = lock_dataset(ctx, name)?;
    let target = dataset_dir(ctx, name);
    if let Some(existing) = load_local(ctx, name)? {
        return Err(WorkflowError::Refused(format!(
            "dataset `{name}` is already prepared here (id {}); choose another name, or remove {} to prepare it again",
            &existing.id[..12],
            target.display()
        )));
    }
    clean_stale(ctx, name);
    let raw_data = raw_data
        .canonicalize()
        .map_err(|e| crate::storage::StorageError::io("open", raw_data, e))?;
    let raw_labels = raw_labels
        .canonicalize()
        .map_err(|e| crate::storage::StorageError::io("open", raw_labels, e))?;
    let engine = Engine::connect(ctx)?;
    let prep = engine.registered(ctx, &ix, &b.data_preparator)?;
    let staging = staging_dir(ctx, name)?;
    let run_dir = new_run_dir(ctx, "prepare")?;
    super::runs::label_run(&run_dir, bench, Some(name));
    let mut steps = Steps::default();
    let st = Stage {
        ctx,
        engine: &engine,
        run_dir: &run_dir,
    };
    let prepared = prepare(
        &st,
        &prep,
        &raw_data,
        &raw_labels,
        &prepared_dir(staging.path()),
        &mut steps,
    )?;
    let Some(Prepared { statistics, .. }) = prepared else {
        return Ok(PrepareOutcome {
            steps,
            dataset: None,
            run_dir,
        });
    };
    let content = hash_tree(&prepared_dir(staging.path()), None, ctx.reporter)?;
    let id = model::ids::dataset_id(owner, &b.data_preparator.sha256, &content.sha256);
    let local = LocalDataset {
        name: name.to_string(),
        id,
        owner: owner.to_string(),
        benchmark: bref,
        preparator: b.data_preparator.clone(),
        content_sha256: content.sha256.clone(),
        files: content.files,
        bytes: content.bytes,
        raw_data,
        raw_labels,
        prepared_at: ctx.timestamp(),
        statistics: statistics.unwrap_or_default(),
    };
    let manifest = Manifest {
        files: content
            .entries
            .iter()
            .map(|e| ManifestEntry {
                path: e.path.clone(),
                sha256: e.sha256.clone(),
                bytes: e.bytes,
            })
            .collect(),
    };
    let where_ = staging.path().to_path_buf();
    let io = |e: std::io::Error| {
        WorkflowError::Refused(format!("{}: {e} (is the disk full?)", where_.display()))
    };
    // The manifest names the prepared files and the record carries statistics: private too.
    write_atomic_mode(
        &staging.path().join(MANIFEST),
        toml::to_string(&manifest).expect("serializes").as_bytes(),
        Some(0o600),
    )
    .map_err(io)?;
    write_atomic_mode(
        &staging.path().join(LOCAL_FILE),
        toml::to_string(&local).expect("serializes").as_bytes(),
        Some(0o600),
    )
    .map_err(io)?;
    staging.commit().map_err(io)?;
    Ok(PrepareOutcome {
        steps,
        dataset: Some(local),
        run_dir,
    })
}

fn staging_dir(ctx: &Ctx, name: &str) -> Result<AtomicDir> {
    // AtomicDir stages next to the target with its own prefix; name it so a later run can
    // recognise and remove leftovers of this dataset.
    let target = dataset_dir(ctx, name);
    let staging = AtomicDir::new_with_prefix(&target, &format!(".staging-{name}-"))
        .and_then(|s| private_dir(s.path()).map(|()| s))
        .map_err(|e| WorkflowError::Refused(format!("{}: {e}", target.display())))?;
    Ok(staging)
}

/// Re-hashes a prepared dataset and compares it with what was recorded; names changed files.
/// `quick` re-hashes only the files whose stat changed since the last check (the dataset's
/// stat cache, storage/statcache.rs); otherwise every byte is read (and the cache refreshed).
pub fn check_content(
    ctx: &Ctx,
    local: &LocalDataset,
    expected: &Sha256,
    quick: bool,
) -> Result<std::result::Result<(), Vec<String>>> {
    let dir = dataset_dir(ctx, &local.name);
    let (now, _) = hash_tree_cached(
        &prepared_dir(&dir),
        &dir.join(STAT_CACHE),
        !quick,
        ctx.reporter,
    )?;
    if &now.sha256 == expected {
        return Ok(Ok(()));
    }
    let manifest: Option<Manifest> = std::fs::read_to_string(dir.join(MANIFEST))
        .ok()
        .and_then(|t| toml::from_str(&t).ok());
    let before: Vec<FileDigest> = manifest
        .map(|m| {
            m.files
                .into_iter()
                .map(|e| FileDigest {
                    path: e.path,
                    sha256: e.sha256,
                    bytes: e.bytes,
                })
                .collect()
        })
        .unwrap_or_default();
    let changes = now
        .diff(&before)
        .into_iter()
        .map(|c| match c {
            crate::storage::FileChange::Added(p) => format!("added {p}"),
            crate::storage::FileChange::Removed(p) => format!("removed {p}"),
            crate::storage::FileChange::Modified(p) => format!("modified {p}"),
        })
        .collect::<Vec<_>>();
    Ok(Err(if changes.is_empty() {
        vec![format!(
            "content hash is {}, expected {}",
            now.sha256, expected
        )]
    } else {
        changes
    }))
}

/// Resolves a dataset's name, id or id prefix (at least 8 hex digits) to its id.
pub fn resolve_dataset_id(ix: &Index, spec: &str) -> Result<String> {
    if ix.datasets.contains_key(spec) {
        return Ok(spec.to_string());
    }
    let mut hits: Vec<String> = ix
        .datasets
        .keys()
        .filter(|id| {
            (spec.len() >= 8 && id.starts_with(spec))
                || ix.dataset(id).is_some_and(|(_, d)| d.name == spec)
        })
        .cloned()
        .collect();
    hits.dedup();
    match hits.len() {
        1 => Ok(hits.remove(0)),
        0 => Err(super::lookup::unknown_on_main(ix, super::lookup::Entity::Dataset, spec).into()),
        _ => Err(WorkflowError::Refused(format!(
            "`{spec}` matches several datasets; give the id"
        ))),
    }
}

/// A prepared dataset by name or id, with the registry record when registered.
pub fn find(
    ctx: &Ctx,
    ix: &Index,
    spec: &str,
) -> Result<(LocalDataset, Option<(String, model::Dataset)>)> {
    let local = match load_local(ctx, spec)? {
        Some(l) => l,
        None => {
            let id = match resolve_dataset_id(ix, spec) {
                Ok(id) => id,
                Err(WorkflowError::Unknown(_)) => {
                    let here: Vec<String> =
                        local_datasets(ctx)?.into_iter().map(|l| l.name).collect();
                    return Err(super::lookup::unknown_among(
                        ix,
                        super::lookup::Entity::Dataset,
                        spec,
                        &here,
                    )
                    .into());
                }
                Err(e) => return Err(e),
            };
            local_datasets(ctx)?
                .into_iter()
                .find(|l| l.id == id)
                .ok_or_else(|| {
                    WorkflowError::NotFound(format!(
                        "dataset `{spec}` is registered but not prepared on this machine"
                    ))
                })?
        }
    };
    let registered = ix
        .dataset(&local.id)
        .map(|(p, d)| (p.to_string(), d.clone()));
    Ok((local, registered))
}

pub use super::dataset_registry::{
    DatasetAssociation, DatasetPreview, about, associate_dataset, open_sealed, preview_dataset,
    recipients, registered, statistics, submit_dataset,
};
