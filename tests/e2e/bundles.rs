//! An air-gapped hospital: it never touches the git remote, the image registry or any HTTP
//! server. Its clone comes from a registry bundle; its user request, dataset, association and
//! results leave as submissions bundles a gateway imports and pushes; registry updates arrive
//! as registry bundles; its image store is emptied before each of its steps. Damaged, foreign
//! and mismatching bundles are refused in one line, changing nothing.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::env::{Run, TestEnv, json};
use crate::services::{FileServer, ImageRegistry, PASSWORD, docker_or_skip};
use crate::sites::{Images, image_of, own_cube};
use crate::world::World;

const HOSP: &str = "hosp-x";
const GATE: &str = "gateway";

/// The hospital's environment: offline, no Docker credentials, proxies that lead nowhere (any
/// HTTP request would fail).
fn hospital_env(e: &TestEnv) -> Vec<(&'static str, String)> {
    let empty = e.path().join("no-docker-config");
    std::fs::create_dir_all(&empty).unwrap();
    vec![
        ("COHORT_OFFLINE", "1".to_string()),
        ("DOCKER_CONFIG", empty.display().to_string()),
        ("HTTPS_PROXY", "http://127.0.0.1:9".to_string()),
        ("HTTP_PROXY", "http://127.0.0.1:9".to_string()),
    ]
}

fn hosp(e: &TestEnv, args: &[&str]) -> Run {
    let env = hospital_env(e);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let clone = e.clone_dir(HOSP);
    let cwd = if clone.exists() {
        clone
    } else {
        e.role_dir(HOSP)
    };
    e.cohort_in(HOSP, &cwd, args, &env)
}

/// The gateway writes a registry bundle (after syncing) into the carried folder.
fn registry_bundle(e: &TestEnv, name: &str, login: &str) -> String {
    let out = e.path().join("carried").join(name);
    e.cohort(GATE, &["registry", "sync"]).ok();
    e.cohort_env(
        GATE,
        &[
            "bundle",
            "create",
            "-b",
            "heart",
            "-o",
            out.to_str().unwrap(),
        ],
        &[("DOCKER_CONFIG", login)],
    )
    .ok();
    out.display().to_string()
}

/// The hospital's submissions go out as a bundle; the gateway imports and pushes them.
fn carry_submissions(e: &TestEnv, name: &str) -> Vec<String> {
    let out = e.path().join("carried").join(name);
    hosp(
        e,
        &[
            "bundle",
            "create",
            "--submissions",
            "-o",
            out.to_str().unwrap(),
        ],
    )
    .ok();
    let imported = json(
        &e.cohort(GATE, &["--json", "bundle", "import", out.to_str().unwrap()])
            .ok(),
    );
    let mut names = Vec::new();
    for b in imported["branches"].as_array().unwrap() {
        assert_eq!(b["status"], "added", "{imported}");
        let name = b["branch"].as_str().unwrap().to_string();
        e.cohort(GATE, &["registry", "push", &name]).ok();
        names.push(name);
    }
    names
}

fn verified(e: &TestEnv) -> String {
    e.git(
        HOSP,
        &e.clone_dir(HOSP),
        &["rev-parse", "refs/cohort/verified"],
    )
    .ok()
    .stdout
}

/// The (name, bytes) entries of a tar.
fn entries(tar: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut ar = tar::Archive::new(tar);
    let mut out = Vec::new();
    for en in ar.entries().unwrap() {
        let mut en = en.unwrap();
        let mut b = Vec::new();
        en.read_to_end(&mut b).unwrap();
        out.push((en.path().unwrap().display().to_string(), b));
    }
    out
}

fn tar_of(files: Vec<(String, Vec<u8>)>) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, bytes) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, &name, bytes.as_slice()).unwrap();
    }
    b.into_inner().unwrap()
}

