//! Leaderboard releases: committee threshold, covered results and the sharing policy; the
//! inputs, pseudonyms and exclusions are checked in `release/inputs.rs`.

use std::collections::BTreeSet;

use crate::model::{self, Record, Release};

use super::super::Rule;
use super::super::verify::{Ctx, Verdict};
use super::*;

mod inputs;

pub(super) fn check_leaderboard(ctx: &Ctx, path: &str, v: &mut Verdict) {
    let Some(Record::Leaderboard(l)) = ctx.ix.record(path) else {
        return;
    };
    let t = ctx.intro(path);
    numbered(
        path,
        ctx.ix.leaderboards.get(&l.benchmark.name),
        l.number,
        v,
    );
    let Some(b) = bench_ok(ctx, path, &l.benchmark, t, v) else {
        return;
    };
    let good = ctx.signatures(path, v, &|signer, st| {
        if !b.committee.iter().any(|m| m == signer) {
            return Err(format!(
                "{signer} is not on the committee of {}; releases are signed by the committee",
                b.name
            ));
        }
        ctx.key_at(signer, st)
            .ok_or_else(|| format!("{signer} has no valid key"))
    });
    if !good.contains(&l.by) {
        v.fail(
            path,
            Rule::Signature,
            format!("has no valid signature by {}, who made it", l.by),
        );
    }
    let people = good.people(&|_| true);
    if people < b.release_threshold as usize {
        v.fail(
            path,
            Rule::Approval,
            format!(
                "has {people} committee signature(s) by distinct people and keys; the release threshold is {}",
                b.release_threshold
            ),
        );
    }
    if l.policy != b.policy {
        v.fail(
            path,
            Rule::Reference,
            format!(
                "applies a policy that differs from benchmark {} v{}'s",
                b.name, b.version
            ),
        );
    }
    let Some(covered) = inputs::covered(ctx, path, l, t, v) else {
        return;
    };
    inputs::check_layout(ctx, path, l, b, &covered, t, v);
    let covered_paths: BTreeSet<&str> = covered.iter().map(|c| c.path.as_str()).collect();
    for e in &l.entries {
        // A model below the minimum shows no number at all (one site's values could be read off).
        if e.status == model::EntryStatus::BelowMinimum
            && (!e.metrics.is_empty() || !e.cells.is_empty() || e.rank.is_some())
        {
            v.fail(path, Rule::Sealed, format!("shows values or a rank for {}, which is below the policy's minimum of datasets", e.model.name));
        }
        if e.status == model::EntryStatus::Listed && e.datasets < l.policy.min_datasets {
            v.fail(
                path,
                Rule::Sealed,
                format!(
                    "lists {} with {} dataset(s); the policy's minimum is {}",
                    e.model.name, e.datasets, l.policy.min_datasets
                ),
            );
        }
        if l.policy.release == Release::Aggregate
            && e.metrics
                .values()
                .any(|m| m.sd.is_some() || m.min.is_some() || m.max.is_some())
        {
            v.fail(
                path,
                Rule::Sealed,
                format!(
                    "shows a spread for {} under an aggregate policy (one number per model)",
                    e.model.name
                ),
            );
        }
        for f in &e.failures {
            if let Some(r) = &f.result
                && !covered_paths.contains(r.as_str())
            {
                v.fail(
                    path,
                    Rule::Reference,
                    format!("shows a failure receipt from {r}, which it does not cover"),
                );
            }
        }
        let cells_allowed = l.policy.release == Release::CrossProduct;
        if !e.cells.is_empty() && !cells_allowed {
            v.fail(
                path,
                Rule::Sealed,
                format!(
                    "shows per-dataset cells for {} but the policy releases {:?}",
                    e.model.name, l.policy.release
                ),
            );
        }
        if l.policy.release == Release::Aggregate
            && e.metrics.keys().any(|k| k != &l.policy.primary_metric)
        {
            v.fail(
                path,
                Rule::Sealed,
                format!(
                    "shows metrics beyond {} for {} under an aggregate policy",
                    l.policy.primary_metric, e.model.name
                ),
            );
        }
        sizes(path, l, e, v);
        for cell in &e.cells {
            if let Some(r) = &cell.result
                && !covered_paths.contains(r.as_str())
            {
                v.fail(
                    path,
                    Rule::Reference,
                    format!("shows a cell from {r}, which it does not cover"),
                );
            }
        }
    }
}

