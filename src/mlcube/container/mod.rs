//! MedPerf 0.3.0's `container_config.yaml` (the format MedPerf runs since it dropped MLCube):
//! `container_type`, `image`, and per task `input_volumes` / `output_volumes` keyed by the labels
//! MedPerf fills with host paths, plus `run_args`. Read once, checked whole (MedPerf's quirks
//! Q2-Q6 are refused here, see `deviations.rs`), and planned by `plan.rs` into the same
//! format-neutral [`Plan`](super::Plan) mlcube.yaml gives.

mod contract;
mod plan;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use super::error::Error;
use super::plan::PathKind;
use super::tree::Node;

pub use contract::{CONTAINER_DEVIATIONS, must_exist, supplied};
pub(crate) use plan::plan_container;

/// The file name MedPerf gives a container configuration.
pub const CONTAINER_FILE: &str = "container_config.yaml";

/// `container_type`: what MedPerf knows. Only the Docker types run in cohort.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum ContainerType {
    DockerImage,
    DockerArchive,
    SingularityFile,
    EncryptedDockerArchive,
    EncryptedSingularityFile,
}

impl ContainerType {
    fn parse(s: &str) -> Option<ContainerType> {
        Some(match s {
            "DockerImage" => ContainerType::DockerImage,
            "DockerArchive" => ContainerType::DockerArchive,
            "SingularityFile" => ContainerType::SingularityFile,
            "EncryptedDockerArchive" => ContainerType::EncryptedDockerArchive,
            "EncryptedSingularityFile" => ContainerType::EncryptedSingularityFile,
            _ => return None,
        })
    }
}

/// One declared volume of a task.
#[derive(Debug, Clone, PartialEq)]
pub struct Volume {
    pub label: String,
    pub mount_path: String,
    pub kind: PathKind,
    /// Declared under `output_volumes` (MedPerf mounts those `:rw`).
    pub output: bool,
}

/// One task: its volumes in MedPerf's mount order (inputs, then outputs) and its run_args.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerTask {
    pub volumes: Vec<Volume>,
    pub run_args: Vec<(String, Node)>,
}

/// A parsed `container_config.yaml`. Planning never changes it.
#[derive(Debug, Clone)]
pub struct ContainerConfig {
    root: PathBuf,
    file: PathBuf,
    text: String,
    label: String,
    kind: ContainerType,
    image: String,
    /// Every task in file order; a task that breaks a rule keeps its refusal (label, message)
    /// so the others still run (MedPerf refuses the whole file for one bad volume, Q6), while
    /// submission refuses the file ([`ContainerConfig::problems`]).
    tasks: Vec<(String, Result<ContainerTask, TaskProblem>)>,
}

/// Why a task of the file cannot run: the label concerned, if any, and the message.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskProblem {
    pub label: Option<String>,
    pub message: String,
}

impl ContainerConfig {
    /// Reads the file at `file` (the folder holding it is the cube's root).
    pub fn load(file: &Path) -> Result<ContainerConfig, Error> {
        let abs = std::path::absolute(file).map_err(|source| Error::Read {
            path: file.to_path_buf(),
            source,
        })?;
        let text = std::fs::read_to_string(&abs).map_err(|source| Error::Read {
            path: abs.clone(),
            source,
        })?;
        ContainerConfig::from_text(&text, &abs)
    }

