//! What a release covers, checked exactly and in public: its result manifests (by path, or,
//! in a pseudonymised layout-2 release, by a sorted set of digests that names no dataset next
//! to a pseudonym), the counts and failure receipts its entries claim from them, its
//! pseudonyms (exact `site-<k>` labels, the mapping sealed to the committee) and what it left
//! out. Which dataset stands behind which pseudonym only a committee member can check
//! (`cohort leaderboard B --check`).

use std::collections::{BTreeMap, BTreeSet};

use crate::model::{
    self, CubeRef, DatasetNaming, ExclusionReason, LAYOUT_UNLINKED, LEADERBOARD_LAYOUT,
    Leaderboard, Record, ResultManifest, ResultStatus, Sha256, pseudonyms::parse_label,
};

use super::super::super::Rule;
use super::super::super::verify::{Ctx, Verdict};
use super::super::data::{age_key_at, check_sealed};

/// One covered result manifest on main.
pub(super) struct CoveredResult<'a> {
    pub path: String,
    pub r: &'a ResultManifest,
}

/// Resolves the manifests `l` covers and checks each is a valid result of its benchmark that
/// agreed to the release's policy. `None` when the release mixes both ways of listing them.
pub(super) fn covered<'a>(
    ctx: &Ctx<'a>,
    path: &str,
    l: &Leaderboard,
    t: usize,
    v: &mut Verdict,
) -> Option<Vec<CoveredResult<'a>>> {
    if !l.results.is_empty() && !l.inputs.is_empty() {
        v.fail(
            path,
            Rule::Reference,
            "lists its results both by path and by digest (`inputs`); a release uses one",
        );
        return None;
    }
    let mut listed: Vec<(String, Sha256)> = Vec::new();
    if l.results.is_empty() {
        if !l.inputs.windows(2).all(|w| w[0] < w[1]) {
            v.fail(
                path,
                Rule::Reference,
                "`inputs` must be sorted and name each digest once",
            );
        }
        // Digest -> path over this benchmark's results on main.
        let by_sha: BTreeMap<&Sha256, &String> = ctx
            .ix
            .results
            .of_first(&l.benchmark.name)
            .flat_map(|(_, m)| m.values())
            .filter_map(|p| ctx.ix.sha(p).map(|s| (s, p)))
            .collect();
        for d in &l.inputs {
            match by_sha.get(d) {
                Some(p) => listed.push(((*p).clone(), d.clone())),
                None => v.fail(
                    path,
                    Rule::Reference,
                    format!(
                        "lists input {d}, which is no result manifest of {} on main",
                        l.benchmark.name
                    ),
                ),
            }
        }
    } else {
        listed = l
            .results
            .iter()
            .map(|c| (c.path.clone(), c.sha256.clone()))
            .collect();
    }
    let mut out = Vec::new();
    for (p, sha) in listed {
        if ctx.ix.sha(&p) != Some(&sha) {
            v.fail(
                path,
                Rule::Reference,
                format!("covers {p} with a sha256 that does not match"),
            );
            continue;
        }
        if !ctx.is_valid(&p) || ctx.intro(&p) > t {
            v.fail(
                path,
                Rule::Reference,
                format!("covers {p}, which is not a valid result (unapproved association?)"),
            );
            continue;
        }
        let Some(Record::Result(r)) = ctx.ix.record(&p) else {
            continue;
        };
        if r.benchmark.name != l.benchmark.name {
            v.fail(
                path,
                Rule::Reference,
                format!("covers {p}, a result of another benchmark"),
            );
            continue;
        }
        if let Some((_, agreed)) = ctx.ix.benchmark(&r.benchmark.name, r.benchmark.version)
            && let Some(why) = l.policy.exceeds(&agreed.policy)
        {
            v.fail(path, Rule::Sealed, format!("{why} ({p})"));
        }
        out.push(CoveredResult { path: p, r });
    }
    Some(out)
}

