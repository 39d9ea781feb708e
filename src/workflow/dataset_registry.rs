//! A prepared dataset in the registry: its record (statistics sealed to the committee and the
//! owner) shown before submission, its association request (metrics of the reference model on
//! the real data, sealed), and reading sealed payloads back.

use crate::model::{self, AssocKey, AssocSubject, FORMAT_VERSION, build, metrics::Metrics};
use crate::trust::{Index, Signer};

use super::associations::next_version;
use super::benchmarks::approved_in;
use super::compat::{Steps, run_model};
use super::datasets::{check_content, find, load_local, lock_dataset, prepared_data};
use super::engine::Engine;
use super::permission::{Needs, require};
use super::registry_ops::{Opened, Submitted, submit};
use super::submission::{SubmissionKind, branch_name, record_file};
use super::{Ctx, Result, WorkflowError};

/// The recipients of data sealed for benchmark `b` and owner `owner`: the committee and the
/// owner, with their current keys.
pub fn recipients(ix: &Index, b: &model::Benchmark, owner: &str) -> Result<Vec<model::SealedFor>> {
    let mut out = Vec::new();
    for h in b
        .committee
        .iter()
        .map(String::as_str)
        .chain(std::iter::once(owner))
    {
        let age = ix.age_recipient(h).ok_or_else(|| {
            WorkflowError::NotFound(format!("no age key for {h} in the registry"))
        })?;
        if !out.iter().any(|r: &model::SealedFor| r.handle == h) {
            out.push(model::SealedFor {
                handle: h.to_string(),
                age,
            });
        }
    }
    Ok(out)
}

/// The record `dataset submit` would write, and its sealed statistics: shown to the data owner
/// before anything is written.
pub struct DatasetPreview {
    pub path: String,
    pub record: model::Dataset,
    pub bytes: Vec<u8>,
    pub sealed: Vec<u8>,
    /// The sealed description and location, when given.
    pub sealed_about: Option<Vec<u8>>,
}

pub fn preview_dataset(
    ctx: &Ctx,
    opened: &Opened,
    signer: &Signer,
    name: &str,
    about: &model::About,
) -> Result<DatasetPreview> {
    let ix = opened.index()?;
    require(opened, &ix, signer, Needs::Member, "register datasets")?;
    let local = load_local(ctx, name)?.ok_or_else(|| {
        WorkflowError::NotFound(format!(
            "no prepared dataset `{name}` here; run `cohort dataset prepare` first"
        ))
    })?;
    if local.owner != signer.handle {
        return Err(WorkflowError::Refused(format!(
            "dataset `{name}` was prepared by {}, not {}",
            local.owner, signer.handle
        )));
    }
    if ix.datasets.contains_key(&local.id) {
        return Err(WorkflowError::Refused(format!(
            "dataset `{name}` is already registered (id {})",
            &local.id[..12]
        )));
    }
    if ix
        .datasets
        .keys()
        .filter_map(|id| ix.dataset(id))
        .any(|(_, d)| d.owner == signer.handle && d.name == name)
    {
        return Err(WorkflowError::Refused(format!(
            "{} already registered a dataset named `{name}`",
            signer.handle
        )));
    }
    let (_, b, bref) = approved_in(opened, &ix, &local.benchmark.name)?;
    if b.data_preparator != local.preparator {
        return Err(WorkflowError::Refused(format!(
            "dataset `{name}` was prepared with {} v{}, but benchmark {} now uses {} v{}; prepare it again",
            local.preparator.name,
            local.preparator.version,
            b.name,
            b.data_preparator.name,
            b.data_preparator.version
        )));
    }
    if let Err(changes) = check_content(ctx, &local, &local.content_sha256, false)? {
        return Err(WorkflowError::Refused(format!(
            "the prepared data of `{name}` changed since preparation: {}",
            changes.join(", ")
        )));
    }
    let path = build::dataset(&local.id, 1);
    let file = build::sealed_file_name(&path, "statistics");
    let to = recipients(&ix, &b, &signer.handle)?;
    let (sealed, ciphertext) = model::envelope::seal(
        &model::metrics::to_canonical(&local.statistics),
        &to,
        &file,
        model::envelope::SCHEMA_METRICS,
    )?;
    // The description and location never appear in the public record: sealed like the
    // statistics, to the same people.
    let (about_sealed, sealed_about) = if about.is_empty() {
        (None, None)
    } else {
        about
            .check()
            .map_err(|why| WorkflowError::Refused(format!("dataset `{name}`: {why}")))?;
        let (s, c) = model::envelope::seal(
            &about.to_canonical(),
            &to,
            &build::sealed_file_name(&path, "about"),
            model::about::SCHEMA_ABOUT,
        )?;
        (Some(s), Some(c))
    };
    let record = model::Dataset {
        format: FORMAT_VERSION,
        kind: "dataset".into(),
        id: local.id.clone(),
        name: name.to_string(),
        version: 1,
        owner: signer.handle.clone(),
        created: ctx.timestamp(),
        description: None,
        benchmark: bref,
        preparator: local.preparator.clone(),
        content_sha256: local.content_sha256.clone(),
        statistics: sealed,
        about: about_sealed,
    };
    let bytes = model::to_bytes(&record);
    Ok(DatasetPreview {
        path,
        record,
        bytes,
        sealed: ciphertext,
        sealed_about,
    })
}

