//! `cohort mlcube run` end to end through the real binary: the `--dry-run --json` contract,
//! the refusal of `--name=value`, one-line errors with hints and their exit codes, and one
//! real run through the Docker Engine (skipped only when /var/run/docker.sock is absent).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cohort::mlcube::{ContainerRuntime, DockerRuntime};
use serde_json::Value;

fn cohort(home: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cohort"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("COHORT_HOME", home.join("cohort"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("the cohort binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn case(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/conformance/mlcube")
        .join(name)
}

#[test]
fn dry_run_json_is_the_conformance_format_plus_hardening() {
    let tmp = tempfile::tempdir().unwrap();
    let cube = tmp.path().join("cube");
    std::fs::create_dir_all(cube.join("workspace")).unwrap();
    std::fs::copy(
        case("medperf-DFCI-model").join("mlcube.yaml"),
        cube.join("mlcube.yaml"),
    )
    .unwrap();
    std::fs::write(cube.join("workspace/parameters.yaml"), "").unwrap();
    let out = cohort(
        tmp.path(),
        &[
            "--json",
            "mlcube",
            "run",
            cube.to_str().unwrap(),
            "--task",
            "infer",
            "--dry-run",
        ],
        &[("DOCKER_HOST", "unix:///nonexistent/docker.sock")],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
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

    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(case("medperf-DFCI-model").join("expected.json")).unwrap(),
    )
    .unwrap();
    let want = &expected["tasks"]["infer"];
    for field in ["image", "entrypoint", "cmd", "env", "extra_run_args"] {
        assert_eq!(got[field], want[field], "{field}");
    }
    let root = cube.to_string_lossy().into_owned();
    let mounts: Vec<Value> = want["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let mut m = m.clone();
            m["host"] = Value::String(format!("{root}/{}", m["host"].as_str().unwrap()));
            m
        })
        .collect();
    assert_eq!(got["mounts"], Value::Array(mounts));

    let h = &got["hardening"];
    assert_eq!(h["network"], "none");
    assert_eq!(h["cap_drop"], serde_json::json!(["ALL"]));
    assert_eq!(h["read_only_rootfs"], true);
    assert_eq!(
        h["gpus"]["count"], -1,
        "gpu_args --gpus all as a device request"
    );
    let missing: Vec<&str> = h["missing_inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(missing, ["data_path", "model_info"]);
    assert!(
        !cube.join("workspace/predictions").exists(),
        "a dry run creates nothing"
    );
}

#[test]
fn dash_override_is_refused_with_a_hint() {
    let tmp = tempfile::tempdir().unwrap();
    let path = case("mlcube_examples-matmul");
    let out = cohort(
        tmp.path(),
        &[
            "mlcube",
            "run",
            path.to_str().unwrap(),
            "--dry-run",
            "--parameters_file=x.yaml",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("error: --parameters_file=x.yaml is not an option of `cohort mlcube run`"),
        "{err}"
    );
    assert!(
        err.contains(
            "hint: to set the task parameter parameters_file, write parameters_file=x.yaml"
        ),
        "{err}"
    );
    // name=value may come before or after options.
    let out = cohort(
        tmp.path(),
        &[
            "mlcube",
            "run",
            path.to_str().unwrap(),
            "parameters_file=/x/shapes.yaml",
            "--dry-run",
            "--json",
            "--memory",
            "1g",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got["cmd"][1], "--parameters_file=/mlcube_io0/shapes.yaml");
    assert_eq!(got["mounts"][0]["host"], "/x");
    assert_eq!(got["extra_run_args"], serde_json::json!(["--memory=1g"]));
}

#[test]
fn bad_input_is_one_line_with_a_hint() {
    let tmp = tempfile::tempdir().unwrap();
    let write = |name: &str, yaml: &str| -> String {
        let dir = tmp.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("mlcube.yaml"), yaml).unwrap();
        dir.to_string_lossy().into_owned()
    };
    let check = |args: &[&str], code: i32, first: &str, hint: &str| {
        let out = cohort(
            tmp.path(),
            args,
            &[("DOCKER_HOST", "unix:///nonexistent/docker.sock")],
        );
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(code), "{err}");
        let lines: Vec<&str> = err.lines().collect();
        assert!(
            lines[0].starts_with("error: ") && lines[0].contains(first),
            "{err}"
        );
        assert!(
            lines.iter().skip(1).all(|l| l.starts_with("hint: ")),
            "{err}"
        );
        assert!(err.contains(hint), "{err}");
    };
    let broken = write("broken", "name: [unclosed\ntasks: {}\n");
    check(
        &["mlcube", "run", &broken, "--dry-run"],
        1,
        "broken/mlcube.yaml is not a valid MLCube configuration",
        "hint: fix the YAML",
    );
    let ok = write(
        "ok",
        "name: ok\ndocker: {image: 'x/y:1'}\ntasks:\n  a: {parameters: {outputs: {o: o/}}}\n  b: {parameters: {outputs: {o: out.csv}}}\n",
    );
    check(
        &["mlcube", "run", &ok, "--task", "nope", "--dry-run"],
        1,
        "MLCube ok has no task \"nope\" (tasks: a, b)",
        "--task",
    );
    check(
        &["mlcube", "run", &ok, "--dry-run"],
        2,
        "MLCube ok has several tasks (a, b); pick one with --task",
        "",
    );
    check(
        &["mlcube", "run", &ok, "--task", "b", "--dry-run"],
        1,
        "task b, parameter o: an output needs a type",
        "type: file",
    );
    check(
        &["mlcube", "run", &ok, "--task", "a"],
        3,
        "cannot reach the Docker Engine at unix:///nonexistent/docker.sock",
        "DOCKER_HOST",
    );
}

#[test]
fn a_failing_task_fails_the_command() {
    if !Path::new("/var/run/docker.sock").exists() {
        eprintln!("skipping: /var/run/docker.sock does not exist");
        return;
    }
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
        .expect("busybox-static is installed");
    let tmp = tempfile::tempdir().unwrap();
    let cube = tmp.path().join("cube");
    std::fs::create_dir_all(cube.join("build")).unwrap();
    std::fs::copy(busybox, cube.join("build/busybox")).unwrap();
    std::fs::write(
        cube.join("build/Dockerfile"),
        "FROM scratch\nCOPY busybox /bin/busybox\nENTRYPOINT [\"/bin/busybox\", \"sh\", \"-c\", \"echo failing on purpose; exit 5\", \"--\"]\n",
    )
    .unwrap();
    let tag = format!(
        "cohort-test/cli:{}",
        &cohort::mlcube::docker::new_run_id()[..12]
    );
    std::fs::write(
        cube.join("mlcube.yaml"),
        format!("name: clicube\ndocker: {{image: '{tag}', build_context: build, build_strategy: auto}}\ntasks: {{go: {{parameters: {{outputs: {{o: o/}}}}}}}}\n"),
    )
    .unwrap();
    let log = tmp.path().join("go.log");
    let out = cohort(
        tmp.path(),
        &[
            "mlcube",
            "run",
            cube.to_str().unwrap(),
            "--log",
            log.to_str().unwrap(),
        ],
        &[],
    );
    let rt = DockerRuntime::connect(None).unwrap();
    let _ = rt.remove_image(&tag);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("error: MLCube clicube, task go: the container exited with code 5"),
        "{err}"
    );
    assert!(
        err.contains(&format!("hint: the task's output is in {}", log.display())),
        "{err}"
    );
    assert!(
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("failing on purpose")
    );
    assert!(cube.join("workspace/o").is_dir());
}

