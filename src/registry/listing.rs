//! The listing index: every parsed record of one verified commit, saved under COHORT_HOME next
//! to the signature memo, so that listings of thousands of records read one file instead of
//! inflating and parsing every TOML file again. It is keyed by the exact commit id it was built
//! from and is never read for another: a missing, stale or corrupt index is ignored and rebuilt
//! from the git objects, so it can change how fast a listing is, never what it says.
//!
//! Format (the folder `state/<registry id>.listing/`): one file per top folder of the registry
//! (`users`, `mlcubes`...), so a listing reads only the kinds it shows, and `folders`, naming
//! them. Each starts with a header line `cohort listing index 1 <commit> <sha256 of the
//! rest>`; a folder file then holds one line per record, `<path>\t<sha256 of the
//! file>\t<the record as JSON>`, sorted by path, and `folders` one folder name a line. Beside
//! them, the rows `mlcube ls` and `user ls` print (`cubes.rows`, `users.rows`: see `rows`),
//! read only while `folders` names the same commit. `folders` is written last.

use std::path::Path;

use git2::Oid;
use rayon::prelude::*;

use crate::model::{Record, Sha256, classify};
use crate::storage::write_atomic;
use crate::trust::Index;

const MAGIC: &str = "cohort listing index 1";

/// `body` behind a header `magic`, naming the commit it was built for and the body's digest.
pub(super) fn frame(magic: &str, commit: Oid, body: &[u8]) -> Vec<u8> {
    let mut out = format!("{magic} {commit} {}\n", Sha256::of(body)).into_bytes();
    out.extend_from_slice(body);
    out
}

/// The body of a file framed with `magic`, when it was built for exactly `commit` and is
/// whole.
pub(super) fn unframe<'a>(magic: &str, bytes: &'a [u8], commit: Oid) -> Option<&'a str> {
    let nl = bytes.iter().position(|&b| b == b'\n')?;
    let header = std::str::from_utf8(&bytes[..nl]).ok()?;
    let rest = header.strip_prefix(magic)?.strip_prefix(' ')?;
    let (built_for, body_sha) = rest.split_once(' ')?;
    let body = &bytes[nl + 1..];
    if built_for != commit.to_string() || body_sha != Sha256::of(body).as_str() {
        return None;
    }
    std::str::from_utf8(body).ok()
}

/// The first component of a path: the file a record is kept in.
fn top(p: &str) -> &str {
    p.split('/').next().unwrap_or(p)
}

/// The listing files of `ix`, the index of `commit`: one per top folder, and `folders`, the
/// list of them. `None` when a record does not serialize (then no index is kept: listings
/// read git).
pub fn encode(commit: Oid, ix: &Index) -> Option<Vec<(String, Vec<u8>)>> {
    let lines: Vec<Option<(&str, String)>> = ix
        .records
        .par_iter()
        .map(|(p, r)| {
            let sha = ix.sha(p)?;
            // Paths never hold tabs or newlines (ids are checked); refuse rather than trust.
            if p.contains(['\t', '\n']) {
                return None;
            }
            // The JSON the carry kept is what `to_json` writes (the same record, this parser).
            let carried = ix.files.get(p).map(|f| &f.json).filter(|j| !j.is_empty());
            let json = match carried {
                Some(j) => std::str::from_utf8(j).ok()?.to_string(),
                None => r.to_json().ok()?,
            };
            Some((top(p), format!("{p}\t{sha}\t{json}\n")))
        })
        .collect();
    let mut bodies: std::collections::BTreeMap<&str, Vec<u8>> = Default::default();
    for l in lines {
        let (folder, line) = l?;
        if folder.is_empty() || folder == FOLDERS || folder.starts_with('.') {
            return None;
        }
        bodies
            .entry(folder)
            .or_default()
            .extend_from_slice(line.as_bytes());
    }
    let names: String = bodies.keys().map(|f| format!("{f}\n")).collect();
    let mut out: Vec<(String, Vec<u8>)> = bodies
        .into_iter()
        .map(|(f, body)| (f.to_string(), frame(MAGIC, commit, &body)))
        .collect();
    // The rows listings print (see `rows`), derived from the same records.
    for (name, bytes) in super::rows::encode(commit, ix) {
        if let Some(bytes) = bytes {
            out.push((name.to_string(), bytes));
        }
    }
    // Written last: a reader that finds it for a commit finds that commit's other files.
    out.push((FOLDERS.to_string(), frame(MAGIC, commit, names.as_bytes())));
    Some(out)
}

