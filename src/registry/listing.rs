//! The listing index: every parsed record of one verified commit, saved under COHORT_HOME next
//! to the signature memo, so that listings of thousands of records read one file instead of
//! inflating and parsing every TOML file again. It is keyed by the exact commit id it was built
//! from and is never read for another: a missing, stale or corrupt index is ignored and rebuilt
//! from the git objects, so it can change how fast a listing is, never what it says.
//!
//! Format (the folder `state/<registry id>.listing/`): a manifest, `manifest`, with a header
//! line `cohort listing index 2 <commit> <sha256 of the rest>` and then one line per file of
//! the listing, `<file name>\t<sha256 of the file>`; a file is read only when the manifest of
//! the commit asked for names it with its digest. The files hold, for each top folder of the
//! registry (`users`, `mlcubes`...), one line per record, `<path>\t<sha256 of the
//! file>\t<the record as JSON>`, so a listing reads only the kinds it shows, and the rows
//! `mlcube ls` and `user ls` print (`cubes.rows`, `users.rows`: see `rows`). A logical file
//! is the concatenation of the parts the manifest names for it, in its order: `<name>` and
//! `<name>@<commit>`. A main grown by additions from the main whose listing is kept adds one
//! part per folder it adds records to (and to `cubes.rows`), written for the new commit, and
//! a new manifest naming the old parts and the new: the files of the old main are neither read
//! nor written again. `users.rows` is replaced whole when the additions hold a root, user or
//! grant record (the only records its rows are computed from). Past [`MAX_STEPS`] such
//! additions, when the parts would exceed a quarter of the listing (and 64 KiB), or for any
//! other main, the listing is written whole again. The manifest is written last.

use std::collections::BTreeMap;
use std::path::Path;

use git2::Oid;
use rayon::prelude::*;

use crate::model::{Record, RecordPath, Sha256, classify};
use crate::storage::write_atomic;
use crate::trust::Index;

use super::rows;

const MAGIC: &str = "cohort listing index 2";
/// The manifest's file name (no top folder of a registry is named so: they are kinds' names).
const MANIFEST: &str = "manifest";
/// Additions kept as parts before the listing is written whole again (each is a file to open
/// per logical file a listing reads).
pub const MAX_STEPS: usize = 16;

/// The first component of a path: the file a record is kept in.
fn top(p: &str) -> &str {
    p.split('/').next().unwrap_or(p)
}

/// The logical file a part belongs to: its name up to `@`.
fn logical(part: &str) -> &str {
    part.split('@').next().unwrap_or(part)
}

/// The parts a manifest names, in order: (file name, sha256 of its bytes).
type Parts = Vec<(String, String)>;

/// The parts the manifest in `bytes` names, when it was written for exactly `commit` and is
/// whole.
fn parse_manifest(bytes: &[u8], commit: Oid) -> Option<Parts> {
    let nl = bytes.iter().position(|&b| b == b'\n')?;
    let header = std::str::from_utf8(&bytes[..nl]).ok()?;
    let (built_for, body_sha) = header
        .strip_prefix(MAGIC)?
        .strip_prefix(' ')?
        .split_once(' ')?;
    let body = &bytes[nl + 1..];
    if built_for != commit.to_string() || body_sha != Sha256::of(body).as_str() {
        return None;
    }
    std::str::from_utf8(body)
        .ok()?
        .lines()
        .map(|l| {
            let (name, sha) = l.split_once('\t')?;
            let ok = !name.is_empty() && name != MANIFEST && !name.contains(['/', '\\', '\t']);
            ok.then(|| (name.to_string(), sha.to_string()))
        })
        .collect()
}

/// The manifest of `commit` naming `parts`: a header naming the commit and the body's
/// digest, then one part a line.
fn manifest(commit: Oid, parts: &Parts) -> Vec<u8> {
    let body: String = parts.iter().map(|(n, s)| format!("{n}\t{s}\n")).collect();
    let mut out = format!("{MAGIC} {commit} {}\n", Sha256::of(body.as_bytes())).into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}