/// Size metrics (docs/format.md, layout 3): a total per listed model of a release that shows
/// more than the primary metric, never a summary; older layouts have no totals at all.
fn sizes(path: &str, l: &model::Leaderboard, e: &model::Entry, v: &mut Verdict) {
    for (rule, message) in size_problems(l, e) {
        v.fail(path, rule, message);
    }
}

fn size_problems(l: &model::Leaderboard, e: &model::Entry) -> Vec<(Rule, String)> {
    let mut out = Vec::new();
    if !l.has_totals() {
        if !e.totals.is_empty() {
            out.push((
                Rule::Reference,
                format!(
                    "shows totals for {} without `layout = {}`",
                    e.model.name,
                    model::LAYOUT_TOTALS
                ),
            ));
        }
        return out;
    }
    if let Some(m) = e.metrics.keys().find(|m| l.policy.is_size_metric(m)) {
        out.push((
            Rule::Sealed,
            format!(
                "summarises {m} for {}, a size metric: layout {} shows it as a total",
                e.model.name,
                model::LAYOUT_TOTALS
            ),
        ));
    }
    if let Some(m) = e.totals.keys().find(|m| !l.policy.is_size_metric(m)) {
        out.push((
            Rule::Sealed,
            format!(
                "shows a total of {m} for {}, which is no size metric",
                e.model.name
            ),
        ));
    }
    if !e.totals.is_empty()
        && (e.status != model::EntryStatus::Listed || l.policy.release == Release::Aggregate)
    {
        out.push((
            Rule::Sealed,
            format!(
                "shows totals for {}, which its status or the aggregate policy keeps to no numbers beyond the primary metric",
                e.model.name
            ),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release(layout: Option<u32>, release: &str, entry: &str) -> model::Leaderboard {
        let text = format!(
            "format = 1\nkind = \"leaderboard\"\n{}number = 1\ncreated = \"2026-12-06T00:00:00Z\"\nby = \"carol\"\n\
             [benchmark]\nname = \"heart\"\nversion = 1\nsha256 = \"ab9b0a56f51756f59da73b9ce06c5ae930b42f8bf6dbb612f740e6c6a770a53b\"\n\
             [policy]\nrelease = \"{release}\"\ndataset_names = \"shown\"\nmin_datasets = 1\nprimary_metric = \"auc\"\nranking = \"higher-is-better\"\nweighting = \"equal\"\nsize_metrics = [\"cases\"]\n\
             [[entries]]\nowner = \"carol\"\ndatasets = 2\nstatus = \"listed\"\n\
             [entries.model]\nname = \"m\"\nversion = 1\nsha256 = \"6e4086f9a904d26401ffb37e0fdc3f784ff0e95eb9d232a1d33e6dae6a0c1229\"\n{entry}",
            layout
                .map(|n| format!("layout = {n}\n"))
                .unwrap_or_default()
        );
        toml::from_str(&text).unwrap()
    }

    fn problems(l: &model::Leaderboard) -> Vec<String> {
        size_problems(l, &l.entries[0])
            .into_iter()
            .map(|(_, m)| m)
            .collect()
    }

    #[test]
    fn size_metrics_are_totals_in_layout_3_only() {
        let auc = "[entries.metrics.auc]\nmean = 0.7\nn = 2\n";
        let n = "[entries.metrics.n]\nmean = 210.0\nn = 2\n";
        let totals = "[entries.totals]\nn = 420.0\ncases = 12.0\n";
        // Layout 3: totals, never summaries of a count.
        assert!(problems(&release(Some(3), "per-model", &format!("{auc}{totals}"))).is_empty());
        let p = problems(&release(Some(3), "per-model", &format!("{auc}{n}")));
        assert!(p[0].contains("summarises n"), "{p:?}");
        let p = problems(&release(
            Some(3),
            "per-model",
            &format!("{auc}[entries.totals]\nauc = 3.0\n"),
        ));
        assert!(p[0].contains("no size metric"), "{p:?}");
        let p = problems(&release(Some(3), "aggregate", &format!("{auc}{totals}")));
        assert!(p[0].contains("aggregate"), "{p:?}");
        // Layout 2 (and 1): `n` summarised as it always was; no totals.
        assert!(problems(&release(Some(2), "per-model", &format!("{auc}{n}"))).is_empty());
        assert!(problems(&release(None, "per-model", &format!("{auc}{n}"))).is_empty());
        let p = problems(&release(Some(2), "per-model", &format!("{auc}{totals}")));
        assert!(p[0].contains("without `layout = 3`"), "{p:?}");
    }
}
