//! Renderers of a leaderboard release: one file per format, all reading the signed record and
//! writing to a `&mut dyn Write` (or returning bytes), plus the wording they share so every
//! format describes a policy the same way.

pub mod csv;
pub mod html;
pub mod json;
pub mod markdown;
pub mod table;

use std::collections::BTreeSet;

use crate::model::{
    CubeRef, DatasetNaming, Entry, EntryStatus, Leaderboard, MetricSummary, Policy, Ranking,
    Weighting,
};

use super::aggregate::release_name;

/// `name vN`, how every renderer names a model version.
pub fn model_label(m: &CubeRef) -> String {
    format!("{} v{}", m.name, m.version)
}

/// A value for people: whole numbers without decimals, others with 3 (the record and the
/// JSON/CSV outputs keep all 6).
pub fn value(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
}

/// Registry text for a terminal or a text file: control characters (escape sequences, new
/// lines) become U+FFFD, so a hostile name cannot rewrite the screen or forge extra lines.
pub fn plain(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect()
}

/// `mean ± sd`, or the mean alone when the release shows no spread.
pub fn mean_sd(s: &MetricSummary) -> String {
    match s.sd {
        Some(sd) => format!("{} ± {}", value(s.mean), value(sd)),
        None => value(s.mean),
    }
}

/// The metrics a release shows: the primary metric first, then the others by name.
pub fn metric_names(lb: &Leaderboard) -> Vec<String> {
    let others: BTreeSet<&String> = lb
        .entries
        .iter()
        .flat_map(|e| e.metrics.keys())
        .filter(|k| **k != lb.policy.primary_metric)
        .collect();
    std::iter::once(lb.policy.primary_metric.clone())
        .chain(others.into_iter().cloned())
        .collect()
}

/// Sort key that puts `site-2` before `site-10` and names alphabetically.
fn label_key(label: &str) -> (u8, u64, String) {
    match crate::model::pseudonyms::parse_label(label) {
        Some(n) => (0, n as u64, String::new()),
        None => (1, 0, label.to_string()),
    }
}

/// Every dataset label the release mentions (cells and failure receipts), in display order.
pub fn dataset_labels(lb: &Leaderboard) -> Vec<String> {
    let set: BTreeSet<&String> = lb
        .entries
        .iter()
        .flat_map(|e| {
            e.cells
                .iter()
                .map(|c| &c.dataset)
                .chain(e.failures.iter().filter_map(|f| f.dataset.as_ref()))
        })
        .collect();
    let mut v: Vec<String> = set.into_iter().cloned().collect();
    v.sort_by_key(|l| label_key(l));
    v
}

/// How many datasets a release covers: its `datasets` count when pseudonymised, else the
/// distinct dataset ids among the covered manifests (`results/<bench>/<dataset>/<model>/<n>.toml`).
pub fn covered_datasets(lb: &Leaderboard) -> usize {
    if let Some(n) = lb.datasets {
        return n as usize;
    }
    lb.results
        .iter()
        .filter_map(|c| c.path.split('/').nth(2))
        .collect::<BTreeSet<_>>()
        .len()
}

/// Where a failure receipt happened, as shown: its dataset label, or (pseudonymised releases,
/// whose receipts carry no label) "a dataset".
pub fn failure_dataset(f: &crate::model::FailureNote) -> &str {
    f.dataset.as_deref().unwrap_or("a dataset")
}

/// The rank column: the rank, or `–` for an unranked model.
pub fn rank_text(e: &Entry) -> String {
    e.rank.map_or_else(|| "–".to_string(), |r| r.to_string())
}

/// What an unranked entry's metric columns say instead of values.
pub fn below_minimum_text(e: &Entry, policy: &Policy) -> String {
    format!(
        "below minimum ({} of {} datasets)",
        e.datasets,
        policy.min_datasets.max(1)
    )
}

pub fn ranking_text(r: Ranking) -> &'static str {
    match r {
        Ranking::HigherIsBetter => "higher is better",
        Ranking::LowerIsBetter => "lower is better",
    }
}

/// One line describing the policy, shared by the table and Markdown renderers.
pub fn policy_line(p: &Policy) -> String {
    let names = match p.dataset_names {
        DatasetNaming::Shown => "dataset names shown",
        DatasetNaming::Pseudonymised => "dataset names pseudonymised",
    };
    let weights = match p.weighting {
        Weighting::Equal => "datasets weighted equally",
        Weighting::Size => "datasets weighted by size (n)",
    };
    format!(
        "{} release · {names} · ranked models need ≥ {} dataset(s) · ranked by {} ({}) · {weights}",
        release_name(p.release),
        p.min_datasets.max(1),
        p.primary_metric,
        ranking_text(p.ranking),
    )
}

/// Whether an entry is ranked and shows values.
pub fn is_listed(e: &Entry) -> bool {
    e.status == EntryStatus::Listed
}

/// `model` and `dataset` of a result path (`results/<bench>/<dataset>/<model>/<n>.toml`).
pub fn result_parts(path: &str) -> Option<(&str, &str)> {
    let mut it = path.split('/');
    match (it.next(), it.next(), it.next(), it.next()) {
        (Some("results"), Some(_), Some(dataset), Some(model)) => Some((model, dataset)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_read_well() {
        assert_eq!(value(210.0), "210");
        assert_eq!(value(0.792122), "0.792");
        assert_eq!(value(-0.5), "-0.500");
        let mut labels = vec!["site-10", "site-2", "alpha", "site-1"];
        labels.sort_by_key(|l| label_key(l));
        assert_eq!(labels, ["site-1", "site-2", "site-10", "alpha"]);
    }
}

#[cfg(test)]
mod snapshot_tests;
