//! Running registered cubes: materialise a cube version from the registry (its mlcube.yaml or
//! container_config.yaml,
//! parameters and additional files, every asset re-checked against the recorded sha256, cached
//! ones too), make sure its image is present with the recorded id, and run one task in strict
//! mode with every data input and output in per-run folders.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::mlcube::{
    self, Config, ContainerRuntime, DockerRuntime, HostPath, Mode, PathKind, RunOutcome,
    RunRequest, RunSpec, RunnerOptions,
};
use crate::model::{self, CubeFile, ImageSource, Mlcube, Sha256, build};
use crate::storage::{Acquired, ExtractLimits, LedgerEntry};
use crate::trust::Index;

use super::{Ctx, Result, WorkflowError};

mod workspace;

pub(crate) use workspace::private_dir;
use workspace::{fresh_workspace, refuse_links};

/// Notes an image cohort put into the engine, so `storage cleanup` may remove it later. A
/// failure to note it only costs that: the image stays until removed by hand.
pub(super) fn remember(ctx: &Ctx, id: &str, reference: &str, how: Acquired) {
    let entry = LedgerEntry {
        id: id.to_string(),
        reference: reference.to_string(),
        how,
        at: ctx.timestamp(),
    };
    if let Err(e) = ctx.home.image_ledger().record(entry) {
        ctx.reporter.warn(&format!(
            "image {id} not recorded for `cohort storage cleanup`: {e}"
        ));
    }
}

/// A cube ready to run: its configuration (rooted in a private folder), its workspace template
/// and the image id containers are created from.
pub struct LocalCube {
    pub name: String,
    pub label: String,
    pub config: Config,
    /// The folder holding the configuration and the workspace template.
    pub dir: PathBuf,
    /// `docker inspect` id of the image; containers are created by this id.
    pub image_id: String,
    /// The registry record, for registered cubes.
    pub record: Option<Mlcube>,
    /// Whether the image is a private model's, decrypted for this run (or left over at a site
    /// other than its owner's): it is removed after the run.
    pub private_loaded: bool,
    /// The additional-files tarball in the cache (extracted into each run's workspace) and
    /// the limits its record sets on extraction.
    additional: Option<Additional>,
    /// A private model's decrypted `parameters.yaml`, held in memory and written into each
    /// task's workspace only for that task.
    secret_parameters: Option<Vec<u8>>,
}

/// Where a run's additional files come from.
enum Additional {
    /// A plain tarball in the cache.
    Plain(PathBuf, ExtractLimits),
    /// A private model's ciphertext in the cache, decrypted as a stream into the extractor
    /// with the model key; the extracted files leave the workspace after each task.
    Private {
        ciphertext: PathBuf,
        key: age::x25519::Identity,
        limits: ExtractLimits,
    },
}

/// One task to run with its data placed at host paths.
pub struct TaskRun<'a> {
    pub task: &'a str,
    pub paths: Vec<(&'a str, PathBuf, PathKind)>,
    pub timeout: Option<Duration>,
}

/// The container runtime plus where runs and logs go.
pub struct Engine {
    pub runtime: DockerRuntime,
    /// The site's key for private models (their owner's copy, or a grant for this dataset);
    /// `None`: private models are refused.
    pub private: Option<super::private::SiteKey>,
}

impl Engine {
    pub fn connect(ctx: &Ctx) -> Result<Engine> {
        let mut runtime = DockerRuntime::connect(ctx.docker_host.as_deref())?;
        runtime.set_scratch_dir(ctx.home.tmp_dir());
        runtime.set_docker_config(ctx.docker_config.clone());
        runtime.set_offline(ctx.offline);
        Ok(Engine {
            runtime,
            private: None,
        })
    }

