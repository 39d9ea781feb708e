//! The stat cache of a prepared dataset, in the manner of git's index: the sha256 of each file
//! together with what `lstat` said of it (device, inode, size, modification and change times)
//! when it was hashed, so that checking a dataset of hundreds of GB re-hashes only the files
//! whose stat changed. A file rewritten with the same size within the timestamps' granularity
//! keeps its mtime; git calls such entries "racily clean" and re-hashes every entry whose mtime
//! is not older than the index file. Here the bound is stricter: the run's start, read from the
//! filesystem's own clock (a file created next to the cache), and an entry stamped at or after
//! the start of the run that recorded it is hashed again. The cache changes how much is read,
//! never the content hash: on any doubt (no cache, another format, a damaged file) everything
//! is hashed.
//!
//! Checking an unchanged dataset of 100,000 files costs one `lstat` per file and one read of
//! this cache: entries are binary, in the listing's own order, and matched to the listing by
//! walking both at once (no parsing, no map, no copy of a path).
//!
//! Format (`<dataset>/statcache`): one header line `cohort stat cache 2 <start ns> <sha256 of
//! the rest>`, then one entry per file in bytewise order of paths: device, inode and size (u64
//! each), modification and change times (i128 ns each), all little-endian, the file's raw
//! 32-byte sha256, the length of its path (u32 little-endian) and the path (UTF-8). A cache of
//! the first format is ignored (the next run hashes everything once and writes this one).

use std::fs;
use std::path::Path;

use crate::model::Sha256;
use crate::progress::Reporter;

use super::content::{ContentHash, FileDigest, hash_files};
use super::error::{Result, StorageError};
use super::walk::{Listed, Stat, list_files};
use super::write_atomic_mode;

const MAGIC: &str = "cohort stat cache 2";

/// How a cached hash was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheUse {
    /// Files read and hashed in this run.
    pub hashed: u64,
    /// Files whose digest came from the cache (their stat had not changed).
    pub reused: u64,
}

/// The fixed part of an entry: device, inode, size, two times, the digest, the path length.
const FIXED: usize = 8 * 3 + 16 * 2 + 32 + 4;

/// One entry, borrowed from the cache's bytes.
struct Entry<'a> {
    stat: Stat,
    sha256: &'a [u8],
    path: &'a [u8],
}

fn encode(start: i128, files: &[Listed], digests: &[Sha256]) -> Vec<u8> {
    let mut body = Vec::with_capacity(files.len() * (FIXED + 40));
    for (f, sha) in files.iter().zip(digests) {
        let s = f.stat;
        body.extend_from_slice(&s.dev.to_le_bytes());
        body.extend_from_slice(&s.ino.to_le_bytes());
        body.extend_from_slice(&s.size.to_le_bytes());
        body.extend_from_slice(&s.mtime.to_le_bytes());
        body.extend_from_slice(&s.ctime.to_le_bytes());
        body.extend_from_slice(&hex::decode(sha.as_str()).expect("a digest is hex"));
        body.extend_from_slice(&(f.rel.len() as u32).to_le_bytes());
        body.extend_from_slice(f.rel.as_bytes());
    }
    let mut out = format!("{MAGIC} {start} {}\n", Sha256::of(&body)).into_bytes();
    out.extend_from_slice(&body);
    out
}

/// The start of the run that wrote `bytes` and where its body begins, when whole and of this
/// format.
fn decode(bytes: &[u8]) -> Option<(i128, usize)> {
    let nl = bytes.iter().position(|&b| b == b'\n')?;
    let header = std::str::from_utf8(&bytes[..nl]).ok()?;
    let mut h = header.strip_prefix(MAGIC)?.strip_prefix(' ')?.split(' ');
    let start: i128 = h.next()?.parse().ok()?;
    let body = &bytes[nl + 1..];
    if h.next()? != Sha256::of(body).as_str() || h.next().is_some() {
        return None;
    }
    Some((start, nl + 1))
}

/// The entries of a body [`decode`] accepted, in order; `None` at the end, or when the rest
/// cannot be an entry.
fn next_entry<'a>(body: &mut &'a [u8]) -> Option<Entry<'a>> {
    let (fixed, rest) = body.split_at_checked(FIXED)?;
    let u64_at = |i: usize| u64::from_le_bytes(fixed[i..i + 8].try_into().expect("8 bytes"));
    let i128_at = |i: usize| i128::from_le_bytes(fixed[i..i + 16].try_into().expect("16 bytes"));
    let len = u32::from_le_bytes(fixed[88..92].try_into().expect("4 bytes")) as usize;
    let (path, rest) = rest.split_at_checked(len)?;
    *body = rest;
    Some(Entry {
        stat: Stat {
            dev: u64_at(0),
            ino: u64_at(8),
            size: u64_at(16),
            mtime: i128_at(24),
            ctime: i128_at(40),
        },
        sha256: &fixed[56..88],
        path,
    })
}