/// The layout's rules, the counts the entries claim, the pseudonyms and the exclusions.
pub(super) fn check_layout(
    ctx: &Ctx,
    path: &str,
    l: &Leaderboard,
    b: &model::Benchmark,
    covered: &[CoveredResult],
    t: usize,
    v: &mut Verdict,
) {
    let pseudonymised = l.policy.dataset_names == DatasetNaming::Pseudonymised;
    match l.layout {
        None => legacy(path, l, covered, v),
        Some(LAYOUT_UNLINKED..=LEADERBOARD_LAYOUT) if pseudonymised => {
            unlinked(ctx, path, l, b, covered, t, v)
        }
        Some(LAYOUT_UNLINKED..=LEADERBOARD_LAYOUT) => {
            if !l.inputs.is_empty() || l.pseudonyms.is_some() || l.datasets.is_some() {
                v.fail(
                    path,
                    Rule::Reference,
                    "shows dataset names but carries pseudonym fields (`inputs`, `pseudonyms`, `datasets`)",
                );
            }
            named_cells(path, l, v);
        }
        Some(n) => {
            v.fail(path, Rule::Reference, format!("has unknown layout {n}"));
            return;
        }
    }
    counts(path, l, covered, v);
    exclusions(ctx, path, l, covered, t, v);
}

/// Cells and receipts that name their dataset and manifest (every layout-1 release, and
/// layout 2 when names are shown).
fn named_cells(path: &str, l: &Leaderboard, v: &mut Verdict) {
    for e in &l.entries {
        if e.cells.iter().any(|c| c.result.is_none())
            || e.failures
                .iter()
                .any(|f| f.result.is_none() || f.dataset.is_none())
        {
            v.fail(
                path,
                Rule::Reference,
                format!(
                    "shows a cell or failure receipt of {} without its dataset and manifest",
                    e.model.name
                ),
            );
        }
    }
}

/// Releases made before pseudonyms were unlinked: still valid, and still linkable. Their
/// pseudonyms are checked exactly: `site-<k>` is the k-th of the covered dataset ids, sorted.
fn legacy(path: &str, l: &Leaderboard, covered: &[CoveredResult], v: &mut Verdict) {
    if !l.inputs.is_empty()
        || l.pseudonyms.is_some()
        || l.datasets.is_some()
        || !l.excluded.is_empty()
    {
        v.fail(
            path,
            Rule::Reference,
            "carries layout-2 fields (`inputs`, `pseudonyms`, `datasets`, `excluded`) without `layout = 2`",
        );
    }
    named_cells(path, l, v);
    if l.policy.dataset_names != DatasetNaming::Pseudonymised {
        return;
    }
    let dataset_of: BTreeMap<&str, &str> = covered
        .iter()
        .map(|c| (c.path.as_str(), c.r.dataset.id.as_str()))
        .collect();
    for message in legacy_labels(l, &dataset_of) {
        v.fail(path, Rule::Sealed, message);
    }
}

/// The layout-1 rule, exactly: `site-<k>` is the k-th of the covered dataset ids, sorted
/// (`dataset_of`: covered manifest path -> dataset id).
fn legacy_labels(l: &Leaderboard, dataset_of: &BTreeMap<&str, &str>) -> Vec<String> {
    let ids: BTreeSet<&str> = dataset_of.values().copied().collect();
    let label_of: BTreeMap<&str, String> = ids
        .iter()
        .enumerate()
        .map(|(k, id)| (*id, model::pseudonyms::label(k as u32 + 1)))
        .collect();
    let mut out = Vec::new();
    for e in &l.entries {
        let shown = e
            .cells
            .iter()
            .map(|c| (c.dataset.as_str(), c.result.as_deref()))
            .chain(
                e.failures
                    .iter()
                    .map(|f| (f.dataset.as_deref().unwrap_or(""), f.result.as_deref())),
            );
        for (label, result) in shown {
            let want = result
                .and_then(|r| dataset_of.get(r))
                .and_then(|id| label_of.get(id));
            if let Some(want) = want
                && want != label
            {
                out.push(format!(
                    "names dataset `{}` for {}, where the policy's pseudonym is {want}",
                    label.escape_default(),
                    e.model.name
                ));
            }
        }
    }
    out
}