pub fn submit_dataset(
    opened: &Opened,
    signer: &Signer,
    preview: DatasetPreview,
) -> Result<Submitted> {
    let branch = branch_name(
        &signer.handle,
        SubmissionKind::Dataset,
        &format!("{}-{}", preview.record.name, &preview.record.id[..12]),
    );
    let mut sealed = vec![crate::registry::NewFile::new(
        build::sealed(&preview.path, "statistics"),
        preview.sealed,
    )];
    if let Some(about) = preview.sealed_about {
        sealed.push(crate::registry::NewFile::new(
            build::sealed(&preview.path, "about"),
            about,
        ));
    }
    submit(
        opened,
        signer,
        &branch,
        vec![crate::registry::NewFile::new(
            preview.path.clone(),
            preview.bytes,
        )],
        sealed,
        &format!("Register dataset {}", preview.record.name),
    )
}

/// What a dataset association did: the run's steps and metrics (shown locally), and the request.
pub struct DatasetAssociation {
    pub steps: Steps,
    pub metrics: Option<Metrics>,
    pub submitted: Option<Submitted>,
}

/// Runs the reference model and the metrics cube on the real prepared data (no network), then
/// submits the association request with the metrics sealed to the committee and the owner.
pub fn associate_dataset(
    ctx: &Ctx,
    opened: &Opened,
    signer: &Signer,
    spec: &str,
    bench: &str,
) -> Result<DatasetAssociation> {
    let ix = opened.index()?;
    require(opened, &ix, signer, Needs::Member, "request associations")?;
    let (local, registered) = find(ctx, &ix, spec)?;
    let (dpath, drec) = registered.ok_or_else(|| {
        WorkflowError::Refused(format!(
            "dataset `{}` is not registered yet; `cohort dataset submit {}` and merge it first",
            local.name, local.name
        ))
    })?;
    if drec.owner != signer.handle {
        return Err(WorkflowError::Refused(format!(
            "dataset `{}` belongs to {}",
            local.name, drec.owner
        )));
    }
    let (_, b, bref) = approved_in(opened, &ix, bench)?;
    if b.data_preparator != drec.preparator {
        return Err(WorkflowError::Refused(format!(
            "dataset `{}` was prepared with another preparator than benchmark {bench}'s",
            local.name
        )));
    }
    let _lock = lock_dataset(ctx, &local.name)?;
    if let Err(changes) = check_content(ctx, &local, &drec.content_sha256, false)? {
        return Err(WorkflowError::Refused(format!(
            "the prepared data of `{}` no longer matches the registry: {}",
            local.name,
            changes.join(", ")
        )));
    }
    let engine = Engine::connect(ctx)?;
    let model_cube = engine.registered(ctx, &ix, &b.reference_model)?;
    let metrics_cube = engine.registered(ctx, &ix, &b.metrics)?;
    let prepared = prepared_data(ctx, &local.name);
    let (run_dir, steps, metrics) = run_model(
        ctx,
        &engine,
        &model_cube,
        &metrics_cube,
        &prepared,
        "associate",
    )?;
    super::runs::label_run(&run_dir, bench, Some(&local.name));
    let Some(values) = metrics.clone() else {
        return Ok(DatasetAssociation {
            steps,
            metrics,
            submitted: None,
        });
    };
    let key = AssocKey::Dataset(local.id.clone());
    let version = next_version(&ix, bench, &key);
    let path = build::association(bench, &key, version);
    let file = build::sealed_file_name(&path, "report");
    let (sealed, ciphertext) = model::envelope::seal(
        &model::metrics::to_canonical(&values),
        &recipients(&ix, &b, &signer.handle)?,
        &file,
        model::envelope::SCHEMA_METRICS,
    )?;
    let record = model::Association {
        format: FORMAT_VERSION,
        kind: "association".into(),
        benchmark: bref,
        subject: AssocSubject::Dataset,
        model: None,
        dataset: Some(model::DatasetRef {
            id: local.id.clone(),
            version: drec.version,
            sha256: ix.sha(&dpath).cloned().expect("indexed"),
        }),
        requested_by: signer.handle.clone(),
        created: ctx.timestamp(),
        report: steps.report(format!("dataset:{}", local.id), None),
        sealed: Some(sealed),
    };
    let branch = branch_name(
        &signer.handle,
        SubmissionKind::Association,
        &format!("{bench}-dataset-{}-v{version}", &local.id[..12]),
    );
    let submitted = submit(
        opened,
        signer,
        &branch,
        vec![record_file(path.clone(), &record)],
        vec![crate::registry::NewFile::new(
            build::sealed(&path, "report"),
            ciphertext,
        )],
        &format!("Associate dataset {} with {bench}", local.name),
    )?;
    Ok(DatasetAssociation {
        steps,
        metrics,
        submitted: Some(submitted),
    })
}

