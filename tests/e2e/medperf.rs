//! MedPerf's chest X-ray tutorial containers (`container_config.yaml`, MedPerf 0.3.0, the
//! corpus's own files) through the whole workflow with the real Docker Engine: images built
//! `FROM scratch` (fixtures/medperf-chestxray), `benchmark submit` with its compatibility test,
//! a hospital's preparation, association, execution, sealed result and the committee's release.

use std::path::{Path, PathBuf};

use cohort::mlcube::{ContainerRuntime, DockerRuntime};

use crate::env::{copy_tree, json};
use crate::services::docker_or_skip;
use crate::sites::label_first;
use crate::world::World;

/// (fixture folder, corpus case, registered name, the image the config names)
const CUBES: &[(&str, &str, &str, &str)] = &[
    (
        "prep",
        "chestxray_tutorial-data_preparator",
        "xray-prep",
        "mlcommons/chestxray-tutorial-prep:0.0.1",
    ),
    (
        "model",
        "chestxray_tutorial-model_mobilenetv2",
        "xray-mobilenet",
        "mlcommons/chestxray-tutorial-mobilenetv2:0.0.1",
    ),
    (
        "metrics",
        "chestxray_tutorial-metrics",
        "xray-metrics",
        "mlcommons/chestxray-tutorial-metrics:0.0.1",
    ),
];

/// A preparator declaring `metadata_path` (MedPerf supplies it to all three tasks then).
const META_PREP: &str = r#"container_type: DockerImage
image: mlcommons/chestxray-tutorial-prep:0.0.1
tasks:
  prepare:
    run_args:
      command: ["sh", "-c", "python3 /project/prepare.py && echo 'n_cases: 8' > /mlcommons/volumes/metadata/meta.yaml"]
    input_volumes:
      data_path: {mount_path: /mlcommons/volumes/raw_data, type: directory}
      labels_path: {mount_path: /mlcommons/volumes/raw_labels, type: directory}
      parameters_file: {mount_path: /mlcommons/volumes/parameters/parameters_file.yaml, type: file}
    output_volumes:
      output_path: {mount_path: /mlcommons/volumes/data, type: directory}
      output_labels_path: {mount_path: /mlcommons/volumes/labels, type: directory}
      metadata_path: {mount_path: /mlcommons/volumes/metadata, type: directory}
  sanity_check:
    run_args:
      command: ["sh", "-c", "test -f /mlcommons/volumes/metadata/meta.yaml && python3 /project/sanity_check.py"]
    input_volumes:
      data_path: {mount_path: /mlcommons/volumes/data, type: directory}
      labels_path: {mount_path: /mlcommons/volumes/labels, type: directory}
      metadata_path: {mount_path: /mlcommons/volumes/metadata, type: directory}
  statistics:
    run_args:
      command: ["sh", "-c", "test -f /mlcommons/volumes/metadata/meta.yaml && python3 /project/statistics.py"]
    input_volumes:
      data_path: {mount_path: /mlcommons/volumes/data, type: directory}
      labels_path: {mount_path: /mlcommons/volumes/labels, type: directory}
      metadata_path: {mount_path: /mlcommons/volumes/metadata, type: directory}
    output_volumes:
      output_path: {mount_path: /mlcommons/volumes/statistics/statistics.yaml, type: file}
"#;

/// An evaluator keeping per-case outputs at the site (`local_outputs_path`).
const META_METRICS: &str = r#"container_type: DockerImage
image: mlcommons/chestxray-tutorial-metrics:0.0.1
tasks:
  evaluate:
    run_args:
      entrypoint: /bin/sh
      command: ["-c", "sh /project/evaluate.sh && echo 'per-case outputs' > /mlcommons/volumes/local_outputs/cases.txt"]
    input_volumes:
      predictions: {mount_path: /mlcommons/volumes/predictions, type: directory}
      labels: {mount_path: /mlcommons/volumes/labels, type: directory}
    output_volumes:
      output_path: {mount_path: /mlcommons/volumes/results/results.yaml, type: file}
      local_outputs_path: {mount_path: /mlcommons/volumes/local_outputs, type: directory}
"#;

/// Eight cases: opacity values and labels; at threshold 128 six are predicted right.
const CASES: &[(u32, u32)] = &[
    (200, 1),
    (30, 0),
    (150, 1),
    (90, 1),
    (250, 1),
    (10, 0),
    (140, 0),
    (100, 0),
];

