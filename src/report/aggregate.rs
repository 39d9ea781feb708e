//! From decrypted results to the entries of a leaderboard release, under the committee's
//! sharing policy. Every rule is in docs/aggregation.md; the output depends only on the set of
//! inputs (never their order), so anyone holding the same manifests recomputes the same bytes.

use std::collections::{BTreeMap, BTreeSet};

use crate::model::{
    self, BenchRef, Cell, Covered, CubeRef, DatasetNaming, Entry, EntryStatus, Exclusion, Failure,
    FailureNote, LAYOUT_TOTALS, LEADERBOARD_LAYOUT, Leaderboard, MetricSummary, Policy, Release,
    Sealed, Sha256, Weighting, metrics::Metrics, pseudonyms::Pseudonyms,
};

use super::{ReportError, stats};

/// What a decrypted result says: metrics, or where the run failed.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Ok(Metrics),
    Failed(Failure),
}

/// One result (or failure receipt) of one model on one dataset, as the committee decrypted it.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultInput {
    /// Registry path of the result manifest (`results/<bench>/<dataset>/<model>/<n>.toml`).
    pub path: String,
    /// sha256 of the manifest's bytes.
    pub sha256: Sha256,
    pub model: CubeRef,
    pub model_owner: String,
    pub dataset_id: String,
    pub dataset_name: String,
    pub dataset_owner: String,
    pub outcome: Outcome,
    /// The policy of the benchmark version the result was submitted under: what its data
    /// owner agreed to.
    pub agreed_policy: Policy,
    /// The model is the benchmark's reference model.
    pub is_reference: bool,
}

/// Who makes a release and which one it is.
#[derive(Debug, Clone, PartialEq)]
pub struct ReleaseMeta {
    pub bench: BenchRef,
    /// Release number (`leaderboards/<bench>/<number>.toml`).
    pub number: u32,
    /// RFC 3339 UTC timestamp, chosen by the caller (this module reads no clock).
    pub created: String,
    /// Handle of the committee member making the release.
    pub by: String,
}

/// The number of a result from its path (`.../<n>.toml`).
fn result_number(path: &str) -> Result<u32, ReportError> {
    path.rsplit('/')
        .next()
        .and_then(|f| f.strip_suffix(".toml"))
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| ReportError::ResultPath { path: path.into() })
}

/// The newest result of each model version on each dataset (highest result number), sorted by
/// (model, dataset id). Exact duplicates collapse; two different results with the same
/// number are refused, since neither can be called the newest.
fn select(inputs: &[ResultInput]) -> Result<Vec<&ResultInput>, ReportError> {
    let mut newest: BTreeMap<(&CubeRef, &str), (u32, &ResultInput)> = BTreeMap::new();
    for input in inputs {
        let number = result_number(&input.path)?;
        let key = (&input.model, input.dataset_id.as_str());
        match newest.get(&key) {
            Some((n, _)) if *n > number => {}
            Some((n, old)) if *n == number => {
                if old.path != input.path || old.sha256 != input.sha256 {
                    let (first, second) = if old.path <= input.path {
                        (old.path.clone(), input.path.clone())
                    } else {
                        (input.path.clone(), old.path.clone())
                    };
                    return Err(ReportError::Ambiguous {
                        first,
                        second,
                        number,
                        model: input.model.name.clone(),
                        dataset: input.dataset_id.clone(),
                    });
                }
            }
            _ => {
                newest.insert(key, (number, input));
            }
        }
    }
    Ok(newest.into_values().map(|(_, i)| i).collect())
}

/// Why `release` shows more than a result submitted under `agreed` allows, if it does
/// ([`Policy::exceeds`]).
pub fn narrower(release: &Policy, agreed: &Policy) -> Option<String> {
    release.exceeds(agreed)
}

/// The policy's spelling of a release level (`aggregate`, `per-model`, `cross-product`).
pub fn release_name(r: Release) -> &'static str {
    r.as_str()
}

