//! Trust: local keys, signatures with bound trusted comments, the policy of who may sign and
//! approve what, and verification of a registry tree (and, with a timeline from the registry's
//! history, of every merge) into a report of problems. Reads through [`TreeRead`]; never writes
//! to a registry.

pub mod agent;
mod build;
pub mod cache;
pub mod carry;
mod fastsig;
pub mod index;
mod intro;
pub mod keys;
mod onto;
mod policy;
mod rules;
pub mod sign;
mod verify;
mod view;

use std::path::PathBuf;

use serde::Serialize;

pub use cache::SigCache;
pub use carry::{Carried, CarriedFile};
pub use index::{FileInfo, Index, Lazy, Revocations, next_number};
pub use intro::{Intro, SortedLines};
pub use keys::{PublicIdentity, Signer};
pub use rules::{Accepted, Load, verify, verify_grown, verify_index, verify_lazily};
pub use verify::VerifyOptions;

/// Names the code of the trust rules (the model and this module) that reached a verdict: a
/// verdict kept from an earlier verification counts only under the same code.
pub const RULES_FINGERPRINT: &str = env!("COHORT_RULES_FINGERPRINT");

#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("{0}")]
    Key(String),
    #[error("a key for `{handle}` already exists in {dir}")]
    KeyExists { handle: String, dir: PathBuf },
    #[error("no key for `{handle}` in {dir}")]
    NoKey { handle: String, dir: PathBuf },
    #[error("wrong passphrase for the key of `{0}`")]
    WrongPassphrase(String),
    /// Refused before any key derivation: an empty passphrase never opens a protected key.
    #[error("the passphrase for the key of `{0}` is empty")]
    EmptyPassphrase(String),
    #[error("{path}: {}", crate::storage::plain_io(.source))]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read {what}: {why}")]
    Read { what: String, why: String },
    /// The key agent refused, failed or could not be reached.
    #[error("key agent at {path}: {why}")]
    Agent { path: PathBuf, why: String },
}

/// How a tree entry is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryMode {
    File,
    Executable,
    Symlink,
    Submodule,
}

impl EntryMode {
    /// A file's mode as git and libgit2 read a tree entry's (any other mode is a plain file).
    pub fn of_git(mode: u32) -> EntryMode {
        match mode {
            0o120000 => EntryMode::Symlink,
            0o160000 => EntryMode::Submodule,
            0o100755 => EntryMode::Executable,
            _ => EntryMode::File,
        }
    }
}

/// One file in a registry tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeEntry {
    pub path: String,
    pub mode: EntryMode,
    /// The git blob id, where the tree knows it (files carried from an earlier verification
    /// are taken only where it matches: see [`Carried`]).
    pub blob: Option<[u8; 20]>,
}

/// A file read with a size limit: its bytes, or its size when that is over the limit (the
/// bytes are then never read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Limited {
    Bytes(Vec<u8>),
    Over(u64),
}

/// Receives consecutive chunks of the files a [`TreeRead::read_limited`] call reads: the index
/// of the chunk's first file, and the files.
pub type ChunkSink<'a> = dyn FnMut(usize, Vec<Limited>) -> Result<(), TrustError> + 'a;

/// Read-only access to the files of one registry tree (a commit, in practice). The registry
/// module implements it over git's object database; tests implement it over a map.
pub trait TreeRead {
    /// Every file (blob, link or submodule), with its full path.
    fn entries(&self) -> Result<Vec<TreeEntry>, TrustError>;
    /// The exact bytes of a file.
    fn read(&self, path: &str) -> Result<Vec<u8>, TrustError>;
    /// Reads `files` (path, size limit in bytes) in order and hands them to `sink` in
    /// consecutive chunks. Implementations that can read while the sink works on the chunks
    /// before do (reading a registry's files and parsing them take about as long).
    fn read_limited(
        &self,
        files: &[(&str, usize)],
        sink: &mut ChunkSink,
    ) -> Result<(), TrustError> {
        let read = files
            .iter()
            .map(|(p, limit)| {
                let bytes = self.read(p)?;
                Ok(if bytes.len() > *limit {
                    Limited::Over(bytes.len() as u64)
                } else {
                    Limited::Bytes(bytes)
                })
            })
            .collect::<Result<Vec<_>, TrustError>>()?;
        sink(0, read)
    }
    /// Folders (`""` for the top) stored in a shape git itself never writes, with why: such a
    /// folder reads differently to different readers, so it is refused.
    fn malformed(&self) -> Vec<(String, String)> {
        Vec::new()
    }
}

/// When each file entered main: the index of the first-parent commit that added it. Files are
/// checked under the keys, grants and policy valid at that point.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    /// Commit ids, oldest first; `intro` values index into this.
    pub commits: Vec<String>,
    pub intro: Intro,
    /// Problems found while walking history (deleted or edited files, bad root commit).
    pub problems: Vec<Problem>,
}

impl Timeline {
    /// A timeline for a bare tree: everything arrived together.
    pub fn flat() -> Timeline {
        Timeline::default()
    }
    /// The commit index a file arrived in; files the walk did not see count as newest.
    pub fn intro(&self, path: &str) -> usize {
        self.intro
            .get(path)
            .unwrap_or(self.commits.len().saturating_sub(1))
    }
    pub fn commit(&self, index: usize) -> Option<&str> {
        self.commits.get(index).map(String::as_str)
    }
}

