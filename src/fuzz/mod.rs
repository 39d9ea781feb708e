//! Deterministic mutation fuzzing of every parser that reads untrusted bytes (issue 14: "no
//! input may panic any parser"). Plain Rust on the stable toolchain: a seeded PRNG mutates real
//! files (byte flips, insertions, deletions, splices, dictionary tokens, truncations, repeated
//! tokens) and each target runs the real parsing code under `catch_unwind`. Used by the bounded
//! `tests/fuzz.rs` and the 100,000-input `cargo bench --bench fuzz`; the core stays quiet (the
//! caller prints the [`Report`]).

mod seeds;
mod targets;

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use targets::{Target, all_targets};

/// A small, fast, deterministic PRNG (splitmix64): the same seed gives the same inputs.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
}

/// Tokens every target's dictionary starts with: the syntax the parsers care about.
const COMMON_TOKENS: &[&str] = &[
    "${",
    "}",
    "[",
    "]",
    "{",
    "\n",
    "\"",
    "'",
    "'''",
    "\"\"\"",
    ":",
    ": ",
    "=",
    ",",
    "#",
    "\\",
    "- ",
    "untrusted comment: ",
    "trusted comment: ",
    "YWJj",
    "RWQ=",
    "AAAA",
    "==",
    "\u{0}",
    "\u{feff}",
    "\u{e9}",
    "..",
    "/",
    "${.",
    "${oc.env:",
    "&a ",
    "*a",
    "!!binary ",
    "|\n",
    "9999999999999999999999",
    "-1",
    "1e999",
    "nan",
];

