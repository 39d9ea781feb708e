//! Planning: from a configuration and a run request to plain data in two parts, the
//! invocation MLCube 0.0.9's docker runner would issue (image, entrypoint, command, mounts,
//! environment, extra run args, folders it would create) and the hardening cohort adds on
//! top. Planning reads the filesystem (type inference, existence) but never writes to it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::args::GpuRequest;
use super::command::{entrypoint_and_cmd, image_build, run_args};
use super::config::{CubeConfig, EffectiveInputs};
use super::error::Error;
use super::hardening::{self, Hardening};
use super::interp::expand_user;
use super::params::{MountOpt, created_dirs, mounts_and_args, resolve_params};
use super::paths;
use super::strict::{check_strict, path_violation};
use super::tree::Node;

/// Local runs (`cohort mlcube run`, the cube's own workspace, runner options allowed) or
/// strict runs of registered cubes (the workflow).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Local,
    Strict,
}

/// Whether a host path is a file or a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PathKind {
    File,
    Dir,
}

/// A parameter placed at an absolute host path by the caller (the workflow's per-run folders).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPath {
    pub path: PathBuf,
    pub kind: PathKind,
}

/// Runner options, as `mlcube run` takes them plus cohort's own limits.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunnerOptions {
    /// `--network` (local runs only; otherwise the container has no network).
    pub network: Option<String>,
    /// `--security` (becomes `--security-opt`; local runs only).
    pub security: Option<String>,
    /// `--gpus` (`all`, a count, `device=...`).
    pub gpus: Option<String>,
    /// `--shm-size` (`2g`): replaces the cube's own request.
    pub shm_size: Option<String>,
    /// `--memory` (`4g`).
    pub memory: Option<String>,
    /// `--cpu`: a cpuset (`0-3`), as 0.0.9 maps it to `--cpuset-cpus`.
    pub cpuset: Option<String>,
    /// `--cpus`: a CPU quota (`1.5`).
    pub cpus: Option<String>,
    /// Stop the task after this long.
    pub timeout: Option<Duration>,
    /// `-Pdotted.key=value` configuration overrides (local runs only).
    pub platform: Vec<String>,
    /// Maximum number of processes/threads in the container (default 4096).
    pub pids_limit: Option<i64>,
}

/// What to run: a task, overrides, and where its data lives.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRequest {
    pub task: String,
    /// `name=value` overrides as the user typed them (0.0.9 semantics, Q6).
    pub overrides: Vec<(String, String)>,
    /// Parameters placed at absolute host paths (bypass interpolation and the strict path rule).
    pub host_paths: BTreeMap<String, HostPath>,
    /// The workspace; `<cube root>/workspace` when `None`.
    pub workspace: Option<PathBuf>,
    /// The folder holding this run's data (the workflow passes COHORT_HOME; the workspace
    /// when `None`). Every folder cohort creates or mounts below it is walked without
    /// following symbolic links, and in strict mode every mount must lie below it.
    pub run_root: Option<PathBuf>,
    pub mode: Mode,
    pub options: RunnerOptions,
}

impl RunRequest {
    /// A local run of `task` with no overrides.
    pub fn new(task: impl Into<String>) -> RunRequest {
        RunRequest {
            task: task.into(),
            overrides: Vec::new(),
            host_paths: BTreeMap::new(),
            workspace: None,
            run_root: None,
            mode: Mode::Local,
            options: RunnerOptions::default(),
        }
    }
}

/// One bind mount.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Mount {
    pub host: PathBuf,
    pub container: String,
    pub read_only: bool,
}

/// Input or output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Io {
    Input,
    Output,
}

/// A resolved task parameter.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ParamPlan {
    pub name: String,
    pub io: Io,
    pub kind: PathKind,
    /// The parameter's host path (the file itself for files).
    pub host: PathBuf,
    /// What the task receives as `--name=...`.
    pub container: String,
    /// Placed at an absolute host path by the caller ([`RunRequest::host_paths`]) rather than
    /// resolved from mlcube.yaml.
    pub placed: bool,
}

/// What MLCube 0.0.9 would run, field for field (apart from the listed deviations).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Invocation {
    pub image: String,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Vec<String>,
    pub mounts: Vec<Mount>,
    pub env: Vec<(String, String)>,
    pub extra_run_args: Vec<String>,
    /// Folders 0.0.9 would create before `docker run` (missing at planning time).
    pub created_dirs: Vec<PathBuf>,
}

