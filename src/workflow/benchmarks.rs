//! Benchmarks: submission by a benchmark owner after the reference workflow passed on the demo
//! dataset (its report is recorded; demo data only, so it is public), and the views of approved
//! and pending benchmarks.

use std::collections::BTreeSet;

use crate::model::{self, FORMAT_VERSION, Policy, Record, Role, Sha256, build};
use crate::trust::{Index, Signer};

use super::compat::{CompatOutcome, Demo, Trio, compatibility_test};
use super::cubes::cube_ref;
use super::engine::Engine;
use super::registry_ops::{Opened, Submitted, submissions, submit};
use super::status::SubState;
use super::submission::{Submission, SubmissionKind, branch_name, record_file};
use super::{Ctx, Result, WorkflowError};

pub struct BenchmarkSubmission {
    pub name: String,
    pub description: Option<String>,
    pub data_preparator: String,
    pub reference_model: String,
    pub metrics: String,
    pub demo_dataset: String,
    pub demo_hash: Option<Sha256>,
    pub committee: Vec<String>,
    pub release_threshold: u32,
    pub policy: Policy,
}

/// What a benchmark submission did: the compatibility test always, the branch when it passed.
pub struct BenchmarkOutcome {
    pub compat: CompatOutcome,
    pub submitted: Option<(Submitted, model::Benchmark)>,
}

/// The newest approved version of a benchmark.
pub fn approved(ix: &Index, name: &str) -> Result<(String, model::Benchmark, model::BenchRef)> {
    let (path, b) = ix.latest_benchmark(name).ok_or_else(|| {
        WorkflowError::NotFound(format!("benchmark `{name}` is not approved on main (`cohort benchmark ls --pending` shows submissions)"))
    })?;
    let r = model::BenchRef {
        name: b.name.clone(),
        version: b.version,
        sha256: ix.sha(path).cloned().expect("indexed"),
    };
    Ok((path.to_string(), b.clone(), r))
}

/// Runs the reference workflow on the demo dataset and, when it passes, submits the benchmark.
pub fn submit_benchmark(
    ctx: &Ctx,
    opened: &Opened,
    signer: &Signer,
    sub: &BenchmarkSubmission,
) -> Result<BenchmarkOutcome> {
    model::ids::check_name("benchmark name", &sub.name)?;
    let ix = opened.index()?;
    let me = &signer.handle;
    let is_admin = ix
        .root()
        .is_some_and(|r| r.admins.iter().any(|a| &a.handle == me));
    if !is_admin && !ix.has_role(me, Role::BenchmarkOwner) {
        return Err(WorkflowError::Refused(format!(
            "{me} does not hold the benchmark-owner right; an admin grants it with `cohort user grant {me} --role benchmark-owner`"
        )));
    }
    let mut committee: Vec<String> = vec![me.clone()];
    for m in &sub.committee {
        if !committee.contains(m) {
            committee.push(m.clone());
        }
    }
    for m in &committee {
        if !ix.is_participant(m) {
            return Err(WorkflowError::NotFound(format!(
                "committee member `{m}` is not a registered user"
            )));
        }
    }
    if sub.release_threshold == 0 || sub.release_threshold as usize > committee.len() {
        return Err(WorkflowError::Refused(format!(
            "--release-threshold must be between 1 and the committee size ({})",
            committee.len()
        )));
    }
    let (version, previous) = match ix.latest_benchmark(&sub.name) {
        None => (1, None),
        Some((_, b)) if &b.owner != me => {
            return Err(WorkflowError::Refused(format!(
                "benchmark `{}` belongs to {}",
                sub.name, b.owner
            )));
        }
        Some((p, b)) => (b.version + 1, ix.sha(p).cloned()),
    };
    let prep = cube_ref(&ix, &sub.data_preparator)?;
    let model_ref = cube_ref(&ix, &sub.reference_model)?;
    let metrics = cube_ref(&ix, &sub.metrics)?;
    for (role, r) in [
        ("data preparator", &prep),
        ("reference model", &model_ref),
        ("metrics", &metrics),
    ] {
        if ix
            .cube(&r.name, r.version)
            .is_some_and(|(_, c)| c.image.source == model::ImageSource::Encrypted)
        {
            return Err(WorkflowError::RefusedBecause {
                message: format!(
                    "{} v{} is a private model (--encrypt); a benchmark's {role} must run at every site",
                    r.name, r.version
                ),
                hint: "submit a version of it without --encrypt for the benchmark".into(),
            });
        }
    }
    // The demo first: a file over the blob cap is refused before any image is fetched.
    let demo = super::assets::from_source(
        ctx,
        "demo dataset",
        &sub.demo_dataset,
        sub.demo_hash.as_ref(),
        &super::assets::upload_hint("--demo-dataset"),
    )?;
    let engine = Engine::connect(ctx)?;
    let trio = Trio {
        prep: engine.registered(ctx, &ix, &prep)?,
        model: engine.registered(ctx, &ix, &model_ref)?,
        metrics: engine.registered(ctx, &ix, &metrics)?,
    };
    let compat = compatibility_test(
        ctx,
        &engine,
        &trio,
        Demo::Given {
            fetched: &demo.fetched,
            label: &sub.demo_dataset,
        },
    )?;
    if !compat.report.ok {
        return Ok(BenchmarkOutcome {
            compat,
            submitted: None,
        });
    }
    let record = model::Benchmark {
        format: FORMAT_VERSION,
        kind: "benchmark".into(),
        name: sub.name.clone(),
        version,
        owner: me.clone(),
        created: ctx.timestamp(),
        description: sub.description.clone(),
        previous,
        committee,
        release_threshold: sub.release_threshold,
        data_preparator: prep,
        reference_model: model_ref,
        metrics,
        // Sizes measured by the compatibility test, signed so every site bounds the download
        // and the extraction by them.
        demo_dataset: compat.demo.recorded_in(&demo.asset),
        policy: sub.policy.clone(),
        report: compat.report.clone(),
    };
    let path = build::benchmark(&sub.name, version);
    let branch = branch_name(
        me,
        SubmissionKind::Benchmark,
        &format!("{}-v{version}", sub.name),
    );
    let submitted = submit(
        opened,
        signer,
        &branch,
        vec![record_file(path, &record)],
        demo.blob.into_iter().collect(),
        &format!("Submit benchmark {} v{version}", sub.name),
    )?;
    Ok(BenchmarkOutcome {
        compat,
        submitted: Some((submitted, record)),
    })
}

