//! The sandbox around registered cubes at a site (issue 14): a cube that names its own folder
//! (`${runtime.root}`) to reach a link planted there is refused before anything is created or
//! handed over, and a hospital's prepared data, statistics, results and logs stay readable by
//! the hospital's user only (0700 folders, 0600 files, owned by the caller) after real runs,
//! and its raw data goes back to its owner even when cohort was killed mid-run.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::env::{TestEnv, bin, copy_tree};
use crate::world::World;

/// A model that also writes to `${runtime.root}/workspace/evil`: the cube's installed folder,
/// shared by every run, where an earlier run's container could plant a link.
fn evil_model(e: &TestEnv) -> String {
    e.cube_variant("model-good", "evil-model", |d| {
        TestEnv::edit(
            &d.join("mlcube.yaml"),
            "output_path: {type: directory, default: predictions}",
            "output_path: {type: directory, default: predictions}\n        \
             evil: {type: directory, default: '${runtime.root}/workspace/evil'}",
        );
        TestEnv::edit(
            &d.join("project/cube.sh"),
            "parse_args \"data_path parameters_file output_path\" \"$@\"",
            "parse_args \"data_path parameters_file output_path evil\" \"$@\"\n    \
             echo owned > \"$arg_evil/owned.txt\" || true",
        );
    })
}

#[test]
fn a_registered_cube_cannot_reach_its_own_folder() {
    let w = World::people();
    let e = &w.env;
    w.benchmark(&[]);
    let evil = evil_model(e);
    // What an earlier run's container left behind (issue 14: run 1 planted it): a link from the
    // cube's folder to a folder only root may enter.
    let target = e.path().join("root-only");
    std::fs::create_dir(&target).unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o700)).unwrap();
    let before = std::fs::metadata(&target).unwrap();
    std::os::unix::fs::symlink(&target, Path::new(&evil).join("workspace/evil")).unwrap();

    // The compatibility test runs the cube in strict mode: refused before any folder is made.
    w.as_("mo", &["test", "run", "-b", "heart", "-m", &evil])
        .fails(1)
        .says("parameter evil")
        .says("cube's own folder");
    let after = std::fs::metadata(&target).unwrap();
    assert_eq!(
        (after.uid(), after.gid(), after.mode()),
        (before.uid(), before.gid(), before.mode()),
        "the link's target keeps its owner and mode"
    );
    assert!(!target.join("owned.txt").exists(), "never mounted");
    // And it cannot be registered.
    w.as_(
        "mo",
        &["mlcube", "submit", &evil, "--name", "evil-model", "--build"],
    )
    .fails(1)
    .says("cube's own folder");
}

/// Every folder and file under `dir`, with its metadata (links not followed).
fn tree(dir: &Path) -> Vec<(std::path::PathBuf, std::fs::Metadata)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        out.push((d.clone(), std::fs::symlink_metadata(&d).unwrap()));
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let m = std::fs::symlink_metadata(entry.path()).unwrap();
            if m.is_dir() {
                stack.push(entry.path());
            } else {
                out.push((entry.path(), m));
            }
        }
    }
    out
}

/// Kills `dataset prepare` of private raw data (0700/0600, as patient data is) while a task
/// holds it: once its record of the hand-over exists and, when cohort runs as root, the data
/// belongs to the container's user. Returns the raw data folder and the killed run's label.
fn killed_mid_run(e: &TestEnv) -> (std::path::PathBuf, String) {
    let raw = e.path().join("raw-private");
    copy_tree(Path::new(&e.data("hospital-a")), &raw);
    for (p, _) in tree(&raw) {
        let mode = if p.is_dir() { 0o700 } else { 0o600 };
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let home = e.cohort_home("hosp-a");
    let records = home.join("access");
    let mut child = Command::new(bin())
        .args(["dataset", "prepare", "-b", "heart", "--name", "ward-k"])
        .arg("--data-path")
        .arg(raw.join("data"))
        .arg("--labels-path")
        .arg(raw.join("labels"))
        .current_dir(e.clone_dir("hosp-a"))
        .env("HOME", e.path().join("home"))
        .env("COHORT_HOME", &home)
        .env("PATH", std::env::var("PATH").unwrap())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let me = rustix::process::getuid().as_raw();
    let started = Instant::now();
    let record = loop {
        let record = std::fs::read_dir(&records)
            .into_iter()
            .flatten()
            .flatten()
            .map(|d| d.path())
            .find(|p| p.extension().is_some_and(|x| x == "access"));
        let handed = me != 0
            || std::fs::metadata(raw.join("data/patients.csv"))
                .unwrap()
                .uid()
                != me;
        if let Some(r) = record.filter(|_| handed) {
            break r;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no task started"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    let run_id = std::fs::read_to_string(&record).unwrap_or_default();
    child.kill().unwrap();
    child.wait().unwrap();
    let run_id = run_id
        .lines()
        .find_map(|l| l.strip_prefix("run "))
        .expect("the record names the run")
        .to_string();
    (raw, run_id)
}

#[test]
fn site_data_is_readable_by_its_owner_only() {
    let w = World::people();
    let e = &w.env;
    w.benchmark(&[]);
    let (raw, killed) = killed_mid_run(e);
    // The next run finishes the killed one: the raw data is its owner's again, the record and
    // the killed run's container are gone.
    w.hospital("hosp-a", "hospital-a", "ward-a");
    let me = rustix::process::getuid().as_raw();
    for (p, m) in tree(&raw) {
        assert_eq!(m.uid(), me, "{} is its owner's again", p.display());
        assert_eq!(m.mode() & 0o077, 0, "{} stays private", p.display());
    }
    let records = std::fs::read_dir(e.cohort_home("hosp-a").join("access")).unwrap();
    assert_eq!(records.count(), 0, "no record is left");
    let left = Command::new("docker")
        .args(["ps", "-aq", "--filter"])
        .arg(format!("label=org.cohort.run={killed}"))
        .output()
        .unwrap();
    assert!(left.status.success());
    assert!(
        String::from_utf8_lossy(&left.stdout).trim().is_empty(),
        "the killed run's container is removed"
    );
    w.as_(
        "hosp-a",
        &["benchmark", "run", "-b", "heart", "-d", "ward-a"],
    )
    .ok();
    let home = e.cohort_home("hosp-a");
    let me = rustix::process::getuid().as_raw();
    let mut checked = 0;
    for sub in ["datasets", "runs/prepare", "runs/execute", "runs/results"] {
        let dir = home.join(sub);
        assert!(dir.is_dir(), "{} exists", dir.display());
        for (p, m) in tree(&dir) {
            // Lock files carry no data.
            if p.file_name()
                .is_some_and(|n| n.to_string_lossy().ends_with(".lock"))
            {
                continue;
            }
            assert_eq!(m.uid(), me, "{} is owned by the caller", p.display());
            assert_eq!(
                m.mode() & 0o077,
                0,
                "{} ({:o}) is private to the caller",
                p.display(),
                m.mode() & 0o7777
            );
            checked += 1;
        }
    }
    // Prepared data, manifest, statistics, predictions' results and logs were all seen.
    for name in [
        "data.csv",
        "files.toml",
        "statistics.yaml",
        "results.yaml",
        "result.toml",
    ] {
        assert!(
            tree(&home)
                .iter()
                .any(|(p, _)| p.file_name().is_some_and(|n| n == name)),
            "{name} was checked"
        );
    }
    assert!(checked > 20, "{checked} paths checked");
    assert!(
        tree(&home.join("runs"))
            .iter()
            .any(|(p, _)| p.extension().is_some_and(|x| x == "log")),
        "logs were checked"
    );
}
