//! Building the index of a tree: every file read, hashed and parsed, and (for verification)
//! each signature's cryptography checked while the rest of the tree is still being read, so
//! both cores stay busy: reading is one thread's work, and the signatures are most of a
//! verification's.

use std::borrow::Cow;
use std::collections::HashMap;

use bytes::Bytes;
use rayon::prelude::*;

use crate::model::{self, Record, RecordPath, Sha256, classify};

use super::cache::SigCache;
use super::carry::{Carried, CarriedFile};
use super::index::{problem, strip_path};
use super::{
    EntryMode, FileInfo, Index, Limited, Problem, Rule, Timeline, TreeEntry, TreeRead, TrustError,
    sign,
};

/// A file's sha256 and, for a record, what parsing it gave.
pub(super) type Parsed = (Sha256, Option<Result<Record, model::ModelError>>);
/// A file read and parsed, or its size when over its limit.
type Read = Result<(Bytes, Parsed), u64>;
/// Files to index, classified.
type Wanted = Vec<(String, RecordPath)>;
/// Called after each chunk with the chunk's file indices and every slot filled so far.
type AfterChunk<'a> = dyn FnMut(&[usize], &[Option<Read>]) + 'a;

impl Index {
    /// Reads and parses every file of `tree`. Files that cannot be classified, read or parsed
    /// are reported and left out of the index.
    pub fn build(
        tree: &dyn TreeRead,
        timeline: &Timeline,
    ) -> Result<(Index, Vec<Problem>), TrustError> {
        build(tree, timeline, None, Carried::default())
    }

    /// [`Index::build`] for a verification: the root and user records (the keys) are read
    /// first, then every signature is checked against the keys its signer's records name as
    /// soon as the signature and its file are read, skipping those `memo` already holds. The
    /// checks that verify land in [`Index::early`]; which key may sign what, and when, is
    /// still decided by the policy, which finds the cryptography done.
    pub fn build_checking(
        tree: &dyn TreeRead,
        timeline: &Timeline,
        memo: Option<&SigCache>,
    ) -> Result<(Index, Vec<Problem>), TrustError> {
        build(tree, timeline, Some(memo), Carried::default())
    }

    /// [`Index::build_checking`], taking from `carried` every file whose path and blob id are
    /// those `tree` names: only the others are read, hashed and parsed ([`Index::fresh`]
    /// names them). A carried record is the one its bytes parse to at its path.
    pub fn build_carrying(
        tree: &dyn TreeRead,
        timeline: &Timeline,
        memo: Option<&SigCache>,
        carried: Carried,
    ) -> Result<(Index, Vec<Problem>), TrustError> {
        build(tree, timeline, Some(memo), carried)
    }
}

fn build(
    tree: &dyn TreeRead,
    timeline: &Timeline,
    check: Option<Option<&SigCache>>,
    carried: Carried,
) -> Result<(Index, Vec<Problem>), TrustError> {
    let mut ix = Index::default();
    let mut problems = Vec::new();
    let entries = tree.entries()?;
    for (folder, why) in tree.malformed() {
        let path = if folder.is_empty() {
            "/".to_string()
        } else {
            folder
        };
        problems.push(Problem {
            code: super::Code::MalformedTree,
            ..problem(&path, Rule::DefaultDeny, why)
        });
    }
    case_collisions(&entries, &mut problems);
    let (wanted, blobs) = wanted_files(entries, &mut problems);
    let had_carry = !carried.is_empty();
    // Without a carry every file is read: `wanted` itself, not a copy of it.
    let (kept, unread) = if had_carry {
        let (kept, to_read) = take_carried(&wanted, &blobs, &carried);
        let unread: Wanted = to_read.iter().map(|&i| wanted[i].clone()).collect();
        (kept, Cow::Owned(unread))
    } else {
        let kept = (0..wanted.len()).map(|_| None).collect();
        (kept, Cow::Borrowed(&wanted[..]))
    };
    drop(carried);
    let read = match check {
        None => read_all(tree, &unread)?,
        Some(memo) => read_checking(tree, &unread, memo, &ix.early)?,
    };
    ix.carried = kept.iter().filter(|k| k.is_some()).count();
    if had_carry {
        ix.fresh = Some(unread.iter().map(|(p, _)| p.clone()).collect());
    }
    drop(unread);
    // Every file in the tree's order, as if all had been read (decisions and signatures are
    // listed in that order).
    let mut read = read.into_iter();
    let got_all: Vec<(Read, Bytes)> = kept
        .into_iter()
        .map(|k| match k {
            Some(got) => got,
            None => (
                read.next().expect("every unread file is read"),
                Bytes::new(),
            ),
        })
        .collect();
    let mut files = Vec::with_capacity(wanted.len());
    let mut records = Vec::new();
    for ((p, rp), (got, json)) in wanted.into_iter().zip(got_all) {
        let (bytes, (sha256, record)) = match got {
            Ok(got) => got,
            Err(size) => {
                let limit = model::size_limit(&rp);
                problems.push(problem(
                    &p,
                    Rule::Limits,
                    format!("is {size} bytes, over the {limit}-byte limit for this kind of file"),
                ));
                continue;
            }
        };
        match record {
            Some(Ok(r)) => records.push((files.len(), r)),
            Some(Err(err)) => {
                problems.push(problem(&p, Rule::Limits, strip_path(&p, &err.to_string())));
            }
            None => {}
        }
        let info = FileInfo {
            intro: timeline.intro(&p),
            path: p.clone(),
            rp,
            sha256,
            bytes,
            json,
        };
        files.push((p, info));
    }
    assemble(&mut ix, files, records);
    Ok((ix, problems))
}

