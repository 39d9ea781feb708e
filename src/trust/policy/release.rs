//! Leaderboard releases: committee threshold, covered results and the sharing policy.

use std::collections::BTreeSet;

use crate::model::{self, Record, Release};

use super::super::Rule;
use super::super::verify::{Ctx, Verdict};
use super::*;

/// How much a policy shows; a release may not show more than any covered result agreed to.
pub(super) fn wider(release: &model::Policy, agreed: &model::Policy) -> Option<String> {
    if release.release > agreed.release {
        return Some(format!(
            "shows {:?} but the result was submitted under {:?}",
            release.release, agreed.release
        ));
    }
    if release.dataset_names == model::DatasetNaming::Shown
        && agreed.dataset_names == model::DatasetNaming::Pseudonymised
    {
        return Some(
            "shows dataset names but the result was submitted under pseudonymised names".into(),
        );
    }
    if release.min_datasets < agreed.min_datasets {
        return Some(format!(
            "lists models with {} dataset(s); the result was submitted under a minimum of {}",
            release.min_datasets, agreed.min_datasets
        ));
    }
    None
}

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
    if good.len() < b.release_threshold as usize {
        v.fail(
            path,
            Rule::Approval,
            format!(
                "has {} committee signature(s); the release threshold is {}",
                good.len(),
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
    let covered: BTreeSet<&str> = l.results.iter().map(|c| c.path.as_str()).collect();
    for c in &l.results {
        if ctx.ix.sha(&c.path) != Some(&c.sha256) {
            v.fail(
                path,
                Rule::Reference,
                format!("covers {} with a sha256 that does not match", c.path),
            );
            continue;
        }
        if !ctx.is_valid(&c.path) || ctx.intro(&c.path) > t {
            v.fail(
                path,
                Rule::Reference,
                format!(
                    "covers {}, which is not a valid result (unapproved association?)",
                    c.path
                ),
            );
            continue;
        }
        if let Some(Record::Result(r)) = ctx.ix.record(&c.path) {
            if r.benchmark.name != b.name {
                v.fail(
                    path,
                    Rule::Reference,
                    format!("covers {}, a result of another benchmark", c.path),
                );
            }
            if let Some((_, agreed)) = ctx.ix.benchmark(&r.benchmark.name, r.benchmark.version)
                && let Some(why) = wider(&l.policy, &agreed.policy)
            {
                v.fail(path, Rule::Sealed, format!("{why} ({})", c.path));
            }
        }
    }
    for e in &l.entries {
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
        for cell in &e.cells {
            if !covered.contains(cell.result.as_str()) {
                v.fail(
                    path,
                    Rule::Reference,
                    format!("shows a cell from {}, which it does not cover", cell.result),
                );
            }
            if l.policy.dataset_names == model::DatasetNaming::Pseudonymised
                && !cell.dataset.starts_with("site-")
            {
                v.fail(
                    path,
                    Rule::Sealed,
                    format!(
                        "names dataset `{}` although the policy pseudonymises names",
                        cell.dataset
                    ),
                );
            }
        }
    }
}
