//! `cohort mlcube run` with MedPerf's `container_config.yaml` through the real binary: the
//! `--dry-run --json` shape (the same as for mlcube.yaml), `--mount` and its defaults, the
//! site's `--gpus`/`--shm-size`, and refusals with the file, task and label named. Refusals that
//! depend on existing paths run without `--dry-run`; none of these needs a Docker Engine.

#[path = "support/cli.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;
use support::stderr;

fn cohort(home: &Path, args: &[&str]) -> Output {
    // Nothing here may need the Engine.
    support::cohort(
        home,
        args,
        &[("DOCKER_HOST", "unix:///nonexistent/docker.sock")],
    )
}

/// A copy of a corpus case's container_config.yaml (and parameters.yaml) in a fresh folder.
fn case_copy(tmp: &Path, name: &str) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/conformance/medperf-container")
        .join(name);
    let dir = tmp.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["container_config.yaml", "parameters.yaml"] {
        if src.join(f).exists() {
            std::fs::copy(src.join(f), dir.join(f)).unwrap();
        }
    }
    dir
}

fn mounts(v: &Value) -> Vec<(String, String, bool)> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["host"].as_str().unwrap().to_string(),
                m["container"].as_str().unwrap().to_string(),
                m["read_only"].as_bool().unwrap(),
            )
        })
        .collect()
}

#[test]
fn dry_run_json_has_the_mlcube_shape_with_medperfs_volumes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = case_copy(tmp.path(), "chestxray_tutorial-metrics");
    let d = dir.display().to_string();
    let preds = tmp.path().join("preds");
    // The folder and the file itself give the same plan.
    let mut outs = Vec::new();
    for path in [d.clone(), format!("{d}/container_config.yaml")] {
        let out = cohort(
            tmp.path(),
            &[
                "--json",
                "mlcube",
                "run",
                &path,
                "--task",
                "evaluate",
                "--mount",
                &format!("predictions={}", preds.display()),
                "--gpus",
                "device=0,1",
                "--shm-size",
                "1g",
                "--dry-run",
            ],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        outs.push(serde_json::from_slice::<Value>(&out.stdout).unwrap());
    }
    assert_eq!(outs[0], outs[1]);
    let got = &outs[0];
    let keys: Vec<&str> = got
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "image",
            "entrypoint",
            "cmd",
            "mounts",
            "env",
            "extra_run_args",
            "hardening"
        ]
    );
    assert_eq!(got["image"], "mlcommons/chestxray-tutorial-metrics:0.0.1");
    assert_eq!(got["entrypoint"], Value::Null);
    assert_eq!(got["cmd"], serde_json::json!([]));
    assert_eq!(got["env"], serde_json::json!({}));
    assert_eq!(
        got["extra_run_args"],
        serde_json::json!(["--gpus", "device=0,1", "--shm-size", "1g"])
    );
    // MedPerf's volumes in its order (inputs :ro, outputs :rw), its /tmp left out; unset labels
    // default to <folder>/workspace/<label>, parameters.yaml beside the config.
    let want = vec![
        (
            preds.display().to_string(),
            "/mlcommons/volumes/predictions".to_string(),
            true,
        ),
        (
            format!("{d}/workspace/labels"),
            "/mlcommons/volumes/labels".into(),
            true,
        ),
        (
            format!("{d}/parameters.yaml"),
            "/mlcommons/volumes/parameters/parameters_file.yaml".into(),
            true,
        ),
        (
            format!("{d}/workspace/output_path"),
            "/mlcommons/volumes/results/results.yaml".into(),
            false,
        ),
    ];
    assert_eq!(mounts(&got["mounts"]), want);
    let h = &got["hardening"];
    assert_eq!(
        mounts(&h["mounts"]),
        want,
        "the results file alone is writable"
    );
    assert_eq!(h["network"], "none");
    assert_eq!(h["shm_size"], 1 << 30);
    assert_eq!(h["gpus"]["device_ids"], serde_json::json!(["0", "1"]));
    assert_eq!(
        h["create_files"],
        serde_json::json!([format!("{d}/workspace/output_path")])
    );
    let missing: Vec<&str> = h["missing_inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        missing,
        ["predictions", "labels"],
        "a dry run needs no host path"
    );
    assert!(!dir.join("workspace").exists(), "a dry run creates nothing");
}

