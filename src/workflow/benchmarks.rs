//! Benchmarks: submission by a benchmark owner after the reference workflow passed on the demo
//! dataset (its report is recorded; demo data only, so it is public), and the views of approved
//! and pending benchmarks.

use std::collections::BTreeSet;

use crate::model::{self, FORMAT_VERSION, Policy, Record, Sha256, build};
use crate::trust::{Index, Signer};

use super::compat::{CompatOutcome, Demo, Trio, compatibility_test};
use super::cubes::{cube_ref, cube_ref_in};
use super::engine::Engine;
use super::lookup::{self, Entity};
use super::permission::{Needs, require};
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
    /// The sharing policy; its `primary_metric` is decided by `primary_metric` below, checked
    /// against the metrics the reference workflow reports.
    pub policy: Policy,
    /// The metric models are ranked by; `None`: the one metric the reference workflow reports
    /// that is not a size metric (refused when there are several, or none).
    pub primary_metric: Option<String>,
}

/// What a benchmark submission did: the compatibility test always, the branch when it passed.
pub struct BenchmarkOutcome {
    pub compat: CompatOutcome,
    pub submitted: Option<(Submitted, model::Benchmark)>,
    /// The primary metric, when it was chosen from the reference run (none was given).
    pub chosen_metric: Option<String>,
}

/// The primary metric of a new benchmark, checked against the metrics its reference workflow
/// reported on the demo data (`reported`): the given one if the run reports it and it does not
/// count cases; with none given, the only reported metric that does not count cases. Also
/// refuses declared size metrics the run does not report (a typo would silently rank by a
/// count). Returns the metric and whether it was chosen here.
pub fn choose_primary(
    policy: &Policy,
    given: Option<&str>,
    reported: &[&str],
) -> Result<(String, bool)> {
    let choices: Vec<&str> = reported
        .iter()
        .copied()
        .filter(|m| !policy.is_size_metric(m))
        .collect();
    let list = |v: &[&str]| {
        if v.is_empty() {
            "none".to_string()
        } else {
            v.join(", ")
        }
    };
    let pick = if choices.is_empty() {
        "its metrics cube must report a metric that is not a count of cases".to_string()
    } else {
        format!(
            "choose one of the metrics it reports with `--primary-metric NAME`: {}",
            choices.join(", ")
        )
    };
    for m in &policy.size_metrics {
        if !reported.contains(&m.as_str()) {
            return Err(WorkflowError::RefusedBecause {
                message: format!(
                    "--size-metric {m}: the reference workflow reports no `{m}` on the demo data (it reports {}); nothing was submitted",
                    list(reported)
                ),
                hint: "declare only metrics the metrics cube reports".into(),
            });
        }
    }
    match given {
        Some(m) if policy.is_size_metric(m) => Err(WorkflowError::RefusedBecause {
            message: format!(
                "--primary-metric {m}: `{m}` counts cases (a size metric), which ranks nothing; nothing was submitted"
            ),
            hint: pick,
        }),
        Some(m) if reported.contains(&m) => Ok((m.to_string(), false)),
        Some(m) => Err(WorkflowError::RefusedBecause {
            message: format!(
                "--primary-metric {m}: the reference workflow reports no `{m}` on the demo data (it reports {}); nothing was submitted",
                list(reported)
            ),
            hint: pick,
        }),
        None if choices.len() == 1 => Ok((choices[0].to_string(), true)),
        None => Err(WorkflowError::RefusedBecause {
            message: format!(
                "the reference workflow reports {} metric(s) to rank by on the demo data ({}); nothing was submitted",
                choices.len(),
                list(&choices)
            ),
            hint: pick,
        }),
    }
}

/// The newest approved version of a benchmark.
pub fn approved(ix: &Index, name: &str) -> Result<(String, model::Benchmark, model::BenchRef)> {
    let (path, b) = ix
        .latest_benchmark(name)
        .ok_or_else(|| lookup::unknown_on_main(ix, Entity::Benchmark, name))?;
    let r = model::BenchRef {
        name: b.name.clone(),
        version: b.version,
        sha256: ix.sha(path).cloned().expect("indexed"),
    };
    Ok((path.to_string(), b.clone(), r))
}

/// [`approved`], saying when the benchmark waits on a branch (`opened`'s submissions).
pub fn approved_in(
    opened: &Opened,
    ix: &Index,
    name: &str,
) -> Result<(String, model::Benchmark, model::BenchRef)> {
    if ix.latest_benchmark(name).is_none() {
        return Err(lookup::unknown(opened, ix, Entity::Benchmark, name).into());
    }
    approved(ix, name)
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
    require(
        opened,
        &ix,
        signer,
        Needs::BenchmarkOwner,
        "submit benchmarks",
    )?;
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
    let prep = cube_ref_in(opened, &ix, &sub.data_preparator)?;
    let model_ref = cube_ref_in(opened, &ix, &sub.reference_model)?;
    let metrics = cube_ref_in(opened, &ix, &sub.metrics)?;
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
            chosen_metric: None,
        });
    }
    // Checked here, before anything is written: a primary metric no result will report fails
    // only at the very end otherwise, when the committee releases.
    let reported: Vec<&str> = compat
        .metrics
        .iter()
        .flat_map(|m| m.keys())
        .map(String::as_str)
        .collect();
    let (primary, chosen) = choose_primary(&sub.policy, sub.primary_metric.as_deref(), &reported)?;
    let mut policy = sub.policy.clone();
    policy.primary_metric = primary;
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
        policy,
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
        chosen_metric: chosen.then(|| record.policy.primary_metric.clone()),
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
    let (_, b, _) = approved_in(opened, &ix, bench)?;
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
    let out = compatibility_test(ctx, &engine, &trio, demo)?;
    super::runs::label_run(&out.run_dir, bench, None);
    Ok(out)
}

