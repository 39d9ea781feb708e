//! Leaderboard releases: what a committee publishes (ranked entries, per-metric summaries,
//! per-dataset cells and failure receipts) and the result manifests it is computed from.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::envelope::{Sealed, Unreadable};
use super::ids::Sha256;
use super::records::{BenchRef, CubeRef, Policy};

/// `layout` of the releases cohort writes now. Absent (1) in older releases, whose pseudonyms
/// follow sorted dataset ids and whose cells name their result manifests (linkable); in layout
/// 2, a pseudonymised release names no manifest next to a pseudonym; in layout 3, size metrics
/// (`n` and the benchmark's `size_metrics`) are totals per model in `totals`, never summaries
/// (docs/format.md). Older layouts stay valid and are recomputed by their own rules.
pub const LEADERBOARD_LAYOUT: u32 = 3;

/// The first layout whose pseudonymised releases are unlinked.
pub const LAYOUT_UNLINKED: u32 = 2;

/// The first layout that shows size metrics as totals (`Entry::totals`).
pub const LAYOUT_TOTALS: u32 = 3;

/// Summary of one metric across the datasets a model has results on (docs/aggregation.md).
/// Every float is rounded to 6 decimal places so anyone holding the decrypted results
/// recomputes the same bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricSummary {
    /// Mean across datasets (weighted by each dataset's `n` under `weighting = "size"`).
    pub mean: f64,
    /// Sample standard deviation across datasets (weighted like the mean). Absent with one
    /// dataset, and in `aggregate` releases, which release one number per model and no spread.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sd: Option<f64>,
    /// Lowest per-dataset value; absent in `aggregate` releases (it is one site's number).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Highest per-dataset value; absent in `aggregate` releases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// Number of datasets aggregated.
    pub n: u32,
}

/// One model x dataset cell (cross-product releases only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cell {
    /// The dataset's name, or its pseudonym (`site-1`, ...) when the policy hides names.
    pub dataset: String,
    /// Every metric the result reports, rounded like [`MetricSummary`].
    pub metrics: BTreeMap<String, f64>,
    /// Registry path of the result manifest this cell comes from; absent in pseudonymised
    /// layout-2 releases (it names the dataset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
}

/// A failure receipt shown on a leaderboard: where a model failed, never any data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailureNote {
    /// The dataset's label, as in [`Cell::dataset`]; absent in pseudonymised layout-2
    /// releases (the receipt itself is public, so a label would link its pseudonym).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    /// The step that failed (`infer`, `evaluate`, ...).
    pub stage: String,
    /// The container's exit code, when it exited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    /// `exit-code`, `timeout`, `malformed-output`, ...
    pub reason: String,
    /// Registry path of the failure receipt (a result manifest with `status = "failed"`);
    /// absent in pseudonymised layout-2 releases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
}

/// Whether a model is ranked in a release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EntryStatus {
    /// Enough datasets: ranked, with the metrics the policy releases.
    Listed,
    /// Fewer successful datasets than the policy's `min_datasets`: no rank and no metric
    /// values at all, so a single site's numbers cannot be read off.
    BelowMinimum,
}

impl EntryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryStatus::Listed => "listed",
            EntryStatus::BelowMinimum => "below-minimum",
        }
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// One row of a leaderboard: one model cube version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// The model cube version the results were computed with.
    pub model: CubeRef,
    /// The model cube's owner (handle).
    pub owner: String,
    /// The benchmark's reference model (submitted by the committee).
    #[serde(default, skip_serializing_if = "is_false")]
    pub reference: bool,
    /// Rank by the primary metric (standard competition ranking: ties share a rank and the
    /// next rank skips, "1224"); absent when not ranked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rank: Option<u32>,
    /// Datasets with a successful result (failure receipts do not count).
    pub datasets: u32,
    pub status: EntryStatus,
    /// Metric name -> summary across datasets; empty when below the minimum. From layout 3 on,
    /// size metrics are never summarised here (see `totals`).
    #[serde(default)]
    pub metrics: BTreeMap<String, MetricSummary>,
    /// Layout 3: size metric name -> its sum over the model's successful datasets (rounded
    /// like a summary). Listed entries of `per-model` and `cross-product` releases only.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub totals: BTreeMap<String, f64>,
    /// Per-dataset values (cross-product releases of listed models only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cells: Vec<Cell>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<FailureNote>,
}

/// A result manifest a release covers.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Covered {
    pub path: String,
    pub sha256: Sha256,
}