    /// Materialises a registered cube version from the index, re-checking every asset.
    pub fn registered(&self, ctx: &Ctx, ix: &Index, r: &model::CubeRef) -> Result<LocalCube> {
        let path = ix.resolves_cube(r).ok_or_else(|| {
            WorkflowError::NotFound(format!(
                "cube {} v{} (sha256 {}) is not in the registry",
                r.name,
                r.version,
                r.sha256.short()
            ))
        })?;
        let Some(model::Record::Mlcube(rec)) = ix.record(path) else {
            return Err(WorkflowError::NotFound(format!(
                "{path} is not a cube record"
            )));
        };
        let dir = ctx.home.root().join("cubes").join(&r.name).join(format!(
            "v{}-{}",
            r.version,
            r.sha256.short()
        ));
        let (config_file, want) = rec.config_file();
        let yaml_path = build::mlcube_file(&r.name, r.version, config_file);
        let yaml = ix
            .bytes(&yaml_path)
            .ok_or_else(|| WorkflowError::NotFound(format!("{yaml_path} is missing")))?;
        if &Sha256::of(yaml) != want {
            return Err(WorkflowError::Refused(format!(
                "{yaml_path} does not match the sha256 in {path}"
            )));
        }
        let io = |e: std::io::Error| WorkflowError::Refused(format!("{}: {e}", dir.display()));
        // Before this folder is written again: a version of cohort that let containers write
        // here (issue 14) may have left a link in it.
        refuse_links(ctx.home.root(), &dir.join("workspace/parameters.yaml"))?;
        std::fs::create_dir_all(dir.join("workspace")).map_err(io)?;
        let config_path = dir.join(config_file.file_name());
        crate::storage::write_atomic(&config_path, yaml).map_err(io)?;
        if let Some(want) = &rec.parameters_yaml {
            let p = build::mlcube_file(&r.name, r.version, CubeFile::ParametersYaml);
            let bytes = ix
                .bytes(&p)
                .ok_or_else(|| WorkflowError::NotFound(format!("{p} is missing")))?;
            if &Sha256::of(bytes) != want {
                return Err(WorkflowError::Refused(format!(
                    "{p} does not match the sha256 in {path}"
                )));
            }
            crate::storage::write_atomic(&dir.join("workspace/parameters.yaml"), bytes)
                .map_err(io)?;
        }
        let additional = match &rec.additional_files {
            Some(asset) => {
                let got = super::assets::fetch(ctx, ix, asset)?;
                let limits =
                    ExtractLimits::for_asset(asset.unpacked_size, asset.files, ctx.max_unpacked);
                Some(Additional::Plain(got.path, limits))
            }
            None => None,
        };
        let additional = match rec.image.private.as_ref().and_then(|p| p.files.as_ref()) {
            Some(asset) => {
                // No key: the image step below refuses with the reason.
                let key = self
                    .private
                    .as_ref()
                    .and_then(|site| super::private::model_key(ix, rec, site));
                match key {
                    Some(key) => {
                        let got = super::assets::fetch(ctx, ix, asset)?;
                        Some(Additional::Private {
                            ciphertext: got.path,
                            key,
                            limits: ExtractLimits::for_asset(
                                asset.unpacked_size,
                                asset.files,
                                ctx.max_unpacked,
                            ),
                        })
                    }
                    None => None,
                }
            }
            None => additional,
        };
        let secret_parameters = match rec
            .image
            .private
            .as_ref()
            .and_then(|p| p.parameters.as_ref())
        {
            Some(asset) => match self
                .private
                .as_ref()
                .and_then(|site| super::private::model_key(ix, rec, site))
            {
                Some(key) => {
                    let got = super::assets::fetch(ctx, ix, asset)?;
                    let label = format!("the encrypted parameters of {} v{}", r.name, r.version);
                    Some(super::private::open_parameters(&got.path, &key, &label)?)
                }
                None => None,
            },
            None => None,
        };
        let mut config = Config::load(&config_path)?;
        config.set_label(format!("{} v{}", r.name, r.version));
        let (image_id, private_loaded) = self.ensure_registered_image(ctx, ix, rec)?;
        Ok(LocalCube {
            private_loaded,
            name: r.name.clone(),
            label: format!("{} v{}", r.name, r.version),
            config,
            dir,
            image_id,
            record: Some(rec.clone()),
            additional,
            secret_parameters,
        })
    }

