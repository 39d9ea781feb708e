//! MLCube 0.0.9 conformance: every task of every case in `tests/conformance/mlcube/` (real
//! configurations with the `docker run` the reference implementation issued) is planned and
//! compared field by field with `expected.json`. Differences are allowed only where listed
//! below by (case, task, field) with the id of a deliberate deviation from
//! `cohort::mlcube::DEVIATIONS`; a listed difference that no longer occurs fails too.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use cohort::mlcube::{CubeConfig, PathKind, RunRequest, deviation, plan, prepare_host};
use serde_json::Value;

#[path = "conformance/medperf.rs"]
mod medperf;

/// Every (case, task, field, deviation id) where cohort deliberately differs from 0.0.9.
/// `missing-inputs` (Q4): 0.0.9 created these tasks' missing inputs (folders, or the parent
/// folder of a missing file) and ran anyway; cohort refuses until they exist. The test then
/// creates them as a user would and checks cohort creates exactly the remaining folders.
#[rustfmt::skip]
const EXPECTED_DEVIATIONS: &[(&str, &str, &str, &str)] = &[
    ("medperf-BraTS-data_prep", "prepare", "created_dirs", "missing-inputs"),
    ("medperf-BraTS-data_prep", "sanity_check", "created_dirs", "missing-inputs"),
    ("medperf-BraTS-data_prep", "statistics", "created_dirs", "missing-inputs"),
    ("medperf-BraTS-metrics", "evaluate", "created_dirs", "missing-inputs"),
    ("medperf-BraTS-model_deepmedic", "infer", "created_dirs", "missing-inputs"),
    ("medperf-BraTS-model_deepscan", "infer", "created_dirs", "missing-inputs"),
    ("medperf-BraTS-model_nnunet", "infer", "created_dirs", "missing-inputs"),
    ("medperf-BraTS2023-data_prep", "prepare", "created_dirs", "missing-inputs"),
    ("medperf-BraTS2023-data_prep", "sanity_check", "created_dirs", "missing-inputs"),
    ("medperf-BraTS2023-data_prep", "statistics", "created_dirs", "missing-inputs"),
    ("medperf-BraTS2023-dummy_model", "infer", "created_dirs", "missing-inputs"),
    ("medperf-BraTS2023-inpainting_metrics", "evaluate", "created_dirs", "missing-inputs"),
    ("medperf-BraTS2023-inpainting_metrics-setup-mlcube_template", "evaluate", "created_dirs", "missing-inputs"),
    ("medperf-BraTS2023-segmentation_metrics", "evaluate", "created_dirs", "missing-inputs"),
    ("medperf-BraTS2023-segmentation_metrics-setup-mlcube_template", "evaluate", "created_dirs", "missing-inputs"),
    ("medperf-BraTS2024-data_prep", "prepare", "created_dirs", "missing-inputs"),
    ("medperf-BraTS2024-data_prep", "sanity_check", "created_dirs", "missing-inputs"),
    ("medperf-BraTS2024-data_prep", "statistics", "created_dirs", "missing-inputs"),
    ("medperf-BraTS2024-dummy_model", "infer", "created_dirs", "missing-inputs"),
    ("medperf-ChestXRay-chexpert_prep", "sanity_check", "created_dirs", "missing-inputs"),
    ("medperf-ChestXRay-chexpert_prep", "statistics", "created_dirs", "missing-inputs"),
    ("medperf-ChestXRay-chexpert_prep_separate_labels", "sanity_check", "created_dirs", "missing-inputs"),
    ("medperf-ChestXRay-chexpert_prep_separate_labels", "statistics", "created_dirs", "missing-inputs"),
    ("medperf-ChestXRay-xrv_densenet", "infer", "created_dirs", "missing-inputs"),
    ("medperf-ChestXRay-xrv_resnet", "infer", "created_dirs", "missing-inputs"),
    ("medperf-DFCI-model", "infer", "created_dirs", "missing-inputs"),
    ("medperf-DFCI-prep", "prepare", "created_dirs", "missing-inputs"),
    ("medperf-DFCI-prep", "sanity_check", "created_dirs", "missing-inputs"),
    ("medperf-DFCI-prep", "statistics", "created_dirs", "missing-inputs"),
    ("medperf-DataPrepManualSteps-data_prep", "sanity_check", "created_dirs", "missing-inputs"),
    ("medperf-DataPrepManualSteps-data_prep", "statistics", "created_dirs", "missing-inputs"),
    ("medperf-SurgMLCube-surg_metrics", "evaluate", "created_dirs", "missing-inputs"),
    ("medperf-SurgMLCube-surg_model_TeCNO", "infer", "created_dirs", "missing-inputs"),
    ("medperf-SurgMLCube-surg_prep", "prepare", "created_dirs", "missing-inputs"),
    ("medperf-SurgMLCube-surg_prep", "sanity_check", "created_dirs", "missing-inputs"),
    ("medperf-SurgMLCube-surg_prep", "statistics", "created_dirs", "missing-inputs"),
    ("medperf-chestxray_tutorial-data_preparator", "sanity_check", "created_dirs", "missing-inputs"),
    ("medperf-chestxray_tutorial-data_preparator", "statistics", "created_dirs", "missing-inputs"),
    ("medperf-chestxray_tutorial-model_custom_cnn", "infer", "created_dirs", "missing-inputs"),
    ("medperf-chestxray_tutorial-model_mobilenetv2", "infer", "created_dirs", "missing-inputs"),
    ("medperf-docs-snippets-model_mlcube", "infer", "created_dirs", "missing-inputs"),
    ("medperf-fl-cert", "verify_cert", "created_dirs", "missing-inputs"),
    ("medperf-fl-fl", "start_aggregator", "created_dirs", "missing-inputs"),
    ("medperf-fl-fl", "train", "created_dirs", "missing-inputs"),
    ("medperf-fl-fl_admin", "add_collaborator", "created_dirs", "missing-inputs"),
    ("medperf-fl-fl_admin", "get_experiment_status", "created_dirs", "missing-inputs"),
    ("medperf-fl-fl_admin", "remove_collaborator", "created_dirs", "missing-inputs"),
    ("medperf-fl-fl_admin", "update_plan", "created_dirs", "missing-inputs"),
    ("medperf-fl-prep", "sanity_check", "created_dirs", "missing-inputs"),
    ("medperf-fl-prep", "statistics", "created_dirs", "missing-inputs"),
    ("medperf-fl_post-fl", "start_aggregator", "created_dirs", "missing-inputs"),
    ("medperf-fl_post-fl", "train", "created_dirs", "missing-inputs"),
    ("medperf-fl_post-fl", "train_initial_model", "created_dirs", "missing-inputs"),
    ("medperf-templates-data_preparator_mlcube-rendered", "sanity_check", "created_dirs", "missing-inputs"),
    ("medperf-templates-data_preparator_mlcube-rendered", "statistics", "created_dirs", "missing-inputs"),
    ("medperf-templates-gandlf_mlcube-rendered", "construct_csv", "created_dirs", "missing-inputs"),
    ("medperf-templates-gandlf_mlcube-rendered", "infer", "created_dirs", "missing-inputs"),
    ("medperf-templates-gandlf_mlcube-rendered", "train", "created_dirs", "missing-inputs"),
    ("medperf-templates-model_mlcube-rendered", "infer", "created_dirs", "missing-inputs"),
    ("mlcube_examples-emdenoise", "preprocess", "created_dirs", "missing-inputs"),
    ("mlcube_examples-emdenoise", "test", "created_dirs", "missing-inputs"),
    ("mlcube_examples-emdenoise", "train", "created_dirs", "missing-inputs"),
    ("mlcube_examples-fets-metrics", "evaluate", "created_dirs", "missing-inputs"),
    ("mlcube_examples-fets-model", "infer", "created_dirs", "missing-inputs"),
    ("mlcube_examples-fets-preprocessing", "prepare", "created_dirs", "missing-inputs"),
    ("mlcube_examples-fets-preprocessing", "sanity_check", "created_dirs", "missing-inputs"),
    ("mlcube_examples-fets-preprocessing", "statistics", "created_dirs", "missing-inputs"),
    ("mlcube_examples-getting-started", "download_data", "created_dirs", "missing-inputs"),
    ("mlcube_examples-hello_world", "bye", "created_dirs", "missing-inputs"),
    ("mlcube_examples-hello_world", "hello", "created_dirs", "missing-inputs"),
    ("mlcube_examples-matmul", "matmul", "created_dirs", "missing-inputs"),
    ("mlcube_examples-mnist", "download", "created_dirs", "missing-inputs"),
    ("mlcube_examples-mnist", "train", "created_dirs", "missing-inputs"),
    ("mlcube_examples-mnist_fl-pytorch", "evaluate", "created_dirs", "missing-inputs"),
    ("mlcube_examples-mnist_fl-pytorch", "train", "created_dirs", "missing-inputs"),
    ("mlcube_examples-mnist_fl-tensorflow", "evaluate", "created_dirs", "missing-inputs"),
    ("mlcube_examples-mnist_fl-tensorflow", "train", "created_dirs", "missing-inputs"),
];

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance/mlcube")
}

