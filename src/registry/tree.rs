//! A registry tree at one commit, read straight from git's object database.

use std::collections::BTreeMap;

use git2::{ObjectType, Oid, Repository};
use rayon::prelude::*;

use crate::trust::{EntryMode, TreeEntry, TreeRead, TrustError};

use super::rawtree::RawTree;
use super::{Opener, RegistryError, Result};

/// The files of one commit's tree.
pub struct GitTree<'r> {
    repo: &'r Repository,
    files: BTreeMap<String, (Oid, EntryMode)>,
    opener: Opener,
    /// Folders whose tree object git itself would not write (see [`malformed`]).
    malformed: Vec<(String, String)>,
}

impl<'r> GitTree<'r> {
    pub fn at(repo: &'r Repository, commit: Oid) -> Result<GitTree<'r>> {
        let tree = repo.find_commit(commit)?.tree_id();
        let mut files = BTreeMap::new();
        let mut malformed = Vec::new();
        walk(&repo.odb()?, tree, "", &mut files, &mut malformed)?;
        Ok(GitTree {
            repo,
            files,
            opener: Opener::Path(repo.path().to_path_buf()),
            malformed,
        })
    }

    /// The files under `folders` only (paths ending in `/`; missing ones are empty) whose
    /// path `keep` accepts.
    pub fn at_folders(
        repo: &'r Repository,
        commit: Oid,
        folders: &[&str],
        keep: &dyn Fn(&str) -> bool,
    ) -> Result<GitTree<'r>> {
        let tree = repo.find_commit(commit)?.tree()?;
        let mut files = BTreeMap::new();
        let mut malformed = Vec::new();
        for folder in folders {
            let Some(dir) = folder.strip_suffix('/') else {
                return Err(RegistryError::Refused(format!(
                    "{folder}: a folder path ends in `/`"
                )));
            };
            let Ok(entry) = tree.get_path(std::path::Path::new(dir)) else {
                continue;
            };
            if entry.kind() == Some(ObjectType::Tree) {
                walk(&repo.odb()?, entry.id(), folder, &mut files, &mut malformed)?;
            }
        }
        files.retain(|p, _| keep(p));
        Ok(GitTree {
            repo,
            files,
            opener: Opener::Path(repo.path().to_path_buf()),
            malformed,
        })
    }

