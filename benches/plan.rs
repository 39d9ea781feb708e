//! Planning time (docs/design.md target: under 20 ms, where `mlcube run` spends ~0.5 s in Python):
//! loads and plans every task of the conformance corpus many times and prints the time per
//! plan. Run with `cargo bench --bench plan`.

use std::path::Path;
use std::time::Instant;

use cohort::mlcube::{CubeConfig, RunRequest, plan};

fn main() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance/mlcube");
    let mut cases = Vec::new();
    for entry in std::fs::read_dir(&corpus).expect("the conformance corpus") {
        let dir = entry.expect("readable corpus").path();
        if dir.join("mlcube.yaml").is_file() {
            cases.push(dir);
        }
    }
    cases.sort();
    let home = Path::new("/nonexistent-home");
    let env = |_: &str| None;
    let rounds = 20;
    let mut plans = 0u32;
    let mut worst = std::time::Duration::ZERO;
    let started = Instant::now();
    for _ in 0..rounds {
        for dir in &cases {
            // Load (read + parse) and plan, as `cohort mlcube run --dry-run` does per call.
            let tasks = CubeConfig::load(dir).expect("corpus configs parse").tasks();
            for task in tasks {
                let t = Instant::now();
                let cfg = CubeConfig::load(dir).expect("corpus configs parse");
                // Untyped inputs that do not exist are an error, also in 0.0.9; those are
                // planned up to that point, which is still the full parse and resolution.
                let _ = plan(&cfg, &RunRequest::new(task), &env, home);
                worst = worst.max(t.elapsed());
                plans += 1;
            }
        }
    }
    let total = started.elapsed();
    println!(
        "plan: {plans} task plans in {:.1} ms: {:.1} µs per plan (load + plan), slowest {:.2} ms",
        total.as_secs_f64() * 1e3,
        total.as_secs_f64() * 1e6 / f64::from(plans),
        worst.as_secs_f64() * 1e3
    );
}