/// Which rule a problem breaks (stable names for `--json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rule {
    /// Rule 1: signatures over exact bytes, bound comments.
    Signature,
    /// Rule 2: default deny (unknown files, links, executables, bad ids, case collisions).
    DefaultDeny,
    /// Rule 3: approvals and thresholds.
    Approval,
    /// Rule 4: root versions and rotation.
    Root,
    /// Rule 5: history is append-only.
    History,
    /// Rule 6: rollback and freeze.
    Rollback,
    /// Rule 7: sealed data.
    Sealed,
    /// Rule 8: limits and strict parsing.
    Limits,
    /// References between records.
    Reference,
    /// Who may author a record.
    Authority,
}

/// What exactly is wrong, as a stable name: code decides on problems by this, never by their
/// message text, and `--json` prints it (docs/format.md lists them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Code {
    // One generic code per rule, for problems no script needs to tell apart.
    Signature,
    DefaultDeny,
    Approval,
    Root,
    History,
    Rollback,
    Sealed,
    Limits,
    Reference,
    Authority,
    // Specific codes.
    /// A record that needs a signature has none by its author.
    Unsigned,
    /// The signature does not verify over the file's bytes.
    BadSignature,
    /// The signature was made with another key than the one the signer may use.
    WrongKey,
    /// The signature file cannot be read as a minisign signature.
    MalformedSignature,
    /// The trusted comment binds another registry, path, digest, kind, signer or format.
    SignatureComment,
    /// A record merged without the approval it needs (on a pending submission: waiting).
    AwaitingApproval,
    /// A record merged although it was rejected.
    RejectedButMerged,
    /// A root version without the signatures its own or the previous version's admins owe.
    RootThreshold,
    /// Two handles with the same raw public key where distinct people are required.
    SharedKey,
    /// A user version registering a raw key revoked before it, under any handle or label.
    RevokedKey,
    /// A decision whose subject or digest names nothing it may decide on.
    StrayDecision,
    /// No root v1 in the tree.
    MissingRoot,
    /// A root v1 other than the one this clone pinned.
    OtherRegistry,
    /// A main that does not contain, on its first-parent chain, the main verified before.
    NotFirstParentDescendant,
    /// A merged file edited or deleted later.
    Rewritten,
    /// A release whose cells or counts differ from the results it covers (found by a
    /// committee member who can open them).
    ReleaseMismatch,
    /// A blob whose content does not hash to its name.
    BlobDigest,
    /// A folder whose git tree object git itself never writes (two entries of one name,
    /// entries out of order, a name with `/`, `.` or `..`): readers would disagree on it.
    MalformedTree,
    /// A blob no record references (or only records that arrived after it).
    OrphanBlob,
    /// A record naming a blob that is not in the registry (or arrived after the record).
    MissingBlob,
    /// An artifact URL holding a user name or password, which the record publishes to every
    /// clone (a warning: cohort never writes one, and refuses a new one like any warning).
    UrlCredentials,
}

impl Code {
    /// The generic code of a rule.
    pub fn of_rule(rule: Rule) -> Code {
        match rule {
            Rule::Signature => Code::Signature,
            Rule::DefaultDeny => Code::DefaultDeny,
            Rule::Approval => Code::Approval,
            Rule::Root => Code::Root,
            Rule::History => Code::History,
            Rule::Rollback => Code::Rollback,
            Rule::Sealed => Code::Sealed,
            Rule::Limits => Code::Limits,
            Rule::Reference => Code::Reference,
            Rule::Authority => Code::Authority,
        }
    }
}

/// One problem: the file, the rule, why, and (with history) the commit that introduced it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Problem {
    pub path: String,
    pub rule: Rule,
    pub code: Code,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
}

/// The outcome of a verification.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub registry_id: Option<String>,
    pub files: usize,
    pub records: usize,
    /// Records whose checks ran: all of them, unless the main grew from one accepted here
    /// (`grown_from`), whose records the new files do not reach keep their verdict.
    pub records_checked: usize,
    /// Signatures whose cryptography was computed in this run.
    pub signatures_checked: usize,
    /// Signatures whose cryptography an earlier run computed (the memo); every other check
    /// on them ran again.
    pub signatures_cached: usize,
    /// Files taken from the carry of an earlier verification instead of being read and
    /// parsed (one by one, the same path and git blob with the bytes hashed again, or all the
    /// files of the main in `grown_from`); every check on them ran again.
    pub files_carried: usize,
    /// The main accepted here that the verified main grew from, when the carry held that
    /// main's files whole and only what the commits since add was read from git.
    pub grown_from: Option<String>,
    /// When the main grew from one accepted here clean and only the parts of it its checks
    /// needed were read (see `trust::verify_lazily`): how many parts (an id's folder, a blob).
    pub parts_read: Option<usize>,
    pub problems: Vec<Problem>,
    /// Records that only newer trust rules refuse, on a registry whose root is older:
    /// reported, and refused by `verify --strict`.
    pub warnings: Vec<Problem>,
}

impl Report {
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
    /// Clean with no warnings either (`verify --strict`).
    pub fn is_strictly_clean(&self) -> bool {
        self.problems.is_empty() && self.warnings.is_empty()
    }
}
#[cfg(test)]
mod tests;
