//! Associations between a benchmark and a model or dataset: model requests (after a passing
//! compatibility test on the demo data), committee invitations, approvals and rejections by a
//! committee member who is not the requester, priorities, and the list of both kinds.

use crate::model::{self, AssocKey, AssocSubject, DecisionKind, FORMAT_VERSION, Record, build};
use crate::trust::{Index, Signer, next_number};

use super::benchmarks::approved_in;
use super::compat::{CompatOutcome, Demo, Trio, compatibility_test};
use super::cubes::cube_ref_in;
use super::engine::Engine;
use super::identity::branch_for;
use super::permission::{Needs, require};
use super::registry_ops::{self, Landed, Opened, Submitted, apply_to_main, submit};
use super::submission::{Submission, SubmissionKind, branch_name, record_file};
use super::{Ctx, Result, WorkflowError};

/// The next request version for `key` in `bench`.
pub(super) fn next_version(ix: &Index, bench: &str, key: &AssocKey) -> u32 {
    next_number(ix.associations.get(&(bench.to_string(), key.clone())))
}

/// Runs the benchmark's reference workflow with `model` swapped in and, when it passes, submits
/// the association request (by the model's owner, or as a committee member's invitation).
pub fn associate_model(
    ctx: &Ctx,
    opened: &Opened,
    signer: &Signer,
    bench: &str,
    model_spec: &str,
) -> Result<(CompatOutcome, Option<Submitted>)> {
    let ix = opened.index()?;
    require(opened, &ix, signer, Needs::Member, "request associations")?;
    let (_, b, bref) = approved_in(opened, &ix, bench)?;
    let mref = cube_ref_in(opened, &ix, model_spec)?;
    let (_, cube) = ix
        .cube(&mref.name, mref.version)
        .expect("cube_ref resolved it");
    let me = &signer.handle;
    if &cube.owner != me && !b.committee.contains(me) {
        return Err(WorkflowError::Refused(format!(
            "{me} may not request this association: only {} (the model's owner) or a member of the {bench} committee may",
            cube.owner
        )));
    }
    if b.reference_model.name == mref.name {
        return Err(WorkflowError::Refused(format!(
            "{} is {bench}'s reference model; the approved benchmark already counts as its association",
            mref.name
        )));
    }
    let mut engine = Engine::connect(ctx)?;
    // A private model's compatibility test runs where its key is: with its owner.
    engine.private = Some(super::private::SiteKey::of(signer, None));
    let trio = Trio {
        prep: engine.registered(ctx, &ix, &b.data_preparator)?,
        model: engine.registered(ctx, &ix, &mref)?,
        metrics: engine.registered(ctx, &ix, &b.metrics)?,
    };
    let demo = super::assets::fetch(ctx, &ix, &b.demo_dataset)?;
    let compat = compatibility_test(
        ctx,
        &engine,
        &trio,
        Demo::Recorded {
            fetched: &demo,
            asset: &b.demo_dataset,
        },
    );
    if trio.model.private_loaded {
        crate::mlcube::ContainerRuntime::remove_image(&engine.runtime, &trio.model.image_id)?;
    }
    let compat = compat?;
    if !compat.report.ok {
        return Ok((compat, None));
    }
    let key = AssocKey::Model(mref.name.clone());
    let version = next_version(&ix, bench, &key);
    let record = model::Association {
        format: FORMAT_VERSION,
        kind: "association".into(),
        benchmark: bref,
        subject: AssocSubject::Model,
        model: Some(mref.clone()),
        dataset: None,
        requested_by: me.clone(),
        created: ctx.timestamp(),
        report: compat.report.clone(),
        sealed: None,
    };
    let path = build::association(bench, &key, version);
    let branch = branch_name(
        me,
        SubmissionKind::Association,
        &format!("{bench}-model-{}-v{version}", mref.name),
    );
    let submitted = submit(
        opened,
        signer,
        &branch,
        vec![record_file(path, &record)],
        vec![],
        &format!("Associate model {} with {bench}", mref.name),
    )?;
    Ok((compat, Some(submitted)))
}

/// The folder prefix of an association's records.
fn prefix(bench: &str, key: &AssocKey) -> String {
    format!("associations/{bench}/{}/", key.dir_name())
}

/// Resolves `-m NAME` or `-d NAME_OR_ID` to an association key.
pub fn key_for(ix: &Index, model: Option<&str>, dataset: Option<&str>) -> Result<AssocKey> {
    match (model, dataset) {
        (Some(m), None) => Ok(AssocKey::Model(m.to_string())),
        (None, Some(d)) => Ok(AssocKey::Dataset(super::datasets::resolve_dataset_id(
            ix, d,
        )?)),
        _ => Err(WorkflowError::Refused(
            "name exactly one of a model (-m) or a dataset (-d)".into(),
        )),
    }
}

/// Approves (merging it) or rejects a pending association request (committee member, not the
/// requester).
pub fn decide(
    ctx: &Ctx,
    opened: &Opened,
    signer: &Signer,
    bench: &str,
    key: &AssocKey,
    approve: bool,
    reason: Option<String>,
) -> Result<(Submission, Option<Landed>)> {
    let _ = registry_ops::sync(ctx, opened);
    let ix = opened.index()?;
    let (_, b, _) = approved_in(opened, &ix, bench)?;
    let action = if approve {
        "approve its associations"
    } else {
        "reject its associations"
    };
    require(opened, &ix, signer, Needs::Committee(&b), action)?;
    let branch = branch_for(opened, SubmissionKind::Association, &prefix(bench, key))?;
    let sub = registry_ops::find_submission(opened, &branch)?;
    let tree = opened.reg.tree(sub.tip)?;
    let bytes = tree.read_path(&sub.subject)?;
    let rp = model::classify(&sub.subject)?;
    if let Ok(Record::Association(a)) = model::parse_record(&sub.subject, &rp, &bytes)
        && a.requested_by == signer.handle
    {
        return Err(WorkflowError::Refused(format!(
            "{} requested this association and cannot {} it; another committee member must",
            signer.handle,
            if approve { "approve" } else { "reject" }
        )));
    }
    if approve {
        let (sub, landed) = registry_ops::approve(ctx, opened, signer, &branch, true)?;
        Ok((sub, landed))
    } else {
        let (sub, landed) = registry_ops::reject(ctx, opened, signer, &branch, reason)?;
        Ok((sub, Some(landed)))
    }
}

