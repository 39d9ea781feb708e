//! Private models (issue 18): a model owner submits an encrypted image, runs the compatibility
//! test with their own key, grants one hospital; that hospital's run decrypts the image as a
//! stream into the Docker Engine and removes it afterwards, the other hospital gets a signed
//! `no-access` receipt while its other models run, a revocation stops the next run, and a
//! ciphertext with one flipped byte is refused. The model reads additional files and
//! parameters, encrypted under the same model key and decrypted as streams at run time. No
//! plaintext image or tarball is left in the Engine or on disk, nor the decrypted files after
//! the run.

use std::path::Path;

use crate::env::json;
use crate::services::{FileServer, docker_or_skip};
use crate::sites::{Images, image_of, label_first};
use crate::world::World;

/// Every file under `dir` (none when it does not exist).
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries {
        let p = e.unwrap().path();
        if p.is_dir() && !p.is_symlink() {
            out.extend(walk(&p));
        } else if p.is_file() {
            out.push(p);
        }
    }
    out
}

/// Files under `dir` that are plaintext tar archives (the `ustar` magic at offset 257) or are
/// named after the image's config digest (what an unpacked `docker save` holds).
fn plaintext_images(dir: &Path, image_hex: &str) -> Vec<std::path::PathBuf> {
    walk(dir)
        .into_iter()
        .filter(|p| {
            let named = p.to_string_lossy().contains(image_hex);
            let bytes = std::fs::read(p).unwrap_or_default();
            named || bytes.get(257..262) == Some(b"ustar")
        })
        .collect()
}

/// A copy of model-weak (its image labelled for `run`) that needs `additional_files/weights.txt`
/// and fails without it.
fn cube_with_files(w: &World, run: &str) -> String {
    w.env.cube_variant("model-weak", "private-weak", |d| {
        let df = d.join("project/Dockerfile");
        let text = std::fs::read_to_string(&df).unwrap();
        std::fs::write(df, label_first(&text, run)).unwrap();
        let yaml = std::fs::read_to_string(d.join("mlcube.yaml")).unwrap();
        let declared = "        parameters_file: {type: file, default: parameters.yaml}\n";
        assert!(yaml.contains(declared));
        let yaml = yaml.replace(
            declared,
            &format!("{declared}        additional_files: {{type: directory, default: additional_files}}\n"),
        );
        std::fs::write(d.join("mlcube.yaml"), yaml).unwrap();
        let sh = std::fs::read_to_string(d.join("project/cube.sh")).unwrap();
        let args = "parse_args \"data_path parameters_file output_path\" \"$@\"\n";
        assert!(sh.contains(args));
        let sh = sh.replace(
            args,
            "parse_args \"data_path parameters_file additional_files output_path\" \"$@\"\n    need_file \"$arg_additional_files/weights.txt\" \"additional file weights.txt\"\n",
        );
        std::fs::write(d.join("project/cube.sh"), sh).unwrap();
    })
}

/// A plain (uncompressed) tarball holding `weights.txt`, so a plaintext copy anywhere would show
/// the `ustar` magic.
fn weights_tarball(path: &Path) {
    let mut b = tar::Builder::new(Vec::new());
    let body = b"secret weights\n";
    let mut h = tar::Header::new_ustar();
    h.set_size(body.len() as u64);
    h.set_mode(0o644);
    b.append_data(&mut h, "weights.txt", &body[..]).unwrap();
    std::fs::write(path, b.into_inner().unwrap()).unwrap();
}

/// The local result row of `model`.
fn row(w: &World, role: &str, model: &str) -> serde_json::Value {
    w.results(role)
        .into_iter()
        .find(|r| r["model"] == model)
        .unwrap_or_else(|| panic!("{role} has no result for {model}"))
}

