//! Planning a task of a container configuration: MedPerf's labels -> host paths (the caller's,
//! or the defaults of a local run), its volumes, run_args and environment -> the same
//! format-neutral [`Plan`] mlcube.yaml gives, hardened by the same code.

use std::path::{Path, PathBuf};

use super::contract::task_env;
use super::{ContainerConfig, ContainerType, must_exist, supplied};
use crate::mlcube::args::{self, RunArgs};
use crate::mlcube::error::Error;
use crate::mlcube::hardening;
use crate::mlcube::paths;
use crate::mlcube::plan::{
    BuildStrategy, ImageBuild, Invocation, Io, Mode, Mount, ParamPlan, PathKind, Plan, RunRequest,
};
use crate::mlcube::tree::Node;

pub(crate) fn plan_container(cfg: &ContainerConfig, req: &RunRequest) -> Result<Plan, Error> {
    let cube = cfg.label().to_string();
    let file = cfg.file().to_path_buf();
    let err = |label: Option<&str>, message: String| Error::Container {
        file: file.clone(),
        task: Some(req.task.clone()),
        label: label.map(str::to_string),
        message,
    };
    match cfg.container_type() {
        ContainerType::DockerImage | ContainerType::DockerArchive => {}
        kind => {
            return Err(Error::ContainerType {
                file: file.clone(),
                kind,
            });
        }
    }
    let task = cfg.task(&req.task).ok_or_else(|| Error::UnknownTask {
        cube: cube.clone(),
        task: req.task.clone(),
        available: cfg.tasks().join(", "),
    })??;
    let strict = req.mode == Mode::Strict;
    let o = &req.options;
    if let Some((name, value)) = req.overrides.first() {
        return Err(err(
            Some(name),
            format!(
                "{name}={value}: a container configuration's volumes are set with --mount {name}=PATH"
            ),
        ));
    }
    if !o.platform.is_empty() {
        return Err(err(
            None,
            "-P overrides are for mlcube.yaml; a container configuration has no such keys".into(),
        ));
    }
    if strict && (o.network.is_some() || o.security.is_some()) {
        return Err(err(
            None,
            "registered containers always run without network and with cohort's confinement; \
             --network and --security are for local runs"
                .into(),
        ));
    }
    for label in req.host_paths.keys() {
        if !task.volumes.iter().any(|v| &v.label == label) {
            return Err(Error::UnknownLabel {
                file: file.clone(),
                task: req.task.clone(),
                label: label.clone(),
                declared: task.volumes.iter().map(|v| v.label.clone()).collect(),
            });
        }
    }

    let workspace = match &req.workspace {
        Some(ws) => {
            let abs = std::path::absolute(ws).map_err(|source| Error::Io {
                path: ws.clone(),
                source,
            })?;
            paths::lexical(&abs.to_string_lossy())
        }
        None => format!("{}/workspace", cfg.root().to_string_lossy()),
    };
    // The cube's own files: beside the config for local runs (as MedPerf's `-p` and
    // `additional_files/` are), in the run's private workspace copy for registered cubes.
    let own = |name: &str| -> PathBuf {
        if strict {
            Path::new(&workspace).join(name)
        } else {
            cfg.root().join(name)
        }
    };

    let mut params = Vec::new();
    let mut mounts = Vec::new();
    for v in &task.volumes {
        let (host, placed) = match req.host_paths.get(&v.label) {
            Some(hp) => (hp.path.clone(), true),
            None => match v.label.as_str() {
                "parameters_file" => (own("parameters.yaml"), false),
                "additional_files" => (own("additional_files"), false),
                label if strict && supplied(&req.task).contains(&label) => {
                    return Err(err(
                        Some(label),
                        "no host path was given for this label of the task contract".into(),
                    ));
                }
                label if strict => {
                    return Err(err(
                        Some(label),
                        format!(
                            "MedPerf supplies no {label} to task {} (it would fail with \
                             KeyError); the task can declare {}, parameters_file and \
                             additional_files",
                            req.task,
                            supplied(&req.task).join(", ")
                        ),
                    ));
                }
                _ => (Path::new(&workspace).join(&v.label), false),
            },
        };
        let abs = std::path::absolute(&host).map_err(|source| Error::Io {
            path: host.clone(),
            source,
        })?;
        let host = PathBuf::from(paths::lexical(&abs.to_string_lossy()));
        let io = if must_exist(&req.task, &v.label) || !v.output {
            Io::Input
        } else {
            Io::Output
        };
        mounts.push(Mount {
            host: host.clone(),
            container: v.mount_path.clone(),
            read_only: !v.output,
        });
        params.push(ParamPlan {
            name: v.label.clone(),
            io,
            kind: v.kind,
            host,
            container: v.mount_path.clone(),
            placed,
        });
    }

    let ra = RunArgsOut::from_task(
        &task.run_args,
        o,
        &|key, message| err(None, format!("run_args.{key}: {message}")),
        &|message| err(None, message),
    )?;
    // MedPerf's env wins over the config's, keeping the config's order (its dict update).
    let mut env = ra.env;
    for (k, v) in task_env(&req.task) {
        match env.iter_mut().find(|(n, _)| n == k) {
            Some(slot) => slot.1 = v.to_string(),
            None => env.push((k.to_string(), v.to_string())),
        }
    }
    let mut extra_run_args = Vec::new();
    if let Some(g) = &ra.gpus {
        extra_run_args.extend(["--gpus".to_string(), g.clone()]);
    }
    if let Some(s) = &ra.shm_size {
        extra_run_args.extend(["--shm-size".to_string(), s.clone()]);
    }
    let mut created_dirs: Vec<PathBuf> = Vec::new();
    for p in params.iter().filter(|p| p.io == Io::Output) {
        let dir = match p.kind {
            PathKind::Dir => p.host.clone(),
            PathKind::File => p.host.parent().map(Path::to_path_buf).unwrap_or_default(),
        };
        if !dir.exists() && !created_dirs.contains(&dir) {
            created_dirs.push(dir);
        }
    }
    let invocation = Invocation {
        image: cfg.image().to_string(),
        entrypoint: ra.entrypoint,
        cmd: ra.command,
        mounts,
        env,
        extra_run_args,
        created_dirs,
    };
    if let Some(problem) = invocation.engine_problem() {
        return Err(err(None, format!("run_args: {problem}")));
    }
    let parsed = RunArgs {
        gpus: ra.gpus.as_deref().map(args::quote_device_list),
        shm_size: ra.shm_size,
        ..RunArgs::default()
    };
    let hardening = hardening::harden(&hardening::HardenInputs {
        cube: &cube,
        strict,
        options: o,
        workspace: &workspace,
        params: &params,
        invocation: &invocation,
        run_args: &parsed,
    })?;
    let run_root = crate::mlcube::plan::run_root(req, &workspace)?;
    Ok(Plan {
        cube,
        task: req.task.clone(),
        mode: req.mode,
        root: cfg.root().to_path_buf(),
        workspace: PathBuf::from(&workspace),
        run_root,
        params,
        invocation,
        hardening,
        image_build: ImageBuild {
            strategy: BuildStrategy::Pull,
            context: cfg.root().to_path_buf(),
            dockerfile: cfg.root().join("Dockerfile"),
            build_args: Vec::new(),
        },
    })
}

