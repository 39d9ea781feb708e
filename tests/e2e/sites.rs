//! Sites on separate machines: every role has its own home and clone, and before each site
//! acts the images it did not build or pull itself are removed from the Docker Engine. Images
//! reach sites through an authenticated image registry (pull by digest), as a tarball URL on a
//! loopback HTTP server and as an in-registry blob; the demo dataset given as a local file
//! reaches model owners as a blob. Nothing machine-local lands on the shared main.

use std::path::Path;

use cohort::mlcube::{ContainerRuntime, DockerRuntime};

use crate::env::json;
use crate::services::{FileServer, ImageRegistry, PASSWORD, USER, docker_or_skip};
use crate::world::World;

/// Image ids this test created; removed (and only they) when it ends.
pub(crate) struct Images {
    pub(crate) rt: DockerRuntime,
    ids: Vec<String>,
}

impl Images {
    pub(crate) fn new() -> Images {
        Images {
            rt: DockerRuntime::connect(std::env::var("DOCKER_HOST").ok().as_deref()).unwrap(),
            ids: Vec::new(),
        }
    }
    pub(crate) fn add(&mut self, id: &str) {
        if !self.ids.iter().any(|i| i == id) {
            self.ids.push(id.to_string());
        }
    }
    /// Removes every image of this test except those the acting site holds itself.
    pub(crate) fn forget_all_but(&self, keep: &[&str]) {
        for id in &self.ids {
            if !keep.contains(&id.as_str()) {
                self.rt.remove_image(id).unwrap();
            }
        }
    }
    pub(crate) fn present(&self, id: &str) -> bool {
        self.rt.image_id(id).unwrap().is_some()
    }
}

impl Drop for Images {
    fn drop(&mut self) {
        for id in &self.ids {
            self.rt.remove_image(id).ok();
        }
    }
}

/// A fixture cube whose image is this run's own (a label makes its id unique), so removing
/// it never disturbs tests running in parallel with the shared fixture images.
pub(crate) fn own_cube(w: &World, dir: &str, name: &str, run: &str) -> String {
    w.env.cube_variant(dir, name, |d| {
        let df = d.join("project/Dockerfile");
        let text = std::fs::read_to_string(&df).unwrap();
        std::fs::write(df, label_first(&text, run)).unwrap();
    })
}

/// `dockerfile` with a `LABEL` naming `run` right after its `FROM`: every build step of the
/// image is then this run's own, so removing the image (which removes its untagged steps too)
/// never deletes a step another test is building on.
pub(crate) fn label_first(dockerfile: &str, run: &str) -> String {
    let mut out = String::new();
    let mut done = false;
    for line in dockerfile.lines() {
        out.push_str(line);
        out.push('\n');
        if !done && line.trim_start().to_ascii_uppercase().starts_with("FROM ") {
            out.push_str(&format!("LABEL org.cohort.test.run=\"{run}\"\n"));
            done = true;
        }
    }
    assert!(done, "no FROM line in {dockerfile}");
    out
}

