//! Leaderboard releases: what a committee publishes (ranked entries, per-metric summaries,
//! per-dataset cells and failure receipts) and the result manifests it is computed from.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::ids::Sha256;
use super::records::{BenchRef, CubeRef, Policy};

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
    /// Registry path of the result manifest this cell comes from.
    pub result: String,
}

/// A failure receipt shown on a leaderboard: where a model failed, never any data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailureNote {
    /// The dataset's label, as in [`Cell::dataset`].
    pub dataset: String,
    /// The step that failed (`infer`, `evaluate`, ...).
    pub stage: String,
    /// The container's exit code, when it exited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    /// `exit-code`, `timeout`, `malformed-output`, ...
    pub reason: String,
    /// Registry path of the failure receipt (a result manifest with `status = "failed"`).
    pub result: String,
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
    /// Metric name -> summary across datasets; empty when below the minimum.
    #[serde(default)]
    pub metrics: BTreeMap<String, MetricSummary>,
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

/// `leaderboards/<bench>/<n>.toml`: a release, co-signed by the committee threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Leaderboard {
    pub format: u32,
    pub kind: String,
    pub number: u32,
    pub benchmark: BenchRef,
    pub created: String,
    pub by: String,
    /// The policy applied: that of `benchmark`. No covered result was submitted under a
    /// narrower policy (docs/aggregation.md).
    pub policy: Policy,
    /// The result manifests the release is computed from, sorted by path: the newest result
    /// of each model version on each dataset.
    pub results: Vec<Covered>,
    /// Ranked entries first (by rank, then model name and version), then the rest.
    pub entries: Vec<Entry>,
}
