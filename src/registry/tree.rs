//! A registry tree at one commit, read straight from git's object database.

use std::collections::BTreeMap;

use git2::{ObjectType, Oid, Repository};

use crate::trust::{ChunkSink, EntryMode, Limited, TreeEntry, TreeRead, TrustError};

use super::rawtree::{RawTree, check_depth};
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

    /// The files of the parts `units` of the tree `folders` reads (see `trust::view::unit_of`):
    /// a folder (`.../`) with everything under it, the top-level files (`""`), or one file.
    pub(super) fn at_units(
        repo: &'r Repository,
        folders: &mut Folders,
        units: &[String],
    ) -> Result<GitTree<'r>> {
        let odb = repo.odb()?;
        let mut files = BTreeMap::new();
        let mut malformed = Vec::new();
        for unit in units {
            if unit.is_empty() {
                let Some(top) = folders.folder("")? else {
                    continue;
                };
                if let Some(why) = top.malformed() {
                    malformed.push((String::new(), why.to_string()));
                }
                for entry in top.entries.iter().filter(|e| !e.is_tree()) {
                    let name = utf8(top.name(entry), "")?;
                    let mode = EntryMode::of_git(entry.mode);
                    files.insert(name.to_string(), (top.id(entry), mode));
                }
            } else if unit.ends_with('/') {
                if let Some((id, true, _)) = folders.entry(unit.trim_end_matches('/'))? {
                    walk(&odb, id, unit, &mut files, &mut malformed)?;
                }
            } else if let Some((id, false, mode)) = folders.entry(unit)? {
                files.insert(unit.clone(), (id, EntryMode::of_git(mode)));
            }
        }
        Ok(GitTree {
            repo,
            files,
            opener: Opener::Path(repo.path().to_path_buf()),
            malformed,
        })
    }

    /// The files `entries` name (paths, modes and blob ids, as [`super::history::added_files`]
    /// gives them) in `repo`, read by those ids.
    pub fn of_entries(repo: &'r Repository, entries: Vec<TreeEntry>) -> GitTree<'r> {
        let files = entries
            .into_iter()
            .filter_map(|e| Some((e.path, (Oid::from_bytes(&e.blob?).ok()?, e.mode))))
            .collect();
        GitTree {
            repo,
            files,
            opener: Opener::Path(repo.path().to_path_buf()),
            malformed: Vec::new(),
        }
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

    /// The git blob id of a file, as the carry keeps it.
    pub fn blob_id(&self, path: &str) -> Option<[u8; 20]> {
        self.oid(path).and_then(|o| o.as_bytes().try_into().ok())
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
    check_depth(prefix)?;
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
        if entry.is_tree() {
            walk(odb, tree.id(entry), &format!("{path}/"), files, malformed)?;
            continue;
        }
        files.insert(path, (tree.id(entry), EntryMode::of_git(entry.mode)));
    }
    Ok(())
}

fn utf8<'n>(name: &'n [u8], prefix: &str) -> Result<&'n str> {
    std::str::from_utf8(name).map_err(|_| {
        RegistryError::Refused(format!(
            "{prefix}<non-UTF-8 name>: file names in a registry are ASCII"
        ))
    })
}

/// The folders of one commit's tree, read by path from git's object database, each once (a
/// registry's large folders, such as `mlcubes/` with an entry per cube, are read once for all
/// the paths under them).
pub(super) struct Folders<'o> {
    odb: git2::Odb<'o>,
    root: Oid,
    read: std::collections::HashMap<String, Option<std::rc::Rc<RawTree>>>,
}

impl<'o> Folders<'o> {
    pub fn of(repo: &'o Repository, commit: Oid) -> Result<Folders<'o>> {
        Ok(Folders {
            odb: repo.odb()?,
            root: repo.find_commit(commit)?.tree_id(),
            read: std::collections::HashMap::new(),
        })
    }

    /// The folder `folder` (`""` for the top, else `a/b/`), when the tree has one.
    pub fn folder(&mut self, folder: &str) -> Result<Option<std::rc::Rc<RawTree>>> {
        if let Some(t) = self.read.get(folder) {
            return Ok(t.clone());
        }
        let tree = if folder.is_empty() {
            Some(self.root)
        } else {
            match self.entry(folder.trim_end_matches('/'))? {
                Some((id, true, _)) => Some(id),
                _ => None,
            }
        };
        let tree = match tree {
            Some(id) => Some(std::rc::Rc::new(RawTree::read(&self.odb, id)?)),
            None => None,
        };
        self.read.insert(folder.to_string(), tree.clone());
        Ok(tree)
    }

    /// The entry at `path` (no trailing `/`): its id, whether it is a folder, and its mode.
    pub fn entry(&mut self, path: &str) -> Result<Option<(Oid, bool, u32)>> {
        let (parent, name) = match path.rsplit_once('/') {
            Some((p, n)) => (format!("{p}/"), n),
            None => (String::new(), path),
        };
        let Some(tree) = self.folder(&parent)? else {
            return Ok(None);
        };
        Ok(tree
            .entries
            .iter()
            .find(|e| tree.name(e) == name.as_bytes())
            .map(|e| (tree.id(e), e.is_tree(), e.mode)))
    }
}

/// Files per chunk handed to the sink: large enough that the hand-over costs nothing, small
/// enough that parsing starts soon after reading does.
const CHUNK: usize = 1024;

impl GitTree<'_> {
    fn read_error(what: &str, e: &git2::Error) -> TrustError {
        TrustError::Read {
            what: what.to_string(),
            why: e.message().to_string(),
        }
    }

