//! A registry tree at one commit, read straight from git's object database.

use std::collections::BTreeMap;

use git2::{ObjectType, Oid, Repository, TreeWalkMode, TreeWalkResult};

use crate::trust::{EntryMode, TreeEntry, TreeRead, TrustError};

use super::{RegistryError, Result};

/// The files of one commit's tree.
pub struct GitTree<'r> {
    repo: &'r Repository,
    files: BTreeMap<String, (Oid, EntryMode)>,
}

impl<'r> GitTree<'r> {
    pub fn at(repo: &'r Repository, commit: Oid) -> Result<GitTree<'r>> {
        let tree = repo.find_commit(commit)?.tree()?;
        let mut files = BTreeMap::new();
        let mut bad_name = None;
        tree.walk(TreeWalkMode::PreOrder, |dir, entry| {
            let Ok(name) = entry.name() else {
                bad_name = Some(format!("{dir}<non-UTF-8 name>"));
                return TreeWalkResult::Skip;
            };
            let mode = match (entry.kind(), entry.filemode()) {
                (Some(ObjectType::Tree), _) => return TreeWalkResult::Ok,
                (_, 0o120000) => EntryMode::Symlink,
                (Some(ObjectType::Commit), _) | (_, 0o160000) => EntryMode::Submodule,
                (_, 0o100755) => EntryMode::Executable,
                _ => EntryMode::File,
            };
            files.insert(format!("{dir}{name}"), (entry.id(), mode));
            TreeWalkResult::Ok
        })?;
        if let Some(n) = bad_name {
            return Err(RegistryError::Refused(format!(
                "{n}: file names in a registry are ASCII"
            )));
        }
        Ok(GitTree { repo, files })
    }

    pub fn contains(&self, path: &str) -> bool {
        self.files.contains_key(path)
    }

    pub fn oid(&self, path: &str) -> Option<Oid> {
        self.files.get(path).map(|(o, _)| *o)
    }

    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.files.keys().map(String::as_str)
    }

    pub fn read_path(&self, path: &str) -> Result<Vec<u8>> {
        let (oid, _) = self
            .files
            .get(path)
            .ok_or_else(|| RegistryError::Refused(format!("{path}: not in this commit")))?;
        Ok(self.repo.find_blob(*oid)?.content().to_vec())
    }
}

impl TreeRead for GitTree<'_> {
    fn entries(&self) -> std::result::Result<Vec<TreeEntry>, TrustError> {
        let odb = self.repo.odb().map_err(|e| TrustError::Read {
            what: "the object database".into(),
            why: e.message().to_string(),
        })?;
        self.files
            .iter()
            .map(|(path, (oid, mode))| {
                let size = match mode {
                    EntryMode::Submodule => 0,
                    _ => odb
                        .read_header(*oid)
                        .map(|(size, _)| size as u64)
                        .map_err(|e| TrustError::Read {
                            what: path.clone(),
                            why: e.message().to_string(),
                        })?,
                };
                Ok(TreeEntry {
                    path: path.clone(),
                    mode: *mode,
                    size,
                })
            })
            .collect()
    }

    fn read(&self, path: &str) -> std::result::Result<Vec<u8>, TrustError> {
        self.read_path(path).map_err(|e| TrustError::Read {
            what: path.to_string(),
            why: e.to_string(),
        })
    }
}
