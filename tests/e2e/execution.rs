//! Execution failures at a site: slow, crashing, escaping and malformed models, a metrics cube
//! that tries to smuggle data out, Docker disappearing, an unapproved association. Each is
//! recorded (a failure receipt) or refused, with a clear message and nothing lost.

use crate::env::{TestEnv, json};
use crate::world::World;

#[test]
fn failing_models_yield_receipts_and_bad_outputs_are_refused() {
    let w = World::people();
    let e = &w.env;
    w.benchmark(&["--policy", "per-model"]);
    // A slow model (2 s) that passes its compatibility test, and one that probes its sandbox.
    let slow = e.cube_variant("model-slow", "slow-net", |d| {
        TestEnv::edit(
            &d.join("workspace/parameters.yaml"),
            "sleep_seconds: forever",
            "sleep_seconds: 2",
        );
    });
    let escapee = e.cube_variant("model-malformed", "escapee", |d| {
        TestEnv::edit(
            &d.join("workspace/parameters.yaml"),
            "mode: out_of_range",
            "mode: escape",
        );
    });
    let flooder = e.cube_variant("model-malformed", "flooder", |d| {
        TestEnv::edit(
            &d.join("workspace/parameters.yaml"),
            "mode: out_of_range",
            "mode: flood_output",
        );
    });
    for (path, name) in [
        (&slow, "slow-net"),
        (&escapee, "escapee"),
        (&flooder, "flooder"),
    ] {
        w.as_(
            "mo",
            &[
                "mlcube",
                "submit",
                path,
                "--name",
                name,
                "--build",
                "--local-only",
            ],
        )
        .ok();
        w.as_("mo", &["registry", "merge", "--all"]).ok();
        w.as_("mo", &["mlcube", "associate", "-b", "heart", "-m", name])
            .ok();
        w.as_("mo", &["registry", "push"]).ok();
        w.as_(
            "dave",
            &["association", "approve", "-b", "heart", "-m", name],
        )
        .ok();
    }
    w.hospital("hosp-a", "hospital-a", "ward-a");
    // A dataset whose association is not approved yet cannot be run.
    let e2 = e.data("hospital-b/data");
    let l2 = e.data("hospital-b/labels");
    w.as_(
        "hosp-b",
        &[
            "dataset",
            "prepare",
            "-b",
            "heart",
            "--name",
            "cardio-b",
            "--data-path",
            &e2,
            "--labels-path",
            &l2,
        ],
    )
    .ok();
    w.as_("hosp-b", &["--yes", "dataset", "submit", "cardio-b"])
        .ok();
    w.committee_merges("hosp-b");
    w.as_(
        "hosp-b",
        &["benchmark", "run", "-b", "heart", "-d", "cardio-b"],
    )
    .fails(1)
    .says("no approved association");

    // A model past its time limit stops the run (its receipt is kept) ...
    w.as_(
        "hosp-a",
        &[
            "benchmark",
            "run",
            "-b",
            "heart",
            "-d",
            "ward-a",
            "--timeout",
            "1s",
        ],
    )
    .fails(1)
    .says("slow-net")
    .says("failure receipt");
    // ... or not, with --ignore-model-errors; the others run (or come from the cache).
    let runs = json(
        &w.as_(
            "hosp-a",
            &[
                "benchmark",
                "run",
                "-b",
                "heart",
                "-d",
                "ward-a",
                "--timeout",
                "1s",
                "--ignore-model-errors",
                "--json",
            ],
        )
        .ok(),
    );
    let slow_run = runs
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["model"] == "slow-net")
        .unwrap();
    assert!(
        slow_run["status"].as_str().unwrap().ends_with("failed"),
        "{runs}"
    );
    assert_eq!(slow_run["failure"]["reason"], "timeout");
    assert_eq!(slow_run["failure"]["stage"], "infer");
    let esc = runs
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["model"] == "escapee")
        .unwrap();
    assert!(
        esc["status"].as_str().unwrap().ends_with("ok"),
        "the escape attempts were contained: {runs}"
    );
    // Nothing was written into the hospital's data by the escaping model.
    let prepared = e.cohort_home("hosp-a").join("datasets/ward-a/prepared");
    let mut found = Vec::new();
    for entry in walk(&prepared) {
        if entry.ends_with("escape.txt") {
            found.push(entry);
        }
    }
    assert!(found.is_empty(), "{found:?}");
    w.as_("hosp-a", &["dataset", "check", "ward-a"]).ok();
    // A model that floods its output folder fails (a receipt), under a cap the site chooses.
    let flood = json(
        &w.as_(
            "hosp-a",
            &[
                "benchmark",
                "run",
                "-b",
                "heart",
                "-d",
                "ward-a",
                "-m",
                "flooder",
                "--no-cache",
                "--max-output",
                "4m",
                "--ignore-model-errors",
                "--json",
            ],
        )
        .ok(),
    );
    assert_eq!(flood[0]["failure"]["reason"], "output-too-large", "{flood}");

    // The failure receipt is submitted like a result, with no data.
    w.as_(
        "hosp-a",
        &["--yes", "result", "submit", "-b", "heart", "-d", "ward-a"],
    )
    .ok()
    .says("failure receipt");
    w.committee_merges("hosp-a");
    let reg = json(
        &w.as_("carol", &["result", "ls", "--registered", "--json"])
            .ok(),
    );
    let receipt = reg
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["model"] == "slow-net")
        .unwrap();
    assert_eq!(receipt["status"], "failed");
    let path = receipt["path"].as_str().unwrap();
    assert!(
        !e.clone_dir("carol")
            .join(path.replace(".toml", ".result.age"))
            .exists()
    );
    w.as_("carol", &["result", "release", "-b", "heart"])
        .ok()
        .says("slow-net");

    // Docker going away mid-run: an environment error (exit 3), nothing recorded.
    w.as_env_docker(
        "hosp-a",
        &[
            "benchmark",
            "run",
            "-b",
            "heart",
            "-d",
            "ward-a",
            "--no-cache",
        ],
    )
    .fails(3)
    .says("Docker");

    // Malformed predictions fail at evaluate; a metrics cube that writes nested data or floods
    // results.yaml is refused before anything could be sealed.
    let malformed = e.cube("model-malformed");
    w.as_("mo", &["test", "run", "-b", "heart", "-m", &malformed])
        .fails(1)
        .says("evaluate");
    let nested = e.cube_variant("metrics", "nested-metrics", |d| {
        std::fs::write(d.join("project/cube.sh"), "for a in \"$@\"; do case $a in --output_path=*) o=${a#*=};; esac; done\nprintf 'auc: 0.9\\npatients:\\n  - id: 17\\n    age: 54\\n' > \"$o\"\n").unwrap();
    });
    w.as_("carol", &["test", "run", "-b", "heart", "-e", &nested])
        .fails(1)
        .says("nested data and text are refused");
    let flood = e.cube_variant("metrics", "flood-metrics", |d| {
        std::fs::write(d.join("project/cube.sh"), "for a in \"$@\"; do case $a in --output_path=*) o=${a#*=};; esac; done\n{ echo 'auc: 0.9'; i=0; while [ $i -lt 160 ]; do head -c 65536 /dev/zero | tr '\\0' 'x'; echo; i=$((i+1)); done; } > \"$o\"\n").unwrap();
    });
    w.as_("carol", &["test", "run", "-b", "heart", "-e", &flood])
        .fails(1)
        .says("capped");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

impl World {
    /// Runs as `role` with DOCKER_HOST pointing at a socket that does not exist.
    fn as_env_docker(&self, role: &str, args: &[&str]) -> crate::env::Run {
        self.env.cohort_env(
            role,
            args,
            &[("DOCKER_HOST", "unix:///nonexistent/docker.sock")],
        )
    }
}