    /// Reads one chunk of files on `repo`: each file's size from its object header first,
    /// so a file over its limit is never read.
    fn read_chunk(
        repo: &Repository,
        files: &[(&str, Oid, usize)],
    ) -> std::result::Result<Vec<Limited>, TrustError> {
        let odb = repo
            .odb()
            .map_err(|e| Self::read_error("the object database", &e))?;
        files
            .iter()
            .map(|(path, oid, limit)| {
                let not_blob = |kind: ObjectType| TrustError::Read {
                    what: path.to_string(),
                    why: format!("the tree names a {}, where a file was expected", kind.str()),
                };
                let (size, kind) = odb
                    .read_header(*oid)
                    .map_err(|e| Self::read_error(path, &e))?;
                if kind != ObjectType::Blob {
                    return Err(not_blob(kind));
                }
                if size > *limit {
                    return Ok(Limited::Over(size as u64));
                }
                let obj = odb.read(*oid).map_err(|e| Self::read_error(path, &e))?;
                Ok(Limited::Bytes(obj.data().to_vec()))
            })
            .collect()
    }
}

impl TreeRead for GitTree<'_> {
    fn malformed(&self) -> Vec<(String, String)> {
        self.malformed.clone()
    }

    fn entries(&self) -> std::result::Result<Vec<TreeEntry>, TrustError> {
        Ok(self
            .files
            .iter()
            .map(|(path, (oid, mode))| TreeEntry {
                path: path.clone(),
                mode: *mode,
                blob: oid.as_bytes().try_into().ok(),
            })
            .collect())
    }

    fn read(&self, path: &str) -> std::result::Result<Vec<u8>, TrustError> {
        self.read_path(path).map_err(|e| TrustError::Read {
            what: path.to_string(),
            why: e.to_string(),
        })
    }

    /// One thread reads, with its own repository handle, while the sink works on the chunks
    /// before: libgit2 reads no faster on two threads than on one (its pack and window locks
    /// are shared), and parsing takes the other core.
    fn read_limited(
        &self,
        files: &[(&str, usize)],
        sink: &mut ChunkSink,
    ) -> std::result::Result<(), TrustError> {
        let items: Vec<(&str, Oid, usize)> = files
            .iter()
            .map(|(p, limit)| {
                self.oid(p)
                    .map(|o| (*p, o, *limit))
                    .ok_or_else(|| TrustError::Read {
                        what: p.to_string(),
                        why: "not in this commit".into(),
                    })
            })
            .collect::<std::result::Result<_, _>>()?;
        // In a pre-receive hook the pushed objects sit in git's quarantine, visible through
        // the handle git's environment opened: read on that handle, on this thread.
        let Opener::Path(dir) = &self.opener else {
            for (n, chunk) in items.chunks(CHUNK).enumerate() {
                sink(n * CHUNK, Self::read_chunk(self.repo, chunk)?)?;
            }
            return Ok(());
        };
        std::thread::scope(|scope| {
            let (tx, rx) = std::sync::mpsc::sync_channel(4);
            let items = &items;
            scope.spawn(move || {
                let repo = match Repository::open(dir) {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = tx.send(Err(Self::read_error("the repository", &e)));
                        return;
                    }
                };
                for chunk in items.chunks(CHUNK) {
                    let read = Self::read_chunk(&repo, chunk);
                    let failed = read.is_err();
                    // The receiver stops listening after an error of its own.
                    if tx.send(read).is_err() || failed {
                        return;
                    }
                }
            });
            for (n, chunk) in rx.into_iter().enumerate() {
                sink(n * CHUNK, chunk?)?;
            }
            Ok(())
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
        assert_eq!(one.read(got[0]).unwrap(), b"mlcubes/a/v1/cube.toml");

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
        // Modes git never writes (old gits' group-writable files, permission bits on links).
        for mode in ["100664", "120777", "100775"] {
            let m = why(&[(mode, "a", a)]).unwrap();
            assert!(m.contains(&format!("file mode {mode}")), "{m}");
        }
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

    /// A hostile push can nest folders as deep as it likes (a tree object of ~30 bytes a
    /// level): reading it must end in a refusal, not overflow the stack or hold a path string
    /// per level (depth squared bytes).
    #[test]
    fn deeply_nested_folders_are_refused_not_overflowed() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init_bare(dir.path()).unwrap();
        let blob = repo.blob(b"x").unwrap();
        let mut id = raw_tree(&repo, &[("100644", "v1.toml", blob)]);
        for _ in 0..5_000 {
            id = raw_tree(&repo, &[("40000", "d", id)]);
        }
        let sig = git2::Signature::now("t", "t@example.org").unwrap();
        let c = repo
            .commit(None, &sig, &sig, "deep", &repo.find_tree(id).unwrap(), &[])
            .unwrap();
        let path = dir.path().to_path_buf();
        // The stack of the thread `verify_from` walks history on (Rust's default, 2 MiB).
        let run = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || {
                let repo = Repository::open(&path).unwrap();
                let at = GitTree::at(&repo, c).map(|t| t.paths().count());
                let tl = crate::registry::timeline(&repo, c).map(|t| t.intro.len());
                (at.is_err(), tl.is_err())
            })
            .unwrap();
        assert_eq!(run.join().unwrap(), (true, true));
    }
}