/// The bytes of the part `name`, read by `read`, when they have the digest `sha`.
fn read_part(read: &dyn Fn(&str) -> Option<Vec<u8>>, name: &str, sha: &str) -> Option<Vec<u8>> {
    read(name).filter(|b| Sha256::of(b).as_str() == sha)
}

/// The logical file `name` of the listing whose manifest names `parts`, each part read by
/// `read` and checked against its digest; `Some(None)` when the listing has no such file,
/// `None` when a part is missing or altered.
fn read_logical(
    read: &dyn Fn(&str) -> Option<Vec<u8>>,
    parts: &Parts,
    name: &str,
) -> Option<Option<Vec<u8>>> {
    let mut out: Option<Vec<u8>> = None;
    for (part, sha) in parts.iter().filter(|(p, _)| logical(p) == name) {
        let bytes = read_part(read, part, sha)?;
        match &mut out {
            None => out = Some(bytes),
            Some(o) => o.extend_from_slice(&bytes),
        }
    }
    Some(out)
}

/// The listing line of the record at `p` of `ix`, with the folder it goes to.
fn line<'a>(ix: &Index, p: &'a str, r: &Record) -> Option<(&'a str, String)> {
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
    let folder = top(p);
    if folder.is_empty() || folder == MANIFEST || folder.contains(['.', '@']) {
        return None;
    }
    Some((folder, format!("{p}\t{sha}\t{json}\n")))
}

/// The folder files of the records at `paths` of `ix`, by folder; `None` when one does not
/// serialize.
fn bodies<'a>(ix: &Index, paths: &[&'a str]) -> Option<BTreeMap<&'a str, Vec<u8>>> {
    let lines: Vec<Option<(&str, String)>> = paths
        .par_iter()
        .map(|p| line(ix, p, ix.records.get(*p)?))
        .collect();
    let mut bodies: BTreeMap<&str, Vec<u8>> = BTreeMap::new();
    for l in lines {
        let (folder, line) = l?;
        bodies
            .entry(folder)
            .or_default()
            .extend_from_slice(line.as_bytes());
    }
    Some(bodies)
}

/// The files of a listing (each with its name) followed by its manifest, which names them.
fn with_manifest(
    commit: Oid,
    mut parts: Parts,
    files: Vec<(String, Vec<u8>)>,
) -> Vec<(String, Vec<u8>)> {
    parts.extend(
        files
            .iter()
            .map(|(n, b)| (n.clone(), Sha256::of(b).to_string())),
    );
    let m = manifest(commit, &parts);
    let mut out = files;
    out.push((MANIFEST.to_string(), m));
    out
}

/// The listing files of `ix`, the index of `commit`: one per top folder and the rows files,
/// then the manifest naming them. `None` when a record does not serialize (then no index is
/// kept: listings read git).
pub fn encode(commit: Oid, ix: &Index) -> Option<Vec<(String, Vec<u8>)>> {
    let paths: Vec<&str> = ix.records.keys().map(String::as_str).collect();
    let mut files: Vec<(String, Vec<u8>)> = bodies(ix, &paths)?
        .into_iter()
        .map(|(f, body)| (f.to_string(), body))
        .collect();
    files.push((rows::CUBES.into(), rows::encode_cubes(&rows::cube_rows(ix))));
    if let Some(users) = rows::encode_users(&rows::user_rows(ix)) {
        files.push((rows::USERS.into(), users));
    }
    Some(with_manifest(commit, Vec::new(), files))
}

