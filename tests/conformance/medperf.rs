//! MedPerf 0.3.0 conformance: every benchmark task of every case in
//! `tests/conformance/medperf-container/` (MedPerf's own container configurations with the
//! `docker run` its code builds) is planned through `Config::plan` and `prepare_host` and the
//! resulting invocation compared with MedPerf's argv. Differences are allowed only where listed
//! below with the id of a deliberate deviation from `CONTAINER_DEVIATIONS`; a listed difference
//! that no longer occurs fails too.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use cohort::mlcube::{
    CONTAINER_DEVIATIONS, Config, HostPath, Mode, PathKind, Plan, RunRequest, prepare_host,
};
use serde_json::Value;

/// (case, task, what differs, deviation id). `refused`: MedPerf runs it, cohort refuses;
/// `runs`: MedPerf refuses, cohort runs; `argv`: both run, with different arguments.
#[rustfmt::skip]
const EXPECTED_DEVIATIONS: &[(&str, &str, &str, &str)] = &[
    ("chestxray_tutorial-model_custom_cnn_encrypted", "infer", "refused", "mp-encrypted"),
    ("edge-gpus-shm-entrypoint", "prepare", "runs", "mp-typed-values"),
    ("edge-gpus-shm-entrypoint", "statistics", "refused", "mp-typed-values"),
    ("edge-rw-dataset-mounts", "sanity_check", "refused", "mp-mount-paths"),
    ("edge-volume-without-mount-path", "infer", "runs", "mp-errors"),
    ("edge-rw-dataset-mounts", "statistics", "refused", "mp-mount-paths"),
    ("tests-model-cpu-as_encrypted_docker_archive", "infer", "refused", "mp-encrypted"),
];

/// MedPerf's refusal (a part of its message) and the part of cohort's that says the same.
const SAME_REFUSAL: &[(&str, &str)] = &[
    (
        "Mount type should be either a file or a directory",
        "is neither file nor directory",
    ),
    (
        "Run args privileged are not allowed",
        "run_args privileged not allowed",
    ),
    (
        "Run args network are not allowed",
        "run_args network not allowed",
    ),
    (
        "Run args volumes are not allowed",
        "run_args volumes not allowed",
    ),
    ("Invalid gpus argument", "run_args.gpus: \"cuda\""),
    (
        "should contain a 'container_type' field",
        "no container_type",
    ),
    (
        "KeyError: 'labels_path'",
        "label labels_path: MedPerf supplies no labels_path",
    ),
    (
        "input volume should exist: /H/params.yaml",
        "input parameters_file does not exist",
    ),
    ("Task evaluate is not found", "has no task \"evaluate\""),
    (
        "Invalid container type: mlcube",
        "container_type \"mlcube\" is not known",
    ),
    (
        "should have a 'type' and 'mount_path'",
        "needs both mount_path and type",
    ),
    (
        "Cannot run this container using docker",
        "is not run by cohort",
    ),
];

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance/medperf-container")
}

/// MedPerf's argv without what is per-run noise (`docker run --name N --rm -u U`) and its own
/// tmp folder at /tmp, which cohort replaces with a private tmpfs.
fn medperf_core(argv: &[String]) -> Vec<String> {
    assert_eq!(&argv[..3], ["docker", "run", "--name"]);
    assert_eq!(&argv[4..7], ["--rm", "-u", "${UID}:${GID}"]);
    let mut out = Vec::new();
    let mut i = 7;
    while i < argv.len() {
        if argv[i] == "--volume" && argv[i + 1] == "/H/tmp:/tmp:rw" {
            i += 2;
            continue;
        }
        out.push(argv[i].clone());
        i += 1;
    }
    out
}