    /// Worker threads open their handles with `opener` (see `Opener`).
    pub fn opened_by(mut self, opener: Opener) -> Self {
        self.opener = opener;
        self
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

/// Adds every file under tree `id` to `files`, with `prefix` before its path, and every
/// folder whose tree object git itself would not write to `malformed` (folder, why): such a
/// tree reads differently to different readers (a lookup by name finds one of two entries, a
/// walk sees both, a misplaced entry is missed by the lookup's binary search), so what cohort
/// verified would not be what git, a forge or another reader shows.
fn walk(
    odb: &git2::Odb,
    id: Oid,
    prefix: &str,
    files: &mut BTreeMap<String, (Oid, EntryMode)>,
    malformed: &mut Vec<(String, String)>,
) -> Result<()> {
    let tree = RawTree::read(odb, id)?;
    if let Some(why) = tree.malformed() {
        malformed.push((prefix.to_string(), why.to_string()));
    }
    for entry in &tree.entries {
        let Ok(name) = std::str::from_utf8(tree.name(entry)) else {
            return Err(RegistryError::Refused(format!(
                "{prefix}<non-UTF-8 name>: file names in a registry are ASCII"
            )));
        };
        let path = format!("{prefix}{name}");
        let mode = match entry.mode {
            0o040000 => {
                walk(odb, tree.id(entry), &format!("{path}/"), files, malformed)?;
                continue;
            }
            0o120000 => EntryMode::Symlink,
            0o160000 => EntryMode::Submodule,
            0o100755 => EntryMode::Executable,
            _ => EntryMode::File,
        };
        files.insert(path, (tree.id(entry), mode));
    }
    Ok(())
}

/// Files per parallel batch: each batch opens its own handle on the repository (a libgit2
/// repository is not shared between threads), so batches are large enough to amortise that.
const BATCH: usize = 2048;

impl GitTree<'_> {
    fn read_error(what: &str, e: &git2::Error) -> TrustError {
        TrustError::Read {
            what: what.to_string(),
            why: e.message().to_string(),
        }
    }

    /// Runs `f` over `items` on every core, each batch with its own repository handle.
    fn par_batches<T: Sync, R: Send>(
        &self,
        items: &[T],
        f: impl Fn(&Repository, &T) -> std::result::Result<R, TrustError> + Sync,
    ) -> std::result::Result<Vec<R>, TrustError> {
        // In a pre-receive hook the pushed objects sit in git's quarantine, visible through
        // the handle git's environment opened: read on that handle, on this thread.
        let Opener::Path(dir) = &self.opener else {
            return items.iter().map(|item| f(self.repo, item)).collect();
        };
        let dir = dir.as_path();
        let batches: Vec<Vec<R>> = items
            .par_chunks(BATCH)
            .map(|chunk| {
                let repo =
                    Repository::open(dir).map_err(|e| Self::read_error("the repository", &e))?;
                chunk.iter().map(|item| f(&repo, item)).collect()
            })
            .collect::<std::result::Result<_, _>>()?;
        Ok(batches.into_iter().flatten().collect())
    }
}

impl TreeRead for GitTree<'_> {
    fn malformed(&self) -> Vec<(String, String)> {
        self.malformed.clone()
    }

    fn entries(&self) -> std::result::Result<Vec<TreeEntry>, TrustError> {
        let files: Vec<(&String, &(Oid, EntryMode))> = self.files.iter().collect();
        self.par_batches(&files, |repo, (path, (oid, mode))| {
            let size = match mode {
                EntryMode::Submodule => 0,
                _ => {
                    let odb = repo
                        .odb()
                        .map_err(|e| Self::read_error("the object database", &e))?;
                    odb.read_header(*oid)
                        .map(|(size, _)| size as u64)
                        .map_err(|e| Self::read_error(path, &e))?
                }
            };
            Ok(TreeEntry {
                path: (*path).clone(),
                mode: *mode,
                size,
            })
        })
    }

    fn read(&self, path: &str) -> std::result::Result<Vec<u8>, TrustError> {
        self.read_path(path).map_err(|e| TrustError::Read {
            what: path.to_string(),
            why: e.to_string(),
        })
    }