struct Ctx {
    root: String,
    home: String,
}

impl Ctx {
    fn text(&self, s: &str) -> String {
        s.replace(&self.root, "${ROOT}").replace(&self.home, "~")
    }
    fn host(&self, p: &Path) -> String {
        let s = p.to_string_lossy();
        if s == self.root {
            ".".into()
        } else if let Some(rest) = s.strip_prefix(&format!("{}/", self.root)) {
            rest.into()
        } else if let Some(rest) = s.strip_prefix(&format!("{}/", self.home)) {
            format!("~/{rest}")
        } else {
            s.into_owned()
        }
    }
    fn fixture_path(&self, key: &str) -> PathBuf {
        match key.strip_prefix("~/") {
            Some(rest) => Path::new(&self.home).join(rest),
            None => Path::new(&self.root).join(key),
        }
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|s| s.as_str().expect("string").to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Creates `dir` and returns the folders that did not exist before.
fn mkdirs(dir: &Path) -> Vec<PathBuf> {
    let mut missing = Vec::new();
    let mut cur = Some(dir);
    while let Some(p) = cur {
        if p.exists() {
            break;
        }
        missing.push(p.to_path_buf());
        cur = p.parent();
    }
    std::fs::create_dir_all(dir).unwrap();
    missing
}

#[test]
fn mlcube_009_conformance() {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(corpus())
        .expect("the corpus is in tests/conformance/mlcube")
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    assert_eq!(cases.len(), 53, "52 cases from repositories, 1 handwritten");

    let mut tasks_seen = 0;
    let mut failures: Vec<String> = Vec::new();
    let mut observed: BTreeSet<(String, String, String, String)> = BTreeSet::new();

    for case_dir in &cases {
        let case = case_dir.file_name().unwrap().to_string_lossy().into_owned();
        let expected: Value =
            serde_json::from_str(&std::fs::read_to_string(case_dir.join("expected.json")).unwrap())
                .unwrap();
        let yaml = std::fs::read_to_string(case_dir.join("mlcube.yaml")).unwrap();
        for (task, want) in expected["tasks"].as_object().unwrap() {
            tasks_seen += 1;
            let scratch = tempfile::tempdir().unwrap();
            let root_dir = scratch.path().join(&case);
            let home_dir = scratch.path().join("home");
            std::fs::create_dir_all(&root_dir).unwrap();
            std::fs::create_dir_all(&home_dir).unwrap();
            std::fs::write(root_dir.join("mlcube.yaml"), &yaml).unwrap();
            let ctx = Ctx {
                root: root_dir.to_string_lossy().into_owned(),
                home: home_dir.to_string_lossy().into_owned(),
            };
            for (key, kind) in want["fixtures"].as_object().unwrap() {
                let p = ctx.fixture_path(key);
                if kind == "directory" {
                    std::fs::create_dir_all(&p).unwrap();
                } else {
                    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                    std::fs::write(&p, b"").unwrap();
                }
            }
            let mut env: Vec<(String, String)> = vec![
                ("PATH".into(), "/usr/bin:/bin".into()),
                ("LANG".into(), "C.UTF-8".into()),
                ("HOME".into(), ctx.home.clone()),
            ];
            for (k, v) in want["env_overrides"].as_object().unwrap() {
                env.push((k.clone(), v.as_str().unwrap().to_string()));
            }
            let lookup = |k: &str| {
                env.iter()
                    .rev()
                    .find(|(n, _)| n == k)
                    .map(|(_, v)| v.clone())
            };

            let mut req = RunRequest::new(task.clone());
            for o in strings(&want["overrides"]) {
                let (k, v) = o.split_once('=').expect("name=value");
                req.overrides.push((k.into(), v.into()));
            }
            for opt in strings(&want["cli_options"]) {
                match opt.split_once('=') {
                    Some(("--network", v)) => req.options.network = Some(v.into()),
                    Some(("--security", v)) => req.options.security = Some(v.into()),
                    Some(("--gpus", v)) => req.options.gpus = Some(v.into()),
                    Some(("--memory", v)) => req.options.memory = Some(v.into()),
                    Some(("--cpu", v)) => req.options.cpuset = Some(v.into()),
                    _ if opt.starts_with("-P") => req.options.platform.push(opt[2..].into()),
                    _ => panic!("{case}/{task}: unhandled cli option {opt}"),
                }
            }

            let mut fail = |field: &str, got: String, want: String| {
                failures.push(format!(
                    "{case} / {task} / {field}:\n   cohort: {got}\n    0.0.9: {want}"
                ));
            };
            let cfg = CubeConfig::load(&root_dir).unwrap();
            let planned = plan(&cfg, &req, &lookup, &home_dir);
            let p = match (&planned, want["error"].as_str()) {
                // 0.0.9 refused the task too; messages differ by design, the refusal matches.
                (Err(_), Some(_)) => continue,
                (Err(e), None) => {
                    fail("error", e.to_string(), "null".into());
                    continue;
                }
                (Ok(_), Some(err)) => {
                    fail("error", "null".into(), err.into());
                    continue;
                }
                (Ok(p), None) => p,
            };
            let inv = &p.invocation;

            if inv.image != want["image"].as_str().unwrap() {
                fail("image", inv.image.clone(), want["image"].to_string());
            }
            let got_ep = inv
                .entrypoint
                .as_ref()
                .map(|e| e.iter().map(|s| ctx.text(s)).collect::<Vec<_>>());
            let want_ep = want["entrypoint"]
                .as_array()
                .map(|_| strings(&want["entrypoint"]));
            if got_ep != want_ep {
                fail("entrypoint", format!("{got_ep:?}"), format!("{want_ep:?}"));
            }
            let got_cmd: Vec<String> = inv.cmd.iter().map(|s| ctx.text(s)).collect();
            if got_cmd != strings(&want["cmd"]) {
                fail(
                    "cmd",
                    format!("{got_cmd:?}"),
                    format!("{:?}", strings(&want["cmd"])),
                );
            }
            let got_mounts: Vec<(String, String, bool)> = inv
                .mounts
                .iter()
                .map(|m| (ctx.host(&m.host), m.container.clone(), m.read_only))
                .collect();
            let want_mounts: Vec<(String, String, bool)> = want["mounts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| {
                    (
                        m["host"].as_str().unwrap().to_string(),
                        m["container"].as_str().unwrap().to_string(),
                        m["read_only"].as_bool().unwrap(),
                    )
                })
                .collect();
            if got_mounts != want_mounts {
                fail(
                    "mounts",
                    format!("{got_mounts:?}"),
                    format!("{want_mounts:?}"),
                );
            }
            let got_env: Vec<(String, String)> = inv
                .env
                .iter()
                .map(|(k, v)| (k.clone(), ctx.text(v)))
                .collect();
            let want_env: Vec<(String, String)> = want["env"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect();
            if got_env != want_env {
                fail("env", format!("{got_env:?}"), format!("{want_env:?}"));
            }
            let got_extra: Vec<String> = inv.extra_run_args.iter().map(|s| ctx.text(s)).collect();
            if got_extra != strings(&want["extra_run_args"]) {
                fail(
                    "extra_run_args",
                    format!("{got_extra:?}"),
                    format!("{:?}", strings(&want["extra_run_args"])),
                );
            }
            let want_created = strings(&want["created_dirs"]);
            let mut got_created: Vec<String> =
                inv.created_dirs.iter().map(|d| ctx.host(d)).collect();
            got_created.sort();
            if got_created != want_created {
                fail(
                    "created_dirs (planned)",
                    format!("{got_created:?}"),
                    format!("{want_created:?}"),
                );
            }

            // What cohort actually creates. Missing inputs are refused (Q4); create them as a
            // user would, then cohort must create exactly what 0.0.9 created besides them.
            let mut made_by_user: Vec<PathBuf> = Vec::new();
            let missing: Vec<(PathBuf, PathKind)> = p
                .missing_inputs()
                .iter()
                .map(|m| (m.host.clone(), m.kind))
                .collect();
            if !missing.is_empty() {
                let err = prepare_host(p).expect_err("missing inputs are refused");
                assert!(err.to_string().contains("does not exist"), "{err}");
                observed.insert((
                    case.clone(),
                    task.clone(),
                    "created_dirs".into(),
                    "missing-inputs".into(),
                ));
                for (host, kind) in &missing {
                    match kind {
                        PathKind::Dir => made_by_user.extend(mkdirs(host)),
                        PathKind::File => {
                            made_by_user.extend(mkdirs(host.parent().unwrap()));
                            std::fs::write(host, b"").unwrap();
                        }
                    }
                }
            }
            let created = prepare_host(p).expect("inputs exist now");
            let mut actual: Vec<String> = created
                .iter()
                .chain(&made_by_user)
                .map(|d| ctx.host(d))
                .collect();
            actual.sort();
            actual.dedup();
            if actual != want_created {
                fail(
                    "created_dirs (actual)",
                    format!("{actual:?}"),
                    format!("{want_created:?}"),
                );
            }
            for d in &made_by_user {
                let rel = ctx.host(d);
                if !want_created.contains(&rel) {
                    fail(
                        "created_dirs (inputs)",
                        rel,
                        "not created by 0.0.9 either".into(),
                    );
                }
            }
        }
    }
    assert_eq!(
        tasks_seen, 106,
        "104 tasks from repositories, 2 handwritten"
    );

    let listed: BTreeSet<(String, String, String, String)> = EXPECTED_DEVIATIONS
        .iter()
        .map(|(c, t, f, d)| (c.to_string(), t.to_string(), f.to_string(), d.to_string()))
        .collect();
    for (_, _, _, id) in &listed {
        assert!(
            deviation(id).is_some(),
            "deviation {id} is not in DEVIATIONS"
        );
    }
    if observed != listed {
        let mut msg =
            String::from("the deviations observed differ from EXPECTED_DEVIATIONS; observed:\n");
        for (c, t, f, d) in &observed {
            msg.push_str(&format!("    ({c:?}, {t:?}, {f:?}, {d:?}),\n"));
        }
        failures.push(msg);
    }
    assert!(
        failures.is_empty(),
        "{} conformance failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!(
        "conformance: {tasks_seen} tasks, {} with a listed deviation (missing-inputs)",
        observed.len()
    );
}
