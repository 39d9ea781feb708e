//! Task parameters as MLCube 0.0.9's `Shell.generate_mounts_and_args` treats them: host
//! paths (`~`, `$VAR`, relative to the workspace, or placed by the caller), types (declared,
//! or inferred from the host for inputs), one mount per distinct host folder, the `opts`
//! rule, and the folders 0.0.9 would create.

use std::path::{Path, PathBuf};

use super::config::CubeConfig;
use super::error::Error;
use super::interp::{expand_user, expand_vars};
use super::paths;
use super::plan::{Io, ParamPlan, PathKind, RunRequest};
use super::tree::Node;

pub(crate) fn resolve_params(
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
                    placed: req.host_paths.contains_key(name),
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
pub(crate) fn mounts_and_args(
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

/// The folders 0.0.9's `os.makedirs` calls would create: the workspace, every directory
/// parameter and every file parameter's parent, with missing ancestors.
pub(crate) fn created_dirs(workspace: &str, params: &[ParamPlan]) -> Vec<PathBuf> {
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
