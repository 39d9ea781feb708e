//! The command line 0.0.9 would build around the parameters: run args from `cpu_args` or
//! `gpu_args` and the runner flags, the environment from `env_args`, the entrypoint rules
//! (Q1, Q2), and how the image would be built (`build_context`, `build_file`, `build_args`).

use std::path::PathBuf;

use super::args::{self, RunArgs};
use super::config::CubeConfig;
use super::error::Error;
use super::paths;
use super::plan::{BuildStrategy, ImageBuild};
use super::tree::Node;

pub(crate) struct RunArgsOut {
    pub parsed: RunArgs,
    pub env: Vec<(String, String)>,
    pub extra_run_args: Vec<String>,
}

/// `cpu_args`/`gpu_args` by `platform.accelerator_count` (Q7), then the runner flags in
/// fixed order, then `env_args`.
pub(crate) fn run_args(cfg: &CubeConfig, effective: &Node) -> Result<RunArgsOut, Error> {
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
pub(crate) fn entrypoint_and_cmd(
    cfg: &CubeConfig,
    task: &str,
    task_def: &Node,
    mut task_args: Vec<String>,
) -> Result<(Option<Vec<String>>, Vec<String>), Error> {
    match task_def.get("entrypoint") {
        // `entrypoint: null` is 0.0.9's `task.get('entrypoint')` being None: the image's own
        // entrypoint runs with the task name first.
        None | Some(Node::Null) => Ok((None, task_args)),
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

pub(crate) fn image_build(cfg: &CubeConfig, runner: &Node) -> Result<ImageBuild, Error> {
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