/// The same argv rebuilt from cohort's plan, in MedPerf's order.
fn plan_core(plan: &Plan, network_off: bool) -> Vec<String> {
    let inv = &plan.invocation;
    let mut out = Vec::new();
    for m in &inv.mounts {
        out.push("--volume".to_string());
        let mode = if m.read_only { "ro" } else { "rw" };
        out.push(format!("{}:{}:{mode}", m.host.display(), m.container));
    }
    if network_off {
        out.extend(["--network".to_string(), "none".to_string()]);
    }
    out.extend(inv.extra_run_args.iter().cloned());
    for (k, v) in &inv.env {
        out.push("--env".to_string());
        out.push(format!("{k}={v}"));
    }
    if let Some(ep) = &inv.entrypoint {
        out.push("--entrypoint".to_string());
        out.push(ep.join(" "));
    }
    out.push(inv.image.clone());
    out.extend(inv.cmd.iter().cloned());
    out
}

fn placeholder(scratch: &Path, p: &str) -> PathBuf {
    scratch.join(p.strip_prefix("/H/").expect("host paths are /H/..."))
}

/// Creates every placeholder MedPerf had before the run (files: the names with an extension).
fn make_existing(scratch: &Path, want: &Value) {
    for p in want["host_paths_existing"].as_array().into_iter().flatten() {
        let path = placeholder(scratch, p.as_str().unwrap());
        if path.extension().is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, b"").unwrap();
        } else {
            std::fs::create_dir_all(&path).unwrap();
        }
    }
}

/// Plans and prepares one task as the workflow would; the error text on refusal.
fn run_task(
    cfg: &Config,
    task: &str,
    want: &Value,
    opts: &Value,
    scratch: &Path,
) -> Result<Plan, String> {
    let mut req = RunRequest::new(task);
    req.mode = Mode::Strict;
    req.workspace = Some(scratch.join("workspace"));
    req.run_root = Some(scratch.to_path_buf());
    req.options.gpus = opts["gpus"].as_str().map(str::to_string);
    req.options.shm_size = opts["shm_size"].as_str().map(str::to_string);
    let given: BTreeMap<String, Value> = want["mounts_given"]
        .as_object()
        .map(|m| m.clone().into_iter().collect())
        .unwrap_or_default();
    let mut given = given;
    if want["mounts_given"].is_null() {
        // MedPerf refused the whole file before handing mounts (Q6); cohort refuses only the
        // broken task, so the others get the contract's labels as the workflow would give them.
        for label in cohort::mlcube::container::supplied(task) {
            given.insert(label.to_string(), Value::from(format!("/H/{label}")));
            if cohort::mlcube::container::must_exist(task, label) {
                std::fs::create_dir_all(scratch.join(label)).unwrap();
            }
        }
    }
    for (label, path) in &given {
        if cfg.task_has_parameter(task, label) {
            req.host_paths.insert(
                label.clone(),
                HostPath {
                    path: placeholder(scratch, path.as_str().unwrap()),
                    kind: PathKind::Dir,
                },
            );
        }
    }
    let plan = cfg
        .plan(&req, &|_| None, scratch)
        .map_err(|e| e.to_string())?;
    prepare_host(&plan).map_err(|e| e.to_string())?;
    Ok(plan)
}

