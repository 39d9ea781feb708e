//! MLCube versions in the registry: submitting a cube (its files bound by sha256, its
//! additional files and image pinned, strict-mode rules checked at submission, not at run
//! time), and listing and viewing cubes.

use std::path::Path;

use crate::mlcube::{self, Config, ContainerRuntime, RunRequest};
use crate::model::{self, Asset, CubeFile, FORMAT_VERSION, Image, ImageSource, Sha256, build};
use crate::registry::NewFile;
use crate::storage::{ExtractLimits, extract_tarball};
use crate::trust::{Index, Signer};

use super::engine::Engine;
use super::permission::{Needs, require};
use super::registry_ops::{Opened, Submitted, submit};
use super::submission::{SubmissionKind, branch_name, record_file};
use super::{Ctx, Result, WorkflowError};

/// Where a cube's image comes from.
#[derive(Debug, Clone)]
pub enum ImageChoice {
    /// Already on this machine (or built from the cube's Dockerfile with `build`), recorded
    /// as `source = "local"`: only with `local_only` (a registry used on one machine), since
    /// no other site could get it.
    Local { build: bool, local_only: bool },
    /// The local (or built) image saved (`docker save`) into the registry as a blob, for
    /// small images.
    Save { build: bool },
    /// The local (or built) image pushed to `repo` (no tag, no digest) as
    /// `repo:<name>-v<N>` with the user's Docker credentials, recorded by digest.
    Push { repo: String, build: bool },
    /// A `docker save` tarball (URL, or a local file stored as a blob); its sha256 is recorded.
    Tarball(String),
    /// `repo@sha256:...`, pulled by digest.
    Pull(String),
    /// A private model: the local (or built) image encrypted under a fresh model key to `out`;
    /// stored in the registry when the ciphertext fits in a blob.
    Encrypt {
        build: bool,
        out: std::path::PathBuf,
    },
    /// A private model's ciphertext made earlier with `Encrypt`, uploaded to this URL.
    Encrypted(String),
}

/// What `submit_cube` did.
pub enum CubeSubmitted {
    /// The submission is on its branch.
    Submitted {
        submitted: Submitted,
        record: Box<model::Mlcube>,
        ciphertext: Option<super::private::Ciphertext>,
    },
    /// The ciphertext is written but too large for the registry: upload it, then submit again
    /// with `ImageChoice::Encrypted(URL)`.
    Upload(super::private::Ciphertext),
}

/// What to submit.
pub struct CubeSubmission<'a> {
    pub path: &'a Path,
    pub name: &'a str,
    pub description: Option<String>,
    pub additional_files: Option<(String, Option<Sha256>)>,
    pub image: ImageChoice,
}

/// Checks a cube against the rules for registered cubes; every violation in one message.
pub fn strict_or_refuse(cfg: &Config) -> Result<()> {
    cfg.check_strict().map_err(|v| {
        WorkflowError::Refused(format!(
            "{} cannot be registered: {}",
            cfg.label(),
            v.iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join("; ")
        ))
    })
}

/// The next version of `name`, refusing a name that belongs to someone else.
fn next_version(ix: &Index, name: &str, owner: &str) -> Result<u32> {
    match ix.latest_cube(name) {
        None => Ok(1),
        Some((_, c)) if c.owner != owner => Err(WorkflowError::Refused(format!(
            "the cube name `{name}` belongs to {}; choose another name",
            c.owner
        ))),
        Some((_, c)) => Ok(c.version + 1),
    }
}