/// Whether a digest recorded with stat `was`, by a run that started at `start`, still holds
/// for a file whose stat is now `now`: the same file (device, inode), size and times, stamped
/// before that run started, so that any write since would have moved its mtime or ctime.
fn reusable(was: &Stat, start: i128, now: &Stat) -> bool {
    was == now && now.mtime < start && now.ctime < start
}

/// The filesystem's current time as it stamps files in `dir`: the mtime of a file created
/// there (the clock and granularity file times in that filesystem really have).
fn fs_now(dir: &Path) -> Result<i128> {
    fs::create_dir_all(dir).map_err(|e| StorageError::io("create", dir, e))?;
    let probe = tempfile::Builder::new()
        .prefix(".statcache-clock-")
        .tempfile_in(dir)
        .map_err(|e| StorageError::io("create a file in", dir, e))?;
    let meta = probe
        .as_file()
        .metadata()
        .map_err(|e| StorageError::io("inspect", probe.path(), e))?;
    Ok(Stat::of(&meta).mtime)
}

/// The content hash of the tree under `root` (exactly [`super::hash_tree`]'s), re-hashing only
/// the files whose stat differs from the cache at `cache` or is too recent to tell (see the
/// module), and saving the cache for the next run. `full` hashes every file (and refreshes the
/// cache). The cache must be on the same filesystem as `root`, outside it.
pub fn hash_tree_cached(
    root: &Path,
    cache: &Path,
    full: bool,
    reporter: &dyn Reporter,
) -> Result<(ContentHash, CacheUse)> {
    let dir = cache.parent().unwrap_or(Path::new("."));
    let start = fs_now(dir)?;
    // Reading and checking the cache overlaps the walk (which waits on the kernel).
    let (files, bytes) = rayon::join(
        || list_files(root),
        || {
            let bytes = if full {
                Vec::new()
            } else {
                fs::read(cache).unwrap_or_default()
            };
            let old = decode(&bytes);
            (bytes, old)
        },
    );
    let (files, (bytes, old)) = (files?, bytes);
    let old = old.map(|(start, at)| (start, &bytes[at..]));
    // The listing and the cache are both in bytewise order of paths: one walk matches them.
    let mut digests: Vec<Option<Sha256>> = Vec::with_capacity(files.len());
    // Entries read and whether the body ended exactly after the last one.
    let (mut entries, mut whole) = (0usize, false);
    if let Some((was_start, mut body)) = old {
        let mut read = || {
            let e = next_entry(&mut body);
            entries += e.is_some() as usize;
            e
        };
        let mut next = read();
        for f in &files {
            while next.as_ref().is_some_and(|e| e.path < f.rel.as_bytes()) {
                next = read();
            }
            digests.push(match &next {
                Some(e) if e.path == f.rel.as_bytes() => {
                    reusable(&e.stat, was_start, &f.stat).then(|| Sha256::from_digest(e.sha256))
                }
                _ => None,
            });
        }
        while next.is_some() {
            next = read();
        }
        whole = body.is_empty();
    } else {
        digests.resize(files.len(), None);
    }
    let fresh: Vec<&Listed> = files
        .iter()
        .zip(&digests)
        .filter(|(_, d)| d.is_none())
        .map(|(f, _)| f)
        .collect();
    let total: u64 = fresh.iter().map(|f| f.size).sum();
    let task = reporter.begin(&format!("hashing {}", root.display()), Some(total));
    let hashed = hash_files(root, &fresh, rayon::current_num_threads(), reporter, task);
    reporter.end(task, hashed.is_ok());
    let mut hashed = hashed?.into_iter().map(|d| d.sha256);
    let used = CacheUse {
        hashed: fresh.len() as u64,
        reused: (files.len() - fresh.len()) as u64,
    };
    let digests: Vec<Sha256> = digests
        .into_iter()
        .map(|d| d.unwrap_or_else(|| hashed.next().expect("one digest per file hashed")))
        .collect();
    // Every file came from the cache and the cache held nothing else.
    let unchanged = fresh.is_empty() && whole && entries == files.len();
    if !unchanged {
        // The cache only saves time: failing to save it changes nothing. An unchanged tree
        // keeps the cache it was checked against (its entries hold under its own start).
        // It names the site's files, so it is private like the data it describes.
        let _ = write_atomic_mode(cache, &encode(start, &files, &digests), Some(0o600));
    }
    let entries = files
        .into_iter()
        .zip(digests)
        .map(|(f, sha256)| FileDigest {
            path: f.rel,
            sha256,
            bytes: f.size,
        })
        .collect();
    Ok((ContentHash::from_entries(entries), used))
}

#[cfg(test)]
#[path = "statcache_tests.rs"]
mod tests;
