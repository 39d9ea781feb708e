//! The primary metric from submission to release: `benchmark submit` checks it against what
//! the reference workflow reports (refusing before anything is written, or choosing the only
//! score), a release over results without it names them, size metrics are totals in a
//! layout-3 release, and a release of the older layout (`n` averaged) still verifies and
//! recomputes by its own rules.

use cohort::model::{self, MetricSummary, Record, build};
use cohort::trust::sign;

use crate::env::json;
use crate::world::World;

/// A metrics cube that reports exactly `yaml` (a flat map) whatever it is given.
fn constant_metrics(w: &World, name: &str, yaml: &str) -> String {
    let yaml = yaml.replace('\n', "\\n");
    w.env.cube_variant("metrics", name, |d| {
        std::fs::write(
            d.join("project/cube.sh"),
            format!(
                "for a in \"$@\"; do case $a in --output_path=*) o=${{a#*=}};; esac; done\nprintf '{yaml}' > \"$o\"\n"
            ),
        )
        .unwrap();
    })
}

/// Every ref of carol's clone and of the shared remote, so a refusal can be shown to have
/// written nothing.
fn refs(w: &World) -> String {
    let e = &w.env;
    let local = e
        .git("carol", &e.clone_dir("carol"), &["for-each-ref"])
        .ok()
        .stdout;
    let remote = e.git("carol", &e.remote(), &["for-each-ref"]).ok().stdout;
    format!("{local}\n--\n{remote}")
}

fn submit(w: &World, metrics: &str, extra: &[&str]) -> crate::env::Run {
    let demo = w.env.data("demo.tar.gz");
    let mut args = vec![
        "benchmark",
        "submit",
        "--name",
        "heart",
        "--data-preparator",
        "heart-prep",
        "--reference-model",
        "heart-logreg",
        "--metrics",
        metrics,
        "--demo-dataset",
        &demo,
        "--committee",
        "dave",
        "--show-dataset-names",
    ];
    args.extend_from_slice(extra);
    w.as_("carol", &args)
}

fn approve(w: &World) {
    w.as_("carol", &["registry", "push"]).ok();
    w.as_("admin", &["benchmark", "approve", "heart"]).ok();
    w.as_("carol", &["registry", "sync"]).ok();
}

