//! Releasing results: a committee member decrypts the benchmark's results, aggregates them under
//! the sharing policy (report module), and proposes a leaderboard release signed by the
//! committee's threshold; other members co-sign only after recomputing the same bytes. Plus
//! what anyone needs to show releases: the latest release and the static site's input.

use std::collections::BTreeMap;

use crate::model::{self, Leaderboard, Record, ResultStatus, Sha256, build};
use crate::report::{self, Outcome, ReleaseMeta, ResultInput};
use crate::trust::{Index, Signer, next_number};

use super::benchmarks::approved;
use super::registry_ops::{Landed, Opened, apply_to_main};
use super::results::{open_result, registered};
use super::submission::{SubmissionKind, branch_name, record_file, sign_all};
use super::{Ctx, Result, WorkflowError};

/// What a release proposal did.
pub enum Released {
    /// Merged into main (the threshold is one signature).
    Landed { record: Leaderboard, landed: Landed },
    /// Proposed on a branch for other committee members to co-sign.
    NeedsCosign {
        record: Leaderboard,
        branch: String,
        threshold: u32,
    },
}

/// Results left out of a release, and why.
pub struct Excluded {
    pub path: String,
    pub why: String,
}

/// Decrypts every result of `bench` that `signer` may read and computes the release record.
pub fn compute(
    ix: &Index,
    signer: &Signer,
    bench: &str,
    number: u32,
    created: &str,
    by: &str,
) -> Result<(Leaderboard, Vec<Excluded>)> {
    let (_, b, bref) = approved(ix, bench)?;
    let mut inputs = Vec::new();
    let mut excluded = Vec::new();
    for (path, r) in registered(ix, Some(bench)) {
        let Some((_, agreed)) = ix.benchmark(&r.benchmark.name, r.benchmark.version) else {
            continue;
        };
        if let Some(why) = b.policy.exceeds(&agreed.policy) {
            excluded.push(Excluded { path, why });
            continue;
        }
        let outcome = match r.status {
            ResultStatus::Ok => Outcome::Ok(open_result(ix, &path, signer)?),
            ResultStatus::Failed => Outcome::Failed(r.failure.clone().ok_or_else(|| {
                WorkflowError::Refused(format!("{path}: a failure receipt without `failure`"))
            })?),
        };
        let (dataset_name, dataset_owner) = ix
            .dataset(&r.dataset.id)
            .map(|(_, d)| (d.name.clone(), d.owner.clone()))
            .unwrap_or_default();
        let model_owner = ix
            .cube(&r.model.name, r.model.version)
            .map(|(_, c)| c.owner.clone())
            .unwrap_or_default();
        inputs.push(ResultInput {
            sha256: ix.sha(&path).cloned().expect("indexed"),
            path,
            model: r.model.clone(),
            model_owner,
            dataset_id: r.dataset.id.clone(),
            dataset_name,
            dataset_owner,
            outcome,
            agreed_policy: agreed.policy.clone(),
            is_reference: r.model == b.reference_model,
        });
    }
    if inputs.is_empty() && !excluded.is_empty() {
        return Err(WorkflowError::Refused(format!(
            "every result of {bench} was left out: {} (a wider policy applies only to results submitted under it; sites submit again to be included)",
            excluded
                .iter()
                .map(|e| format!("{} {}", e.path, e.why))
                .collect::<Vec<_>>()
                .join("; ")
        )));
    }
    if inputs.is_empty() {
        return Err(WorkflowError::NotFound(format!(
            "benchmark {bench} has no results on main to release"
        )));
    }
    let meta = ReleaseMeta {
        bench: bref,
        number,
        created: created.to_string(),
        by: by.to_string(),
    };
    let record = report::release(&meta, &b.policy, &inputs)
        .map_err(|e| WorkflowError::Refused(e.to_string()))?;
    Ok((record, excluded))
}

/// `cohort result release`: computes the release and lands it (threshold 1) or proposes it for
/// co-signing.
pub fn release(
    ctx: &Ctx,
    opened: &Opened,
    signer: &Signer,
    bench: &str,
) -> Result<(Released, Vec<Excluded>)> {
    let ix = opened.index()?;
    let (_, b, _) = approved(&ix, bench)?;
    if !b.committee.contains(&signer.handle) {
        return Err(WorkflowError::Refused(format!(
            "{} is not on the {bench} committee ({})",
            signer.handle,
            b.committee.join(", ")
        )));
    }
    let number = next_number(ix.leaderboards.get(bench));
    let (record, excluded) = compute(&ix, signer, bench, number, &ctx.timestamp(), &signer.handle)?;
    if let Some((_, prev)) = latest(&ix, bench)
        && prev.results == record.results
        && prev.entries == record.entries
        && prev.policy == record.policy
    {
        return Err(WorkflowError::Refused(format!(
            "release {} of {bench} already shows exactly these results",
            prev.number
        )));
    }
    let path = build::leaderboard(bench, number);
    let message = format!("release {number} of {bench}");
    if b.release_threshold <= 1 {
        let landed = apply_to_main(
            ctx,
            opened,
            signer,
            vec![record_file(path, &record)],
            &message,
        )?;
        return Ok((Released::Landed { record, landed }, excluded));
    }
    let files = sign_all(signer, &opened.id, vec![record_file(path, &record)])?;
    let branch = branch_name(
        &signer.handle,
        SubmissionKind::Leaderboard,
        &format!("{bench}-{number}"),
    );
    let commit = crate::registry::commit_files(
        opened.reg.repo(),
        opened.view()?,
        &files,
        &message,
        &signer.handle,
    )?;
    crate::registry::set_branch(opened.reg.repo(), &branch, commit, &message)?;
    if let Some(url) = opened.reg.remote_url()
        && let Ok(t) = ctx.transport_for(&url)
    {
        let _ = opened
            .reg
            .push(&[format!("+{commit}:refs/heads/{branch}")], t);
    }
    Ok((
        Released::NeedsCosign {
            record,
            branch,
            threshold: b.release_threshold,
        },
        excluded,
    ))
}