/// Rewrites the bundle tar at `from` into `to`, letting `edit` change entries (name, bytes).
fn rewrite(from: &str, to: &Path, edit: &mut dyn FnMut(&str, Vec<u8>) -> Vec<u8>) {
    let files = entries(&std::fs::read(from).unwrap())
        .into_iter()
        .map(|(n, b)| {
            let b = edit(&n, b);
            (n, b)
        })
        .collect();
    std::fs::write(to, tar_of(files)).unwrap();
}

/// The bundle at `from` with image entry `entry` replaced by `tar`, its manifest's hash fixed up.
fn with_image(from: &str, to: &Path, entry: &str, tar: &[u8]) {
    rewrite(from, to, &mut |name, b| {
        if name == entry {
            return tar.to_vec();
        }
        if name == "manifest.toml" {
            let mut m: toml::Value = toml::from_str(std::str::from_utf8(&b).unwrap()).unwrap();
            for img in m["images"].as_array_mut().unwrap() {
                if img["path"].as_str() == Some(entry) {
                    img["sha256"] = toml::Value::String(sha256_hex(tar));
                    img["bytes"] = toml::Value::Integer(tar.len() as i64);
                }
            }
            return toml::to_string(&m).unwrap().into_bytes();
        }
        b
    });
}

fn sha256_hex(bytes: &[u8]) -> String {
    cohort::model::Sha256::of(bytes).to_string()
}

/// Each broken bundle is refused in one line naming what failed; the clone's view and the
/// image store stay as they were.
fn refusals(
    e: &TestEnv,
    images: &Images,
    good: &str,
    other: &str,
    prep_id: &str,
    metrics_id: &str,
) {
    let dir = e.path().join("carried");
    let before = verified(e);
    let home = e.cohort_home(HOSP);
    let listing = || -> Vec<String> {
        ["cache/sha256", "images"]
            .iter()
            .flat_map(|d| std::fs::read_dir(home.join(d)).into_iter().flatten())
            .map(|f| f.unwrap().path().display().to_string())
            .collect()
    };
    let cached = listing();
    let refused = |file: &Path, needle: &str| {
        let r = hosp(e, &["bundle", "import", file.to_str().unwrap()]).fails(1);
        let line = r
            .stderr
            .lines()
            .find(|l| l.starts_with("error: "))
            .unwrap_or_else(|| panic!("no error line:\n{}", r.stderr));
        assert!(line.contains(needle), "`{needle}` not in `{line}`");
        assert_eq!(verified(e), before, "the clone did not move");
        assert!(!images.present(prep_id), "nothing was loaded");
        assert_eq!(listing(), cached, "the caches are as they were");
    };
    // Truncated: the last half is missing.
    let bytes = std::fs::read(good).unwrap();
    let truncated = dir.join("truncated.bundle");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    refused(&truncated, "truncated");
    // One byte changed inside the git bundle.
    let tampered = dir.join("tampered.bundle");
    rewrite(good, &tampered, &mut |name, mut b| {
        if name == "registry.bundle" {
            let i = b.len() - 30;
            b[i] ^= 0x40;
        }
        b
    });
    refused(
        &tampered,
        "registry.bundle does not hash to the sha256 its manifest names",
    );
    // Another registry's bundle.
    refused(Path::new(other), "is for registry");
    // The preparator's image replaced by the metrics image, the manifest's hashes fixed up:
    // the id computed from the tarball gives it away before anything is loaded.
    let prep_hex = prep_id.trim_start_matches("sha256:");
    let bundle = entries(&std::fs::read(good).unwrap());
    let image = |id: &str| -> Vec<u8> {
        let name = format!("images/{}.tar", id.trim_start_matches("sha256:"));
        bundle.iter().find(|(n, _)| *n == name).unwrap().1.clone()
    };
    let (metrics_tar, prep_tar) = (image(metrics_id), image(prep_id));
    let swapped = dir.join("swapped.bundle");
    let prep_entry = format!("images/{prep_hex}.tar");
    with_image(good, &swapped, &prep_entry, &metrics_tar);
    refused(&swapped, "not sha256:");
    // The preparator's tarball given a second image (the metrics image), or a tag: an unsigned
    // bundle may not add images to the site's Engine or move its tags.
    let manifests = |t: &[u8]| -> Vec<serde_json::Value> {
        let (_, m) = entries(t)
            .into_iter()
            .find(|(n, _)| n == "manifest.json")
            .unwrap();
        serde_json::from_slice(&m).unwrap()
    };
    let mut both = manifests(&prep_tar);
    both.extend(manifests(&metrics_tar));
    let mut tagged = manifests(&prep_tar);
    tagged[0]["RepoTags"] = serde_json::json!(["busybox:latest"]);
    for (name, images, needle) in [
        ("two", both, "holds 2 images"),
        ("tagged", tagged, "busybox:latest"),
    ] {
        let mut files = entries(&prep_tar);
        for (n, b) in entries(&metrics_tar) {
            if !files.iter().any(|(m, _)| *m == n) {
                files.push((n, b));
            }
        }
        for (n, b) in files.iter_mut() {
            if n == "manifest.json" {
                *b = serde_json::to_vec(&images).unwrap();
            }
        }
        let file = dir.join(format!("{name}.bundle"));
        with_image(good, &file, &prep_entry, &tar_of(files));
        refused(&file, needle);
    }
    // A submissions bundle where a registry bundle belongs is refused by kind (in a new folder).
    let r = hosp(
        e,
        &[
            "bundle",
            "import",
            dir.join("s1.bundle").to_str().unwrap(),
            e.path().join("nowhere").to_str().unwrap(),
            "--trust-on-first-use",
        ],
    );
    r.fails(1).says("submissions bundle");
    assert!(!e.path().join("nowhere").exists());
}