    /// Parses `text` as if read from `file`.
    pub fn from_text(text: &str, file: &Path) -> Result<ContainerConfig, Error> {
        let bad = |message: String| Error::Container {
            file: file.to_path_buf(),
            task: None,
            label: None,
            message,
        };
        let tree = Node::parse_yaml(text).map_err(|m| {
            bad(format!(
                "not valid YAML (MedPerf reads it with PyYAML): {m}"
            ))
        })?;
        let top = tree
            .as_map()
            .ok_or_else(|| bad("the top level must be a mapping".into()))?;
        for (k, _) in top {
            if !["container_type", "image", "tasks"].contains(&k.as_str()) {
                return Err(bad(format!(
                    "unknown key {k:?} (a container configuration has container_type, image and tasks)"
                )));
            }
        }
        let kind = match tree.get("container_type") {
            None | Some(Node::Null) => {
                return Err(bad(
                    "no container_type (one of DockerImage, DockerArchive; \
                     MedPerf also knows SingularityFile, EncryptedDockerArchive, \
                     EncryptedSingularityFile)"
                        .into(),
                ));
            }
            Some(n) => {
                let s = n.python_str();
                ContainerType::parse(&s).ok_or_else(|| {
                    bad(format!(
                        "container_type {s:?} is not known (expected DockerImage or \
                         DockerArchive; an MLCube is configured in mlcube.yaml)"
                    ))
                })?
            }
        };
        let image = match tree.get("image") {
            Some(Node::Str(s)) if !s.trim().is_empty() => s.clone(),
            _ => return Err(bad("image must be a non-empty string".into())),
        };
        let task_nodes = match tree.get("tasks") {
            Some(Node::Map(m)) if !m.is_empty() => m,
            _ => return Err(bad("tasks must be a mapping of task names to tasks".into())),
        };
        let mut tasks = Vec::new();
        for (name, body) in task_nodes {
            tasks.push((name.clone(), parse_task(body)));
        }
        let root = file
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let label = root
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| file.display().to_string());
        Ok(ContainerConfig {
            root,
            file: file.to_path_buf(),
            text: text.to_string(),
            label,
            kind,
            image,
            tasks,
        })
    }

    pub fn label(&self) -> &str {
        &self.label
    }
    pub fn set_label(&mut self, label: impl Into<String>) {
        self.label = label.into();
    }
    pub fn root(&self) -> &Path {
        &self.root
    }
    pub fn file(&self) -> &Path {
        &self.file
    }
    pub fn text(&self) -> &str {
        &self.text
    }
    pub fn container_type(&self) -> ContainerType {
        self.kind
    }
    pub fn image(&self) -> &str {
        &self.image
    }
    pub fn tasks(&self) -> Vec<String> {
        self.tasks.iter().map(|(n, _)| n.clone()).collect()
    }
    /// The task `name`: `None` when absent, `Some(Err)` when it breaks a rule.
    pub fn task(&self, name: &str) -> Option<Result<&ContainerTask, Error>> {
        let (_, t) = self.tasks.iter().find(|(n, _)| n == name)?;
        Some(t.as_ref().map_err(|p| Error::Container {
            file: self.file.clone(),
            task: Some(name.to_string()),
            label: p.label.clone(),
            message: p.message.clone(),
        }))
    }
    /// Every task's refusal, for submission time.
    pub fn problems(&self) -> Vec<(String, TaskProblem)> {
        self.tasks
            .iter()
            .filter_map(|(n, t)| t.as_ref().err().map(|p| (n.clone(), p.clone())))
            .collect()
    }
    /// Whether `task` declares the volume `label`.
    pub fn task_has_label(&self, task: &str, label: &str) -> bool {
        matches!(self.task(task), Some(Ok(t)) if t.volumes.iter().any(|v| v.label == label))
    }
}

/// The run_args keys MedPerf allows (`InvalidContainerSpec: Run args K are not allowed.`).
pub const RUN_ARG_KEYS: &[&str] = &["shm_size", "gpus", "command", "entrypoint", "environment"];