#[test]
fn private_models_run_only_where_granted() {
    if !docker_or_skip("private_models_run_only_where_granted") {
        return;
    }
    let w = World::people();
    let e = &w.env;
    w.benchmark(&[]);
    let run = format!("{}-private", std::process::id());
    let mut images = Images::new();
    let cube = cube_with_files(&w, &run);
    let weights = e.path().join("weights.tar");
    weights_tarball(&weights);
    let weights_s = weights.to_str().unwrap();
    let out_dir = e.path().join("mo-out");
    std::fs::create_dir_all(&out_dir).unwrap();
    let ct = out_dir.join("secret.age");
    let ct_s = ct.to_str().unwrap();

    // --encrypt never goes with --push (an image registry would publish the plaintext layers).
    w.as_(
        "mo",
        &[
            "mlcube",
            "submit",
            &cube,
            "--name",
            "secret-net",
            "--build",
            "--encrypt",
            "-o",
            ct_s,
            "--push",
            "127.0.0.1:1/mo/x",
        ],
    )
    .fails(2)
    .says("--push");
    // Encrypted, small enough to travel in the registry: submitted in the same step.
    w.as_(
        "mo",
        &[
            "mlcube",
            "submit",
            &cube,
            "--name",
            "secret-net",
            "--build",
            "--encrypt",
            "-o",
            ct_s,
            "--additional-files",
            weights_s,
        ],
    )
    .ok()
    .says("sha256")
    .says("mlcube grant -m secret-net");
    w.as_("mo", &["registry", "merge", "--all"]).ok();
    let id = image_of(&w, "mo", "secret-net");
    images.add(&id);
    let hex = id.trim_start_matches("sha256:").to_string();
    let ciphertext = std::fs::read(&ct).unwrap();
    assert!(ciphertext.starts_with(b"age-encryption.org/v1\n"));
    w.as_("mo", &["mlcube", "view", "secret-net"])
        .ok()
        .says("source = \"encrypted\"")
        .says("scheme = \"cohort-private/2\"")
        .says("[image.private.files]")
        .says("[image.private.parameters]");
    // A private model is never a benchmark's reference model.
    w.as_(
        "carol",
        &[
            "benchmark",
            "submit",
            "--name",
            "secret-bench",
            "--data-preparator",
            "heart-prep",
            "--reference-model",
            "secret-net",
            "--metrics",
            "heart-metrics",
            "--demo-dataset",
            &e.data("demo.tar.gz"),
        ],
    )
    .fails(1)
    .says("private model");

    // mo's compatibility test decrypts with his own key (the plaintext image is gone first).
    images.forget_all_but(&[]);
    w.as_(
        "mo",
        &["mlcube", "associate", "-b", "heart", "-m", "secret-net"],
    )
    .ok();
    assert!(!images.present(&id), "the decrypted image left the Engine");
    w.as_("mo", &["registry", "push"]).ok();
    w.as_(
        "carol",
        &["association", "approve", "-b", "heart", "-m", "secret-net"],
    )
    .ok();

    w.hospital("hosp-a", "hospital-a", "ward-a");
    w.hospital("hosp-b", "hospital-b", "ward-b");
    w.as_("mo", &["registry", "sync"]).ok();
    // `registry status` tells the owner which datasets joined and hold no decision yet.
    let undecided = |w: &World| -> Vec<String> {
        let st = json(&w.as_("mo", &["--json", "registry", "status"]).ok());
        let mut names: Vec<String> = st["private"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["notice"] == "undecided")
            .map(|n| n["dataset_name"].as_str().unwrap().to_string())
            .collect();
        names.sort();
        names
    };
    assert_eq!(undecided(&w), ["ward-a", "ward-b"]);
    w.as_("mo", &["mlcube", "grant", "--help"])
        .ok()
        .says("cannot unshare");
    w.as_(
        "mo",
        &["mlcube", "grant", "-m", "secret-net", "-d", "ward-a"],
    )
    .ok()
    .says("/access/");
    assert_eq!(undecided(&w), ["ward-b"]);
    // Only the owner grants.
    w.as_("hosp-b", &["registry", "sync"]).ok();
    w.as_(
        "hosp-b",
        &["mlcube", "grant", "-m", "secret-net", "-d", "ward-b"],
    )
    .fails(1)
    .says("only mo");
    // A public model has no key to grant; nothing lands on main.
    let main_before = e.git("mo", &e.remote(), &["rev-parse", "main"]).ok().stdout;
    w.as_(
        "carol",
        &["mlcube", "grant", "-m", "heart-logreg", "-d", "ward-b"],
    )
    .fails(1)
    .says("not a private model");
    let main_after = e.git("mo", &e.remote(), &["rev-parse", "main"]).ok().stdout;
    assert_eq!(main_before, main_after, "a refused grant changed main");

    // The granted hospital runs it; the image is loaded for the run and removed after it.
    w.as_("hosp-a", &["registry", "sync"]).ok();
    w.as_(
        "hosp-a",
        &["benchmark", "run", "-b", "heart", "-d", "ward-a"],
    )
    .ok();
    assert_eq!(row(&w, "hosp-a", "secret-net")["status"], "ok");
    assert!(!images.present(&id), "no decrypted image remains");
    w.results_land("hosp-a", "ward-a");

    // The ungranted hospital: a no-access receipt, and its other models still run.
    w.as_(
        "hosp-b",
        &["benchmark", "run", "-b", "heart", "-d", "ward-b"],
    )
    .ok()
    .says("no-access");
    let denied = row(&w, "hosp-b", "secret-net");
    assert_eq!(denied["status"], "failed");
    assert_eq!(denied["failure"]["reason"], "no-access");
    assert_eq!(row(&w, "hosp-b", "heart-logreg")["status"], "ok");
    w.results_land("hosp-b", "ward-b");

    // The granted result reaches the leaderboard; the registry verifies.
    w.as_("carol", &["registry", "sync"]).ok();
    w.as_("carol", &["result", "release", "-b", "heart"]).ok();
    w.as_("carol", &["verify"]).ok();
    let board = w
        .as_("carol", &["leaderboard", "heart", "--format", "json"])
        .ok();
    assert!(board.stdout.contains("secret-net"), "{}", board.stdout);

    // No plaintext image anywhere: not in the Engine, not on disk at any site.
    assert!(!images.present(&id));
    for dir in [
        e.cohort_home("mo"),
        e.cohort_home("hosp-a"),
        e.cohort_home("hosp-b"),
        out_dir.clone(),
    ] {
        let found = plaintext_images(&dir, &hex);
        assert!(
            found.is_empty(),
            "plaintext under {}: {found:?}",
            dir.display()
        );
        // The decrypted additional files and parameters left the run folders with the run.
        let extracted: Vec<_> = walk(&dir)
            .into_iter()
            .filter(|p| {
                p.ends_with("weights.txt")
                    || (p.ends_with("parameters.yaml")
                        && p.to_string_lossy().contains("secret-net"))
            })
            .collect();
        assert!(
            extracted.is_empty(),
            "extracted files remain: {extracted:?}"
        );
    }

    // A revocation stops the next run (the cached result is not reused either).
    w.as_(
        "mo",
        &[
            "mlcube",
            "grant",
            "-m",
            "secret-net",
            "-d",
            "ward-a",
            "--revoke",
        ],
    )
    .ok();
    w.as_("hosp-a", &["registry", "sync"]).ok();
    w.as_(
        "hosp-a",
        &["benchmark", "run", "-b", "heart", "-d", "ward-a"],
    )
    .ok()
    .says("no-access");
    assert_eq!(
        row(&w, "hosp-a", "secret-net")["failure"]["reason"],
        "no-access"
    );
    assert!(!images.present(&id));

    // A grant arriving later lets the model run (the receipt submitted before does not stand
    // for the run); a revocation merged before its result makes `verify` refuse that result.
    w.as_("mo", &["registry", "sync"]).ok();
    w.as_(
        "mo",
        &["mlcube", "grant", "-m", "secret-net", "-d", "ward-b"],
    )
    .ok();
    w.as_("hosp-b", &["registry", "sync"]).ok();
    w.as_(
        "hosp-b",
        &[
            "benchmark",
            "run",
            "-b",
            "heart",
            "-d",
            "ward-b",
            "-m",
            "secret-net",
        ],
    )
    .ok();
    assert_eq!(row(&w, "hosp-b", "secret-net")["status"], "ok");
    assert!(!images.present(&id));
    w.as_(
        "hosp-b",
        &["--yes", "result", "submit", "-b", "heart", "-d", "ward-b"],
    )
    .ok();
    w.as_("hosp-b", &["registry", "push"]).ok();
    w.as_(
        "mo",
        &[
            "mlcube",
            "grant",
            "-m",
            "secret-net",
            "-d",
            "ward-b",
            "--revoke",
        ],
    )
    .ok();
    w.as_("carol", &["registry", "sync"]).ok();
    let refused = w.as_("carol", &["registry", "merge", "--all"]);
    assert_ne!(refused.code, 0, "{}", refused.all());
    refused.says("holds no grant");

    // A grantee who changes their age key is named to the owner, who grants again.
    w.as_("mo", &["registry", "sync"]).ok();
    w.as_(
        "mo",
        &["mlcube", "grant", "-m", "secret-net", "-d", "ward-a"],
    )
    .ok();
    w.as_(
        "hosp-a",
        &[
            "key",
            "generate",
            "--handle",
            "hosp-a-new",
            "--no-passphrase",
        ],
    )
    .ok();
    w.as_(
        "hosp-a",
        &["key", "adopt", "hosp-a-new", "--handle", "hosp-a"],
    )
    .ok();
    w.as_("hosp-a", &["registry", "sync"]).ok();
    w.as_(
        "hosp-a",
        &[
            "user",
            "request",
            "--name",
            "hosp-a person",
            "--email",
            "hosp-a@example.org",
        ],
    )
    .ok();
    w.as_("hosp-a", &["registry", "push"]).ok();
    w.as_("admin", &["registry", "sync"]).ok();
    w.as_("admin", &["user", "approve", "hosp-a"]).ok();
    w.as_("mo", &["registry", "sync"]).ok();
    let st = json(&w.as_("mo", &["--json", "registry", "status"]).ok());
    let rotated: Vec<&serde_json::Value> = st["private"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["notice"] == "rotated")
        .collect();
    assert_eq!(rotated.len(), 1, "{st}");
    assert_eq!(rotated[0]["handle"], "hosp-a");
    w.as_(
        "mo",
        &["mlcube", "grant", "-m", "secret-net", "-d", "ward-a"],
    )
    .ok();
    let st = json(&w.as_("mo", &["--json", "registry", "status"]).ok());
    assert!(
        !st["private"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["notice"] == "rotated"),
        "{st}"
    );

    w.as_("carol", &["registry", "sync"]).ok();
    w.as_("carol", &["verify"]).ok();

    // The two-step path: the uploaded ciphertext is checked against the one made here; a
    // flipped byte is refused.
    let served = e.path().join("served");
    std::fs::create_dir_all(&served).unwrap();
    std::fs::write(served.join("good.age"), &ciphertext).unwrap();
    let mut bad = ciphertext.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x01;
    std::fs::write(served.join("bad.age"), &bad).unwrap();
    let server = FileServer::start(served.clone());
    let before = w.branches("mo");
    w.as_(
        "mo",
        &[
            "mlcube",
            "submit",
            &cube,
            "--name",
            "secret-net",
            "--encrypted-image",
            &server.url("bad.age"),
        ],
    )
    .fails(1)
    .says("not a ciphertext");
    assert_eq!(w.branches("mo"), before, "nothing was written");
    let good = w
        .as_(
            "mo",
            &[
                "--json",
                "mlcube",
                "submit",
                &cube,
                "--name",
                "secret-net",
                "--encrypted-image",
                &server.url("good.age"),
                "--additional-files",
                weights_s,
            ],
        )
        .ok();
    assert_eq!(json(&good)["version"], 2);
}
