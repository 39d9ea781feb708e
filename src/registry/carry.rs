//! The carry: the files of the mains this machine accepted (path, git blob id, bytes, parsed
//! record), kept under COHORT_HOME so that verifying a main grown by a few commits reads and
//! parses only what is new (see `trust::carry`, which decides what may be taken from it). Like
//! the memo it changes how fast a verification is, never its verdict.
//!
//! Format (the folder `state/<registry id>.carry/`): segments (`<sha256 of the bytes>.seg`),
//! written once and never changed, each a run of entries `u32 path length, path, 20-byte blob
//! id, u32 length, the file's bytes, 32-byte sha256 of the bytes, u32 length, the record as
//! JSON, 32-byte sha256 of the JSON` (lengths little-endian; no JSON for a file that is no
//! record or whose JSON does not read back as the same record); and `head`, written last,
//! whose first line is `cohort carry 3 <parser fingerprint> <sha256 of the rest>`, whose
//! second names the main last saved, how many files and records it has and, when it passed
//! with no warning either, the trust rules that found so (`<commit> <files> <records> <rules
//! fingerprint or ->`: a main grown from it then re-checks only what its new files reach), and whose
//! other lines name the segments, oldest first (a later entry for a path replaces an earlier
//! one). Accepting a main writes one segment with the files read from git, so the writes
//! follow what changed; past [`MAX_SEGMENTS`] the carry is written again as one segment.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use rayon::prelude::*;
use sha2::Digest;

use crate::model::{Kind, PARSE_FINGERPRINT, Record, Sha256};
use crate::storage::write_atomic;
use crate::trust::{Carried, CarriedFile, Index, RULES_FINGERPRINT};

const MAGIC: &str = "cohort carry 3";
const HEAD: &str = "head";
/// Segments kept before they are written again as one.
pub const MAX_SEGMENTS: usize = 16;

/// What `head` says.
struct Head {
    /// The main last saved, and how many files it has.
    main: (String, usize),
    /// How many records it has.
    records: usize,
    /// Whether that main passed under this build's trust rules (see [`Carried::accepted`]).
    accepted: bool,
    /// The segments, oldest first.
    names: Vec<String>,
}

/// What `head` says, when it is whole and written by a build with this parser.
fn head(dir: &Path) -> Option<Head> {
    let bytes = std::fs::read(dir.join(HEAD)).ok()?;
    let text = std::str::from_utf8(&bytes).ok()?;
    let (first, rest) = text.split_once('\n')?;
    let fields = first.strip_prefix(MAGIC)?.strip_prefix(' ')?;
    let (fingerprint, digest) = fields.split_once(' ')?;
    if fingerprint != PARSE_FINGERPRINT || digest != Sha256::of(rest.as_bytes()).as_str() {
        return None;
    }
    let (main, rest) = rest.split_once('\n')?;
    let mut fields = main.split(' ');
    let (commit, files, records, rules) = (
        fields.next()?,
        fields.next()?,
        fields.next()?,
        fields.next()?,
    );
    if fields.next().is_some() {
        return None;
    }
    let main = (commit.to_string(), files.parse().ok()?);
    let records = records.parse().ok()?;
    let accepted = rules == RULES_FINGERPRINT;
    let names: Vec<String> = rest.lines().map(str::to_string).collect();
    names.iter().all(|n| is_segment_name(n)).then_some(Head {
        main,
        records,
        accepted,
        names,
    })
}

/// The segments `head` names.
fn segments(dir: &Path) -> Option<Vec<String>> {
    head(dir).map(|h| h.names)
}