pub(crate) fn image_of(w: &World, role: &str, cube: &str) -> String {
    let all = json(&w.as_(role, &["mlcube", "ls", "--json"]).ok());
    all.as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == cube)
        .unwrap_or_else(|| panic!("no cube {cube} in {all}"))["image_id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn sites_share_only_the_remote() {
    if !docker_or_skip("sites_share_only_the_remote") {
        return;
    }
    let started = std::time::Instant::now();
    let w = World::people();
    let e = &w.env;
    let reg = ImageRegistry::start();
    let login = reg.docker_config("login", PASSWORD);
    let login_s = login.to_str().unwrap().to_string();
    let with_login = [("DOCKER_CONFIG", login_s.as_str())];
    let host = reg.host();
    let run = format!("{}-{}", std::process::id(), reg.port);
    let mut images = Images::new();

    // carol (the committee) publishes her three cubes three ways.
    let prep = own_cube(&w, "prep", "sites-prep", &run);
    let reference = own_cube(&w, "model-good", "sites-ref", &run);
    let metrics = own_cube(&w, "metrics", "sites-metrics", &run);
    let weak = own_cube(&w, "model-weak", "sites-weak", &run);
    // A push without credentials fails naming the registry and how to log in; nothing is written.
    let before = w.branches("carol");
    let repo = format!("{host}/carol/prep");
    w.as_(
        "carol",
        &[
            "mlcube",
            "submit",
            &prep,
            "--name",
            "heart-prep",
            "--build",
            "--push",
            &repo,
        ],
    )
    .fails(3)
    .says(&host)
    .says(&format!("docker login {host}"));
    assert_eq!(w.branches("carol"), before, "nothing was written");
    // With the login: pushed as <name>-v1 and recorded by digest.
    let prep_id_run = w.env.cohort_env(
        "carol",
        &[
            "mlcube",
            "submit",
            &prep,
            "--name",
            "heart-prep",
            "--build",
            "--push",
            &repo,
        ],
        &with_login,
    );
    prep_id_run.ok();
    // The reference model as a `docker save` tarball on a loopback HTTP server.
    let served = e.path().join("served");
    std::fs::create_dir_all(&served).unwrap();
    let ref_project = std::path::Path::new(&reference).join("project");
    let ref_tag = std::fs::read_to_string(std::path::Path::new(&reference).join("mlcube.yaml"))
        .unwrap()
        .lines()
        .find_map(|l| l.trim().strip_prefix("image: ").map(str::to_string))
        .unwrap();
    let ref_id = images
        .rt
        .build_image(
            &ref_project,
            &ref_project.join("Dockerfile"),
            &ref_tag,
            &[],
            &cohort::progress::Silent,
        )
        .unwrap();
    images.add(&ref_id);
    images.rt.save(&ref_id, &served.join("ref.tar")).unwrap();
    let server = FileServer::start(served.clone());
    // A URL with credentials in it would publish them in the signed record: refused, and
    // nothing is recorded.
    let before = w.branches("carol");
    let submit_in = |url: &str, env: &[(&str, &str)]| {
        let args = [
            "mlcube",
            "submit",
            &reference,
            "--name",
            "heart-logreg",
            "--image-tarball",
            url,
        ];
        w.env.cohort_env("carol", &args, env)
    };
    let with_secret = server
        .url("ref.tar")
        .replacen("http://", "http://carol:s3cret@", 1);
    submit_in(&with_secret, &[])
        .fails(1)
        .says("user name or password");
    assert_eq!(w.branches("carol"), before);
    // A site that has not allowed its own networks never downloads from one (the server is
    // on loopback): refused before a byte is fetched, with the setting named, nothing recorded.
    let refused = submit_in(
        &server.url("ref.tar"),
        &[("COHORT_ALLOW_PRIVATE_HOSTS", "0")],
    );
    assert_ne!(refused.code, 0, "{}", refused.all());
    refused
        .says("127.0.0.1, an address of this site's own network")
        .says("COHORT_ALLOW_PRIVATE_HOSTS=1");
    assert_eq!(w.branches("carol"), before);
    submit_in(&server.url("ref.tar"), &[]).ok();
    // The metrics image, small, stored in the registry itself.
    w.as_(
        "carol",
        &[
            "mlcube",
            "submit",
            &metrics,
            "--name",
            "heart-metrics",
            "--build",
            "--save-image",
        ],
    )
    .ok();
    w.as_("carol", &["registry", "merge", "--all"]).ok();
    let prep_id = image_of(&w, "carol", "heart-prep");
    let metrics_id = image_of(&w, "carol", "heart-metrics");
    assert_eq!(image_of(&w, "carol", "heart-logreg"), ref_id);
    images.add(&prep_id);
    images.add(&metrics_id);
    let view = w.as_("carol", &["mlcube", "view", "heart-prep"]).ok();
    view.says(&format!("{repo}@sha256:"))
        .says("source = \"pull\"");
    // The demo dataset, a local file, becomes a blob of the benchmark.
    w.submit_heart(&[]);

    // mo, on another machine: only his own model image; the rest comes from the registry.
    w.as_("mo", &["registry", "sync"]).ok();
    images.forget_all_but(&[]);
    let mo_repo = format!("{host}/mo/weak");
    e.cohort_env(
        "mo",
        &[
            "mlcube", "submit", &weak, "--name", "bmi-only", "--build", "--push", &mo_repo,
        ],
        &with_login,
    )
    .ok();
    w.as_("mo", &["registry", "merge", "--all"]).ok();
    let weak_id = image_of(&w, "mo", "bmi-only");
    images.add(&weak_id);
    images.forget_all_but(&[&weak_id]);
    e.cohort_env(
        "mo",
        &["mlcube", "associate", "-b", "heart", "-m", "bmi-only"],
        &with_login,
    )
    .ok();
    assert!(
        images.present(&prep_id),
        "mo pulled the preparator by digest"
    );
    assert!(
        images.present(&metrics_id),
        "mo loaded the metrics image from its blob"
    );
    w.as_("mo", &["registry", "push"]).ok();
    w.as_("carol", &["registry", "sync"]).ok();
    w.as_(
        "carol",
        &["association", "approve", "-b", "heart", "-m", "bmi-only"],
    )
    .ok();

    // hosp-a, a third machine: builds nothing, pulls or loads everything.
    w.as_("hosp-a", &["registry", "sync"]).ok();
    images.forget_all_but(&[]);
    let raw = |p: &str| e.data(&format!("hospital-a/{p}"));
    let prepare = [
        "dataset",
        "prepare",
        "-b",
        "heart",
        "--name",
        "ward-a",
        "--data-path",
        &raw("data"),
        "--labels-path",
        &raw("labels"),
    ];
    // A site that has not allowed its own networks never has its Engine pull from one (the
    // image registry is on loopback): refused before the pull, naming the setting.
    let own_network = [with_login[0], ("COHORT_ALLOW_PRIVATE_HOSTS", "0")];
    let refused = e.cohort_env("hosp-a", &prepare, &own_network);
    assert_ne!(refused.code, 0, "{}", refused.all());
    refused
        .says(&format!("its registry {host} is at 127.0.0.1"))
        .says("COHORT_ALLOW_PRIVATE_HOSTS=1");
    assert!(!images.present(&prep_id), "the preparator was pulled");
    e.cohort_env("hosp-a", &prepare, &with_login).ok();
    w.as_("hosp-a", &["--yes", "dataset", "submit", "ward-a"])
        .ok();
    w.committee_merges("hosp-a");
    e.cohort_env(
        "hosp-a",
        &["dataset", "associate", "-d", "ward-a", "-b", "heart"],
        &with_login,
    )
    .ok();
    w.as_("hosp-a", &["registry", "push"]).ok();
    w.as_("carol", &["registry", "sync"]).ok();
    w.as_(
        "carol",
        &["association", "approve", "-b", "heart", "-d", "ward-a"],
    )
    .ok();
    w.as_("hosp-a", &["registry", "sync"]).ok();
    // Whatever hosp-a fetched itself stays; mo's model it never had.
    images.forget_all_but(&[&prep_id, &ref_id, &metrics_id]);
    e.cohort_env(
        "hosp-a",
        &["benchmark", "run", "-b", "heart", "-d", "ward-a"],
        &with_login,
    )
    .ok();
    assert!(
        images.present(&weak_id),
        "hosp-a pulled mo's model by digest"
    );
    w.results_land("hosp-a", "ward-a");

    // The committee releases; a stranger's fresh clone verifies it.
    w.as_("carol", &["registry", "sync"]).ok();
    w.as_("carol", &["result", "release", "-b", "heart"]).ok();
    let stranger = e.clone_dir("stranger");
    e.cohort(
        "stranger",
        &[
            "registry",
            "clone",
            e.remote().to_str().unwrap(),
            stranger.to_str().unwrap(),
            "--root",
            &w.id,
        ],
    )
    .ok();
    e.cohort("stranger", &["verify"]).ok();
    let board = e
        .cohort("stranger", &["leaderboard", "heart", "--format", "json"])
        .ok();
    assert!(board.stdout.contains("bmi-only"), "{}", board.stdout);

    // Nothing machine-local on the shared main.
    let remote = e.remote();
    let tmp = e.path().to_str().unwrap().to_string();
    let local = [
        tmp.as_str(),
        "/tmp/",
        "file://",
        "/home/",
        "source = \"local\"",
    ];
    let blobs = main_holds_no_local_path(e, "stranger", &remote, &local);
    assert!(
        blobs.len() >= 2,
        "demo data and the metrics image are blobs:\n{blobs:?}"
    );
    eprintln!("sites_share_only_the_remote: {:?}", started.elapsed());
}

