//! Releasing results: a committee member decrypts the benchmark's results (leaving out, with a
//! reason code, what they cannot read), aggregates them under the sharing policy (report
//! module) with pseudonyms drawn at random and sealed to the committee, and proposes a
//! leaderboard release signed by the committee's threshold; other members co-sign only after
//! recomputing the same bytes (release_check.rs). Plus what anyone needs to show releases: the
//! latest release and the static site's input.

use std::collections::BTreeMap;

use crate::model::{
    self, DatasetNaming, Exclusion, ExclusionReason, Leaderboard, Record, ResultStatus, Sha256,
    build, envelope::SCHEMA_PSEUDONYMS, pseudonyms::Pseudonyms,
};
use crate::registry::NewFile;
use crate::report::{self, Outcome, ReleaseMeta, ResultInput};
use crate::trust::{Index, Signer, next_number};

use super::benchmarks::{approved, approved_in};
use super::permission::{Needs, require};
use super::registry_ops::{Landed, Opened, apply_to_main};
use super::results::registered;
use super::submission::{SubmissionKind, branch_name, record_file, sign_all};
use super::unseal::read_result;
use super::{Ctx, Result, WorkflowError};

pub use super::release_check::{Checked, check_committee_releases, check_proposed, check_release};

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

/// A computed release: the record and, when pseudonymised, the sealed mapping's bytes (the
/// file next to it, `<n>.pseudonyms.age`).
pub struct Computed {
    pub record: Leaderboard,
    pub pseudonyms: Option<Vec<u8>>,
}