/// Before co-signing a proposed release, a committee member recomputes it from the results with
/// their own key: they sign only bytes they would have produced themselves.
pub fn check_proposed(ix: &Index, signer: &Signer, path: &str, bytes: &[u8]) -> Result<()> {
    let rp = model::classify(path)?;
    let Record::Leaderboard(proposed) = model::parse_record(path, &rp, bytes)? else {
        return Err(WorkflowError::Refused(format!("{path} is not a release")));
    };
    let (mine, _) = compute(
        ix,
        signer,
        &proposed.benchmark.name,
        proposed.number,
        &proposed.created,
        &proposed.by,
    )?;
    if model::to_bytes(&mine) != bytes {
        return Err(WorkflowError::Refused(format!(
            "{path}: recomputing the release from the results gives different bytes; not co-signing"
        )));
    }
    Ok(())
}

/// The newest release of a benchmark.
pub fn latest<'a>(ix: &'a Index, bench: &str) -> Option<(&'a str, &'a Leaderboard)> {
    let (_, p) = ix.leaderboards.get(bench)?.last_key_value()?;
    match ix.record(p) {
        Some(Record::Leaderboard(l)) => Some((p.as_str(), l)),
        _ => None,
    }
}

/// Every release of a benchmark, oldest first.
pub fn all(ix: &Index, bench: &str) -> Vec<(String, Leaderboard)> {
    ix.leaderboards
        .get(bench)
        .into_iter()
        .flat_map(|m| m.values())
        .filter_map(|p| match ix.record(p) {
            Some(Record::Leaderboard(l)) => Some((p.clone(), l.clone())),
            _ => None,
        })
        .collect()
}

/// The static site's input for `benches` (all benchmarks with a release when empty), built from
/// a verified index at `commit`. Deterministic: nothing but the commit's contents goes in.
pub fn site_input(
    ix: &Index,
    commit: &str,
    clone_url: Option<String>,
    benches: &[String],
) -> Result<report::SiteInput> {
    let root = ix
        .root()
        .ok_or_else(|| WorkflowError::Refused("the registry has no root".into()))?;
    let mut pages = Vec::new();
    for name in ix.leaderboards.keys() {
        if !benches.is_empty() && !benches.contains(name) {
            continue;
        }
        let Some((_, b)) = ix.latest_benchmark(name) else {
            continue;
        };
        let mut releases = Vec::new();
        let mut cubes = BTreeMap::new();
        for (path, record) in all(ix, name) {
            let signers = ix
                .signatures
                .get(&path)
                .into_iter()
                .flatten()
                .map(|(h, sp)| {
                    (
                        h.clone(),
                        ix.bytes(sp)
                            .and_then(crate::trust::sign::claimed_key_id)
                            .unwrap_or_default(),
                    )
                })
                .collect();
            for e in &record.entries {
                if let Some((_, c)) = ix.cube(&e.model.name, e.model.version) {
                    cubes.insert(e.model.clone(), c.clone());
                }
            }
            releases.push(report::ReleaseInfo {
                sha256: ix.sha(&path).cloned().unwrap_or_else(|| Sha256::of(b"")),
                path,
                record,
                signers,
            });
        }
        for r in [&b.data_preparator, &b.reference_model, &b.metrics] {
            if let Some((_, c)) = ix.cube(&r.name, r.version) {
                cubes.insert(r.clone(), c.clone());
            }
        }
        pages.push(report::BenchmarkPage {
            benchmark: b.clone(),
            releases,
            cubes,
        });
    }
    if pages.is_empty() {
        return Err(WorkflowError::NotFound(if benches.is_empty() {
            "no benchmark of this registry has a release yet".into()
        } else {
            format!("no release of {} yet", benches.join(", "))
        }));
    }
    Ok(report::SiteInput {
        registry_name: root.name.clone(),
        registry_id: ix
            .registry_id
            .as_ref()
            .map(|s| s.to_string())
            .unwrap_or_default(),
        commit: commit.to_string(),
        clone_url,
        benchmarks: pages,
    })
}
