//! The carry: the files of the mains this machine accepted (path, git blob id, bytes, parsed
//! record), kept under COHORT_HOME so that verifying a main grown by a few commits reads and
//! parses only what is new (see `trust::carry`, which decides what may be taken from it). Like
//! the memo it changes how fast a verification is, never its verdict.
//!
//! Format (the folder `state/<registry id>.carry/`): segments (`<sha256 of the bytes>.seg`),
//! written once and never changed, each a run of entries `u32 path length, path, 20-byte blob
//! id, u32 length, the file's bytes, u32 length, the record as JSON, 32-byte sha256 of the
//! JSON` (lengths little-endian; no JSON for a file that is no record or whose JSON does not
//! read back as the same record); and `head`, written last, whose first line is
//! `cohort carry 1 <parser fingerprint> <sha256 of the rest>` and whose other lines name the
//! segments, oldest first (a later entry for a path replaces an earlier one). Accepting a main
//! writes one segment with the files read from git, so the writes follow what changed; past
//! [`MAX_SEGMENTS`] the carry is written again as one segment.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use rayon::prelude::*;
use sha2::Digest;

use crate::model::{Kind, PARSE_FINGERPRINT, Record, Sha256};
use crate::storage::write_atomic;
use crate::trust::{Carried, CarriedFile, Index};

const MAGIC: &str = "cohort carry 1";
const HEAD: &str = "head";
/// Segments kept before they are written again as one.
pub const MAX_SEGMENTS: usize = 16;

/// The segments `head` names, when it is whole and written by a build with this parser.
fn segments(dir: &Path) -> Option<Vec<String>> {
    let bytes = std::fs::read(dir.join(HEAD)).ok()?;
    let text = std::str::from_utf8(&bytes).ok()?;
    let (first, rest) = text.split_once('\n')?;
    let fields = first.strip_prefix(MAGIC)?.strip_prefix(' ')?;
    let (fingerprint, digest) = fields.split_once(' ')?;
    if fingerprint != PARSE_FINGERPRINT || digest != Sha256::of(rest.as_bytes()).as_str() {
        return None;
    }
    let names: Vec<String> = rest.lines().map(str::to_string).collect();
    names.iter().all(|n| is_segment_name(n)).then_some(names)
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

fn take(b: &mut Bytes, n: usize) -> Option<Bytes> {
    (b.len() >= n).then(|| b.split_to(n))
}

fn take_len(b: &mut Bytes) -> Option<Bytes> {
    let n = u32::from_le_bytes(take(b, 4)?.as_ref().try_into().ok()?) as usize;
    take(b, n)
}

/// The entries of one segment, sharing its buffer; `None` when it is cut short.
fn decode(mut b: Bytes) -> Option<Vec<CarriedFile>> {
    let mut out = Vec::new();
    while !b.is_empty() {
        out.push(CarriedFile {
            path: take_len(&mut b)?,
            blob: take(&mut b, 20)?.as_ref().try_into().ok()?,
            bytes: take_len(&mut b)?,
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
            let mut out = Vec::with_capacity(p.len() + f.bytes.len() + json.len() + 72);
            let put = |out: &mut Vec<u8>, bytes: &[u8]| {
                out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
                out.extend_from_slice(bytes);
            };
            put(&mut out, p.as_bytes());
            out.extend_from_slice(&id);
            put(&mut out, &f.bytes);
            put(&mut out, json.as_bytes());
            out.extend_from_slice(&sha2::Sha256::digest(json.as_bytes()));
            Some(out)
        })
        .collect();
    parts.concat()
}

fn write_head(dir: &Path, names: &[String]) -> std::io::Result<()> {
    let rest: String = names.iter().map(|n| format!("{n}\n")).collect();
    let head = format!(
        "{MAGIC} {PARSE_FINGERPRINT} {}\n{rest}",
        Sha256::of(rest.as_bytes())
    );
    write_atomic(&dir.join(HEAD), head.as_bytes())
}

/// Saves the files of `ix`, the index of a main this machine accepts, whose blob ids `blob`
/// gives: one new segment with the files it read from git ([`Index::fresh`]), or, when it
/// read every file or the carry has [`MAX_SEGMENTS`] already, one segment with all of them
/// in place of the others. Segments are written before the head that names them.
pub fn save(
    dir: &Path,
    ix: &Index,
    blob: &dyn Fn(&str) -> Option<[u8; 20]>,
) -> std::io::Result<()> {
    let old = segments(dir).unwrap_or_default();
    let fresh = ix
        .fresh
        .as_ref()
        .filter(|_| !old.is_empty() && old.len() < MAX_SEGMENTS);
    let (paths, mut names): (Vec<&str>, Vec<String>) = match fresh {
        Some(fresh) if fresh.is_empty() => return Ok(()),
        Some(fresh) => (fresh.iter().map(String::as_str).collect(), old),
        None => (ix.files.keys().map(String::as_str).collect(), Vec::new()),
    };
    let segment = encode(ix, &paths, blob);
    std::fs::create_dir_all(dir)?;
    let name = format!("{}.seg", Sha256::of(&segment));
    if !names.contains(&name) {
        write_atomic(&dir.join(&name), &segment)?;
        names.push(name);
    }
    write_head(dir, &names)?;
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