/// Why a release left a result out (closed set, docs/format.md "Exclusions").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExclusionReason {
    MissingPayload,
    BadCiphertextHash,
    /// The releasing member's key opens none of its stanzas: sealed to the wrong people.
    Undecryptable,
    BadPlaintextHash,
    MalformedPayload,
    /// Submitted under a narrower sharing policy than the release applies.
    NarrowerPolicy,
}

impl ExclusionReason {
    pub const ALL: [ExclusionReason; 6] = [
        ExclusionReason::MissingPayload,
        ExclusionReason::BadCiphertextHash,
        ExclusionReason::Undecryptable,
        ExclusionReason::BadPlaintextHash,
        ExclusionReason::MalformedPayload,
        ExclusionReason::NarrowerPolicy,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ExclusionReason::MissingPayload => "missing-payload",
            ExclusionReason::BadCiphertextHash => "bad-ciphertext-hash",
            ExclusionReason::Undecryptable => "undecryptable",
            ExclusionReason::BadPlaintextHash => "bad-plaintext-hash",
            ExclusionReason::MalformedPayload => "malformed-payload",
            ExclusionReason::NarrowerPolicy => "narrower-policy",
        }
    }

    /// Whether only a recipient can tell (verification checks the form, not the reason).
    pub fn is_cryptographic(self) -> bool {
        self != ExclusionReason::NarrowerPolicy
    }
}

impl From<Unreadable> for ExclusionReason {
    fn from(u: Unreadable) -> Self {
        match u {
            Unreadable::MissingPayload => ExclusionReason::MissingPayload,
            Unreadable::BadCiphertextHash => ExclusionReason::BadCiphertextHash,
            Unreadable::Undecryptable => ExclusionReason::Undecryptable,
            Unreadable::BadPlaintextHash => ExclusionReason::BadPlaintextHash,
            Unreadable::MalformedPayload => ExclusionReason::MalformedPayload,
        }
    }
}

impl std::fmt::Display for ExclusionReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A result a release left out, and why. Paths are fine here: an excluded result is shown
/// nowhere, so it is next to no pseudonym.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exclusion {
    pub path: String,
    pub sha256: Sha256,
    pub reason: ExclusionReason,
}

/// `leaderboards/<bench>/<n>.toml`: a release, co-signed by the committee threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Leaderboard {
    pub format: u32,
    pub kind: String,
    /// [`LEADERBOARD_LAYOUT`] for releases made since pseudonyms are unlinked; absent (1)
    /// before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layout: Option<u32>,
    pub number: u32,
    pub benchmark: BenchRef,
    pub created: String,
    pub by: String,
    /// The policy applied: that of `benchmark`. No covered result was submitted under a
    /// narrower policy (docs/aggregation.md).
    pub policy: Policy,
    /// The result manifests the release is computed from, sorted by path: the newest result
    /// of each model version on each dataset. Empty in pseudonymised layout-2 releases,
    /// which list `inputs` instead.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub results: Vec<Covered>,
    /// Pseudonymised layout-2 releases: the sha256 of every covered result manifest, sorted,
    /// a set that names no dataset next to a pseudonym.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<Sha256>,
    /// Pseudonymised layout-2 releases: how many datasets the release uses (`site-1` to
    /// `site-<datasets>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datasets: Option<u32>,
    /// Pseudonymised layout-2 releases: the pseudonym -> dataset mapping, sealed to the
    /// committee (`<n>.pseudonyms.age`, schema `pseudonyms/1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pseudonyms: Option<Sealed>,
    /// Results left out (layout 2), sorted by path.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excluded: Vec<Exclusion>,
    /// Ranked entries first (by rank, then model name and version), then the rest.
    pub entries: Vec<Entry>,
}

impl Leaderboard {
    /// The record's layout (absent: 1).
    pub fn layout(&self) -> u32 {
        self.layout.unwrap_or(1)
    }

    /// Whether this release shows size metrics as totals (layout 3 on) rather than as
    /// summaries like any other metric (older layouts).
    pub fn has_totals(&self) -> bool {
        self.layout() >= LAYOUT_TOTALS
    }

    /// Whether this release hides which dataset stands behind each pseudonym (layout 2 and a
    /// pseudonymised policy).
    pub fn is_unlinked(&self) -> bool {
        self.layout.unwrap_or(1) >= LAYOUT_UNLINKED
            && self.policy.dataset_names == super::records::DatasetNaming::Pseudonymised
    }

    /// The digests of the manifests this release covers, whichever way it lists them.
    pub fn covered_digests(&self) -> Vec<&Sha256> {
        if self.results.is_empty() {
            self.inputs.iter().collect()
        } else {
            self.results.iter().map(|c| &c.sha256).collect()
        }
    }
}
