//! The MLCube engine against a real Docker Engine: a tiny cube image built `FROM scratch` with
//! busybox-static, run as the calling user, without network, unable to write its inputs;
//! exit codes, timeouts, log floods, image checks, and no container or temp file left behind.
//! Skipped (with a message) only when /var/run/docker.sock does not exist and CI is not `true`.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use cohort::mlcube::{
    ContainerRuntime, CubeConfig, DockerRuntime, Error, RunOutcome, RunRequest, RunSpec,
    ensure_image, plan, prepare_host,
};
use cohort::progress::{Cancel, Reporter, Silent, TaskId};

const SOCKET: &str = "/var/run/docker.sock";

const RUN_SH: &str = r#"
task="$1"; shift
for arg in "$@"; do
  name="${arg%%=*}"; name="${name#--}"; value="${arg#*=}"
  eval "p_$name=\"\$value\""
done
case "$task" in
  whoami) echo "$(id -u):$(id -g)" > "$p_out/id.txt" ;;
  net) cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' ' > "$p_out/ifaces.txt" ;;
  readonly)
    r=""
    if echo x > "$p_data/new.txt" 2>/dev/null; then r="$r data:written"; else r="$r data:denied"; fi
    if echo x >> "$p_params" 2>/dev/null; then r="$r params:written"; else r="$r params:denied"; fi
    if echo x > /etc/owned 2>/dev/null; then r="$r root:written"; else r="$r root:denied"; fi
    echo x > /tmp/scratch && r="$r tmp:ok"
    echo "params said: $(cat "$p_params")" > "$p_result"
    echo "$r" >> "$p_result"
    ;;
  fail) echo "about to fail"; exit 3 ;;
  hang) echo "sleeping"; sleep 600 ;;
  flood) yes 0123456789abcdefghijklmnopqrstuvwxyz | head -c 20000000; echo; echo done ;;
  *) echo "unknown task $task"; exit 64 ;;
esac
"#;

const DOCKERFILE: &str = "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\nCOPY run.sh /cube/run.sh\nENTRYPOINT [\"/bin/busybox\", \"sh\", \"/cube/run.sh\"]\n";

fn mlcube_yaml(image: &str) -> String {
    format!(
        "name: testcube\nplatform: {{accelerator_count: 0}}\n\
         docker: {{image: '{image}', build_context: project, build_file: Dockerfile, build_strategy: auto}}\n\
         tasks:\n\
         \x20 whoami: {{parameters: {{outputs: {{out: out/}}}}}}\n\
         \x20 net: {{parameters: {{outputs: {{out: out/}}}}}}\n\
         \x20 readonly: {{parameters: {{inputs: {{data: data/, params: {{type: file, default: params.yaml}}}}, outputs: {{result: {{type: file, default: result.txt}}}}}}}}\n\
         \x20 fail: {{parameters: {{outputs: {{out: out/}}}}}}\n\
         \x20 hang: {{parameters: {{outputs: {{out: out/}}}}}}\n\
         \x20 flood: {{parameters: {{outputs: {{out: out/}}}}}}\n"
    )
}

/// A test cube in a temp folder with its own image tag, removed at the end.
struct Cube {
    dir: tempfile::TempDir,
    rt: DockerRuntime,
    tag: String,
}

impl Cube {
    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn config(&self) -> CubeConfig {
        CubeConfig::load(self.root()).unwrap()
    }

    fn plan(&self, req: &RunRequest) -> cohort::mlcube::Plan {
        plan(
            &self.config(),
            req,
            &|_| None,
            Path::new("/nonexistent-home"),
        )
        .unwrap()
    }

    fn spec(&self, name: &str) -> RunSpec {
        let mut spec = RunSpec::new(self.root().join("logs").join(format!("{name}.log")));
        spec.run_id = Some(cohort::mlcube::docker::new_run_id());
        spec.stop_grace = Duration::from_secs(1);
        spec
    }

    fn run(&self, task: &str, timeout: Option<Duration>) -> (Result<RunOutcome, Error>, RunSpec) {
        let mut req = RunRequest::new(task);
        req.options.timeout = timeout;
        let p = self.plan(&req);
        let spec = self.spec(task);
        let out = self.rt.run(&p, &spec, &Silent, &Cancel::new());
        self.assert_no_container(&spec);
        (out, spec)
    }