    /// Makes sure the image of a registered cube is present with exactly the recorded id; says
    /// whether a private image was decrypted into the Engine for this run.
    fn ensure_registered_image(
        &self,
        ctx: &Ctx,
        ix: &Index,
        rec: &Mlcube,
    ) -> Result<(String, bool)> {
        if rec.image.source == ImageSource::Encrypted {
            return self.ensure_private_image(ctx, ix, rec);
        }
        self.ensure_public_image(ctx, ix, rec).map(|id| (id, false))
    }

    /// A private image: decrypted with the site's key as a stream into the Engine.
    fn ensure_private_image(&self, ctx: &Ctx, ix: &Index, rec: &Mlcube) -> Result<(String, bool)> {
        let want = &rec.image.id;
        let cube = format!("{} v{}", rec.name, rec.version);
        let p = rec
            .image
            .private
            .as_ref()
            .expect("validated: encrypted images name [image.private]");
        let key = self
            .private
            .as_ref()
            .and_then(|site| super::private::model_key(ix, rec, site))
            .ok_or_else(|| WorkflowError::RefusedBecause {
                message: format!("cube {cube} is a private model and you hold no key for it here"),
                hint: format!(
                    "its owner {} grants it per dataset (`cohort mlcube grant`)",
                    rec.owner
                ),
            })?;
        if self.runtime.image_id(want)?.as_deref() == Some(want.as_str()) {
            // The owner's own image stays; anywhere else it is a leftover (an interrupted
            // run) and leaves with this run.
            let owner = self.private.as_ref().is_some_and(|s| s.handle == rec.owner);
            return Ok((want.clone(), !owner));
        }
        let got = super::assets::fetch(ctx, ix, &p.ciphertext)?;
        let ids = super::private::load(ctx, &self.runtime, &got.path, &key, &cube)?;
        if ids.iter().any(|i| i == want) {
            Ok((want.clone(), true))
        } else {
            for id in &ids {
                let _ = self.runtime.remove_image(id);
            }
            Err(WorkflowError::Refused(format!(
                "cube {cube}: the ciphertext holds {}, not the recorded image {want}",
                ids.join(", ")
            )))
        }
    }

    fn ensure_public_image(&self, ctx: &Ctx, ix: &Index, rec: &Mlcube) -> Result<String> {
        let want = &rec.image.id;
        let cube = format!("{} v{}", rec.name, rec.version);
        if self.runtime.image_id(want)?.as_deref() == Some(want.as_str()) {
            if rec.image.source == ImageSource::Local {
                // Said plainly at every run: other sites cannot get this image.
                ctx.reporter.warn(&format!(
                    "cube {cube}: its image is local-only (--local-only); it runs here because {want} is on this machine, other sites cannot get it"
                ));
            }
            return Ok(want.clone());
        }
        // An air-gapped site: the image came in a bundle and a copy was kept.
        if super::bundle::reload_kept_image(ctx, &self.runtime, want)? {
            remember(ctx, want, want, Acquired::Loaded);
            return Ok(want.clone());
        }
        match rec.image.source {
            ImageSource::Local => Err(WorkflowError::Refused(format!(
                "cube {cube}: its image is local-only (submitted with --local-only for a registry used on one machine): {want} must already be on this machine, and it is not; ask {} to publish the image (`cohort mlcube submit --push REPO` or --image-tarball) as a new version",
                rec.owner
            ))),
            ImageSource::Tarball => {
                let asset = rec
                    .image
                    .tarball
                    .as_ref()
                    .expect("validated: tarball images name a tarball");
                let got = super::assets::fetch(ctx, ix, asset)?;
                // The id is computed from a plain `docker save` tarball first: one that is not
                // the recorded image is never loaded. (A compressed one, which the Engine also
                // loads, is checked after loading.)
                if let Ok(held) = super::bundle::image_id_of_tarball(&got.path)
                    && !held.contains(want)
                {
                    return Err(WorkflowError::Refused(format!(
                        "cube {cube}: the image tarball holds {}, not the recorded image {want}",
                        held.join(", ")
                    )));
                }
                let ids =
                    self.runtime
                        .load_tarball(&got.path, asset.sha256.as_str(), ctx.reporter)?;
                if ids.iter().any(|i| i == want) {
                    remember(ctx, want, asset.describe(), Acquired::Loaded);
                    Ok(want.clone())
                } else {
                    Err(WorkflowError::Refused(format!(
                        "cube {cube}: the image tarball holds {}, not the recorded image {want}",
                        ids.join(", ")
                    )))
                }
            }
            ImageSource::Encrypted => unreachable!("private images take ensure_private_image"),
            ImageSource::Pull => {
                let reference = rec
                    .image
                    .reference
                    .as_deref()
                    .expect("validated: pulled images name a reference");
                let had = self.runtime.image_id(reference)?;
                pull_allowed(ctx, reference)?;
                let got = self.runtime.pull(reference, ctx.reporter)?;
                if &got == want {
                    remember(ctx, &got, reference, Acquired::Pulled);
                    Ok(got)
                } else {
                    // Not the recorded image: it leaves the store unless it was already here.
                    if had.is_none() {
                        let _ = self.runtime.remove_image(&got);
                    }
                    Err(WorkflowError::Refused(format!(
                        "cube {cube}: {reference} is image {got}, not the recorded {want}"
                    )))
                }
            }
        }
    }

