//! The benchmark's reference workflow as reusable steps: fetch and unpack a MedPerf-style demo
//! dataset, prepare it (prepare, sanity_check, statistics), run a model and the metrics cube on
//! prepared data. Compatibility tests, dataset associations and benchmark runs are built from
//! these steps; each step reports duration, exit code and log path.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::mlcube::{PathKind, RunOutcome};
use crate::model::metrics::Metrics;
use crate::model::{Asset, CompatReport, Sha256, StepReport, StepStatus};
use crate::storage::{ExtractLimits, Fetched, extract_tarball};

use super::engine::{Engine, LocalCube, TaskRun, read_metrics};
use super::{Ctx, Result, WorkflowError};

/// Where a run's steps execute: the context, the container engine, the run's folder.
pub struct Stage<'a> {
    pub ctx: &'a Ctx<'a>,
    pub engine: &'a Engine,
    pub run_dir: &'a Path,
}

/// One step as it ran here (with what stays local: the log path).
#[derive(Debug, Clone)]
pub struct StepLog {
    pub report: StepReport,
    pub log: Option<PathBuf>,
    /// Why it failed, one line, when it did.
    pub error: Option<String>,
    /// What kind of failure it was, when it failed (decided from typed errors, never text).
    pub failure: Option<FailureKind>,
}

/// How a step failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The container exited non-zero.
    Exit,
    /// The container ran past its time limit.
    TimedOut,
    /// The container could not run (creation, start, mounts).
    NotRun,
    /// The model wrote more than the cap allows.
    OutputTooLarge,
    /// A cube's output failed cohort's own checks.
    BadOutput,
}

/// The steps so far, in order.
#[derive(Debug, Default, Clone)]
pub struct Steps {
    pub steps: Vec<StepLog>,
}

impl Steps {
    pub fn ok(&self) -> bool {
        self.steps
            .iter()
            .all(|s| s.report.status != StepStatus::Failed)
    }
    pub fn failed(&self) -> Option<&StepLog> {
        self.steps
            .iter()
            .find(|s| s.report.status == StepStatus::Failed)
    }
    pub fn reports(&self) -> Vec<StepReport> {
        self.steps.iter().map(|s| s.report.clone()).collect()
    }
    /// The public report: steps always, metrics only when `public_metrics` (demo data).
    pub fn report(&self, data: String, metrics: Option<Metrics>) -> CompatReport {
        CompatReport {
            data,
            ok: self.ok(),
            cohort_version: crate::VERSION.to_string(),
            steps: self.reports(),
            metrics,
        }
    }

    /// Runs one task and records it; `Ok(false)` when the task failed (recorded, not an error).
    fn run(&mut self, st: &Stage, cube: &LocalCube, t: TaskRun) -> Result<bool> {
        let (ctx, engine, run_dir) = (st.ctx, st.engine, st.run_dir);
        let started = Instant::now();
        // The engine reports the container's progress (spinner, last log line) itself.
        let outcome: Result<RunOutcome> = engine.run_task(ctx, cube, run_dir, &t);
        let (status, exit_code, log, error, failure) = match &outcome {
            Ok(o) => match o.check() {
                Ok(()) => (
                    StepStatus::Ok,
                    Some(o.exit_code),
                    Some(o.log_path.clone()),
                    None,
                    None,
                ),
                Err(e) => (
                    StepStatus::Failed,
                    Some(o.exit_code),
                    Some(o.log_path.clone()),
                    Some(e.to_string()),
                    Some(if o.timed_out {
                        FailureKind::TimedOut
                    } else {
                        FailureKind::Exit
                    }),
                ),
            },
            Err(e) if e.is_environment() || ctx.cancel.is_cancelled() => {
                return Err(outcome.expect_err("matched Err"));
            }
            Err(e) => {
                let kind = match e {
                    WorkflowError::Mlcube(crate::mlcube::Error::TimedOut { .. }) => {
                        FailureKind::TimedOut
                    }
                    _ => FailureKind::NotRun,
                };
                (
                    StepStatus::Failed,
                    None,
                    None,
                    Some(e.to_string()),
                    Some(kind),
                )
            }
        };
        // A full disk shows up as a failing or truncating cube; say so where it is the cause.
        let error = match (status, error) {
            (StepStatus::Failed, Some(e)) => Some(match disk_note(run_dir, &t) {
                Some(note) => format!("{e} ({note})"),
                None => e,
            }),
            (_, e) => e,
        };
        self.steps.push(StepLog {
            report: StepReport {
                step: t.task.to_string(),
                cube: cube.name.clone(),
                status,
                exit_code,
                duration_ms: started.elapsed().as_millis() as u64,
            },
            log,
            error,
            failure,
        });
        Ok(status == StepStatus::Ok)
    }