/// Builds one mutated input from `seeds` (one to four stacked mutations).
pub fn mutate(rng: &mut Rng, seeds: &[Vec<u8>], dict: &[Vec<u8>]) -> Vec<u8> {
    let mut data = seeds[rng.below(seeds.len())].clone();
    let rounds = 1 + rng.below(4);
    for _ in 0..rounds {
        let len = data.len();
        let at = rng.below(len + 1);
        match rng.below(11) {
            0 if len > 0 => {
                let i = rng.below(len);
                data[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                data[i] = rng.next_u64() as u8;
            }
            2 => {
                let n = 1 + rng.below(8);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
                data.splice(at..at, bytes);
            }
            3 if len > 0 => {
                let n = 1 + rng.below((len - at).clamp(1, 64));
                data.drain(at..(at + n).min(len));
            }
            4 => {
                // Splice: a slice of another seed replaces the tail or a middle part.
                let other = &seeds[rng.below(seeds.len())];
                let from = rng.below(other.len() + 1);
                let to = from + rng.below(other.len() - from + 1);
                let end = at + rng.below(len - at + 1);
                data.splice(at..end, other[from..to].iter().copied());
            }
            5 | 6 => {
                let tok = pick_token(rng, dict);
                data.splice(at..at, tok);
            }
            7 => data.truncate(at),
            8 if len > 0 => {
                // Duplicate a chunk (repetition finds size and nesting limits).
                let from = rng.below(len);
                let to = (from + 1 + rng.below(32)).min(len);
                let chunk = data[from..to].to_vec();
                let most = if rng.chance(16) { 2000 } else { 8 };
                let times = 1 + rng.below(most);
                let rep: Vec<u8> = chunk
                    .iter()
                    .copied()
                    .cycle()
                    .take(chunk.len() * times)
                    .collect();
                data.splice(at..at, rep);
            }
            9 => {
                // Replace a whole line with a token or a base64-looking line.
                let start = data[..at]
                    .iter()
                    .rposition(|b| *b == b'\n')
                    .map_or(0, |p| p + 1);
                let end = data[at..]
                    .iter()
                    .position(|b| *b == b'\n')
                    .map_or(len, |p| at + p);
                let line = if rng.chance(2) {
                    base64_line(rng)
                } else {
                    pick_token(rng, dict)
                };
                data.splice(start..end, line);
            }
            _ => {
                let tok = pick_token(rng, dict);
                let times = 1 + rng.below(64);
                let rep: Vec<u8> = tok
                    .iter()
                    .copied()
                    .cycle()
                    .take(tok.len() * times)
                    .collect();
                data.splice(at..at, rep);
            }
        }
    }
    data
}

fn pick_token(rng: &mut Rng, dict: &[Vec<u8>]) -> Vec<u8> {
    let n = COMMON_TOKENS.len() + dict.len();
    let i = rng.below(n);
    match COMMON_TOKENS.get(i) {
        Some(t) => t.as_bytes().to_vec(),
        None => dict[i - COMMON_TOKENS.len()].clone(),
    }
}

/// A line of base64 symbols whose length is one of the interesting ones (signatures are 100
/// and 88 symbols long; keys 56).
fn base64_line(rng: &mut Rng) -> Vec<u8> {
    const SYMBOLS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let lens = [0, 3, 4, 8, 56, 87, 88, 89, 99, 100, 101, 200];
    let len = lens[rng.below(lens.len())];
    let mut out: Vec<u8> = (0..len).map(|_| SYMBOLS[rng.below(64)]).collect();
    if len >= 2 && rng.chance(2) {
        let n = out.len();
        out[n - 1] = b'=';
    }
    out
}

/// One panic found: the target, the message and where the input was saved.
#[derive(Debug, Clone)]
pub struct Finding {
    pub target: String,
    pub message: String,
    pub saved: Option<PathBuf>,
}

/// What one target's run did.
#[derive(Debug, Clone)]
pub struct Report {
    pub target: String,
    pub inputs: u64,
    pub seeds: usize,
    pub panics: Vec<Finding>,
    pub elapsed: Duration,
    /// The slowest single input, and its length.
    pub slowest: Duration,
    pub slowest_len: usize,
    /// Where the slowest input was saved (with `crash_dir`), to study resource use.
    pub slowest_saved: Option<PathBuf>,
}

/// Runs `target` on `iterations` mutated inputs (the seeds themselves first). Panics are
/// caught, recorded and the input written to `crash_dir` when given. The caller should install
/// a quiet panic hook first (see `tests/fuzz.rs`): the default one prints every caught panic.
pub fn run(target: &Target, iterations: u64, seed: u64, crash_dir: Option<&Path>) -> Report {
    let mut rng = Rng::new(seed ^ fnv(target.name.as_bytes()));
    let mut report = Report {
        target: target.name.to_string(),
        inputs: 0,
        seeds: target.seeds.len(),
        panics: Vec::new(),
        elapsed: Duration::ZERO,
        slowest: Duration::ZERO,
        slowest_len: 0,
        slowest_saved: None,
    };
    let mut slowest_input = Vec::new();
    let started = Instant::now();
    for i in 0..iterations {
        let input = match target.seeds.get(i as usize) {
            Some(s) => s.clone(),
            None => mutate(&mut rng, &target.seeds, &target.dict),
        };
        let t = Instant::now();
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| (target.run)(&input)));
        let took = t.elapsed();
        if took > report.slowest {
            report.slowest = took;
            report.slowest_len = input.len();
            slowest_input.clone_from(&input);
        }
        report.inputs += 1;
        if let Err(payload) = outcome {
            let message = LAST_PANIC
                .with(|l| l.borrow_mut().take())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic with a non-string payload".into());
            let saved = crash_dir.and_then(|dir| {
                let path = dir.join(format!("{}-{:016x}.bin", target.name, fnv(&input)));
                std::fs::create_dir_all(dir).ok()?;
                std::fs::write(&path, &input).ok()?;
                Some(path)
            });
            report.panics.push(Finding {
                target: target.name.to_string(),
                message,
                saved,
            });
        }
    }
    report.elapsed = started.elapsed();
    report.slowest_saved = crash_dir.and_then(|dir| {
        let path = dir.join(format!("slowest-{}.bin", target.name));
        std::fs::create_dir_all(dir).ok()?;
        std::fs::write(&path, &slowest_input).ok()?;
        Some(path)
    });
    report
}

thread_local! {
    static LAST_PANIC: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Replaces the panic hook with one that only remembers the message and location (for the
/// [`Report`]), so a fuzz run does not print every caught panic. For fuzzing processes only.
pub fn install_quiet_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        LAST_PANIC.with(|l| *l.borrow_mut() = Some(info.to_string()));
    }));
}

/// A scratch folder on tmpfs when there is one (extraction and downloads fsync).
pub fn scratch_dir() -> std::io::Result<tempfile::TempDir> {
    let shm = Path::new("/dev/shm");
    if shm.is_dir()
        && let Ok(d) = tempfile::Builder::new()
            .prefix("cohort-fuzz-")
            .tempdir_in(shm)
    {
        return Ok(d);
    }
    tempfile::Builder::new().prefix("cohort-fuzz-").tempdir()
}

/// FNV-1a, for stable file names and per-target PRNG streams.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutation_is_deterministic_and_varied() {
        let seeds = vec![b"a = 1\nb = [2]\n".to_vec(), b"x: y\n".to_vec()];
        let inputs = |seed| {
            let mut rng = Rng::new(seed);
            (0..200)
                .map(|_| mutate(&mut rng, &seeds, &[]))
                .collect::<Vec<_>>()
        };
        assert_eq!(inputs(7), inputs(7));
        let distinct: std::collections::HashSet<_> = inputs(7).into_iter().collect();
        assert!(distinct.len() > 150, "{}", distinct.len());
    }
}