    /// A local, not yet submitted cube (compatibility tests): its own folder and image, built
    /// from its Dockerfile when missing.
    pub fn local(&self, ctx: &Ctx, path: &Path) -> Result<LocalCube> {
        let config = Config::load(path)?;
        if let Err(v) = config.check_strict() {
            return Err(WorkflowError::Refused(format!(
                "{} breaks the rules for registered cubes: {}",
                config.label(),
                v.iter()
                    .map(|x| x.to_string())
                    .collect::<Vec<_>>()
                    .join("; ")
            )));
        }
        let first =
            config.tasks().into_iter().next().ok_or_else(|| {
                WorkflowError::Refused(format!("{} has no tasks", config.label()))
            })?;
        let plan = config.plan(&RunRequest::new(first), &|_| None, ctx.home.root())?;
        let image_id = match self.runtime.image_id(&plan.invocation.image)? {
            Some(id) => id,
            None if plan.image_build.dockerfile.is_file() => self.build(ctx, &plan)?,
            None => {
                let id = mlcube::ensure_image(&self.runtime, &plan, ctx.reporter)?;
                remember(ctx, &id, &plan.invocation.image, Acquired::Pulled);
                id
            }
        };
        let dir = config.root().to_path_buf();
        Ok(LocalCube {
            name: config.label().to_string(),
            label: format!("{} (local)", config.label()),
            config,
            dir,
            image_id,
            private_loaded: false,
            record: None,
            additional: None,
            secret_parameters: None,
        })
    }

    /// Builds a local cube's image from its Dockerfile (tagged as mlcube.yaml names it).
    pub fn build(&self, ctx: &Ctx, plan: &mlcube::Plan) -> Result<String> {
        let b = &plan.image_build;
        if !b.dockerfile.is_file() {
            return Err(WorkflowError::Refused(format!(
                "{}: no Dockerfile at {} to build the image from",
                plan.cube,
                b.dockerfile.display()
            )));
        }
        let id = self.runtime.build_image(
            &b.context,
            &b.dockerfile,
            &plan.invocation.image,
            &b.build_args,
            ctx.reporter,
        )?;
        remember(ctx, &id, &plan.invocation.image, Acquired::Built);
        Ok(id)
    }

    /// Runs one task of `cube` in strict mode inside `run_dir` (which gets a fresh workspace),
    /// logging to `logs/<cube>-<task>.log` there. Returns the outcome (non-zero exits included).
    pub fn run_task(
        &self,
        ctx: &Ctx,
        cube: &LocalCube,
        run_dir: &Path,
        t: &TaskRun,
    ) -> Result<RunOutcome> {
        let ws = run_dir.join(format!("workspace-{}", sanitize(&cube.name)));
        let ran = self.run_in(ctx, cube, run_dir, &ws, t);
        if matches!(cube.additional, Some(Additional::Private { .. })) {
            // A private model's decrypted files stay only for the task, whatever its outcome.
            let files = ws.join("additional_files");
            if std::fs::symlink_metadata(&files).is_ok() {
                std::fs::remove_dir_all(&files)
                    .map_err(|e| WorkflowError::Refused(format!("{}: {e}", files.display())))?;
            }
        }
        if cube.secret_parameters.is_some() {
            let params = ws.join("parameters.yaml");
            if std::fs::symlink_metadata(&params).is_ok() {
                std::fs::remove_file(&params)
                    .map_err(|e| WorkflowError::Refused(format!("{}: {e}", params.display())))?;
            }
        }
        ran
    }

