//! Results release: the committee's sharing policy applied to decrypted results (aggregation,
//! ranks, pseudonyms), and every way a release is shown (terminal table, Markdown, JSON, CSV,
//! history, the static HTML site). Pure functions over records: no terminal, no environment,
//! no registry access; the workflow decrypts and signs, this module computes and renders.
//!
//! # Public API
//!
//! Building a release (the committee, `cohort result release`):
//! - [`ResultInput`], [`Outcome`]: one decrypted result or failure receipt, with the policy the
//!   benchmark version it was submitted under carried.
//! - [`aggregate()`]`(bench, policy, inputs) -> Vec<Entry>`: the entries of a release
//!   (docs/aggregation.md has every rule).
//! - [`covered`]`(inputs) -> Vec<Covered>`: the manifests a release covers (the newest result of
//!   each model version on each dataset), sorted by path.
//! - [`release_record`]`(ReleaseMeta, policy, entries, covered) -> Leaderboard`: the record to
//!   sign; [`release`] does all three steps at once.
//!
//! Showing a release (anyone, `cohort leaderboard`):
//! - [`render::table::write`], [`render::markdown::write`], [`render::json::write`]
//!   (own output structs, [`render::json::JsonLeaderboard`]), [`render::csv::write`]: each
//!   takes a [`Leaderboard`] and a `&mut dyn Write`.
//! - [`history()`]`(&[Leaderboard]) -> History`: rank and primary-metric changes between
//!   consecutive releases; [`History::write_text`], [`History::write_markdown`], and it
//!   serializes to JSON as is.
//! - [`write_site`]`(&SiteInput, out_dir) -> Vec<PathBuf>`: the static site (docs/site.md),
//!   built from [`SiteInput`] / [`BenchmarkPage`] / [`ReleaseInfo`];
//!   [`render::html::benchmark_page`] and [`render::html::index_page`] return one page's bytes.
//!
//! Errors: [`ReportError`], whose messages name the result, release or file concerned.

pub mod aggregate;
pub mod history;
pub mod render;
pub mod site;
mod stats;
#[cfg(test)]
mod testdata;

use std::path::PathBuf;

pub use aggregate::{
    Outcome, ReleaseMeta, ResultInput, Unlinking, aggregate, aggregate_in, covered, datasets_used,
    release, release_in, release_record,
};
pub use history::{Change, ChangeKind, History, HistoryStep, history};
pub use site::{BenchmarkPage, ReleaseInfo, SiteInput, write_site};

use crate::model::Leaderboard;

/// Decimal places every released float is rounded to (docs/aggregation.md, "Determinism").
pub const DECIMALS: i32 = 6;

/// A value as a release shows it: rounded to [`DECIMALS`] places, `-0` as `0`.
pub fn round(x: f64) -> f64 {
    stats::round(x)
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{path}: a result path must end in `/<number>.toml`")]
    ResultPath { path: String },
    #[error(
        "{first} and {second} are both result {number} of model {model} on dataset {dataset}; \
         a release needs one newest result per model and dataset"
    )]
    Ambiguous {
        first: String,
        second: String,
        number: u32,
        model: String,
        dataset: String,
    },
    #[error(
        "{path}: was submitted under a narrower policy than this release applies: the release {why}"
    )]
    NarrowerPolicy { path: String, why: String },
    #[error(
        "{path}: has no usable `n` metric (a positive number of cases), which `weighting = \"size\"` needs as the dataset's weight"
    )]
    MissingWeight { path: String },
    #[error(
        "{} successful result(s) report no `{metric}`, the benchmark's primary metric: {}{}",
        paths.len(),
        paths.join(", "),
        if reported.is_empty() { String::new() } else { format!(" (they report {})", reported.join(", ")) }
    )]
    MissingPrimary {
        /// Every selected successful result without it, sorted.
        paths: Vec<String>,
        metric: String,
        /// What those results report instead, sorted.
        reported: Vec<String>,
    },
    #[error(
        "the primary metric `{metric}` counts cases (a size metric): a weight ranks nothing; the benchmark needs a new version ranked by another metric"
    )]
    PrimaryIsSize { metric: String },
    #[error("{path}: metric `{metric}` is not a finite number")]
    NotFinite { path: String, metric: String },
    #[error("pseudonyms: {0}")]
    Pseudonyms(String),
    #[error("history: {0}")]
    History(String),
    #[error("site: {0}")]
    Site(String),
    #[error("{path}: {}", crate::storage::plain_io(.source))]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("writing the output: {0}")]
    Io(#[from] std::io::Error),
    #[error("writing JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// The label of a release in messages and pages: `<bench> v<version> release <n>`.
pub fn release_label(lb: &Leaderboard) -> String {
    format!(
        "{} v{} release {}",
        lb.benchmark.name, lb.benchmark.version, lb.number
    )
}
