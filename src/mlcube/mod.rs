//! The MLCube engine: reads mlcube.yaml with MLCube 0.0.9 semantics, plans a task run as plain
//! data (the invocation 0.0.9 would issue, plus cohort's hardening), and runs it through the
//! Docker Engine API. Knows nothing about the registry; the CLI and the workflow call it.
//!
//! # Public API
//!
//! Reading and planning (pure: no writes, no Docker):
//! - [`CubeConfig::load`]`(path)` — an MLCube folder or its YAML file; [`CubeConfig::tasks`],
//!   [`CubeConfig::label`], [`CubeConfig::text`].
//! - [`plan`]`(&cfg, &RunRequest, env, home) -> Result<Plan, Error>` — `env` looks up host
//!   environment variables (only for local runs), `home` is what `~` means.
//! - [`RunRequest`] { `task`, `overrides` (name=value), `host_paths` (parameter ->
//!   [`HostPath`] { path, kind: [`PathKind`] }), `workspace`, `run_root` (below it no link
//!   is followed; COHORT_HOME for the workflow), `mode`: [`Mode`]`::{Local,
//!   Strict}`, `options`: [`RunnerOptions`] { network, security, gpus, memory, cpuset, cpus,
//!   timeout, platform (`-P`), pids_limit } }.
//! - [`Plan`] { cube, task, mode, root, workspace, params: [`ParamPlan`], invocation:
//!   [`Invocation`] (what 0.0.9 would run), hardening: [`Hardening`] (what cohort adds),
//!   image_build: [`ImageBuild`] }; [`Plan::missing_inputs`].
//! - [`check_strict`]`(&cfg) -> Result<(), Vec<StrictViolation>>` — the rules for registered
//!   cubes, for submission time.
//! - [`DEVIATIONS`] — deliberate differences from 0.0.9.
//! - [`Config`] — either format (`mlcube.yaml` or MedPerf's `container_config.yaml`):
//!   [`Config::load`], [`Config::plan`] (the same [`Plan`] from both), [`Config::check_strict`];
//!   [`CONTAINER_DEVIATIONS`] — deliberate differences from MedPerf 0.3.0.
//!
//! Running:
//! - [`prepare_host`]`(&plan)` — refuses missing inputs, creates the workspace and output
//!   folders without following symbolic links (`hostfs`). Immediately before a container is
//!   created the runtime checks every mount again and hands the container's user what it
//!   needs for the run, taking it back afterwards (`access`).
//! - [`ContainerRuntime`] (trait) and [`DockerRuntime`]: `DockerRuntime::connect(docker_host)`,
//!   `image_id(reference)`, `build_image(context, dockerfile, tag, build_args, reporter)`,
//!   `load_tarball(path, sha256, reporter)`, `pull(reference, reporter)`, `remove_image`,
//!   `run(&plan, &RunSpec, reporter, cancel) -> Result<RunOutcome, Error>`.
//! - [`ensure_image`]`(runtime, &plan, reporter)` — 0.0.9's build strategy for local cubes.
//! - [`RunSpec`] { log_path, expected_image_id, image, log_limit, stop_grace, run_id },
//!   [`RunOutcome`] { exit_code, duration, timed_out, log_path, log_truncated, container_id,
//!   run_id, image_id } and [`RunOutcome::check`] (non-zero exit or timeout as an [`Error`]).
//! - [`docker::probe`]`(docker_host) -> Result<EngineInfo, Error>` — for `cohort doctor`.
//!
//! Errors: [`Error`] names the cube, task, parameter or file; [`Error::hint`] says what to do;
//! [`Error::is_environment`] is true when Docker is unreachable or failing (exit code 3).

mod access;
mod args;
mod command;
mod config;
pub mod container;
mod deviations;
pub mod docker;
mod error;
mod format;
mod hardening;
mod hostfs;
mod interp;
mod journal;
mod params;
mod paths;
mod plan;
mod prepare;
mod strict;
mod tree;

pub use args::{GpuRequest, parse_bytes, parse_gpus, quote_device_list, site_gpus};
pub use config::CubeConfig;
pub use container::{CONTAINER_DEVIATIONS, CONTAINER_FILE, ContainerConfig, ContainerType};
pub use deviations::{DEVIATIONS, Deviation, deviation};
pub use docker::{
    ContainerRuntime, DockerRuntime, EngineInfo, RUN_LABEL, RunOutcome, RunSpec, ensure_image,
};
pub use error::{Error, HostPathProblem};
pub use format::{Config, MLCUBE_FILE};
pub use hardening::{DEFAULT_PIDS_LIMIT, Hardening, container_user};
pub use plan::{
    BuildStrategy, HostPath, ImageBuild, Invocation, Io, Mode, Mount, ParamPlan, PathKind, Plan,
    RunRequest, RunnerOptions, plan,
};
pub use prepare::prepare_host;
pub use strict::{StrictViolation, check_strict};

/// Feeds text to every parser of parameters and run arguments (fuzzing): the whole text as
/// YAML (`parameters.yaml`), each line as a `-P` override applied to a small tree, as shell
/// and shlex words, as docker run flags and their values, and through `~`/`$VAR` expansion.
pub(crate) fn fuzz_parameters(text: &str) {
    let _ = tree::Node::parse_yaml(text);
    let mut root = tree::Node::Map(vec![(
        "docker".into(),
        tree::Node::Map(vec![("image".into(), tree::Node::Str("x".into()))]),
    )]);
    let env = |k: &str| (k == "X").then(|| "/x".to_string());
    for line in text.lines().take(64) {
        if let Ok((path, value)) = tree::parse_dotlist(line) {
            let _ = tree::set_path(&mut root, &path, value);
        }
        let _ = interp::expand_vars(&interp::expand_user(line, "/home/u"), &env);
        let _ = interp::uses_host_env(line);
        let _ = paths::lexical(line);
        let _ = args::shlex_split(line);
        if let Ok(words) = args::shell_split(line) {
            let _ = args::parse_flags(&words);
            for w in &words {
                let value = w.split_once('=').map_or(w.as_str(), |(_, v)| v);
                let _ = args::parse_gpus(value);
                let _ = args::parse_bytes(value);
                let _ = args::parse_cpus(value);
            }
        }
    }
}

#[cfg(test)]
mod tests;