/// Every approved benchmark version on main.
pub fn benchmarks(ix: &Index) -> Vec<(String, model::Benchmark)> {
    ix.records_in(&ix.benchmarks)
        .filter_map(|(p, r)| match r {
            Record::Benchmark(b) => Some((p.to_string(), b.clone())),
            _ => None,
        })
        .collect()
}

/// Submissions of `kind` still waiting (not merged, not rejected).
pub fn pending(opened: &Opened, kind: SubmissionKind) -> Result<Vec<(Submission, SubState)>> {
    let ix = opened.index()?;
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for (sub, has_local, pushed) in submissions(opened)? {
        if sub.kind != kind || !seen.insert(sub.branch.clone()) {
            continue;
        }
        let state = super::status::state_of(&ix, &sub, has_local, pushed);
        if matches!(state, SubState::Merged | SubState::Rejected) {
            continue;
        }
        out.push((sub, state));
    }
    Ok(out)
}

/// A cube for a compatibility test: a local folder (not yet submitted) or a registered name.
fn cube_for_test(
    ctx: &Ctx,
    engine: &Engine,
    ix: &Index,
    spec: Option<&str>,
    default: &model::CubeRef,
) -> Result<super::engine::LocalCube> {
    match spec {
        None => engine.registered(ctx, ix, default),
        Some(s) if std::path::Path::new(s).exists() => engine.local(ctx, std::path::Path::new(s)),
        Some(s) => engine.registered(ctx, ix, &cube_ref(ix, s)?),
    }
}

/// `cohort test run`: the benchmark's reference workflow with any part swapped for a local or
/// registered cube, or another demo dataset. Nothing is submitted.
pub fn test_run(
    ctx: &Ctx,
    opened: &Opened,
    bench: &str,
    prep: Option<&str>,
    model_spec: Option<&str>,
    metrics: Option<&str>,
    demo: Option<&str>,
) -> Result<CompatOutcome> {
    let ix = opened.index()?;
    let (_, b, _) = approved(&ix, bench)?;
    let engine = Engine::connect(ctx)?;
    let trio = Trio {
        prep: cube_for_test(ctx, &engine, &ix, prep, &b.data_preparator)?,
        model: cube_for_test(ctx, &engine, &ix, model_spec, &b.reference_model)?,
        metrics: cube_for_test(ctx, &engine, &ix, metrics, &b.metrics)?,
    };
    let (file, label) = match demo {
        Some(d) => {
            let cache = crate::storage::Cache::new(ctx.home);
            let got = cache.get_or_fetch(d, None, &ctx.net, ctx.reporter, &ctx.cancel)?;
            (got, d.to_string())
        }
        None => (
            super::assets::fetch(ctx, &ix, &b.demo_dataset)?,
            b.demo_dataset.describe().to_string(),
        ),
    };
    let demo = match demo {
        Some(_) => Demo::Given {
            fetched: &file,
            label: &label,
        },
        None => Demo::Recorded {
            fetched: &file,
            asset: &b.demo_dataset,
        },
    };
    compatibility_test(ctx, &engine, &trio, demo)
}