/// Fills `ix` with `files` (path and file, in the tree's order) and `records` (by position in
/// `files`): the lookups by kind on one core while the other builds the record map, then the
/// file map. Signatures are grouped by the file they sign in a hash map and sorted once,
/// instead of one search of an ordered map per signature; each group keeps `files`' order.
pub(super) fn assemble(
    ix: &mut Index,
    files: Vec<(String, FileInfo)>,
    records: Vec<(usize, Record)>,
) {
    let (lookups, all) = (&mut *ix, &files);
    let ((), by_path) = rayon::join(
        move || {
            let mut signatures: HashMap<&str, Vec<(String, String)>> = HashMap::new();
            for (p, info) in all {
                match &info.rp {
                    RecordPath::Signature { signed, signer, .. } => signatures
                        .entry(signed)
                        .or_default()
                        .push((signer.clone(), p.clone())),
                    rp => lookups.add(p, rp),
                }
            }
            lookups.signatures = signatures
                .into_iter()
                .map(|(signed, v)| (signed.to_string(), v))
                .collect();
        },
        move || {
            records
                .into_iter()
                .map(|(i, r)| (all[i].0.clone(), r))
                .collect()
        },
    );
    ix.records = by_path;
    // Built from sorted runs: faster than one insertion at a time.
    ix.files = files.into_iter().collect();
    if let Some(root1) = ix.files.get(&model::build::root(1)) {
        ix.registry_id = Some(root1.sha256.clone());
    }
}

/// The files of `wanted` taken from `carried` (see [`super::carry::take`]) with their
/// records' JSON, by position, and the positions of the rest, which are read from the tree.
fn take_carried(
    wanted: &[(String, RecordPath)],
    blobs: &[Option<[u8; 20]>],
    carried: &Carried,
) -> (Vec<Option<(Read, Bytes)>>, Vec<usize>) {
    let files = &carried.files;
    // Both are usually sorted by path: one step each, with a search where they part.
    let mut next = 0;
    let candidates: Vec<Option<(CarriedFile, [u8; 20])>> = wanted
        .iter()
        .zip(blobs)
        .map(|((p, _), blob)| {
            let blob = (*blob)?;
            let at = if files.get(next).is_some_and(|f| f.path == p.as_bytes()) {
                next
            } else {
                files
                    .binary_search_by(|f| f.path.as_ref().cmp(p.as_bytes()))
                    .ok()?
            };
            next = at + 1;
            Some((files[at].clone(), blob))
        })
        .collect();
    let kept: Vec<Option<(Read, Bytes)>> = candidates
        .into_par_iter()
        .zip(wanted.par_iter())
        .map(|(c, (p, rp))| {
            let (f, blob) = c?;
            let json = f.json.clone();
            Some((Ok(super::carry::take(f, p, rp, blob)?), json))
        })
        .collect();
    let to_read = (0..wanted.len()).filter(|&i| kept[i].is_none()).collect();
    (kept, to_read)
}

