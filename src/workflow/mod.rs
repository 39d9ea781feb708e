//! The seed's workflow as operations: registry set-up and sync, identities and approvals,
//! submissions, compatibility tests, dataset preparation, execution and results. Each operation
//! takes a [`Ctx`] (local storage, progress reporter, clock, how to reach git) and returns data
//! for the CLI to render.

mod admin;
pub mod assets;
pub mod associations;
pub mod benchmarks;
pub mod bundle;
pub mod compat;
pub mod cubes;
mod dataset_registry;
pub mod datasets;
pub mod engine;
pub mod execution;
pub mod housekeeping;
pub mod identity;
pub mod listing;
pub mod lookup;
pub mod permission;
pub mod private;
mod proposals;
pub mod registry_ops;
pub mod release;
mod release_check;
pub mod results;
mod rows;
pub mod runs;
pub mod status;
mod submission;
pub mod unseal;

use std::time::SystemTime;

use crate::mlcube;
use crate::model::ModelError;
use crate::progress::{Cancel, Reporter};
use crate::registry::{RegistryError, Transport};
use crate::storage::{Home, NetConfig, StorageError};
use crate::trust::{Problem, TrustError};

pub use rows::CubeRowsSource;
pub use submission::{Submission, SubmissionKind, sign_all as sign_records};

/// Settings every workflow operation needs, resolved once by the CLI.
pub struct Ctx<'a> {
    pub home: &'a Home,
    pub reporter: &'a dyn Reporter,
    pub now: SystemTime,
    /// Whether the `git` program can be used for remotes.
    pub git: &'a GitProgram,
    /// Force a transport (tests use libgit2 to exercise it).
    pub transport: Option<Transport>,
    /// DOCKER_HOST (None: the local socket).
    pub docker_host: Option<String>,
    /// The Docker client configuration (`config.json`) registry credentials come from.
    pub docker_config: Option<std::path::PathBuf>,
    /// Proxies and CA certificates for downloads.
    pub net: NetConfig,
    /// Set by the CLI on Ctrl-C; long operations stop and clean up.
    pub cancel: Cancel,
    /// Per-task time limit for containers.
    pub task_timeout: Option<std::time::Duration>,
    /// Never contact the remote (changes wait for `registry push`).
    pub offline: bool,
    /// Verify from scratch: no memo of earlier signature checks, no carry of files earlier
    /// verifications read, no comparison with the main verified before, nothing recorded
    /// (`verify --full`).
    pub full: bool,
    /// Largest predictions folder a model may write before it counts as a failure.
    pub max_output_bytes: u64,
    /// Unpacked size allowed for tarballs whose record states none (`--max-unpacked-size`;
    /// `None`: 1 GiB and 100 times the archive).
    pub max_unpacked: Option<u64>,
    /// The site's `--gpus` / `--shm-size` for every container a command runs.
    pub devices: Devices,
}

/// GPUs and shared memory chosen by the site at run time (MedPerf #238): they replace a cube's
/// own request, are recorded in the run's local record (`run.json`), never in a signed file.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Devices {
    /// `all`, a count, or `device=0,1`; `0` removes the cube's GPUs.
    pub gpus: Option<String>,
    /// Shared memory, e.g. `2g`.
    pub shm_size: Option<String>,
}

/// The default cap on a model's predictions.
pub const DEFAULT_MAX_OUTPUT_BYTES: u64 = 1 << 30;

/// Whether the `git` program can run, found out the first time a remote needs to know: a
/// command that never talks to a remote (a listing, a view) starts no process to ask.
#[derive(Debug)]
pub enum GitProgram {
    Known(bool),
    Ask(std::sync::OnceLock<bool>),
}

impl GitProgram {
    /// Asked on first use (`git --version`).
    pub fn ask() -> GitProgram {
        GitProgram::Ask(std::sync::OnceLock::new())
    }

    pub fn available(&self) -> bool {
        match self {
            GitProgram::Known(known) => *known,
            GitProgram::Ask(answer) => *answer.get_or_init(|| {
                std::process::Command::new("git")
                    .arg("--version")
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            }),
        }
    }
}

#[cfg(test)]
static NO_GIT: GitProgram = GitProgram::Known(false);

#[cfg(test)]
impl<'a> Ctx<'a> {
    /// An offline, silent context over `home` for unit tests that need no Docker or remote.
    pub(crate) fn offline_for_tests(home: &'a Home) -> Ctx<'a> {
        Ctx {
            home,
            reporter: &crate::progress::Silent,
            now: SystemTime::now(),
            git: &NO_GIT,
            transport: None,
            docker_host: None,
            docker_config: None,
            net: NetConfig::default(),
            cancel: Cancel::new(),
            task_timeout: None,
            offline: true,
            full: false,
            max_output_bytes: 1,
            max_unpacked: None,
            devices: Default::default(),
        }
    }
}

impl Ctx<'_> {
    pub fn timestamp(&self) -> String {
        crate::model::ids::timestamp(self.now)
    }
    /// How to reach the remote at `url`. Offline (`--offline`), the remote is never contacted:
    /// the refusal is an environment error, so writes stay local as for an unreachable remote.
    pub fn transport_for(&self, url: &str) -> Result<Transport, WorkflowError> {
        if self.offline {
            return Err(RegistryError::Remote {
                remote: url.to_string(),
                why: "not contacted: offline (--offline or COHORT_OFFLINE=1)".into(),
            }
            .into());
        }
        match self.transport {
            Some(t) => Ok(t),
            None => Ok(Transport::for_url(url, self.git.available())?),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Trust(#[from] TrustError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Mlcube(#[from] mlcube::Error),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Bundle(#[from] bundle::BundleError),
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    NotFound(String),
    /// The signer may not do this (checked before any work starts).
    #[error(transparent)]
    Denied(#[from] permission::Denied),
    /// A named entity is not on main (does not exist, or waits on a branch).
    #[error(transparent)]
    Unknown(#[from] lookup::Unknown),
    /// A refusal with what to do instead (the CLI prints it as a `hint:` line).
    #[error("{message}")]
    RefusedBecause { message: String, hint: String },
    /// A model failed during a benchmark run (its failure receipt is kept); the runs so far.
    #[error(
        "model {model} failed; its failure receipt was kept (use --ignore-model-errors to run the other models anyway)"
    )]
    ModelFailed {
        model: String,
        runs: Box<Vec<execution::ModelRun>>,
    },
    /// A submission carries a sealed payload the merging member may not or cannot vouch for.
    #[error("{file}: {why}; not merging it")]
    SealedRefused {
        file: String,
        code: unseal::SealRefusal,
        why: String,
    },
    /// Verification found problems; they are listed.
    #[error("{summary}")]
    Problems {
        summary: String,
        problems: Vec<Problem>,
    },
}

impl WorkflowError {
    pub fn is_environment(&self) -> bool {
        match self {
            WorkflowError::Registry(e) => e.is_environment(),
            WorkflowError::Mlcube(e) => e.is_environment(),
            WorkflowError::Storage(e) => e.is_environment(),
            _ => false,
        }
    }
}

pub type Result<T, E = WorkflowError> = std::result::Result<T, E>;

/// Obtains an unlocked signer for a handle (the CLI prompts or reads the passphrase).
pub type Unlock<'a> = dyn FnMut(&str) -> Result<crate::trust::Signer> + 'a;
