//! Cubes, benchmarks, associations and priorities: who owns them, what they reference, who approves.

use crate::model::{self, AssocKey, AssocSubject, DecisionKind, Record, RecordPath, build};

use super::super::verify::{Ctx, Verdict};
use super::super::{Code, Rule};
use super::*;

pub(super) fn check_cube(ctx: &Ctx, path: &str, v: &mut Verdict) {
    let Some(Record::Mlcube(c)) = ctx.ix.record(path) else {
        return;
    };
    let versions = ctx.ix.cubes.get(&c.name);
    check_chain(ctx, path, versions, c.version, None, v);
    if let Some(first) = versions.and_then(|m| m.values().next())
        && let Some(Record::Mlcube(c1)) = ctx.ix.record(first)
        && c1.owner != c.owner
    {
        v.fail(
            path,
            Rule::Authority,
            format!(
                "cube `{}` belongs to {}; {} cannot add versions",
                c.name, c1.owner, c.owner
            ),
        );
    }
    ctx.signed_by(path, &c.owner, v);
    let (file, want) = c.config_file();
    let yaml = build::mlcube_file(&c.name, c.version, file);
    // The other configuration file is not recorded, so it may not be there.
    let other = match file {
        model::CubeFile::ContainerConfigYaml => model::CubeFile::MlcubeYaml,
        _ => model::CubeFile::ContainerConfigYaml,
    };
    let other = build::mlcube_file(&c.name, c.version, other);
    if ctx.ix.sha(&other).is_some() {
        v.fail(
            &other,
            Rule::DefaultDeny,
            format!("is not recorded in {path}"),
        );
    }
    match ctx.ix.sha(&yaml) {
        None => v.fail(path, Rule::Reference, format!("{yaml} is missing")),
        Some(s) if s != want => v.fail(
            &yaml,
            Rule::Signature,
            format!("does not match the sha256 recorded in {path}"),
        ),
        _ => {}
    }
    let params = build::mlcube_file(&c.name, c.version, model::CubeFile::ParametersYaml);
    match (ctx.ix.sha(&params), &c.parameters_yaml) {
        (None, Some(_)) => v.fail(path, Rule::Reference, format!("{params} is missing")),
        (Some(_), None) => v.fail(
            &params,
            Rule::DefaultDeny,
            format!("is not recorded in {path}"),
        ),
        (Some(s), Some(want)) if s != want => v.fail(
            &params,
            Rule::Signature,
            format!("does not match the sha256 recorded in {path}"),
        ),
        _ => {}
    }
}

pub(super) fn check_benchmark(ctx: &Ctx, path: &str, v: &mut Verdict) {
    let Some(Record::Benchmark(b)) = ctx.ix.record(path) else {
        return;
    };
    let t = ctx.intro(path);
    let versions = ctx.ix.benchmarks.get(&b.name);
    check_chain(ctx, path, versions, b.version, b.previous.as_ref(), v);
    if let Some(first) = versions.and_then(|m| m.values().next())
        && let Some(Record::Benchmark(b1)) = ctx.ix.record(first)
        && b1.owner != b.owner
    {
        v.fail(
            path,
            Rule::Authority,
            format!("benchmark `{}` belongs to {}", b.name, b1.owner),
        );
    }
    ctx.signed_by(path, &b.owner, v);
    if !ctx.has_role(&b.owner, model::Role::BenchmarkOwner, t) && !ctx.is_admin(&b.owner, t) {
        v.fail(
            path,
            Rule::Authority,
            format!(
                "{} does not hold the benchmark-owner right (an admin grants it)",
                b.owner
            ),
        );
    }
    for m in &b.committee {
        if !ctx.is_known(m, t) {
            v.fail(
                path,
                Rule::Reference,
                format!("committee member {m} is not a registered user"),
            );
        }
    }
    cube_ok(ctx, path, "data preparator", &b.data_preparator, t, v);
    cube_ok(ctx, path, "reference model", &b.reference_model, t, v);
    cube_ok(ctx, path, "metrics", &b.metrics, t, v);
    for (role, r) in [
        ("data preparator", &b.data_preparator),
        ("reference model", &b.reference_model),
        ("metrics", &b.metrics),
    ] {
        if ctx
            .ix
            .cube(&r.name, r.version)
            .is_some_and(|(_, c)| c.image.source == model::ImageSource::Encrypted)
        {
            v.fail(
                path,
                Rule::Reference,
                format!(
                    "its {role} {} v{} is a private model; every site must be able to run it",
                    r.name, r.version
                ),
            );
        }
    }
    if !b.report.ok {
        v.fail(
            path,
            Rule::Reference,
            "its reference-workflow compatibility report failed",
        );
    }
    let approved = approvals(
        ctx,
        path,
        t,
        &|by, dt| {
            if ctx.is_admin(by, dt) {
                Ok(())
            } else {
                Err(format!(
                    "{by} is not an admin; only admins approve benchmarks"
                ))
            }
        },
        v,
    );
    if approved.is_empty() {
        v.fail_code(
            path,
            Rule::Approval,
            Code::AwaitingApproval,
            "was merged without an admin's approval of this exact version",
        );
    }
}

