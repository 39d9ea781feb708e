//! Ctrl-C during `cohort mlcube run`, through the real binary and a real Docker Engine: the
//! container is stopped and removed and the command exits 130 (128 + SIGINT), so a script can
//! tell an interruption from a failure; `-v` shows the container's output on a pipe too.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use cohort::mlcube::{ContainerRuntime, DockerRuntime};

/// Whether a Docker Engine is here; with CI=true a missing Engine fails the test.
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

/// A local cube (busybox-static, built `FROM scratch` on first run) whose one task `wait`
/// writes `out/started` and waits for a signal. Its name and image are its own; the image is
/// removed on drop.
struct WaitingCube {
    dir: PathBuf,
    name: String,
    tag: String,
}

impl WaitingCube {
    fn new(root: &Path) -> WaitingCube {
        let busybox = ["/bin/busybox", "/usr/bin/busybox"]
            .into_iter()
            .find(|p| Path::new(p).is_file())
            .expect("busybox-static is installed");
        let run = cohort::mlcube::docker::new_run_id();
        let dir = root.join("cube");
        std::fs::create_dir_all(dir.join("build")).unwrap();
        std::fs::copy(busybox, dir.join("build/busybox")).unwrap();
        std::fs::write(
            dir.join("build/run.sh"),
            "echo waiting for a signal\n\
             out=\"${2#--out=}\"\n\
             echo started > \"$out/started\"\n\
             trap 'exit 143' TERM\n\
             sleep 600 & wait\n",
        )
        .unwrap();
        // A label of its own, first: removing this image removes only its own build steps.
        std::fs::write(
            dir.join("build/Dockerfile"),
            format!(
                "FROM scratch\nLABEL org.cohort.test.run=\"{run}\"\nCOPY busybox /bin/busybox\n\
                 COPY run.sh /cube/run.sh\nENTRYPOINT [\"/bin/busybox\", \"sh\", \"/cube/run.sh\"]\n"
            ),
        )
        .unwrap();
        let name = format!("sigint-{}", &run[..12]);
        let tag = format!("cohort-test/sigint:{}", &run[..12]);
        std::fs::write(
            dir.join("mlcube.yaml"),
            format!(
                "name: {name}\ndocker: {{image: '{tag}', build_context: build, build_strategy: auto}}\n\
                 tasks:\n  wait: {{parameters: {{outputs: {{out: {{type: directory, default: out}}}}}}}}\n"
            ),
        )
        .unwrap();
        WaitingCube { dir, name, tag }
    }
}

impl Drop for WaitingCube {
    fn drop(&mut self) {
        if let Ok(rt) = DockerRuntime::connect(None) {
            let _ = rt.remove_image(&self.tag);
        }
    }
}

#[test]
fn an_interrupted_run_exits_130_and_leaves_no_container() {
    if !docker_here() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let cube = WaitingCube::new(tmp.path());
    let mut child = Command::new(env!("CARGO_BIN_EXE_cohort"))
        .args([
            "-v",
            "mlcube",
            "run",
            cube.dir.to_str().unwrap(),
            "--task",
            "wait",
        ])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", tmp.path())
        .env("COHORT_HOME", tmp.path().join("cohort"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The task has started once its output folder holds `started` (the image is built first).
    let started = cube.dir.join("workspace/out/started");
    while !started.exists() {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            panic!(
                "the run ended before the task started ({status}): {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(
        err.contains(&format!(
            "error: MLCube {}, task wait: cancelled",
            cube.name
        )),
        "{err}"
    );
    assert!(
        err.contains("hint: the container was stopped and removed"),
        "{err}"
    );
    // -v shows the container's output although stderr is a pipe here, not a terminal.
    assert!(err.contains("  | waiting for a signal"), "{err}");
    let left = Command::new("docker")
        .args([
            "ps",
            "-a",
            "-q",
            "--filter",
            &format!("label=org.cohort.cube={}", cube.name),
        ])
        .output()
        .unwrap();
    assert!(left.status.success());
    assert_eq!(
        String::from_utf8_lossy(&left.stdout).trim(),
        "",
        "a container was left behind"
    );
}