/// Dataset labels and their display order. Pseudonyms come from the committee's random
/// mapping (`site-k` is shown k-th); never from sorted ids, which anyone could rebuild from the
/// registry. Shown names that collide get the first 8 digits of the id appended.
struct Labels {
    /// dataset id -> (position, label)
    by_id: BTreeMap<String, (usize, String)>,
}

impl Labels {
    fn new(
        policy: &Policy,
        selected: &[&ResultInput],
        pseudonyms: Option<&Pseudonyms>,
    ) -> Result<Labels, ReportError> {
        let mut names: BTreeMap<&str, &str> = BTreeMap::new();
        for i in selected {
            names.insert(&i.dataset_id, &i.dataset_name);
        }
        let mut labelled: Vec<(String, String)> = match (policy.dataset_names, pseudonyms) {
            (DatasetNaming::Pseudonymised, Some(p)) => {
                let numbers = p.numbers();
                let used: BTreeSet<&str> = names.keys().copied().collect();
                if used != p.ids() || numbers.len() != p.sites.len() {
                    return Err(ReportError::Pseudonyms(format!(
                        "the mapping names {} dataset(s), the release uses {}: it must name exactly those",
                        p.sites.len(),
                        used.len()
                    )));
                }
                let mut v: Vec<(u32, String)> = numbers
                    .into_iter()
                    .map(|(id, k)| (k, id.to_string()))
                    .collect();
                v.sort();
                v.into_iter()
                    .map(|(k, id)| (id, model::pseudonyms::label(k)))
                    .collect()
            }
            (DatasetNaming::Pseudonymised, None) => {
                return Err(ReportError::Pseudonyms(
                    "the policy pseudonymises dataset names; a release needs the committee's random mapping".into(),
                ));
            }
            (DatasetNaming::Shown, Some(_)) => {
                return Err(ReportError::Pseudonyms(
                    "the policy shows dataset names; a release under it has no pseudonyms".into(),
                ));
            }
            (DatasetNaming::Shown, None) => {
                let mut count: BTreeMap<&str, usize> = BTreeMap::new();
                for name in names.values() {
                    *count.entry(name).or_default() += 1;
                }
                let mut v: Vec<(String, String)> = names
                    .iter()
                    .map(|(id, name)| {
                        let label = if count[name] > 1 {
                            format!("{name} ({})", &id[..id.len().min(8)])
                        } else {
                            name.to_string()
                        };
                        (id.to_string(), label)
                    })
                    .collect();
                v.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0)));
                v
            }
        };
        let by_id = labelled
            .drain(..)
            .enumerate()
            .map(|(pos, (id, label))| (id, (pos, label)))
            .collect();
        Ok(Labels { by_id })
    }

    fn position(&self, id: &str) -> usize {
        self.by_id[id].0
    }

    fn label(&self, id: &str) -> String {
        self.by_id[id].1.clone()
    }
}

/// Checks one successful result's metrics against the policy; returns its weight.
fn check_ok(policy: &Policy, input: &ResultInput, metrics: &Metrics) -> Result<f64, ReportError> {
    if let Some((name, _)) = metrics.iter().find(|(_, v)| !v.is_finite()) {
        return Err(ReportError::NotFinite {
            path: input.path.clone(),
            metric: name.clone(),
        });
    }
    match policy.weighting {
        Weighting::Equal => Ok(1.0),
        Weighting::Size => metrics
            .get("n")
            .copied()
            .filter(|n| *n > 0.0)
            .ok_or_else(|| ReportError::MissingWeight {
                path: input.path.clone(),
            }),
    }
}

/// The dataset ids a release built from `inputs` uses (successes and failures): what the
/// pseudonym mapping must cover.
pub fn datasets_used(inputs: &[ResultInput]) -> Result<BTreeSet<String>, ReportError> {
    Ok(select(inputs)?
        .into_iter()
        .map(|i| i.dataset_id.clone())
        .collect())
}

