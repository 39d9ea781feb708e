//! Results: what this site computed (local), what it submitted (signed manifests with the values
//! sealed to the policy's recipients, or failure receipts with no data), and reading sealed
//! results back for those who may.

use crate::model::{
    self, AssocKey, DecisionKind, FORMAT_VERSION, Provenance, Record, ResultManifest, ResultStatus,
    build, metrics::Metrics,
};
use crate::registry::NewFile;
use crate::trust::{Index, Signer, next_number};

use super::datasets::{open_sealed, recipients};
use super::execution::{LocalResult, local_results};
use super::permission::{Needs, require};
use super::registry_ops::{Opened, Submitted, submit};
use super::submission::{SubmissionKind, branch_name, record_file};
use super::{Ctx, Result, WorkflowError};

/// Registered result manifests: (path, manifest).
pub fn registered(ix: &Index, bench: Option<&str>) -> Vec<(String, ResultManifest)> {
    ix.results
        .iter()
        .filter(|((b, _, _), _)| bench.is_none_or(|x| x == b))
        .flat_map(|(_, v)| v.values())
        .filter_map(|p| match ix.record(p) {
            Some(Record::Result(r)) => Some((p.clone(), r.clone())),
            _ => None,
        })
        .collect()
}

/// Whether a local result is already in the registry (same run key and, for a rerun, the
/// same superseded result: a rerun has the key of the result it replaces). A `no-access`
/// receipt (a private model that did not run) does not stand for a run made after a grant.
pub fn is_submitted(ix: &Index, r: &LocalResult) -> bool {
    let no_access = |f: Option<&model::Failure>| {
        f.is_some_and(|f| f.reason == model::FailureReason::NoAccess.as_str())
    };
    registered(ix, Some(&r.benchmark.name))
        .iter()
        .any(|(_, m)| {
            m.provenance.run_key == r.key
                && m.supersedes == r.supersedes
                && no_access(m.failure.as_ref()) == no_access(r.failure.as_ref())
        })
}

/// Whether the result's associations are both approved now (the model's, or it is the
/// reference model; and the dataset's), and not withdrawn.
pub fn associations_approved(ix: &Index, r: &LocalResult) -> std::result::Result<(), String> {
    let active = |key: &AssocKey, model: Option<&model::CubeRef>| {
        ix.associations
            .get(&(r.benchmark.name.clone(), key.clone()))
            .into_iter()
            .flatten()
            .any(|(_, p)| {
                ix.decisions_on(p, DecisionKind::Withdrawal).is_empty()
                    && match (model, ix.record(p)) {
                        (Some(m), Some(Record::Association(a))) => a.model.as_ref() == Some(m),
                        _ => true,
                    }
            })
    };
    let Some((_, b)) = ix.benchmark(&r.benchmark.name, r.benchmark.version) else {
        return Err(format!(
            "benchmark {} v{} is not approved",
            r.benchmark.name, r.benchmark.version
        ));
    };
    if b.reference_model != r.model
        && !active(&AssocKey::Model(r.model.name.clone()), Some(&r.model))
    {
        return Err(format!(
            "model {} v{} has no approved association with {}",
            r.model.name, r.model.version, r.benchmark.name
        ));
    }
    if !active(&AssocKey::Dataset(r.dataset.id.clone()), None) {
        return Err(format!(
            "dataset {} has no approved association with {}",
            r.dataset_name, r.benchmark.name
        ));
    }
    Ok(())
}

/// Local results waiting to be submitted, filtered by benchmark and dataset.
pub fn pending(
    ctx: &Ctx,
    ix: &Index,
    bench: Option<&str>,
    dataset: Option<&str>,
) -> Vec<LocalResult> {
    local_results(ctx)
        .into_iter()
        .filter(|r| bench.is_none_or(|b| b == r.benchmark.name))
        .filter(|r| dataset.is_none_or(|d| d == r.dataset_name || r.dataset.id.starts_with(d)))
        .filter(|r| !is_submitted(ix, r))
        .collect()
}

