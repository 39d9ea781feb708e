//! The MLCube engine's error type: every message names the cube, task, parameter or file it
//! is about, and [`Error::hint`] says what to do next, so the CLI can print both as they are.

use std::path::PathBuf;
use std::time::Duration;

use super::container::ContainerType;
use super::strict::StrictViolation;

/// Everything that can go wrong while reading, planning or running an MLCube task.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration file could not be read.
    #[error("cannot read {path}: {}", crate::storage::plain_io(.source))]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is not valid YAML (or not a mapping at its top).
    #[error("{path} is not a valid MLCube configuration: {message}")]
    Yaml { path: PathBuf, message: String },
    /// A container configuration (`container_config.yaml`) breaks a rule; names the file and,
    /// where it applies, the task and the label.
    #[error("{}{}{}: {message}", file.display(), task.as_ref().map(|t| format!(", task {t}")).unwrap_or_default(), label.as_ref().map(|l| format!(", label {l}")).unwrap_or_default())]
    Container {
        file: PathBuf,
        task: Option<String>,
        label: Option<String>,
        message: String,
    },
    /// `--mount` (or a caller) names a label the task does not declare.
    #[error("{}, task {task}, label {label}: the task declares no volume {label} (declared: {})", file.display(), declared.join(", "))]
    UnknownLabel {
        file: PathBuf,
        task: String,
        label: String,
        declared: Vec<String>,
    },
    /// A container type cohort does not run (Singularity, encrypted archives).
    #[error("{}: container_type {kind:?} is not run by cohort{}", file.display(), if *kind == ContainerType::EncryptedDockerArchive { " (MedPerf decrypts it with a key handed to the site)" } else { " (cohort runs Docker containers through the Docker Engine only)" })]
    ContainerType { file: PathBuf, kind: ContainerType },
    /// Two configurations in one folder and no file named.
    #[error("{} holds both mlcube.yaml and container_config.yaml; name the file to use", dir.display())]
    AmbiguousConfig { dir: PathBuf },
    /// The YAML is valid but the configuration breaks an MLCube 0.0.9 rule.
    #[error("MLCube {cube}: {message}")]
    Config { cube: String, message: String },
    /// `--task` names a task the cube does not have.
    #[error("MLCube {cube} has no task {task:?} (tasks: {available})")]
    UnknownTask {
        cube: String,
        task: String,
        available: String,
    },
    /// A task parameter is malformed or cannot be resolved.
    #[error("MLCube {cube}, task {task}, parameter {param}: {message}")]
    Param {
        cube: String,
        task: String,
        param: String,
        message: String,
    },
    /// A `${...}` interpolation cannot be resolved.
    #[error("MLCube {cube}: cannot resolve {expression} in {key}: {message}")]
    Interpolation {
        cube: String,
        key: String,
        expression: String,
        message: String,
    },
    /// A command-line override (`name=value`, `-Pkey=value`, runner option) is refused.
    #[error("MLCube {cube}: {message}")]
    Override { cube: String, message: String },
    /// A run argument from `cpu_args`/`gpu_args`/runner options cannot be applied.
    #[error("MLCube {cube}: run argument {arg:?} {message}")]
    RunArg {
        cube: String,
        arg: String,
        message: String,
    },
    /// A registered (strict) cube breaks the rules for registered cubes.
    #[error("MLCube {cube} is not allowed as a registered cube: {}", summarize(.violations))]
    Strict {
        cube: String,
        violations: Vec<StrictViolation>,
    },
    /// An input the task reads does not exist on the host.
    #[error("MLCube {cube}, task {task}: input {param} does not exist: {path}")]
    MissingInput {
        cube: String,
        task: String,
        param: String,
        path: PathBuf,
    },
    /// A host path cohort would create, hand over or mount is not safe to use.
    #[error("MLCube {cube}, task {task}: {path} {problem}")]
    HostPath {
        cube: String,
        task: String,
        path: PathBuf,
        problem: HostPathProblem,
    },
    /// A run argument or security option would weaken the container's confinement.
    #[error("MLCube {cube}: {arg:?} {message}")]
    Sandbox {
        cube: String,
        arg: String,
        message: String,
    },
    /// A host file or directory could not be created or read.
    #[error("{path}: {}", crate::storage::plain_io(.source))]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The Docker Engine cannot be reached.
    #[error("cannot reach the Docker Engine at {host}: {message}")]
    DockerUnreachable { host: String, message: String },
    /// The Docker Engine refused or failed a request.
    #[error("Docker Engine: {action} failed: {message}")]
    Docker { action: String, message: String },
    /// The image is not present and could not be pulled or built.
    #[error("image {image} is not available: {message}")]
    ImageUnavailable {
        image: String,
        message: String,
        hint: String,
    },
    /// Offline (`--offline`): the image would have to come from an image registry.
    #[error(
        "image {image} is not pulled or pushed: offline (--offline or COHORT_OFFLINE=1), and {host} is an image registry"
    )]
    Offline { image: String, host: String },
    /// Pushing an image to a registry failed (down, login refused, manifest rejected).
    #[error("pushing {reference} to {host} failed: {message}")]
    Push {
        host: String,
        reference: String,
        message: String,
        /// Whether credentials for the host were found and sent.
        logged_in: bool,
    },
    /// Building the image from its Dockerfile failed.
    #[error("building image {image} from {dockerfile} failed: {message}")]
    BuildFailed {
        image: String,
        dockerfile: PathBuf,
        message: String,
    },
    /// The image present under a reference is not the one recorded.
    #[error("image {image} has id {actual}, expected {expected}")]
    ImageIdMismatch {
        image: String,
        expected: String,
        actual: String,
    },
    /// An image tarball does not have the recorded sha256.
    #[error("{path} has sha256 {actual}, expected {expected}")]
    Sha256Mismatch {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    /// The task's container exited with a non-zero code.
    #[error("MLCube {cube}, task {task}: the container exited with code {code}")]
    TaskFailed {
        cube: String,
        task: String,
        code: i64,
        log: PathBuf,
    },
    /// The task ran past its timeout and was stopped.
    #[error("MLCube {cube}, task {task}: stopped after the {} timeout", humantime::format_duration(*.after))]
    TimedOut {
        cube: String,
        task: String,
        after: Duration,
        log: PathBuf,
    },
    /// The run was cancelled (Ctrl-C); the container was stopped and removed.
    #[error("MLCube {cube}, task {task}: cancelled")]
    Cancelled { cube: String, task: String },
}

