//! `cohort mlcube run` end to end through the real binary: the `--dry-run --json` contract,
//! the refusal of `--name=value`, one-line errors with hints and their exit codes, and one
//! real run through the Docker Engine (skipped only when /var/run/docker.sock is absent and CI
//! is not `true`), and the sandbox: a planted link, a cube's own security options.

#[path = "support/cli.rs"]
mod support;

use std::path::{Path, PathBuf};

use cohort::mlcube::{ContainerRuntime, DockerRuntime};
use serde_json::Value;
use support::{cohort, stderr};

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
    if !docker_here() {
        return;
    }
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
        .expect("busybox-static is installed");
    let tmp = tempfile::tempdir().unwrap();
    let cube = tmp.path().join("cube");
    // A label of its own, first, so removing this image removes only its own build steps.
    let run = cohort::mlcube::docker::new_run_id();
    std::fs::create_dir_all(cube.join("build")).unwrap();
    std::fs::copy(busybox, cube.join("build/busybox")).unwrap();
    std::fs::write(
        cube.join("build/Dockerfile"),
        format!("FROM scratch\nLABEL org.cohort.test.run=\"{run}\"\nCOPY busybox /bin/busybox\nENTRYPOINT [\"/bin/busybox\", \"sh\", \"-c\", \"echo failing on purpose; exit 5\", \"--\"]\n"),
    )
    .unwrap();
    let tag = format!("cohort-test/cli:{}", &run[..12]);
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

/// Whether a Docker Engine is here. Skipping is allowed on a developer's machine only: with
/// CI=true a missing Engine fails the test, so CI never passes by skipping.
fn docker_here() -> bool {
    if Path::new("/var/run/docker.sock").exists() {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true but /var/run/docker.sock does not exist: this test needs a Docker Engine");
    }
    eprintln!("skipping: /var/run/docker.sock does not exist");
    false
}

const SANDBOX_SH: &str = r#"
task="$1"; shift
for arg in "$@"; do
  name="${arg%%=*}"; name="${name#--}"; value="${arg#*=}"
  eval "p_$name=\"\$value\""
done
case "$task" in
  plant) ln -s "$TARGET" "$(dirname "$p_log")/evil"; echo planted > "$p_log" ;;
  use) echo owned > "$p_evil/owned.txt" ;;
  status) grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status > "$p_out/status.txt" ;;
  *) exit 64 ;;
esac
"#;

/// A local cube (busybox-static, built `FROM scratch` on first run) with the tasks of
/// [`SANDBOX_SH`]; `docker` is added to its `docker:` section. The image is removed on drop.
struct SandboxCube {
    dir: PathBuf,
    tag: String,
}

impl SandboxCube {
    fn new(root: &Path, docker: &str, tasks: &str) -> SandboxCube {
        let busybox = ["/bin/busybox", "/usr/bin/busybox"]
            .into_iter()
            .find(|p| Path::new(p).is_file())
            .expect("busybox-static is installed");
        let dir = root.join("cube");
        std::fs::create_dir_all(dir.join("build")).unwrap();
        std::fs::copy(busybox, dir.join("build/busybox")).unwrap();
        std::fs::write(dir.join("build/run.sh"), SANDBOX_SH).unwrap();
        let run = cohort::mlcube::docker::new_run_id();
        // A label of its own, first, gives each cube an image chain of its own: removing an image
        // also removes its untagged build steps, which must never be steps another test builds on.
        std::fs::write(
            dir.join("build/Dockerfile"),
            format!(
                "FROM scratch\nLABEL org.cohort.test.run=\"{run}\"\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n\
                 COPY run.sh /cube/run.sh\nENTRYPOINT [\"/bin/busybox\", \"sh\", \"/cube/run.sh\"]\n"
            ),
        )
        .unwrap();
        let tag = format!("cohort-test/sandbox:{}", &run[..12]);
        std::fs::write(
            dir.join("mlcube.yaml"),
            format!(
                "name: sandbox\ndocker: {{image: '{tag}', build_context: build, build_strategy: auto{docker}}}\ntasks:\n{tasks}"
            ),
        )
        .unwrap();
        SandboxCube { dir, tag }
    }

