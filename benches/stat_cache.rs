//! A prepared dataset of hospital size checked through its stat cache against hashing every
//! byte (docs/design.md: `benchmark run` on an unchanged dataset must not re-read it).
//!
//! `cargo bench --bench stat_cache` (release profile). Generates a tree of COHORT_BENCH_FILES
//! files (default 100,000) of COHORT_BENCH_KIB KiB each (default 64: 6.1 GiB) under
//! COHORT_BENCH_DIR (default: a temp dir, removed after; a given folder is kept and reused,
//! so the tree is written once), then interleaves COHORT_BENCH_RUNS rounds (default 5) of the
//! full hash and the cached check and prints the medians and their ratio. Environment is read
//! here because this is a tool, not the library.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use cohort::progress::Silent;
use cohort::storage::hash_tree_cached;

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn generate(data: &Path, files: u64, kib: u64) {
    let mut block = vec![0u8; (kib as usize) << 10];
    let mut x: u64 = 0x9e3779b97f4a7c15;
    for b in block.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    for n in 0..files {
        let dir = data.join(format!("case{:04}", n / 1000));
        if n % 1000 == 0 {
            fs::create_dir_all(&dir).unwrap();
        }
        // No two files alike: the file number leads each one.
        block[..8].copy_from_slice(&n.to_le_bytes());
        let mut f = fs::File::create(dir.join(format!("slice{n:06}.bin"))).unwrap();
        f.write_all(&block).unwrap();
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("stat_cache: run with `cargo bench --bench stat_cache`");
        return;
    }
    let files = env_num("COHORT_BENCH_FILES", 100_000);
    let kib = env_num("COHORT_BENCH_KIB", 64);
    let runs = env_num("COHORT_BENCH_RUNS", 5) as usize;
    let tmp;
    let root = match std::env::var_os("COHORT_BENCH_DIR") {
        Some(d) => std::path::PathBuf::from(d),
        None => {
            tmp = tempfile::tempdir().unwrap();
            tmp.path().to_path_buf()
        }
    };
    let data = root.join("prepared");
    let ready = root.join("ready");
    let want = format!("{files} {kib}");
    if fs::read_to_string(&ready).ok().as_deref() != Some(want.as_str()) {
        let _ = fs::remove_dir_all(&data);
        let t = Instant::now();
        generate(&data, files, kib);
        fs::write(&ready, &want).unwrap();
        eprintln!("generated in {:.1} s", t.elapsed().as_secs_f64());
    }
    let cache = root.join("statcache");
    let gib = (files * kib) as f64 / (1u64 << 20) as f64;
    // One full hash first: it writes the cache the checks start from.
    let (first, _) = hash_tree_cached(&data, &cache, true, &Silent).unwrap();
    let (mut full, mut quick) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let t = Instant::now();
        let (h, used) = hash_tree_cached(&data, &cache, true, &Silent).unwrap();
        full.push(t.elapsed());
        assert_eq!(
            (h.sha256.clone(), used.hashed),
            (first.sha256.clone(), files)
        );
        let t = Instant::now();
        let (h, used) = hash_tree_cached(&data, &cache, false, &Silent).unwrap();
        quick.push(t.elapsed());
        assert_eq!(h.sha256, first.sha256);
        assert_eq!(used.reused, files, "an unchanged tree is not read again");
    }
    let (full, quick) = (median(full), median(quick));
    println!("## {files} files, {gib:.1} GiB, medians of {runs} interleaved rounds");
    println!("| measurement | time |");
    println!("|---|---|");
    println!(
        "| full hash (`--full-check`) | {:.0} ms |",
        full.as_secs_f64() * 1e3
    );
    println!(
        "| check through the stat cache | {:.0} ms |",
        quick.as_secs_f64() * 1e3
    );
    println!(
        "| ratio check / full hash | {:.4} |",
        quick.as_secs_f64() / full.as_secs_f64()
    );
}
