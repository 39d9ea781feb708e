//! Creating a registry repository: one commit on `main` holding the signed root, the meta
//! manifest and the template files, checked out in a new work tree.

use std::path::Path;

use git2::{Repository, RepositoryInitOptions};

use super::write::{NewFile, commit_tree, tree_with_files};
use super::{MAIN_REF, Registry, RegistryError, Result};

/// Creates a repository at `path` (which must not exist or be an empty folder) whose first
/// commit on `main` holds `files`.
pub fn create(path: &Path, files: &[NewFile], message: &str, who: &str) -> Result<Registry> {
    if path.exists() {
        let empty = std::fs::read_dir(path)
            .map_err(|e| RegistryError::Io {
                path: path.to_path_buf(),
                source: e,
            })?
            .next()
            .is_none();
        if !empty {
            return Err(RegistryError::Refused(format!(
                "{} already exists and is not empty; choose a new folder",
                path.display()
            )));
        }
    }
    let mut opts = RepositoryInitOptions::new();
    opts.initial_head("main").mkpath(true);
    let repo = Repository::init_opts(path, &opts)?;
    let tree = tree_with_files(&repo, None, files)?;
    let root_commit = commit_tree(&repo, tree, &[], message, who)?;
    repo.reference(MAIN_REF, root_commit, true, "cohort registry init")?;
    repo.set_head(MAIN_REF)?;
    let mut co = git2::build::CheckoutBuilder::new();
    co.force();
    repo.checkout_head(Some(&mut co))?;
    Ok(Registry::from_repo(repo))
}