    fn path(&self) -> &str {
        self.dir.to_str().unwrap()
    }
}

impl Drop for SandboxCube {
    fn drop(&mut self) {
        if let Ok(rt) = DockerRuntime::connect(None) {
            let _ = rt.remove_image(&self.tag);
        }
    }
}

/// Issue 14, class 2: a container plants a link in its workspace pointing at a root-owned host
/// folder; the next run must refuse it, not create through it, hand it over or mount it.
#[test]
fn a_link_planted_by_one_run_is_refused_by_the_next() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    if !docker_here() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().join("host-only");
    std::fs::create_dir(&target).unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o700)).unwrap();
    let before = std::fs::metadata(&target).unwrap();
    let cube = SandboxCube::new(
        tmp.path(),
        &format!(", env_args: {{TARGET: '{}'}}", target.display()),
        "  plant: {parameters: {outputs: {log: {type: file, default: log.txt}}}}\n\
         \x20 use: {parameters: {outputs: {evil: {type: directory, default: evil}}}}\n",
    );
    let out = cohort(
        tmp.path(),
        &["mlcube", "run", cube.path(), "--task", "plant"],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let link = cube.dir.join("workspace/evil");
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink(),
        "run 1 planted the link"
    );

    let out = cohort(
        tmp.path(),
        &["mlcube", "run", cube.path(), "--task", "use"],
        &[],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "{} is (or lies behind) a symbolic link",
            link.display()
        )),
        "{err}"
    );
    assert!(err.contains("hint: "), "{err}");
    let after = std::fs::metadata(&target).unwrap();
    assert_eq!(
        (after.uid(), after.gid(), after.mode()),
        (before.uid(), before.gid(), before.mode()),
        "the link's target keeps its owner and mode"
    );
    assert!(
        !target.join("owned.txt").exists(),
        "the target was never mounted into the container"
    );
    // Only the run's own files exist, owned by the caller again after the run.
    let log = std::fs::metadata(cube.dir.join("workspace/log.txt")).unwrap();
    assert_eq!(log.uid(), rustix::process::getuid().as_raw());
}

/// Issue 14, class 3: security options from a cube's mlcube.yaml are dropped (and said so in
/// the plan's notes); the user's own --security may not turn the sandbox off either.
#[test]
fn a_cube_cannot_weaken_its_sandbox() {
    if !docker_here() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let cube = SandboxCube::new(
        tmp.path(),
        ", '--security-opt': seccomp=unconfined, cpu_args: '--security-opt=no-new-privileges=false'",
        "  status: {parameters: {outputs: {out: out/}}}\n",
    );
    let out = cohort(
        tmp.path(),
        &["--json", "mlcube", "run", cube.path(), "--dry-run"],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    let h = &plan["hardening"];
    assert_eq!(h["security_opt"], serde_json::json!(["no-new-privileges"]));
    let notes = h["notes"].to_string();
    for dropped in ["seccomp=unconfined", "no-new-privileges=false"] {
        assert!(
            notes.contains(&format!(
                "--security-opt={dropped} from mlcube.yaml is dropped"
            )),
            "{notes}"
        );
    }

    // For real: the kernel says the default seccomp filter and no-new-privileges are on.
    let out = cohort(tmp.path(), &["mlcube", "run", cube.path()], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("is dropped"), "{}", stderr(&out));
    let status = std::fs::read_to_string(cube.dir.join("workspace/out/status.txt")).unwrap();
    let fields: Vec<&str> = status.lines().collect();
    assert!(fields.contains(&"Seccomp:\t2"), "{status}");
    assert!(fields.contains(&"NoNewPrivs:\t1"), "{status}");

    for bad in [
        "seccomp=unconfined",
        "no-new-privileges=false",
        "apparmor=unconfined",
    ] {
        let out = cohort(
            tmp.path(),
            &["mlcube", "run", cube.path(), "--security", bad, "--dry-run"],
            &[],
        );
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{bad}: {err}");
        assert!(
            err.contains(&format!("\"--security-opt={bad}\" would")),
            "{bad}: {err}"
        );
        assert!(
            err.contains("hint: cohort keeps no-new-privileges"),
            "{err}"
        );
    }
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
