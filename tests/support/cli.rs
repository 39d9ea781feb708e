//! Running the real `cohort` binary in a hermetic environment, shared by the integration tests
//! that drive one command at a time (`cli_mlcube`, `cli_container`).

use std::path::Path;
use std::process::{Command, Output};

/// `cohort ARGS` with only PATH, HOME and COHORT_HOME (under `home`) set, plus `env`.
pub fn cohort(home: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cohort"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("COHORT_HOME", home.join("cohort"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("the cohort binary runs")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