impl Invocation {
    /// What runc refuses only once the container starts (reported as the Engine failing),
    /// caught when the task is planned: an environment name that is empty or holds `=` (it
    /// would set another variable) or NUL, and NUL in a value, an argument or a mount path.
    pub(crate) fn engine_problem(&self) -> Option<String> {
        let nul = |s: &str| s.contains('\0');
        if let Some((k, _)) = self
            .env
            .iter()
            .find(|(k, _)| k.is_empty() || k.contains('=') || nul(k))
        {
            return Some(format!(
                "environment name {k:?} is not a name (empty, or holds = or NUL)"
            ));
        }
        if let Some((k, _)) = self.env.iter().find(|(_, v)| nul(v)) {
            return Some(format!("environment value of {k} holds a NUL character"));
        }
        let words = self.entrypoint.iter().flatten().chain(&self.cmd);
        if let Some(w) = words.into_iter().find(|w| nul(w)) {
            return Some(format!("argument {w:?} holds a NUL character"));
        }
        self.mounts
            .iter()
            .find(|m| nul(&m.container) || nul(&m.host.to_string_lossy()))
            .map(|m| format!("mount path {:?} holds a NUL character", m.container))
    }
}

/// `docker.build_strategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BuildStrategy {
    Pull,
    Auto,
    Always,
}

/// How the image is obtained for local cubes (0.0.9's `configure`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ImageBuild {
    pub strategy: BuildStrategy,
    pub context: PathBuf,
    pub dockerfile: PathBuf,
    pub build_args: Vec<(String, String)>,
}

/// A planned task run.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Plan {
    pub cube: String,
    pub task: String,
    pub mode: Mode,
    pub root: PathBuf,
    pub workspace: PathBuf,
    /// [`RunRequest::run_root`], or the workspace.
    pub run_root: PathBuf,
    pub params: Vec<ParamPlan>,
    pub invocation: Invocation,
    pub hardening: Hardening,
    pub image_build: ImageBuild,
}

