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

/// The image tag a cube folder's mlcube.yaml names.
fn image_tag(cube: &str) -> String {
    let yaml = std::fs::read_to_string(std::path::Path::new(cube).join("mlcube.yaml")).unwrap();
    yaml.lines()
        .find_map(|l| l.trim_start().strip_prefix("image:"))
        .unwrap()
        .trim()
        .to_string()
}

fn rows<'a>(items: &'a serde_json::Value, kind: &str) -> Vec<&'a serde_json::Value> {
    items
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["kind"] == kind)
        .collect()
}

#[test]
fn test_run_on_a_prepared_dataset_and_storage_cleanup() {
    if !docker_or_skip("test_run_on_a_prepared_dataset_and_storage_cleanup") {
        return;
    }
    let w = World::people();
    let e = &w.env;
    w.benchmark(&[]);
    w.hospital("hosp-a", "hospital-a", "ward-a");
    w.as_(
        "hosp-a",
        &["benchmark", "run", "-b", "heart", "-d", "ward-a"],
    )
    .ok();
    // A second prepared dataset, never registered, with no results.
    w.as_(
        "hosp-a",
        &[
            "dataset",
            "prepare",
            "-b",
            "heart",
            "--name",
            "spare",
            "--data-path",
            &e.data("hospital-b/data"),
            "--labels-path",
            &e.data("hospital-b/labels"),
        ],
    )
    .ok();

    // test run -d: a local model (its own image, built here) on the prepared data.
    let run = cohort::mlcube::docker::new_run_id();
    let local = e.cube_variant("model-good", "habits-model", |d| {
        let df = d.join("project/Dockerfile");
        let text = std::fs::read_to_string(&df).unwrap();
        std::fs::write(&df, crate::sites::label_first(&text, &run)).unwrap();
    });
    let out = w
        .as_(
            "hosp-a",
            &["test", "run", "-b", "heart", "-d", "ward-a", "-m", &local],
        )
        .ok();
    assert!(out.stdout.contains("auc="), "{}", out.all());
    w.as_("hosp-a", &["test", "run", "-b", "heart", "-d", "nowhere"])
        .fails(1)
        .says("nowhere");
    w.as_(
        "hosp-a",
        &["test", "run", "-b", "heart", "-d", "ward-a", "-p", &local],
    )
    .fails(2);
    let docker = cohort::mlcube::DockerRuntime::connect(None).unwrap();
    use cohort::mlcube::ContainerRuntime;
    let local_id = docker.image_id(&image_tag(&local)).unwrap().unwrap();

    // Things nothing needs, and a partial download that resumes.
    let home = e.cohort_home("hosp-a");
    let stale = "ab".repeat(32);
    std::fs::create_dir_all(home.join("cache/sha256")).unwrap();
    std::fs::write(home.join("cache/sha256").join(&stale), b"old asset").unwrap();
    let partial = format!("{}.partial", "cd".repeat(32));
    std::fs::write(home.join("cache/sha256").join(&partial), b"half").unwrap();
    std::fs::create_dir_all(home.join("logs")).unwrap();
    std::fs::write(home.join("logs/old.log"), b"log").unwrap();

    let ls = json(&w.as_("hosp-a", &["storage", "ls", "--json"]).ok());
    let images = rows(&ls, "image");
    assert_eq!(images.len(), 1, "only the image cohort built here: {ls}");
    assert_eq!(images[0]["name"], local_id.as_str());
    assert_eq!(images[0]["removable"], true);
    let datasets = rows(&ls, "dataset");
    let ward = datasets.iter().find(|d| d["dataset"] == "ward-a").unwrap();
    assert_eq!(ward["benchmark"], "heart");
    assert_eq!(ward["removable"], false, "{ward}");
    assert!(rows(&ls, "run").iter().all(|r| r["removable"] == true));
    assert!(
        rows(&ls, "run")
            .iter()
            .any(|r| r["benchmark"] == "heart" && r["dataset"] == "ward-a"),
        "runs are grouped by benchmark and dataset: {ls}"
    );

    // No terminal and no -y: nothing happens.
    w.as_("hosp-a", &["storage", "cleanup"])
        .fails(1)
        .says("--yes");
    assert!(docker.image_id(&local_id).unwrap().is_some());

    w.as_("hosp-a", &["-y", "storage", "cleanup"])
        .ok()
        .says("freed");
    assert!(
        docker.image_id(&local_id).unwrap().is_none(),
        "removed by id"
    );
    assert!(!home.join("cache/sha256").join(&stale).exists());
    assert!(home.join("cache/sha256").join(&partial).exists());
    assert!(!home.join("logs/old.log").exists());
    assert_eq!(
        std::fs::read_dir(home.join("runs/execute"))
            .unwrap()
            .count(),
        0
    );
    assert!(
        home.join("datasets/spare").exists(),
        "datasets need --include-datasets"
    );
    assert!(home.join("keys").exists());
    // tmp holds nothing half-removed.
    assert_eq!(std::fs::read_dir(home.join("tmp")).unwrap().count(), 0);

    w.as_(
        "hosp-a",
        &["-y", "storage", "cleanup", "--include-datasets"],
    )
    .ok();
    assert!(!home.join("datasets/spare").exists());
    assert!(
        home.join("datasets/ward-a").exists(),
        "its result is not submitted"
    );

    // What the approved benchmark needs is still here: its workflow runs on the dataset, and
    // the pending result is submitted.
    let again = w
        .as_("hosp-a", &["test", "run", "-b", "heart", "-d", "ward-a"])
        .ok();
    assert!(again.stdout.contains("auc="), "{}", again.all());
    w.as_(
        "hosp-a",
        &["--yes", "result", "submit", "-b", "heart", "-d", "ward-a"],
    )
    .ok();
}

#[test]
fn dataset_description_and_location_reach_only_the_committee() {
    if !docker_or_skip("dataset_description_and_location_reach_only_the_committee") {
        return;
    }
    let w = World::people();
    let e = &w.env;
    w.benchmark(&[]);
    w.as_(
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
    )
    .ok();
    let (desc, place) = ("cardiology-cohort-2019-qx7", "st-elsewhere-ward-9-qx7");
    w.as_(
        "hosp-a",
        &[
            "--yes",
            "dataset",
            "submit",
            "ward-a",
            "--description",
            desc,
            "--location",
            place,
        ],
    )
    .ok()
    .says("sealed to the same people");
    w.committee_merges("hosp-a");

    // Nowhere in the remote's history in plaintext, on any branch.
    let remote = e.remote();
    let history = e
        .git("hosp-a", &remote, &["log", "-p", "--all", "--text"])
        .ok()
        .stdout;
    assert!(history.contains("about.age"), "the sealed payload is there");
    assert!(!history.contains(desc) && !history.contains(place));

    // The committee reads them; someone else does not.
    w.as_("dave", &["registry", "sync"]).ok();
    let seen = w.as_("dave", &["dataset", "view", "ward-a"]).ok();
    assert!(
        seen.stdout.contains(&format!("description: {desc}")),
        "{}",
        seen.all()
    );
    assert!(
        seen.stdout.contains(&format!("location: {place}")),
        "{}",
        seen.all()
    );
    w.as_("mo", &["registry", "sync"]).ok();
    let hidden = w.as_("mo", &["dataset", "view", "ward-a"]).ok();
    assert!(!hidden.all().contains(place), "{}", hidden.all());
    hidden.says("sealed");
    w.as_("mo", &["verify"]).ok();
}