/// `cohort test run -d`: the benchmark's model and metrics cubes (either may be swapped) on a
/// dataset already prepared on this machine, so a site checks a model on its own data before
/// associating anything. Nothing is submitted; the metrics come from private data and stay in
/// the run folder.
pub fn test_run_on_dataset(
    ctx: &Ctx,
    opened: &Opened,
    bench: &str,
    model_spec: Option<&str>,
    metrics: Option<&str>,
    dataset: &str,
) -> Result<CompatOutcome> {
    use super::compat::{DemoSizes, Stage, Steps, infer_and_evaluate, new_run_dir};
    use super::datasets::{check_content, find, lock_dataset, prepared_data};
    let ix = opened.index()?;
    let (_, b, _) = approved(&ix, bench)?;
    let (local, _) = find(ctx, &ix, dataset)?;
    if local.preparator != b.data_preparator {
        return Err(WorkflowError::RefusedBecause {
            message: format!(
                "dataset `{}` was prepared with {} v{}, not with {bench}'s preparator {} v{}",
                local.name,
                local.preparator.name,
                local.preparator.version,
                b.data_preparator.name,
                b.data_preparator.version
            ),
            hint: format!(
                "prepare the data for {bench} first: `cohort dataset prepare -b {bench} ...`"
            ),
        });
    }
    let _lock = lock_dataset(ctx, &local.name)?;
    if let Err(changes) = check_content(ctx, &local, &local.content_sha256, false)? {
        return Err(WorkflowError::Refused(format!(
            "the prepared data of `{}` changed since it was prepared ({}); prepare it again",
            local.name,
            changes.join(", ")
        )));
    }
    let engine = Engine::connect(ctx)?;
    let model = cube_for_test(ctx, &engine, &ix, model_spec, &b.reference_model)?;
    let metrics_cube = cube_for_test(ctx, &engine, &ix, metrics, &b.metrics)?;
    let run_dir = new_run_dir(ctx, "compat")?;
    super::runs::label_run(&run_dir, bench, Some(&local.name));
    let mut steps = Steps::default();
    let st = Stage {
        ctx,
        engine: &engine,
        run_dir: &run_dir,
    };
    let values = infer_and_evaluate(
        &st,
        &model,
        &metrics_cube,
        &prepared_data(ctx, &local.name),
        &run_dir.join("out"),
        &mut steps,
    )?;
    let report = steps.report(format!("dataset:{}", local.id), values.clone());
    Ok(CompatOutcome {
        steps,
        report,
        metrics: values,
        run_dir,
        // The prepared data's own sizes: nothing was downloaded or unpacked.
        demo: DemoSizes {
            size: local.bytes,
            unpacked_size: local.bytes,
            files: local.files,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(r: Result<(String, bool)>) -> (String, String) {
        match r {
            Err(WorkflowError::RefusedBecause { message, hint }) => (message, hint),
            Err(e) => panic!("not a refusal with a hint: {e}"),
            Ok(m) => panic!("accepted {m:?}"),
        }
    }

    #[test]
    fn the_primary_metric_is_one_the_reference_run_reports() {
        let p = Policy::default();
        // The only score besides the count of cases: chosen, and said so.
        assert_eq!(
            choose_primary(&p, None, &["accuracy", "n"]).unwrap(),
            ("accuracy".into(), true)
        );
        assert_eq!(
            choose_primary(&p, Some("auc"), &["accuracy", "auc", "n"]).unwrap(),
            ("auc".into(), false)
        );
        // Several to choose from: refused, listing them (not `n`).
        let (message, hint) = refusal(choose_primary(&p, None, &["accuracy", "auc", "n"]));
        assert!(message.contains("nothing was submitted"), "{message}");
        assert!(hint.ends_with("accuracy, auc"), "{hint}");
        // Unknown: refused the same way.
        let (message, hint) = refusal(choose_primary(&p, Some("auc"), &["accuracy", "n"]));
        assert!(message.contains("reports no `auc`"), "{message}");
        assert!(hint.contains("--primary-metric NAME`: accuracy"), "{hint}");
        // A count of cases ranks nothing, declared or `n`.
        let sized = Policy {
            size_metrics: vec!["cases".into()],
            ..Policy::default()
        };
        let (message, _) = refusal(choose_primary(&sized, Some("cases"), &["cases", "auc"]));
        assert!(message.contains("counts cases"), "{message}");
        let (message, _) = refusal(choose_primary(&sized, Some("n"), &["n", "auc", "cases"]));
        assert!(message.contains("counts cases"), "{message}");
        assert_eq!(
            choose_primary(&sized, None, &["auc", "cases", "n"]).unwrap(),
            ("auc".into(), true)
        );
        // Nothing to rank by, and a declared size metric the run does not report.
        let (_, hint) = refusal(choose_primary(&p, None, &["n"]));
        assert!(hint.contains("not a count of cases"), "{hint}");
        let (message, _) = refusal(choose_primary(&sized, None, &["auc", "n"]));
        assert!(message.contains("--size-metric cases"), "{message}");
    }
}
