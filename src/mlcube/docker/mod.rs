//! The container runtime: the [`ContainerRuntime`] trait the workflow programs against, and
//! [`DockerRuntime`], its Docker Engine implementation through bollard (local socket or
//! DOCKER_HOST, API version negotiated down to the Engine's). Synchronous on the outside: it
//! owns a small tokio runtime and blocks on it, so callers need no async.

pub mod auth;
mod image;
mod log;
mod run;
mod spec;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bollard::Docker;
use sha2::{Digest, Sha256};

pub use log::DEFAULT_LOG_LIMIT;
pub use run::container_name;
pub use spec::{
    RUN_LABEL, container_body, device_request, is_digest_reference, normalize_image_id,
    pull_options,
};

use super::error::Error;
use super::plan::{BuildStrategy, Plan};
use super::prepare::prepare_host;
use crate::progress::{Cancel, Reporter};

/// Where a plan runs.
pub trait ContainerRuntime {
    /// The id (`sha256:...`, as `docker inspect` reports it) of the image a reference names.
    fn image_id(&self, reference: &str) -> Result<Option<String>, Error>;
    /// Builds an image from a context folder and Dockerfile; returns its id.
    fn build_image(
        &self,
        context: &Path,
        dockerfile: &Path,
        tag: &str,
        build_args: &[(String, String)],
        reporter: &dyn Reporter,
    ) -> Result<String, Error>;
    /// Loads a `docker save` tarball after checking its sha256; returns the loaded ids.
    fn load_tarball(
        &self,
        path: &Path,
        sha256: &str,
        reporter: &dyn Reporter,
    ) -> Result<Vec<String>, Error>;
    /// Pulls a reference (registered cubes use `repo@sha256:...`); returns the image id.
    fn pull(&self, reference: &str, reporter: &dyn Reporter) -> Result<String, Error>;
    /// Removes an image (absent is fine).
    fn remove_image(&self, reference: &str) -> Result<(), Error>;
    /// The size in bytes the engine reports for an image; `None` when absent or unknown.
    fn image_size(&self, _reference: &str) -> Result<Option<u64>, Error> {
        Ok(None)
    }
    /// Runs a planned task: checks inputs and creates output folders ([`prepare_host`]),
    /// resolves and checks the image id, runs the container by id and removes it.
    fn run(
        &self,
        plan: &Plan,
        spec: &RunSpec,
        reporter: &dyn Reporter,
        cancel: &Cancel,
    ) -> Result<RunOutcome, Error>;
}

/// How to run a plan (what is not part of the MLCube semantics).
#[derive(Debug, Clone, PartialEq)]
pub struct RunSpec {
    /// The task's log file (created, parents too).
    pub log_path: PathBuf,
    /// The image reference to run; the plan's `image` when `None`.
    pub image: Option<String>,
    /// The recorded image id; the run is refused when the image's id differs.
    pub expected_image_id: Option<String>,
    /// Cap on the log file; output past it is discarded (and noted in the file).
    pub log_limit: u64,
    /// How long a stopped container gets between SIGTERM and SIGKILL.
    pub stop_grace: Duration,
    /// The value of the container's `org.cohort.run` label; random when `None`.
    pub run_id: Option<String>,
    /// A folder only the caller can enter (in cohort's home) for the record of what each run
    /// hands the container's user: a run killed with SIGKILL is finished by the next one
    /// (owners given back, its container removed). `None` keeps no record.
    pub access_records: Option<PathBuf>,
}

impl RunSpec {
    pub fn new(log_path: impl Into<PathBuf>) -> RunSpec {
        RunSpec {
            log_path: log_path.into(),
            image: None,
            expected_image_id: None,
            log_limit: DEFAULT_LOG_LIMIT,
            stop_grace: Duration::from_secs(5),
            run_id: None,
            access_records: None,
        }
    }
}

/// What happened when a task ran (a non-zero exit is an outcome, not an error: the workflow
/// records failing models; [`RunOutcome::check`] turns it into an [`Error`]).
#[derive(Debug, Clone, PartialEq)]
pub struct RunOutcome {
    pub cube: String,
    pub task: String,
    pub exit_code: i64,
    pub duration: Duration,
    pub timed_out: bool,
    pub timeout: Option<Duration>,
    pub log_path: PathBuf,
    pub log_truncated: bool,
    pub container_id: String,
    pub run_id: String,
    pub image_id: String,
}

impl RunOutcome {
    /// `Ok` for a task that exited 0 within its time.
    pub fn check(&self) -> Result<(), Error> {
        if self.timed_out {
            return Err(Error::TimedOut {
                cube: self.cube.clone(),
                task: self.task.clone(),
                after: self.timeout.unwrap_or(self.duration),
                log: self.log_path.clone(),
            });
        }
        if self.exit_code != 0 {
            return Err(Error::TaskFailed {
                cube: self.cube.clone(),
                task: self.task.clone(),
                code: self.exit_code,
                log: self.log_path.clone(),
            });
        }
        Ok(())
    }
}

