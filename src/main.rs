//! The `cohort` binary: parse arguments, resolve settings once, call the core, render.

fn main() -> std::process::ExitCode {
    cohort_cli::main()
}

#[path = "cli/mod.rs"]
mod cohort_cli;