#[test]
fn mounts_are_checked_against_the_task_and_the_format() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = case_copy(tmp.path(), "chestxray_tutorial-model_mobilenetv2");
    let d = dir.display().to_string();
    let out = cohort(
        tmp.path(),
        &[
            "mlcube",
            "run",
            &d,
            "--task",
            "infer",
            "--mount",
            "labels=/x",
            "--dry-run",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let e = stderr(&out);
    assert!(
        e.contains(
            "container_config.yaml, task infer, label labels: the task declares no volume labels"
        ) && e.contains("hint: --mount takes the labels"),
        "{e}"
    );
    // A label has one host path.
    let out = cohort(
        tmp.path(),
        &[
            "mlcube",
            "run",
            &d,
            "--task",
            "infer",
            "--mount",
            "data_path=/a",
            "--mount",
            "data_path=/b",
            "--dry-run",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--mount data_path=... is given twice"));
    // MLCube parameters stay NAME=VALUE; --mount is for container configurations.
    let mlcube = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/conformance/mlcube/mlcube_examples-hello_world");
    let out = cohort(
        tmp.path(),
        &[
            "mlcube",
            "run",
            mlcube.to_str().unwrap(),
            "--task",
            "hello",
            "--mount",
            "name=/x",
            "--dry-run",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--mount is for container_config.yaml"),
        "{}",
        stderr(&out)
    );
    // Unknown tasks list the config's tasks.
    let out = cohort(
        tmp.path(),
        &["mlcube", "run", &d, "--task", "evaluate", "--dry-run"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("tasks: infer"), "{}", stderr(&out));
}

#[test]
fn a_missing_input_is_refused_before_docker_naming_the_label() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = case_copy(tmp.path(), "chestxray_tutorial-model_mobilenetv2");
    let out = cohort(
        tmp.path(),
        &["mlcube", "run", dir.to_str().unwrap(), "--task", "infer"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let e = stderr(&out);
    assert!(
        e.contains("task infer: input data_path does not exist"),
        "{e}"
    );
    assert!(
        !e.contains("Docker"),
        "refused before the Engine is asked: {e}"
    );
    assert!(
        !dir.join("workspace/output_path").exists(),
        "nothing is created"
    );
}

#[test]
fn refusals_name_the_file_and_say_what_to_do() {
    let tmp = tempfile::tempdir().unwrap();
    // Both formats in one folder: name the file.
    let dir = case_copy(tmp.path(), "chestxray_tutorial-model_mobilenetv2");
    std::fs::write(
        dir.join("mlcube.yaml"),
        "name: x\ndocker: {image: y}\ntasks: {infer: {parameters: {}}}\n",
    )
    .unwrap();
    let out = cohort(
        tmp.path(),
        &["mlcube", "run", dir.to_str().unwrap(), "--dry-run"],
    );
    assert_eq!(out.status.code(), Some(1));
    let e = stderr(&out);
    assert!(
        e.contains("holds both mlcube.yaml and container_config.yaml") && e.contains("hint: pass"),
        "{e}"
    );
    // The encrypted archive points to cohort's private models.
    let enc = case_copy(tmp.path(), "tests-model-cpu-as_encrypted_docker_archive");
    let out = cohort(
        tmp.path(),
        &[
            "mlcube",
            "run",
            enc.to_str().unwrap(),
            "--task",
            "infer",
            "--dry-run",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let e = stderr(&out);
    assert!(
        e.contains("EncryptedDockerArchive is not run by cohort") && e.contains("private model"),
        "{e}"
    );
    // Singularity is refused plainly.
    let sif = case_copy(tmp.path(), "tests-model-cpu-as_singularity");
    let out = cohort(
        tmp.path(),
        &[
            "mlcube",
            "run",
            sif.to_str().unwrap(),
            "--task",
            "infer",
            "--dry-run",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("SingularityFile is not run by cohort"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_label_never_leaves_the_workspace() {
    // A label names the default host folder `workspace/<label>` of a local run: one that is
    // a path (`../../victim`, `/abs`, `..`) would mount a folder anywhere, writable when it is
    // an output. Refused when the file is read, dry run or not.
    let tmp = tempfile::tempdir().unwrap();
    let victim = tmp.path().join("victim");
    std::fs::create_dir_all(&victim).unwrap();
    std::fs::write(victim.join("f"), "precious").unwrap();
    let abs = tmp.path().join("abs");
    for label in [
        "../../victim".to_string(),
        abs.display().to_string(),
        "..".into(),
        ".".into(),
        "\"\"".into(),
        "a=b".into(),
    ] {
        let dir = tmp.path().join("cube");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("container_config.yaml"),
            format!(
                "container_type: DockerImage\nimage: x:1\ntasks:\n  infer:\n    output_volumes:\n      \
                 {label}: {{mount_path: /out, type: directory}}\n"
            ),
        )
        .unwrap();
        for dry in [true, false] {
            let mut args = vec!["mlcube", "run", dir.to_str().unwrap(), "--task", "infer"];
            if dry {
                args.push("--dry-run");
            }
            let out = cohort(tmp.path(), &args);
            let e = stderr(&out);
            assert_eq!(out.status.code(), Some(1), "{label}: {e}");
            assert!(
                e.contains("task infer, label") && e.contains("is not a plain name"),
                "{label}: {e}"
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
    assert!(!abs.exists());
    let names: Vec<_> = std::fs::read_dir(&victim).unwrap().collect();
    assert_eq!(
        names.len(),
        1,
        "nothing was created beside the victim's file"
    );
}

#[test]
fn yaml_merge_keys_read_as_medperf_reads_them() {
    // PyYAML (MedPerf's reader) applies `<<: *anchor`; the merged task plans like the
    // original, and a merge that puts a label in both sections is refused like writing it so.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cube");
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("container_config.yaml");
    std::fs::write(
        &cfg,
        "container_type: DockerImage\nimage: x:1\ntasks:\n  infer: &t\n    input_volumes: &in\n      \
         data_path: {mount_path: /in/data, type: directory}\n    output_volumes:\n      \
         output_path: {mount_path: /out, type: directory}\n    run_args: {command: [a]}\n  \
         evaluate:\n    <<: *t\n    run_args: {command: [b]}\n  statistics:\n    \
         input_volumes: *in\n    output_volumes:\n      <<: *in\n      \
         output_path: {mount_path: /o, type: file}\n",
    )
    .unwrap();
    let run = |task: &str| {
        cohort(
            tmp.path(),
            &[
                "mlcube",
                "run",
                cfg.to_str().unwrap(),
                "--task",
                task,
                "--dry-run",
                "--json",
            ],
        )
    };
    let (infer, eval) = (run("infer"), run("evaluate"));
    assert!(eval.status.success(), "{}", stderr(&eval));
    let (infer, eval): (Value, Value) = (
        serde_json::from_slice(&infer.stdout).unwrap(),
        serde_json::from_slice(&eval.stdout).unwrap(),
    );
    assert_eq!(infer["mounts"], eval["mounts"]);
    assert_eq!(eval["cmd"], serde_json::json!(["b"]));
    let stats = run("statistics");
    assert_eq!(stats.status.code(), Some(1));
    assert!(
        stderr(&stats).contains("task statistics, label data_path: is declared in both"),
        "{}",
        stderr(&stats)
    );
    // Duplicate keys are refused (PyYAML silently keeps the last one).
    std::fs::write(
        &cfg,
        "container_type: DockerImage\nimage: x:1\nimage: y:2\ntasks: {}\n",
    )
    .unwrap();
    let dup = run("infer");
    assert!(
        stderr(&dup).contains("container_config.yaml: not valid YAML")
            && stderr(&dup).contains("duplicate entry with key \"image\""),
        "{}",
        stderr(&dup)
    );
}

#[test]
fn the_sites_device_options_follow_one_rule_for_both_formats() {
    // What `mlcube run` accepts is what the workflow commands accept and what both planners
    // apply; a bad value is a usage error naming the option, never blamed on the config.
    let tmp = tempfile::tempdir().unwrap();
    let container = case_copy(tmp.path(), "chestxray_tutorial-model_mobilenetv2");
    let mlcube = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/conformance/mlcube/mlcube_examples-hello_world");
    let container_args = ["--task", "infer"];
    let mlcube_args = ["--task", "hello"];
    for (path, task) in [(&container, &container_args), (&mlcube, &mlcube_args)] {
        let p = path.to_str().unwrap();
        for (flag, value) in [
            ("--gpus", "count=2,capabilities=compute"),
            ("--gpus", "-1"),
            ("--gpus", "device="),
            ("--shm-size", "lots"),
            ("--shm-size", "99999999999999999999g"),
        ] {
            let option = format!("{flag}={value}");
            let mut args = vec!["mlcube", "run", p, "--dry-run", &option];
            args.extend_from_slice(task);
            let out = cohort(tmp.path(), &args);
            let e = stderr(&out);
            assert_eq!(out.status.code(), Some(2), "{flag} {value}: {e}");
            assert!(
                e.contains(&format!("{flag} {value}: ")) && !e.contains("run_args"),
                "{e}"
            );
        }
        // 02 is the count 2; 00 is no GPUs, as 0.
        for (value, devices) in [("02", Some(2)), ("00", None)] {
            let mut args = vec!["--json", "mlcube", "run", p, "--dry-run", "--gpus", value];
            args.extend_from_slice(task);
            let out = cohort(tmp.path(), &args);
            assert!(out.status.success(), "{}", stderr(&out));
            let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
            let count = plan["hardening"]["gpus"]["count"].as_i64();
            assert_eq!(count, devices, "--gpus {value}: {plan}");
        }
    }
    // A config's own bad shm_size names the file, the task and the key.
    std::fs::write(
        container.join("container_config.yaml"),
        "container_type: DockerImage\nimage: x:1\ntasks:\n  infer:\n    output_volumes:\n      \
         output_path: {mount_path: /out, type: directory}\n    run_args: {shm_size: 1g --privileged}\n",
    )
    .unwrap();
    let out = cohort(
        tmp.path(),
        &[
            "mlcube",
            "run",
            container.to_str().unwrap(),
            "--task",
            "infer",
            "--dry-run",
        ],
    );
    let e = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{e}");
    assert!(
        e.contains("container_config.yaml, task infer: run_args.shm_size: invalid size"),
        "{e}"
    );
}

#[test]
fn what_the_engine_would_refuse_at_start_is_refused_when_planned() {
    // An environment name holding `=` sets another variable; NUL makes runc fail the start,
    // which reads as the Engine failing (exit 3). Both formats: a usage of the config, exit 1,
    // before any Engine is asked (DOCKER_HOST points nowhere).
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    std::fs::create_dir_all(&dir).unwrap();
    let cases = [
        (
            "container_config.yaml",
            "container_type: DockerImage\nimage: x:1\ntasks:\n  infer:\n    run_args:\n      environment: {\"HOME=/x\": y}\n",
            "environment name \"HOME=/x\"",
        ),
        (
            "container_config.yaml",
            "container_type: DockerImage\nimage: x:1\ntasks:\n  infer:\n    run_args:\n      command: [\"a\\0b\"]\n",
            "holds a NUL character",
        ),
        (
            "container_config.yaml",
            "container_type: DockerImage\nimage: x:1\ntasks:\n  infer:\n    output_volumes:\n      o: {mount_path: \"/o\\0\", type: file}\n",
            "holds a NUL character",
        ),
        (
            "mlcube.yaml",
            "name: m\ndocker:\n  image: x:1\n  env_args: {X: \"a\\0b\"}\ntasks:\n  infer: {parameters: {}}\n",
            "environment value of X holds a NUL character",
        ),
        (
            "mlcube.yaml",
            "name: m\ndocker:\n  image: x:1\n  env_args: {\"\": b}\ntasks:\n  infer: {parameters: {}}\n",
            "environment name \"\"",
        ),
    ];
    for (file, text, want) in cases {
        for f in ["container_config.yaml", "mlcube.yaml"] {
            let _ = std::fs::remove_file(dir.join(f));
        }
        std::fs::write(dir.join(file), text).unwrap();
        for dry in [true, false] {
            let mut args = vec!["mlcube", "run", dir.to_str().unwrap(), "--task", "infer"];
            if dry {
                args.push("--dry-run");
            }
            let out = cohort(tmp.path(), &args);
            let e = stderr(&out);
            assert_eq!(out.status.code(), Some(1), "{text}: {e}");
            assert!(e.contains("task infer") && e.contains(want), "{text}: {e}");
        }
    }
}
