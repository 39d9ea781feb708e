//! What MedPerf users reach for: reruns that supersede a result, a compatibility test on an
//! already prepared dataset, sealed dataset descriptions and the local storage report and
//! cleanup.

use cohort::model::{self, build};
use cohort::trust::sign;

use crate::env::json;
use crate::services::docker_or_skip;
use crate::world::World;

/// Writes a record signed by `signer` into `role`'s clone and commits it with git.
fn plant(w: &World, role: &str, signer: &str, path: &str, bytes: &[u8]) {
    let e = &w.env;
    let kind = model::classify(path).unwrap().kind().unwrap();
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
fn a_rerun_supersedes_and_the_release_uses_the_newest() {
    if !docker_or_skip("a_rerun_supersedes_and_the_release_uses_the_newest") {
        return;
    }
    let w = World::people();
    let e = &w.env;
    w.benchmark(&["--policy", "per-model", "--show-dataset-names"]);
    w.hospital("hosp-a", "hospital-a", "ward-a");
    let run = ["benchmark", "run", "-b", "heart", "-d", "ward-a"];
    w.as_("hosp-a", &run).ok();
    let submit = ["--yes", "result", "submit", "-b", "heart", "-d", "ward-a"];
    w.as_("hosp-a", &submit).ok();
    w.committee_merges("hosp-a");
    // A plain rerun hits the cache and leaves nothing new to submit.
    w.as_("hosp-a", &run).ok().says("cached");
    w.as_("hosp-a", &submit).ok().says("no results to submit");

    let mut rerun = run.to_vec();
    rerun.push("--rerun");
    let out = w.as_("hosp-a", &rerun).ok();
    assert!(!out.all().contains("cached"), "{}", out.all());
    w.as_("hosp-a", &submit).ok();
    w.committee_merges("hosp-a");
    let regs = json(
        &w.as_("hosp-a", &["result", "ls", "--registered", "--json"])
            .ok(),
    );
    let paths: Vec<String> = regs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["path"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(paths.len(), 2, "{regs}");
    let first = paths.iter().find(|p| p.ends_with("/1.toml")).unwrap();
    let second = paths.iter().find(|p| p.ends_with("/2.toml")).unwrap();
    let text = std::fs::read_to_string(e.clone_dir("hosp-a").join(second)).unwrap();
    assert!(
        text.contains(&format!("supersedes = \"{first}\"")),
        "{text}"
    );

    // The release covers only the newest result.
    w.as_("carol", &["registry", "sync"]).ok();
    w.as_("carol", &["result", "release", "-b", "heart"]).ok();
    w.as_("carol", &["registry", "sync"]).ok();
    let board =
        std::fs::read_to_string(e.clone_dir("carol").join("leaderboards/heart/1.toml")).unwrap();
    assert!(board.contains(second.as_str()), "{board}");
    assert!(!board.contains(first.as_str()), "{board}");
    w.as_("hosp-b", &["registry", "sync"]).ok();
    w.as_("hosp-b", &["verify"]).ok();

    // A result may supersede only an earlier result of the same pairing by the same owner.
    w.as_("mo", &["registry", "sync"]).ok();
    let forged_path = second.replace("/2.toml", "/3.toml");
    let forged = text.replace("number = 2", "number = 3").replace(
        first.as_str(),
        "results/heart/elsewhere/heart-logreg/1.toml",
    );
    plant(&w, "mo", "hosp-a", &forged_path, forged.as_bytes());
    w.as_("mo", &["verify"])
        .fails(1)
        .says("supersedes results/heart/elsewhere/heart-logreg/1.toml");
}