/// The files of one result submission: a manifest per result, values sealed (failure receipts
/// carry none). Refuses results whose associations are not approved.
pub fn submit_results(
    ctx: &Ctx,
    opened: &Opened,
    signer: &Signer,
    results: &[LocalResult],
) -> Result<Submitted> {
    if results.is_empty() {
        return Err(WorkflowError::NotFound(
            "no results to submit (run `cohort benchmark run` first)".into(),
        ));
    }
    let ix = opened.index()?;
    require(opened, &ix, signer, Needs::Member, "submit results")?;
    let mut records = Vec::new();
    let mut extra = Vec::new();
    let mut numbers: std::collections::BTreeMap<(String, String, String), u32> = Default::default();
    for r in results {
        if r.owner != signer.handle {
            return Err(WorkflowError::Refused(format!(
                "the result of {} on {} belongs to {}",
                r.model.name, r.dataset_name, r.owner
            )));
        }
        associations_approved(&ix, r).map_err(|why| {
            WorkflowError::Refused(format!(
                "cannot submit the result of {} on {}: {why}",
                r.model.name, r.dataset_name
            ))
        })?;
        let (_, b) = ix
            .benchmark(&r.benchmark.name, r.benchmark.version)
            .expect("checked above");
        let k = (
            r.benchmark.name.clone(),
            r.dataset.id.clone(),
            r.model.name.clone(),
        );
        let n = *numbers
            .entry(k.clone())
            .or_insert_with(|| next_number(ix.results.get(&k)));
        numbers.insert(k, n + 1);
        let path = build::result(&r.benchmark.name, &r.dataset.id, &r.model.name, n);
        let sealed = match (&r.status, &r.metrics) {
            (ResultStatus::Ok, Some(m)) => {
                let file = build::sealed_file_name(&path, "result");
                let (sealed, ciphertext) = model::envelope::seal(
                    &model::metrics::to_canonical(m),
                    &recipients(&ix, b, &signer.handle)?,
                    &file,
                    model::envelope::SCHEMA_METRICS,
                )?;
                extra.push(NewFile::new(build::sealed(&path, "result"), ciphertext));
                Some(sealed)
            }
            _ => None,
        };
        let manifest = ResultManifest {
            format: FORMAT_VERSION,
            kind: "result".into(),
            number: n,
            benchmark: r.benchmark.clone(),
            dataset: r.dataset.clone(),
            model: r.model.clone(),
            metrics: r.metrics_cube.clone(),
            preparator: r.preparator.clone(),
            owner: r.owner.clone(),
            created: ctx.timestamp(),
            status: r.status,
            failure: r.failure.clone(),
            sealed,
            supersedes: r.supersedes.clone(),
            provenance: Provenance {
                cohort_version: crate::VERSION.to_string(),
                model_image: r.model_image.clone(),
                metrics_image: r.metrics_image.clone(),
                preparator_image: r.preparator_image.clone(),
                infer_ms: r.infer_ms,
                evaluate_ms: r.evaluate_ms,
                run_key: r.key.clone(),
                finished: r.finished.clone(),
            },
        };
        records.push(record_file(path, &manifest));
    }
    let first = &results[0];
    let branch = branch_name(
        &signer.handle,
        SubmissionKind::Result,
        &format!(
            "{}-{}-{}",
            first.benchmark.name,
            first.dataset_name,
            &first.key.as_str()[..8]
        ),
    );
    submit(
        opened,
        signer,
        &branch,
        records,
        extra,
        &format!(
            "Submit {} result(s) for {}",
            results.len(),
            first.benchmark.name
        ),
    )
}

/// Decrypts a registered result with `signer`'s key.
pub fn open_result(ix: &Index, path: &str, signer: &Signer) -> Result<Metrics> {
    let Some(Record::Result(r)) = ix.record(path) else {
        return Err(WorkflowError::NotFound(format!("no result at {path}")));
    };
    let sealed = r.sealed.as_ref().ok_or_else(|| {
        WorkflowError::Refused(format!("{path} is a failure receipt; it holds no values"))
    })?;
    open_sealed(ix, path, sealed, "result", signer)
}