    fn run_in(
        &self,
        ctx: &Ctx,
        cube: &LocalCube,
        run_dir: &Path,
        ws: &Path,
        t: &TaskRun,
    ) -> Result<RunOutcome> {
        fresh_workspace(cube, ws)?;
        let mut host_paths = BTreeMap::new();
        for (name, path, kind) in &t.paths {
            if cube.config.task_has_parameter(t.task, name) {
                host_paths.insert(
                    name.to_string(),
                    HostPath {
                        path: path.clone(),
                        kind: *kind,
                    },
                );
            }
        }
        let req = RunRequest {
            task: t.task.to_string(),
            overrides: Vec::new(),
            host_paths,
            workspace: Some(ws.to_path_buf()),
            // Everything a registered cube's run creates or mounts for writing lives in
            // COHORT_HOME; below it no symbolic link is followed.
            run_root: Some(ctx.home.root().to_path_buf()),
            mode: Mode::Strict,
            options: RunnerOptions {
                timeout: t.timeout,
                gpus: ctx.devices.gpus.clone(),
                shm_size: ctx.devices.shm_size.clone(),
                ..RunnerOptions::default()
            },
        };
        let plan = cube.config.plan(&req, &|_| None, ctx.home.root())?;
        let mut spec = RunSpec::new(run_dir.join("logs").join(format!(
            "{}-{}.log",
            sanitize(&cube.name),
            t.task
        )));
        spec.image = Some(cube.image_id.clone());
        spec.expected_image_id = Some(cube.image_id.clone());
        spec.access_records = Some(ctx.home.access_dir());
        Ok(self.runtime.run(&plan, &spec, ctx.reporter, &ctx.cancel)?)
    }
}

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// Reads a cube's flat metrics output (results.yaml, statistics.yaml), refusing links, special
/// files and oversized or nested content: a cube cannot smuggle data out through it.
pub fn read_metrics(path: &Path, what: &str) -> Result<model::metrics::Metrics> {
    let meta = std::fs::symlink_metadata(path).map_err(|_| {
        WorkflowError::Refused(format!("{what}: the cube did not write {}", path.display()))
    })?;
    if !meta.file_type().is_file() {
        return Err(WorkflowError::Refused(format!(
            "{what}: {} is not a plain file (links are refused)",
            path.display()
        )));
    }
    if meta.len() > model::metrics::MAX_METRICS_BYTES as u64 {
        return Err(WorkflowError::Refused(format!(
            "{what}: {} is {} bytes; metrics files are capped at {} bytes",
            path.display(),
            meta.len(),
            model::metrics::MAX_METRICS_BYTES
        )));
    }
    let bytes = std::fs::read(path)
        .map_err(|e| WorkflowError::Refused(format!("{}: {e}", path.display())))?;
    Ok(model::metrics::parse_yaml_metrics(what, &bytes)?)
}

/// Refuses to pull `reference`, a record's image, from a registry in this site's own network
/// (see `storage::private_registry_host`), as downloads are refused, unless the site allows
/// it: otherwise a record could make every site's Docker Engine contact its own loopback or
/// intranet.
pub(crate) fn pull_allowed(ctx: &Ctx, reference: &str) -> Result<()> {
    if ctx.net.allow_private_hosts {
        return Ok(());
    }
    let host = crate::mlcube::docker::auth::registry_host(reference);
    match crate::storage::private_registry_host(&host) {
        None => Ok(()),
        Some(addr) => Err(WorkflowError::RefusedBecause {
            message: format!(
                "not pulling {reference}: its registry {host} is at {addr}, an address of this site's own network (loopback, link-local or private)"
            ),
            hint: "a record's image comes from a registry every site can reach; if your consortium's registry is on a private network, set COHORT_ALLOW_PRIVATE_HOSTS=1".into(),
        }),
    }
}