/// A pseudonymised layout-2 release: no manifest path next to a pseudonym, exact labels
/// `site-1..site-<datasets>`, and the mapping sealed to the committee at this commit.
fn unlinked(
    ctx: &Ctx,
    path: &str,
    l: &Leaderboard,
    b: &model::Benchmark,
    covered: &[CoveredResult],
    t: usize,
    v: &mut Verdict,
) {
    if !l.results.is_empty() {
        v.fail(
            path,
            Rule::Sealed,
            "lists result manifests by path under a pseudonymised policy; it lists digests (`inputs`)",
        );
    }
    let datasets = covered
        .iter()
        .map(|c| c.r.dataset.id.as_str())
        .collect::<BTreeSet<_>>()
        .len() as u32;
    if l.datasets != Some(datasets) {
        v.fail(
            path,
            Rule::Reference,
            format!(
                "says it uses {} dataset(s); its inputs come from {datasets}",
                l.datasets
                    .map(|n| n.to_string())
                    .unwrap_or_else(|| "no count of".into())
            ),
        );
    }
    match &l.pseudonyms {
        None => v.fail(
            path,
            Rule::Sealed,
            "has no sealed pseudonym mapping (`pseudonyms`)",
        ),
        Some(sealed) => {
            let committee: BTreeSet<(String, String)> = b
                .committee
                .iter()
                .filter_map(|h| age_key_at(ctx, h, t).map(|a| (h.clone(), a)))
                .collect();
            check_sealed(ctx, path, "pseudonyms", sealed, &committee, v);
        }
    }
    for (rule, message) in unlinked_labels(l, datasets) {
        v.fail(path, rule, message);
    }
}

/// A pseudonymised layout-2 release's cells and receipts: every cell label exactly
/// `site-<k>`, `1 <= k <= datasets`, once per model, with no manifest path; receipts bare.
fn unlinked_labels(l: &Leaderboard, datasets: u32) -> Vec<(Rule, String)> {
    let mut out = Vec::new();
    for e in &l.entries {
        let mut seen = BTreeSet::new();
        for c in &e.cells {
            if c.result.is_some() {
                out.push((
                    Rule::Sealed,
                    format!(
                        "names the result manifest of a cell of {} next to its pseudonym",
                        e.model.name
                    ),
                ));
            }
            match parse_label(&c.dataset) {
                Some(k) if k <= datasets => {
                    if !seen.insert(k) {
                        out.push((
                            Rule::Reference,
                            format!("shows {} twice for {}", c.dataset, e.model.name),
                        ));
                    }
                }
                _ => out.push((
                    Rule::Sealed,
                    format!(
                        "names dataset `{}` for {}; the policy's pseudonyms are site-1..site-{datasets}",
                        c.dataset.escape_default(),
                        e.model.name
                    ),
                )),
            }
        }
        if e.failures
            .iter()
            .any(|f| f.dataset.is_some() || f.result.is_some())
        {
            out.push((
                Rule::Sealed,
                format!(
                    "labels a failure receipt of {}; receipts are public, so a label would link its pseudonym",
                    e.model.name
                ),
            ));
        }
    }
    out
}

type Receipt = (String, Option<i64>, String);