/// Why a host path is refused (see [`Error::HostPath`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostPathProblem {
    /// The path, or a folder on the way to it, is a symbolic link.
    Symlink,
    /// Not a folder where a folder is needed, or not a plain file where a file is.
    WrongKind,
    /// A registered cube's mount outside its run's workspace and the places cohort chose.
    OutsideRun,
    /// A writable mount inside the cube's installed files.
    CubeFolder,
}

impl std::fmt::Display for HostPathProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            HostPathProblem::Symlink => {
                "is (or lies behind) a symbolic link; cohort never follows links in the folders \
                 it prepares or mounts"
            }
            HostPathProblem::WrongKind => "is not a folder (or not a plain file) as the task needs",
            HostPathProblem::OutsideRun => {
                "is outside this run's folders; a registered cube gets only its run's workspace \
                 and the paths cohort places"
            }
            HostPathProblem::CubeFolder => {
                "is inside the cube's installed files, which are never mounted writable"
            }
        })
    }
}

fn summarize(violations: &[StrictViolation]) -> String {
    match violations {
        [] => "no violations".to_string(),
        [one] => one.to_string(),
        [first, rest @ ..] => format!("{first} (and {} more)", rest.len()),
    }
}

impl Error {
    /// True when the environment is at fault (the Docker Engine is unreachable or failing),
    /// not the cube or the user's input: the CLI maps this to exit code 3.
    pub fn is_environment(&self) -> bool {
        matches!(
            self,
            Error::DockerUnreachable { .. }
                | Error::Docker { .. }
                | Error::Push { .. }
                | Error::Offline { .. }
        )
    }