/// Plans a task run. `env` looks up host environment variables (for `${oc.env:..}` and
/// `$VAR`; never called in strict mode), `home` is what `~` means.
pub fn plan(
    cfg: &CubeConfig,
    req: &RunRequest,
    env: &dyn Fn(&str) -> Option<String>,
    home: &Path,
) -> Result<Plan, Error> {
    let cube = cfg.label().to_string();
    let override_err = |message: String| Error::Override {
        cube: cube.clone(),
        message,
    };
    let strict = req.mode == Mode::Strict;
    let home_s = home.to_string_lossy().into_owned();
    let no_env = |_: &str| -> Option<String> { None };
    let env: &dyn Fn(&str) -> Option<String> = if strict { &no_env } else { env };

    if strict {
        check_strict(cfg).map_err(|violations| Error::Strict {
            cube: cube.clone(),
            violations,
        })?;
        if !req.options.platform.is_empty() {
            return Err(override_err(
                "-P overrides are not allowed for registered cubes".into(),
            ));
        }
        if req.options.network.is_some() {
            return Err(override_err(
                "registered cubes always run without network; --network is for local runs".into(),
            ));
        }
        if req.options.security.is_some() {
            return Err(override_err("--security is for local runs only".into()));
        }
    }
    for (name, value) in &req.overrides {
        if name.starts_with('-') {
            return Err(override_err(format!(
                "{name}={value} is not an option of cohort; write {}={value} to set a parameter",
                name.trim_start_matches('-')
            )));
        }
        if !cfg.has_parameter(name) {
            return Err(override_err(format!(
                "{name}={value}: no task of this cube has a parameter {name}"
            )));
        }
    }
    for name in req.host_paths.keys() {
        if !cfg.has_parameter(name) {
            return Err(override_err(format!(
                "no task of this cube has a parameter {name}"
            )));
        }
    }

    let workspace = match &req.workspace {
        Some(ws) => {
            let expanded = expand_user(&ws.to_string_lossy(), &home_s);
            let abs = std::path::absolute(&expanded).map_err(|source| Error::Io {
                path: ws.clone(),
                source,
            })?;
            paths::lexical(&abs.to_string_lossy())
        }
        None => format!("{}/workspace", cfg.root().to_string_lossy()),
    };
    if strict {
        for (name, value) in &req.overrides {
            if let Some(message) = path_violation(value, value, &workspace) {
                return Err(override_err(format!("{name}={value}: {message}")));
            }
        }
    }

    let mut runner_flags: Vec<(&'static str, String)> = Vec::new();
    let o = &req.options;
    // The site's --gpus replaces the cube's own choice (MedPerf #238): a request for GPUs
    // selects gpu_args (through platform.accelerator_count, as 0.0.9 chooses them), `0`
    // selects cpu_args and removes every GPU request.
    // `site_gpus`: None without --gpus, Some(None) for `--gpus 0`.
    let site_gpus = o
        .gpus
        .as_deref()
        .map(|g| {
            super::args::site_gpus(g).map_err(|m| Error::Override {
                cube: cube.clone(),
                message: format!("--gpus {g}: {m}"),
            })
        })
        .transpose()?;
    let mut platform = o.platform.clone();
    if let Some(g) = &site_gpus {
        let count = g.as_deref().map_or(0, |g| g.parse::<u32>().unwrap_or(1));
        platform.push(format!("platform.accelerator_count={count}"));
    }
    let gpus_flag = site_gpus.clone().flatten();
    for (flag, value) in [
        ("--network", &o.network),
        ("--security-opt", &o.security),
        ("--gpus", &gpus_flag),
        ("--memory", &o.memory),
        ("--cpuset-cpus", &o.cpuset),
    ] {
        if let Some(v) = value {
            runner_flags.push((flag, v.clone()));
        }
    }
    let effective = cfg.effective(&EffectiveInputs {
        platform: &platform,
        runner_flags: &runner_flags,
        overrides: &req.overrides,
        workspace: &workspace,
        env,
        allow_env: !strict,
    })?;

    let task_def = effective
        .lookup(&["tasks", &req.task])
        .ok_or_else(|| Error::UnknownTask {
            cube: cube.clone(),
            task: req.task.clone(),
            available: cfg.tasks().join(", "),
        })?;

    let mut resolved = resolve_params(cfg, req, task_def, &workspace, env, &home_s)?;
    if strict {
        // The strict path rule again, on what the parameters resolved to for this run: a
        // value that was inside the cube's template workspace at submission (say through
        // `${runtime.root}`) may point anywhere but into this run's own workspace.
        for (p, _) in resolved.iter().filter(|(p, _)| !p.placed) {
            let host = p.host.to_string_lossy();
            if !paths::is_within(&workspace, &host) {
                return Err(Error::Param {
                    cube: cube.clone(),
                    task: req.task.clone(),
                    param: p.name.clone(),
                    message: format!(
                        "{host} is outside this run's workspace ({workspace}); registered cubes \
                         read and write only there"
                    ),
                });
            }
        }
    }
    let (mounts, task_args) = mounts_and_args(&req.task, &mut resolved);
    let params: Vec<ParamPlan> = resolved.into_iter().map(|(p, _)| p).collect();

    let runner = effective.get("runner").expect("effective sets runner");
    let image = runner
        .get("image")
        .map(Node::python_str)
        .unwrap_or_default();
    let mut run = run_args(cfg, &effective)?;
    match &site_gpus {
        None => {}
        Some(None) => {
            run.parsed.gpus = None;
            drop_flag(&mut run.extra_run_args, "--gpus");
        }
        Some(Some(g)) => run.parsed.gpus = Some(super::args::quote_device_list(g)),
    }
    let (entrypoint, cmd) = entrypoint_and_cmd(cfg, &req.task, task_def, task_args)?;

    let invocation = Invocation {
        image,
        entrypoint,
        cmd,
        mounts: mounts
            .iter()
            .map(|m| Mount {
                host: PathBuf::from(&m.host),
                container: m.container.clone(),
                read_only: m.opts == Some(MountOpt::Ro),
            })
            .collect(),
        env: run.env.clone(),
        extra_run_args: run.extra_run_args.clone(),
        created_dirs: created_dirs(&workspace, &params),
    };
    if let Some(problem) = invocation.engine_problem() {
        return Err(Error::Config {
            cube,
            message: format!("task {}: {problem}", req.task),
        });
    }
    let hardening = hardening::harden(&hardening::HardenInputs {
        cube: &cube,
        strict,
        options: &req.options,
        workspace: &workspace,
        params: &params,
        invocation: &invocation,
        run_args: &run.parsed,
    })?;
    let image_build = image_build(cfg, runner)?;
    let run_root = run_root(req, &workspace)?;

    Ok(Plan {
        cube,
        task: req.task.clone(),
        mode: req.mode,
        root: cfg.root().to_path_buf(),
        run_root,
        workspace: PathBuf::from(&workspace),
        params,
        invocation,
        hardening,
        image_build,
    })
}

/// Removes `--flag=v` and `--flag v` from run args.
fn drop_flag(words: &mut Vec<String>, flag: &str) {
    let mut out = Vec::with_capacity(words.len());
    let mut skip = false;
    for w in words.drain(..) {
        if skip {
            skip = false;
        } else if w == flag {
            skip = true;
        } else if !w.starts_with(&format!("{flag}=")) {
            out.push(w);
        }
    }
    *words = out;
}

impl Plan {
    /// Inputs that do not exist on the host right now.
    pub fn missing_inputs(&self) -> Vec<&ParamPlan> {
        self.params
            .iter()
            .filter(|p| p.io == Io::Input)
            .filter(|p| match p.kind {
                PathKind::File => !p.host.is_file(),
                PathKind::Dir => !p.host.is_dir(),
            })
            .collect()
    }

    /// The GPU request, when the task asks for GPUs.
    pub fn gpus(&self) -> Option<&GpuRequest> {
        self.hardening.gpus.as_ref()
    }
}

/// The folder under which no link is followed and every mount must stay (the request's run
/// root, else the workspace): absolute and normalised like the workspace, so containment
/// compares like with like. Shared by both configuration formats.
pub(crate) fn run_root(req: &RunRequest, workspace: &str) -> Result<PathBuf, Error> {
    match &req.run_root {
        Some(r) => {
            let abs = std::path::absolute(r).map_err(|source| Error::Io {
                path: r.clone(),
                source,
            })?;
            Ok(PathBuf::from(paths::lexical(&abs.to_string_lossy())))
        }
        None => Ok(PathBuf::from(workspace)),
    }
}