/// The plain files of a known kind, classified, with their blob ids; everything else is
/// reported.
fn wanted_files(
    entries: Vec<TreeEntry>,
    problems: &mut Vec<Problem>,
) -> (Wanted, Vec<Option<[u8; 20]>>) {
    let mut wanted = Vec::with_capacity(entries.len());
    let mut blobs = Vec::with_capacity(entries.len());
    for e in entries {
        let p = &e.path;
        let refused = match e.mode {
            EntryMode::File => None,
            EntryMode::Executable => {
                Some("is executable; registry files are plain files (chmod -x and commit)")
            }
            EntryMode::Symlink => Some("is a symbolic link; registries hold no links"),
            EntryMode::Submodule => Some("is a submodule; registries hold no submodules"),
        };
        if let Some(why) = refused {
            problems.push(problem(p, Rule::DefaultDeny, why));
            continue;
        }
        match classify(p) {
            Ok(rp) => {
                wanted.push((e.path, rp));
                blobs.push(e.blob);
            }
            Err(err) => {
                let msg = match &err {
                    model::ModelError::UnknownPath { why, .. } => format!("unknown file: {why}"),
                    other => other.to_string(),
                };
                problems.push(problem(p, Rule::DefaultDeny, msg));
            }
        }
    }
    (wanted, blobs)
}

/// Reads every file of `wanted`, in order.
fn read_all(tree: &dyn TreeRead, wanted: &[(String, RecordPath)]) -> Result<Vec<Read>, TrustError> {
    let order: Vec<usize> = (0..wanted.len()).collect();
    let mut slots: Vec<Option<Read>> = Vec::new();
    read_into(tree, wanted, &order, &mut slots, &mut |_, _| {})?;
    Ok(filled(slots))
}

/// The slots once every file is read (both readers read each file of `wanted` once).
fn filled(slots: Vec<Option<Read>>) -> Vec<Read> {
    slots
        .into_iter()
        .map(|s| s.expect("every file is read"))
        .collect()
}

/// Reads the files of `wanted` at `order` (indices, read in that order) into their slots,
/// hashing and parsing each chunk on every core while the tree reads the next; `then` sees
/// each chunk's indices once they are in their slots.
fn read_into(
    tree: &dyn TreeRead,
    wanted: &[(String, RecordPath)],
    order: &[usize],
    slots: &mut Vec<Option<Read>>,
    then: &mut AfterChunk,
) -> Result<(), TrustError> {
    slots.resize_with(wanted.len(), || None);
    let limited: Vec<(&str, usize)> = order
        .iter()
        .map(|&i| (wanted[i].0.as_str(), model::size_limit(&wanted[i].1)))
        .collect();
    tree.read_limited(&limited, &mut |start, chunk| {
        let at = &order[start..start + chunk.len()];
        let parsed: Vec<Read> = chunk
            .into_par_iter()
            .zip(at.par_iter())
            .map(|(blob, &i)| {
                let (p, rp) = &wanted[i];
                match blob {
                    Limited::Bytes(bytes) => {
                        let record = rp.kind().map(|_| model::parse_record(p, rp, &bytes));
                        let sha = Sha256::of(&bytes);
                        Ok((Bytes::from(bytes), (sha, record)))
                    }
                    Limited::Over(size) => Err(size),
                }
            })
            .collect();
        for (&i, r) in at.iter().zip(parsed) {
            slots[i] = Some(r);
        }
        then(at, slots);
        Ok(())
    })
}

/// Reads the key files (`root/`, `users/`) first, then the rest, checking the signatures of
/// each chunk (and, with the first, those of the key files) against their signers' keys.
fn read_checking(
    tree: &dyn TreeRead,
    wanted: &[(String, RecordPath)],
    memo: Option<&SigCache>,
    early: &super::cache::Early,
) -> Result<Vec<Read>, TrustError> {
    let is_key_file = |p: &str| p.starts_with("root/") || p.starts_with("users/");
    let (keys_first, rest): (Vec<usize>, Vec<usize>) =
        (0..wanted.len()).partition(|&i| is_key_file(&wanted[i].0));
    let mut slots: Vec<Option<Read>> = Vec::new();
    read_into(tree, wanted, &keys_first, &mut slots, &mut |_, _| {})?;
    let keys = signer_keys(&keys_first, &slots);
    let by_path: HashMap<&str, usize> = wanted
        .iter()
        .enumerate()
        .map(|(i, (p, _))| (p.as_str(), i))
        .collect();
    let mut pending: Vec<usize> = keys_first;
    let mut check = |at: &[usize], slots: &[Option<Read>]| {
        pending.extend_from_slice(at);
        let sigs = std::mem::take(&mut pending);
        sigs.par_iter().for_each(|&i| {
            let RecordPath::Signature { signed, signer, .. } = &wanted[i].1 else {
                return;
            };
            let (Some(Some(Ok((sig, _)))), Some(&j)) = (slots.get(i), by_path.get(signed.as_str()))
            else {
                return;
            };
            // The signed file sorts before its signatures, so it is usually read by now.
            let Some(Some(Ok((bytes, (sha, _))))) = slots.get(j) else {
                return;
            };
            // A key's id is a label anyone can set: a signer's records could name many keys
            // under one id. The early check tries at most two; the policy checks the rest.
            let Some(id) = sign::signature_key_id(sig) else {
                return;
            };
            let candidates = keys.get(signer.as_str()).and_then(|ids| ids.get(&id));
            for key in candidates.into_iter().flatten() {
                let k = SigCache::key(key, sig, sha);
                if memo.is_some_and(|m| m.contains(&k)) || early.contains(&k) {
                    continue;
                }
                if let Ok(comment) = sign::verify(key, sig, bytes) {
                    early.insert(k, comment);
                }
            }
        });
    };
    read_into(tree, wanted, &rest, &mut slots, &mut check)?;
    // No other files: the key files' own signatures are still waiting.
    check(&[], &slots);
    Ok(filled(slots))
}

