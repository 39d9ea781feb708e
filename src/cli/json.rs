//! The machine contract of `--json`: one typed struct per output shape, so a change to what
//! scripts read is a change to a type here (documented in docs/json.md, pinned by the snapshot
//! tests in tests/e2e/json.rs), never a side effect of a domain type or a format change.
//! Fields typed `R`/`M` carry a registry record, a report or metrics as docs/format.md defines
//! them.

use std::path::PathBuf;

use serde::Serialize;

/// A submission written on a branch (`dataset submit`, `result submit`; `branch` is null and
/// `files` empty when there was nothing to submit).
#[derive(Serialize)]
pub struct Written {
    pub branch: Option<String>,
    pub files: Vec<String>,
}

/// `user request`.
#[derive(Serialize)]
pub struct Requested {
    pub branch: String,
    pub commit: String,
    pub files: Vec<String>,
}

/// `benchmark submit`.
#[derive(Serialize)]
pub struct BenchmarkSubmitted<R> {
    pub branch: String,
    pub version: u32,
    pub primary_metric: String,
    pub report: R,
}

/// `mlcube associate` and `association request`.
#[derive(Serialize)]
pub struct AssociationRequested<R> {
    pub branch: String,
    pub report: R,
}

/// `dataset associate`.
#[derive(Serialize)]
pub struct DatasetAssociated<M> {
    pub branch: String,
    pub metrics: Option<M>,
}

/// `mlcube submit`.
#[derive(Serialize)]
pub struct CubeSubmitted {
    pub branch: String,
    pub name: String,
    pub version: u32,
    pub image_id: String,
    pub config_sha256: String,
    /// The encrypted image's sha256 (`--encrypt`), else null.
    pub ciphertext_sha256: Option<String>,
}

/// `benchmark view`, `mlcube view`: the record as registered, where, and its hash.
#[derive(Serialize)]
pub struct Viewed<R> {
    pub path: String,
    pub sha256: String,
    pub record: R,
    /// `mlcube view` only: the image is on the submitter's machine alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_only: Option<bool>,
}

/// `dataset view`, `result view`: the record, and what this key may read of its sealed part
/// (`sealed` is null when it cannot be opened with the `--as` key).
#[derive(Serialize)]
pub struct SealedView<R, M> {
    pub path: String,
    pub sha256: Option<String>,
    pub record: R,
    pub sealed: Option<M>,
    /// Whose key opened `sealed` (or tried to).
    pub reader: Option<String>,
}

/// One row of `benchmark ls`.
#[derive(Serialize)]
pub struct BenchmarkRow<C, P> {
    pub name: String,
    pub version: u32,
    pub owner: String,
    pub committee: Vec<String>,
    pub data_preparator: C,
    pub reference_model: C,
    pub metrics: C,
    pub policy: P,
    pub path: String,
}

/// One row of `mlcube ls`.
#[derive(Serialize)]
pub struct CubeRow<'a> {
    pub name: &'a str,
    pub version: u32,
    pub owner: &'a str,
    pub image_id: &'a str,
    pub path: &'a str,
    pub sha256: Option<&'a str>,
}

/// One row of `association ls`.
#[derive(Serialize)]
pub struct AssociationRow {
    pub benchmark: String,
    /// `model` or `dataset`.
    pub kind: &'static str,
    pub name: String,
    pub version: u32,
    pub requested_by: String,
    /// `reference`, `approved`, `withdrawn`, or (waiting) `local` / `pushed`.
    pub state: String,
    pub priority: Option<i64>,
    pub path: String,
}

/// One row of `dataset ls`.
#[derive(Serialize)]
pub struct DatasetRow {
    pub name: String,
    pub id: String,
    pub owner: String,
    pub benchmark: String,
    /// `prepared here`, `prepared here, registered` or `registered`.
    pub state: String,
}

/// One row of `result ls --registered` (`--state approved`).
#[derive(Serialize)]
pub struct RegisteredResultRow<S> {
    pub path: String,
    pub model: String,
    pub dataset: String,
    pub owner: String,
    pub status: S,
}

/// One row of `result ls` (results computed on this machine).
#[derive(Serialize)]
pub struct LocalResultRow<S, M, F> {
    pub benchmark: String,
    pub dataset: String,
    pub model: String,
    pub status: S,
    pub metrics: Option<M>,
    pub failure: Option<F>,
    pub submitted: bool,
    pub key: String,
}

/// One row of `benchmark run`.
#[derive(Serialize)]
pub struct RunRow<M, F> {
    pub model: String,
    pub version: u32,
    pub priority: Option<i64>,
    pub status: String,
    pub seconds: f64,
    pub metrics: Option<M>,
    pub failure: Option<F>,
    pub key: String,
}