    fn read_many(&self, paths: &[&str]) -> std::result::Result<Vec<Vec<u8>>, TrustError> {
        let items: Vec<(&str, Oid)> = paths
            .iter()
            .map(|p| {
                self.oid(p)
                    .map(|o| (*p, o))
                    .ok_or_else(|| TrustError::Read {
                        what: p.to_string(),
                        why: "not in this commit".into(),
                    })
            })
            .collect::<std::result::Result<_, _>>()?;
        self.par_batches(&items, |repo, (path, oid)| {
            repo.find_blob(*oid)
                .map(|b| b.content().to_vec())
                .map_err(|e| Self::read_error(path, &e))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::write::{NewFile, commit_files};

    #[test]
    fn folder_scoped_reads_see_only_their_folders() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init_bare(dir.path()).unwrap();
        let empty = repo.treebuilder(None).unwrap().write().unwrap();
        let sig = git2::Signature::now("t", "t@example.org").unwrap();
        let root = repo
            .commit(
                None,
                &sig,
                &sig,
                "root",
                &repo.find_tree(empty).unwrap(),
                &[],
            )
            .unwrap();
        let files = [
            "root/v1.toml",
            "mlcubes/a/v1/cube.toml",
            "mlcubes/a/v1/mlcube.yaml",
            "mlcubes/ab/v1/cube.toml",
            "users/u/v1.toml",
        ];
        let new: Vec<NewFile> = files.iter().map(|p| NewFile::new(*p, *p)).collect();
        let head = commit_files(&repo, root, &new, "add", "t").unwrap();

        let all = GitTree::at(&repo, head).unwrap();
        assert_eq!(all.paths().count(), files.len());

        let one = GitTree::at_folders(&repo, head, &["root/", "mlcubes/a/"], &|_| true).unwrap();
        let got: Vec<&str> = one.paths().collect();
        assert_eq!(
            got,
            [
                "mlcubes/a/v1/cube.toml",
                "mlcubes/a/v1/mlcube.yaml",
                "root/v1.toml"
            ]
        );
        assert_eq!(one.read_many(&got).unwrap()[0], b"mlcubes/a/v1/cube.toml");

        let records = GitTree::at_folders(&repo, head, &["mlcubes/", "nothing/"], &|p| {
            p.ends_with("/cube.toml")
        })
        .unwrap();
        let got: Vec<&str> = records.paths().collect();
        assert_eq!(got, ["mlcubes/a/v1/cube.toml", "mlcubes/ab/v1/cube.toml"]);
        assert!(GitTree::at_folders(&repo, head, &["mlcubes"], &|_| true).is_err());
    }

    /// A tree object written byte by byte, as a hostile client can push one.
    fn raw_tree(repo: &Repository, entries: &[(&str, &str, Oid)]) -> Oid {
        let mut raw = Vec::new();
        for (mode, name, oid) in entries {
            raw.extend_from_slice(format!("{mode} {name}\0").as_bytes());
            raw.extend_from_slice(oid.as_bytes());
        }
        repo.odb().unwrap().write(ObjectType::Tree, &raw).unwrap()
    }

    #[test]
    fn trees_git_never_writes_are_malformed() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init_bare(dir.path()).unwrap();
        let a = repo.blob(b"a").unwrap();
        let b = repo.blob(b"b").unwrap();
        let sub = raw_tree(&repo, &[("100644", "v1.toml", a)]);
        let odb = repo.odb().unwrap();
        let why = |entries: &[(&str, &str, Oid)]| {
            RawTree::read(&odb, raw_tree(&repo, entries))
                .unwrap()
                .malformed()
                .map(str::to_string)
        };
        // What git writes: sorted, a folder ordered as if its name ended in `/`.
        assert_eq!(
            why(&[
                ("100644", "a", a),
                ("100644", "a-b", b),
                ("40000", "a", sub)
            ]),
            Some("holds two entries named `a`".into())
        );
        assert_eq!(
            why(&[
                ("100644", "a-b", b),
                ("40000", "a", sub),
                ("100644", "a0", a)
            ]),
            None
        );
        assert_eq!(
            why(&[("100644", "v1.toml", a), ("100644", "v1.toml", b)]),
            Some("holds two entries named `v1.toml`".into())
        );
        assert_eq!(
            why(&[("100644", "b", a), ("100644", "a", b)]),
            Some("lists `a` out of git's order".into())
        );
        for name in ["users/x", ".", ".."] {
            assert!(
                why(&[("100644", name, a)])
                    .unwrap()
                    .contains("git never writes"),
                "{name}"
            );
        }
        // The walk reports the folder and still lists what it holds.
        let top = raw_tree(&repo, &[("40000", "users", sub), ("40000", "users", sub)]);
        let sig = git2::Signature::now("t", "t@example.org").unwrap();
        let c = repo
            .commit(None, &sig, &sig, "dup", &repo.find_tree(top).unwrap(), &[])
            .unwrap();
        let t = GitTree::at(&repo, c).unwrap();
        assert_eq!(
            t.malformed(),
            [(
                "".to_string(),
                "holds two entries named `users`".to_string()
            )]
        );
        assert_eq!(t.paths().collect::<Vec<_>>(), ["users/v1.toml"]);
    }
}