    /// What the user can do about it, when there is something useful to say.
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            Error::Read { .. } => "pass the MLCube folder or its mlcube.yaml".into(),
            Error::Yaml { .. } => "fix the YAML syntax; MLCube 0.0.9 reads the file with PyYAML".into(),
            Error::Config { .. } => return None,
            Error::UnknownLabel { .. } => {
                "--mount takes the labels the task declares in container_config.yaml".into()
            }
            Error::Container { .. } => {
                "see docs/mlcube.md, \"MedPerf container configurations\"".into()
            }
            Error::ContainerType {
                kind: ContainerType::EncryptedDockerArchive,
                ..
            } => {
                "for a model only some sites may run, submit it as a cohort private model (its \
                 image sealed to the benchmark committee and approved sites) instead of an \
                 encrypted archive; or submit the plain image as DockerImage or DockerArchive"
                    .into()
            }
            Error::ContainerType { .. } => {
                "build a Docker image of the container and set container_type: DockerImage (or \
                 DockerArchive)"
                    .into()
            }
            Error::AmbiguousConfig { dir } => format!(
                "pass {0}/mlcube.yaml or {0}/container_config.yaml",
                dir.display()
            ),
            Error::UnknownTask { .. } => "pass one of the listed tasks with --task".into(),
            Error::Param { message, .. } if message.contains("cannot be inferred") => {
                "create the input (MLCube 0.0.9 infers an untyped input's type from the host), \
                 pass its location as name=PATH, or declare `type: file` or `type: directory`"
                    .into()
            }
            Error::Param { message, .. } if message.contains("needs a type") => {
                "declare the output with `type: file` or `type: directory`, or end its path with /"
                    .into()
            }
            Error::Param { .. } => return None,
            Error::Interpolation { .. } => {
                "interpolations may name a key of the configuration or ${oc.env:VAR,default}".into()
            }
            Error::Override { message, .. } if message.contains("no task of this cube") => {
                "check the parameter name against the cube's mlcube.yaml".into()
            }
            Error::Override { .. } => return None,
            Error::RunArg { arg, .. } if arg.starts_with("--ipc") => {
                "--ipc would share an IPC namespace with the host or other containers; for data \
                 loaders' shared memory, give the container its own with --shm-size (e.g. \
                 --shm-size 2g on the command, or shm_size in the cube's run args)"
                    .into()
            }
            Error::RunArg { .. } => {
                "cohort maps --gpus, --shm-size, --runtime, --memory, --cpuset-cpus, --cpus, \
                 --network, --security-opt and -e; see docs/mlcube.md"
                    .into()
            }
            Error::Strict { violations, .. } => {
                let all: Vec<String> = violations.iter().map(|v| v.to_string()).collect();
                format!(
                    "registered cubes may use run args --gpus, --shm-size and --runtime=nvidia \
                     only, and relative paths inside the workspace: {}",
                    all.join("; ")
                )
            }
            Error::MissingInput { param, .. } => format!(
                "cohort never creates missing inputs (MLCube 0.0.9 silently did); create it, or pass its \
                 path ({param}=PATH for mlcube.yaml, --mount {param}=PATH for container_config.yaml)"
            ),
            Error::HostPath { problem, .. } => match problem {
                HostPathProblem::Symlink => {
                    "a container that could write there may have planted it: remove the link \
                     (and check what it points to), or pass the real path"
                        .into()
                }
                HostPathProblem::WrongKind => "remove or rename what is in the way".into(),
                HostPathProblem::OutsideRun | HostPathProblem::CubeFolder => {
                    "registered cubes read and write only their run's workspace (${workspace}); \
                     fix the cube's mlcube.yaml"
                        .into()
                }
            },
            Error::Sandbox { .. } => {
                "cohort keeps no-new-privileges, Docker's default seccomp profile and the \
                 AppArmor/SELinux confinement; --security accepts apparmor=PROFILE, \
                 label=user:|role:|type:|level:... and no-new-privileges"
                    .into()
            }
            Error::Io { source, .. } => crate::storage::io_hint(source).into(),
            Error::DockerUnreachable { .. } => {
                "is it running? Start the Docker Engine, or set DOCKER_HOST to where it listens; \
                 your user must be allowed to use its socket (the docker group). `cohort doctor` \
                 checks this machine"
                    .into()
            }
            Error::Docker { .. } => "check `docker info`; the Engine log may say more".into(),
            Error::ImageUnavailable { hint, .. } => hint.clone(),
            Error::Offline { .. } => {
                "an air-gapped site gets its images in a registry bundle (`cohort bundle import`); otherwise go online".into()
            }
            Error::Push {
                host, logged_in, ..
            } => {
                if *logged_in {
                    format!(
                        "check that {host} is up and that your login there may push this repository (`docker login {host}` again if it expired)"
                    )
                } else {
                    format!(
                        "no credentials for {host} in your Docker client configuration: `docker login {host}` (or check that {host} is up)"
                    )
                }
            }
            Error::BuildFailed { .. } => "run the same build with `docker build` to see the failing step".into(),
            Error::ImageIdMismatch { .. } => {
                "the image under this name is not the one recorded; load or pull the recorded image \
                 (cohort never runs a different image)"
                    .into()
            }
            Error::Sha256Mismatch { .. } => {
                "the tarball is corrupt or not the recorded one; download it again".into()
            }
            Error::TaskFailed { log, .. } => format!("the task's output is in {}", log.display()),
            Error::TimedOut { log, .. } => format!(
                "raise the limit with --timeout; the task's output is in {}",
                log.display()
            ),
            Error::Cancelled { .. } => {
                "the container was stopped and removed; run the command again to start over".into()
            }
        })
    }
}