/// The file listing the top folders an index holds.
const FOLDERS: &str = "folders";

/// The records under `folders` (and the root) that `keep` accepts, from the listing files
/// `read` gives by name, built for exactly `commit`; `None` when any of them was built for
/// another commit, is cut short, altered, or holds a line this cohort cannot read.
pub fn decode(
    read: &dyn Fn(&str) -> Option<Vec<u8>>,
    commit: Oid,
    folders: &[&str],
    keep: &dyn Fn(&str) -> bool,
) -> Option<Index> {
    let list = read(FOLDERS)?;
    let present: Vec<&str> = unframe(MAGIC, &list, commit)?.lines().collect();
    let mut wanted: Vec<&str> = folders.iter().map(|f| top(f)).collect();
    wanted.push("root");
    wanted.sort();
    wanted.dedup();
    let in_scope =
        |p: &str| p.starts_with("root/") || (folders.iter().any(|f| p.starts_with(f)) && keep(p));
    let mut records = Vec::new();
    for folder in wanted.into_iter().filter(|f| present.contains(f)) {
        let bytes = read(folder)?;
        let body = unframe(MAGIC, &bytes, commit)?;
        let lines: Vec<&str> = body
            .lines()
            .filter(|l| l.split_once('\t').is_some_and(|(p, _)| in_scope(p)))
            .collect();
        let parsed: Option<Vec<(String, Sha256, Record)>> = lines
            .par_iter()
            .map(|l| {
                let mut parts = l.splitn(3, '\t');
                let (p, sha, json) = (parts.next()?, parts.next()?, parts.next()?);
                if top(p) != folder {
                    return None;
                }
                let kind = classify(p).ok()?.kind()?;
                Some((
                    p.to_string(),
                    sha.parse().ok()?,
                    Record::from_json(kind, json).ok()?,
                ))
            })
            .collect();
        records.extend(parsed?);
    }
    Some(Index::from_records(records))
}

/// Reads the listing index in the folder `dir` for `commit` (see [`decode`]); `None` when
/// there is none usable.
pub fn load(
    dir: &Path,
    commit: Oid,
    folders: &[&str],
    keep: &dyn Fn(&str) -> bool,
) -> Option<Index> {
    decode(
        &|name| std::fs::read(dir.join(name)).ok(),
        commit,
        folders,
        keep,
    )
}

/// The bytes of the rows file `name` (see `rows`) in the folder `dir`, when the listing there
/// was written for `commit`: the caller still checks that the file itself was.
pub fn load_rows(dir: &Path, commit: Oid, name: &str) -> Option<Vec<u8>> {
    unframe(MAGIC, &std::fs::read(dir.join(FOLDERS)).ok()?, commit)?;
    std::fs::read(dir.join(name)).ok()
}

/// Saves the rows file `name` (see `rows`) of the listing in `dir`, alone: for a listing
/// written before rows existed, once its rows were computed from its records.
pub fn save_rows(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    write_atomic(&dir.join(name), bytes)
}

/// Whether the listing in `dir` is whole and built for `commit`: its list of folders and
/// every file it names (checked against their digests, not parsed).
fn is_whole(dir: &Path, commit: Oid) -> bool {
    let Some(list) = std::fs::read(dir.join(FOLDERS)).ok() else {
        return false;
    };
    let Some(names) = unframe(MAGIC, &list, commit) else {
        return false;
    };
    names.lines().all(|folder| {
        std::fs::read(dir.join(folder))
            .ok()
            .is_some_and(|b| unframe(MAGIC, &b, commit).is_some())
    })
}

/// Saves the listing index of `ix` (the verified index of `commit`) in the folder `dir`,
/// each file atomically: a reader sees each file old or new, never half of one, and takes
/// only files naming the commit it asks for. A listing already whole for `commit` is kept
/// (verifying an unchanged main rewrote 19 MB at 10,000 entities).
pub fn save(dir: &Path, commit: Oid, ix: &Index) -> std::io::Result<()> {
    if is_whole(dir, commit) {
        return Ok(());
    }
    match encode(commit, ix) {
        Some(files) => {
            for (name, bytes) in files {
                write_atomic(&dir.join(name), &bytes)?;
            }
            Ok(())
        }
        // An index that cannot hold every record is worse than none.
        None => match std::fs::remove_file(dir.join(FOLDERS)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        },
    }
}

#[cfg(test)]
#[path = "listing_tests.rs"]
mod tests;
