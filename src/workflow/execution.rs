//! Executing a benchmark at the site: every approved model (the reference model included), in
//! priority order, on a prepared dataset: infer then evaluate, without network. Results are
//! cached by the content hashes of everything that went in; a failing model yields a failure
//! receipt instead of stopping the others (with `ignore_errors`).

use std::path::PathBuf;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::mlcube::ContainerRuntime;
use crate::model::{
    self, AssocKey, BenchRef, CubeRef, DatasetRef, Failure, FailureReason, Record, ResultStatus,
    Sha256, metrics::Metrics,
};
use crate::storage::write_atomic_mode;
use crate::trust::Index;

use super::associations::priority_of;
use super::benchmarks::approved_in;
use super::compat::{Steps, run_model};
use super::datasets::{check_content, find, lock_dataset, prepared_data};
use super::engine::{Engine, private_dir};
use super::registry_ops::Opened;
use super::{Ctx, Result, WorkflowError};

/// A result as this site keeps it (`runs/results/<key>/result.toml`), before and after it is
/// submitted. The key is the hash of everything the result depends on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalResult {
    pub key: Sha256,
    pub benchmark: BenchRef,
    pub dataset: DatasetRef,
    pub dataset_name: String,
    pub model: CubeRef,
    pub metrics_cube: CubeRef,
    pub preparator: CubeRef,
    pub owner: String,
    pub status: ResultStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Metrics>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    pub model_image: String,
    pub metrics_image: String,
    pub preparator_image: String,
    pub infer_ms: u64,
    pub evaluate_ms: u64,
    pub finished: String,
    /// The registered result this run replaces (`benchmark run --rerun`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supersedes: Option<String>,
}

/// The cache key of a run: every input's content hash.
pub fn run_key(
    bench: &Sha256,
    prep: &Sha256,
    model: &Sha256,
    metrics: &Sha256,
    dataset_id: &str,
    content: &Sha256,
) -> Sha256 {
    Sha256::of(
        format!("cohort-run/1\n{bench}\n{prep}\n{model}\n{metrics}\n{dataset_id}\n{content}\n")
            .as_bytes(),
    )
}

fn results_dir(ctx: &Ctx) -> PathBuf {
    ctx.home.runs_dir().join("results")
}

pub fn load_result(ctx: &Ctx, key: &Sha256) -> Option<LocalResult> {
    let text =
        std::fs::read_to_string(results_dir(ctx).join(key.as_str()).join("result.toml")).ok()?;
    toml::from_str(&text).ok()
}

/// Every result kept on this machine.
pub fn local_results(ctx: &Ctx) -> Vec<LocalResult> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(results_dir(ctx)) {
        for e in entries.flatten() {
            if let Ok(text) = std::fs::read_to_string(e.path().join("result.toml"))
                && let Ok(r) = toml::from_str::<LocalResult>(&text)
            {
                out.push(r);
            }
        }
    }
    out.sort_by(|a, b| {
        (&a.benchmark.name, &a.dataset_name, &a.model.name).cmp(&(
            &b.benchmark.name,
            &b.dataset_name,
            &b.model.name,
        ))
    });
    out
}

fn save_result(ctx: &Ctx, r: &LocalResult) -> Result<()> {
    let p = results_dir(ctx).join(r.key.as_str()).join("result.toml");
    // Results are computed on private data: the caller's alone until sealed and submitted.
    private_dir(&results_dir(ctx))
        .and_then(|()| private_dir(p.parent().expect("result.toml has a folder")))
        .and_then(|()| {
            write_atomic_mode(
                &p,
                toml::to_string(r).expect("serializes").as_bytes(),
                Some(0o600),
            )
        })
        .map_err(|e| WorkflowError::Refused(format!("{}: {e}", p.display())))
}