/// Records a new cube version on a submission branch.
pub fn submit_cube(
    ctx: &Ctx,
    opened: &Opened,
    signer: &Signer,
    sub: &CubeSubmission,
) -> Result<CubeSubmitted> {
    model::ids::check_name("mlcube name", sub.name)?;
    let config = Config::load(sub.path)?;
    strict_or_refuse(&config)?;
    let yaml = config.text().as_bytes().to_vec();
    // MLCube keeps parameters in its workspace; MedPerf's `-p` file sits beside the config.
    let params_path = if config.is_container() {
        config.root().join("parameters.yaml")
    } else {
        config.root().join("workspace/parameters.yaml")
    };
    let mut params = match std::fs::read(&params_path) {
        Ok(b) => Some(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(WorkflowError::Refused(format!(
                "{}: {e}",
                params_path.display()
            )));
        }
    };
    let ix = opened.index()?;
    require(opened, &ix, signer, Needs::Member, "submit cubes")?;
    let version = next_version(&ix, sub.name, &signer.handle)?;
    // Blobs to store with the record: local files given for its assets.
    let mut blobs = Vec::new();
    let private = matches!(
        sub.image,
        ImageChoice::Encrypt { .. } | ImageChoice::Encrypted(_)
    );
    // A private model's tarball is encrypted under its model key below, never stored plain.
    let mut private_files = None;
    let additional_files = match &sub.additional_files {
        None => None,
        Some((source, expected)) if private => {
            private_files = Some(super::private::measure_files(
                ctx,
                source,
                expected.as_ref(),
            )?);
            None
        }
        Some((source, expected)) => {
            let resolved = super::assets::from_source(
                ctx,
                "additional files",
                source,
                expected.as_ref(),
                &super::assets::upload_hint("--additional-files"),
            )?;
            // The tarball must extract safely now, not at a hospital months later.
            let probe = tempfile::tempdir_in(ctx.home.root()).map_err(|e| {
                crate::storage::StorageError::io("create a folder in", ctx.home.root(), e)
            })?;
            let unpacked = extract_tarball(
                &resolved.fetched.path,
                &probe.path().join("x"),
                &ExtractLimits::for_asset(None, None, ctx.max_unpacked),
            )?;
            // Measured now and signed, so every site bounds its download and extraction.
            blobs.extend(resolved.blob.clone());
            Some(Asset {
                size: Some(resolved.fetched.bytes),
                unpacked_size: Some(unpacked.bytes),
                files: Some(unpacked.files.len() as u64),
                ..resolved.asset
            })
        }
    };
    let engine = Engine::connect(ctx)?;
    let first = config
        .tasks()
        .into_iter()
        .next()
        .ok_or_else(|| WorkflowError::Refused(format!("{} has no tasks", config.label())))?;
    let plan = config.plan(&RunRequest::new(first), &|_| None, ctx.home.root())?;
    let local = |build: bool| local_image(ctx, &engine, &plan, sub.name, build);
    let mut ciphertext = None;
    let mut image = match &sub.image {
        ImageChoice::Encrypt { build, out } => {
            let id = local(*build)?;
            let (ct, ready) =
                super::private::encrypt_for_submission(ctx, &engine.runtime, signer, &id, out)?;
            match ready {
                None => return Ok(CubeSubmitted::Upload(ct)),
                Some((image, blob)) => {
                    blobs.push(blob);
                    ciphertext = Some(ct);
                    image
                }
            }
        }
        ImageChoice::Encrypted(url) => super::private::from_uploaded(ctx, signer, url)?,
        ImageChoice::Local { build, local_only } => {
            if !local_only {
                return Err(WorkflowError::RefusedBecause {
                    message: format!(
                        "cube {}: an image only on this machine cannot reach other sites",
                        sub.name
                    ),
                    hint: "publish it with --push REPO (an image registry, with your `docker login`), --save-image (small images, stored in the registry) or --image-tarball URL; or pass --local-only for a registry used on one machine".into(),
                });
            }
            Image {
                id: local(*build)?,
                source: ImageSource::Local,
                reference: None,
                tarball: None,
                private: None,
            }
        }
        ImageChoice::Save { build } => {
            let id = local(*build)?;
            let dir = tempfile::tempdir_in(ctx.home.root()).map_err(|e| {
                crate::storage::StorageError::io("create a folder in", ctx.home.root(), e)
            })?;
            let file = dir.path().join("image.tar");
            engine.runtime.save(&id, &file)?;
            let resolved = super::assets::from_source(
                ctx,
                "image tarball of",
                &file.to_string_lossy(),
                None,
                "push it to an image registry instead (--push REPO)",
            )?;
            blobs.extend(resolved.blob);
            Image {
                id,
                source: ImageSource::Tarball,
                reference: None,
                tarball: Some(resolved.asset),
                private: None,
            }
        }
        ImageChoice::Push { repo, build } => {
            check_push_repo(repo)?;
            let id = local(*build)?;
            let tag = format!("{}-v{version}", sub.name);
            let reference = engine.runtime.push(&id, repo, &tag, ctx.reporter)?;
            Image {
                id,
                source: ImageSource::Pull,
                reference: Some(reference),
                tarball: None,
                private: None,
            }
        }
        ImageChoice::Tarball(source) => {
            let resolved = super::assets::from_source(
                ctx,
                "image tarball",
                source,
                None,
                "push the image to an image registry instead (--push REPO), or upload the tarball and give its https:// URL",
            )?;
            let got = &resolved.fetched;
            let ids = engine
                .runtime
                .load_tarball(&got.path, got.sha256.as_str(), ctx.reporter)?;
            let id = match ids.as_slice() {
                [one] => one.clone(),
                _ => ids
                    .iter()
                    .find(|i| {
                        engine
                            .runtime
                            .image_id(&plan.invocation.image)
                            .ok()
                            .flatten()
                            .as_ref()
                            == Some(*i)
                    })
                    .cloned()
                    .ok_or_else(|| {
                        WorkflowError::Refused(format!(
                            "{source} holds several images; none is {}",
                            plan.invocation.image
                        ))
                    })?,
            };
            super::engine::remember(ctx, &id, source, crate::storage::Acquired::Loaded);
            blobs.extend(resolved.blob);
            Image {
                id,
                source: ImageSource::Tarball,
                reference: None,
                tarball: Some(Asset {
                    size: Some(resolved.fetched.bytes),
                    ..resolved.asset
                }),
                private: None,
            }
        }
        ImageChoice::Pull(reference) => {
            if !model::is_image_digest_reference(reference) {
                return Err(WorkflowError::Refused(format!(
                    "--pull {reference}: give an image registry's repository by digest (repo@sha256:<64 hex digits>), never a tag or a local path"
                )));
            }
            super::engine::pull_allowed(ctx, reference)?;
            let id = engine.runtime.pull(reference, ctx.reporter)?;
            Image {
                id,
                source: ImageSource::Pull,
                reference: Some(reference.clone()),
                tarball: None,
                private: None,
            }
        }
    };
    if let Some((plain, measured)) = &private_files {
        blobs.push(super::private::encrypt_files(
            ctx, &mut image, plain, measured,
        )?);
    }
    // A private model's parameters travel encrypted too, never beside the record in plain.
    if private && let Some(p) = params.take() {
        blobs.push(super::private::encrypt_parameters(ctx, &mut image, &p)?);
    }
    let record = model::Mlcube {
        format: FORMAT_VERSION,
        kind: "mlcube".into(),
        name: sub.name.to_string(),
        version,
        owner: signer.handle.clone(),
        created: ctx.timestamp(),
        description: sub.description.clone(),
        mlcube_yaml: (!config.is_container()).then(|| Sha256::of(&yaml)),
        container_config_yaml: config.is_container().then(|| Sha256::of(&yaml)),
        parameters_yaml: params.as_deref().map(Sha256::of),
        additional_files,
        image,
    };
    let path = build::mlcube(sub.name, version);
    let mut extra = vec![NewFile::new(
        build::mlcube_file(
            sub.name,
            version,
            if config.is_container() {
                CubeFile::ContainerConfigYaml
            } else {
                CubeFile::MlcubeYaml
            },
        ),
        yaml,
    )];
    if let Some(p) = params {
        extra.push(NewFile::new(
            build::mlcube_file(sub.name, version, CubeFile::ParametersYaml),
            p,
        ));
    }
    extra.extend(blobs);
    let branch = branch_name(
        &signer.handle,
        SubmissionKind::Mlcube,
        &format!("{}-v{version}", sub.name),
    );
    let submitted = submit(
        opened,
        signer,
        &branch,
        vec![record_file(path, &record)],
        extra,
        &format!("Submit cube {} v{version}", sub.name),
    )?;
    Ok(CubeSubmitted::Submitted {
        submitted,
        record: Box::new(record),
        ciphertext,
    })
}