/// The listing files of `ix`, the index of `commit`, a main that only adds `added` to the one
/// whose listing's manifest names `old`: the parts those additions bring, then the new
/// manifest. `None` when a record does not serialize or the listing has had [`MAX_STEPS`]
/// additions already (then it is written whole).
pub fn encode_grown(
    commit: Oid,
    ix: &Index,
    added: &[String],
    old: &Parts,
) -> Option<Vec<(String, Vec<u8>)>> {
    let steps: std::collections::HashSet<&str> = old
        .iter()
        .filter_map(|(p, _)| p.split_once('@'))
        .map(|(_, c)| c)
        .collect();
    if steps.len() >= MAX_STEPS {
        return None;
    }
    let mut added: Vec<&str> = added
        .iter()
        .map(String::as_str)
        .filter(|p| ix.records.contains_key(*p))
        .collect();
    added.sort_unstable();
    let part = |name: &str| format!("{name}@{commit}");
    let mut files: Vec<(String, Vec<u8>)> = bodies(ix, &added)?
        .into_iter()
        .map(|(f, body)| (part(f), body))
        .collect();
    // Classified when the index was built.
    let kinds: Vec<(&str, &RecordPath)> = added
        .iter()
        .filter_map(|p| Some((*p, &ix.files.get(*p)?.rp)))
        .collect();
    let cubes: Vec<rows::CubeRow> = kinds
        .iter()
        .filter(|(_, rp)| matches!(rp, RecordPath::Mlcube { .. }))
        .filter_map(|(p, _)| rows::cube_row(ix, p))
        .collect();
    if !cubes.is_empty() {
        files.push((part(rows::CUBES), rows::encode_cubes(&cubes)));
    }
    let mut parts = old.clone();
    let people = kinds.iter().any(|(_, rp)| {
        matches!(
            rp,
            RecordPath::Root { .. } | RecordPath::User { .. } | RecordPath::Grant { .. }
        )
    });
    if people {
        parts.retain(|(p, _)| logical(p) != rows::USERS);
        if let Some(users) = rows::encode_users(&rows::user_rows(ix)) {
            files.push((part(rows::USERS), users));
        }
    }
    Some(with_manifest(commit, parts, files))
}