/// Sets a model's priority in a benchmark (committee member): a separate signed record.
pub fn set_priority(
    ctx: &Ctx,
    opened: &Opened,
    signer: &Signer,
    bench: &str,
    model_name: &str,
    priority: i64,
) -> Result<Landed> {
    let ix = opened.index()?;
    let (_, b, _) = approved_in(opened, &ix, bench)?;
    require(
        opened,
        &ix,
        signer,
        Needs::Committee(&b),
        "set its priorities",
    )?;
    let is_ref = b.reference_model.name == model_name;
    let approved_assoc = ix
        .associations
        .get(&(bench.to_string(), AssocKey::Model(model_name.to_string())))
        .is_some_and(|m| !m.is_empty());
    if !is_ref && !approved_assoc {
        return Err(WorkflowError::NotFound(format!(
            "model {model_name} has no approved association with {bench}"
        )));
    }
    let number = next_number(
        ix.priorities
            .get(&(bench.to_string(), model_name.to_string())),
    );
    let record = model::Priority {
        format: FORMAT_VERSION,
        kind: "priority".into(),
        benchmark: bench.to_string(),
        model: model_name.to_string(),
        number,
        priority,
        by: signer.handle.clone(),
        at: ctx.timestamp(),
    };
    apply_to_main(
        ctx,
        opened,
        signer,
        vec![record_file(
            build::priority(bench, model_name, number),
            &record,
        )],
        &format!("priority {priority} for {model_name} in {bench}"),
    )
}

/// One association, approved (on main) or pending.
#[derive(Debug, Clone)]
pub struct AssocRow {
    pub benchmark: String,
    pub key: AssocKey,
    /// The model or dataset name.
    pub name: String,
    pub version: u32,
    pub requested_by: String,
    /// `approved`, `withdrawn`, `pending (pushed)`, `pending (local)`, `reference`.
    pub state: String,
    pub priority: Option<i64>,
    pub path: String,
}

/// The current priority of a model in a benchmark (newest record wins).
pub fn priority_of(ix: &Index, bench: &str, model_name: &str) -> Option<i64> {
    let (_, p) = ix
        .priorities
        .get(&(bench.to_string(), model_name.to_string()))?
        .last_key_value()?;
    match ix.record(p) {
        Some(Record::Priority(p)) => Some(p.priority),
        _ => None,
    }
}

/// Every association (both kinds), approved and, with `pending`, waiting ones.
pub fn associations(opened: &Opened, bench: Option<&str>, pending: bool) -> Result<Vec<AssocRow>> {
    let ix = opened.index()?;
    let mut rows = Vec::new();
    for name in ix.benchmarks.keys() {
        if bench.is_some_and(|b| b != name) {
            continue;
        }
        if let Some((p, b)) = ix.latest_benchmark(name) {
            rows.push(AssocRow {
                benchmark: name.clone(),
                key: AssocKey::Model(b.reference_model.name.clone()),
                name: b.reference_model.name.clone(),
                version: b.reference_model.version,
                requested_by: b.owner.clone(),
                state: "reference".into(),
                priority: priority_of(&ix, name, &b.reference_model.name),
                path: p.to_string(),
            });
        }
    }
    for ((b, key), versions) in &ix.associations {
        if bench.is_some_and(|x| x != b) {
            continue;
        }
        let Some((_, p)) = versions.last_key_value() else {
            continue;
        };
        let Some(Record::Association(a)) = ix.record(p) else {
            continue;
        };
        let withdrawn = !ix.decisions_on(p, DecisionKind::Withdrawal).is_empty();
        let (name, version) = match (&a.model, &a.dataset) {
            (Some(m), _) => (m.name.clone(), m.version),
            (_, Some(d)) => (
                ix.dataset(&d.id)
                    .map(|(_, x)| x.name.clone())
                    .unwrap_or_else(|| d.id[..12].to_string()),
                d.version,
            ),
            _ => continue,
        };
        rows.push(AssocRow {
            benchmark: b.clone(),
            key: key.clone(),
            priority: match key {
                AssocKey::Model(m) => priority_of(&ix, b, m),
                AssocKey::Dataset(_) => None,
            },
            name,
            version,
            requested_by: a.requested_by.clone(),
            state: if withdrawn {
                "withdrawn".into()
            } else {
                "approved".into()
            },
            path: p.clone(),
        });
    }
    if pending {
        for (sub, state) in super::benchmarks::pending(opened, SubmissionKind::Association)? {
            let Ok(model::RecordPath::Association {
                bench: b,
                key,
                version,
            }) = model::classify(&sub.subject)
            else {
                continue;
            };
            if bench.is_some_and(|x| x != b) {
                continue;
            }
            let name = match &key {
                AssocKey::Model(m) => m.clone(),
                AssocKey::Dataset(d) => d[..12].to_string(),
            };
            rows.push(AssocRow {
                benchmark: b,
                key,
                name,
                version,
                requested_by: sub.owner.clone(),
                state: format!("pending ({})", state.as_str()),
                priority: None,
                path: sub.branch.clone(),
            });
        }
    }
    Ok(rows)
}