/// The image a local cube names, built from its Dockerfile when missing and `build` is set.
/// `--build` builds only what is missing: an image already here is the one the author tested.
fn local_image(
    ctx: &Ctx,
    engine: &Engine,
    plan: &mlcube::Plan,
    name: &str,
    build: bool,
) -> Result<String> {
    match engine.runtime.image_id(&plan.invocation.image)? {
        Some(id) => Ok(id),
        None if build => engine.build(ctx, plan),
        None => Err(WorkflowError::Refused(format!(
            "cube {name}: image {} is not on this machine; pass --build to build it from the cube's Dockerfile, or use --image-tarball/--pull",
            plan.invocation.image
        ))),
    }
}

/// `--push REPO` takes a repository without tag or digest: cohort chooses the tag.
fn check_push_repo(repo: &str) -> Result<()> {
    if model::is_image_repository(repo) {
        Ok(())
    } else {
        Err(WorkflowError::Refused(format!(
            "--push {repo}: give a repository without tag or digest, e.g. registry.example.org/team/model (cohort tags it <name>-v<N> and records the digest)"
        )))
    }
}

/// [`cube_ref`], saying when the cube waits on a branch (`opened`'s submissions).
pub fn cube_ref_in(opened: &Opened, ix: &Index, spec: &str) -> Result<model::CubeRef> {
    let name = spec.split_once(':').map_or(spec, |(n, _)| n);
    if ix.latest_cube(name).is_none() {
        return Err(super::lookup::unknown(opened, ix, super::lookup::Entity::Cube, name).into());
    }
    cube_ref(ix, spec)
}