fn parse_task(body: &Node) -> Result<ContainerTask, TaskProblem> {
    let err = |label: Option<&str>, message: String| TaskProblem {
        label: label.map(str::to_string),
        message,
    };
    let map = body
        .as_map()
        .ok_or_else(|| err(None, "the task must be a mapping".into()))?;
    let mut volumes: Vec<Volume> = Vec::new();
    let mut run_args = Vec::new();
    for (key, value) in map {
        match key.as_str() {
            "input_volumes" | "output_volumes" => {
                let output = key == "output_volumes";
                let entries = match value {
                    Node::Map(m) => m.as_slice(),
                    // An empty section is written `output_volumes: {}` or left empty.
                    Node::Null => &[],
                    _ => return Err(err(None, format!("{key} must be a mapping of labels"))),
                };
                for (label, v) in entries {
                    let vol = parse_volume(label, v, output)
                        .map_err(|m| err(Some(label), format!("{key}: {m}")))?;
                    // Q2/Q3: a label declared twice would be mounted twice (read-only and
                    // read-write); a mount path used twice makes the mounts shadow each other.
                    if volumes.iter().any(|o| o.label == vol.label) {
                        return Err(err(
                            Some(label),
                            "is declared in both input_volumes and output_volumes".into(),
                        ));
                    }
                    if let Some(o) = volumes.iter().find(|o| o.mount_path == vol.mount_path) {
                        return Err(err(
                            Some(label),
                            format!(
                                "mount_path {} is also the mount of {}",
                                vol.mount_path, o.label
                            ),
                        ));
                    }
                    volumes.push(vol);
                }
            }
            "run_args" => match value {
                Node::Map(m) => {
                    let mut bad: Vec<&str> = m
                        .iter()
                        .map(|(k, _)| k.as_str())
                        .filter(|k| !RUN_ARG_KEYS.contains(k))
                        .collect();
                    bad.sort();
                    if !bad.is_empty() {
                        // As for mlcube.yaml's --ipc: shared memory has a safe way.
                        let shm = if bad.iter().any(|k| k.contains("ipc") || k.contains("shm")) {
                            "; shared memory for data loaders is shm_size, or the site's --shm-size"
                        } else {
                            ""
                        };
                        return Err(err(
                            None,
                            format!(
                                "run_args {} not allowed (allowed: {}){shm}",
                                bad.join(", "),
                                RUN_ARG_KEYS.join(", ")
                            ),
                        ));
                    }
                    run_args = m.clone();
                }
                Node::Null => {}
                _ => return Err(err(None, "run_args must be a mapping".into())),
            },
            other => {
                return Err(err(
                    None,
                    format!(
                        "unknown key {other:?} (a task has input_volumes, output_volumes and run_args)"
                    ),
                ));
            }
        }
    }
    // MedPerf's order: every input volume, then every output volume, each in file order.
    volumes.sort_by_key(|v| v.output);
    Ok(ContainerTask { volumes, run_args })
}

fn parse_volume(label: &str, v: &Node, output: bool) -> Result<Volume, String> {
    // A label names a host path: a local run's default is `<folder>/workspace/<label>`. A
    // label that is not one plain name (`..`, `/etc`, `../../root`) would put that mount,
    // writable if it is an output, anywhere on the host.
    let plain = !label.is_empty()
        && label != "."
        && label != ".."
        && label
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !plain {
        return Err(format!(
            "the label {label:?} is not a plain name (letters, digits, `_`, `-` and `.`, not \
             . or ..: it names the folder workspace/<label> of a local run and --mount \
             LABEL=PATH)"
        ));
    }
    let (Some(mount), Some(kind)) = (v.get("mount_path"), v.get("type")) else {
        return Err("a volume needs both mount_path and type".into());
    };
    if let Some((k, _)) = v
        .as_map()
        .and_then(|m| m.iter().find(|(k, _)| k != "mount_path" && k != "type"))
    {
        return Err(format!(
            "unknown key {k:?} (a volume has mount_path and type)"
        ));
    }
    let kind = match kind {
        Node::Str(s) if s == "file" => PathKind::File,
        Node::Str(s) if s == "directory" => PathKind::Dir,
        other => {
            return Err(format!(
                "type {} is neither file nor directory",
                other.python_str()
            ));
        }
    };
    let Node::Str(mount_path) = mount else {
        return Err("mount_path must be a string".into());
    };
    // Q3: MedPerf passes any mount path on to docker.
    if !mount_path.starts_with('/') {
        return Err(format!("mount_path {mount_path:?} is not an absolute path"));
    }
    if mount_path.contains('\0') {
        return Err(format!("mount_path {mount_path:?} holds a NUL character"));
    }
    if mount_path.contains(':') || mount_path.contains(',') {
        return Err(format!(
            "mount_path {mount_path:?} contains ':' or ',', which Docker reads as a separator"
        ));
    }
    let normal = super::paths::lexical(mount_path);
    // The kernel's and the runtime's own folders: runc refuses some of these only when the
    // container starts, others silently hide what processes rely on (and /dev/shm would
    // replace the shared memory --shm-size sizes with a host folder).
    if let Some(system) = ["/proc", "/sys", "/dev"]
        .into_iter()
        .find(|s| super::paths::is_within(s, &normal))
    {
        return Err(format!(
            "mount_path {mount_path:?} lies in the container's {system}, which the runtime \
             provides"
        ));
    }
    if normal == "/" || normal == "/tmp" {
        return Err(format!(
            "mount_path {mount_path:?} would cover the container's {normal} (cohort mounts a \
             private tmpfs at /tmp)"
        ));
    }
    Ok(Volume {
        label: label.to_string(),
        mount_path: normal,
        kind,
        output,
    })
}