#[test]
fn failed_pushes_name_the_host_and_record_nothing() {
    if !docker_or_skip("failed_pushes_name_the_host_and_record_nothing") {
        return;
    }
    let w = World::people();
    let e = &w.env;
    let mut images = Images::new();
    let run = format!("{}-push", std::process::id());
    let cube = own_cube(&w, "model-weak", "push-weak", &run);
    let before = w.branches("mo");
    let push = |repo: &str, docker_config: &str| {
        e.cohort_env(
            "mo",
            &[
                "mlcube", "submit", &cube, "--name", "weak", "--build", "--push", repo,
            ],
            &[("DOCKER_CONFIG", docker_config)],
        )
    };
    // A registry that is down.
    let down = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let down_host = format!("127.0.0.1:{down}");
    let nowhere = e.path().join("no-docker-config");
    let r = push(&format!("{down_host}/mo/weak"), nowhere.to_str().unwrap());
    r.says(&down_host)
        .says(&format!("docker login {down_host}"));
    assert_ne!(r.code, 0);
    let tag = std::fs::read_to_string(std::path::Path::new(&cube).join("mlcube.yaml"))
        .unwrap()
        .lines()
        .find_map(|l| l.trim().strip_prefix("image: ").map(str::to_string))
        .unwrap();
    if let Some(id) = images.rt.image_id(&tag).unwrap() {
        images.add(&id);
    }
    // A registry that refuses the login.
    let reg = ImageRegistry::start();
    let wrong = reg.docker_config("wrong", "not-the-password");
    let r = push(&format!("{}/mo/weak", reg.host()), wrong.to_str().unwrap());
    assert_ne!(r.code, 0);
    r.says(&reg.host()).says("docker login");
    // A registry that refuses the upload (read-only maintenance).
    let ro = ImageRegistry::start_with("  maintenance:\n    readonly:\n      enabled: true\n");
    let login = ro.docker_config("login", PASSWORD);
    let r = push(&format!("{}/mo/weak", ro.host()), login.to_str().unwrap());
    assert_ne!(r.code, 0);
    r.says(&ro.host());
    assert_eq!(w.branches("mo"), before, "nothing was recorded");
    // The local-only image is refused without --local-only, with what to do instead.
    w.as_(
        "mo",
        &["mlcube", "submit", &cube, "--name", "weak", "--build"],
    )
    .fails(1)
    .says("--push REPO")
    .says("--local-only");
    assert_eq!(w.branches("mo"), before, "nothing was recorded");
    // A local file over the blob cap is refused with what to do instead.
    let big = e.path().join("big-weights.bin");
    std::fs::write(&big, vec![7u8; (25 << 20) + 1]).unwrap();
    w.as_(
        "mo",
        &[
            "mlcube",
            "submit",
            &cube,
            "--name",
            "weak",
            "--build",
            "--local-only",
            "--additional-files",
            big.to_str().unwrap(),
        ],
    )
    .fails(1)
    .says("over the 25 MiB cap")
    .says("hint: upload it");
    assert_eq!(w.branches("mo"), before, "nothing was recorded");
    // With --local-only it is recorded, and viewing it says plainly what that means.
    w.as_(
        "mo",
        &[
            "mlcube",
            "submit",
            &cube,
            "--name",
            "weak",
            "--build",
            "--local-only",
        ],
    )
    .ok();
    w.as_("mo", &["registry", "merge", "--all"]).ok();
    w.as_("mo", &["mlcube", "view", "weak"])
        .ok()
        .says("source = \"local\"")
        .says("other sites cannot get it");
    // Credentials from a credential helper (`credsStore`), as `docker login` leaves them on a
    // desktop: the helper protocol run for real, the push recorded by digest.
    let bin = e.path().join("helper-bin");
    std::fs::create_dir_all(&bin).unwrap();
    let helper = bin.join("docker-credential-cohorttest");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\n[ \"$1\" = get ] || exit 1\nread server\n[ \"$server\" = {} ] || {{ echo 'credentials not found in native keychain'; exit 1; }}\necho '{{\"Username\":\"{USER}\",\"Secret\":\"{PASSWORD}\"}}'\n",
            reg.host()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let store = e.path().join("store-config");
    std::fs::create_dir_all(&store).unwrap();
    std::fs::write(store.join("config.json"), r#"{"credsStore": "cohorttest"}"#).unwrap();
    let path = format!(
        "{}:{}:{}",
        bin.display(),
        std::path::Path::new(crate::env::bin())
            .parent()
            .unwrap()
            .display(),
        std::env::var("PATH").unwrap()
    );
    let repo = format!("{}/mo/weak", reg.host());
    e.cohort_env(
        "mo",
        &["mlcube", "submit", &cube, "--name", "weak", "--push", &repo],
        &[("DOCKER_CONFIG", store.to_str().unwrap()), ("PATH", &path)],
    )
    .ok();
    w.as_("mo", &["registry", "merge", "--all"]).ok();
    w.as_("mo", &["mlcube", "view", "weak"])
        .ok()
        .says(&format!("{repo}@sha256:"));
}

/// `cohort demo` plays the same separation (images travel as in-registry tarballs) and leaves
/// no machine-local path on its shared main; with `--json` its walkthrough moves to stderr and
/// stdout holds what it ran and the leaderboard it ended with.
#[test]
fn the_demo_registry_holds_no_local_path() {
    if !docker_or_skip("the_demo_registry_holds_no_local_path") {
        return;
    }
    let e = crate::env::TestEnv::new();
    let keep = e.path().join("demo");
    let run = e
        .cohort_in(
            "viewer",
            &e.role_dir("viewer"),
            &["demo", "--keep", keep.to_str().unwrap(), "--json"],
            &[],
        )
        .ok();
    run.says("loads them from the tarballs stored in the registry");
    assert!(
        run.stderr.contains("[admin] $ cohort registry init"),
        "{}",
        run.stderr
    );
    let doc = crate::env::json(&run);
    let steps = doc["steps"].as_array().unwrap();
    let failed: Vec<&str> = steps
        .iter()
        .filter(|s| s["ok"] == false)
        .map(|s| s["command"].as_str().unwrap())
        .collect();
    // The one step meant to fail: a crashing model's association is refused.
    assert_eq!(
        failed,
        ["cohort mlcube associate -b heart -m deep-risk"],
        "{doc}"
    );
    assert!(steps.len() > 50, "{doc}");
    assert_eq!(doc["leaderboard"]["benchmark"]["name"], "heart", "{doc}");
    assert!(!doc["leaderboard"]["entries"].as_array().unwrap().is_empty());
    assert_eq!(doc["kept"].as_str(), keep.to_str());
    assert_eq!(doc["registry_id"].as_str().unwrap().len(), 64);
    let remote = keep.join("remote.git");
    let tmp = e.path().to_str().unwrap().to_string();
    let local = [tmp.as_str(), "/tmp/", "file://", "source = \"local\""];
    let blobs = main_holds_no_local_path(&e, "viewer", &remote, &local);
    // The demo dataset and the five cube images.
    assert_eq!(blobs.len(), 6, "{blobs:?}");
}

/// Asserts that no file on `remote`'s main contains any of `needles` (paths of one machine),
/// and returns the blobs main holds.
fn main_holds_no_local_path(
    e: &crate::env::TestEnv,
    role: &str,
    remote: &Path,
    needles: &[&str],
) -> Vec<String> {
    for needle in needles {
        let g = e.git(role, remote, &["grep", "-I", "-n", "-F", needle, "main"]);
        assert_eq!(g.code, 1, "`{needle}` on main:\n{}", g.stdout);
    }
    e.git(
        role,
        remote,
        &["ls-tree", "-r", "--name-only", "main", "blobs/"],
    )
    .ok()
    .stdout
    .lines()
    .map(str::to_string)
    .collect()
}