/// The entries say exactly what the covered manifests say in public: one entry per model, its
/// count of successful datasets, its failure receipts, one cell per dataset, and one result
/// per model and dataset.
fn counts(path: &str, l: &Leaderboard, covered: &[CoveredResult], v: &mut Verdict) {
    let mut oks: BTreeMap<&CubeRef, u32> = BTreeMap::new();
    let mut receipts: BTreeMap<&CubeRef, Vec<Receipt>> = BTreeMap::new();
    let mut pairs = BTreeSet::new();
    for c in covered {
        if !pairs.insert((&c.r.model, c.r.dataset.id.as_str())) {
            v.fail(
                path,
                Rule::Reference,
                format!(
                    "covers two results of {} v{} on one dataset; only the newest counts",
                    c.r.model.name, c.r.model.version
                ),
            );
        }
        match (c.r.status, &c.r.failure) {
            (ResultStatus::Ok, _) => *oks.entry(&c.r.model).or_default() += 1,
            (ResultStatus::Failed, Some(f)) => receipts.entry(&c.r.model).or_default().push((
                f.stage.clone(),
                f.exit_code,
                f.reason.clone(),
            )),
            (ResultStatus::Failed, None) => {}
        }
    }
    let mut entries: BTreeSet<&CubeRef> = BTreeSet::new();
    for e in &l.entries {
        if !entries.insert(&e.model) {
            v.fail(
                path,
                Rule::Reference,
                format!("lists {} v{} twice", e.model.name, e.model.version),
            );
        }
        let want = oks.get(&e.model).copied().unwrap_or(0);
        if e.datasets != want {
            v.fail(
                path,
                Rule::Reference,
                format!(
                    "counts {} dataset(s) for {}; its inputs hold {want} successful result(s)",
                    e.datasets, e.model.name
                ),
            );
        }
        let mut shown: Vec<Receipt> = e
            .failures
            .iter()
            .map(|f| (f.stage.clone(), f.exit_code, f.reason.clone()))
            .collect();
        shown.sort();
        let mut want = receipts.get(&e.model).cloned().unwrap_or_default();
        want.sort();
        if shown != want {
            v.fail(
                path,
                Rule::Reference,
                format!(
                    "shows {} failure receipt(s) for {} that do not match the {} it covers",
                    shown.len(),
                    e.model.name,
                    want.len()
                ),
            );
        }
        if e.status == model::EntryStatus::Listed
            && l.policy.release == model::Release::CrossProduct
            && e.cells.len() as u32 != e.datasets
        {
            v.fail(
                path,
                Rule::Reference,
                format!(
                    "shows {} cell(s) for {}, which has {} dataset(s)",
                    e.cells.len(),
                    e.model.name,
                    e.datasets
                ),
            );
        }
    }
    for m in oks.keys().chain(receipts.keys()) {
        if !entries.contains(m) {
            v.fail(
                path,
                Rule::Reference,
                format!(
                    "covers results of {} v{} but has no entry for it",
                    m.name, m.version
                ),
            );
        }
    }
}

/// Exclusions are well-formed: each names a result of this benchmark on main, with its
/// sha256, that the release does not also cover, once; a cryptographic reason needs a sealed
/// payload (only a recipient can check the reason itself); `narrower-policy` must be true.
fn exclusions(
    ctx: &Ctx,
    path: &str,
    l: &Leaderboard,
    covered: &[CoveredResult],
    t: usize,
    v: &mut Verdict,
) {
    if !l.excluded.windows(2).all(|w| w[0].path < w[1].path) {
        v.fail(
            path,
            Rule::Reference,
            "`excluded` must be sorted by path and name each result once",
        );
    }
    let covered: BTreeSet<&str> = covered.iter().map(|c| c.path.as_str()).collect();
    for x in &l.excluded {
        let p = &x.path;
        let r = match ctx.ix.record(p) {
            Some(Record::Result(r))
                if r.benchmark.name == l.benchmark.name && ctx.intro(p) <= t =>
            {
                r
            }
            _ => {
                v.fail(
                    path,
                    Rule::Reference,
                    format!(
                        "excludes {p}, which is no result of {} on main",
                        l.benchmark.name
                    ),
                );
                continue;
            }
        };
        if ctx.ix.sha(p) != Some(&x.sha256) {
            v.fail(
                path,
                Rule::Reference,
                format!("excludes {p} with a sha256 that does not match"),
            );
        }
        if covered.contains(p.as_str()) {
            v.fail(
                path,
                Rule::Reference,
                format!("both covers and excludes {p}"),
            );
        }
        if x.reason.is_cryptographic() && r.sealed.is_none() {
            v.fail(
                path,
                Rule::Reference,
                format!(
                    "excludes {p} as `{}`, but it is a failure receipt with nothing sealed",
                    x.reason
                ),
            );
        }
        if x.reason == ExclusionReason::NarrowerPolicy
            && ctx
                .ix
                .benchmark(&r.benchmark.name, r.benchmark.version)
                .is_none_or(|(_, agreed)| l.policy.exceeds(&agreed.policy).is_none())
        {
            v.fail(
                path,
                Rule::Reference,
                format!(
                    "excludes {p} as `narrower-policy`, but it agreed to this release's policy"
                ),
            );
        }
    }
}

#[cfg(test)]
#[path = "inputs_tests.rs"]
mod tests;
