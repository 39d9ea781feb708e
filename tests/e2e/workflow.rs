//! The seed's whole workflow with real containers, every role in its own clone over a bare
//! remote: benchmark submission, model and dataset associations, execution at two hospitals,
//! sealed results, the committee's release, and a keyless clone that verifies and renders it.

use crate::env::json;
use crate::world::{World, metric};

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-6
}

#[test]
fn seed_workflow_end_to_end() {
    let w = World::people();
    let e = &w.env;
    // A model owner cannot create a benchmark.
    w.cube("mo", "model-weak", "bmi-only");
    let demo = e.data("demo.tar.gz");
    w.as_(
        "mo",
        &[
            "benchmark",
            "submit",
            "--name",
            "mine",
            "--data-preparator",
            "bmi-only",
            "--reference-model",
            "bmi-only",
            "--metrics",
            "bmi-only",
            "--demo-dataset",
            &demo,
        ],
    )
    .fails(1)
    .says("only admins and holders of the benchmark-owner right can submit benchmarks");

    w.benchmark(&["--policy", "cross-product", "--min-datasets", "2"]);
    // Issue 14: the demo tarball's sizes are measured at submission and signed, so every site
    // bounds its download and extraction by them.
    let admin = e.clone_dir("admin");
    let record = e
        .git("admin", &admin, &["show", "main:benchmarks/heart/v1.toml"])
        .ok()
        .all();
    for field in ["size = ", "unpacked_size = ", "files = "] {
        assert!(record.contains(field), "{field} missing in:\n{record}");
    }
    let bench = json(&w.as_("hosp-a", &["benchmark", "ls", "--json"]).ok());
    assert_eq!(bench[0]["name"], "heart");
    assert_eq!(bench[0]["committee"], serde_json::json!(["carol", "dave"]));

    // Models: one passes its compatibility test, a crashing one is refused and nothing is written.
    w.as_(
        "mo",
        &["mlcube", "associate", "-b", "heart", "-m", "bmi-only"],
    )
    .ok();
    w.as_("mo", &["registry", "push"]).ok();
    w.cube("mo", "model-crash", "deep-risk");
    w.as_(
        "mo",
        &["mlcube", "associate", "-b", "heart", "-m", "deep-risk"],
    )
    .fails(1)
    .says("failed the heart compatibility test at step infer");
    assert!(
        !w.branches("mo").contains("deep-risk"),
        "{}",
        w.branches("mo")
    );
    // Only the committee approves, and not the requester.
    w.as_(
        "mo",
        &["association", "approve", "-b", "heart", "-m", "bmi-only"],
    )
    .fails(1)
    .says("only members of the heart committee (carol, dave) can approve its associations");
    w.as_(
        "dave",
        &["association", "approve", "-b", "heart", "-m", "bmi-only"],
    )
    .ok();
    w.as_(
        "carol",
        &[
            "association",
            "set_priority",
            "-b",
            "heart",
            "-m",
            "bmi-only",
            "-p",
            "5",
        ],
    )
    .ok();

    // Two hospitals with differently shaped exports.
    w.hospital("hosp-a", "hospital-a", "ward-a");
    w.hospital("hosp-b", "hospital-b", "cardio-b");
    let assoc = json(&w.as_("dave", &["association", "ls", "--json"]).ok());
    let states: Vec<(String, String)> = assoc
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["name"].as_str().unwrap().to_string(),
                a["state"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for want in [
        ("heart-logreg", "reference"),
        ("bmi-only", "approved"),
        ("ward-a", "approved"),
        ("cardio-b", "approved"),
    ] {
        assert!(
            states.iter().any(|(n, s)| n == want.0 && s == want.1),
            "{want:?} in {states:?}"
        );
    }

    // Execution at each hospital: every approved model, priority order, values as computed
    // independently in fixtures/README.md.
    for (role, name) in [("hosp-a", "ward-a"), ("hosp-b", "cardio-b")] {
        let run = json(
            &w.as_(
                role,
                &["benchmark", "run", "-b", "heart", "-d", name, "--json"],
            )
            .ok(),
        );
        let order: Vec<&str> = run
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["model"].as_str().unwrap())
            .collect();
        assert_eq!(order, ["bmi-only", "heart-logreg"], "priority 5 runs first");
    }
    let a = w.results("hosp-a");
    assert!(close(metric(&a, "heart-logreg", "auc"), 0.78906), "{a:?}");
    assert!(close(metric(&a, "heart-logreg", "accuracy"), 0.7375));
    assert!(close(metric(&a, "bmi-only", "auc"), 0.57641));
    let b = w.results("hosp-b");
    assert!(close(metric(&b, "heart-logreg", "auc"), 0.795184), "{b:?}");
    assert!(close(metric(&b, "bmi-only", "sensitivity"), 0.369231));
    // A rerun is served from the cache.
    let again = json(
        &w.as_(
            "hosp-a",
            &["benchmark", "run", "-b", "heart", "-d", "ward-a", "--json"],
        )
        .ok(),
    );
    assert!(
        again
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["status"] == "cached ok"),
        "{again}"
    );

    for (role, name) in [("hosp-a", "ward-a"), ("hosp-b", "cardio-b")] {
        w.as_(
            role,
            &["--yes", "result", "submit", "-b", "heart", "-d", name],
        )
        .ok();
        w.committee_merges(role);
    }
    let registered = json(
        &w.as_("carol", &["result", "ls", "--registered", "--json"])
            .ok(),
    );
    assert_eq!(registered.as_array().unwrap().len(), 4);

    // The committee releases; a fifth clone with no keys at all verifies and renders it.
    w.as_("carol", &["result", "release", "-b", "heart"]).ok();
    let obs = e.clone_dir("observer");
    e.cohort_in(
        "observer",
        &e.role_dir("observer"),
        &[
            "registry",
            "clone",
            e.remote().to_str().unwrap(),
            obs.to_str().unwrap(),
            "--root",
            &w.id,
        ],
        &[],
    )
    .ok();
    w.as_("observer", &["verify"]).ok();
    let lb = json(
        &w.as_("observer", &["leaderboard", "heart", "--format", "json"])
            .ok(),
    );
    let text = lb.to_string();
    assert!(
        text.contains("heart-logreg") && text.contains("bmi-only"),
        "{text}"
    );
    assert!(
        text.contains("0.792122"),
        "mean auc of heart-logreg over both sites: {text}"
    );
    for format in ["table", "markdown", "csv"] {
        let out = w
            .as_("observer", &["leaderboard", "heart", "--format", format])
            .ok();
        assert!(
            out.stdout.contains("heart-logreg"),
            "{format}: {}",
            out.stdout
        );
        assert!(out.stdout.contains("site-1"), "{format}: pseudonyms");
        assert!(
            !out.stdout.contains("ward-a"),
            "{format}: dataset names stay hidden"
        );
    }
    let history = w
        .as_("observer", &["leaderboard", "heart", "--history"])
        .ok();
    assert!(history.stdout.contains("1 release"), "{}", history.stdout);
    let site = e.path().join("site");
    w.as_(
        "observer",
        &[
            "leaderboard",
            "heart",
            "--format",
            "html",
            "-o",
            site.to_str().unwrap(),
        ],
    )
    .ok();
    let html = std::fs::read_to_string(site.join("heart/index.html")).unwrap();
    assert!(html.contains("heart-logreg") && html.contains("<svg"));
    // The same commit gives the same bytes, from any clone.
    let again = e.path().join("site-again");
    w.as_("carol", &["site", "-o", again.to_str().unwrap()])
        .ok();
    assert_eq!(
        std::fs::read(again.join("heart/index.html")).unwrap(),
        html.as_bytes()
    );

    // Without keys, nothing sealed can be read; the committee and the owner can.
    let view = w.as_("observer", &["dataset", "view", "ward-a"]).ok();
    assert!(
        !view.stdout.contains("n_records"),
        "statistics are sealed: {}",
        view.stdout
    );
    let result_path = registered
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["model"] == "heart-logreg")
        .unwrap()["path"]
        .as_str()
        .unwrap()
        .to_string();
    let rv = w.as_("observer", &["result", "view", &result_path]).ok();
    assert!(!rv.stdout.contains("auc ="), "{}", rv.stdout);
    let carol = w.as_("carol", &["result", "view", &result_path]).ok();
    assert!(carol.stdout.contains("auc="), "{}", carol.stdout);
    // mo (a model owner, not a recipient) cannot read a hospital's values either.
    w.as_("mo", &["registry", "sync"]).ok();
    let mo = w.as_("mo", &["result", "view", &result_path]).ok();
    assert!(!mo.stdout.contains("auc="), "{}", mo.stdout);
    let stats = w.as_("dave", &["dataset", "view", "ward-a"]).ok();
    assert!(stats.stdout.contains("n_records=240"), "{}", stats.stdout);

    for role in ["admin", "carol", "dave", "mo", "hosp-a", "hosp-b"] {
        w.as_(role, &["registry", "sync"]).ok();
        w.as_(role, &["verify"]).ok();
    }
}
