//! A bounded fuzz run of every parser that reads untrusted bytes (issue 14): a few hundred
//! mutated inputs per target, seeded from real files, must not panic. The 100,000-input run is
//! `cargo bench --bench fuzz`.

use std::path::Path;
use std::time::Duration;

use cohort::fuzz;

/// Inputs per target: keeps the whole test well under 20 s in a debug build.
fn budget(target: &str) -> u64 {
    match target {
        // One loopback HTTP exchange per input.
        "http" => 150,
        // Each input writes and extracts a tarball.
        "tarball" => 300,
        "mlcube" | "sealed" => 300,
        _ => 600,
    }
}

#[test]
fn no_parser_panics_on_mutated_inputs() {
    fuzz::install_quiet_panic_hook();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let scratch = fuzz::scratch_dir().expect("a scratch folder");
    let crashes = scratch.path().join("crashes");
    let targets = fuzz::all_targets(repo, scratch.path());
    assert!(targets.len() >= 9, "every parser has a target");
    let mut failures = Vec::new();
    for t in &targets {
        assert!(!t.seeds.is_empty(), "{}: no seeds", t.name);
        let r = fuzz::run(t, budget(t.name), 14, Some(&crashes));
        assert_eq!(r.inputs, budget(t.name));
        // A single input taking seconds is a resource bomb even when it does not panic.
        assert!(
            r.slowest < Duration::from_secs(3),
            "{}: one input of {} bytes took {:?}",
            t.name,
            r.slowest_len,
            r.slowest
        );
        failures.extend(r.panics);
    }
    assert!(failures.is_empty(), "panics: {failures:#?}");
}
