//! The dataset content hash (docs/content-hash.md): one sha256 over the sorted relative paths
//! and per-file sha256 of a prepared dataset, computed in parallel across files and streaming
//! through fixed-size buffers, so a 100 GB dataset hashes at disk or SHA-NI speed in bounded
//! memory. Also the streaming file hash every other storage module uses.

use std::fs;
use std::io::{self, Read};
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use sha2::Digest;

use crate::model::Sha256;
use crate::progress::{Reporter, TaskId};

use super::error::{Result, StorageError};
use super::walk::{Listed, list_files};

/// The first line of the hashed pre-image; bump the number if the format ever changes.
pub const CONTENT_HASH_HEADER: &[u8] = b"cohort-content/1\n";

/// Read size for hashing: large enough that syscalls vanish next to SHA-256, small enough
/// that a thread's buffer stays in L2-ish territory.
const CHUNK: usize = 1 << 20;

/// One file of a hashed tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDigest {
    /// Relative path with `/` separators.
    pub path: String,
    pub sha256: Sha256,
    pub bytes: u64,
}

/// The content hash of a tree, with the per-file digests it was computed from (sorted by
/// path), so `dataset check` can say which file changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentHash {
    pub sha256: Sha256,
    /// Number of files hashed.
    pub files: u64,
    /// Total bytes hashed.
    pub bytes: u64,
    pub entries: Vec<FileDigest>,
}

/// How a file differs between two hashed trees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileChange {
    Added(String),
    Removed(String),
    Modified(String),
}

impl ContentHash {
    /// Builds the hash from per-file digests (any order). The inverse of nothing: this is the
    /// definition of the format.
    pub fn from_entries(mut entries: Vec<FileDigest>) -> ContentHash {
        entries.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
        let pre = preimage(&entries);
        ContentHash {
            sha256: Sha256::of(&pre),
            files: entries.len() as u64,
            bytes: entries.iter().map(|e| e.bytes).sum(),
            entries,
        }
    }

    /// The exact bytes whose sha256 is the content hash; worth keeping next to a prepared
    /// dataset as its manifest.
    pub fn preimage(&self) -> Vec<u8> {
        preimage(&self.entries)
    }

    /// Files added, removed or modified in `self` compared with `before`, in path order.
    pub fn diff(&self, before: &[FileDigest]) -> Vec<FileChange> {
        let mut old: std::collections::BTreeMap<&str, &Sha256> = before
            .iter()
            .map(|e| (e.path.as_str(), &e.sha256))
            .collect();
        let mut out = Vec::new();
        for e in &self.entries {
            match old.remove(e.path.as_str()) {
                None => out.push(FileChange::Added(e.path.clone())),
                Some(h) if h != &e.sha256 => out.push(FileChange::Modified(e.path.clone())),
                Some(_) => {}
            }
        }
        out.extend(old.into_keys().map(|p| FileChange::Removed(p.to_string())));
        out.sort_by(|a, b| change_path(a).as_bytes().cmp(change_path(b).as_bytes()));
        out
    }
}

fn change_path(c: &FileChange) -> &str {
    match c {
        FileChange::Added(p) | FileChange::Removed(p) | FileChange::Modified(p) => p,
    }
}

fn preimage(sorted: &[FileDigest]) -> Vec<u8> {
    let mut pre = Vec::with_capacity(CONTENT_HASH_HEADER.len() + sorted.len() * 100);
    pre.extend_from_slice(CONTENT_HASH_HEADER);
    for e in sorted {
        pre.extend_from_slice(e.path.as_bytes());
        pre.push(0);
        pre.extend_from_slice(e.sha256.as_str().as_bytes());
        pre.push(b'\n');
    }
    pre
}

/// Hashes the tree under `root` (docs/content-hash.md). Regular files only: a symlink,
/// socket, fifo, device or non-UTF-8 name anywhere is an error naming it; empty directories
/// do not count. `threads`: `None` uses every core, `Some(1)` hashes on one. Progress is
/// reported in bytes.
pub fn hash_tree(
    root: &Path,
    threads: Option<usize>,
    reporter: &dyn Reporter,
) -> Result<ContentHash> {
    let files = list_files(root)?;
    let all: Vec<&Listed> = files.iter().collect();
    let total: u64 = files.iter().map(|f| f.size).sum();
    let task = reporter.begin(&format!("hashing {}", root.display()), Some(total));
    let result = match threads {
        None => hash_files(root, &all, rayon::current_num_threads(), reporter, task),
        Some(n) => rayon::ThreadPoolBuilder::new()
            .num_threads(n.max(1))
            .thread_name(|i| format!("cohort-hash-{i}"))
            .build()
            .map_err(|e| StorageError::io("start hashing threads for", root, io::Error::other(e)))?
            .install(|| hash_files(root, &all, n.max(1), reporter, task)),
    };
    reporter.end(task, result.is_ok());
    Ok(ContentHash::from_entries(result?))
}