    /// Records a check cohort itself made (e.g. the shape of a cube's output).
    pub fn cohort_check(
        &mut self,
        step: &str,
        kind: FailureKind,
        result: std::result::Result<(), String>,
    ) -> bool {
        let ok = result.is_ok();
        self.steps.push(StepLog {
            report: StepReport {
                step: step.to_string(),
                cube: "cohort".into(),
                status: if ok {
                    StepStatus::Ok
                } else {
                    StepStatus::Failed
                },
                exit_code: None,
                duration_ms: 0,
            },
            log: None,
            error: result.err(),
            failure: (!ok).then_some(kind),
        });
        ok
    }
}

/// An unpacked demo dataset.
#[derive(Debug, Clone)]
pub struct DemoData {
    pub sha256: Sha256,
    pub data: PathBuf,
    pub labels: PathBuf,
    /// The tarball as measured here (what a benchmark record states about it).
    pub sizes: DemoSizes,
}

/// A demo tarball's sizes as measured by a run: signed into the benchmark record so every
/// site bounds the download and the extraction by them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DemoSizes {
    pub size: u64,
    pub unpacked_size: u64,
    pub files: u64,
}

impl DemoSizes {
    /// `asset` with these sizes recorded.
    pub fn recorded_in(&self, asset: &Asset) -> Asset {
        Asset {
            size: Some(self.size),
            unpacked_size: Some(self.unpacked_size),
            files: Some(self.files),
            ..asset.clone()
        }
    }
}

/// Which demo tarball to unpack (already fetched and checked against its sha256): one given by
/// the user, or a benchmark's recorded one, whose recorded sizes bound the extraction.
#[derive(Debug, Clone, Copy)]
pub enum Demo<'a> {
    Given {
        fetched: &'a Fetched,
        label: &'a str,
    },
    Recorded {
        fetched: &'a Fetched,
        asset: &'a Asset,
    },
}

/// Fetches (through the verified cache) and unpacks a MedPerf-style demo tarball into `dir`:
/// `paths.yaml` at its root names `data_path` and `labels_path`.
pub fn unpack_demo(ctx: &Ctx, demo: Demo<'_>, dir: &Path) -> Result<DemoData> {
    let (got, source, recorded) = match demo {
        Demo::Given { fetched, label } => (fetched, label, None),
        Demo::Recorded { fetched, asset } => (fetched, asset.describe(), Some(asset)),
    };
    let limits = ExtractLimits::for_asset(
        recorded.and_then(|a| a.unpacked_size),
        recorded.and_then(|a| a.files),
        ctx.max_unpacked,
    );
    let unpacked = extract_tarball(&got.path, dir, &limits)?;
    let sizes = DemoSizes {
        size: got.bytes,
        unpacked_size: unpacked.bytes,
        files: unpacked.files.len() as u64,
    };
    let paths_file = dir.join("paths.yaml");
    let bytes = std::fs::read(&paths_file).map_err(|_| {
        WorkflowError::Refused(format!("the demo dataset {source} has no paths.yaml at its root (MedPerf's layout: paths.yaml naming data_path and labels_path)"))
    })?;
    let text = crate::model::prescan::check_text(
        &bytes,
        crate::model::prescan::Syntax::Yaml,
        crate::model::MAX_TEXT_BYTES,
        crate::model::prescan::MAX_FLOW_DEPTH,
    )
    .map_err(|why| WorkflowError::Refused(format!("{source}: paths.yaml {why}")))?;
    let map: std::collections::BTreeMap<String, serde_norway::Value> = serde_norway::from_str(text)
        .map_err(|e| {
            WorkflowError::Refused(format!("{source}: paths.yaml is not a YAML map: {e}"))
        })?;
    let get = |k: &str| -> Result<PathBuf> {
        let v = map.get(k).and_then(|v| v.as_str()).ok_or_else(|| {
            WorkflowError::Refused(format!("{source}: paths.yaml does not name `{k}`"))
        })?;
        let rel = Path::new(v);
        if rel.is_absolute()
            || rel
                .components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return Err(WorkflowError::Refused(format!(
                "{source}: `{k}` in paths.yaml must be a relative path inside the archive"
            )));
        }
        let p = dir.join(rel);
        if !p.is_dir() {
            return Err(WorkflowError::Refused(format!(
                "{source}: `{k}` names {v}, which is not a folder in the archive"
            )));
        }
        Ok(p)
    };
    Ok(DemoData {
        sha256: got.sha256.clone(),
        data: get("data_path")?,
        labels: get("labels_path")?,
        sizes,
    })
}

