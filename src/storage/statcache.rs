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
//! Format (`<dataset>/statcache`): one header line `cohort stat cache 1 <start ns> <sha256 of
//! the rest>`, then one entry per file, `<dev> <ino> <size> <mtime ns> <ctime ns> <sha256>
//! <path>` ended by a NUL byte.

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use crate::model::Sha256;
use crate::progress::Reporter;

use super::content::{ContentHash, FileDigest, Listed, Stat, hash_files, list_files};
use super::error::{Result, StorageError};
use super::write_atomic_mode;

const MAGIC: &str = "cohort stat cache 1";

/// How a cached hash was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheUse {
    /// Files read and hashed in this run.
    pub hashed: u64,
    /// Files whose digest came from the cache (their stat had not changed).
    pub reused: u64,
}

struct Entry {
    stat: Stat,
    sha256: Sha256,
}

struct Cache {
    /// When the run that wrote it started, on the filesystem's clock (ns).
    start: i128,
    entries: HashMap<String, Entry>,
}

fn encode(start: i128, files: &[(&Listed, &Sha256)]) -> Vec<u8> {
    let mut body = Vec::with_capacity(files.len() * 140);
    for (f, sha) in files {
        let s = f.stat;
        body.extend_from_slice(
            format!(
                "{} {} {} {} {} {sha} {}\0",
                s.dev, s.ino, s.size, s.mtime, s.ctime, f.rel
            )
            .as_bytes(),
        );
    }
    let mut out = format!("{MAGIC} {start} {}\n", Sha256::of(&body)).into_bytes();
    out.extend_from_slice(&body);
    out
}

fn decode(bytes: &[u8]) -> Option<Cache> {
    let nl = bytes.iter().position(|&b| b == b'\n')?;
    let header = std::str::from_utf8(&bytes[..nl]).ok()?;
    let mut h = header.strip_prefix(MAGIC)?.strip_prefix(' ')?.split(' ');
    let start: i128 = h.next()?.parse().ok()?;
    let body = &bytes[nl + 1..];
    if h.next()? != Sha256::of(body).as_str() || h.next().is_some() {
        return None;
    }
    let body = std::str::from_utf8(body).ok()?;
    let mut entries = HashMap::new();
    for e in body.split_terminator('\0') {
        let mut f = e.splitn(7, ' ');
        let mut num = || f.next()?.parse::<i128>().ok();
        let stat = Stat {
            dev: num()? as u64,
            ino: num()? as u64,
            size: num()? as u64,
            mtime: num()?,
            ctime: num()?,
        };
        let sha256 = f.next()?.parse().ok()?;
        entries.insert(f.next()?.to_string(), Entry { stat, sha256 });
    }
    Some(Cache { start, entries })
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
    let files = list_files(root)?;
    let old = if full {
        None
    } else {
        fs::read(cache).ok().and_then(|b| decode(&b))
    };
    let cached = |f: &Listed| -> Option<Sha256> {
        let c = old.as_ref()?;
        let e = c.entries.get(&f.rel)?;
        reusable(&e.stat, c.start, &f.stat).then(|| e.sha256.clone())
    };
    let mut known: Vec<(Listed, Sha256)> = Vec::new();
    let mut fresh: Vec<Listed> = Vec::new();
    for f in files {
        match cached(&f) {
            Some(sha) => known.push((f, sha)),
            None => fresh.push(f),
        }
    }
    let total: u64 = fresh.iter().map(|f| f.size).sum();
    let task = reporter.begin(&format!("hashing {}", root.display()), Some(total));
    let hashed = hash_files(&fresh, rayon::current_num_threads(), reporter, task);
    reporter.end(task, hashed.is_ok());
    let hashed = hashed?;
    let used = CacheUse {
        hashed: fresh.len() as u64,
        reused: known.len() as u64,
    };
    let unchanged =
        fresh.is_empty() && old.as_ref().is_some_and(|c| c.entries.len() == known.len());
    let mut all: Vec<(&Listed, &Sha256)> = known.iter().map(|(f, s)| (f, s)).collect();
    all.extend(fresh.iter().zip(hashed.iter().map(|d| &d.sha256)));
    if !unchanged {
        // The cache only saves time: failing to save it changes nothing. An unchanged tree
        // keeps the cache it was checked against (its entries hold under its own start).
        // It names the site's files, so it is private like the data it describes.
        let _ = write_atomic_mode(cache, &encode(start, &all), Some(0o600));
    }
    let entries = all
        .iter()
        .map(|(f, sha)| FileDigest {
            path: f.rel.clone(),
            sha256: (*sha).clone(),
            bytes: f.size,
        })
        .collect();
    Ok((ContentHash::from_entries(entries), used))
}

#[cfg(test)]
#[path = "statcache_tests.rs"]
mod tests;
