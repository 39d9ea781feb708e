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

/// A label is a name, never a path: for a label nobody fills, a local run mounts
/// `<workspace>/<label>`, so `/etc` or `../x` as a label would create and mount a host folder
/// outside the workspace read-write. Refused when the file is read, before anything is made.
#[test]
fn a_label_that_is_a_path_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside");
    for label in [outside.to_str().unwrap(), "../outside", "..", "a/b"] {
        let dir = tmp.path().join("cube");
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("container_config.yaml");
        std::fs::write(
            &file,
            format!(
                "container_type: DockerImage\nimage: x/y:1\ntasks:\n  infer:\n    \
                 output_volumes:\n      '{label}': {{mount_path: /out, type: directory}}\n"
            ),
        )
        .unwrap();
        for extra in [&["--dry-run"][..], &[]] {
            let mut args = vec!["mlcube", "run", file.to_str().unwrap(), "--task", "infer"];
            args.extend_from_slice(extra);
            let out = cohort(tmp.path(), &args);
            assert_eq!(out.status.code(), Some(1), "{label}");
            assert!(
                stderr(&out).contains("is not a plain name"),
                "{}",
                stderr(&out)
            );
        }
        assert!(!outside.exists(), "{label}: nothing made outside");
        assert!(!dir.join("workspace").exists(), "{label}: nothing made");
    }
}
