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

/// The metrics a release shows as scores: the primary metric first, then the others by name.
/// Size metrics are weights, not scores ([`size_names`]): never here, so never charted.
pub fn metric_names(lb: &Leaderboard) -> Vec<String> {
    let others: BTreeSet<&String> = lb
        .entries
        .iter()
        .flat_map(|e| e.metrics.keys())
        .filter(|k| **k != lb.policy.primary_metric && !lb.policy.is_size_metric(k))
        .collect();
    std::iter::once(lb.policy.primary_metric.clone())
        .chain(others.into_iter().cloned())
        .collect()
}

/// The size metrics a release shows (counts of cases, by name): its totals (layout 3), or in
/// older releases the size metrics it summarised like scores.
pub fn size_names(lb: &Leaderboard) -> Vec<String> {
    let names: BTreeSet<&String> = lb
        .entries
        .iter()
        .flat_map(|e| {
            e.totals.keys().chain(
                e.metrics
                    .keys()
                    .filter(|k| !lb.has_totals() && lb.policy.is_size_metric(k)),
            )
        })
        .filter(|k| **k != lb.policy.primary_metric)
        .collect();
    names.into_iter().cloned().collect()
}

/// A size metric's column heading: a total per model, or (releases before layout 3, which
/// averaged it) the mean per dataset.
pub fn size_heading(lb: &Leaderboard, name: &str) -> String {
    if lb.has_totals() {
        format!("{name} (total)")
    } else {
        format!("{name} (mean per dataset)")
    }
}

/// An entry's value of a size metric, as a number ([`size_names`]).
pub fn size_number(lb: &Leaderboard, e: &Entry, name: &str) -> Option<f64> {
    if lb.has_totals() {
        e.totals.get(name).copied()
    } else {
        e.metrics.get(name).map(|s| s.mean)
    }
}

/// An entry's value of a size metric, for people.
pub fn size_value(lb: &Leaderboard, e: &Entry, name: &str) -> String {
    size_number(lb, e, name).map(value).unwrap_or_default()
}

/// Whether two ranked models share a rank, so the "ties share a rank" note has something to
/// explain.
pub fn has_ties(lb: &Leaderboard) -> bool {
    let mut seen = BTreeSet::new();
    lb.entries
        .iter()
        .filter_map(|e| e.rank)
        .any(|r| !seen.insert(r))
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

    fn text(
        f: fn(&Leaderboard, &mut dyn std::io::Write) -> Result<(), crate::report::ReportError>,
        lb: &Leaderboard,
    ) -> String {
        let mut buf = Vec::new();
        f(lb, &mut buf).unwrap();
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn ties_are_explained_only_when_there_is_one() {
        use crate::model::{DatasetNaming as N, Release as R};
        use crate::report::testdata::{fixture_release, policy};
        // Minimum 2: model-good and model-slow tie for 1.
        let tied = fixture_release(&policy(R::PerModel, N::Pseudonymised, 2));
        assert!(has_ties(&tied));
        let mut untied = tied.clone();
        untied.entries.retain(|e| e.model.name != "model-slow");
        assert!(!has_ties(&untied));
        for f in [table::write, markdown::write] {
            assert!(text(f, &tied).contains("Ties share a rank"));
            assert!(!text(f, &untied).contains("Ties share a rank"));
        }
    }

    #[test]
    fn sizes_are_totals_never_scores_whatever_the_layout() {
        use crate::model::{DatasetNaming as N, Release as R};
        use crate::report::testdata::{fixture_release, policy};
        let lb = fixture_release(&policy(R::PerModel, N::Pseudonymised, 2));
        assert!(!metric_names(&lb).contains(&"n".to_string()));
        assert_eq!(size_names(&lb), ["n"]);
        let good = &lb.entries[0];
        assert_eq!(size_value(&lb, good, "n"), "420");
        let t = text(table::write, &lb);
        assert!(t.contains("n (total)") && !t.contains("210 ±"), "{t}");
        // A layout-2 release averaged `n`: shown as what it is, still not as a score.
        let mut old = lb.clone();
        old.layout = Some(2);
        for e in &mut old.entries {
            if let Some(total) = e.totals.remove("n") {
                e.metrics.insert(
                    "n".into(),
                    MetricSummary {
                        mean: total / 2.0,
                        sd: Some(42.426407),
                        min: None,
                        max: None,
                        n: 2,
                    },
                );
            }
        }
        assert!(!metric_names(&old).contains(&"n".to_string()));
        assert_eq!(size_names(&old), ["n"]);
        assert_eq!(size_heading(&old, "n"), "n (mean per dataset)");
        assert_eq!(size_value(&old, &old.entries[0], "n"), "210");
        let html = String::from_utf8(html::benchmark_page(
            &crate::report::testdata::site(&old.policy, vec![old.clone()]),
            &crate::report::testdata::site(&old.policy, vec![old.clone()]).benchmarks[0],
        ))
        .unwrap();
        assert!(!html.contains("<strong>n</strong>"), "no chart of n");
        assert!(html.contains("n (mean per dataset)"));
    }
}

#[cfg(test)]
mod snapshot_tests;
