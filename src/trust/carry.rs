//! Files of a tree verified earlier, carried into the next verification so that a main grown
//! by a few commits reads, hashes and parses only the files it does not already have. Taken one
//! by one ([`take`]), a file is used only where the tree being verified names the same path and
//! the carried bytes hash to the git blob id the tree names, so what is verified is that tree's
//! bytes whatever the carry holds; the record parsed from them is taken only when its JSON is
//! whole (its digest) and the carry was written by a build with this one's parser. Taken whole
//! (`Index::from_carried`), the carry is the main it names, as this machine saved it.

use bytes::Bytes;
use sha1::Digest;

use crate::model::{self, Record, RecordPath, Sha256};

use super::build::Parsed;

/// One file as an earlier verification read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CarriedFile {
    /// The path, UTF-8.
    pub path: Bytes,
    /// The git blob id the file had.
    pub blob: [u8; 20],
    pub bytes: Bytes,
    /// sha256 of `bytes`, as the verification that kept the file computed it (taken only with
    /// a whole carry of the main it verified: see `Index::from_carried`).
    pub sha256: [u8; 32],
    /// The record parsed from `bytes` at `path`, as [`Record::to_json`] wrote it; empty when
    /// the carry kept none (the bytes are then parsed again).
    pub json: Bytes,
    /// sha256 of `json`.
    pub json_sha256: [u8; 32],
}

/// Carried files sorted by path, one per path.
#[derive(Debug, Default)]
pub struct Carried {
    pub files: Vec<CarriedFile>,
    /// Whether the main these files are, taken whole, passed verification on this machine
    /// under this build's trust rules with no problem and no warning:
    /// a main grown from it then re-checks only the records its new files reach (see
    /// [`super::verify_grown`]).
    pub accepted: bool,
}

impl Carried {
    /// Files from segments written in turn, a later file replacing an earlier one of the
    /// same path.
    pub fn from_segments(segments: Vec<Vec<CarriedFile>>) -> Carried {
        let sorted = |s: &Vec<CarriedFile>| s.windows(2).all(|w| w[0].path < w[1].path);
        if !segments.iter().all(sorted) {
            let mut files: Vec<CarriedFile> = segments.into_iter().flatten().collect();
            // Stable: among files of one path the last written stays last.
            files.sort_by(|a, b| a.path.cmp(&b.path));
            let mut out: Vec<CarriedFile> = Vec::with_capacity(files.len());
            for f in files {
                match out.last_mut() {
                    Some(last) if last.path == f.path => *last = f,
                    _ => out.push(f),
                }
            }
            return Carried {
                files: out,
                accepted: false,
            };
        }
        // Segments as the carry writes them, each sorted by path (one large, a few small):
        // merged in one pass, an equal path taken from the later segment.
        let total = segments.iter().map(Vec::len).sum();
        let mut heads: Vec<_> = segments
            .into_iter()
            .map(|s| s.into_iter().peekable())
            .collect();
        let mut files = Vec::with_capacity(total);
        loop {
            let first = heads
                .iter_mut()
                .filter_map(|h| h.peek().map(|f| f.path.clone()))
                .min();
            let Some(first) = first else { break };
            let mut last = None;
            for h in &mut heads {
                if h.peek().is_some_and(|f| f.path == first) {
                    last = h.next();
                }
            }
            files.extend(last);
        }
        Carried {
            files,
            accepted: false,
        }
    }
    pub fn len(&self) -> usize {
        self.files.len()
    }
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

/// The git blob id of `bytes`.
pub fn blob_id(bytes: &[u8]) -> [u8; 20] {
    let mut h = sha1::Sha1::new();
    h.update(format!("blob {}\0", bytes.len()).as_bytes());
    h.update(bytes);
    h.finalize().into()
}

/// What a carried file gives the index: its bytes, their sha256 and, for a record, the record
/// (from its JSON, or parsed again); `None` when the file is not what `blob` names or its
/// JSON is damaged (it is then read from the tree).
pub(super) fn take(
    f: CarriedFile,
    path: &str,
    rp: &RecordPath,
    blob: [u8; 20],
) -> Option<(Bytes, Parsed)> {
    if f.blob != blob || f.bytes.len() > model::size_limit(rp) || blob_id(&f.bytes) != blob {
        return None;
    }
    let record = match rp.kind() {
        None if f.json.is_empty() => None,
        None => return None,
        Some(_) if f.json.is_empty() => Some(model::parse_record(path, rp, &f.bytes)),
        Some(kind) => {
            let digest: [u8; 32] = sha2::Sha256::digest(&f.json).into();
            if digest != f.json_sha256 {
                return None;
            }
            let json = std::str::from_utf8(&f.json).ok()?;
            Some(Ok(Record::from_json(kind, json).ok()?))
        }
    };
    let sha = Sha256::of(&f.bytes);
    Some((f.bytes, (sha, record)))
}
