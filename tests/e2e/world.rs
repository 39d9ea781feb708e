//! A registry with people in it: the shared set-up of the workflow tests (admin, a committee of
//! carol and dave, model owners and hospitals, the fixture cubes, an approved benchmark).

use crate::env::{Run, TestEnv, json};

pub struct World {
    pub env: TestEnv,
    pub id: String,
}

pub const PEOPLE: &[&str] = &["carol", "dave", "mo", "hosp-a", "hosp-b"];

impl World {
    /// Everyone joined and admitted; carol may own benchmarks.
    pub fn people() -> World {
        let env = TestEnv::new();
        let id = env.init_shared("admin");
        for p in PEOPLE {
            env.join(p, &id);
        }
        for p in PEOPLE {
            env.cohort("admin", &["user", "approve", p]).ok();
        }
        env.cohort(
            "admin",
            &["user", "grant", "carol", "--role", "benchmark-owner"],
        )
        .ok();
        env.fixtures();
        World { env, id }
    }

    pub fn as_(&self, role: &str, args: &[&str]) -> Run {
        self.env.cohort(role, args)
    }

    /// carol registers the three cubes and the benchmark `heart` (committee carol + dave, extra
    /// benchmark flags in `policy`); the admin approves it.
    pub fn benchmark(&self, policy: &[&str]) {
        let e = &self.env;
        for (dir, name) in [
            ("prep", "heart-prep"),
            ("model-good", "heart-logreg"),
            ("metrics", "heart-metrics"),
        ] {
            self.as_(
                "carol",
                &[
                    "mlcube",
                    "submit",
                    &e.cube(dir),
                    "--name",
                    name,
                    "--build",
                    "--local-only",
                ],
            )
            .ok();
        }
        self.as_("carol", &["registry", "merge", "--all"]).ok();
        self.submit_heart(policy);
    }

    /// carol submits the benchmark `heart` over the registered fixture cubes (committee carol +
    /// dave, extra flags in `policy`, `auc` unless it names a primary metric); the admin
    /// approves it.
    pub fn submit_heart(&self, policy: &[&str]) {
        let demo = self.env.data("demo.tar.gz");
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
            "heart-metrics",
            "--demo-dataset",
            &demo,
            "--committee",
            "dave",
        ];
        args.extend_from_slice(policy);
        // The fixture metrics cube reports several scores: the benchmark names its own.
        if !policy.contains(&"--primary-metric") {
            args.extend_from_slice(&["--primary-metric", "auc"]);
        }
        self.as_("carol", &args)
            .ok()
            .says("submit/carol/benchmark-heart-v1");
        self.as_("carol", &["registry", "push"]).ok();
        self.as_("admin", &["benchmark", "approve", "heart"]).ok();
    }

    /// `role` registers a fixture cube under `name` and merges it.
    pub fn cube(&self, role: &str, dir: &str, name: &str) {
        self.as_(
            role,
            &[
                "mlcube",
                "submit",
                &self.env.cube(dir),
                "--name",
                name,
                "--build",
                "--local-only",
            ],
        )
        .ok();
        self.as_(role, &["registry", "merge", "--all"]).ok();
    }

    /// A hospital prepares, registers and associates its fixture export; carol approves.
    pub fn hospital(&self, role: &str, folder: &str, name: &str) {
        let e = &self.env;
        self.as_(
            role,
            &[
                "dataset",
                "prepare",
                "-b",
                "heart",
                "--name",
                name,
                "--data-path",
                &e.data(&format!("{folder}/data")),
                "--labels-path",
                &e.data(&format!("{folder}/labels")),
            ],
        )
        .ok();
        self.as_(role, &["--yes", "dataset", "submit", name]).ok();
        self.committee_merges(role);
        self.as_(role, &["dataset", "associate", "-d", name, "-b", "heart"])
            .ok();
        self.as_(role, &["registry", "push"]).ok();
        self.as_(
            "carol",
            &["association", "approve", "-b", "heart", "-d", name],
        )
        .ok();
    }

    /// `role` pushes its submissions and carol (committee) merges them: sealed statistics and
    /// results reach main only through a committee member who decrypts them first.
    /// `role` submits its results for `heart` on `dataset`, and the committee merges them.
    pub fn results_land(&self, role: &str, dataset: &str) {
        self.as_(
            role,
            &["--yes", "result", "submit", "-b", "heart", "-d", dataset],
        )
        .ok();
        self.committee_merges(role);
    }

    pub fn committee_merges(&self, role: &str) {
        self.as_(role, &["registry", "push"]).ok();
        self.as_("carol", &["registry", "merge", "--all"]).ok();
        self.as_(role, &["registry", "sync"]).ok();
    }

    /// The local results of `role` as JSON rows.
    pub fn results(&self, role: &str) -> Vec<serde_json::Value> {
        json(&self.as_(role, &["result", "ls", "--json"]).ok())
            .as_array()
            .unwrap()
            .clone()
    }

    /// Branches named `submit/...` in `role`'s clone.
    pub fn branches(&self, role: &str) -> String {
        self.env
            .git(
                role,
                &self.env.clone_dir(role),
                &["branch", "--list", "submit/*"],
            )
            .ok()
            .stdout
    }
}

/// The value of `metric` for `model` in result rows.
pub fn metric(rows: &[serde_json::Value], model: &str, metric: &str) -> f64 {
    rows.iter()
        .find(|r| r["model"] == model)
        .unwrap_or_else(|| panic!("no result for {model}: {rows:?}"))["metrics"][metric]
        .as_f64()
        .unwrap()
}