#[test]
fn an_air_gapped_hospital_takes_part_through_bundles() {
    if !docker_or_skip("an_air_gapped_hospital_takes_part_through_bundles") {
        return;
    }
    let started = std::time::Instant::now();
    let env = TestEnv::new();
    let id = env.init_shared("admin");
    for p in ["carol", "dave"] {
        env.join(p, &id);
        env.cohort("admin", &["user", "approve", p]).ok();
    }
    env.cohort(
        "admin",
        &["user", "grant", "carol", "--role", "benchmark-owner"],
    )
    .ok();
    env.fixtures();
    let w = World { env, id };
    let e = &w.env;
    let id = w.id.clone();
    std::fs::create_dir_all(e.path().join("carried")).unwrap();
    let reg = ImageRegistry::start();
    let login = reg.docker_config("login", PASSWORD);
    let login = login.to_str().unwrap().to_string();
    let run = format!("{}-{}-bundles", std::process::id(), reg.port);
    let mut images = Images::new();

    // The gateway: a connected clone with no key of its own.
    let gate_clone = e.clone_dir(GATE);
    e.cohort_in(
        GATE,
        &e.role_dir(GATE),
        &[
            "registry",
            "clone",
            e.remote().to_str().unwrap(),
            gate_clone.to_str().unwrap(),
            "--root",
            &id,
        ],
        &[],
    )
    .ok();

    // The hospital's first clone comes from a registry bundle; it asks to join from it.
    let b0 = e.path().join("carried/b0.bundle");
    e.cohort(GATE, &["bundle", "create", "-o", b0.to_str().unwrap()])
        .ok();
    hosp(e, &["key", "generate", "--handle", HOSP, "--no-passphrase"]).ok();
    let hosp_clone: PathBuf = e.clone_dir(HOSP);
    hosp(
        e,
        &[
            "bundle",
            "import",
            b0.to_str().unwrap(),
            hosp_clone.to_str().unwrap(),
            "--root",
            &id,
        ],
    )
    .ok()
    .says(&id);
    hosp(
        e,
        &[
            "user",
            "request",
            "--name",
            "Hospital X",
            "--email",
            "x@example.org",
        ],
    )
    .ok();
    let request = carry_submissions(e, "s1.bundle").remove(0);
    // A branch the gateway holds with another tip is kept, never overwritten.
    let gate_git = |args: &[&str]| {
        e.git(GATE, &gate_clone, args)
            .ok()
            .stdout
            .trim()
            .to_string()
    };
    let tip = gate_git(&["rev-parse", &request]);
    let other = gate_git(&[
        "commit-tree",
        "main^{tree}",
        "-p",
        "main",
        "-m",
        "someone else's",
    ]);
    gate_git(&["branch", "-f", &request, &other]);
    let s1 = e.path().join("carried/s1.bundle");
    let again = json(
        &e.cohort(GATE, &["--json", "bundle", "import", s1.to_str().unwrap()])
            .ok(),
    );
    assert_eq!(again["branches"][0]["status"], "kept", "{again}");
    assert_eq!(gate_git(&["rev-parse", &request]), other);
    gate_git(&["branch", "-f", &request, &tip]);
    let again = json(
        &e.cohort(GATE, &["--json", "bundle", "import", s1.to_str().unwrap()])
            .ok(),
    );
    assert_eq!(again["branches"][0]["status"], "unchanged", "{again}");
    // Nothing new: a second submissions bundle is refused, naming why.
    hosp(
        e,
        &[
            "bundle",
            "create",
            "--submissions",
            "-o",
            e.path().join("carried/s1b.bundle").to_str().unwrap(),
        ],
    )
    .fails(1)
    .says("no submission to bundle");
    e.cohort("admin", &["user", "approve", HOSP]).ok();

    // carol publishes the benchmark: the preparator through the authenticated image registry
    // (pulled by digest), the other two as in-registry tarballs.
    let prep = own_cube(&w, "prep", "bundle-prep", &run);
    let reference = own_cube(&w, "model-good", "bundle-ref", &run);
    let metrics = own_cube(&w, "metrics", "bundle-metrics", &run);
    let repo = format!("{}/carol/prep", reg.host());
    e.cohort_env(
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
        &[("DOCKER_CONFIG", login.as_str())],
    )
    .ok();
    w.as_(
        "carol",
        &[
            "mlcube",
            "submit",
            &reference,
            "--name",
            "heart-logreg",
            "--build",
            "--save-image",
        ],
    )
    .ok();
    // The metrics cube's additional files live on an HTTP server the hospital cannot reach.
    let served = e.path().join("served");
    std::fs::create_dir_all(&served).unwrap();
    let extra = e.tarball("extra.tar.gz", &[("notes.txt", b"read by no one")]);
    std::fs::copy(&extra, served.join("extra.tar.gz")).unwrap();
    let server = FileServer::start(served.clone());
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
            "--additional-files",
            &server.url("extra.tar.gz"),
        ],
    )
    .ok();
    w.as_("carol", &["registry", "merge", "--all"]).ok();
    let prep_id = image_of(&w, "carol", "heart-prep");
    let ref_id = image_of(&w, "carol", "heart-logreg");
    let metrics_id = image_of(&w, "carol", "heart-metrics");
    for i in [&prep_id, &ref_id, &metrics_id] {
        images.add(i);
    }
    w.submit_heart(&[]);

    // The gateway pulls what it lacks (by digest, with its login) and saves every image.
    images.forget_all_but(&[]);
    let b1 = registry_bundle(e, "b1.bundle", &login);
    // From now on the artifact exists only in caches and bundles.
    std::fs::remove_file(served.join("extra.tar.gz")).unwrap();
    // A bundle of another registry, for the refusals.
    let other = e.path().join("carried/other.bundle");
    e.cohort_in(
        "stranger",
        &e.role_dir("stranger"),
        &["key", "generate", "--handle", "stranger", "--no-passphrase"],
        &[],
    )
    .ok();
    let stranger_clone = e.clone_dir("stranger");
    e.cohort_in(
        "stranger",
        &e.role_dir("stranger"),
        &[
            "registry",
            "init",
            stranger_clone.to_str().unwrap(),
            "--name",
            "elsewhere",
            "--admin",
            "stranger",
        ],
        &[],
    )
    .ok();
    e.cohort(
        "stranger",
        &["bundle", "create", "-o", other.to_str().unwrap()],
    )
    .ok();

    images.forget_all_but(&[]);
    refusals(
        e,
        &images,
        &b1,
        other.to_str().unwrap(),
        &prep_id,
        &metrics_id,
    );
    let imported = json(&hosp(e, &["--json", "bundle", "import", &b1]).ok());
    assert_eq!(
        imported["images"].as_array().unwrap().len(),
        3,
        "{imported}"
    );
    assert_eq!(imported["artifacts"], 1, "{imported}");

    // The hospital prepares, registers and associates its data, offline, images reloaded
    // from what the bundles left.
    let raw = |p: &str| e.data(&format!("hospital-a/{p}"));
    images.forget_all_but(&[]);
    hosp(
        e,
        &[
            "dataset",
            "prepare",
            "-b",
            "heart",
            "--name",
            "ward-x",
            "--data-path",
            &raw("data"),
            "--labels-path",
            &raw("labels"),
        ],
    )
    .ok();
    images.forget_all_but(&[]);
    hosp(e, &["--yes", "dataset", "submit", "ward-x"]).ok();
    carry_submissions(e, "s2.bundle");
    w.as_("carol", &["registry", "merge", "--all"]).ok();
    let b2 = registry_bundle(e, "b2.bundle", &login);
    images.forget_all_but(&[]);
    hosp(e, &["bundle", "import", &b2]).ok();
    images.forget_all_but(&[]);
    hosp(e, &["dataset", "associate", "-d", "ward-x", "-b", "heart"]).ok();
    carry_submissions(e, "s3.bundle");
    w.as_("carol", &["registry", "sync"]).ok();
    w.as_(
        "carol",
        &["association", "approve", "-b", "heart", "-d", "ward-x"],
    )
    .ok();
    let b3 = registry_bundle(e, "b3.bundle", &login);
    images.forget_all_but(&[]);
    hosp(e, &["bundle", "import", &b3]).ok();

    // It runs the benchmark and its sealed results travel out; the committee releases them.
    images.forget_all_but(&[]);
    hosp(e, &["benchmark", "run", "-b", "heart", "-d", "ward-x"]).ok();
    images.forget_all_but(&[]);
    hosp(
        e,
        &["--yes", "result", "submit", "-b", "heart", "-d", "ward-x"],
    )
    .ok();
    carry_submissions(e, "s4.bundle");
    w.as_("carol", &["registry", "merge", "--all"]).ok();
    w.as_("carol", &["result", "release", "-b", "heart"]).ok();
    let b4 = registry_bundle(e, "b4.bundle", &login);
    images.forget_all_but(&[]);
    hosp(e, &["bundle", "import", &b4]).ok();
    // The only dataset on the released leaderboard is the hospital's.
    let board = json(&hosp(e, &["leaderboard", "heart", "--format", "json"]).ok());
    let entry = &board["entries"][0];
    assert_eq!(entry["model"]["name"], "heart-logreg", "{board}");
    assert_eq!(entry["status"], "listed", "{board}");
    assert_eq!(entry["datasets"], 1, "{board}");
    // An old registry bundle is a rollback now: refused, nothing moves.
    let before = verified(e);
    hosp(e, &["bundle", "import", &b1])
        .fails(1)
        .says("does not verify");
    assert_eq!(verified(e), before);
    // The hospital's clone never had a remote.
    let remotes = e.git(HOSP, &e.clone_dir(HOSP), &["remote"]).ok();
    assert!(remotes.stdout.trim().is_empty(), "{}", remotes.stdout);
    eprintln!(
        "an_air_gapped_hospital_takes_part_through_bundles: {:?}",
        started.elapsed()
    );
}