/// What `cohort doctor` reports about the Engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineInfo {
    pub host: String,
    pub version: String,
    pub api_version: String,
    pub os: String,
    pub arch: String,
}

/// The Docker Engine through bollard.
pub struct DockerRuntime {
    docker: Docker,
    rt: tokio::runtime::Runtime,
    host: String,
    scratch: Option<PathBuf>,
    /// The Docker client configuration credentials come from (None: no credentials).
    docker_config: Option<PathBuf>,
    /// Never pull or push (`--offline`): the Engine would reach an image registry.
    offline: bool,
}

impl std::fmt::Debug for DockerRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerRuntime")
            .field("host", &self.host)
            .finish()
    }
}

const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";

impl DockerRuntime {
    /// Connects to `docker_host` (`unix:///path`, `tcp://host:port`, a socket path; the local
    /// socket when `None`) and negotiates the API version.
    pub fn connect(docker_host: Option<&str>) -> Result<DockerRuntime, Error> {
        let host = docker_host
            .filter(|h| !h.is_empty())
            .unwrap_or(DEFAULT_HOST)
            .to_string();
        let unreachable = |message: String| Error::DockerUnreachable {
            host: host.clone(),
            message,
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| unreachable(format!("cannot start the I/O runtime: {e}")))?;
        let docker = rt.block_on(async {
            let client = if let Some(path) = host.strip_prefix("unix://") {
                Docker::connect_with_unix(path, 120, bollard::API_DEFAULT_VERSION)
            } else if host.starts_with('/') {
                Docker::connect_with_unix(&host, 120, bollard::API_DEFAULT_VERSION)
            } else if host.starts_with("tcp://") || host.starts_with("http://") {
                Docker::connect_with_http(&host, 120, bollard::API_DEFAULT_VERSION)
            } else {
                return Err(unreachable(
                    "unsupported address (use unix:// or tcp://)".into(),
                ));
            }
            .map_err(|e| unreachable(describe(&e)))?;
            match tokio::time::timeout(Duration::from_secs(15), client.negotiate_version()).await {
                Ok(Ok(d)) => Ok(d),
                Ok(Err(e)) => Err(unreachable(describe(&e))),
                Err(_) => Err(unreachable("no answer within 15 seconds".into())),
            }
        })?;
        Ok(DockerRuntime {
            docker,
            rt,
            host,
            scratch: None,
            docker_config: None,
            offline: false,
        })
    }

    /// Where temporary files (build context tarballs) go; the system temp folder when unset.
    /// The CLI points it into cohort's local storage.
    pub fn set_scratch_dir(&mut self, dir: impl Into<PathBuf>) {
        self.scratch = Some(dir.into());
    }

    /// The Docker client configuration (`config.json`) registry credentials come from; the
    /// CLI resolves `$DOCKER_CONFIG` or `~/.docker` and passes the file in.
    pub fn set_docker_config(&mut self, path: Option<PathBuf>) {
        self.docker_config = path;
    }

    /// Offline (`--offline`, an air-gapped site): pulls and pushes are refused before the
    /// Engine is asked, since the Engine would reach an image registry for them.
    pub fn set_offline(&mut self, offline: bool) {
        self.offline = offline;
    }

    fn refuse_offline(&self, reference: &str) -> Result<(), Error> {
        if !self.offline {
            return Ok(());
        }
        Err(Error::Offline {
            image: reference.to_string(),
            host: auth::registry_host(reference),
        })
    }

    fn credentials(
        &self,
        reference: &str,
    ) -> Result<Option<bollard::auth::DockerCredentials>, Error> {
        auth::credentials_for(
            self.docker_config.as_deref(),
            &auth::registry_host(reference),
        )
    }

    /// Tags `image_id` as `repo:tag`, pushes it with the user's credentials for the repo's
    /// host, and returns the digest reference (`repo@sha256:...`) to record.
    pub fn push(
        &self,
        image_id: &str,
        repo: &str,
        tag: &str,
        reporter: &dyn Reporter,
    ) -> Result<String, Error> {
        self.refuse_offline(repo)?;
        let creds = self.credentials(repo)?;
        self.rt.block_on(image::push(
            &self.docker,
            image_id,
            repo,
            tag,
            creds,
            reporter,
        ))
    }

    /// The repository tags an image carries (empty when it has none or is absent).
    pub fn image_tags(&self, reference: &str) -> Result<Vec<String>, Error> {
        self.rt.block_on(image::tags(&self.docker, reference))
    }

