//! Bad input to benchmark, cube and dataset commands: each refused with a clear message, nothing
//! half-written; interrupted or concurrent preparations recover.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::env::{TestEnv, bin, json};
use crate::world::World;

#[test]
fn cube_and_benchmark_submissions_refuse_bad_input() {
    let w = World::people();
    let e = &w.env;
    w.benchmark(&[]);
    let before = w.branches("mo");
    // Additional files escaping the workspace.
    let evil = e.tarball("evil.tar.gz", &[("../escape.txt", b"x")]);
    let weak = e.cube("model-weak");
    w.as_(
        "mo",
        &[
            "mlcube",
            "submit",
            &weak,
            "--name",
            "evil",
            "--build",
            "--local-only",
            "--additional-files",
            &evil,
        ],
    )
    .fails(1)
    .says("../escape.txt");
    let abs = e.tarball("abs.tar.gz", &[("/etc/cron.d/x", b"x")]);
    w.as_(
        "mo",
        &[
            "mlcube",
            "submit",
            &weak,
            "--name",
            "evil",
            "--build",
            "--local-only",
            "--additional-files",
            &abs,
        ],
    )
    .fails(1)
    .says("/etc/cron.d/x");
    // A tarball whose hash differs from the one given.
    let good = e.tarball("weights.tar.gz", &[("weights.txt", b"0.5")]);
    w.as_(
        "mo",
        &[
            "mlcube",
            "submit",
            &weak,
            "--name",
            "weighted",
            "--build",
            "--local-only",
            "--additional-files",
            &good,
            "--additional-files-hash",
            &"0".repeat(64),
        ],
    )
    .fails(1)
    .says("sha256");
    // Strict-mode violations are refused at submission.
    let privileged = e.cube_variant("model-good", "privileged", |d| {
        TestEnv::edit(
            &d.join("mlcube.yaml"),
            "  build_file: Dockerfile",
            "  build_file: Dockerfile\n  gpu_args: --privileged",
        );
    });
    w.as_(
        "mo",
        &[
            "mlcube",
            "submit",
            &privileged,
            "--name",
            "privileged",
            "--build",
            "--local-only",
        ],
    )
    .fails(1)
    .says("cannot be registered")
    .says("--privileged");
    let absolute = e.cube_variant("model-good", "absolute", |d| {
        TestEnv::edit(
            &d.join("mlcube.yaml"),
            "default: parameters.yaml",
            "default: /etc/passwd",
        );
    });
    w.as_(
        "mo",
        &[
            "mlcube",
            "submit",
            &absolute,
            "--name",
            "absolute",
            "--build",
            "--local-only",
        ],
    )
    .fails(1)
    .says("cannot be registered");
    assert_eq!(w.branches("mo"), before, "nothing was written");
    // A demo dataset without paths.yaml.
    let nopaths = e.tarball("nopaths.tar.gz", &[("data/patients.csv", b"id\n1\n")]);
    w.as_(
        "carol",
        &[
            "benchmark",
            "submit",
            "--name",
            "other",
            "--data-preparator",
            "heart-prep",
            "--reference-model",
            "heart-logreg",
            "--metrics",
            "heart-metrics",
            "--primary-metric",
            "auc",
            "--demo-dataset",
            &nopaths,
        ],
    )
    .fails(1)
    .says("paths.yaml");
    assert!(!w.branches("carol").contains("benchmark-other"));
    // Associations to a benchmark that does not exist or is not approved.
    w.cube("mo", "model-weak", "bmi-only");
    w.as_(
        "mo",
        &["mlcube", "associate", "-b", "nope", "-m", "bmi-only"],
    )
    .fails(1)
    .says("no benchmark `nope` in this registry");
    // A committee member invites a model; she cannot approve her own invitation.
    w.as_(
        "carol",
        &["association", "request", "-b", "heart", "-m", "bmi-only"],
    )
    .ok();
    w.as_("carol", &["registry", "push"]).ok();
    w.as_(
        "carol",
        &["association", "approve", "-b", "heart", "-m", "bmi-only"],
    )
    .fails(1)
    .says("requested this association");
    w.as_(
        "dave",
        &["association", "approve", "-b", "heart", "-m", "bmi-only"],
    )
    .ok();
    // An asset tampered with after registration is caught when the cube runs: the cached copy
    // is re-hashed, found corrupted and restored from the registry, where the local file given
    // at submission went as a blob (so changing that file later changes nothing).
    w.as_(
        "mo",
        &[
            "mlcube",
            "submit",
            &weak,
            "--name",
            "weighted",
            "--build",
            "--local-only",
            "--additional-files",
            &good,
        ],
    )
    .ok();
    w.as_("mo", &["registry", "merge", "--all"]).ok();
    std::fs::write(&good, b"swapped weights").unwrap();
    let cache = e.cohort_home("mo").join("cache/sha256");
    for entry in std::fs::read_dir(&cache).unwrap().flatten() {
        if entry.path().is_file() {
            std::fs::write(entry.path(), b"corrupted").unwrap();
        }
    }
    w.as_("mo", &["test", "run", "-b", "heart", "-m", "weighted"])
        .ok()
        .says("is corrupted")
        .says("compatibility test passed");
    w.as_("carol", &["verify"]).ok();
}