/// Every successful result must report the primary metric: all those that do not are named
/// at once (with what they report instead), so the committee fixes them in one go.
fn check_primary(policy: &Policy, selected: &[&ResultInput]) -> Result<(), ReportError> {
    let mut paths = Vec::new();
    let mut reported = BTreeSet::new();
    for input in selected {
        if let Outcome::Ok(m) = &input.outcome
            && !m.contains_key(&policy.primary_metric)
        {
            paths.push(input.path.clone());
            reported.extend(m.keys().cloned());
        }
    }
    if paths.is_empty() {
        return Ok(());
    }
    paths.sort();
    Err(ReportError::MissingPrimary {
        paths,
        metric: policy.primary_metric.clone(),
        reported: reported.into_iter().collect(),
    })
}

/// The entries of a release of `bench` under `policy` (docs/aggregation.md), in the layout
/// cohort writes now. A pseudonymised policy needs the committee's mapping (`pseudonyms`); a
/// policy that shows names, none.
pub fn aggregate(
    bench: &BenchRef,
    policy: &Policy,
    inputs: &[ResultInput],
    pseudonyms: Option<&Pseudonyms>,
) -> Result<Vec<Entry>, ReportError> {
    aggregate_in(LEADERBOARD_LAYOUT, bench, policy, inputs, pseudonyms)
}