    /// Writes the image `image_id` as a `docker save` tarball to `dest`.
    pub fn save(&self, image_id: &str, dest: &Path) -> Result<(), Error> {
        self.rt.block_on(image::save(&self.docker, image_id, dest))
    }

    /// Streams the image `image_id` as a `docker save` tarball into `out`.
    pub fn save_to(&self, image_id: &str, out: &mut dyn std::io::Write) -> Result<(), Error> {
        self.rt
            .block_on(image::save_to(&self.docker, image_id, out))
    }

    /// Loads a `docker save` stream read from `reader` (never written to disk); returns the
    /// loaded image ids.
    pub fn load_reader(
        &self,
        reader: impl std::io::Read + Send + 'static,
        label: &str,
        reporter: &dyn Reporter,
    ) -> Result<Vec<String>, Error> {
        self.rt
            .block_on(image::load_reader(&self.docker, reader, label, reporter))
    }

    /// The address this runtime talks to.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The Engine's version and platform.
    pub fn engine_info(&self) -> Result<EngineInfo, Error> {
        let v = self
            .rt
            .block_on(self.docker.version())
            .map_err(|e| docker_err("reading the Engine version", e))?;
        Ok(EngineInfo {
            host: self.host.clone(),
            version: v.version.unwrap_or_default(),
            api_version: v.api_version.unwrap_or_default(),
            os: v.os.unwrap_or_default(),
            arch: v.arch.unwrap_or_default(),
        })
    }

    /// Ids of containers carrying `org.cohort.run` (any value, or this one), running or not.
    pub fn labelled_containers(&self, run_id: Option<&str>) -> Result<Vec<String>, Error> {
        let label = match run_id {
            Some(r) => format!("{RUN_LABEL}={r}"),
            None => RUN_LABEL.to_string(),
        };
        let filters = std::collections::HashMap::from([("label".to_string(), vec![label])]);
        let list = self
            .rt
            .block_on(self.docker.list_containers(Some(
                bollard::query_parameters::ListContainersOptions {
                    all: true,
                    filters: Some(filters),
                    ..Default::default()
                },
            )))
            .map_err(|e| docker_err("listing containers", e))?;
        Ok(list.into_iter().filter_map(|c| c.id).collect())
    }

