//! Run folders (`runs/<kind>/<timestamp>-<random>`): created private, locked by the process
//! writing them for as long as it lives (so `storage cleanup` never removes a run in
//! progress), with a local record (`run.json`) of how the run was made and what it was for.

use std::path::Path;
use std::path::PathBuf;

use super::engine::private_dir;
use super::{Ctx, Result, WorkflowError};

/// The run's local record in its folder.
pub const RUN_RECORD: &str = "run.json";

/// The lock a run's process holds on its folder while it lives.
pub const RUN_LOCK: &str = ".lock";

/// A fresh folder for one run's data and logs: `runs/<kind>/<timestamp>-<random>`.
pub fn new_run_dir(ctx: &Ctx, kind: &str) -> Result<PathBuf> {
    let base = ctx.home.runs_dir().join(kind);
    // Runs hold private data and what is derived from it: the caller's alone.
    private_dir(&ctx.home.runs_dir())
        .and_then(|()| private_dir(&base))
        .map_err(|e| WorkflowError::Refused(format!("{}: {e}", base.display())))?;
    let stamp = ctx.timestamp().replace([':', '-'], "");
    let dir = tempfile::Builder::new()
        .prefix(&format!("{stamp}-"))
        .tempdir_in(&base)
        .map_err(|e| WorkflowError::Refused(format!("{}: {e}", base.display())))?
        .keep();
    private_dir(&dir).map_err(|e| WorkflowError::Refused(format!("{}: {e}", dir.display())))?;
    // Held until this process exits (the OS releases it, kill -9 included): `storage cleanup`
    // never removes a run that is still being written.
    let lock = crate::storage::DirLock::try_acquire(&dir.join(RUN_LOCK), "run")
        .map_err(|e| WorkflowError::Refused(e.to_string()))?;
    std::mem::forget(lock);
    // The local record of how this run was made: the site's device choices live here, never
    // in the signed result.
    let record = serde_json::json!({
        "kind": kind,
        "started": ctx.timestamp(),
        "gpus": ctx.devices.gpus,
        "shm_size": ctx.devices.shm_size,
    });
    crate::storage::write_atomic_mode(
        &dir.join(RUN_RECORD),
        format!("{record:#}\n").as_bytes(),
        Some(0o600),
    )
    .map_err(|e| WorkflowError::Refused(format!("{}: {e}", dir.display())))?;
    Ok(dir)
}

/// Adds the benchmark and dataset a run was for to its record, so `storage ls` groups it.
pub fn label_run(dir: &Path, benchmark: &str, dataset: Option<&str>) {
    let path = dir.join(RUN_RECORD);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return;
    };
    let Ok(serde_json::Value::Object(mut record)) = serde_json::from_str(&text) else {
        return;
    };
    record.insert("benchmark".into(), benchmark.into());
    if let Some(d) = dataset {
        record.insert("dataset".into(), d.into());
    }
    let _ = crate::storage::write_atomic_mode(
        &path,
        format!("{:#}\n", serde_json::Value::Object(record)).as_bytes(),
        Some(0o600),
    );
}

/// The benchmark and dataset a run's record names.
pub fn run_labels(dir: &Path) -> (Option<String>, Option<String>) {
    let record: Option<serde_json::Value> = std::fs::read_to_string(dir.join(RUN_RECORD))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    let get = |k: &str| {
        record
            .as_ref()
            .and_then(|r| r.get(k))
            .and_then(|v| v.as_str())
            .map(str::to_string)
    };
    (get("benchmark"), get("dataset"))
}