/// The keys tried early, by handle and key id.
pub(super) type SignerKeys = HashMap<String, HashMap<[u8; 8], Vec<minisign::PublicKey>>>;

/// Keys tried early per (handle, key id): at most this many, the first its records name.
pub(super) const EARLY_KEYS_PER_ID: usize = 2;

/// The keys a handle's records name (any version of its user record, any root naming it as
/// an admin), whether or not the policy will find them valid, by handle and key id: at most
/// [`EARLY_KEYS_PER_ID`] each, so hostile records naming many keys under one id (or one
/// handle) cost a lookup each, not a scan of the others.
fn signer_keys(files: &[usize], slots: &[Option<Read>]) -> SignerKeys {
    let named = files.iter().flat_map(|&i| match slots.get(i) {
        Some(Some(Ok((_, (_, Some(Ok(Record::User(u)))))))) => {
            vec![(u.handle.as_str(), u.minisign.as_str())]
        }
        Some(Some(Ok((_, (_, Some(Ok(Record::Root(r)))))))) => r
            .admins
            .iter()
            .map(|a| (a.handle.as_str(), a.minisign.as_str()))
            .collect(),
        _ => Vec::new(),
    });
    gather_keys(named)
}

/// The (handle, base64 key) pairs grouped as [`signer_keys`] describes.
pub(super) fn gather_keys<'a>(named: impl Iterator<Item = (&'a str, &'a str)>) -> SignerKeys {
    let mut keys = SignerKeys::new();
    for (handle, b64) in named {
        let Ok(pk) = minisign::PublicKey::from_base64(b64) else {
            continue;
        };
        let Ok(id) = <[u8; 8]>::try_from(pk.keynum()) else {
            continue;
        };
        let list = keys
            .entry(handle.to_string())
            .or_default()
            .entry(id)
            .or_default();
        if list.len() < EARLY_KEYS_PER_ID && !list.iter().any(|k| k.to_bytes() == pk.to_bytes()) {
            list.push(pk);
        }
    }
    keys
}

/// Paths that differ only in case (ids are case-insensitively unique), both ways round, each
/// with the one before it in `entries`' order. Two such paths hold an upper-case letter
/// between them, so only those paths are folded: the rest are looked up as they are.
fn case_collisions(entries: &[TreeEntry], problems: &mut Vec<Problem>) {
    let mut groups: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, e) in entries.iter().enumerate() {
        if e.path.bytes().any(|b| b.is_ascii_uppercase()) {
            groups
                .entry(e.path.to_ascii_lowercase())
                .or_default()
                .push(i);
        }
    }
    if groups.is_empty() {
        return;
    }
    for (i, e) in entries.iter().enumerate() {
        if let Some(g) = groups.get_mut(&e.path) {
            g.push(i);
        }
    }
    let mut pairs: Vec<(usize, usize)> = Vec::new();
    for g in groups.values_mut() {
        g.sort_unstable();
        pairs.extend(g.windows(2).map(|w| (w[1], w[0])));
    }
    pairs.sort_unstable();
    for (cur, prev) in pairs {
        let (cur, prev) = (&entries[cur].path, &entries[prev].path);
        for (a, b) in [(cur, prev), (prev, cur)] {
            problems.push(problem(
                a,
                Rule::DefaultDeny,
                format!("differs from `{b}` only in case; ids are case-insensitively unique"),
            ));
        }
    }
}
