//! Private models: an access record is signed by the private cube's owner, names a registered
//! dataset, and (a grant) seals the model key to that dataset's owner's age key at its commit;
//! a result of a private model needs the pair's newest access record to be a grant when merged.

use crate::model::{self, AccessAction, ImageSource, Record};

use super::super::Rule;
use super::super::verify::{Ctx, Verdict};
use super::*;

pub(super) fn check_access(ctx: &Ctx, path: &str, v: &mut Verdict) {
    let Some(Record::Access(a)) = ctx.ix.record(path) else {
        return;
    };
    let t = ctx.intro(path);
    numbered(
        path,
        ctx.ix
            .access
            .get(&(a.model.name.clone(), a.model.version, a.dataset.clone())),
        a.number,
        v,
    );
    if !cube_ok(ctx, path, "model", &a.model, t, v) {
        return;
    }
    let Some((_, cube)) = ctx.ix.cube(&a.model.name, a.model.version) else {
        return;
    };
    if cube.image.source != ImageSource::Encrypted {
        v.fail(
            path,
            Rule::Reference,
            format!(
                "{} v{} is not a private model; access records are for encrypted images",
                cube.name, cube.version
            ),
        );
        return;
    }
    if a.by != cube.owner {
        v.fail(
            path,
            Rule::Authority,
            format!(
                "only {} (the owner of {}) grants or revokes access to it",
                cube.owner, cube.name
            ),
        );
    }
    ctx.signed_by(path, &a.by, v);
    let dataset = ctx.ix.datasets.get(&a.dataset).and_then(|versions| {
        versions
            .values()
            .filter(|p| ctx.is_valid(p) && ctx.intro(p) <= t)
            .find_map(|p| match ctx.ix.record(p) {
                Some(Record::Dataset(d)) => Some(d),
                _ => None,
            })
    });
    let Some(d) = dataset else {
        v.fail(
            path,
            Rule::Reference,
            "its dataset is not a valid registered dataset at this point",
        );
        return;
    };
    if let (AccessAction::Grant, Some(k)) = (a.action, &a.key) {
        let want = data::age_key_at(ctx, &d.owner, t);
        if k.handle != d.owner || want.as_deref() != Some(k.age.as_str()) {
            v.fail(
                path,
                Rule::Sealed,
                format!(
                    "the model key must be sealed to the dataset's owner {} with their age key at this commit",
                    d.owner
                ),
            );
        }
    }
}

/// A result (or receipt of a run) of a private model needs a grant for its dataset in force
/// when it is merged; a `no-access` receipt says nothing ran and needs none.
pub(super) fn check_result_access(
    ctx: &Ctx,
    path: &str,
    r: &model::ResultManifest,
    t: usize,
    v: &mut Verdict,
) {
    let Some((_, cube)) = ctx.ix.cube(&r.model.name, r.model.version) else {
        return;
    };
    if cube.image.source != ImageSource::Encrypted {
        return;
    }
    let no_access = r
        .failure
        .as_ref()
        .is_some_and(|f| f.reason == model::FailureReason::NoAccess.as_str());
    if no_access {
        return;
    }
    let granted = ctx
        .ix
        .access
        .get(&(r.model.name.clone(), r.model.version, r.dataset.id.clone()))
        .and_then(|versions| {
            versions
                .values()
                .rev()
                .filter(|p| ctx.is_valid(p) && ctx.intro(p) <= t)
                .find_map(|p| match ctx.ix.record(p) {
                    Some(Record::Access(a)) => Some(a.action == AccessAction::Grant),
                    _ => None,
                })
        })
        .unwrap_or(false);
    if !granted {
        v.fail(
            path,
            Rule::Authority,
            format!(
                "{} v{} is a private model and dataset {} holds no grant for it at this point (none, or revoked)",
                r.model.name,
                r.model.version,
                &r.dataset.id[..12]
            ),
        );
    }
}