/// [`aggregate`] by the rules of `layout`: before layout 3 ([`LAYOUT_TOTALS`]) size metrics
/// are summarised like any other (how older releases were computed, so they still recompute
/// byte for byte); from layout 3 on they are totals.
pub fn aggregate_in(
    layout: u32,
    bench: &BenchRef,
    policy: &Policy,
    inputs: &[ResultInput],
    pseudonyms: Option<&Pseudonyms>,
) -> Result<Vec<Entry>, ReportError> {
    let totals = layout >= LAYOUT_TOTALS;
    if totals && policy.is_size_metric(&policy.primary_metric) {
        return Err(ReportError::PrimaryIsSize {
            metric: policy.primary_metric.clone(),
        });
    }
    let selected = select(inputs)?;
    for input in &selected {
        if let Some(why) = narrower(policy, &input.agreed_policy) {
            return Err(ReportError::NarrowerPolicy {
                path: input.path.clone(),
                why: format!("of {} v{} {why}", bench.name, bench.version),
            });
        }
    }
    check_primary(policy, &selected)?;
    let labels = Labels::new(policy, &selected, pseudonyms)?;
    // With pseudonyms, nothing next to a label may name the dataset: no manifest path on
    // cells, and failure receipts (public on main) carry no label at all.
    let unlinked = pseudonyms.is_some();
    let mut per_model: BTreeMap<&CubeRef, Vec<&ResultInput>> = BTreeMap::new();
    for input in &selected {
        per_model.entry(&input.model).or_default().push(input);
    }
    let min = policy.min_datasets.max(1);
    let mut entries = Vec::with_capacity(per_model.len());
    for (model, mut results) in per_model {
        // Summation follows the dataset order, so the sums (and their rounding) never depend
        // on the order the caller listed the inputs in.
        results.sort_by_key(|i| labels.position(&i.dataset_id));
        let mut oks: Vec<(&ResultInput, &Metrics, f64)> = Vec::new();
        let mut failures = Vec::new();
        for input in &results {
            match &input.outcome {
                Outcome::Ok(m) => oks.push((input, m, check_ok(policy, input, m)?)),
                Outcome::Failed(f) => failures.push(FailureNote {
                    dataset: (!unlinked).then(|| labels.label(&input.dataset_id)),
                    stage: f.stage.clone(),
                    exit_code: f.exit_code,
                    reason: f.reason.clone(),
                    result: (!unlinked).then(|| input.path.clone()),
                }),
            }
        }
        if unlinked {
            // In dataset order they would follow the hidden mapping; by content they say
            // only what the public receipts say.
            failures.sort_by(|a, b| {
                (&a.stage, a.exit_code, &a.reason).cmp(&(&b.stage, b.exit_code, &b.reason))
            });
        }
        let listed = oks.len() as u32 >= min;
        let mut metrics = BTreeMap::new();
        let mut sums = BTreeMap::new();
        let mut cells = Vec::new();
        if listed {
            let names: BTreeSet<&String> = match policy.release {
                Release::Aggregate => BTreeSet::from([&policy.primary_metric]),
                Release::PerModel | Release::CrossProduct => {
                    oks.iter().flat_map(|(_, m, _)| m.keys()).collect()
                }
            };
            for name in names {
                let values: Vec<(f64, f64)> = oks
                    .iter()
                    .filter_map(|(_, m, w)| m.get(name).map(|x| (*x, *w)))
                    .collect();
                // A metric only some datasets report is held to the minimum on its own,
                // or it would show a single site's number.
                if (values.len() as u32) < min {
                    continue;
                }
                if totals && policy.is_size_metric(name) {
                    // A count of cases is a weight: its sum says how much data stands behind
                    // the model's numbers; a mean or spread of it means nothing.
                    let sum: f64 = values.iter().map(|(x, _)| x).sum();
                    sums.insert(name.clone(), stats::round(sum));
                    continue;
                }
                let s = stats::summarize(&values).expect("values is not empty");
                let spread = policy.release != Release::Aggregate;
                metrics.insert(
                    name.clone(),
                    MetricSummary {
                        mean: stats::round(s.mean),
                        sd: s.sd.filter(|_| spread).map(stats::round),
                        min: spread.then(|| stats::round(s.min)),
                        max: spread.then(|| stats::round(s.max)),
                        n: s.n,
                    },
                );
            }
            if policy.release == Release::CrossProduct {
                cells = oks
                    .iter()
                    .map(|(input, m, _)| Cell {
                        dataset: labels.label(&input.dataset_id),
                        metrics: m
                            .iter()
                            .map(|(k, v)| (k.clone(), stats::round(*v)))
                            .collect(),
                        result: (!unlinked).then(|| input.path.clone()),
                    })
                    .collect();
            }
        }
        entries.push(Entry {
            model: model.clone(),
            owner: results[0].model_owner.clone(),
            reference: results.iter().any(|i| i.is_reference),
            rank: None,
            datasets: oks.len() as u32,
            status: if listed {
                EntryStatus::Listed
            } else {
                EntryStatus::BelowMinimum
            },
            metrics,
            totals: sums,
            cells,
            failures,
        });
    }
    rank(policy, &mut entries);
    Ok(entries)
}

/// Ranks listed entries by the rounded mean of the primary metric and sorts all entries:
/// ranked ones by (rank, model name, version, sha256), then the rest by model.
fn rank(policy: &Policy, entries: &mut [Entry]) {
    let listed: Vec<usize> = (0..entries.len())
        .filter(|&i| entries[i].status == EntryStatus::Listed)
        .collect();
    let scores: Vec<f64> = listed
        .iter()
        .map(|&i| entries[i].metrics[&policy.primary_metric].mean)
        .collect();
    for (&i, r) in listed
        .iter()
        .zip(stats::competition_ranks(&scores, policy.ranking))
    {
        entries[i].rank = Some(r);
    }
    entries.sort_by(|a, b| {
        (a.rank.is_none(), a.rank, &a.model).cmp(&(b.rank.is_none(), b.rank, &b.model))
    });
}

/// The manifests a release built from `inputs` covers: the newest result of each model
/// version on each dataset, sorted by path.
pub fn covered(inputs: &[ResultInput]) -> Result<Vec<Covered>, ReportError> {
    let mut v: Vec<Covered> = select(inputs)?
        .into_iter()
        .map(|i| Covered {
            path: i.path.clone(),
            sha256: i.sha256.clone(),
        })
        .collect();
    v.sort();
    Ok(v)
}