fn prepare_args<'a>(e: &'a TestEnv, name: &'a str, data: &'a str, labels: &'a str) -> Vec<String> {
    let _ = e;
    [
        "dataset",
        "prepare",
        "-b",
        "heart",
        "--name",
        name,
        "--data-path",
        data,
        "--labels-path",
        labels,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

#[test]
fn dataset_preparation_refuses_and_recovers() {
    let w = World::people();
    let e = &w.env;
    w.benchmark(&[]);
    let data = e.data("hospital-a/data");
    let labels = e.data("hospital-a/labels");
    let run = |args: Vec<String>| {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        w.as_("hosp-a", &a)
    };
    // An unapproved benchmark, missing and empty raw folders.
    w.as_(
        "hosp-a",
        &[
            "dataset",
            "prepare",
            "-b",
            "nope",
            "--name",
            "x",
            "--data-path",
            &data,
            "--labels-path",
            &labels,
        ],
    )
    .fails(1)
    .says("no benchmark `nope` in this registry");
    run(prepare_args(e, "x", "/nonexistent", &labels))
        .fails(1)
        .says("does not exist");
    let empty = e.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    run(prepare_args(e, "x", empty.to_str().unwrap(), &labels))
        .fails(1)
        .says("is empty");

    // Two preparations at once: the second is refused; kill -9 of the first leaves nothing that
    // looks finished, and a rerun completes.
    let home = e.cohort_home("hosp-a");
    let mut child = std::process::Command::new(bin())
        .args(prepare_args(e, "ward-a", &data, &labels))
        .current_dir(e.clone_dir("hosp-a"))
        .env("HOME", e.path().join("home"))
        .env("COHORT_HOME", &home)
        .env("PATH", std::env::var("PATH").unwrap())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let logs = home.join("runs/prepare");
    loop {
        let running = std::fs::read_dir(&logs)
            .ok()
            .into_iter()
            .flatten()
            .flatten()
            .any(|d| d.path().join("logs").exists());
        if running {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "prepare never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    run(prepare_args(e, "ward-a", &data, &labels))
        .fails(1)
        .says("in use by another cohort process");
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !home.join("datasets/ward-a/dataset.toml").exists(),
        "a killed preparation must not look finished"
    );
    run(prepare_args(e, "ward-a", &data, &labels)).ok();
    let leftovers: Vec<_> = std::fs::read_dir(home.join("datasets"))
        .unwrap()
        .flatten()
        .map(|d| d.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".staging"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // Preparing the same name again is refused.
    run(prepare_args(e, "ward-a", &data, &labels))
        .fails(1)
        .says("already prepared");

    w.as_("hosp-a", &["--yes", "dataset", "submit", "ward-a"])
        .ok();
    w.committee_merges("hosp-a");
    w.as_("hosp-a", &["dataset", "check", "ward-a"]).ok();
    // An edit of the prepared data after registration is caught by check and by every run.
    let csv = home.join("datasets/ward-a/prepared/data/data.csv");
    let original = std::fs::read(&csv).unwrap();
    let mut edited = original.clone();
    edited.extend_from_slice(b"\n");
    std::fs::write(&csv, &edited).unwrap();
    w.as_("hosp-a", &["dataset", "check", "ward-a"])
        .fails(1)
        .says("modified data/data.csv");
    // The quick check (the stat cache a run uses) sees the edit too, right after a check.
    w.as_("hosp-a", &["dataset", "check", "ward-a", "--quick"])
        .fails(1)
        .says("modified data/data.csv");
    w.as_(
        "hosp-a",
        &["dataset", "associate", "-d", "ward-a", "-b", "heart"],
    )
    .fails(1)
    .says("no longer matches");
    std::fs::write(&csv, &original).unwrap();
    w.as_("hosp-a", &["dataset", "check", "ward-a", "--quick"])
        .ok();
    // A symbolic link in the prepared data is refused.
    std::os::unix::fs::symlink(
        "/etc/passwd",
        home.join("datasets/ward-a/prepared/data/link"),
    )
    .unwrap();
    w.as_("hosp-a", &["dataset", "check", "ward-a"])
        .fails(1)
        .says("link");
    std::fs::remove_file(home.join("datasets/ward-a/prepared/data/link")).unwrap();
    w.as_("hosp-a", &["dataset", "check", "ward-a"]).ok();

    // A preparator that fails sanity_check: the report shows its output.
    let broken = e.cube_variant("prep", "broken-prep", |d| {
        std::fs::write(
            d.join("project/sanity_check.awk"),
            "BEGIN { print \"sanity: 3 rows have an impossible age\" > \"/dev/stderr\"; exit 1 }\n",
        )
        .unwrap();
    });
    let r = w
        .as_("hosp-a", &["test", "run", "-b", "heart", "-p", &broken])
        .fails(1);
    r.says("sanity_check").says("impossible age");

    // The benchmark moves to a new preparator: a dataset prepared with the old one is refused.
    w.cube("carol", "prep", "heart-prep");
    let demo = e.data("demo.tar.gz");
    w.as_(
        "carol",
        &[
            "benchmark",
            "submit",
            "--name",
            "heart",
            "--data-preparator",
            "heart-prep:2",
            "--reference-model",
            "heart-logreg",
            "--metrics",
            "heart-metrics",
            "--primary-metric",
            "auc",
            "--demo-dataset",
            &demo,
            "--committee",
            "dave",
        ],
    )
    .ok();
    w.as_("carol", &["registry", "push"]).ok();
    w.as_("admin", &["benchmark", "approve", "heart"]).ok();
    let b = e.data("hospital-b/data");
    let bl = e.data("hospital-b/labels");
    w.as_(
        "hosp-b",
        &[
            "dataset",
            "prepare",
            "-b",
            "heart",
            "--name",
            "old-prep",
            "--data-path",
            &b,
            "--labels-path",
            &bl,
        ],
    )
    .ok();
    w.as_(
        "hosp-a",
        &["dataset", "associate", "-d", "ward-a", "-b", "heart"],
    )
    .fails(1)
    .says("another preparator");
    let _ = json;
}

/// A full disk during preparation (a tiny tmpfs as the datasets folder): a clear error, nothing kept.
#[test]
fn a_full_disk_during_preparation_keeps_nothing() {
    let w = World::people();
    let e = &w.env;
    w.benchmark(&[]);
    let datasets = e.cohort_home("hosp-a").join("datasets");
    std::fs::create_dir_all(&datasets).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=8k", "tmpfs"])
        .arg(&datasets)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !mounted {
        eprintln!("skipped: cannot mount a tmpfs here (needs root); CI runs as root");
        return;
    }
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(self.0).status();
        }
    }
    let _guard = Unmount(&datasets);
    let r = w.as_(
        "hosp-a",
        &[
            "dataset",
            "prepare",
            "-b",
            "heart",
            "--name",
            "ward-a",
            "--data-path",
            &e.data("hospital-a/data"),
            "--labels-path",
            &e.data("hospital-a/labels"),
        ],
    );
    assert_ne!(r.code, 0, "{}", r.all());
    assert!(
        r.all().contains("bytes free"),
        "the message names the full disk: {}",
        r.all()
    );
    let left: Vec<_> = std::fs::read_dir(&datasets)
        .unwrap()
        .flatten()
        .map(|d| d.file_name())
        .filter(|n| !n.to_string_lossy().ends_with(".lock"))
        .collect();
    assert!(left.is_empty(), "nothing half-prepared is kept: {left:?}");
}