/// The models a site runs for a benchmark: the reference model and every approved, not
/// withdrawn model association, highest priority first (then by name).
pub fn models_to_run(ix: &Index, b: &model::Benchmark) -> Vec<(CubeRef, Option<i64>)> {
    let mut out = vec![(
        b.reference_model.clone(),
        priority_of(ix, &b.name, &b.reference_model.name),
    )];
    for ((bench, key), versions) in &ix.associations {
        let (AssocKey::Model(name), true) = (key, bench == &b.name) else {
            continue;
        };
        let Some((_, p)) = versions.last_key_value() else {
            continue;
        };
        if !ix
            .decisions_on(p, model::DecisionKind::Withdrawal)
            .is_empty()
        {
            continue;
        }
        if let Some(Record::Association(a)) = ix.record(p)
            && let Some(m) = &a.model
        {
            out.push((m.clone(), priority_of(ix, bench, name)));
        }
    }
    out.sort_by(|(a, pa), (b, pb)| {
        pb.unwrap_or(0)
            .cmp(&pa.unwrap_or(0))
            .then(a.name.cmp(&b.name))
    });
    out
}

/// How one model fared in a run.
#[derive(Debug, Clone)]
pub struct ModelRun {
    pub model: CubeRef,
    pub priority: Option<i64>,
    /// `ok`, `failed`, `cached ok`, `cached failed`.
    pub status: String,
    pub result: LocalResult,
    pub steps: Steps,
    pub seconds: f64,
}

pub struct RunOptions {
    pub models: Vec<String>,
    pub ignore_errors: bool,
    pub no_cache: bool,
    /// Run again (as `no_cache`) and mark each new result as superseding the newest registered
    /// result of the same model on the dataset.
    pub rerun: bool,
    /// The site's key, for private models granted to this dataset (`None`: every private
    /// model yields a `no-access` receipt).
    pub site_key: Option<super::private::SiteKey>,
    /// Hash every byte of the prepared data (else only files whose stat changed).
    pub full_check: bool,
}

/// Whether the benchmark's models include a private one (the CLI then unlocks the site's key).
pub fn has_private_models(ix: &Index, bench: &str) -> bool {
    let Ok((_, b, _)) = super::benchmarks::approved(ix, bench) else {
        return false;
    };
    models_to_run(ix, &b).iter().any(|(r, _)| {
        ix.cube(&r.name, r.version)
            .is_some_and(|(_, c)| c.image.source == model::ImageSource::Encrypted)
    })
}