    /// Checks the Engine can create a container: imports an empty image, creates (never
    /// starts) a container from it, removes both.
    pub fn can_create_container(&self) -> Result<(), Error> {
        self.rt.block_on(async {
            let tag = new_run_id();
            let empty_tar = vec![0u8; 1024];
            let mut s = self.docker.create_image(
                Some(bollard::query_parameters::CreateImageOptions {
                    from_src: Some("-".into()),
                    repo: Some("cohort-probe".into()),
                    tag: Some(tag.clone()),
                    ..Default::default()
                }),
                Some(bollard::body_full(empty_tar.into())),
                None,
            );
            use futures_util::StreamExt;
            while let Some(item) = s.next().await {
                item.map_err(|e| docker_err("importing a probe image", e))?;
            }
            let reference = format!("cohort-probe:{tag}");
            let created = self
                .docker
                .create_container(
                    None::<bollard::query_parameters::CreateContainerOptions>,
                    bollard::models::ContainerCreateBody {
                        image: Some(reference.clone()),
                        cmd: Some(vec!["/probe".into()]),
                        labels: Some(std::collections::HashMap::from([(
                            RUN_LABEL.to_string(),
                            tag.clone(),
                        )])),
                        host_config: Some(bollard::models::HostConfig {
                            network_mode: Some("none".into()),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                )
                .await;
            let removed = match &created {
                Ok(c) => run::ensure_removed(&self.docker, &c.id, false).await,
                Err(_) => Ok(()),
            };
            let image_removed = image::remove(&self.docker, &reference).await;
            created.map_err(|e| docker_err("creating a probe container", e))?;
            removed?;
            image_removed
        })
    }
}

/// `cohort doctor`'s check: the Engine is reachable, its version, and it can create a
/// container.
pub fn probe(docker_host: Option<&str>) -> Result<EngineInfo, Error> {
    let rt = DockerRuntime::connect(docker_host)?;
    let info = rt.engine_info()?;
    rt.can_create_container()?;
    Ok(info)
}

impl ContainerRuntime for DockerRuntime {
    fn image_id(&self, reference: &str) -> Result<Option<String>, Error> {
        self.rt.block_on(image::image_id(&self.docker, reference))
    }

    fn build_image(
        &self,
        context: &Path,
        dockerfile: &Path,
        tag: &str,
        build_args: &[(String, String)],
        reporter: &dyn Reporter,
    ) -> Result<String, Error> {
        self.rt.block_on(image::build(
            &self.docker,
            self.scratch.as_deref(),
            context,
            dockerfile,
            tag,
            build_args,
            reporter,
        ))
    }

    fn load_tarball(
        &self,
        path: &Path,
        sha256: &str,
        reporter: &dyn Reporter,
    ) -> Result<Vec<String>, Error> {
        self.rt
            .block_on(image::load_tarball(&self.docker, path, sha256, reporter))
    }

    fn pull(&self, reference: &str, reporter: &dyn Reporter) -> Result<String, Error> {
        self.refuse_offline(reference)?;
        let creds = self.credentials(reference)?;
        self.rt
            .block_on(image::pull(&self.docker, reference, creds, reporter))
    }

    fn remove_image(&self, reference: &str) -> Result<(), Error> {
        self.rt.block_on(image::remove(&self.docker, reference))
    }

    fn image_size(&self, reference: &str) -> Result<Option<u64>, Error> {
        self.rt.block_on(image::size(&self.docker, reference))
    }

    fn run(
        &self,
        plan: &Plan,
        spec: &RunSpec,
        reporter: &dyn Reporter,
        cancel: &Cancel,
    ) -> Result<RunOutcome, Error> {
        prepare_host(plan)?;
        let reference = spec
            .image
            .clone()
            .unwrap_or_else(|| plan.invocation.image.clone());
        let id = self
            .image_id(&reference)?
            .ok_or_else(|| Error::ImageUnavailable {
                image: reference.clone(),
                message: "no such image in the Docker Engine".into(),
                hint: "build, load or pull it first".into(),
            })?;
        if let Some(expected) = &spec.expected_image_id {
            let expected = normalize_image_id(expected);
            if expected != id {
                return Err(Error::ImageIdMismatch {
                    image: reference,
                    expected,
                    actual: id,
                });
            }
        }
        let run_id = spec.run_id.clone().unwrap_or_else(new_run_id);
        self.rt.block_on(run::run(
            &self.docker,
            plan,
            spec,
            &id,
            &run_id,
            reporter,
            cancel,
        ))
    }
}

/// Makes sure a local cube's image exists, as 0.0.9's build strategy decides: `pull` pulls a
/// missing image, `auto` builds a missing image from the Dockerfile when there is one (else
/// pulls), `always` builds (or pulls) every time. Returns the image id.
pub fn ensure_image(
    runtime: &dyn ContainerRuntime,
    plan: &Plan,
    reporter: &dyn Reporter,
) -> Result<String, Error> {
    let image = &plan.invocation.image;
    let b = &plan.image_build;
    let present = runtime.image_id(image)?;
    if let Some(id) = present.filter(|_| b.strategy != BuildStrategy::Always) {
        return Ok(id);
    }
    let recipe = b.dockerfile.is_file();
    if b.strategy == BuildStrategy::Pull || !recipe {
        return runtime.pull(image, reporter).map_err(|e| match e {
            Error::ImageUnavailable { image, message, .. } => Error::ImageUnavailable {
                image,
                message,
                hint: if recipe {
                    format!(
                        "build it from {} with -Pdocker.build_strategy=auto (the cube's build strategy is pull)",
                        b.dockerfile.display()
                    )
                } else {
                    format!(
                        "there is no {} to build it from; load or pull the image, or fix docker.image",
                        b.dockerfile.display()
                    )
                },
            },
            other => other,
        });
    }
    runtime.build_image(&b.context, &b.dockerfile, image, &b.build_args, reporter)
}

/// A fresh random-enough id for labels and names: process, time and a counter, hashed.
pub fn new_run_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = Sha256::new();
    h.update(std::process::id().to_le_bytes());
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    h.update(now.as_nanos().to_le_bytes());
    h.update(COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    hex::encode(h.finalize())[..32].to_string()
}

pub(crate) fn is_not_found(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

pub(crate) fn docker_err(action: &str, e: bollard::errors::Error) -> Error {
    Error::Docker {
        action: action.to_string(),
        message: describe(&e),
    }
}

/// bollard's errors, shortened to the part a user can act on.
fn describe(e: &bollard::errors::Error) -> String {
    use bollard::errors::Error as B;
    match e {
        B::DockerResponseServerError {
            message,
            status_code,
        } => format!("{message} (HTTP {status_code})"),
        B::SocketNotFoundError(path) => format!("no socket at {path}"),
        B::RequestTimeoutError => "the Engine did not answer in time".into(),
        other => {
            // hyper wraps the OS error several levels deep ("Error in the hyper legacy
            // client: client error (Connect): ..."): only the innermost cause means anything
            // to a user.
            if let Some(io) = crate::storage::innermost_io(other) {
                return crate::storage::plain_io(io);
            }
            let mut source = std::error::Error::source(other);
            let mut inner = other.to_string();
            while let Some(s) = source {
                inner = s.to_string();
                source = s.source();
            }
            format!("the Engine's answer could not be read ({inner})")
        }
    }
}
