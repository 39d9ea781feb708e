//! The listing index: every parsed record of one verified commit, saved under COHORT_HOME next
//! to the signature memo, so that listings of thousands of records read one file instead of
//! inflating and parsing every TOML file again. It is keyed by the exact commit id it was built
//! from and is never read for another: a missing, stale or corrupt index is ignored and rebuilt
//! from the git objects, so it can change how fast a listing is, never what it says.
//!
//! Format (`state/<registry id>.listing`): one header line
//! `cohort listing index 1 <commit> <sha256 of the rest>`, then one line per record,
//! `<path>\t<sha256 of the file>\t<the record as JSON>`, sorted by path.

use std::path::Path;

use git2::Oid;
use rayon::prelude::*;

use crate::model::{Kind, Record, Sha256, classify};
use crate::storage::write_atomic;
use crate::trust::Index;

const MAGIC: &str = "cohort listing index 1";

fn to_json(r: &Record) -> serde_json::Result<String> {
    match r {
        Record::Root(x) => serde_json::to_string(x),
        Record::Meta(x) => serde_json::to_string(x),
        Record::User(x) => serde_json::to_string(x),
        Record::Grant(x) => serde_json::to_string(x),
        Record::Decision(x) => serde_json::to_string(x),
        Record::Mlcube(x) => serde_json::to_string(x),
        Record::Benchmark(x) => serde_json::to_string(x),
        Record::Association(x) => serde_json::to_string(x),
        Record::Priority(x) => serde_json::to_string(x),
        Record::Dataset(x) => serde_json::to_string(x),
        Record::Result(x) => serde_json::to_string(x),
        Record::Leaderboard(x) => serde_json::to_string(x),
    }
}

fn from_json(kind: Kind, json: &str) -> serde_json::Result<Record> {
    Ok(match kind {
        Kind::Root => Record::Root(serde_json::from_str(json)?),
        Kind::Meta => Record::Meta(serde_json::from_str(json)?),
        Kind::User => Record::User(serde_json::from_str(json)?),
        Kind::Grant => Record::Grant(serde_json::from_str(json)?),
        Kind::Approval | Kind::Rejection | Kind::Withdrawal => {
            Record::Decision(serde_json::from_str(json)?)
        }
        Kind::Mlcube => Record::Mlcube(serde_json::from_str(json)?),
        Kind::Benchmark => Record::Benchmark(serde_json::from_str(json)?),
        Kind::Association => Record::Association(serde_json::from_str(json)?),
        Kind::Priority => Record::Priority(serde_json::from_str(json)?),
        Kind::Dataset => Record::Dataset(serde_json::from_str(json)?),
        Kind::Result => Record::Result(serde_json::from_str(json)?),
        Kind::Leaderboard => Record::Leaderboard(serde_json::from_str(json)?),
    })
}

/// The listing index of `ix`, the index of `commit`. `None` when a record does not
/// serialize (then no index is kept: listings read git).
pub fn encode(commit: Oid, ix: &Index) -> Option<Vec<u8>> {
    let lines: Vec<Option<String>> = ix
        .records
        .par_iter()
        .map(|(p, r)| {
            let sha = ix.sha(p)?;
            // Paths never hold tabs or newlines (ids are checked); refuse rather than trust.
            if p.contains(['\t', '\n']) {
                return None;
            }
            Some(format!("{p}\t{sha}\t{}\n", to_json(r).ok()?))
        })
        .collect();
    let mut body = Vec::new();
    for l in lines {
        body.extend_from_slice(l?.as_bytes());
    }
    let mut out = format!("{MAGIC} {commit} {}\n", Sha256::of(&body)).into_bytes();
    out.extend_from_slice(&body);
    Some(out)
}

/// The records under `folders` (and the root) that `keep` accepts, from a listing index
/// built for exactly `commit`; `None` when `bytes` were built for another commit, are cut
/// short, altered, or hold a line this cohort cannot read.
pub fn decode(
    bytes: &[u8],
    commit: Oid,
    folders: &[&str],
    keep: &dyn Fn(&str) -> bool,
) -> Option<Index> {
    let nl = bytes.iter().position(|&b| b == b'\n')?;
    let header = std::str::from_utf8(&bytes[..nl]).ok()?;
    let rest = header.strip_prefix(MAGIC)?.strip_prefix(' ')?;
    let (built_for, body_sha) = rest.split_once(' ')?;
    if built_for != commit.to_string() {
        return None;
    }
    let body = &bytes[nl + 1..];
    if body_sha != Sha256::of(body).as_str() {
        return None;
    }
    let body = std::str::from_utf8(body).ok()?;
    let wanted =
        |p: &str| p.starts_with("root/") || (folders.iter().any(|f| p.starts_with(f)) && keep(p));
    let lines: Vec<&str> = body
        .lines()
        .filter(|l| l.split_once('\t').is_some_and(|(p, _)| wanted(p)))
        .collect();
    let parsed: Option<Vec<(String, Sha256, Record)>> = lines
        .par_iter()
        .map(|l| {
            let mut parts = l.splitn(3, '\t');
            let (p, sha, json) = (parts.next()?, parts.next()?, parts.next()?);
            let kind = classify(p).ok()?.kind()?;
            Some((
                p.to_string(),
                sha.parse().ok()?,
                from_json(kind, json).ok()?,
            ))
        })
        .collect();
    Some(Index::from_records(parsed?))
}

/// Reads the listing index at `path` for `commit` (see [`decode`]); `None` when there is none
/// usable.
pub fn load(
    path: &Path,
    commit: Oid,
    folders: &[&str],
    keep: &dyn Fn(&str) -> bool,
) -> Option<Index> {
    decode(&std::fs::read(path).ok()?, commit, folders, keep)
}

/// Saves the listing index of `ix` (the verified index of `commit`) atomically: a reader
/// sees the old index or the new one, never half of one.
pub fn save(path: &Path, commit: Oid, ix: &Index) -> std::io::Result<()> {
    match encode(commit, ix) {
        Some(bytes) => write_atomic(path, &bytes),
        // An index that cannot hold every record is worse than none.
        None => match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        },
    }
}

#[cfg(test)]
#[path = "listing_tests.rs"]
mod tests;