/// A task's run_args as MedPerf's docker runner reads them, with the site's options applied.
struct RunArgsOut {
    gpus: Option<String>,
    shm_size: Option<String>,
    env: Vec<(String, String)>,
    entrypoint: Option<Vec<String>>,
    command: Vec<String>,
}

impl RunArgsOut {
    fn from_task(
        run_args: &[(String, Node)],
        o: &crate::mlcube::plan::RunnerOptions,
        err: &dyn Fn(&str, String) -> Error,
        site_err: &dyn Fn(String) -> Error,
    ) -> Result<RunArgsOut, Error> {
        let get = |k: &str| run_args.iter().find(|(n, _)| n == k).map(|(_, v)| v);
        // The site's --gpus replaces the container's own request, as MedPerf's option does.
        // The site's values were checked by the command line; an error here names them.
        let gpus = match &o.gpus {
            Some(g) => args::site_gpus(g).map_err(|m| site_err(format!("--gpus {g}: {m}")))?,
            None => get("gpus")
                .map(normalise_gpus)
                .unwrap_or(Ok(None))
                .map_err(|m| err("gpus", m))?,
        };
        let shm_size = match (&o.shm_size, get("shm_size")) {
            (Some(s), _) => {
                args::parse_bytes(s).map_err(|m| site_err(format!("--shm-size {s}: {m}")))?;
                Some(s.clone())
            }
            (None, None | Some(Node::Null)) => None,
            (None, Some(v)) => {
                let s = scalar_text(v).map_err(|m| err("shm_size", m))?;
                args::parse_bytes(&s).map_err(|m| err("shm_size", m))?;
                Some(s)
            }
        };
        let mut env = Vec::new();
        match get("environment") {
            None | Some(Node::Null) => {}
            Some(Node::Map(m)) => {
                for (k, v) in m {
                    let v = scalar_text(v).map_err(|m| err(&format!("environment.{k}"), m))?;
                    env.push((k.clone(), v));
                }
            }
            Some(_) => return Err(err("environment", "must be a mapping".into())),
        }
        let entrypoint = match get("entrypoint") {
            None => None,
            Some(Node::Seq(items)) if !items.is_empty() => {
                Some(words(items).map_err(|m| err("entrypoint", m))?)
            }
            Some(Node::Seq(_)) => return Err(err("entrypoint", "is an empty list".into())),
            Some(v) => Some(vec![scalar_text(v).map_err(|m| err("entrypoint", m))?]),
        };
        let command = match get("command") {
            None => Vec::new(),
            Some(Node::Str(s)) => args::shlex_split(s).map_err(|m| err("command", m))?,
            Some(Node::Seq(items)) => words(items).map_err(|m| err("command", m))?,
            Some(_) => {
                return Err(err(
                    "command",
                    "must be a string or a list of strings".into(),
                ));
            }
        };
        Ok(RunArgsOut {
            gpus,
            shm_size,
            env,
            entrypoint,
            command,
        })
    }
}

/// Strings as they are, numbers as their decimal text; anything else is refused (Q5).
fn scalar_text(v: &Node) -> Result<String, String> {
    match v {
        Node::Str(s) => Ok(s.clone()),
        Node::Int(_) | Node::Float(_) => Ok(v.python_str()),
        other => Err(format!(
            "{} is not a string or a number (quote it)",
            other.python_str()
        )),
    }
}

fn words(items: &[Node]) -> Result<Vec<String>, String> {
    items.iter().map(scalar_text).collect()
}

/// MedPerf's gpus rule: 0, "0", "" and null give no GPUs; "all", a count or "device=a,b"
/// pass on; anything else (and a boolean, which MedPerf passes as `True`) is refused.
fn normalise_gpus(v: &Node) -> Result<Option<String>, String> {
    match v {
        Node::Null => Ok(None),
        Node::Int(i) if *i >= 0 => args::site_gpus(&i.to_string()),
        Node::Str(s) => args::site_gpus(s),
        other => Err(format!(
            "{} is not all, a count or device=ID[,ID]",
            other.python_str()
        )),
    }
}