/// A submission of any kind, waiting on a branch or turned down: the rows of every `ls` with
/// `--state pending` or `--state rejected`.
#[derive(Serialize)]
pub struct SubmissionRow {
    /// The record it proposes (its registry path).
    pub subject: String,
    /// Whose it is (null for a rejection whose branch is gone and whose path names nobody).
    pub owner: Option<String>,
    /// `local` (only in this clone), `pushed`, or `rejected`.
    pub state: String,
    /// Its branch (null once a rejection deleted it).
    pub branch: Option<String>,
    /// Who turned it down, when, and why (rejections only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rejected_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `dataset prepare`.
#[derive(Serialize)]
pub struct Prepared<M> {
    pub name: String,
    pub id: String,
    pub content_sha256: String,
    pub files: u64,
    pub bytes: u64,
    pub statistics: M,
}

/// `dataset check`.
#[derive(Serialize)]
pub struct DatasetChecked {
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_sha256: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<String>,
}

/// `test run`.
#[derive(Serialize)]
pub struct Tested<R> {
    pub ok: bool,
    pub report: R,
    pub run_dir: PathBuf,
}

/// `doctor`.
#[derive(Serialize)]
pub struct Doctor<C> {
    pub ok: bool,
    pub checks: Vec<C>,
}

/// `registry init`, `registry clone`, `registry fingerprint`.
#[derive(Serialize)]
pub struct RegistryId {
    pub registry_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
}

/// `registry sync`.
#[derive(Serialize)]
pub struct Synced {
    pub remote_main: Option<String>,
    pub view: String,
    pub new_commits: usize,
    pub unpushed: usize,
    pub main: String,
}

/// A branch `registry push` sent, and where to open its pull request.
#[derive(Serialize)]
pub struct PushedBranch {
    pub branch: String,
    pub review_url: Option<String>,
}

/// `registry push`.
#[derive(Serialize)]
pub struct Pushed<L> {
    pub branches: Vec<PushedBranch>,
    pub main: Option<L>,
}

/// One row of `registry status`.
#[derive(Serialize)]
pub struct StatusRow {
    pub branch: String,
    pub kind: &'static str,
    pub subject: String,
    pub owner: String,
    pub state: &'static str,
    pub waiting_for: String,
}

/// `registry status`.
#[derive(Serialize)]
pub struct Status {
    pub handle: String,
    pub mine: Vec<StatusRow>,
    pub awaiting_me: Vec<StatusRow>,
    /// Access decisions waiting on the owner of a private model.
    pub private: Vec<AccessNotice>,
}

/// A private model's owner should grant (`undecided`) or re-grant (`rotated`).
#[derive(Serialize)]
pub struct AccessNotice {
    pub notice: &'static str,
    pub model: String,
    pub version: u32,
    pub benchmark: Option<String>,
    pub dataset: String,
    pub dataset_name: String,
    /// The grantee whose age key changed (`rotated`).
    pub handle: Option<String>,
}

/// `mlcube submit --encrypt` whose ciphertext is too large for the registry: upload it, then
/// submit with `--encrypted-image URL`.
#[derive(Serialize)]
pub struct CiphertextWritten {
    pub ciphertext: std::path::PathBuf,
    pub sha256: String,
    pub bytes: u64,
    pub submitted: bool,
}

/// `registry merge`.
#[derive(Serialize)]
pub struct Merged {
    pub merged: Vec<String>,
    pub refused: Vec<String>,
}

/// `registry cosign`.
#[derive(Serialize)]
pub struct Cosigned {
    pub branch: String,
    pub files: Vec<String>,
}

/// What a decision or change did to main: `benchmark approve|reject`, `user
/// approve|reject|grant|revoke`, `association approve|reject|set-priority`, `registry
/// rotate-root`. `landed` is null while the change waits on `branch` (forge mode, or for
/// co-signatures).
#[derive(Serialize)]
pub struct Decided<L> {
    pub what: String,
    pub landed: Option<L>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// Signatures still needed before it can be merged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub needs: Option<u32>,
}

/// Files a command wrote (`site`, `leaderboard -o`, `registry install-hook`).
#[derive(Serialize)]
pub struct Wrote {
    pub files: Vec<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
}

/// `leaderboard --check`.
#[derive(Serialize)]
pub struct ReleaseChecked {
    pub release: String,
    pub ok: bool,
    pub results: usize,
    pub cells: usize,
    pub mapping_opened: bool,
    pub recomputed: bool,
    pub readable_exclusions: Vec<String>,
}

/// A registry file's TOML as JSON (`null` when it is not TOML).
pub fn toml_record(bytes: &[u8]) -> Option<toml::Table> {
    std::str::from_utf8(bytes).ok()?.parse().ok()
}