/// A segment's name: 64 hex digits and `.seg`.
fn is_segment_name(name: &str) -> bool {
    name.len() == 64 + 4
        && name.ends_with(".seg")
        && name[..64]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Reads the carry in `dir`; empty when there is none usable. A segment that is missing or
/// cut short is left out (its files are read from git again).
pub fn load(dir: &Path) -> Carried {
    let Some(names) = segments(dir) else {
        return Carried::default();
    };
    let decoded: Vec<Vec<CarriedFile>> = names
        .par_iter()
        .map(|name| {
            let Ok(bytes) = std::fs::read(dir.join(name)) else {
                return Vec::new();
            };
            decode(Bytes::from(bytes)).unwrap_or_default()
        })
        .collect();
    Carried::from_segments(decoded)
}

/// What the carry says of the main `commit`, when its head names that main (see [`Kept`]).
pub fn kept(dir: &Path, commit: &str) -> Option<Kept> {
    let head = head(dir)?;
    (head.main.0 == commit).then_some(Kept {
        files: head.main.1,
        records: head.records,
        accepted: head.accepted,
        room: head.names.len() < MAX_SEGMENTS,
    })
}

/// What the head of a carry says of the main it was saved for, without reading its files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kept {
    pub files: usize,
    pub records: usize,
    /// Verified clean, with no warning, under this build's trust rules.
    pub accepted: bool,
    /// Whether a main grown from it can add its files as one more segment (else the carry is
    /// written again whole, which takes every file of that main).
    pub room: bool,
}

/// The files of the main `commit` exactly, when the carry is that main's and whole: `head`
/// names `commit`, every segment's bytes hash to its name, and the segments hold as many
/// files as `head` says. A verification of a main grown from `commit` then reads from git only
/// what the new commits add (see `trust::Index::from_carried`); anything short of this is
/// `None`, and the files are taken one by one against the tree instead ([`load`]).
pub fn load_main(dir: &Path, commit: &str) -> Option<Carried> {
    let head = head(dir)?;
    if head.main.0 != commit {
        return None;
    }
    let decoded: Option<Vec<Vec<CarriedFile>>> = head
        .names
        .par_iter()
        .map(|name| {
            let bytes = Bytes::from(std::fs::read(dir.join(name)).ok()?);
            // Hashing a segment is one core's work: the other decodes it meanwhile.
            let (sha, files) = rayon::join(|| Sha256::of(&bytes), || decode(bytes.clone()));
            (sha.as_str() == &name[..64]).then_some(files)?
        })
        .collect();
    let mut carried = Carried::from_segments(decoded?);
    carried.accepted = head.accepted;
    (carried.len() == head.main.1).then_some(carried)
}

fn take(b: &mut Bytes, n: usize) -> Option<Bytes> {
    (b.len() >= n).then(|| b.split_to(n))
}

fn take_len(b: &mut Bytes) -> Option<Bytes> {
    let n = u32::from_le_bytes(take(b, 4)?.as_ref().try_into().ok()?) as usize;
    take(b, n)
}

/// The entries of one segment, sharing its buffer; `None` when it is cut short.
fn decode(mut b: Bytes) -> Option<Vec<CarriedFile>> {
    // Entries average ~500 bytes: one allocation instead of a dozen doublings.
    let mut out = Vec::with_capacity(b.len() / 512);
    while !b.is_empty() {
        out.push(CarriedFile {
            path: take_len(&mut b)?,
            blob: take(&mut b, 20)?.as_ref().try_into().ok()?,
            bytes: take_len(&mut b)?,
            sha256: take(&mut b, 32)?.as_ref().try_into().ok()?,
            json: take_len(&mut b)?,
            json_sha256: take(&mut b, 32)?.as_ref().try_into().ok()?,
        });
    }
    Some(out)
}

/// The JSON kept for `r`, a record of `kind`: only when it reads back as exactly `r`.
fn record_json(kind: Kind, r: &Record) -> String {
    match r.to_json() {
        Ok(json) if Record::from_json(kind, &json).is_ok_and(|back| back == *r) => json,
        _ => String::new(),
    }
}

/// The segment holding the files `paths` of `ix`, with the blob ids `blob` gives (files
/// without one are left out).
fn encode(ix: &Index, paths: &[&str], blob: &dyn Fn(&str) -> Option<[u8; 20]>) -> Vec<u8> {
    let ids: Vec<(&str, Option<[u8; 20]>)> = paths.iter().map(|&p| (p, blob(p))).collect();
    let parts: Vec<Vec<u8>> = ids
        .par_iter()
        .filter_map(|&(p, id)| {
            let f = ix.files.get(p)?;
            let id = id?;
            let json = match (f.rp.kind(), ix.records.get(p)) {
                (Some(kind), Some(r)) => record_json(kind, r),
                _ => String::new(),
            };
            let mut out = Vec::with_capacity(p.len() + f.bytes.len() + json.len() + 104);
            let put = |out: &mut Vec<u8>, bytes: &[u8]| {
                out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
                out.extend_from_slice(bytes);
            };
            put(&mut out, p.as_bytes());
            out.extend_from_slice(&id);
            put(&mut out, &f.bytes);
            out.extend_from_slice(&f.sha256.digest());
            put(&mut out, json.as_bytes());
            out.extend_from_slice(&sha2::Sha256::digest(json.as_bytes()));
            Some(out)
        })
        .collect();
    parts.concat()
}