    fn assert_no_container(&self, spec: &RunSpec) {
        let left = self.rt.labelled_containers(spec.run_id.as_deref()).unwrap();
        assert!(left.is_empty(), "containers left behind: {left:?}");
    }
}

impl Drop for Cube {
    fn drop(&mut self) {
        let _ = self.rt.remove_image(&self.tag);
    }
}

fn docker() -> Option<DockerRuntime> {
    if !Path::new(SOCKET).exists() {
        // CI must never pass by skipping.
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("CI=true but {SOCKET} does not exist: these tests need a Docker Engine");
        }
        eprintln!("skipping: {SOCKET} does not exist (no Docker Engine on this machine)");
        return None;
    }
    Some(DockerRuntime::connect(None).expect("the Docker socket exists, so the Engine must answer"))
}

fn busybox() -> PathBuf {
    for p in ["/bin/busybox", "/usr/bin/busybox"] {
        if Path::new(p).is_file() {
            return PathBuf::from(p);
        }
    }
    panic!("busybox-static is needed (apt-get install -y busybox-static)");
}

/// Builds are serialised: two classic builds of the same context at once only waste the
/// two cores this runs on.
static BUILD: Mutex<()> = Mutex::new(());

fn cube(name: &str) -> Option<Cube> {
    let mut rt = docker()?;
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("project");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::copy(busybox(), project.join("busybox")).unwrap();
    std::fs::write(project.join("run.sh"), RUN_SH).unwrap();
    let run = cohort::mlcube::docker::new_run_id();
    // Its own label, first, gives each test an image chain of its own: removing an image also
    // removes its untagged build steps, which must never be steps another test is building on.
    std::fs::write(
        project.join("Dockerfile"),
        DOCKERFILE.replacen(
            "FROM scratch\n",
            &format!("FROM scratch\nLABEL org.cohort.test.run=\"{run}\"\n"),
            1,
        ),
    )
    .unwrap();
    let tag = format!("cohort-test/{name}:{}", &run[..12]);
    std::fs::write(dir.path().join("mlcube.yaml"), mlcube_yaml(&tag)).unwrap();
    let scratch = dir.path().join("scratch");
    rt.set_scratch_dir(&scratch);
    let c = Cube { dir, rt, tag };
    {
        let _guard = BUILD.lock().unwrap_or_else(|e| e.into_inner());
        let p = c.plan(&RunRequest::new("whoami"));
        ensure_image(&c.rt, &p, &Silent).expect("the test image builds");
    }
    let left: Vec<_> = std::fs::read_dir(&scratch)
        .map(|d| d.collect())
        .unwrap_or_default();
    assert!(
        left.is_empty(),
        "temporary files left in the scratch folder: {left:?}"
    );
    Some(c)
}

#[test]
fn runs_as_the_calling_user_and_writes_outputs() {
    let Some(c) = cube("whoami") else { return };
    let (out, _) = c.run("whoami", None);
    let out = out.unwrap();
    out.check().unwrap();
    let id = std::fs::read_to_string(c.root().join("workspace/out/id.txt")).unwrap();
    // The calling user; a root caller's containers run as nobody instead.
    let (uid, gid) = cohort::mlcube::container_user();
    assert_eq!(id.trim(), format!("{uid}:{gid}"));
    if rustix::process::getuid().as_raw() == 0 {
        assert_eq!(uid, 65534);
    }
    assert!(out.image_id.starts_with("sha256:"));
}

#[test]
fn has_no_network() {
    let Some(c) = cube("net") else { return };
    let (out, _) = c.run("net", None);
    out.unwrap().check().unwrap();
    let ifaces = std::fs::read_to_string(c.root().join("workspace/out/ifaces.txt")).unwrap();
    assert_eq!(
        ifaces.split_whitespace().collect::<Vec<_>>(),
        ["lo"],
        "{ifaces}"
    );
}

#[test]
fn cannot_write_its_inputs_or_root_filesystem() {
    let Some(c) = cube("readonly") else { return };
    let ws = c.root().join("workspace");
    std::fs::create_dir_all(ws.join("data")).unwrap();
    std::fs::write(ws.join("data/input.csv"), "a,b\n").unwrap();
    std::fs::write(ws.join("params.yaml"), "k: v\n").unwrap();
    let (out, _) = c.run("readonly", None);
    out.unwrap().check().unwrap();
    let result = std::fs::read_to_string(ws.join("result.txt")).unwrap();
    assert!(result.contains("params said: k: v"), "{result}");
    for want in ["data:denied", "params:denied", "root:denied", "tmp:ok"] {
        assert!(result.contains(want), "{want} missing in {result}");
    }
    assert_eq!(
        std::fs::read_to_string(ws.join("params.yaml")).unwrap(),
        "k: v\n"
    );
    assert!(!ws.join("data/new.txt").exists());
}

