//! The one step between planning and running that touches the host: check that every input
//! exists (cohort never creates a missing input, unlike 0.0.9's Q4) and create the workspace
//! and the outputs' folders, component by component without following symbolic links
//! (`hostfs`): a link a container left in a folder it could write is refused, never followed.
//! Ownership is not changed here; the runtime hands folders to the container's user only for
//! the run (`access`).

use std::path::PathBuf;

use super::access::issue_error;
use super::error::Error;
use super::hostfs;
use super::plan::{Mode, Plan};

/// Checks the inputs, then creates the folders the hardening lists. Returns the folders that
/// did not exist before. Nothing is created when an input is missing.
pub fn prepare_host(plan: &Plan) -> Result<Vec<PathBuf>, Error> {
    if let Some(missing) = plan.missing_inputs().first() {
        return Err(Error::MissingInput {
            cube: plan.cube.clone(),
            task: plan.task.clone(),
            param: missing.name.clone(),
            path: missing.host.clone(),
        });
    }
    // Registered cubes work on private data: their folders are the caller's alone (the
    // container's user gets them for the run). Local runs follow the user's umask.
    let mode = match plan.mode {
        Mode::Strict => 0o700,
        Mode::Local => 0o777,
    };
    let mut created = Vec::new();
    for dir in &plan.hardening.create_dirs {
        hostfs::open_dir(&plan.run_root, dir, Some(mode), &mut created)
            .map_err(|i| issue_error(&plan.cube, &plan.task, i))?;
    }
    // MedPerf creates an empty file for a file output before the run; Docker needs it to bind
    // a file rather than make a folder in its place.
    let file_mode = match plan.mode {
        Mode::Strict => 0o600,
        Mode::Local => 0o666,
    };
    for file in &plan.hardening.create_files {
        if !file.exists() {
            hostfs::ensure_file(&plan.run_root, file, file_mode)
                .map_err(|i| issue_error(&plan.cube, &plan.task, i))?;
            created.push(file.clone());
        }
    }
    Ok(created)
}