/// The committee's pseudonyms for a release: the mapping, and its sealed manifest (what the
/// record signs).
pub struct Unlinking<'a> {
    pub mapping: &'a Pseudonyms,
    pub sealed: Sealed,
}

/// The release record to sign: `entries` from [`aggregate`], `covered` from [`covered`]
/// (sorted here again, so the caller's order never matters). With pseudonyms (the mapping's
/// sealed manifest and how many datasets it maps) the covered manifests are listed only as a
/// sorted set of digests.
pub fn release_record(
    meta: &ReleaseMeta,
    policy: &Policy,
    entries: Vec<Entry>,
    covered: Vec<Covered>,
    pseudonyms: Option<(Sealed, u32)>,
    excluded: Vec<Exclusion>,
) -> Leaderboard {
    record_in(
        LEADERBOARD_LAYOUT,
        meta,
        policy,
        entries,
        covered,
        pseudonyms,
        excluded,
    )
}

/// [`release_record`] in `layout` (2 or later: layout 1 had no `layout` field and is never
/// written again).
fn record_in(
    layout: u32,
    meta: &ReleaseMeta,
    policy: &Policy,
    entries: Vec<Entry>,
    mut covered: Vec<Covered>,
    pseudonyms: Option<(Sealed, u32)>,
    mut excluded: Vec<Exclusion>,
) -> Leaderboard {
    covered.sort();
    covered.dedup();
    excluded.sort();
    excluded.dedup();
    let (results, inputs) = if pseudonyms.is_some() {
        let mut digests: Vec<Sha256> = covered.into_iter().map(|c| c.sha256).collect();
        digests.sort();
        digests.dedup();
        (Vec::new(), digests)
    } else {
        (covered, Vec::new())
    };
    Leaderboard {
        format: model::FORMAT_VERSION,
        kind: model::Kind::Leaderboard.as_str().into(),
        layout: Some(layout),
        number: meta.number,
        benchmark: meta.bench.clone(),
        created: meta.created.clone(),
        by: meta.by.clone(),
        policy: policy.clone(),
        results,
        inputs,
        datasets: pseudonyms.as_ref().map(|(_, n)| *n),
        pseudonyms: pseudonyms.map(|(s, _)| s),
        excluded,
        entries,
    }
}

/// [`aggregate`], [`covered`] and [`release_record`] in one step.
pub fn release(
    meta: &ReleaseMeta,
    policy: &Policy,
    inputs: &[ResultInput],
    pseudonyms: Option<Unlinking>,
    excluded: Vec<Exclusion>,
) -> Result<Leaderboard, ReportError> {
    release_in(
        LEADERBOARD_LAYOUT,
        meta,
        policy,
        inputs,
        pseudonyms,
        excluded,
    )
}

/// [`release`] by the rules of `layout` (2 or later): how a committee member recomputes an
/// older release to check it byte for byte.
pub fn release_in(
    layout: u32,
    meta: &ReleaseMeta,
    policy: &Policy,
    inputs: &[ResultInput],
    pseudonyms: Option<Unlinking>,
    excluded: Vec<Exclusion>,
) -> Result<Leaderboard, ReportError> {
    let entries = aggregate_in(
        layout,
        &meta.bench,
        policy,
        inputs,
        pseudonyms.as_ref().map(|u| u.mapping),
    )?;
    let covered = covered(inputs)?;
    Ok(record_in(
        layout,
        meta,
        policy,
        entries,
        covered,
        pseudonyms.map(|u| (u.sealed, u.mapping.sites.len() as u32)),
        excluded,
    ))
}

#[cfg(test)]
#[path = "aggregate_tests.rs"]
mod tests;