/// Owner of the association's subject (the model's or dataset's owner).
pub(super) fn subject_owner(ctx: &Ctx, a: &model::Association) -> Option<String> {
    match (a.subject, &a.model, &a.dataset) {
        (AssocSubject::Model, Some(m), _) => {
            ctx.ix
                .resolves_cube(m)
                .and_then(|p| match ctx.ix.record(p) {
                    Some(Record::Mlcube(c)) => Some(c.owner.clone()),
                    _ => None,
                })
        }
        (AssocSubject::Dataset, _, Some(d)) => {
            ctx.ix
                .resolves_dataset(d)
                .and_then(|p| match ctx.ix.record(p) {
                    Some(Record::Dataset(x)) => Some(x.owner.clone()),
                    _ => None,
                })
        }
        _ => None,
    }
}

pub(super) fn check_association(ctx: &Ctx, path: &str, v: &mut Verdict) {
    let Some(Record::Association(a)) = ctx.ix.record(path) else {
        return;
    };
    let t = ctx.intro(path);
    let Some(RecordPath::Association {
        bench,
        key,
        version,
    }) = ctx.ix.files.get(path).map(|f| &f.rp)
    else {
        return;
    };
    check_chain(
        ctx,
        path,
        ctx.ix.associations.get(&(bench.clone(), key.clone())),
        *version,
        None,
        v,
    );
    ctx.signed_by(path, &a.requested_by, v);
    let Some(b) = bench_ok(ctx, path, &a.benchmark, t, v) else {
        return;
    };
    let owner = subject_owner(ctx, a);
    match (&a.model, &a.dataset) {
        (Some(m), _) => {
            cube_ok(ctx, path, "model", m, t, v);
        }
        (_, Some(d)) => match ctx.ix.resolves_dataset(d) {
            Some(p) if ctx.is_valid(p) && ctx.intro(p) <= t => {}
            _ => v.fail(
                path,
                Rule::Reference,
                format!(
                    "dataset {} v{} is not a valid dataset at this point",
                    &d.id[..12],
                    d.version
                ),
            ),
        },
        _ => {}
    }
    let requester_on_committee = b.committee.contains(&a.requested_by);
    if owner.as_deref() != Some(a.requested_by.as_str()) && !requester_on_committee {
        v.fail(path, Rule::Authority, format!(
            "{} may not request this association: only the {}'s owner or a committee member may",
            a.requested_by, if a.subject == AssocSubject::Model { "model" } else { "dataset" }
        ));
    }
    if !a.report.ok {
        v.fail(path, Rule::Reference, "its compatibility report failed");
    }
    if let (Some(sealed), Some(owner)) = (&a.sealed, &owner) {
        check_sealed(
            ctx,
            path,
            "report",
            sealed,
            &expected_recipients(ctx, b, owner, t),
            v,
        );
    }
    let committee = b.committee.clone();
    let requester = a.requested_by.clone();
    let approved = approvals(
        ctx,
        path,
        t,
        &|by, dt| {
            if by == requester {
                return Err(format!(
                    "{by} requested this association and cannot approve or reject it"
                ));
            }
            if ctx.same_person(by, &requester, dt) {
                return Err(format!(
                    "{by} holds the same key as {requester}, who requested this association; a requester never approves their own request"
                ));
            }
            let owner_accepts_invite =
                owner.as_deref() == Some(by) && committee.contains(&requester);
            if committee.iter().any(|m| m == by) || owner_accepts_invite {
                Ok(())
            } else {
                Err(format!(
                    "{by} is not on the committee of benchmark {}",
                    b.name
                ))
            }
        },
        v,
    );
    if approved.is_empty() {
        v.fail_code(
            path,
            Rule::Approval,
            Code::AwaitingApproval,
            "was merged without approval by a committee member other than the requester",
        );
    }
    for (wpath, w) in ctx.ix.decisions_on(path, DecisionKind::Withdrawal) {
        let allowed = w.by == a.requested_by
            || b.committee.contains(&w.by)
            || owner.as_deref() == Some(&w.by);
        if !allowed {
            v.fail(
                wpath,
                Rule::Authority,
                format!("{} may not withdraw this association", w.by),
            );
        }
        ctx.signed_by(wpath, &w.by, v);
    }
}