#[test]
fn missing_input_is_refused_before_docker() {
    let Some(c) = cube("missing") else { return };
    let p = c.plan(&RunRequest::new("readonly"));
    let e =
        c.rt.run(&p, &c.spec("missing"), &Silent, &Cancel::new())
            .unwrap_err();
    assert!(
        matches!(&e, Error::MissingInput { param, .. } if param == "data"),
        "{e}"
    );
    assert!(
        e.to_string()
            .contains("task readonly: input data does not exist"),
        "{e}"
    );
    assert!(e.hint().is_some());
    assert!(
        !c.root().join("workspace/data").exists(),
        "a missing input must not be created"
    );
}

#[test]
fn exit_code_is_propagated() {
    let Some(c) = cube("fail") else { return };
    let (out, spec) = c.run("fail", None);
    let out = out.unwrap();
    assert_eq!(out.exit_code, 3);
    assert!(!out.timed_out);
    let e = out.check().unwrap_err();
    assert_eq!(
        e.to_string(),
        "MLCube testcube, task fail: the container exited with code 3"
    );
    assert!(e.hint().unwrap().contains("fail.log"));
    let log = std::fs::read_to_string(&spec.log_path).unwrap();
    assert!(log.contains("about to fail"), "{log}");
}

#[test]
fn timeout_stops_and_removes() {
    let Some(c) = cube("hang") else { return };
    let started = std::time::Instant::now();
    let (out, _) = c.run("hang", Some(Duration::from_secs(2)));
    let out = out.unwrap();
    assert!(out.timed_out);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    let e = out.check().unwrap_err();
    assert_eq!(
        e.to_string(),
        "MLCube testcube, task hang: stopped after the 2s timeout"
    );
}

#[test]
fn cancel_stops_and_removes() {
    let Some(c) = cube("cancel") else { return };
    let p = c.plan(&RunRequest::new("hang"));
    let spec = c.spec("cancel");
    let cancel = Cancel::new();
    let trigger = cancel.clone();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(1));
        trigger.cancel();
    });
    let e = c.rt.run(&p, &spec, &Silent, &cancel).unwrap_err();
    t.join().unwrap();
    assert!(matches!(e, Error::Cancelled { .. }), "{e}");
    c.assert_no_container(&spec);
}

/// Records the lines a run reports, to check the progress display gets them.
#[derive(Default)]
struct Lines(Mutex<Vec<String>>);

impl Reporter for Lines {
    fn line(&self, _task: TaskId, line: &str) {
        self.0.lock().unwrap().push(line.to_string());
    }
}

#[test]
fn log_flood_is_capped() {
    let Some(c) = cube("flood") else { return };
    let p = c.plan(&RunRequest::new("flood"));
    let mut spec = c.spec("flood");
    spec.log_limit = 1 << 20;
    let lines = Lines::default();
    let out = c.rt.run(&p, &spec, &lines, &Cancel::new()).unwrap();
    c.assert_no_container(&spec);
    out.check().unwrap();
    assert!(out.log_truncated);
    let size = std::fs::metadata(&spec.log_path).unwrap().len();
    assert!(size < (1 << 20) + 200, "log is {size} bytes");
    let log = std::fs::read_to_string(&spec.log_path).unwrap();
    assert!(
        log.ends_with("the rest of the task's output was discarded]\n"),
        "{}",
        &log[log.len() - 200..]
    );
    assert_eq!(
        lines.0.lock().unwrap().last().map(String::as_str),
        Some("done")
    );
}