/// The records under `folders` (and the root) that `keep` accepts, from the listing files
/// `read` gives by name, built for exactly `commit`; `None` when its manifest was written for
/// another commit, or a file it names is missing, cut short, altered, or holds a line this
/// cohort cannot read.
pub fn decode(
    read: &dyn Fn(&str) -> Option<Vec<u8>>,
    commit: Oid,
    folders: &[&str],
    keep: &dyn Fn(&str) -> bool,
) -> Option<Index> {
    let parts = parse_manifest(&read(MANIFEST)?, commit)?;
    let mut wanted: Vec<&str> = folders.iter().map(|f| top(f)).collect();
    wanted.push("root");
    wanted.sort();
    wanted.dedup();
    let in_scope =
        |p: &str| p.starts_with("root/") || (folders.iter().any(|f| p.starts_with(f)) && keep(p));
    let mut records = Vec::new();
    for folder in wanted {
        let Some(bytes) = read_logical(read, &parts, folder)? else {
            continue;
        };
        let body = std::str::from_utf8(&bytes).ok()?;
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

fn read_in(dir: &Path) -> impl Fn(&str) -> Option<Vec<u8>> + '_ {
    move |name| std::fs::read(dir.join(name)).ok()
}

/// Reads the listing index in the folder `dir` for `commit` (see [`decode`]); `None` when
/// there is none usable.
pub fn load(
    dir: &Path,
    commit: Oid,
    folders: &[&str],
    keep: &dyn Fn(&str) -> bool,
) -> Option<Index> {
    decode(&read_in(dir), commit, folders, keep)
}

/// The rows file `name` (see `rows`) of the listing in `dir`, when that listing was written
/// for `commit` and the file is whole: its parts, concatenated.
pub fn load_rows(dir: &Path, commit: Oid, name: &str) -> Option<Vec<u8>> {
    let read = read_in(dir);
    let parts = parse_manifest(&read(MANIFEST)?, commit)?;
    read_logical(&read, &parts, name)?
}

/// Saves the rows file `name` (see `rows`) of the listing of `commit` in `dir`, whole, in
/// place of the parts its manifest names for it: for rows found damaged or missing, once they
/// were computed from the listing's records. Nothing is written when the listing kept is not
/// that commit's.
pub fn save_rows(dir: &Path, commit: Oid, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let Some(mut parts) = parts_in(dir, commit) else {
        return Ok(());
    };
    write_atomic(&dir.join(name), bytes)?;
    parts.retain(|(p, _)| logical(p) != name);
    parts.push((name.to_string(), Sha256::of(bytes).to_string()));
    write_atomic(&dir.join(MANIFEST), &manifest(commit, &parts))
}

/// The parts of the listing in `dir` when its manifest was written for `commit`.
fn parts_in(dir: &Path, commit: Oid) -> Option<Parts> {
    parse_manifest(&std::fs::read(dir.join(MANIFEST)).ok()?, commit)
}

/// Whether the listing in `dir`, kept for `commit`, can take a main grown from it as parts
/// added beside it (not written again whole, which takes every record of that main).
pub fn can_grow(dir: &Path, commit: Oid) -> bool {
    parts_in(dir, commit).is_some_and(|old| {
        let steps: std::collections::HashSet<&str> = old
            .iter()
            .filter_map(|(p, _)| p.split_once('@'))
            .map(|(_, c)| c)
            .collect();
        steps.len() + 1 < MAX_STEPS
    })
}

/// Whether the listing in `dir` is whole and built for `commit`: its manifest and every file it
/// names (checked against their digests, not parsed).
fn is_whole(dir: &Path, commit: Oid) -> bool {
    let read = read_in(dir);
    parts_in(dir, commit).is_some_and(|parts| {
        parts
            .iter()
            .all(|(p, sha)| read_part(&read, p, sha).is_some())
    })
}

/// Whether the parts `files` add (the manifest aside) stay within a quarter of the listing
/// whose manifest names `old` (or 64 KiB, for a small one): a first sync of a long history
/// writes the listing whole rather than one part larger than what it follows.
fn small_beside(dir: &Path, old: &Parts, files: &[(String, Vec<u8>)]) -> bool {
    let kept: u64 = old
        .iter()
        .filter_map(|(p, _)| std::fs::metadata(dir.join(p)).ok())
        .map(|m| m.len())
        .sum();
    let added: u64 = files
        .iter()
        .filter(|(n, _)| n != MANIFEST)
        .map(|(_, b)| b.len() as u64)
        .sum();
    added <= (kept / 4).max(1 << 16)
}

/// Saves the listing index of `ix` (the verified index of `commit`) in the folder `dir`,
/// each file atomically and the manifest last: a reader sees each file old or new, never half
/// of one, and takes only files the manifest of the commit it asks for names with their
/// digests. A listing already whole for `commit` is kept (verifying an unchanged main rewrote
/// 19 MB at 10,000 entities). When `ix` is a main grown by additions alone from `grown_from`
/// ([`Index::fresh`] naming them) and the listing kept is that main's, only what they add is
/// written (see the module).
pub fn save(dir: &Path, commit: Oid, ix: &Index, grown_from: Option<Oid>) -> std::io::Result<()> {
    // The main verified again (grown from itself): kept as it is, when whole.
    let old = grown_from
        .filter(|base| *base != commit)
        .and_then(|base| parts_in(dir, base));
    let grown = match (old, &ix.fresh) {
        (Some(old), Some(added)) => {
            encode_grown(commit, ix, added, &old).filter(|files| small_beside(dir, &old, files))
        }
        _ => None,
    };
    let whole = grown.is_none();
    if whole && is_whole(dir, commit) {
        return Ok(());
    }
    // An index holding only parts of its main cannot stand for all of it: the listing is
    // then left out (and written whole by the next verification that reads every file).
    let whole_from = (!ix.is_partial()).then_some(ix);
    let Some(files) = grown.or_else(|| encode(commit, whole_from?)) else {
        // An index that cannot hold every record is worse than none.
        return match std::fs::remove_file(dir.join(MANIFEST)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
    };
    std::fs::create_dir_all(dir)?;
    for (name, bytes) in &files {
        write_atomic(&dir.join(name), bytes)?;
    }
    if whole {
        // Parts of earlier listings no manifest names any more (best effort: they are never
        // read without a manifest naming their digest). Written whole, the listing is the
        // files just written, its manifest among them.
        let named: std::collections::HashSet<&str> =
            files.iter().map(|(n, _)| n.as_str()).collect();
        for entry in std::fs::read_dir(dir)?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !named.contains(name.as_str()) && !name.starts_with('.') {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "listing_tests.rs"]
mod tests;
