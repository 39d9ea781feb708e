//! Errors that help: permission problems said in words before any work starts, not-found errors
//! that suggest names and say where a thing is, and messages of `registry push` and `merge`.

use crate::env::TestEnv;
use crate::sites::label_first;

/// A cube folder nobody built before: its image tag is new, so "no image" is checkable.
fn fresh_cube(e: &TestEnv, name: &str) -> (String, String) {
    let run = format!("{name}-{}", std::process::id());
    let dir = e.cube_variant("model-good", name, |p| {
        let df = p.join("project/Dockerfile");
        let text = std::fs::read_to_string(&df).unwrap();
        std::fs::write(&df, label_first(&text, &run)).unwrap();
    });
    let yaml = std::fs::read_to_string(std::path::Path::new(&dir).join("mlcube.yaml")).unwrap();
    let image = yaml
        .lines()
        .find_map(|l| l.trim().strip_prefix("image: "))
        .unwrap()
        .to_string();
    (dir, image)
}

fn image_exists(image: &str) -> bool {
    std::process::Command::new("docker")
        .args(["image", "inspect", image])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn permission_problems_are_said_before_any_work() {
    let e = TestEnv::new();
    let id = e.init_shared("admin");
    e.fixtures();
    let (cube, image) = fresh_cube(&e, "mia-model");
    // mia has a key and a clone, but never asked to join.
    e.key("mia");
    e.cohort_in(
        "mia",
        &e.role_dir("mia"),
        &[
            "registry",
            "clone",
            e.remote().to_str().unwrap(),
            e.clone_dir("mia").to_str().unwrap(),
            "--root",
            &id,
        ],
        &[],
    )
    .ok();
    let submit = [
        "mlcube",
        "submit",
        &cube,
        "--name",
        "mia-model",
        "--build",
        "--local-only",
    ];
    let r = e.cohort("mia", &submit).fails(1);
    r.says("error: mia is not an admitted user of this registry, so cannot submit cubes")
        .says("hint: run `cohort user request");
    assert!(!r.all().contains("[authority]"), "{}", r.all());
    let branches = |role: &str| {
        e.git(role, &e.clone_dir(role), &["branch", "--list", "submit/*"])
            .ok()
            .stdout
    };
    assert_eq!(branches("mia").trim(), "", "a branch was written");
    assert!(
        !image_exists(&image),
        "{image} was built before the refusal"
    );
    // An empty listing says so instead of drawing an empty box.
    let r = e.cohort("mia", &["benchmark", "ls"]).ok();
    assert_eq!(r.stdout, "");
    r.says("no benchmarks yet");

    // Once mia asked, the hint points at the request waiting for an admin.
    e.cohort(
        "mia",
        &[
            "user",
            "request",
            "--name",
            "Mia",
            "--email",
            "mia@example.org",
        ],
    )
    .ok();
    e.cohort("mia", &submit)
        .fails(1)
        .says("waits on submit/mia/user-mia-v1")
        .says("cohort user approve mia");
    assert!(!image_exists(&image));

    // Admitted, mia is still not an admin: a grant is refused in words, nothing written.
    e.cohort("mia", &["registry", "push"]).ok();
    // Users, like every kind, are unknown or waiting on a branch.
    let grant = |who: &str| {
        e.cohort(
            "admin",
            &["user", "grant", who, "--role", "benchmark-owner"],
        )
    };
    grant("mia")
        .fails(1)
        .says("error: user `mia` is not approved yet: it waits on submit/mia/user-mia-v1")
        .says("hint: an admin admits them with `cohort user approve mia`");
    e.cohort("admin", &["user", "approve", "mia"]).ok();
    grant("mai")
        .fails(1)
        .says("error: no user `mai` in this registry")
        .says("hint: did you mean `mia`?");
    e.cohort("mia", &["registry", "sync"]).ok();
    let before = branches("mia");
    let r = e
        .cohort(
            "mia",
            &["user", "grant", "mia", "--role", "benchmark-owner"],
        )
        .fails(1);
    r.says("error: only registry admins can grant roles (mia is not an admin)")
        .says("hint: ask an admin");
    assert!(!r.all().contains("[signature]"), "{}", r.all());
    assert!(!r.all().contains("commit "), "{}", r.all());
    assert_eq!(branches("mia"), before, "a branch was written");
    // ...and so is submitting a benchmark without the benchmark-owner right.
    e.cohort(
        "mia",
        &[
            "benchmark",
            "submit",
            "--name",
            "mine",
            "--data-preparator",
            "x",
            "--reference-model",
            "y",
            "--metrics",
            "z",
            "--demo-dataset",
            "/nonexistent.tar.gz",
        ],
    )
    .fails(1)
    .says("only admins and holders of the benchmark-owner right can submit benchmarks")
    .says("cohort user grant mia --role benchmark-owner");
}

#[test]
fn names_not_found_say_where_they_are() {
    if !crate::services::docker_or_skip("names_not_found_say_where_they_are") {
        return;
    }
    let w = crate::world::World::people();
    let e = &w.env;
    w.benchmark(&[]);
    // A typo: the nearest names.
    w.as_("mo", &["benchmark", "view", "hart"])
        .fails(1)
        .says("error: no benchmark `hart` in this registry")
        .says("hint: did you mean `heart`?");
    w.as_("mo", &["leaderboard", "hearts"])
        .fails(1)
        .says("error: no benchmark `hearts` in this registry")
        .says("hint: did you mean `heart`?");
    w.as_("mo", &["mlcube", "view", "heart-logreq"])
        .fails(1)
        .says("did you mean `heart-logreg`?");
    // An existing benchmark with nothing released.
    w.as_("mo", &["leaderboard", "heart"])
        .fails(1)
        .says("error: benchmark heart has no release yet")
        .says("cohort result release");

    // Submitted, not approved: it waits on a branch.
    w.as_(
        "carol",
        &[
            "benchmark",
            "submit",
            "--name",
            "lungs",
            "--primary-metric",
            "auc",
            "--data-preparator",
            "heart-prep",
            "--reference-model",
            "heart-logreg",
            "--metrics",
            "heart-metrics",
            "--demo-dataset",
            &e.data("demo.tar.gz"),
        ],
    )
    .ok();
    w.as_("carol", &["benchmark", "view", "lungs"])
        .fails(1)
        .says("error: benchmark `lungs` is not approved yet: it waits on submit/carol/benchmark-lungs-v1")
        .says("cohort benchmark approve lungs");

    // A cube submitted, not merged; push says what it pushed, then that nothing is left.
    let weak = e.cube("model-weak");
    let submit = [
        "mlcube",
        "submit",
        weak.as_str(),
        "--name",
        "mo-weak",
        "--build",
        "--local-only",
    ];
    w.as_("mo", &submit).ok();
    let branch = "submit/mo/mlcube-mo-weak-v1";
    w.as_("mo", &["mlcube", "view", "mo-weak"])
        .fails(1)
        .says(&format!(
            "error: cube `mo-weak` is not merged yet: it waits on {branch}"
        ));
    w.as_("mo", &["registry", "push"])
        .ok()
        .says(&format!("pushed {branch} to "));
    w.as_("mo", &["registry", "push"])
        .ok()
        .says("nothing to push");
    // The committee merges it; a second merge finds nothing and says so.
    w.as_("carol", &["registry", "merge", "--all"])
        .ok()
        .says(branch);
    w.as_("carol", &["registry", "merge", "--all"])
        .ok()
        .says("nothing to merge");
    // mo's own copy of the branch is merged: push skips it and removes it.
    assert!(w.branches("mo").contains("mlcube-mo-weak"));
    w.as_("mo", &["registry", "push"])
        .ok()
        .says(&format!("skipped {branch}: main already holds it"));
    assert!(
        !w.branches("mo").contains("mlcube-mo-weak"),
        "{}",
        w.branches("mo")
    );
    w.as_("mo", &["mlcube", "view", "mo-weak"]).ok();
}

#[test]
fn a_release_points_at_results_waiting_to_be_merged() {
    if !crate::services::docker_or_skip("a_release_points_at_results_waiting_to_be_merged") {
        return;
    }
    let w = crate::world::World::people();
    w.benchmark(&[]);
    w.hospital("hosp-a", "hospital-a", "ward-a");
    w.as_(
        "hosp-a",
        &["benchmark", "run", "-b", "heart", "-d", "ward-a"],
    )
    .ok();
    w.as_(
        "hosp-a",
        &["--yes", "result", "submit", "-b", "heart", "-d", "ward-a"],
    )
    .ok();
    w.as_("hosp-a", &["registry", "push"]).ok();
    let r = w
        .as_("carol", &["result", "release", "-b", "heart"])
        .fails(1);
    r.says("error: benchmark heart has no results on main to release; 1 submission(s) of results wait to be merged: submit/hosp-a/result-")
        .says("hint: merge them first: `cohort registry merge --all`");
    // mo is no committee member: told so before anything is computed.
    w.as_("mo", &["result", "release", "-b", "heart"])
        .fails(1)
        .says("only members of the heart committee (carol, dave) can release its results; mo is not one");
}

/// One `error:` line and a `hint:`, in words: no OS error numbers, no library internals.
#[track_caller]
fn one_line_with_hint(r: &crate::env::Run) {
    let errors = r
        .stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .count();
    assert_eq!(errors, 1, "one error line:\n{}", r.stderr);
    assert!(
        r.stderr.lines().any(|l| l.starts_with("hint: ")),
        "a hint:\n{}",
        r.stderr
    );
    for raw in ["os error", "hyper", "client error (", "Os {"] {
        assert!(
            !r.stderr.contains(raw),
            "`{raw}` reached the user:\n{}",
            r.stderr
        );
    }
}

#[test]
fn errors_are_one_line_in_words_with_a_hint() {
    let e = TestEnv::new();
    std::fs::create_dir_all(e.role_dir("x")).unwrap();
    // A file where a folder is asked for.
    let file = e.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let f = file.to_str().unwrap();
    let r = e.cohort("x", &["demo", "--keep", f]).fails(1);
    one_line_with_hint(&r);
    r.says(&format!("error: {f}: already exists"))
        .says("hint: choose another path");
    let r = e
        .cohort_env("x", &["key", "ls"], &[("COHORT_HOME", f)])
        .fails(1);
    one_line_with_hint(&r);
    r.says("is not a folder (a file is in the way)");
    // The Docker Engine not listening where DOCKER_HOST says.
    let cube = e.cube("model-good");
    let data = e.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let r = e
        .cohort_env(
            "x",
            &[
                "mlcube",
                "run",
                &cube,
                "--task",
                "infer",
                &format!("data_path={}", data.display()),
            ],
            &[("DOCKER_HOST", "tcp://127.0.0.1:1")],
        )
        .fails(3);
    one_line_with_hint(&r);
    r.says("error: cannot reach the Docker Engine at tcp://127.0.0.1:1: connection refused")
        .says("hint: is it running?")
        .says("cohort doctor");
    // Outside any registry clone.
    let r = e.cohort("x", &["benchmark", "view", "heart"]).fails(1);
    one_line_with_hint(&r);
}

/// Ctrl-C during the demo: it stops after the step under way, removes its temporary folder and
/// exits 130.
#[test]
fn an_interrupted_demo_removes_its_folder_and_exits_130() {
    let e = TestEnv::new();
    let tmp = e.path().join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let mut child = std::process::Command::new(crate::env::bin())
        .arg("demo")
        .env("TMPDIR", &tmp)
        .env("HOME", e.path())
        .env_remove("COHORT_HOME")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let demo_dirs = || -> Vec<std::path::PathBuf> {
        std::fs::read_dir(&tmp)
            .unwrap()
            .map(|d| d.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("cohort-demo-")
            })
            .collect()
    };
    // Under way once the first role has a folder.
    while !demo_dirs().iter().any(|d| d.join("admin").exists()) {
        if child.try_wait().unwrap().is_some() {
            let out = child.wait_with_output().unwrap();
            panic!(
                "the demo ended early: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(err.contains("error: the demo was interrupted"), "{err}");
    assert!(demo_dirs().is_empty(), "the demo's folder was left behind");
}