/// Where prepared data lands.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub data: PathBuf,
    pub labels: PathBuf,
    pub statistics: Option<Metrics>,
}

/// prepare, sanity_check, statistics: raw data -> `out/{data,labels}`, statistics -> the
/// `statistics.yaml` in `run_dir` (kept apart from the prepared, hashed data).
pub fn prepare(
    st: &Stage,
    prep: &LocalCube,
    raw_data: &Path,
    raw_labels: &Path,
    out: &Path,
    steps: &mut Steps,
) -> Result<Option<Prepared>> {
    let (ctx, run_dir) = (st.ctx, st.run_dir);
    let data = out.join("data");
    let labels = out.join("labels");
    let stats_file = run_dir.join("statistics/statistics.yaml");
    // MedPerf's contract for container configurations: `metadata_path` (when prepare declares
    // it) is part of the prepared data, so of its content hash; `report_file` stays with this
    // run. Cubes that do not declare a label are not given it (engine.rs filters).
    let metadata = prep
        .config
        .task_has_parameter("prepare", "metadata_path")
        .then(|| out.join("metadata"));
    let with_metadata = |mut paths: Vec<(&'static str, PathBuf, PathKind)>| {
        if let Some(m) = &metadata {
            paths.push(("metadata_path", m.clone(), PathKind::Dir));
        }
        paths
    };
    let timeout = ctx.task_timeout;
    if !steps.run(
        st,
        prep,
        TaskRun {
            task: "prepare",
            paths: with_metadata(vec![
                ("data_path", raw_data.to_path_buf(), PathKind::Dir),
                ("labels_path", raw_labels.to_path_buf(), PathKind::Dir),
                ("output_path", data.clone(), PathKind::Dir),
                ("output_labels_path", labels.clone(), PathKind::Dir),
                ("report_file", run_dir.join("report.yaml"), PathKind::File),
            ]),
            timeout,
        },
    )? {
        return Ok(None);
    }
    let prepared_paths = || {
        with_metadata(vec![
            ("data_path", data.clone(), PathKind::Dir),
            ("labels_path", labels.clone(), PathKind::Dir),
        ])
    };
    if !steps.run(
        st,
        prep,
        TaskRun {
            task: "sanity_check",
            paths: prepared_paths(),
            timeout,
        },
    )? {
        return Ok(None);
    }
    let mut paths = prepared_paths();
    paths.push(("output_path", stats_file.clone(), PathKind::File));
    if !steps.run(
        st,
        prep,
        TaskRun {
            task: "statistics",
            paths,
            timeout,
        },
    )? {
        return Ok(None);
    }
    let statistics = match read_metrics(&stats_file, "statistics.yaml") {
        Ok(m) => m,
        Err(e) => {
            steps.cohort_check(
                "statistics output",
                FailureKind::BadOutput,
                Err(e.to_string()),
            );
            return Ok(None);
        }
    };
    Ok(Some(Prepared {
        data,
        labels,
        statistics: Some(statistics),
    }))
}

/// infer then evaluate in a new run folder under `kind` (see `new_run_dir`): the folder, the
/// steps taken and the metrics (`None` when a step failed).
pub fn run_model(
    ctx: &Ctx,
    engine: &Engine,
    model: &LocalCube,
    metrics: &LocalCube,
    prepared: &Prepared,
    kind: &str,
) -> Result<(PathBuf, Steps, Option<Metrics>)> {
    let run_dir = new_run_dir(ctx, kind)?;
    let mut steps = Steps::default();
    let st = Stage {
        ctx,
        engine,
        run_dir: &run_dir,
    };
    let values = infer_and_evaluate(
        &st,
        model,
        metrics,
        prepared,
        &run_dir.join("out"),
        &mut steps,
    )?;
    Ok((run_dir, steps, values))
}