#[test]
fn image_checks() {
    let Some(c) = cube("images") else { return };
    let p = c.plan(&RunRequest::new("whoami"));
    let id = c.rt.image_id(&c.tag).unwrap().expect("built");

    // A recorded id that differs is refused before any container exists.
    let mut spec = c.spec("mismatch");
    spec.expected_image_id = Some(format!("sha256:{}", "0".repeat(64)));
    let e = c.rt.run(&p, &spec, &Silent, &Cancel::new()).unwrap_err();
    assert!(matches!(e, Error::ImageIdMismatch { .. }), "{e}");
    assert!(e.to_string().contains(&id), "{e}");
    c.assert_no_container(&spec);

    // The recorded id runs (and the container is created by id).
    let mut spec = c.spec("match");
    spec.expected_image_id = Some(id.trim_start_matches("sha256:").to_string());
    let out = c.rt.run(&p, &spec, &Silent, &Cancel::new()).unwrap();
    assert_eq!(out.image_id, id);

    // A tarball is checked before it is loaded, and loads when it matches.
    let tarball = c.root().join("image.tar");
    save_image(&c.tag, &tarball);
    let e =
        c.rt.load_tarball(&tarball, &"1".repeat(64), &Silent)
            .unwrap_err();
    assert!(matches!(e, Error::Sha256Mismatch { .. }), "{e}");
    assert!(
        e.to_string().starts_with(&tarball.display().to_string()),
        "{e}"
    );
    let sha = sha256_file(&tarball);
    let loaded = c.rt.load_tarball(&tarball, &sha, &Silent).unwrap();
    assert!(loaded.contains(&id), "{loaded:?} should contain {id}");

    // An image that is not there and cannot be pulled (no registry) or built.
    let std_err = |yaml: &str| {
        std::fs::write(c.root().join("mlcube.yaml"), yaml).unwrap();
        let p = c.plan(&RunRequest::new("whoami"));
        ensure_image(&c.rt, &p, &Silent).unwrap_err()
    };
    let e = std_err(
        "name: testcube\ndocker: {image: 'localhost:1/cohort-test/absent:1', build_context: nowhere}\ntasks: {whoami: {parameters: {outputs: {out: out/}}}}\n",
    );
    assert!(matches!(e, Error::ImageUnavailable { .. }), "{e}");
    assert!(
        e.to_string().contains("localhost:1/cohort-test/absent:1"),
        "{e}"
    );
    assert!(e.hint().unwrap().contains("Dockerfile"), "{:?}", e.hint());
    std::fs::create_dir_all(c.root().join("broken")).unwrap();
    std::fs::write(
        c.root().join("broken/Dockerfile"),
        "FROM scratch\nCOPY missing-file /x\n",
    )
    .unwrap();
    let e = std_err(
        "name: testcube\ndocker: {image: 'cohort-test/broken:1', build_context: broken, build_strategy: auto}\ntasks: {whoami: {parameters: {outputs: {out: out/}}}}\n",
    );
    assert!(matches!(e, Error::BuildFailed { .. }), "{e}");
    assert!(e.to_string().contains("broken/Dockerfile"), "{e}");
    let left: Vec<_> = std::fs::read_dir(c.root().join("scratch"))
        .map(|d| d.collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "temporary files left: {left:?}");
}

#[test]
fn docker_not_running_is_an_environment_error() {
    let e = DockerRuntime::connect(Some("unix:///nonexistent/docker.sock")).unwrap_err();
    assert!(e.is_environment());
    assert!(
        e.to_string()
            .starts_with("cannot reach the Docker Engine at unix:///nonexistent/docker.sock"),
        "{e}"
    );
    assert!(e.hint().unwrap().contains("DOCKER_HOST"));
    let e = cohort::mlcube::docker::probe(Some("unix:///nonexistent/docker.sock")).unwrap_err();
    assert!(e.is_environment());
}

#[test]
fn probe_reports_the_engine() {
    if docker().is_none() {
        return;
    }
    let info = cohort::mlcube::docker::probe(None).unwrap();
    assert!(!info.version.is_empty());
    assert!(!info.api_version.is_empty());
}

#[test]
fn prepare_creates_only_outputs() {
    let Some(c) = cube("prepare") else { return };
    let p = c.plan(&RunRequest::new("whoami"));
    let created = prepare_host(&p).unwrap();
    assert!(created.contains(&c.root().join("workspace/out")));
}

fn save_image(reference: &str, to: &Path) {
    use futures_util::StreamExt;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let docker = bollard::Docker::connect_with_unix(SOCKET, 120, bollard::API_DEFAULT_VERSION)
            .unwrap()
            .negotiate_version()
            .await
            .unwrap();
        let mut file = std::fs::File::create(to).unwrap();
        let mut stream = docker.export_image(reference);
        while let Some(chunk) = stream.next().await {
            std::io::Write::write_all(&mut file, &chunk.unwrap()).unwrap();
        }
    });
}

fn sha256_file(p: &Path) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(std::fs::read(p).unwrap()))
}