fn write_raw(dir: &Path) -> (PathBuf, PathBuf) {
    let data = dir.join("data");
    let labels = dir.join("labels");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::create_dir_all(&labels).unwrap();
    let mut csv = String::from("case,label\n");
    for (i, (value, label)) in CASES.iter().enumerate() {
        std::fs::write(data.join(format!("case-{i}.txt")), format!("{value}\n")).unwrap();
        csv.push_str(&format!("case-{i},{label}\n"));
    }
    std::fs::write(labels.join("labels.csv"), csv).unwrap();
    (data, labels)
}

/// Every file of `dir` (not .git) whose text contains `needle`.
fn files_containing(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if e.file_name() == ".git" {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else if std::fs::read_to_string(&p).is_ok_and(|t| t.contains(needle)) {
                found.push(p);
            }
        }
    }
    found
}

#[test]
fn medperf_chestxray_containers_end_to_end() {
    if !docker_or_skip("medperf_chestxray_containers_end_to_end") {
        return;
    }
    let w = World::people();
    let e = &w.env;
    let src = Path::new(env!("CARGO_MANIFEST_DIR"));
    // Images are built from this fixture, never reused from an earlier build under the tag.
    let docker = DockerRuntime::connect(None).unwrap();
    let run = cohort::mlcube::docker::new_run_id();
    for (fixture, case, _, image) in CUBES {
        let to = e.path().join("medperf").join(fixture);
        copy_tree(&src.join("fixtures/medperf-chestxray").join(fixture), &to);
        std::fs::copy(
            src.join("tests/conformance/medperf-container")
                .join(case)
                .join("container_config.yaml"),
            to.join("container_config.yaml"),
        )
        .unwrap();
        std::fs::copy("/bin/busybox", to.join("busybox"))
            .expect("busybox-static is installed (.ci/run installs it)");
        let df = to.join("Dockerfile");
        let text = std::fs::read_to_string(&df).unwrap();
        std::fs::write(&df, label_first(&text, &run)).unwrap();
        let _ = docker.remove_image(image);
    }
    for (fixture, _, name, _) in CUBES {
        let path = e.path().join("medperf").join(fixture);
        w.as_(
            "carol",
            &[
                "mlcube",
                "submit",
                path.to_str().unwrap(),
                "--name",
                name,
                "--build",
                "--local-only",
            ],
        )
        .ok();
    }
    w.as_("carol", &["registry", "merge", "--all"]).ok();
    // The registry holds MedPerf's file under its own name, bound by the cube's record.
    let clone = e.clone_dir("carol");
    let stored = clone.join("mlcubes/xray-prep/v1/container_config.yaml");
    assert_eq!(
        std::fs::read(&stored).unwrap(),
        std::fs::read(
            src.join("tests/conformance/medperf-container/chestxray_tutorial-data_preparator/container_config.yaml")
        )
        .unwrap()
    );
    assert!(!clone.join("mlcubes/xray-prep/v1/mlcube.yaml").exists());

    // The demo dataset: a tarball with paths.yaml, as for MLCubes.
    let demo = e.path().join("demo");
    write_raw(&demo);
    std::fs::write(
        demo.join("paths.yaml"),
        "data_path: data\nlabels_path: labels\n",
    )
    .unwrap();
    let demo_tar = e.path().join("demo.tar.gz");
    let tar = std::process::Command::new("tar")
        .args([
            "czf",
            demo_tar.to_str().unwrap(),
            "-C",
            demo.to_str().unwrap(),
            ".",
        ])
        .status()
        .unwrap();
    assert!(tar.success());
    w.as_(
        "carol",
        &[
            "benchmark",
            "submit",
            "--name",
            "xray",
            "--data-preparator",
            "xray-prep",
            "--reference-model",
            "xray-mobilenet",
            "--metrics",
            "xray-metrics",
            "--demo-dataset",
            demo_tar.to_str().unwrap(),
            "--committee",
            "dave",
            "--primary-metric",
            "accuracy",
        ],
    )
    .ok();
    w.as_("carol", &["registry", "push"]).ok();
    w.as_("admin", &["benchmark", "approve", "xray"]).ok();
    // A model owner tests a local (unregistered) container folder against the benchmark.
    w.as_("mo", &["registry", "sync"]).ok();
    let local_model = e.path().join("medperf/model");
    w.as_(
        "mo",
        &[
            "test",
            "run",
            "-b",
            "xray",
            "-m",
            local_model.to_str().unwrap(),
            "--gpus",
            "0",
        ],
    )
    .ok();

    // The contract's optional labels: a preparator declaring metadata_path (given to prepare,
    // sanity_check and statistics) and an evaluator declaring local_outputs_path (a private
    // folder of the run), both local folders on the tutorial's images.
    let meta_prep = e.path().join("medperf/meta-prep");
    std::fs::create_dir_all(&meta_prep).unwrap();
    std::fs::copy(
        src.join("fixtures/medperf-chestxray/prep/parameters.yaml"),
        meta_prep.join("parameters.yaml"),
    )
    .unwrap();
    std::fs::write(meta_prep.join("container_config.yaml"), META_PREP).unwrap();
    let meta_metrics = e.path().join("medperf/meta-metrics");
    std::fs::create_dir_all(&meta_metrics).unwrap();
    std::fs::write(meta_metrics.join("container_config.yaml"), META_METRICS).unwrap();
    w.as_(
        "mo",
        &[
            "test",
            "run",
            "-b",
            "xray",
            "-p",
            meta_prep.to_str().unwrap(),
            "-e",
            meta_metrics.to_str().unwrap(),
        ],
    )
    .ok();
    let private = files_containing(&e.cohort_home("mo").join("runs"), "per-case outputs");
    assert_eq!(private.len(), 1, "{private:?}");
    let folder = private[0].parent().unwrap();
    assert!(folder.ends_with("local_outputs"), "{}", folder.display());
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(folder).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "local outputs are the site's alone");

    // A hospital prepares with the site's device options (no GPU here: 0 removes any).
    let (data, labels) = write_raw(&e.path().join("hospital"));
    w.as_(
        "hosp-a",
        &[
            "dataset",
            "prepare",
            "-b",
            "xray",
            "--name",
            "ward-x",
            "--data-path",
            data.to_str().unwrap(),
            "--labels-path",
            labels.to_str().unwrap(),
            "--gpus",
            "0",
            "--shm-size",
            "64m",
        ],
    )
    .ok();
    assert!(!data.join(".written").exists(), "raw data stayed read-only");
    let runs = e.cohort_home("hosp-a").join("runs/prepare");
    let records = files_containing(&runs, "\"shm_size\": \"64m\"");
    assert_eq!(records.len(), 1, "the run's local record: {records:?}");
    w.as_("hosp-a", &["--yes", "dataset", "submit", "ward-x"])
        .ok();
    w.committee_merges("hosp-a");
    w.as_(
        "hosp-a",
        &[
            "dataset",
            "associate",
            "-d",
            "ward-x",
            "-b",
            "xray",
            "--shm-size",
            "64m",
        ],
    )
    .ok();
    w.as_("hosp-a", &["registry", "push"]).ok();
    w.as_(
        "carol",
        &["association", "approve", "-b", "xray", "-d", "ward-x"],
    )
    .ok();

    let run = json(
        &w.as_(
            "hosp-a",
            &[
                "benchmark",
                "run",
                "-b",
                "xray",
                "-d",
                "ward-x",
                "--gpus",
                "0",
                "--json",
            ],
        )
        .ok(),
    );
    assert_eq!(run[0]["model"], "xray-mobilenet", "{run}");
    let results = w.results("hosp-a");
    assert!(
        (crate::world::metric(&results, "xray-mobilenet", "accuracy") - 0.75).abs() < 1e-9,
        "{results:?}"
    );
    w.as_(
        "hosp-a",
        &["--yes", "result", "submit", "-b", "xray", "-d", "ward-x"],
    )
    .ok();
    w.committee_merges("hosp-a");
    w.as_("carol", &["result", "release", "-b", "xray"]).ok();
    let lb = w
        .as_("carol", &["leaderboard", "xray", "--format", "json"])
        .ok();
    assert!(
        lb.stdout.contains("xray-mobilenet") && lb.stdout.contains("0.75"),
        "{}",
        lb.stdout
    );
    // Site choices stay at the site: nothing in the registry names them.
    w.as_("hosp-a", &["registry", "sync"]).ok();
    assert!(files_containing(&e.clone_dir("hosp-a"), "shm_size").is_empty());
    for role in ["carol", "hosp-a"] {
        w.as_(role, &["verify"]).ok();
    }
}
