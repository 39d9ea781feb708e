//! `mlcube grant`: the owner of a private cube version seals its key to a dataset's owner, or
//! revokes that, as signed access records merged by the command itself.

use crate::model::{self, Access, AccessAction, FORMAT_VERSION, build};
use crate::trust::{Index, Signer, next_number};

use super::super::registry_ops::{Landed, Opened, apply_to_main};
use super::super::submission::record_file;
use super::super::{Ctx, Result, WorkflowError};
use super::latest_access;

/// Which datasets a grant covers.
pub enum GrantTarget {
    /// One dataset (name, id or id prefix).
    Dataset(String),
    /// Every dataset currently associated with the benchmark (approved, not withdrawn).
    Benchmark(String),
}

/// `mlcube grant` / `--revoke`: what was decided.
pub struct Granted {
    /// The access records written, with the dataset each covers.
    pub records: Vec<(String, Access)>,
    pub landed: Landed,
}

/// The datasets with an association with `bench` on main that is not withdrawn.
pub(super) fn datasets_of(ix: &Index, bench: &str) -> Vec<String> {
    ix.associations
        .iter()
        .filter_map(|((b, key), versions)| match key {
            model::AssocKey::Dataset(id) if b == bench => {
                let (_, p) = versions.last_key_value()?;
                ix.decisions_on(p, model::DecisionKind::Withdrawal)
                    .is_empty()
                    .then(|| id.clone())
            }
            _ => None,
        })
        .collect()
}

/// Writes signed grants (the model key sealed to each dataset owner's age key at this commit)
/// or revocations for one private cube version, and merges them (the owner's own records that
/// need nobody else). A revocation cannot unshare a key already given: it makes cohort refuse
/// to run the model for that dataset and `verify` refuse new results for the pair.
pub fn grant(
    ctx: &Ctx,
    opened: &Opened,
    signer: &Signer,
    model_spec: &str,
    target: &GrantTarget,
    revoke: bool,
) -> Result<Granted> {
    let ix = opened.index()?;
    let action = if revoke {
        "revoke access"
    } else {
        "grant access"
    };
    super::super::permission::require(
        opened,
        &ix,
        signer,
        super::super::permission::Needs::Member,
        action,
    )?;
    let mref = super::super::cubes::cube_ref_in(opened, &ix, model_spec)?;
    let (_, rec) = ix.cube(&mref.name, mref.version).expect("resolved");
    let Some(p) = rec.image.private.as_ref() else {
        return Err(WorkflowError::Refused(format!(
            "{} v{} is not a private model (submitted without --encrypt): everyone may run it already",
            mref.name, mref.version
        )));
    };
    if rec.owner != signer.handle {
        return Err(WorkflowError::Refused(format!(
            "only {} (the owner of {}) may grant or revoke access to it",
            rec.owner, mref.name
        )));
    }
    let ids = match target {
        GrantTarget::Dataset(spec) => vec![super::super::datasets::resolve_dataset_id(&ix, spec)?],
        GrantTarget::Benchmark(b) => {
            let ids = datasets_of(&ix, b);
            if ids.is_empty() {
                return Err(WorkflowError::NotFound(format!(
                    "no dataset is associated with benchmark `{b}` yet"
                )));
            }
            ids
        }
    };
    let model_key = if revoke {
        None
    } else {
        Some(
            model::private::open_key(&p.owner_key, signer.decryptor(), &p.recipient).map_err(
                |_| {
                    WorkflowError::Refused(format!(
                        "the model key of {} v{} is sealed to a key you no longer hold",
                        mref.name, mref.version
                    ))
                },
            )?,
        )
    };
    let mut records = Vec::new();
    let mut files = Vec::new();
    for id in ids {
        let (_, drec) = ix.dataset(&id).expect("resolved");
        let latest = latest_access(&ix, &mref.name, mref.version, &id).map(|(_, a)| a.action);
        let wanted = if revoke {
            AccessAction::Revoke
        } else {
            AccessAction::Grant
        };
        // Granting a granted dataset again re-seals to its owner's current key (a rotation).
        if revoke && latest != Some(AccessAction::Grant) {
            if matches!(target, GrantTarget::Dataset(_)) {
                return Err(WorkflowError::Refused(format!(
                    "dataset {} holds no grant for {} v{}; nothing to revoke",
                    &id[..12],
                    mref.name,
                    mref.version
                )));
            }
            continue;
        }
        let key = match &model_key {
            None => None,
            Some(k) => {
                let to = ix.age_recipient(&drec.owner).ok_or_else(|| {
                    WorkflowError::NotFound(format!(
                        "{} (the owner of dataset {}) has no approved user record with an age key",
                        drec.owner,
                        &id[..12]
                    ))
                })?;
                Some(model::private::seal_key(k, &drec.owner, &to)?)
            }
        };
        let number = next_number(
            ix.access
                .get(&(mref.name.clone(), mref.version, id.clone())),
        );
        let record = Access {
            format: FORMAT_VERSION,
            kind: "access".into(),
            number,
            model: mref.clone(),
            dataset: id.clone(),
            action: wanted,
            by: signer.handle.clone(),
            created: ctx.timestamp(),
            key,
        };
        let path = build::access(&mref.name, mref.version, &id, number);
        files.push(record_file(path.clone(), &record));
        records.push((path, record));
    }
    if files.is_empty() {
        return Err(WorkflowError::Refused(format!(
            "no dataset of that benchmark holds a grant for {} v{}; nothing to revoke",
            mref.name, mref.version
        )));
    }
    let landed = apply_to_main(
        ctx,
        opened,
        signer,
        files,
        &format!(
            "{} {} v{} for {} dataset(s)",
            if revoke { "Revoke" } else { "Grant" },
            mref.name,
            mref.version,
            records.len()
        ),
    )?;
    Ok(Granted { records, landed })
}
