//! The two configuration formats cohort runs, behind one type: MLCube 0.0.9's `mlcube.yaml`
//! and MedPerf 0.3.0's `container_config.yaml`. Each is parsed once per run and planned by its
//! own parser into the same [`Plan`]; everything after planning (hardening, strict checks at
//! run time, the Docker runtime, `--dry-run --json`) sees only the plan.

use std::path::Path;

use super::config::CubeConfig;
use super::container::{CONTAINER_FILE, ContainerConfig, ContainerType};
use super::error::Error;
use super::plan::{Plan, RunRequest, plan};
use super::strict::{StrictViolation, check_strict};

/// The MLCube file name.
pub const MLCUBE_FILE: &str = "mlcube.yaml";

/// A cube's configuration in either format.
#[derive(Debug, Clone)]
pub enum Config {
    MlCube(CubeConfig),
    Container(ContainerConfig),
}

impl From<CubeConfig> for Config {
    fn from(c: CubeConfig) -> Config {
        Config::MlCube(c)
    }
}

impl Config {
    /// Loads `path`: a folder holding `mlcube.yaml` or `container_config.yaml` (a folder
    /// holding both is refused: name the file), or the file itself. A file named
    /// `container_config*.yaml`, or one whose top level has `container_type`, is a container
    /// configuration; anything else is read as mlcube.yaml.
    pub fn load(path: &Path) -> Result<Config, Error> {
        if path.is_dir() {
            let mlcube = path.join(MLCUBE_FILE);
            let container = path.join(CONTAINER_FILE);
            return match (mlcube.is_file(), container.is_file()) {
                (true, true) => Err(Error::AmbiguousConfig {
                    dir: path.to_path_buf(),
                }),
                (false, true) => Ok(Config::Container(ContainerConfig::load(&container)?)),
                _ => Ok(Config::MlCube(CubeConfig::load(path)?)),
            };
        }
        if is_container_file(path) {
            Ok(Config::Container(ContainerConfig::load(path)?))
        } else {
            Ok(Config::MlCube(CubeConfig::load(path)?))
        }
    }

    /// Plans a task run. `env` and `home` matter only to mlcube.yaml (`${oc.env:..}`, `~`).
    pub fn plan(
        &self,
        req: &RunRequest,
        env: &dyn Fn(&str) -> Option<String>,
        home: &Path,
    ) -> Result<Plan, Error> {
        match self {
            Config::MlCube(c) => plan(c, req, env, home),
            Config::Container(c) => super::container::plan_container(c, req),
        }
    }

    /// The rules for registered cubes, checked at submission: for a container configuration,
    /// every task must be well-formed (volumes, run_args).
    pub fn check_strict(&self) -> Result<(), Vec<StrictViolation>> {
        match self {
            Config::MlCube(c) => check_strict(c),
            Config::Container(c) => {
                let mut v: Vec<StrictViolation> = c
                    .problems()
                    .into_iter()
                    .map(|(task, p)| StrictViolation {
                        task: Some(task),
                        field: p.label.unwrap_or_else(|| "task".into()),
                        message: p.message,
                    })
                    .collect();
                // A label MedPerf's commands never give a task of the contract would fail
                // every run of it (MedPerf: KeyError): refused at submission, not at the site.
                for task in c.tasks() {
                    let supplied = super::container::supplied(&task);
                    let Some(Ok(t)) = c.task(&task) else { continue };
                    if supplied.is_empty() {
                        continue;
                    }
                    for vol in &t.volumes {
                        let label = vol.label.as_str();
                        if !supplied.contains(&label)
                            && !matches!(label, "parameters_file" | "additional_files")
                        {
                            v.push(StrictViolation {
                                task: Some(task.clone()),
                                field: vol.label.clone(),
                                message: format!(
                                    "MedPerf supplies no {label} to task {task} (it can declare \
                                     {}, parameters_file and additional_files)",
                                    supplied.join(", ")
                                ),
                            });
                        }
                    }
                }
                if !matches!(
                    c.container_type(),
                    ContainerType::DockerImage | ContainerType::DockerArchive
                ) {
                    v.push(StrictViolation {
                        task: None,
                        field: "container_type".into(),
                        message: format!(
                            "{:?} is not run by cohort (DockerImage and DockerArchive are)",
                            c.container_type()
                        ),
                    });
                }
                if v.is_empty() { Ok(()) } else { Err(v) }
            }
        }
    }

    pub fn label(&self) -> &str {
        match self {
            Config::MlCube(c) => c.label(),
            Config::Container(c) => c.label(),
        }
    }

    pub fn set_label(&mut self, label: impl Into<String>) {
        match self {
            Config::MlCube(c) => c.set_label(label),
            Config::Container(c) => c.set_label(label),
        }
    }

    /// The folder holding the configuration.
    pub fn root(&self) -> &Path {
        match self {
            Config::MlCube(c) => c.root(),
            Config::Container(c) => c.root(),
        }
    }

    pub fn file(&self) -> &Path {
        match self {
            Config::MlCube(c) => c.file(),
            Config::Container(c) => c.file(),
        }
    }

    /// The file's name in a registry record (`mlcube.yaml` or `container_config.yaml`).
    pub fn file_name(&self) -> &'static str {
        match self {
            Config::MlCube(_) => MLCUBE_FILE,
            Config::Container(_) => CONTAINER_FILE,
        }
    }

    pub fn text(&self) -> &str {
        match self {
            Config::MlCube(c) => c.text(),
            Config::Container(c) => c.text(),
        }
    }

    pub fn tasks(&self) -> Vec<String> {
        match self {
            Config::MlCube(c) => c.tasks(),
            Config::Container(c) => c.tasks(),
        }
    }

    /// Whether `task` takes the parameter (MLCube) or declares the volume label (container).
    pub fn task_has_parameter(&self, task: &str, name: &str) -> bool {
        match self {
            Config::MlCube(c) => c.task_has_parameter(task, name),
            Config::Container(c) => c.task_has_label(task, name),
        }
    }

    pub fn is_container(&self) -> bool {
        matches!(self, Config::Container(_))
    }
}

/// Whether a file is a container configuration: named so, or declaring `container_type`.
fn is_container_file(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if name.starts_with("container_config") {
        return true;
    }
    if name == MLCUBE_FILE {
        return false;
    }
    std::fs::read_to_string(path).is_ok_and(|t| {
        t.lines()
            .any(|l| l.starts_with("container_type:") || l.starts_with("\"container_type\":"))
    })
}