/// infer then evaluate on prepared data; returns the metrics, or `None` when a step failed.
pub fn infer_and_evaluate(
    st: &Stage,
    model: &LocalCube,
    metrics: &LocalCube,
    prepared: &Prepared,
    out: &Path,
    steps: &mut Steps,
) -> Result<Option<Metrics>> {
    let ctx = st.ctx;
    let predictions = out.join("predictions");
    let results = out.join("results/results.yaml");
    let timeout = ctx.task_timeout;
    if !steps.run(
        st,
        model,
        TaskRun {
            task: "infer",
            paths: vec![
                ("data_path", prepared.data.clone(), PathKind::Dir),
                ("output_path", predictions.clone(), PathKind::Dir),
            ],
            timeout,
        },
    )? {
        return Ok(None);
    }
    // A model that floods its output folder fails here, before anything reads the flood.
    let size = crate::storage::disk_usage(&predictions);
    if size > ctx.max_output_bytes {
        steps.cohort_check(
            "predictions size",
            FailureKind::OutputTooLarge,
            Err(format!(
                "the model wrote {size} bytes of predictions, over the {}-byte cap (raise it with --max-output)",
                ctx.max_output_bytes
            )),
        );
        return Ok(None);
    }
    if !steps.run(
        st,
        metrics,
        TaskRun {
            task: "evaluate",
            paths: vec![
                ("predictions", predictions, PathKind::Dir),
                ("labels", prepared.labels.clone(), PathKind::Dir),
                ("output_path", results.clone(), PathKind::File),
                // MedPerf's evaluate may keep per-case outputs at the site: a private folder
                // of this run, never read by cohort nor submitted.
                (
                    "local_outputs_path",
                    out.join("local_outputs"),
                    PathKind::Dir,
                ),
            ],
            timeout,
        },
    )? {
        return Ok(None);
    }
    match read_metrics(&results, "results.yaml") {
        Ok(m) => Ok(Some(m)),
        Err(e) => {
            steps.cohort_check("results output", FailureKind::BadOutput, Err(e.to_string()));
            Ok(None)
        }
    }
}

/// The three cubes of a reference workflow.
pub struct Trio {
    pub prep: LocalCube,
    pub model: LocalCube,
    pub metrics: LocalCube,
}

/// What a compatibility test produced.
pub struct CompatOutcome {
    pub steps: Steps,
    pub report: CompatReport,
    pub metrics: Option<Metrics>,
    pub run_dir: PathBuf,
    /// The demo tarball as measured by this run.
    pub demo: DemoSizes,
}

/// The whole reference workflow on a demo dataset: prepare, sanity_check, statistics, infer,
/// evaluate. Results are public (demo data only).
pub fn compatibility_test(
    ctx: &Ctx,
    engine: &Engine,
    trio: &Trio,
    demo: Demo<'_>,
) -> Result<CompatOutcome> {
    let run_dir = new_run_dir(ctx, "compat")?;
    let demo = unpack_demo(ctx, demo, &run_dir.join("demo"))?;
    let mut steps = Steps::default();
    let mut metrics = None;
    let st = Stage {
        ctx,
        engine,
        run_dir: &run_dir,
    };
    if let Some(prepared) = prepare(
        &st,
        &trio.prep,
        &demo.data,
        &demo.labels,
        &run_dir.join("prepared"),
        &mut steps,
    )? {
        metrics = infer_and_evaluate(
            &st,
            &trio.model,
            &trio.metrics,
            &prepared,
            &run_dir.join("out"),
            &mut steps,
        )?;
    }
    let report = steps.report(format!("demo:{}", demo.sha256), metrics.clone());
    Ok(CompatOutcome {
        steps,
        report,
        metrics,
        run_dir,
        demo: demo.sizes,
    })
}

pub use super::runs::{RUN_LOCK, RUN_RECORD, new_run_dir};

/// Free space left below which a failing step is probably a full disk.
const LOW_DISK_BYTES: u64 = 16 << 20;

/// "the disk holding X is full" when a task's folders (or the run folder) have almost no space.
fn disk_note(run_dir: &Path, t: &TaskRun) -> Option<String> {
    let mut places: Vec<&Path> = t.paths.iter().map(|(_, p, _)| p.as_path()).collect();
    places.push(run_dir);
    for p in places {
        let mut probe = p;
        while !probe.exists() {
            probe = probe.parent()?;
        }
        if let Ok(st) = rustix::fs::statvfs(probe) {
            let free = st.f_bavail.saturating_mul(st.f_frsize);
            if free < LOW_DISK_BYTES {
                return Some(format!(
                    "the disk holding {} has only {free} bytes free: free some space and run the command again",
                    probe.display()
                ));
            }
        }
    }
    None
}
