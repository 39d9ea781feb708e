//! Planning: from a configuration and a run request to plain data in two parts, the
//! invocation MLCube 0.0.9's docker runner would issue (image, entrypoint, command, mounts,
//! environment, extra run args, folders it would create) and the hardening cohort adds on
//! top. Planning reads the filesystem (type inference, existence) but never writes to it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::args::{self, GpuRequest, RunArgs};
use super::config::{CubeConfig, EffectiveInputs};
use super::error::Error;
use super::hardening::{self, Hardening};
use super::interp::{expand_user, expand_vars};
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
    for (flag, value) in [
        ("--network", &o.network),
        ("--security-opt", &o.security),
        ("--gpus", &o.gpus),
        ("--memory", &o.memory),
        ("--cpuset-cpus", &o.cpuset),
    ] {
        if let Some(v) = value {
            runner_flags.push((flag, v.clone()));
        }
    }
    let effective = cfg.effective(&EffectiveInputs {
        platform: &req.options.platform,
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
    let (mounts, task_args) = mounts_and_args(&req.task, &mut resolved);
    let params: Vec<ParamPlan> = resolved.into_iter().map(|(p, _)| p).collect();

    let runner = effective.get("runner").expect("effective sets runner");
    let image = runner
        .get("image")
        .map(Node::python_str)
        .unwrap_or_default();
    let run = run_args(cfg, &effective)?;
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

    Ok(Plan {
        cube,
        task: req.task.clone(),
        mode: req.mode,
        root: cfg.root().to_path_buf(),
        workspace: PathBuf::from(&workspace),
        params,
        invocation,
        hardening,
        image_build,
    })
}

fn resolve_params(
    cfg: &CubeConfig,
    req: &RunRequest,
    task_def: &Node,
    workspace: &str,
    env: &dyn Fn(&str) -> Option<String>,
    home: &str,
) -> Result<Vec<(ParamPlan, Option<MountOpt>)>, Error> {
    let mut out = Vec::new();
    for (io, key) in [(Io::Input, "inputs"), (Io::Output, "outputs")] {
        let Some(group) = task_def.lookup(&["parameters", key]).and_then(Node::as_map) else {
            continue;
        };
        for (name, def) in group {
            let err = |message: String| Error::Param {
                cube: cfg.label().to_string(),
                task: req.task.clone(),
                param: name.clone(),
                message,
            };
            let declared = match def.get("type").map(Node::python_str).as_deref() {
                Some("file") => Some(PathKind::File),
                Some("directory") => Some(PathKind::Dir),
                Some("unknown") | None => None,
                Some(other) => {
                    return Err(err(format!(
                        "type {other:?} is invalid (file or directory)"
                    )));
                }
            };
            let (host, kind) = match req.host_paths.get(name) {
                Some(hp) => {
                    if !hp.path.is_absolute() {
                        return Err(err(format!(
                            "the host path {} given by the caller is not absolute",
                            hp.path.display()
                        )));
                    }
                    if declared.is_some_and(|d| d != hp.kind) {
                        return Err(err(format!(
                            "mlcube.yaml declares a {} but the caller gave a {}",
                            kind_word(declared.expect("checked")),
                            kind_word(hp.kind)
                        )));
                    }
                    (paths::pathlib(&hp.path.to_string_lossy()), Some(hp.kind))
                }
                None => {
                    let value = def.get("default").map(Node::python_str).unwrap_or_default();
                    let expanded = expand_vars(&expand_user(&value, home), env);
                    (paths::join_workspace(workspace, &expanded), declared)
                }
            };
            let kind = match (kind, io) {
                (Some(k), _) => k,
                (None, Io::Output) => {
                    return Err(err(
                        "an output needs a type, and this one has no type (Q5: MLCube 0.0.9 refuses it too)"
                            .into(),
                    ));
                }
                (None, Io::Input) => {
                    let p = Path::new(&host);
                    if p.is_dir() {
                        PathKind::Dir
                    } else if p.is_file() {
                        PathKind::File
                    } else {
                        return Err(err(format!(
                            "the input has no type and {host} does not exist, so its type cannot be inferred"
                        )));
                    }
                }
            };
            let opts = match def.get("opts") {
                None | Some(Node::Null) => None,
                Some(n) if !n.truthy() => None,
                Some(Node::Str(s)) if s == "ro" => Some(MountOpt::Ro),
                Some(Node::Str(s)) if s == "rw" => Some(MountOpt::Rw),
                Some(other) => return Err(err(format!("opts {other} is invalid (ro or rw)"))),
            };
            out.push((
                ParamPlan {
                    name: name.clone(),
                    io,
                    kind,
                    host: PathBuf::from(&host),
                    container: String::new(),
                },
                opts,
            ));
        }
    }
    Ok(out)
}

fn kind_word(k: PathKind) -> &'static str {
    match k {
        PathKind::File => "file",
        PathKind::Dir => "directory",
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MountOpt {
    Ro,
    Rw,
}

/// A mount as 0.0.9 tracks it: host dir, container path, options.
pub(crate) struct MountSlot {
    pub host: String,
    pub container: String,
    pub opts: Option<MountOpt>,
}

/// `Shell.generate_mounts_and_args`: one `/mlcube_io{N}` per distinct host directory in
/// order of first use (a file mounts its parent), `--name=...` arguments, and the `opts`
/// conflict rule (Q3).
fn mounts_and_args(
    task: &str,
    params: &mut [(ParamPlan, Option<MountOpt>)],
) -> (Vec<MountSlot>, Vec<String>) {
    let mut mounts: Vec<MountSlot> = Vec::new();
    let mut args = vec![task.to_string()];
    for (p, requested) in params.iter_mut() {
        let host = p.host.to_string_lossy().into_owned();
        let (dir, file) = match p.kind {
            PathKind::Dir => (host, None),
            PathKind::File => {
                let (d, f) = paths::split(&host);
                (d, Some(f))
            }
        };
        let index = match mounts.iter().position(|m| m.host == dir) {
            Some(i) => i,
            None => {
                mounts.push(MountSlot {
                    host: dir.clone(),
                    container: format!("/mlcube_io{}", mounts.len()),
                    opts: None,
                });
                mounts.len() - 1
            }
        };
        let container = match &file {
            Some(f) => format!("{}/{f}", mounts[index].container),
            None => mounts[index].container.clone(),
        };
        args.push(format!("--{}={container}", p.name));
        p.container = container;
        if let Some(opt) = *requested {
            let slot = &mut mounts[index];
            slot.opts = match slot.opts {
                Some(existing) if existing != opt => Some(MountOpt::Rw),
                _ => Some(opt),
            };
        }
    }
    (mounts, args)
}

struct RunArgsOut {
    parsed: RunArgs,
    env: Vec<(String, String)>,
    extra_run_args: Vec<String>,
}

/// `cpu_args`/`gpu_args` by `platform.accelerator_count` (Q7), then the runner flags in
/// fixed order, then `env_args`.
fn run_args(cfg: &CubeConfig, effective: &Node) -> Result<RunArgsOut, Error> {
    let runner = effective.get("runner").expect("effective sets runner");
    let gpus = effective
        .lookup(&["platform", "accelerator_count"])
        .is_some_and(Node::truthy);
    let key = if gpus { "gpu_args" } else { "cpu_args" };
    let run_arg_err = |arg: String, message: String| Error::RunArg {
        cube: cfg.label().to_string(),
        arg,
        message,
    };
    let split = |text: &str, field: &str| {
        args::shell_split(text).map_err(|m| cfg.config_err(format!("docker.{field}: {m}")))
    };
    let mut words = split(
        &runner.get(key).map(Node::python_str).unwrap_or_default(),
        key,
    )?;
    let mut extra = Vec::new();
    for flag in super::config::RUNNER_FLAGS {
        if let Some(v) = runner.get(flag).filter(|v| !matches!(v, Node::Null)) {
            extra.push(format!("{flag}={}", v.python_str()));
        }
    }
    words.extend(split(&extra.join(" "), "runner options")?);

    let flags = args::parse_flags(&words).map_err(|tok| {
        run_arg_err(
            tok,
            "is not supported by cohort (it would weaken the container's isolation or is unknown)"
                .into(),
        )
    })?;
    let mut parsed = RunArgs::from_flags(&flags);
    let extra_run_args: Vec<String> = flags
        .iter()
        .filter(|f| f.name != "--env")
        .flat_map(|f| f.tokens.iter().cloned())
        .collect();

    let mut env = std::mem::take(&mut parsed.env);
    match runner.get("env_args") {
        Some(Node::Map(m)) => {
            for (k, v) in m {
                env.push((k.clone(), v.python_str()));
            }
        }
        Some(Node::Str(s)) => {
            let words = split(s, "env_args")?;
            let flags = args::parse_flags(&words).map_err(|tok| {
                run_arg_err(tok, "in env_args is not an -e KEY=VALUE pair".into())
            })?;
            for f in flags {
                if f.name != "--env" {
                    return Err(run_arg_err(
                        f.text(),
                        "in env_args is not an -e KEY=VALUE pair".into(),
                    ));
                }
                let v = f.value.unwrap_or_default();
                let (k, val) = v.split_once('=').unwrap_or((&v, ""));
                env.push((k.to_string(), val.to_string()));
            }
        }
        Some(Node::Null) | None => {}
        Some(other) => {
            return Err(cfg.config_err(format!("docker.env_args {other} is not a mapping")));
        }
    }
    // Like a Python dict built from the pairs: first position, last value.
    let mut dedup: Vec<(String, String)> = Vec::with_capacity(env.len());
    for (k, v) in env {
        match dedup.iter_mut().find(|(dk, _)| *dk == k) {
            Some(slot) => slot.1 = v,
            None => dedup.push((k, v)),
        }
    }
    Ok(RunArgsOut {
        parsed,
        env: dedup,
        extra_run_args,
    })
}

/// Entrypoints (Q1, Q2): none → the task name is the first argument; one word → it replaces
/// the entrypoint and the parameters are dropped; several words → the first is the
/// entrypoint, the others precede the parameters.
fn entrypoint_and_cmd(
    cfg: &CubeConfig,
    task: &str,
    task_def: &Node,
    mut task_args: Vec<String>,
) -> Result<(Option<Vec<String>>, Vec<String>), Error> {
    match task_def.get("entrypoint") {
        None => Ok((None, task_args)),
        Some(Node::Str(s)) => {
            let words = args::shlex_split(s)
                .map_err(|m| cfg.config_err(format!("task {task}: entrypoint {m}")))?;
            task_args.remove(0);
            match words.as_slice() {
                [] => Ok((Some(vec![String::new()]), task_args)),
                [only] => Ok((Some(vec![only.clone()]), Vec::new())),
                [first, rest @ ..] => {
                    let mut cmd = rest.to_vec();
                    cmd.extend(task_args);
                    Ok((Some(vec![first.clone()]), cmd))
                }
            }
        }
        Some(other) => {
            Err(cfg.config_err(format!("task {task}: entrypoint {other} is not a string")))
        }
    }
}

/// The folders 0.0.9's `os.makedirs` calls would create: the workspace, every directory
/// parameter and every file parameter's parent, with missing ancestors.
fn created_dirs(workspace: &str, params: &[ParamPlan]) -> Vec<PathBuf> {
    let mut wanted = vec![workspace.to_string()];
    for p in params {
        let host = p.host.to_string_lossy().into_owned();
        wanted.push(match p.kind {
            PathKind::Dir => host,
            PathKind::File => paths::split(&host).0,
        });
    }
    let mut out: Vec<String> = Vec::new();
    for dir in wanted {
        let mut cur = paths::lexical(&dir);
        while !Path::new(&cur).exists() {
            if !out.contains(&cur) {
                out.push(cur.clone());
            }
            let (parent, _) = paths::split(&cur);
            if parent.is_empty() || parent == cur {
                break;
            }
            cur = parent;
        }
    }
    out.sort();
    out.into_iter().map(PathBuf::from).collect()
}

fn image_build(cfg: &CubeConfig, runner: &Node) -> Result<ImageBuild, Error> {
    let strategy = match runner
        .get("build_strategy")
        .map(Node::python_str)
        .as_deref()
    {
        Some("auto") => BuildStrategy::Auto,
        Some("always") => BuildStrategy::Always,
        _ => BuildStrategy::Pull,
    };
    let root = cfg.root().to_string_lossy().into_owned();
    let context = paths::lexical(&paths::join_workspace(
        &root,
        &runner
            .get("build_context")
            .map(Node::python_str)
            .unwrap_or_else(|| ".".into()),
    ));
    let dockerfile = paths::lexical(&paths::join_workspace(
        &context,
        &runner
            .get("build_file")
            .map(Node::python_str)
            .unwrap_or_else(|| "Dockerfile".into()),
    ));
    let build_args = match runner.get("build_args") {
        Some(Node::Map(m)) => m.iter().map(|(k, v)| (k.clone(), v.python_str())).collect(),
        Some(Node::Str(s)) => {
            let words = args::shell_split(s)
                .map_err(|m| cfg.config_err(format!("docker.build_args: {m}")))?;
            let mut out = Vec::new();
            let mut it = words.iter();
            while let Some(w) = it.next() {
                let kv = match w.strip_prefix("--build-arg=") {
                    Some(kv) => kv.to_string(),
                    None if w == "--build-arg" => it.next().cloned().unwrap_or_default(),
                    None => {
                        return Err(cfg.config_err(format!(
                            "docker.build_args: {w} is not supported (only --build-arg KEY=VALUE)"
                        )));
                    }
                };
                let (k, v) = kv.split_once('=').unwrap_or((&kv, ""));
                out.push((k.to_string(), v.to_string()));
            }
            out
        }
        _ => Vec::new(),
    };
    Ok(ImageBuild {
        strategy,
        context: PathBuf::from(context),
        dockerfile: PathBuf::from(dockerfile),
        build_args,
    })
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
