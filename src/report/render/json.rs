//! A release as JSON for scripts (`cohort leaderboard B --format json`). These structs are
//! the machine contract: their field names stay stable when the TOML record changes, and
//! `schema` is bumped on any incompatible change. Documented in docs/aggregation.md.

use std::collections::BTreeMap;
use std::io::Write;

use serde::Serialize;

use crate::model::{CubeRef, DatasetNaming, Leaderboard, Ranking, Weighting};
use crate::report::{ReportError, aggregate::release_name};

/// The schema id written into every document.
/// 2: cells and failure receipts may carry no `result` (and receipts no `dataset`) in
/// pseudonymised releases; `layout`, `inputs` and `excluded` were added.
/// 3: size metrics (`policy.size_metrics`, and `n`) of layout-3 releases are in an entry's
/// `totals`, not in its `metrics`.
pub const SCHEMA: &str = "cohort.leaderboard/3";

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JsonLeaderboard {
    pub schema: &'static str,
    pub benchmark: JsonRef,
    /// Release number.
    pub release: u32,
    /// The record's layout (1: older releases, whose pseudonyms are linkable; 2; 3: size
    /// metrics as totals).
    pub layout: u32,
    pub created: String,
    pub by: String,
    pub policy: JsonPolicy,
    /// Ranked models first, then the others, as in the record.
    pub entries: Vec<JsonEntry>,
    /// The result manifests the release covers, sorted by path (empty when pseudonymised:
    /// see `inputs`).
    pub results: Vec<JsonCovered>,
    /// Pseudonymised releases: the sha256 of every covered manifest, sorted (no paths).
    pub inputs: Vec<String>,
    /// Results the release left out, with a reason code.
    pub excluded: Vec<JsonExcluded>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JsonExcluded {
    pub path: String,
    pub sha256: String,
    /// `missing-payload`, `bad-ciphertext-hash`, `undecryptable`, `bad-plaintext-hash`,
    /// `malformed-payload` or `narrower-policy`.
    pub reason: &'static str,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JsonRef {
    pub name: String,
    pub version: u32,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JsonPolicy {
    /// `aggregate`, `per-model` or `cross-product`.
    pub release: &'static str,
    /// `shown` or `pseudonymised`.
    pub dataset_names: &'static str,
    pub min_datasets: u32,
    pub primary_metric: String,
    /// `higher-is-better` or `lower-is-better`.
    pub ranking: &'static str,
    /// `equal` or `size`.
    pub weighting: &'static str,
    /// Metrics the benchmark declares as counts of cases, besides `n` (always one).
    pub size_metrics: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JsonEntry {
    /// `null` when the model is not ranked.
    pub rank: Option<u32>,
    pub model: JsonRef,
    pub owner: String,
    pub reference: bool,
    /// `listed` or `below-minimum`.
    pub status: &'static str,
    /// Datasets with a successful result.
    pub datasets: u32,
    pub metrics: BTreeMap<String, JsonSummary>,
    /// Layout 3: size metric -> the count of cases across the model's datasets.
    pub totals: BTreeMap<String, f64>,
    /// Per-dataset values; empty unless the release is a cross-product.
    pub cells: Vec<JsonCell>,
    pub failures: Vec<JsonFailure>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JsonSummary {
    pub mean: f64,
    /// `null` with one dataset or in aggregate releases.
    pub sd: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub n: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JsonCell {
    pub dataset: String,
    pub metrics: BTreeMap<String, f64>,
    /// `null` in pseudonymised releases.
    pub result: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JsonFailure {
    /// `null` in pseudonymised releases.
    pub dataset: Option<String>,
    pub stage: String,
    pub exit_code: Option<i64>,
    pub reason: String,
    /// `null` in pseudonymised releases.
    pub result: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JsonCovered {
    pub path: String,
    pub sha256: String,
}

fn cube(c: &CubeRef) -> JsonRef {
    JsonRef {
        name: c.name.clone(),
        version: c.version,
        sha256: c.sha256.to_string(),
    }
}

/// The JSON view of a release.
pub fn from_record(lb: &Leaderboard) -> JsonLeaderboard {
    let p = &lb.policy;
    JsonLeaderboard {
        schema: SCHEMA,
        benchmark: JsonRef {
            name: lb.benchmark.name.clone(),
            version: lb.benchmark.version,
            sha256: lb.benchmark.sha256.to_string(),
        },
        release: lb.number,
        layout: lb.layout.unwrap_or(1),
        created: lb.created.clone(),
        by: lb.by.clone(),
        policy: JsonPolicy {
            release: release_name(p.release),
            dataset_names: match p.dataset_names {
                DatasetNaming::Shown => "shown",
                DatasetNaming::Pseudonymised => "pseudonymised",
            },
            min_datasets: p.min_datasets,
            primary_metric: p.primary_metric.clone(),
            ranking: match p.ranking {
                Ranking::HigherIsBetter => "higher-is-better",
                Ranking::LowerIsBetter => "lower-is-better",
            },
            weighting: match p.weighting {
                Weighting::Equal => "equal",
                Weighting::Size => "size",
            },
            size_metrics: p.size_metrics.clone(),
        },
        entries: lb
            .entries
            .iter()
            .map(|e| JsonEntry {
                rank: e.rank,
                model: cube(&e.model),
                owner: e.owner.clone(),
                reference: e.reference,
                status: e.status.as_str(),
                datasets: e.datasets,
                metrics: e
                    .metrics
                    .iter()
                    .map(|(k, s)| {
                        let s = JsonSummary {
                            mean: s.mean,
                            sd: s.sd,
                            min: s.min,
                            max: s.max,
                            n: s.n,
                        };
                        (k.clone(), s)
                    })
                    .collect(),
                totals: e.totals.clone(),
                cells: e
                    .cells
                    .iter()
                    .map(|c| JsonCell {
                        dataset: c.dataset.clone(),
                        metrics: c.metrics.clone(),
                        result: c.result.clone(),
                    })
                    .collect(),
                failures: e
                    .failures
                    .iter()
                    .map(|f| JsonFailure {
                        dataset: f.dataset.clone(),
                        stage: f.stage.clone(),
                        exit_code: f.exit_code,
                        reason: f.reason.clone(),
                        result: f.result.clone(),
                    })
                    .collect(),
            })
            .collect(),
        results: lb
            .results
            .iter()
            .map(|c| JsonCovered {
                path: c.path.clone(),
                sha256: c.sha256.to_string(),
            })
            .collect(),
        inputs: lb.inputs.iter().map(|d| d.to_string()).collect(),
        excluded: lb
            .excluded
            .iter()
            .map(|x| JsonExcluded {
                path: x.path.clone(),
                sha256: x.sha256.to_string(),
                reason: x.reason.as_str(),
            })
            .collect(),
    }
}

/// Writes the release as pretty-printed JSON with a trailing newline.
pub fn write(lb: &Leaderboard, w: &mut dyn Write) -> Result<(), ReportError> {
    serde_json::to_writer_pretty(&mut *w, &from_record(lb))?;
    writeln!(w)?;
    Ok(())
}