/// Registered datasets (on main).
pub fn registered(ix: &Index) -> Vec<(String, model::Dataset)> {
    ix.datasets
        .keys()
        .filter_map(|id| ix.dataset(id))
        .map(|(p, d)| (p.to_string(), d.clone()))
        .collect()
}

/// Decrypts a sealed payload of a record at `owner_path` with `signer`'s age identity.
pub fn open_sealed(
    ix: &Index,
    owner_path: &str,
    sealed: &model::Sealed,
    purpose: &str,
    signer: &Signer,
) -> Result<Metrics> {
    let file = build::sealed(owner_path, purpose);
    let bytes = ix
        .bytes(&file)
        .ok_or_else(|| WorkflowError::NotFound(format!("{file} is missing")))?;
    let plain = model::envelope::open(sealed, bytes, signer.decryptor())?;
    Ok(model::metrics::from_canonical(&file, &plain)?)
}

/// The description and location of a registered dataset, when `signer` is a recipient;
/// `Ok(None)` when the owner gave none.
pub fn about(ix: &Index, id: &str, signer: &Signer) -> Result<Option<model::About>> {
    let (p, d) = ix
        .dataset(id)
        .ok_or_else(|| WorkflowError::NotFound(format!("no dataset {id}")))?;
    let Some(sealed) = &d.about else {
        return Ok(None);
    };
    let file = build::sealed(p, "about");
    let bytes = ix
        .bytes(&file)
        .ok_or_else(|| WorkflowError::NotFound(format!("{file} is missing")))?;
    let plain = model::envelope::open(sealed, bytes, signer.decryptor())?;
    Ok(Some(model::About::from_canonical(&file, &plain)?))
}

/// The statistics of a registered dataset, when `signer` is a recipient.
pub fn statistics(ix: &Index, id: &str, signer: &Signer) -> Result<Metrics> {
    let (p, d) = ix
        .dataset(id)
        .ok_or_else(|| WorkflowError::NotFound(format!("no dataset {id}")))?;
    open_sealed(ix, p, &d.statistics, "statistics", signer)
}