/// Hashes `files` (under `root`) on `workers` tasks of the current rayon pool, returning digests in the
/// order of `files`. Workers take files largest first from a shared counter: a big file
/// never starts last while the other cores sit idle (a rayon split of the path-sorted list
/// did that: 1.4x instead of 1.9x on two cores in benches/content_hash.rs).
pub(super) fn hash_files(
    root: &Path,
    files: &[&Listed],
    workers: usize,
    reporter: &dyn Reporter,
    task: TaskId,
) -> Result<Vec<FileDigest>> {
    let mut order: Vec<usize> = (0..files.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(files[i].size));
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let digests: Mutex<Vec<Option<FileDigest>>> = Mutex::new(vec![None; files.len()]);
    let first_error: Mutex<Option<StorageError>> = Mutex::new(None);
    rayon::scope(|s| {
        for _ in 0..workers.min(files.len()).max(1) {
            s.spawn(|_| {
                while !failed.load(Ordering::Relaxed) {
                    let Some(&i) = order.get(next.fetch_add(1, Ordering::Relaxed)) else {
                        break;
                    };
                    let f = &files[i];
                    let abs = root.join(&f.rel);
                    let hashed =
                        with_buffer(|buf| hash_path(&abs, buf, &|n| reporter.advance(task, n)));
                    match hashed {
                        Ok((sha256, bytes)) => {
                            digests.lock().expect("no panics while held")[i] = Some(FileDigest {
                                path: f.rel.clone(),
                                sha256,
                                bytes,
                            });
                        }
                        Err(e) => {
                            failed.store(true, Ordering::Relaxed);
                            first_error
                                .lock()
                                .expect("no panics while held")
                                .get_or_insert(e);
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = first_error.into_inner().expect("no panics while held") {
        return Err(e);
    }
    Ok(digests
        .into_inner()
        .expect("no panics while held")
        .into_iter()
        .map(|d| d.expect("every file was hashed when no worker failed"))
        .collect())
}

thread_local! {
    /// One read buffer per hashing thread, reused across files and calls: thousands of
    /// small files must not each pay for a fresh 1 MiB allocation.
    static BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn with_buffer<T>(f: impl FnOnce(&mut [u8]) -> T) -> T {
    BUFFER.with(|b| {
        let mut b = b.borrow_mut();
        if b.len() < CHUNK {
            b.resize(CHUNK, 0);
        }
        f(&mut b)
    })
}

/// Streams the file at `path` through sha256 with `buf`, calling `progress` per chunk.
/// Refuses to follow a symlink swapped in after listing.
pub(crate) fn hash_path(
    path: &Path,
    buf: &mut [u8],
    progress: &dyn Fn(u64),
) -> Result<(Sha256, u64)> {
    let mut opts = fs::OpenOptions::new();
    opts.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32);
    }
    let mut file = opts
        .open(path)
        .map_err(|e| StorageError::io("open", path, e))?;
    hash_reader(&mut file, buf, progress).map_err(|e| StorageError::io("read", path, e))
}

/// Streams `r` through sha256 with `buf`.
pub(crate) fn hash_reader(
    r: &mut dyn Read,
    buf: &mut [u8],
    progress: &dyn Fn(u64),
) -> io::Result<(Sha256, u64)> {
    let mut h = sha2::Sha256::new();
    let mut total = 0u64;
    loop {
        let n = match r.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        h.update(&buf[..n]);
        total += n as u64;
        progress(n as u64);
    }
    Ok((Sha256::from_digest(&h.finalize()), total))
}

/// The sha256 and size of one file, streaming.
pub fn hash_file(path: &Path, reporter: &dyn Reporter) -> Result<(Sha256, u64)> {
    let size = fs::metadata(path).map(|m| m.len()).ok();
    let task: TaskId = reporter.begin(&format!("hashing {}", path.display()), size);
    let mut buf = vec![0u8; CHUNK];
    let r = hash_path(path, &mut buf, &|n| reporter.advance(task, n));
    reporter.end(task, r.is_ok());
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::Silent;

    fn tree(files: &[(&str, &[u8])]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (p, data) in files {
            let p = dir.path().join(p);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, data).unwrap();
        }
        dir
    }

    #[test]
    fn known_vector() {
        let d = tree(&[("b.txt", b"abc"), ("a/x", b"")]);
        let h = hash_tree(d.path(), Some(1), &Silent).unwrap();
        let expected_pre = "cohort-content/1\n\
             a/x\0e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n\
             b.txt\0ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\n";
        assert_eq!(h.preimage(), expected_pre.as_bytes());
        assert_eq!(
            expected_pre.len(),
            157,
            "docs/content-hash.md quotes this length"
        );
        assert_eq!(h.sha256, Sha256::of(expected_pre.as_bytes()));
        assert_eq!((h.files, h.bytes), (2, 3));
    }

    #[test]
    fn bytewise_order_not_component_order() {
        // '.' (0x2e) sorts before '/' (0x2f): "a.b" comes before "a/b".
        let d = tree(&[("a/b", b"1"), ("a.b", b"2"), ("A", b"3")]);
        let h = hash_tree(d.path(), None, &Silent).unwrap();
        let paths: Vec<_> = h.entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["A", "a.b", "a/b"]);
    }

    #[test]
    fn folders_whose_names_prefix_others_list_in_bytewise_order() {
        // Each folder is listed on its own: its entries must sort as the full paths do, a
        // folder `a` as `a/` (after `a-b`, `a.txt`, before `a0`, `ab`).
        let files = [
            "a/x", "a-b", "a.txt", "a0", "ab/c", "a/b/c", "a/b.c", "a/b-c/d", "b", "a/ b",
        ];
        let d = tree(&files.map(|p| (p, &b"x"[..])));
        let h = hash_tree(d.path(), None, &Silent).unwrap();
        let paths: Vec<&str> = h.entries.iter().map(|e| e.path.as_str()).collect();
        let mut want = files.to_vec();
        want.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        assert_eq!(paths, want);
    }

    #[test]
    fn a_link_anywhere_is_refused() {
        let d = tree(&[("deep/er/file", b"1"), ("other", b"2")]);
        std::os::unix::fs::symlink(d.path().join("other"), d.path().join("deep/er/link")).unwrap();
        let e = hash_tree(d.path(), None, &Silent).unwrap_err().to_string();
        assert!(e.contains("link") && e.contains("symbolic link"), "{e}");
        fs::remove_file(d.path().join("deep/er/link")).unwrap();
        std::os::unix::fs::symlink(d.path().join("deep"), d.path().join("folder-link")).unwrap();
        let e = hash_tree(d.path(), None, &Silent).unwrap_err().to_string();
        assert!(
            e.contains("folder-link") && e.contains("symbolic link"),
            "{e}"
        );
    }

    #[test]
    fn empty_dirs_are_ignored_and_an_empty_tree_hashes_the_header() {
        let d = tree(&[("f", b"x")]);
        let before = hash_tree(d.path(), None, &Silent).unwrap();
        fs::create_dir_all(d.path().join("empty/deeper")).unwrap();
        assert_eq!(hash_tree(d.path(), None, &Silent).unwrap(), before);
        let e = tempfile::tempdir().unwrap();
        assert_eq!(
            hash_tree(e.path(), None, &Silent).unwrap().sha256,
            Sha256::of(CONTENT_HASH_HEADER)
        );
    }

    #[test]
    fn diff_names_the_changed_files() {
        let d = tree(&[("a", b"1"), ("b", b"2"), ("c", b"3")]);
        let before = hash_tree(d.path(), None, &Silent).unwrap();
        fs::write(d.path().join("b"), b"changed").unwrap();
        fs::remove_file(d.path().join("c")).unwrap();
        fs::write(d.path().join("d"), b"new").unwrap();
        let after = hash_tree(d.path(), None, &Silent).unwrap();
        assert_eq!(
            after.diff(&before.entries),
            vec![
                FileChange::Modified("b".into()),
                FileChange::Removed("c".into()),
                FileChange::Added("d".into()),
            ]
        );
    }

    #[test]
    fn fifo_and_non_utf8_names_are_refused() {
        #[cfg(unix)]
        {
            use std::os::unix::ffi::OsStrExt;
            let d = tree(&[("ok", b"1")]);
            let bad = d.path().join(std::ffi::OsStr::from_bytes(b"bad\xff"));
            fs::write(&bad, b"x").unwrap();
            let e = hash_tree(d.path(), None, &Silent).unwrap_err().to_string();
            assert!(e.contains("not UTF-8"), "{e}");

            let d = tree(&[("ok", b"1")]);
            let fifo = d.path().join("pipe");
            rustix::fs::mknodat(
                rustix::fs::CWD,
                &fifo,
                rustix::fs::FileType::Fifo,
                rustix::fs::Mode::from_raw_mode(0o600),
                0,
            )
            .unwrap();
            let e = hash_tree(d.path(), None, &Silent).unwrap_err().to_string();
            assert!(
                e.contains("pipe") && e.contains("not a regular file"),
                "{e}"
            );
        }
    }
}