/// Resolves `name` or `name:version` (latest when no version) to a cube reference.
pub fn cube_ref(ix: &Index, spec: &str) -> Result<model::CubeRef> {
    let (name, version) = match spec.split_once(':') {
        Some((n, v)) => (
            n,
            Some(v.trim_start_matches('v').parse::<u32>().map_err(|_| {
                WorkflowError::Refused(format!("`{spec}`: the version after ':' is a number"))
            })?),
        ),
        None => (spec, None),
    };
    let found = match version {
        Some(v) => ix.cube(name, v),
        None => ix.latest_cube(name),
    };
    let (path, c) = found.ok_or_else(|| {
        if ix.latest_cube(name).is_some() {
            WorkflowError::NotFound(format!(
                "no version {} of cube `{name}` on main",
                version.unwrap_or_default()
            ))
        } else {
            super::lookup::unknown_on_main(ix, super::lookup::Entity::Cube, name).into()
        }
    })?;
    Ok(model::CubeRef {
        name: c.name.clone(),
        version: c.version,
        sha256: ix.sha(path).cloned().expect("indexed file has a digest"),
    })
}

#[cfg(test)]
mod tests {
    use super::check_push_repo;

    #[test]
    fn push_takes_a_repository_without_tag_or_digest() {
        for ok in [
            "registry.example.org/team/model",
            "127.0.0.1:5000/mo/model",
            "localhost/x",
        ] {
            assert!(check_push_repo(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "registry.example.org/team/model:v1",
            "127.0.0.1:5000/mo/model@sha256:abc",
            "https://registry.example.org/x",
            "Registry/Upper",
            "/tmp/model",
            "../model",
            "team//model",
            "127.0.0.1:5000",
        ] {
            assert!(check_push_repo(bad).is_err(), "{bad}");
        }
    }
}
