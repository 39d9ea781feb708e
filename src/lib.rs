//! cohort's core library: the registry format, trust rules, git store, MLCube engine and the
//! benchmarking workflow. No terminal output, no environment or $HOME lookups: the CLI in
//! `src/main.rs` resolves settings and passes them in.
#![forbid(unsafe_code)]

/// Test support: deterministic fuzzing of the parsers (used by `tests/fuzz.rs` and
/// `cargo bench --bench fuzz`).
#[doc(hidden)]
pub mod fuzz;
pub mod mlcube;
pub mod model;
pub mod progress;
pub mod registry;
pub mod report;
pub mod storage;
pub mod trust;
pub mod workflow;

/// The version of this build, recorded in provenance fields.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
