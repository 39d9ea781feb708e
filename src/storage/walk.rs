//! The files of a dataset tree with what `lstat` says of each, in the content hash's order
//! (bytewise by relative path), for the content hash and its stat cache. Checking an
//! unchanged dataset of 100,000 files is mostly this walk, so it does the least the kernel
//! allows: each folder is opened once (relative to its parent, never through a link) and read
//! into one buffer, its files are stat'ed relative to it on every core, and its entries are
//! sorted so that the tree comes out in order without sorting the whole listing.

use std::cmp::Ordering;
use std::ffi::OsStr;
use std::fs;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, RawDir};

use super::error::{Result, StorageError};

pub(super) struct Listed {
    /// Relative path with `/` separators.
    pub rel: String,
    pub size: u64,
    /// What the stat cache compares (statcache.rs).
    pub stat: Stat,
}

/// A file's identity and change stamps as `lstat` gives them (git's index keeps the same).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Stat {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    /// Nanoseconds since the epoch.
    pub mtime: i128,
    pub ctime: i128,
}

fn ns(s: i64, n: i64) -> i128 {
    s as i128 * 1_000_000_000 + n as i128
}

impl Stat {
    pub fn of(m: &fs::Metadata) -> Stat {
        use std::os::unix::fs::MetadataExt;
        Stat {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: ns(m.mtime(), m.mtime_nsec()),
            ctime: ns(m.ctime(), m.ctime_nsec()),
        }
    }

    fn of_raw(st: &rustix::fs::Stat) -> Stat {
        Stat {
            dev: st.st_dev,
            ino: st.st_ino,
            size: st.st_size as u64,
            mtime: ns(st.st_mtime, st.st_mtime_nsec as i64),
            ctime: ns(st.st_ctime, st.st_ctime_nsec as i64),
        }
    }
}

/// One entry of a folder: a file to stat or a folder to list.
struct Entry {
    name: String,
    dir: bool,
}

/// The order of entries whose full paths sort bytewise: a folder's files come after its own
/// name and a `/`, so `a.txt` (`.` is 0x2e) goes before everything in `a/` (`/` is 0x2f).
fn order(a: &Entry, b: &Entry) -> Ordering {
    if !a.dir && !b.dir {
        return a.name.cmp(&b.name);
    }
    fn key(e: &Entry) -> impl Iterator<Item = &u8> {
        let tail: &[u8] = if e.dir { b"/" } else { b"" };
        e.name.as_bytes().iter().chain(tail)
    }
    key(a).cmp(key(b))
}

fn unhashable(path: PathBuf, why: &str) -> StorageError {
    StorageError::Unhashable {
        path,
        why: why.to_string(),
    }
}

const NOT_REGULAR: &str =
    "is not a regular file (socket, fifo or device); remove it from the dataset";
const LINK: &str =
    "is a symbolic link; datasets must hold regular files only (copy the target in place)";

/// The entries of the open folder `fd` (at `abs`), sorted (see [`order`]).
fn entries(fd: &OwnedFd, abs: &Path) -> Result<Vec<Entry>> {
    let mut buf: Vec<u8> = Vec::with_capacity(64 << 10);
    let mut dir = RawDir::new(fd, buf.spare_capacity_mut());
    let mut out = Vec::new();
    while let Some(e) = dir.next() {
        let e = e.map_err(|e| StorageError::io("list", abs, e.into()))?;
        let raw = e.file_name().to_bytes();
        if raw == b"." || raw == b".." {
            continue;
        }
        let path = || abs.join(OsStr::from_bytes(raw));
        let Ok(name) = std::str::from_utf8(raw) else {
            return Err(unhashable(
                path(),
                "its name is not UTF-8 (content hashes use UTF-8 paths); rename it",
            ));
        };
        let kind = match e.file_type() {
            FileType::Unknown => {
                // Some filesystems do not say in the listing: ask.
                let st = rustix::fs::statat(fd, OsStr::from_bytes(raw), AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(|e| StorageError::io("inspect", path(), e.into()))?;
                FileType::from_raw_mode(st.st_mode)
            }
            k => k,
        };
        let dir = match kind {
            FileType::Directory => true,
            FileType::RegularFile => false,
            FileType::Symlink => return Err(unhashable(path(), LINK)),
            _ => return Err(unhashable(path(), NOT_REGULAR)),
        };
        out.push(Entry {
            name: name.to_string(),
            dir,
        });
    }
    out.sort_unstable_by(order);
    Ok(out)
}

/// What one entry of a folder gives: a file, or the files of a folder in order.
enum Found {
    File(Listed),
    Folder(Vec<Listed>),
}

/// Every regular file in the open folder `fd` (at `abs`) and below, `prefix` before names.
fn list_dir(fd: &OwnedFd, abs: &Path, prefix: &str) -> Result<Vec<Listed>> {
    let found: Vec<Result<Found>> = entries(fd, abs)?
        .into_par_iter()
        .with_min_len(64)
        .map(|e| {
            let path = || abs.join(&e.name);
            if e.dir {
                let child = rustix::fs::openat(
                    fd,
                    e.name.as_str(),
                    OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::RDONLY | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| StorageError::io("list", path(), e.into()))?;
                let rel = [prefix, &e.name, "/"].concat();
                return list_dir(&child, &path(), &rel).map(Found::Folder);
            }
            let st = rustix::fs::statat(fd, e.name.as_str(), AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| StorageError::io("inspect", path(), e.into()))?;
            // Listed as a file a moment ago: whatever it is now decides.
            match FileType::from_raw_mode(st.st_mode) {
                FileType::RegularFile => {}
                FileType::Symlink => return Err(unhashable(path(), LINK)),
                _ => return Err(unhashable(path(), NOT_REGULAR)),
            }
            let stat = Stat::of_raw(&st);
            Ok(Found::File(Listed {
                rel: [prefix, &e.name].concat(),
                size: stat.size,
                stat,
            }))
        })
        .collect();
    let mut out = Vec::with_capacity(found.len());
    for f in found {
        match f? {
            Found::File(l) => out.push(l),
            Found::Folder(mut files) => out.append(&mut files),
        }
    }
    Ok(out)
}

/// Every regular file under `root`, sorted bytewise by relative path.
pub(super) fn list_files(root: &Path) -> Result<Vec<Listed>> {
    let meta = fs::metadata(root).map_err(|e| StorageError::io("read", root, e))?;
    if !meta.is_dir() {
        return Err(unhashable(root.to_path_buf(), "is not a directory"));
    }
    let fd = rustix::fs::open(
        root,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| StorageError::io("read", root, e.into()))?;
    list_dir(&fd, root, "")
}