/// Decrypts every result of `bench` that `signer` may read and computes the release record.
/// What cannot be read (or agreed to a narrower policy) is left out and listed in the record
/// with a reason code. Pseudonyms are drawn at random and sealed to the committee.
pub fn compute(
    ix: &Index,
    signer: &Signer,
    bench: &str,
    number: u32,
    created: &str,
    by: &str,
) -> Result<Computed> {
    let (_, b, bref) = approved(ix, bench)?;
    let mut inputs = Vec::new();
    let mut excluded = Vec::new();
    for (path, r) in registered(ix, Some(bench)) {
        let Some((_, agreed)) = ix.benchmark(&r.benchmark.name, r.benchmark.version) else {
            continue;
        };
        let sha256 = ix.sha(&path).cloned().expect("indexed");
        let mut exclude = |reason: ExclusionReason| {
            excluded.push(Exclusion {
                path: path.clone(),
                sha256: sha256.clone(),
                reason,
            })
        };
        if b.policy.exceeds(&agreed.policy).is_some() {
            exclude(ExclusionReason::NarrowerPolicy);
            continue;
        }
        let outcome = match r.status {
            ResultStatus::Ok => match read_result(ix, &path, &r, signer) {
                Ok(m) => Outcome::Ok(m),
                Err(code) => {
                    exclude(code.into());
                    continue;
                }
            },
            ResultStatus::Failed => Outcome::Failed(r.failure.clone().ok_or_else(|| {
                WorkflowError::Refused(format!("{path}: a failure receipt without `failure`"))
            })?),
        };
        inputs.push(input(
            ix,
            &b,
            path,
            &r,
            sha256,
            outcome,
            agreed.policy.clone(),
        ));
    }
    if inputs.is_empty() && !excluded.is_empty() {
        return Err(WorkflowError::Refused(format!(
            "every result of {bench} was left out: {} (a wider policy applies only to results submitted under it; sites submit again to be included)",
            excluded
                .iter()
                .map(|e| format!("{} ({})", e.path, e.reason))
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
    let refused = |e: report::ReportError| match e {
        report::ReportError::MissingPrimary { ref reported, .. } => WorkflowError::RefusedBecause {
            hint: format!(
                "the benchmark owner submits a new version of {bench} ranked by a metric every result reports (`cohort benchmark submit --name {bench} ... --primary-metric {}`), then a committee member releases again; or the data owners of these results run the benchmark again with a metrics cube that reports `{}`",
                reported
                    .iter()
                    .find(|m| !b.policy.is_size_metric(m))
                    .map_or("NAME", String::as_str),
                b.policy.primary_metric
            ),
            message: format!("{e}; nothing was released"),
        },
        e => WorkflowError::Refused(e.to_string()),
    };
    if b.policy.dataset_names != DatasetNaming::Pseudonymised {
        let record = report::release(&meta, &b.policy, &inputs, None, excluded).map_err(refused)?;
        return Ok(Computed {
            record,
            pseudonyms: None,
        });
    }
    // A fresh permutation from the operating system's CSPRNG, sealed to the committee only.
    let mapping = Pseudonyms::random(
        report::datasets_used(&inputs).map_err(refused)?,
        &mut rand::rngs::OsRng,
    );
    let mut committee = Vec::new();
    for h in &b.committee {
        let age = ix.age_recipient(h).ok_or_else(|| {
            WorkflowError::NotFound(format!("no age key for {h} in the registry"))
        })?;
        committee.push(model::SealedFor {
            handle: h.clone(),
            age,
        });
    }
    let path = build::leaderboard(bench, number);
    let (sealed, ciphertext) = model::envelope::seal(
        &mapping.to_canonical(),
        &committee,
        &build::sealed_file_name(&path, "pseudonyms"),
        SCHEMA_PSEUDONYMS,
    )?;
    let unlinking = report::Unlinking {
        mapping: &mapping,
        sealed,
    };
    let record =
        report::release(&meta, &b.policy, &inputs, Some(unlinking), excluded).map_err(refused)?;
    Ok(Computed {
        record,
        pseudonyms: Some(ciphertext),
    })
}

/// One decrypted result as the aggregation reads it.
pub(super) fn input(
    ix: &Index,
    b: &model::Benchmark,
    path: String,
    r: &model::ResultManifest,
    sha256: Sha256,
    outcome: Outcome,
    agreed_policy: model::Policy,
) -> ResultInput {
    let (dataset_name, dataset_owner) = ix
        .dataset(&r.dataset.id)
        .map(|(_, d)| (d.name.clone(), d.owner.clone()))
        .unwrap_or_default();
    let model_owner = ix
        .cube(&r.model.name, r.model.version)
        .map(|(_, c)| c.owner.clone())
        .unwrap_or_default();
    ResultInput {
        sha256,
        path,
        model: r.model.clone(),
        model_owner,
        dataset_id: r.dataset.id.clone(),
        dataset_name,
        dataset_owner,
        outcome,
        agreed_policy,
        is_reference: r.model == b.reference_model,
    }
}

/// `cohort result release`: computes the release and lands it (threshold 1) or proposes it for
/// co-signing. The record lists what it left out (`excluded`).
pub fn release(ctx: &Ctx, opened: &Opened, signer: &Signer, bench: &str) -> Result<Released> {
    let ix = opened.index()?;
    let (_, b, _) = approved_in(opened, &ix, bench)?;
    require(
        opened,
        &ix,
        signer,
        Needs::Committee(&b),
        "release its results",
    )?;
    if registered(&ix, Some(bench)).is_empty() {
        let branches = waiting(opened, SubmissionKind::Result, &format!("results/{bench}/"));
        if !branches.is_empty() {
            return Err(WorkflowError::RefusedBecause {
                message: format!(
                    "benchmark {bench} has no results on main to release; {} submission(s) of results wait to be merged: {}",
                    branches.len(),
                    branches.join(", ")
                ),
                hint: "merge them first: `cohort registry merge --all` (a committee member, who decrypts them)".into(),
            });
        }
    }
    let number = next_number(ix.leaderboards.get(bench));
    let Computed { record, pseudonyms } =
        compute(&ix, signer, bench, number, &ctx.timestamp(), &signer.handle)?;
    // Pseudonyms are drawn afresh each time, so compare what went in, not the entries.
    let digests = |l: &Leaderboard| {
        let mut v: Vec<Sha256> = l.covered_digests().into_iter().cloned().collect();
        v.sort();
        v
    };
    if let Some((_, prev)) = latest(&ix, bench)
        && digests(prev) == digests(&record)
        && prev.policy == record.policy
        && prev.excluded == record.excluded
        // A release in an older layout may be made again in the new one (size metrics as totals).
        && prev.layout == record.layout
    {
        return Err(WorkflowError::Refused(format!(
            "release {} of {bench} already shows exactly these results",
            prev.number
        )));
    }
    let path = build::leaderboard(bench, number);
    let mut files = vec![record_file(path.clone(), &record)];
    if let Some(ct) = pseudonyms {
        files.push(NewFile::new(build::sealed(&path, "pseudonyms"), ct));
    }
    let message = format!("release {number} of {bench}");
    if b.release_threshold <= 1 {
        let landed = apply_to_main(ctx, opened, signer, files, &message)?;
        return Ok(Released::Landed { record, landed });
    }
    let files = sign_all(signer, &opened.id, files)?;
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
    Ok(Released::NeedsCosign {
        record,
        branch,
        threshold: b.release_threshold,
    })
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

/// A release of `bench` waiting on a branch for committee co-signatures.
pub fn waiting_release(opened: &Opened, bench: &str) -> Option<String> {
    waiting(
        opened,
        SubmissionKind::Leaderboard,
        &format!("leaderboards/{bench}/"),
    )
    .into_iter()
    .next()
}

/// Branches of `kind` whose subject lies under `prefix`, still waiting.
fn waiting(opened: &Opened, kind: SubmissionKind, prefix: &str) -> Vec<String> {
    super::benchmarks::pending(opened, kind)
        .unwrap_or_default()
        .into_iter()
        .filter(|(s, _)| s.subject.starts_with(prefix))
        .map(|(s, _)| s.branch)
        .collect()
}