#[test]
fn medperf_030_conformance() {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(corpus())
        .expect("the corpus is in tests/conformance/medperf-container")
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    assert_eq!(cases.len(), 33, "33 cases");
    let ids: BTreeSet<&str> = CONTAINER_DEVIATIONS.iter().map(|d| d.id).collect();
    for (_, _, _, id) in EXPECTED_DEVIATIONS {
        assert!(ids.contains(id), "unknown deviation id {id}");
    }

    let (mut benchmark_tasks, mut fl_tasks) = (0, 0);
    let mut failures: Vec<String> = Vec::new();
    let mut observed: BTreeSet<(String, String, String, String)> = BTreeSet::new();
    for case_dir in &cases {
        let case = case_dir.file_name().unwrap().to_string_lossy().into_owned();
        let expected: Value =
            serde_json::from_str(&std::fs::read_to_string(case_dir.join("expected.json")).unwrap())
                .unwrap();
        let opts = &expected["medperf_config"];
        for (task, want) in expected["tasks"].as_object().unwrap() {
            if want["scope"] != "benchmark" {
                fl_tasks += 1;
                continue;
            }
            benchmark_tasks += 1;
            let scratch = tempfile::tempdir().unwrap();
            let h = scratch.path().join("H");
            std::fs::create_dir_all(&h).unwrap();
            make_existing(&h, want);
            let got = Config::load(case_dir)
                .map_err(|e| e.to_string())
                .and_then(|cfg| {
                    let first = run_task(&cfg, task, want, opts, &h)?;
                    // Q1: MedPerf's second run of a task on the same cube loses its run_args;
                    // cohort's config is never changed by a run.
                    let second = run_task(&cfg, task, want, opts, &h)?;
                    let strip = |p: &Plan| {
                        let mut i = p.invocation.clone();
                        i.created_dirs.clear();
                        i
                    };
                    assert_eq!(strip(&first), strip(&second), "{case}/{task}: second run");
                    Ok(first)
                });
            let medperf_error = want["error"].as_str();
            let mut note = |what: &str, detail: String| {
                let deviation = EXPECTED_DEVIATIONS
                    .iter()
                    .find(|(c, t, w, _)| *c == case && t == task && *w == what);
                match deviation {
                    Some((_, _, _, id)) => {
                        observed.insert((case.clone(), task.clone(), what.into(), id.to_string()));
                    }
                    None => failures.push(format!("{case}/{task}: {what}: {detail}")),
                }
            };
            match (medperf_error, got) {
                (Some(e), Err(ours)) => {
                    // Both refuse, for the same reason (in cohort's words).
                    let same = SAME_REFUSAL
                        .iter()
                        .any(|(mp, us)| e.contains(mp) && ours.contains(us));
                    if !same {
                        failures.push(format!(
                            "{case}/{task}: refused for another reason\n  medperf {e}\n  cohort  {ours}"
                        ));
                    }
                }
                (Some(e), Ok(_)) => note("runs", format!("MedPerf refuses ({e}), cohort runs")),
                (None, Err(e)) => note("refused", format!("MedPerf runs, cohort refuses: {e}")),
                (None, Ok(plan)) => {
                    let argv: Vec<String> = want["docker_argv"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|s| s.as_str().unwrap().to_string())
                        .collect();
                    let h_str = h.to_string_lossy().into_owned();
                    let medperf: Vec<String> = medperf_core(&argv)
                        .into_iter()
                        .map(|s| s.replace("/H/", &format!("{h_str}/")))
                        .collect();
                    let ours = plan_core(&plan, want["disable_network"] == true);
                    if medperf != ours {
                        note(
                            "argv",
                            format!("\n  medperf {medperf:?}\n  cohort  {ours:?}"),
                        );
                    }
                    // Whatever the config's section says, a data owner's inputs are read-only.
                    for p in plan
                        .params
                        .iter()
                        .filter(|p| p.io == cohort::mlcube::Io::Input)
                    {
                        let m = plan
                            .hardening
                            .mounts
                            .iter()
                            .find(|m| m.host == p.host)
                            .expect("every input is mounted");
                        assert!(m.read_only, "{case}/{task}: input {} is writable", p.name);
                    }
                }
            }
        }
    }
    for (case, task, what, id) in EXPECTED_DEVIATIONS {
        let key = (
            case.to_string(),
            task.to_string(),
            what.to_string(),
            id.to_string(),
        );
        if !observed.contains(&key) {
            failures.push(format!(
                "{case}/{task}: listed deviation {what} ({id}) did not occur"
            ));
        }
    }
    assert_eq!(benchmark_tasks, 49, "benchmark and edge tasks");
    assert_eq!(fl_tasks, 18, "federated-learning tasks (out of scope)");
    assert!(
        failures.is_empty(),
        "{} differences:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