/// Whether the association of `key` with benchmark `bench` is approved and not withdrawn at `t`,
/// for exactly `model` when given.
pub(super) fn association_active(
    ctx: &Ctx,
    bench: &str,
    key: &AssocKey,
    model_ref: Option<&model::CubeRef>,
    t: usize,
) -> bool {
    ctx.ix
        .associations
        .get(&(bench.to_string(), key.clone()))
        .into_iter()
        .flatten()
        .any(|(_, p)| {
            ctx.is_valid(p)
                && ctx.intro(p) <= t
                && ctx
                    .ix
                    .decisions_on(p, DecisionKind::Withdrawal)
                    .iter()
                    .all(|(wp, _)| ctx.intro(wp) > t)
                && match (model_ref, ctx.ix.record(p)) {
                    (Some(m), Some(Record::Association(a))) => a.model.as_ref() == Some(m),
                    _ => true,
                }
        })
}

pub(super) fn model_active(ctx: &Ctx, b: &model::Benchmark, m: &model::CubeRef, t: usize) -> bool {
    &b.reference_model == m
        || association_active(ctx, &b.name, &AssocKey::Model(m.name.clone()), Some(m), t)
}

pub(super) fn check_priority(ctx: &Ctx, path: &str, v: &mut Verdict) {
    let Some(Record::Priority(p)) = ctx.ix.record(path) else {
        return;
    };
    let t = ctx.intro(path);
    numbered(
        path,
        ctx.ix
            .priorities
            .get(&(p.benchmark.clone(), p.model.clone())),
        p.number,
        v,
    );
    ctx.signed_by(path, &p.by, v);
    let latest = ctx
        .ix
        .benchmarks
        .get(&p.benchmark)
        .into_iter()
        .flatten()
        .rev()
        .find(|(_, bp)| ctx.is_valid(bp) && ctx.intro(bp) <= t)
        .and_then(|(_, bp)| match ctx.ix.record(bp) {
            Some(Record::Benchmark(b)) => Some(b),
            _ => None,
        });
    let Some(b) = latest else {
        v.fail(
            path,
            Rule::Reference,
            format!("benchmark {} is not approved", p.benchmark),
        );
        return;
    };
    if !b.committee.contains(&p.by) {
        v.fail(
            path,
            Rule::Authority,
            format!("{} is not on the committee of {}", p.by, b.name),
        );
    }
    let is_ref = b.reference_model.name == p.model;
    if !is_ref && !association_active(ctx, &b.name, &AssocKey::Model(p.model.clone()), None, t) {
        v.fail(
            path,
            Rule::Reference,
            format!(
                "model {} has no approved association with {}",
                p.model, b.name
            ),
        );
    }
}