/// Issue 14: configurations that cost seconds to plan (interpolations doubling at each level,
/// 9 s) or to parse (200 KB of nested `[`, 55 s) are refused at once, with one line naming the
/// file or the cube, through the real binary.
#[test]
fn configuration_bombs_are_refused_quickly() {
    let tmp = tempfile::tempdir().unwrap();
    let mut doubling =
        String::from("name: bomb\ndocker: {image: 'x/y:${l32}'}\ntasks: {infer: {}}\nl0: ab\n");
    for i in 1..=32 {
        doubling.push_str(&format!("l{i}: ${{l{p}}}${{l{p}}}\n", p = i - 1));
    }
    let nested = format!("name: bomb\ntasks: {}\n", "[".repeat(200_000));
    for (name, yaml, want) in [
        ("doubling", doubling, "grows beyond"),
        ("nested", nested, "mlcube.yaml"),
    ] {
        let cube = tmp.path().join(name);
        std::fs::create_dir_all(&cube).unwrap();
        std::fs::write(cube.join("mlcube.yaml"), yaml).unwrap();
        let t = std::time::Instant::now();
        let out = cohort(
            tmp.path(),
            &[
                "mlcube",
                "run",
                cube.to_str().unwrap(),
                "--task",
                "infer",
                "--dry-run",
            ],
            &[("DOCKER_HOST", "unix:///nonexistent/docker.sock")],
        );
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{name}: {err}");
        assert!(
            err.lines().next().unwrap_or("").contains(want),
            "{name}: {err}"
        );
        assert!(
            t.elapsed() < std::time::Duration::from_secs(5),
            "{name}: {:?}",
            t.elapsed()
        );
    }
}
