//! Releases: the committee threshold with co-signers who recompute the release first, and
//! `verify` refusing releases signed by outsiders, covering unapproved or mismatching results,
//! showing more than the results agreed to, and policy changes without approval.

use cohort::model::{self, Sha256, build};
use cohort::trust::sign;

use crate::env::json;
use crate::world::World;

/// Writes a record signed by `signer` into `role`'s clone and commits it with git.
fn plant(w: &World, role: &str, signer: &str, path: &str, bytes: &[u8]) {
    let e = &w.env;
    let rp = model::classify(path).unwrap();
    let kind = rp.kind().unwrap();
    let sig = sign::sign(
        &e.signer(signer),
        &w.id.parse().unwrap(),
        path,
        kind.as_str(),
        bytes,
    )
    .unwrap();
    e.write(role, path, bytes);
    e.write(role, &build::signature(path, signer), &sig);
    e.commit_all(role, &format!("plant {path}"));
}

#[test]
fn releases_need_the_committee_and_respect_the_policy() {
    let w = World::people();
    let e = &w.env;
    w.benchmark(&["--policy", "per-model", "--release-threshold", "2"]);
    w.hospital("hosp-a", "hospital-a", "ward-a");
    w.as_(
        "hosp-a",
        &["benchmark", "run", "-b", "heart", "-d", "ward-a"],
    )
    .ok();
    w.results_land("hosp-a", "ward-a");

    // carol proposes; the threshold is two committee signatures.
    w.as_("carol", &["result", "release", "-b", "heart"])
        .ok()
        .says("cosign");
    let branch = "submit/carol/leaderboard-heart-1";
    // A merge before the threshold is met does not verify.
    w.as_("carol", &["registry", "merge", branch])
        .fails(1)
        .says("release threshold is 2");
    // mo is not a recipient of the results: he cannot recompute the release, so he cannot co-sign.
    w.as_("mo", &["registry", "sync"]).ok();
    w.as_("mo", &["registry", "cosign", branch]).fails(1);
    // dave recomputes it with his own key, co-signs, and it merges.
    w.as_("dave", &["registry", "sync"]).ok();
    w.as_("dave", &["registry", "cosign", branch]).ok();
    w.as_("dave", &["registry", "merge", branch]).ok();
    w.as_("hosp-b", &["registry", "sync"]).ok();
    let lb = json(&w.as_("hosp-b", &["leaderboard", "heart", "--json"]).ok());
    assert!(lb.to_string().contains("heart-logreg"), "{lb}");
    w.as_("hosp-b", &["verify"]).ok();

    // Hand-made releases in mo's clone: each rejected by verify, with the reason.
    w.as_("mo", &["registry", "sync"]).ok();
    let ix_path = |p: &str| e.clone_dir("mo").join(p);
    let released = std::fs::read_to_string(ix_path("leaderboards/heart/1.toml")).unwrap();
    // 1. signed by someone outside the committee
    let outsider = released.replace("number = 1", "number = 2");
    plant(
        &w,
        "mo",
        "mo",
        "leaderboards/heart/2.toml",
        outsider.as_bytes(),
    );
    let v = w.as_("mo", &["verify"]).fails(1);
    v.says("mo is not on the committee of heart");
    e.git(
        "mo",
        &e.clone_dir("mo"),
        &["reset", "--quiet", "--hard", "origin/main"],
    )
    .ok();
    // 2. covering a manifest that is not on main (a pseudonymised release lists its inputs
    // as digests), signed by carol and dave
    let result_sha = released
        .lines()
        .skip_while(|l| !l.starts_with("inputs"))
        .find_map(|l| l.split('"').nth(1))
        .expect("the release lists its inputs by digest")
        .to_string();
    let wrong = released.replace("number = 1", "number = 2").replacen(
        &result_sha,
        Sha256::of(b"x").as_str(),
        1,
    );
    let path = "leaderboards/heart/2.toml";
    e.write("mo", path, wrong.as_bytes());
    for s in ["carol", "dave"] {
        let home_sig = sign::sign(
            &e.signer(s),
            &w.id.parse().unwrap(),
            path,
            "leaderboard",
            wrong.as_bytes(),
        )
        .unwrap();
        e.write("mo", &build::signature(path, s), &home_sig);
    }
    e.commit_all("mo", "wrong hash");
    w.as_("mo", &["verify"])
        .fails(1)
        .says("which is no result manifest of heart on main");
    e.git(
        "mo",
        &e.clone_dir("mo"),
        &["reset", "--quiet", "--hard", "origin/main"],
    )
    .ok();
    // 3. a policy change without an admin's approval
    let bench = std::fs::read_to_string(ix_path("benchmarks/heart/v1.toml")).unwrap();
    let prev = Sha256::of(bench.as_bytes());
    let v2 = bench
        .replacen(
            "version = 1\n",
            &format!("version = 2\nprevious = \"{prev}\"\n"),
            1,
        )
        .replace("release = \"per-model\"", "release = \"cross-product\"");
    plant(&w, "mo", "carol", "benchmarks/heart/v2.toml", v2.as_bytes());
    w.as_("mo", &["verify"])
        .fails(1)
        .says("merged without an admin's approval");
    e.git(
        "mo",
        &e.clone_dir("mo"),
        &["reset", "--quiet", "--hard", "origin/main"],
    )
    .ok();

    // A wider policy, approved, applies only to results submitted after it: the old results are
    // left out of a release, and a release showing them is refused by verify.
    let demo = e.data("demo.tar.gz");
    w.as_(
        "carol",
        &[
            "benchmark",
            "submit",
            "--name",
            "heart",
            "--data-preparator",
            "heart-prep",
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
            "--policy",
            "cross-product",
            "--release-threshold",
            "2",
        ],
    )
    .ok();
    w.as_("carol", &["registry", "push"]).ok();
    w.as_("admin", &["benchmark", "approve", "heart"]).ok();
    w.as_("carol", &["result", "release", "-b", "heart"])
        .fails(1)
        .says("left out");
    w.as_("mo", &["registry", "sync"]).ok();
    let v2_sha = Sha256::of(&std::fs::read(ix_path("benchmarks/heart/v2.toml")).unwrap());
    let v1_sha = Sha256::of(bench.as_bytes());
    let wider = released
        .replace("number = 1", "number = 2")
        .replace(
            &format!("sha256 = \"{v1_sha}\""),
            &format!("sha256 = \"{v2_sha}\""),
        )
        .replacen("version = 1\n", "version = 2\n", 1)
        .replace("release = \"per-model\"", "release = \"cross-product\"");
    e.write("mo", path, wider.as_bytes());
    for s in ["carol", "dave"] {
        let sig = sign::sign(
            &e.signer(s),
            &w.id.parse().unwrap(),
            path,
            "leaderboard",
            wider.as_bytes(),
        )
        .unwrap();
        e.write("mo", &build::signature(path, s), &sig);
    }
    e.commit_all("mo", "wider than agreed");
    w.as_("mo", &["verify"])
        .fails(1)
        .says("agreed to per-model");
}