/// Runs the benchmark's models on a prepared, registered, associated dataset.
pub fn run_benchmark(
    ctx: &Ctx,
    opened: &Opened,
    bench: &str,
    dataset: &str,
    opts: &RunOptions,
) -> Result<Vec<ModelRun>> {
    let ix = opened.index()?;
    let (_, b, bref) = approved_in(opened, &ix, bench)?;
    let (local, registered) = find(ctx, &ix, dataset)?;
    let (dpath, drec) = registered.ok_or_else(|| {
        WorkflowError::Refused(format!(
            "dataset `{}` is not registered; submit it and have it merged first",
            local.name
        ))
    })?;
    let dkey = AssocKey::Dataset(drec.id.clone());
    let associated = ix
        .associations
        .get(&(bench.to_string(), dkey))
        .and_then(|m| m.last_key_value())
        .is_some_and(|(_, p)| {
            ix.decisions_on(p, model::DecisionKind::Withdrawal)
                .is_empty()
        });
    if !associated {
        return Err(WorkflowError::Refused(format!(
            "dataset `{}` has no approved association with {bench}; `cohort dataset associate -d {} -b {bench}` and wait for the committee",
            local.name, local.name
        )));
    }
    if drec.preparator != b.data_preparator {
        return Err(WorkflowError::Refused(format!(
            "dataset `{}` was prepared with another preparator than {bench} v{} uses",
            local.name, b.version
        )));
    }
    let _lock = lock_dataset(ctx, &local.name)?;
    // A prepared dataset edited after registration is caught before any model sees it.
    if let Err(changes) = check_content(ctx, &local, &drec.content_sha256, !opts.full_check)? {
        return Err(WorkflowError::Refused(format!(
            "the prepared data of `{}` no longer matches the registry ({}); prepare it again",
            local.name,
            changes.join(", ")
        )));
    }
    let mut models = models_to_run(&ix, &b);
    if !opts.models.is_empty() {
        for m in &opts.models {
            if !models.iter().any(|(r, _)| &r.name == m) {
                return Err(WorkflowError::NotFound(format!(
                    "model `{m}` is not an approved model of {bench}"
                )));
            }
        }
        models.retain(|(r, _)| opts.models.contains(&r.name));
    }
    let dref = DatasetRef {
        id: drec.id.clone(),
        version: drec.version,
        sha256: ix.sha(&dpath).cloned().expect("indexed"),
    };
    let mut engine = Engine::connect(ctx)?;
    engine.private = opts.site_key.as_ref().map(|k| super::private::SiteKey {
        handle: k.handle.clone(),
        identity: k.identity.clone(),
        dataset: Some(drec.id.clone()),
    });
    let metrics_cube = engine.registered(ctx, &ix, &b.metrics)?;
    let prep_image = ix
        .cube(&b.data_preparator.name, b.data_preparator.version)
        .map(|(_, c)| c.image.id.clone())
        .unwrap_or_default();
    let prepared = prepared_data(ctx, &local.name);
    let mut runs = Vec::new();
    for (mref, priority) in models {
        let key = run_key(
            &bref.sha256,
            &b.data_preparator.sha256,
            &mref.sha256,
            &b.metrics.sha256,
            &drec.id,
            &drec.content_sha256,
        );
        // A private model runs only with a grant for this dataset that this site can open;
        // checked before the cache, so a revocation also stops a cached result's reuse.
        let private = ix
            .cube(&mref.name, mref.version)
            .filter(|(_, c)| c.image.source == model::ImageSource::Encrypted)
            .map(|(_, c)| c.clone());
        if let Some(rec) = &private {
            let opens = super::private::granted(&ix, rec, &drec.id)
                && engine
                    .private
                    .as_ref()
                    .and_then(|k| super::private::model_key(&ix, rec, k))
                    .is_some();
            if !opens {
                ctx.reporter.warn(&format!(
                    "{} v{} is a private model with no grant for `{}`: recorded as a no-access receipt",
                    mref.name, mref.version, local.name
                ));
                let result = LocalResult {
                    key: key.clone(),
                    benchmark: bref.clone(),
                    dataset: dref.clone(),
                    dataset_name: local.name.clone(),
                    model: mref.clone(),
                    metrics_cube: b.metrics.clone(),
                    preparator: b.data_preparator.clone(),
                    owner: local.owner.clone(),
                    status: ResultStatus::Failed,
                    metrics: None,
                    failure: Some(Failure {
                        stage: "load".into(),
                        exit_code: None,
                        duration_ms: 0,
                        reason: FailureReason::NoAccess.as_str().to_string(),
                    }),
                    model_image: rec.image.id.clone(),
                    metrics_image: metrics_cube.image_id.clone(),
                    preparator_image: prep_image.clone(),
                    infer_ms: 0,
                    evaluate_ms: 0,
                    finished: ctx.timestamp(),
                    supersedes: None,
                };
                save_result(ctx, &result)?;
                runs.push(ModelRun {
                    model: mref.clone(),
                    priority,
                    status: "no access".into(),
                    result,
                    steps: Steps::default(),
                    seconds: 0.0,
                });
                continue;
            }
        }
        let cached = load_result(ctx, &key).filter(|c| {
            // A no-access receipt is not a run: with a grant now, the model runs.
            c.failure.as_ref().map(|f| f.reason.as_str()) != Some(FailureReason::NoAccess.as_str())
        });
        if !opts.no_cache
            && !opts.rerun
            && let Some(cached) = cached
        {
            let status = match cached.status {
                ResultStatus::Ok => "cached ok",
                ResultStatus::Failed => "cached failed",
            };
            runs.push(ModelRun {
                model: mref,
                priority,
                status: status.into(),
                result: cached,
                steps: Steps::default(),
                seconds: 0.0,
            });
            continue;
        }
        if ctx.cancel.is_cancelled() {
            return Err(WorkflowError::Refused(
                "interrupted; run the command again to continue where it stopped".into(),
            ));
        }
        ctx.reporter.note(&format!(
            "running {} v{} on {}",
            mref.name, mref.version, local.name
        ));
        let started = Instant::now();
        let model_cube = engine.registered(ctx, &ix, &mref)?;
        let ran = run_model(
            ctx,
            &engine,
            &model_cube,
            &metrics_cube,
            &prepared,
            "execute",
        );
        // A decrypted private image leaves the Engine after its run, whatever the outcome.
        if model_cube.private_loaded {
            engine.runtime.remove_image(&model_cube.image_id)?;
        }
        let (run_dir, steps, metrics) = ran?;
        super::runs::label_run(&run_dir, bench, Some(&local.name));
        let ms = |step: &str| {
            steps
                .steps
                .iter()
                .find(|s| s.report.step == step)
                .map(|s| s.report.duration_ms)
                .unwrap_or(0)
        };
        let failure = steps.failed().map(|f| Failure {
            stage: match (f.report.cube.as_str(), f.report.step.as_str()) {
                ("cohort", "predictions size") => "infer".into(),
                ("cohort", _) => "evaluate".into(),
                _ => f.report.step.clone(),
            },
            exit_code: f.report.exit_code,
            duration_ms: f.report.duration_ms,
            reason: failure_reason(f).as_str().to_string(),
        });
        let result = LocalResult {
            key: key.clone(),
            benchmark: bref.clone(),
            dataset: dref.clone(),
            dataset_name: local.name.clone(),
            model: mref.clone(),
            metrics_cube: b.metrics.clone(),
            preparator: b.data_preparator.clone(),
            owner: local.owner.clone(),
            status: if metrics.is_some() {
                ResultStatus::Ok
            } else {
                ResultStatus::Failed
            },
            metrics,
            failure,
            model_image: model_cube.image_id.clone(),
            metrics_image: metrics_cube.image_id.clone(),
            preparator_image: prep_image.clone(),
            infer_ms: ms("infer"),
            evaluate_ms: ms("evaluate"),
            finished: ctx.timestamp(),
            supersedes: if opts.rerun {
                superseded(&ix, &bref.name, &drec.id, &mref.name, &local.owner)
            } else {
                None
            },
        };
        save_result(ctx, &result)?;
        let ok = result.status == ResultStatus::Ok;
        if ok {
            let _ = std::fs::remove_dir_all(run_dir.join("out"));
        }
        runs.push(ModelRun {
            model: mref.clone(),
            priority,
            status: if ok { "ok".into() } else { "failed".into() },
            result,
            steps,
            seconds: started.elapsed().as_secs_f64(),
        });
        if !ok && !opts.ignore_errors {
            return Err(WorkflowError::ModelFailed {
                model: format!("{} v{}", mref.name, mref.version),
                runs: Box::new(runs),
            });
        }
    }
    Ok(runs)
}

/// The newest registered result of `model` on `dataset` by `owner`, which a rerun replaces.
fn superseded(ix: &Index, bench: &str, dataset: &str, model: &str, owner: &str) -> Option<String> {
    let versions = ix
        .results
        .get(&(bench.to_string(), dataset.to_string(), model.to_string()))?;
    versions.values().rev().find_map(|p| match ix.record(p) {
        Some(Record::Result(r)) if r.owner == owner => Some(p.clone()),
        _ => None,
    })
}

/// The failure reason recorded in a receipt (no data, just the kind of failure).
fn failure_reason(f: &super::compat::StepLog) -> FailureReason {
    use super::compat::FailureKind as K;
    match (f.failure, f.report.step.as_str()) {
        (Some(K::TimedOut), _) => FailureReason::Timeout,
        (Some(K::OutputTooLarge), _) => FailureReason::OutputTooLarge,
        (Some(K::BadOutput), _) => FailureReason::InvalidResults,
        // The metrics cube failing on a model's predictions: the predictions are at fault.
        (Some(K::Exit | K::NotRun), "evaluate") => FailureReason::MalformedOutput,
        (Some(K::Exit), _) => FailureReason::ExitCode,
        _ => FailureReason::Error,
    }
}