#[test]
fn the_primary_metric_is_checked_from_submission_to_release() {
    let w = World::people();
    let e = &w.env;
    w.cube("carol", "prep", "heart-prep");
    w.cube("carol", "model-good", "heart-logreg");
    w.cube("carol", "metrics", "heart-metrics");
    for (name, yaml) in [
        ("auc-metrics", "auc: 0.8\nn: 40\n"),
        ("acc-metrics", "accuracy: 0.7\nn: 40\n"),
    ] {
        let dir = constant_metrics(&w, name, yaml);
        w.as_(
            "carol",
            &[
                "mlcube",
                "submit",
                &dir,
                "--name",
                name,
                "--build",
                "--local-only",
            ],
        )
        .ok();
        w.as_("carol", &["registry", "merge", "--all"]).ok();
    }
    w.as_("carol", &["registry", "push"]).ok();

    // The fixture metrics cube reports several scores: none is picked silently, and nothing is
    // written (no branch, no commit, locally or on the remote).
    let before = refs(&w);
    let several = submit(&w, "heart-metrics", &[]).fails(1);
    several.says("nothing was submitted");
    several.says("`--primary-metric NAME`: accuracy, auc, sensitivity, specificity");
    assert_eq!(refs(&w), before);
    // An unknown one is refused the same way.
    let unknown = submit(&w, "heart-metrics", &["--primary-metric", "roc"]).fails(1);
    unknown.says("reports no `roc`");
    unknown.says("hint:");
    unknown.says("accuracy, auc, sensitivity, specificity");
    // A count of cases ranks nothing.
    submit(&w, "heart-metrics", &["--primary-metric", "n"])
        .fails(1)
        .says("counts cases");
    assert_eq!(refs(&w), before);
    assert!(!w.branches("carol").contains("benchmark-heart"));

    // One score besides `n`: chosen, and said so.
    submit(&w, "auc-metrics", &[])
        .ok()
        .says("primary metric: auc, the only metric");
    approve(&w);
    let bench =
        std::fs::read_to_string(e.clone_dir("carol").join("benchmarks/heart/v1.toml")).unwrap();
    assert!(bench.contains("primary_metric = \"auc\""), "{bench}");

    // A hospital's result under v1 reports auc and n.
    w.hospital("hosp-a", "hospital-a", "ward-a");
    w.as_(
        "hosp-a",
        &["benchmark", "run", "-b", "heart", "-d", "ward-a"],
    )
    .ok();
    w.results_land("hosp-a", "ward-a");

    // v2 switches to a metrics cube that reports accuracy: its results would, but v1's do not.
    submit(&w, "acc-metrics", &[])
        .ok()
        .says("primary metric: accuracy");
    approve(&w);
    let before = refs(&w);
    let missing = w
        .as_("carol", &["result", "release", "-b", "heart"])
        .fails(1);
    missing.says("report no `accuracy`, the benchmark's primary metric: results/heart/");
    missing.says("(they report auc, n)");
    missing.says("--primary-metric auc");
    assert_eq!(refs(&w), before, "nothing was released");

    // v3 ranks by what the results report: released in layout 3, `n` a total.
    submit(&w, "auc-metrics", &["--primary-metric", "auc"]).ok();
    approve(&w);
    w.as_("carol", &["result", "release", "-b", "heart"]).ok();
    let clone = e.clone_dir("carol");
    let path = build::leaderboard("heart", 1);
    let bytes = std::fs::read(clone.join(&path)).unwrap();
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert!(text.contains("layout = 3"), "{text}");
    assert!(text.contains("[entries.totals]\nn = 40.0"), "{text}");
    assert!(!text.contains("[entries.metrics.n]"), "{text}");
    let shown = w.as_("carol", &["leaderboard", "heart"]).ok();
    shown.says("n (total)");
    assert!(
        !shown.all().contains("Ties share a rank"),
        "{}",
        shown.all()
    );
    let lb = json(
        &w.as_("carol", &["leaderboard", "heart", "--format", "json"])
            .ok(),
    );
    assert_eq!(lb["entries"][0]["totals"]["n"], 40.0, "{lb}");

    // The same release as cohort wrote it before layout 3 (`n` averaged like a score), signed
    // by the committee: it still verifies, and a committee member's check recomputes it byte
    // for byte by the rules of its own layout.
    let rp = model::classify(&path).unwrap();
    let Record::Leaderboard(mut old) = model::parse_record(&path, &rp, &bytes).unwrap() else {
        panic!("not a release");
    };
    old.layout = Some(2);
    old.number = 2;
    for entry in &mut old.entries {
        for (name, total) in std::mem::take(&mut entry.totals) {
            entry.metrics.insert(
                name,
                MetricSummary {
                    mean: total,
                    sd: None,
                    min: Some(total),
                    max: Some(total),
                    n: 1,
                },
            );
        }
    }
    let old_bytes = model::to_bytes(&old);
    let old_path = build::leaderboard("heart", 2);
    let sig = sign::sign(
        &e.signer("carol"),
        &w.id.parse().unwrap(),
        &old_path,
        "leaderboard",
        &old_bytes,
    )
    .unwrap();
    e.write("carol", &old_path, &old_bytes);
    e.write("carol", &build::signature(&old_path, "carol"), &sig);
    e.commit_all("carol", "a layout-2 release");
    w.as_("carol", &["verify"]).ok();
    // The remote's hook takes it, and a fresh clone's sync (which verifies) too.
    e.git("carol", &clone, &["push", "--quiet", "origin", "main"])
        .ok();
    w.as_("carol", &["registry", "sync"]).ok();
    w.as_("hosp-b", &["registry", "sync"]).ok();
    w.as_("hosp-b", &["verify"]).ok();
    let checked = json(
        &w.as_(
            "carol",
            &[
                "leaderboard",
                "heart",
                "--check",
                "--release",
                "2",
                "--json",
            ],
        )
        .ok(),
    );
    assert_eq!(checked["recomputed"], true, "{checked}");
    w.as_("carol", &["leaderboard", "heart"])
        .ok()
        .says("n (mean per dataset)");
}