fn write_head(
    dir: &Path,
    main: (&str, usize, usize),
    accepted: bool,
    names: &[String],
) -> std::io::Result<()> {
    let segments: String = names.iter().map(|n| format!("{n}\n")).collect();
    let rules = if accepted { RULES_FINGERPRINT } else { "-" };
    let rest = format!("{} {} {} {rules}\n{segments}", main.0, main.1, main.2);
    let head = format!(
        "{MAGIC} {PARSE_FINGERPRINT} {}\n{rest}",
        Sha256::of(rest.as_bytes())
    );
    write_atomic(&dir.join(HEAD), head.as_bytes())
}

/// Saves the files of `ix`, the index of a main this machine accepts, whose blob ids `blob`
/// gives: one new segment with the files it read from git ([`Index::fresh`]), or, when it
/// read every file or the carry has [`MAX_SEGMENTS`] already, one segment with all of them
/// in place of the others. Segments are written before the head that names them, which names
/// `commit`, the main `ix` is the index of, and whether its report had no warning
/// (`accepted`; it had no problem, or it would not be saved).
pub fn save(
    dir: &Path,
    commit: &str,
    ix: &Index,
    accepted: bool,
    blob: &dyn Fn(&str) -> Option<[u8; 20]>,
) -> std::io::Result<()> {
    let main = (commit, ix.file_count(), ix.record_count());
    let old = head(dir);
    let (old, old_main, old_accepted) = match old {
        Some(h) => (h.names, Some((h.main.0, h.main.1, h.records)), h.accepted),
        None => (Vec::new(), None, false),
    };
    // One more segment only when the carry was exactly the main `ix` grew from: it gave
    // every file it held (none stale or damaged) and those are all `ix` did not read.
    let exact = old_main.as_ref().is_some_and(|(_, n, _)| *n == ix.carried)
        && ix.fresh.as_ref().map(Vec::len).unwrap_or(0) + ix.carried == ix.file_count();
    let fresh = ix
        .fresh
        .as_ref()
        .filter(|_| exact && !old.is_empty() && old.len() < MAX_SEGMENTS);
    let (paths, mut names): (Vec<&str>, Vec<String>) = match fresh {
        Some(fresh) if fresh.is_empty() => {
            if old_main.is_some_and(|(c, n, r)| c == main.0 && n == main.1 && r == main.2)
                && old_accepted == accepted
            {
                return Ok(());
            }
            return write_head(dir, main, accepted, &old);
        }
        Some(fresh) => (fresh.iter().map(String::as_str).collect(), old),
        // An index holding only parts of its main cannot stand for all of it.
        None if ix.is_partial() => return Ok(()),
        None => (ix.files.keys().map(String::as_str).collect(), Vec::new()),
    };
    let segment = encode(ix, &paths, blob);
    std::fs::create_dir_all(dir)?;
    let name = format!("{}.seg", Sha256::of(&segment));
    if !names.contains(&name) {
        write_atomic(&dir.join(&name), &segment)?;
        names.push(name);
    }
    write_head(dir, main, accepted, &names)?;
    // Segments no head names any more (replaced, or left by an interrupted run).
    if names.len() == 1 {
        for e in std::fs::read_dir(dir)?.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if is_segment_name(&n) && !names.contains(&n) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    Ok(())
}

/// The folder of the carry of the registry `id` under the state folder `state`.
pub fn dir(state: &Path, id: &Sha256) -> PathBuf {
    state.join(format!("{id}.carry"))
}

#[cfg(test)]
#[path = "carry_tests.rs"]
mod tests;
