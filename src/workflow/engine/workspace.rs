//! A run's own copy of a cube's workspace: parameters and additional files placed fresh for
//! every task (a private model's decrypted straight from its ciphertext), never through a link.

use std::path::Path;

use super::{Additional, LocalCube};
use crate::storage::extract_tarball;
use crate::workflow::{Result, WorkflowError};

/// A run's private copy of the cube's workspace: parameters and the additional files, extracted
/// again from the (re-hashed) cached tarball, so nothing a previous run did can leak in.
pub(super) fn fresh_workspace(cube: &LocalCube, ws: &Path) -> Result<()> {
    let io = |e: std::io::Error| WorkflowError::Refused(format!("{}: {e}", ws.display()));
    if std::fs::symlink_metadata(ws).is_ok() {
        // remove_dir_all removes a link itself, never what it points to.
        std::fs::remove_dir_all(ws).map_err(io)?;
    }
    private_dir(ws).map_err(io)?;
    let template = cube.dir.join("workspace");
    if cube.record.is_some() {
        let params = template.join("parameters.yaml");
        match std::fs::symlink_metadata(&params) {
            Ok(m) if m.file_type().is_file() => {
                std::fs::copy(&params, ws.join("parameters.yaml")).map_err(io)?;
            }
            Ok(_) => {
                return Err(WorkflowError::Refused(format!(
                    "{} is not a plain file (links are refused)",
                    params.display()
                )));
            }
            Err(_) => {}
        }
    } else if cube.config.is_container() {
        // A local container: MedPerf's `-p` parameters.yaml and additional_files/ sit beside
        // the config.
        let root = cube.config.root();
        if root.join("parameters.yaml").is_file() {
            std::fs::copy(root.join("parameters.yaml"), ws.join("parameters.yaml")).map_err(io)?;
        }
        if root.join("additional_files").is_dir() {
            std::fs::create_dir_all(ws.join("additional_files")).map_err(io)?;
            copy_files(&root.join("additional_files"), &ws.join("additional_files")).map_err(io)?;
        }
    } else if template.is_dir() {
        copy_files(&template, ws).map_err(io)?;
    }
    if let Some(bytes) = &cube.secret_parameters {
        crate::storage::write_atomic(&ws.join("parameters.yaml"), bytes).map_err(io)?;
    }
    let dest = ws.join("additional_files");
    match &cube.additional {
        Some(Additional::Plain(tarball, limits)) => {
            extract_tarball(tarball, &dest, limits)?;
        }
        Some(Additional::Private {
            ciphertext,
            key,
            limits,
        }) => {
            crate::workflow::private::extract_files(
                ciphertext,
                key,
                &dest,
                limits,
                &format!("the encrypted additional files of {}", cube.label),
            )?;
        }
        None => {}
    }
    // MedPerf always creates the cube's additional_files folder, so a container may declare it.
    if cube.config.is_container() && !ws.join("additional_files").exists() {
        std::fs::create_dir_all(ws.join("additional_files")).map_err(io)?;
    }
    // The run's folder is private as a whole; the container's user is handed what it reads
    // for the run only (mlcube's access step).
    restrict(ws).map_err(io)
}

/// Clears group and other permission bits below `dir` (links are left alone, not followed).
fn restrict(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::symlink_metadata(dir)?;
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    let mode = meta.permissions().mode();
    if mode & 0o7077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode & 0o700))?;
    }
    if meta.is_dir() {
        for e in std::fs::read_dir(dir)? {
            restrict(&e?.path())?;
        }
    }
    Ok(())
}

/// Refuses a symbolic link on the way from `home` down to `path` (links above `home` are the
/// user's choice).
pub(super) fn refuse_links(home: &Path, path: &Path) -> Result<()> {
    let Ok(rel) = path.strip_prefix(home) else {
        return Ok(());
    };
    let mut cur = home.to_path_buf();
    for c in rel.components() {
        cur.push(c);
        if std::fs::symlink_metadata(&cur).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(WorkflowError::Refused(format!(
                "{} is a symbolic link; cohort never follows links in its own folders (remove it; a container may have planted it)",
                cur.display()
            )));
        }
    }
    Ok(())
}

/// Creates a folder (and its parents) readable by the caller only.
pub(crate) fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// Copies the plain files of a local cube's workspace template (not its run leftovers' links).
fn copy_files(from: &Path, to: &Path) -> std::io::Result<()> {
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let ft = e.file_type()?;
        let dest = to.join(e.file_name());
        if ft.is_dir() {
            std::fs::create_dir_all(&dest)?;
            copy_files(&e.path(), &dest)?;
        } else if ft.is_file() {
            std::fs::copy(e.path(), dest)?;
        }
    }
    Ok(())
}
