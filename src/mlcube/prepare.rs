//! The one step between planning and running that touches the host: check that every input
//! exists (cohort never creates a missing input, unlike 0.0.9's Q4) and create the workspace
//! and the outputs' folders.

use std::path::PathBuf;

use super::error::Error;
use super::plan::Plan;

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
    let mut created = Vec::new();
    for dir in &plan.hardening.create_dirs {
        // Record every missing ancestor too, so callers see exactly what appeared.
        let mut missing = Vec::new();
        let mut cur = Some(dir.as_path());
        while let Some(p) = cur {
            if p.exists() {
                break;
            }
            missing.push(p.to_path_buf());
            cur = p.parent();
        }
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            path: dir.clone(),
            source,
        })?;
        for p in missing.into_iter().rev() {
            if !created.contains(&p) {
                created.push(p);
            }
        }
    }
    hand_over(plan)?;
    Ok(created)
}

/// When the container runs as another user than cohort (a root caller's containers run as
/// nobody), the folders it writes to are handed to that user.
fn hand_over(plan: &Plan) -> Result<(), Error> {
    let (uid, gid) = super::hardening::container_user();
    if uid == rustix::process::getuid().as_raw() {
        return Ok(());
    }
    let owner = (
        Some(rustix::fs::Uid::from_raw(uid)),
        Some(rustix::fs::Gid::from_raw(gid)),
    );
    for dir in &plan.hardening.create_dirs {
        rustix::fs::chown(dir, owner.0, owner.1).map_err(|e| Error::Io {
            path: dir.clone(),
            source: e.into(),
        })?;
    }
    Ok(())
}
