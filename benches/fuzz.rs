//! The long fuzz run (issue 14): at least 100,000 mutated inputs per parser, seeded from real
//! files, each under `catch_unwind`. Prints the count, time and slowest input per parser, and
//! every panic with the file its input was saved to (`target/fuzz-crashes/`). Run with
//! `cargo bench --bench fuzz [-- INPUTS [SEED [TARGET]]]`; exits 1 when a parser panicked.
//! `cargo bench --bench fuzz -- replay TARGET FILE` runs one saved input again (timed).

use std::path::Path;

use cohort::fuzz;

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let inputs: u64 = args.first().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let seed: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(14);
    let only = args.get(2);
    fuzz::install_quiet_panic_hook();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let crashes = repo.join("target/fuzz-crashes");
    let scratch = fuzz::scratch_dir().expect("a scratch folder");
    let targets = fuzz::all_targets(repo, scratch.path());
    if let [mode, name, file, ..] = args.as_slice()
        && mode == "replay"
    {
        let t = targets
            .iter()
            .find(|t| t.name == name)
            .expect("a known target");
        let input = std::fs::read(file).expect("a readable input file");
        let started = std::time::Instant::now();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (t.run)(&input)));
        println!(
            "{name}: {} bytes in {:.2} ms: {}",
            input.len(),
            started.elapsed().as_secs_f64() * 1e3,
            if outcome.is_ok() { "no panic" } else { "PANIC" }
        );
        return;
    }
    println!("fuzz: {inputs} inputs per parser, seed {seed}");
    let mut panics = 0;
    for t in targets.iter().filter(|t| only.is_none_or(|o| o == t.name)) {
        let r = fuzz::run(t, inputs, seed, Some(&crashes));
        println!(
            "{:<13} {:>8} inputs ({:>3} seeds) in {:>7.1} s, {:>3} panics, slowest {:>8.2} ms ({} bytes)",
            r.target,
            r.inputs,
            r.seeds,
            r.elapsed.as_secs_f64(),
            r.panics.len(),
            r.slowest.as_secs_f64() * 1e3,
            r.slowest_len
        );
        if let Some(p) = &r.slowest_saved {
            println!("  slowest input: {}", p.display());
        }
        for f in &r.panics {
            let saved = f
                .saved
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "(not saved)".into());
            println!(
                "  PANIC {}: {} -> {saved}",
                f.target,
                f.message.replace('\n', " ")
            );
        }
        panics += r.panics.len();
    }
    if panics > 0 {
        std::process::exit(1);
    }
}
