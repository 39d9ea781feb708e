//! MLCube versions in the registry: submitting a cube (its files bound by sha256, its
//! additional files and image pinned, strict-mode rules checked at submission, not at run
//! time), and listing and viewing cubes.

use std::path::Path;

use crate::mlcube::{self, ContainerRuntime, CubeConfig, RunRequest};
use crate::model::{
    self, Asset, CubeFile, FORMAT_VERSION, Image, ImageSource, Record, Sha256, build,
};
use crate::registry::NewFile;
use crate::storage::{Cache, ExtractLimits, extract_tarball};
use crate::trust::{Index, Signer};

use super::engine::Engine;
use super::registry_ops::{Opened, Submitted, submit};
use super::submission::{SubmissionKind, branch_name, record_file};
use super::{Ctx, Result, WorkflowError};

/// Where a cube's image comes from.
#[derive(Debug, Clone)]
pub enum ImageChoice {
    /// Already on this machine (or built from the cube's Dockerfile with `build`).
    Local { build: bool },
    /// A `docker save` tarball (URL or path); its sha256 is recorded.
    Tarball(String),
    /// `repo@sha256:...`, pulled by digest.
    Pull(String),
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
pub fn strict_or_refuse(cfg: &CubeConfig) -> Result<()> {
    mlcube::check_strict(cfg).map_err(|v| {
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
) -> Result<(Submitted, model::Mlcube)> {
    model::ids::check_name("mlcube name", sub.name)?;
    let config = CubeConfig::load(sub.path)?;
    strict_or_refuse(&config)?;
    let yaml = config.text().as_bytes().to_vec();
    let params_path = config.root().join("workspace/parameters.yaml");
    let params = match std::fs::read(&params_path) {
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
    let version = next_version(&ix, sub.name, &signer.handle)?;
    let cache = Cache::new(ctx.home);
    let additional_files = match &sub.additional_files {
        None => None,
        Some((source, expected)) => {
            let got = cache.get_or_fetch(
                source,
                expected.as_ref(),
                &ctx.net,
                ctx.reporter,
                &ctx.cancel,
            )?;
            // The tarball must extract safely now, not at a hospital months later.
            let probe = tempfile::tempdir_in(ctx.home.root())
                .map_err(|e| WorkflowError::Refused(e.to_string()))?;
            let unpacked = extract_tarball(
                &got.path,
                &probe.path().join("x"),
                &ExtractLimits::for_asset(None, None, ctx.max_unpacked),
            )?;
            // Measured now and signed, so every site bounds its download and extraction.
            Some(Asset {
                size: Some(got.bytes),
                unpacked_size: Some(unpacked.bytes),
                files: Some(unpacked.files.len() as u64),
                ..Asset::new(source.clone(), got.sha256)
            })
        }
    };
    let engine = Engine::connect(ctx)?;
    let first = config
        .tasks()
        .into_iter()
        .next()
        .ok_or_else(|| WorkflowError::Refused(format!("{} has no tasks", config.label())))?;
    let plan = mlcube::plan(&config, &RunRequest::new(first), &|_| None, ctx.home.root())?;
    let image = match &sub.image {
        ImageChoice::Local { build } => {
            // `--build` builds only what is missing: an image already here is the one the
            // author tested.
            let id = match engine.runtime.image_id(&plan.invocation.image)? {
                Some(id) => id,
                None if *build => engine.build(ctx, &plan)?,
                None => {
                    return Err(WorkflowError::Refused(format!(
                        "cube {}: image {} is not on this machine; pass --build to build it from the cube's Dockerfile, or use --image-tarball/--pull",
                        sub.name, plan.invocation.image
                    )));
                }
            };
            Image {
                id,
                source: ImageSource::Local,
                reference: None,
                tarball: None,
            }
        }
        ImageChoice::Tarball(source) => {
            let got = cache.get_or_fetch(source, None, &ctx.net, ctx.reporter, &ctx.cancel)?;
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
            Image {
                id,
                source: ImageSource::Tarball,
                reference: None,
                tarball: Some(Asset {
                    size: Some(got.bytes),
                    ..Asset::new(source.clone(), got.sha256)
                }),
            }
        }
        ImageChoice::Pull(reference) => {
            if !reference.contains("@sha256:") {
                return Err(WorkflowError::Refused(format!(
                    "--pull {reference}: pull by digest (repo@sha256:...), never by tag"
                )));
            }
            let id = engine.runtime.pull(reference, ctx.reporter)?;
            Image {
                id,
                source: ImageSource::Pull,
                reference: Some(reference.clone()),
                tarball: None,
            }
        }
    };
    let record = model::Mlcube {
        format: FORMAT_VERSION,
        kind: "mlcube".into(),
        name: sub.name.to_string(),
        version,
        owner: signer.handle.clone(),
        created: ctx.timestamp(),
        description: sub.description.clone(),
        mlcube_yaml: Sha256::of(&yaml),
        parameters_yaml: params.as_deref().map(Sha256::of),
        additional_files,
        image,
    };
    let path = build::mlcube(sub.name, version);
    let mut extra = vec![NewFile::new(
        build::mlcube_file(sub.name, version, CubeFile::MlcubeYaml),
        yaml,
    )];
    if let Some(p) = params {
        extra.push(NewFile::new(
            build::mlcube_file(sub.name, version, CubeFile::ParametersYaml),
            p,
        ));
    }
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
    Ok((submitted, record))
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
        WorkflowError::NotFound(format!("no cube `{spec}` on main (was it merged? `cohort registry status` shows pending submissions)"))
    })?;
    Ok(model::CubeRef {
        name: c.name.clone(),
        version: c.version,
        sha256: ix.sha(path).cloned().expect("indexed file has a digest"),
    })
}

/// Every cube version on main.
pub fn cubes(ix: &Index) -> Vec<(String, model::Mlcube)> {
    ix.records_in(&ix.cubes)
        .filter_map(|(p, r)| match r {
            Record::Mlcube(c) => Some((p.to_string(), c.clone())),
            _ => None,
        })
        .collect()
}
