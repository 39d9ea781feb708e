//! Who may sign, approve and reference what (DESIGN.md "Trust rules" and "Who signs, who
//! approves, who merges"), as one check per record kind, run in dependency order.

use std::collections::BTreeSet;

use crate::model::{
    self, AssocKey, AssocSubject, DecisionKind, Record, RecordPath, Release, Sha256, build,
};

use super::index::Index;
use super::verify::{Ctx, Verdict};
use super::{Problem, Rule};

pub(super) struct Stage {
    pub select: fn(&Index) -> Vec<String>,
    pub check: fn(&Ctx, &str, &mut Verdict),
    pub sequential: bool,
}

fn all(
    m: &std::collections::BTreeMap<impl Ord, std::collections::BTreeMap<u32, String>>,
) -> Vec<String> {
    m.values().flat_map(|v| v.values().cloned()).collect()
}

pub(super) const STAGES: &[Stage] = &[
    Stage {
        select: |ix| ix.roots.values().cloned().collect(),
        check: check_root,
        sequential: true,
    },
    Stage {
        select: |ix| all(&ix.users),
        check: check_user,
        sequential: false,
    },
    Stage {
        select: |ix| all(&ix.grants),
        check: check_grant,
        sequential: false,
    },
    Stage {
        select: |ix| all(&ix.cubes),
        check: check_cube,
        sequential: false,
    },
    Stage {
        select: |ix| all(&ix.benchmarks),
        check: check_benchmark,
        sequential: false,
    },
    Stage {
        select: |ix| all(&ix.datasets),
        check: check_dataset,
        sequential: false,
    },
    Stage {
        select: |ix| all(&ix.associations),
        check: check_association,
        sequential: false,
    },
    Stage {
        select: |ix| all(&ix.priorities),
        check: check_priority,
        sequential: false,
    },
    Stage {
        select: |ix| all(&ix.results),
        check: check_result,
        sequential: false,
    },
    Stage {
        select: |ix| all(&ix.leaderboards),
        check: check_leaderboard,
        sequential: false,
    },
    Stage {
        select: |ix| ix.metas.values().cloned().collect(),
        check: check_meta,
        sequential: true,
    },
    Stage {
        select: select_loose_decisions,
        check: check_loose_decision,
        sequential: false,
    },
];

/// Version N needs version N-1 (versions go up by exactly one) and, after 1, names its sha.
fn check_chain(
    ctx: &Ctx,
    path: &str,
    versions: Option<&std::collections::BTreeMap<u32, String>>,
    version: u32,
    previous: Option<&Sha256>,
    v: &mut Verdict,
) {
    if version <= 1 {
        return;
    }
    match versions.and_then(|m| m.get(&(version - 1))) {
        None => v.fail(
            path,
            Rule::Reference,
            format!(
                "is version {version} but version {} does not exist",
                version - 1
            ),
        ),
        Some(prev) => {
            if let Some(sha) = previous
                && ctx.ix.sha(prev) != Some(sha)
            {
                v.fail(
                    path,
                    Rule::Reference,
                    format!("`previous` does not match the sha256 of {prev}"),
                );
            }
        }
    }
}

fn numbered(
    path: &str,
    versions: Option<&std::collections::BTreeMap<u32, String>>,
    n: u32,
    v: &mut Verdict,
) {
    if n > 1 && !versions.is_some_and(|m| m.contains_key(&(n - 1))) {
        v.fail(
            path,
            Rule::Reference,
            format!("is number {n} but number {} does not exist", n - 1),
        );
    }
}

fn check_root(ctx: &Ctx, path: &str, v: &mut Verdict) {
    let Some(Record::Root(root)) = ctx.ix.record(path) else {
        return;
    };
    let t = ctx.intro(path);
    check_chain(
        ctx,
        path,
        Some(&ctx.ix.roots),
        root.version,
        root.previous.as_ref(),
        v,
    );
    let own: Vec<(String, String)> = root
        .admins
        .iter()
        .map(|a| (a.handle.clone(), a.minisign.clone()))
        .collect();
    let mut key_ids = BTreeSet::new();
    for (h, k) in &own {
        if let Some(id) = super::keys::key_id_of(k)
            && !key_ids.insert(id)
        {
            v.fail(
                path,
                Rule::Root,
                format!(
                    "admin {h} shares a key with another admin; thresholds count distinct people"
                ),
            );
        }
    }
    let previous = if root.version > 1 {
        let prev_path = build::root(root.version - 1);
        if !ctx.is_valid(&prev_path) {
            v.fail(
                path,
                Rule::Root,
                format!("follows {prev_path}, which is not valid"),
            );
            return;
        }
        match ctx.ix.record(&prev_path) {
            Some(Record::Root(r)) => Some(r),
            _ => None,
        }
    } else {
        None
    };
    let good = ctx.signatures(path, v, &|signer, _t| {
        let key = own
            .iter()
            .find(|(h, _)| h == signer)
            .map(|(_, k)| k.clone())
            .or_else(|| {
                previous.and_then(|p| {
                    p.admins
                        .iter()
                        .find(|a| a.handle == signer)
                        .map(|a| a.minisign.clone())
                })
            });
        key.and_then(|k| minisign::PublicKey::from_base64(&k).ok())
            .ok_or_else(|| format!("{signer} is not an admin of this root or the one before it"))
    });
    // A signer listed in both roots with different keys: the signature verified with the new key.
    let own_count = root
        .admins
        .iter()
        .filter(|a| good.contains(&a.handle))
        .count();
    if own_count < root.threshold as usize {
        v.fail(
            path,
            Rule::Root,
            format!(
                "has {own_count} valid signature(s) by its own admins; its threshold is {}",
                root.threshold
            ),
        );
    }
    if let Some(prev) = previous {
        let prev_count = prev
            .admins
            .iter()
            .filter(|a| good.contains(&a.handle))
            .count();
        if prev_count < prev.threshold as usize {
            v.fail(path, Rule::Root, format!(
                "has {prev_count} valid signature(s) by the admins of version {}; rotation needs {}",
                prev.version, prev.threshold
            ));
        }
    }
    if root.version == 1 && t != 0 && !ctx.timeline.commits.is_empty() {
        v.fail(
            path,
            Rule::Root,
            "root v1 must be in the registry's first commit",
        );
    }
}

/// Checks the decisions on `subject` by people `may_decide` accepts, signed by them, merged no
/// later than `by_t`. Returns the handles with valid approvals; reports rejections.
fn approvals(
    ctx: &Ctx,
    subject: &str,
    by_t: usize,
    may_decide: &dyn Fn(&str, usize) -> Result<(), String>,
    v: &mut Verdict,
) -> BTreeSet<String> {
    let mut who = BTreeSet::new();
    for kind in [DecisionKind::Approval, DecisionKind::Rejection] {
        for (dpath, d) in ctx.ix.decisions_on(subject, kind) {
            let t = ctx.intro(dpath);
            if let Err(why) = may_decide(&d.by, t) {
                v.fail(dpath, Rule::Approval, why);
                continue;
            }
            if !ctx.signed_by(dpath, &d.by, v) {
                continue;
            }
            if t > by_t {
                continue;
            }
            match kind {
                DecisionKind::Approval => {
                    who.insert(d.by.clone());
                }
                _ => v.fail(
                    subject,
                    Rule::Approval,
                    format!("was rejected by {} ({dpath}) but merged anyway", d.by),
                ),
            }
        }
    }
    who
}

fn check_user(ctx: &Ctx, path: &str, v: &mut Verdict) {
    let Some(Record::User(u)) = ctx.ix.record(path) else {
        return;
    };
    let t = ctx.intro(path);
    check_chain(
        ctx,
        path,
        ctx.ix.users.get(&u.handle),
        u.version,
        u.previous.as_ref(),
        v,
    );
    if ctx.is_admin(&u.handle, t) {
        v.fail(
            path,
            Rule::Authority,
            format!("{} is an admin; admin keys live in the root", u.handle),
        );
    }
    // Self-signed with the key in the file.
    let good = ctx.signatures(path, v, &|signer, _| {
        if signer != u.handle {
            return Err(format!(
                "{signer} may not sign {path}; a user version is signed by its user"
            ));
        }
        minisign::PublicKey::from_base64(&u.minisign).map_err(|e| e.to_string())
    });
    if !good.contains(&u.handle) && v.ok() {
        v.fail(
            path,
            Rule::Signature,
            format!(
                "has no valid signature by {} with the key it names",
                u.handle
            ),
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
                Err(format!("{by} is not an admin; only admins admit users"))
            }
        },
        v,
    );
    if approved.is_empty() {
        v.fail(
            path,
            Rule::Approval,
            "was merged without an admin's approval of this exact version",
        );
    }
}

fn check_grant(ctx: &Ctx, path: &str, v: &mut Verdict) {
    let Some(Record::Grant(g)) = ctx.ix.record(path) else {
        return;
    };
    let t = ctx.intro(path);
    numbered(path, ctx.ix.grants.get(&g.handle), g.number, v);
    let valid = |p: &str| ctx.is_valid(p);
    let Some(root) = ctx.ix.root_at(t, &valid) else {
        v.fail(
            path,
            Rule::Authority,
            "no valid root when this grant was merged",
        );
        return;
    };
    let good = ctx.signatures(path, v, &|signer, st| {
        if !ctx.is_admin(signer, st) {
            return Err(format!(
                "{signer} is not an admin; grants and revocations are signed by admins"
            ));
        }
        ctx.key_at(signer, st)
            .ok_or_else(|| format!("{signer} has no valid key"))
    });
    if !good.contains(&g.by) {
        v.fail(
            path,
            Rule::Signature,
            format!("has no valid signature by {}, who made it", g.by),
        );
    }
    let admins = good
        .iter()
        .filter(|h| root.admins.iter().any(|a| &a.handle == *h))
        .count();
    if admins < root.threshold as usize {
        v.fail(
            path,
            Rule::Approval,
            format!(
                "has {admins} admin signature(s); the admin threshold is {}",
                root.threshold
            ),
        );
    }
    let user_versions: Vec<&model::User> = ctx
        .ix
        .users
        .get(&g.handle)
        .into_iter()
        .flatten()
        .filter(|(_, p)| ctx.intro(p) <= t)
        .filter_map(|(_, p)| match ctx.ix.record(p) {
            Some(Record::User(u)) => Some(u),
            _ => None,
        })
        .collect();
    if user_versions.is_empty() {
        v.fail(
            path,
            Rule::Reference,
            format!("concerns {}, who is not a registered user", g.handle),
        );
    }
    if let (model::GrantAction::RevokeKey, Some(key)) = (g.action, &g.key)
        && !user_versions
            .iter()
            .any(|u| super::keys::key_id_of(&u.minisign).as_deref() == Some(key))
    {
        v.fail(
            path,
            Rule::Reference,
            format!("revokes key {key}, which is not a key of {}", g.handle),
        );
    }
}

fn check_cube(ctx: &Ctx, path: &str, v: &mut Verdict) {
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
    let yaml = build::mlcube_file(&c.name, c.version, model::CubeFile::MlcubeYaml);
    match ctx.ix.sha(&yaml) {
        None => v.fail(path, Rule::Reference, format!("{yaml} is missing")),
        Some(s) if s != &c.mlcube_yaml => v.fail(
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

/// The cube a reference names, valid and merged by `t`.
fn cube_ok(
    ctx: &Ctx,
    path: &str,
    what: &str,
    r: &model::CubeRef,
    t: usize,
    v: &mut Verdict,
) -> bool {
    match ctx.ix.resolves_cube(r) {
        Some(p) if ctx.is_valid(p) && ctx.intro(p) <= t => true,
        Some(_) => {
            v.fail(
                path,
                Rule::Reference,
                format!(
                    "{what} {} v{} is not a valid cube at this point",
                    r.name, r.version
                ),
            );
            false
        }
        None => {
            v.fail(
                path,
                Rule::Reference,
                format!(
                    "{what} {} v{} (sha256 {}) does not resolve",
                    r.name,
                    r.version,
                    r.sha256.short()
                ),
            );
            false
        }
    }
}

/// The benchmark a reference names, valid (approved) and merged by `t`.
fn bench_ok<'a>(
    ctx: &'a Ctx,
    path: &str,
    r: &model::BenchRef,
    t: usize,
    v: &mut Verdict,
) -> Option<&'a model::Benchmark> {
    match ctx.ix.resolves_bench(r) {
        Some(p) if ctx.is_valid(p) && ctx.intro(p) <= t => match ctx.ix.record(p) {
            Some(Record::Benchmark(b)) => Some(b),
            _ => None,
        },
        Some(_) => {
            v.fail(
                path,
                Rule::Reference,
                format!(
                    "benchmark {} v{} is not approved at this point",
                    r.name, r.version
                ),
            );
            None
        }
        None => {
            v.fail(
                path,
                Rule::Reference,
                format!(
                    "benchmark {} v{} (sha256 {}) does not resolve",
                    r.name,
                    r.version,
                    r.sha256.short()
                ),
            );
            None
        }
    }
}

fn check_benchmark(ctx: &Ctx, path: &str, v: &mut Verdict) {
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
        v.fail(
            path,
            Rule::Approval,
            "was merged without an admin's approval of this exact version",
        );
    }
}

/// The expected recipients of data sealed for benchmark `b` and owner `owner` at `t`.
fn expected_recipients(
    ctx: &Ctx,
    b: &model::Benchmark,
    owner: &str,
    t: usize,
) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for h in b
        .committee
        .iter()
        .map(String::as_str)
        .chain(std::iter::once(owner))
    {
        if let Some(age) = age_key_at(ctx, h, t) {
            out.insert((h.to_string(), age));
        }
    }
    out
}

fn age_key_at(ctx: &Ctx, handle: &str, t: usize) -> Option<String> {
    let valid = |p: &str| ctx.is_valid(p);
    if let Some(a) = ctx
        .ix
        .root_at(t, &valid)
        .and_then(|r| r.admins.iter().find(|a| a.handle == handle))
    {
        return Some(a.age.clone());
    }
    ctx.ix
        .users
        .get(handle)?
        .values()
        .rev()
        .filter(|p| ctx.is_valid(p) && ctx.intro(p) <= t)
        .find_map(|p| match ctx.ix.record(p) {
            Some(Record::User(u)) => Some(u.age.clone()),
            _ => None,
        })
}

fn check_sealed(
    ctx: &Ctx,
    owner_path: &str,
    purpose: &str,
    sealed: &model::Sealed,
    expected: &BTreeSet<(String, String)>,
    v: &mut Verdict,
) {
    let want_file = build::sealed_file_name(owner_path, purpose);
    if sealed.file != want_file {
        v.fail(
            owner_path,
            Rule::Sealed,
            format!(
                "names sealed file `{}`; it must be `{want_file}`",
                sealed.file
            ),
        );
        return;
    }
    if sealed.schema != model::envelope::SCHEMA_METRICS {
        v.fail(
            owner_path,
            Rule::Sealed,
            format!("unknown sealed schema `{}`", sealed.schema),
        );
    }
    let file = build::sealed(owner_path, purpose);
    let Some(bytes) = ctx.ix.bytes(&file) else {
        v.fail(
            owner_path,
            Rule::Sealed,
            format!("its sealed payload {file} is missing"),
        );
        return;
    };
    if ctx.ix.sha(&file) != Some(&sealed.ciphertext_sha256) {
        v.fail(
            &file,
            Rule::Sealed,
            format!("does not match the ciphertext sha256 signed in {owner_path}"),
        );
    }
    match model::envelope::stanza_count(bytes) {
        Ok(n) if n == sealed.recipients.len() => {}
        Ok(n) => v.fail(
            &file,
            Rule::Sealed,
            format!(
                "is encrypted to {n} recipient(s), the manifest lists {}",
                sealed.recipients.len()
            ),
        ),
        Err(e) => v.fail(&file, Rule::Sealed, e.to_string()),
    }
    let listed: BTreeSet<(String, String)> = sealed
        .recipients
        .iter()
        .map(|r| (r.handle.clone(), r.age.clone()))
        .collect();
    if &listed != expected {
        let want: Vec<&str> = expected.iter().map(|(h, _)| h.as_str()).collect();
        let got: Vec<&str> = listed.iter().map(|(h, _)| h.as_str()).collect();
        v.fail(owner_path, Rule::Sealed, format!(
            "is sealed to [{}] but the policy at this commit names [{}] (the committee and the data owner, with their current keys)",
            got.join(", "), want.join(", ")
        ));
    }
}

fn check_dataset(ctx: &Ctx, path: &str, v: &mut Verdict) {
    let Some(Record::Dataset(d)) = ctx.ix.record(path) else {
        return;
    };
    let t = ctx.intro(path);
    let versions = ctx.ix.datasets.get(&d.id);
    check_chain(ctx, path, versions, d.version, None, v);
    if let Some(first) = versions.and_then(|m| m.values().next())
        && let Some(Record::Dataset(d1)) = ctx.ix.record(first)
        && d1.owner != d.owner
    {
        v.fail(
            path,
            Rule::Authority,
            format!("dataset belongs to {}", d1.owner),
        );
    }
    ctx.signed_by(path, &d.owner, v);
    let want_id = model::ids::dataset_id(&d.owner, &d.preparator.sha256, &d.content_sha256);
    if want_id != d.id {
        v.fail(
            path,
            Rule::Reference,
            "id is not derived from its owner, preparator and content hash (docs/format.md)",
        );
    }
    let Some(b) = bench_ok(ctx, path, &d.benchmark, t, v) else {
        return;
    };
    if b.data_preparator != d.preparator {
        v.fail(
            path,
            Rule::Reference,
            format!(
                "was prepared with {} v{}, but benchmark {} v{} uses {} v{}",
                d.preparator.name,
                d.preparator.version,
                b.name,
                b.version,
                b.data_preparator.name,
                b.data_preparator.version
            ),
        );
    }
    check_sealed(
        ctx,
        path,
        "statistics",
        &d.statistics,
        &expected_recipients(ctx, b, &d.owner, t),
        v,
    );
}

/// Owner of the association's subject (the model's or dataset's owner).
fn subject_owner(ctx: &Ctx, a: &model::Association) -> Option<String> {
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

fn check_association(ctx: &Ctx, path: &str, v: &mut Verdict) {
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
        &|by, _| {
            if by == requester {
                return Err(format!(
                    "{by} requested this association and cannot approve or reject it"
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
        v.fail(
            path,
            Rule::Approval,
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
fn association_active(
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

fn model_active(ctx: &Ctx, b: &model::Benchmark, m: &model::CubeRef, t: usize) -> bool {
    &b.reference_model == m
        || association_active(ctx, &b.name, &AssocKey::Model(m.name.clone()), Some(m), t)
}

fn check_priority(ctx: &Ctx, path: &str, v: &mut Verdict) {
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

fn check_result(ctx: &Ctx, path: &str, v: &mut Verdict) {
    let Some(Record::Result(r)) = ctx.ix.record(path) else {
        return;
    };
    let t = ctx.intro(path);
    numbered(
        path,
        ctx.ix.results.get(&(
            r.benchmark.name.clone(),
            r.dataset.id.clone(),
            r.model.name.clone(),
        )),
        r.number,
        v,
    );
    ctx.signed_by(path, &r.owner, v);
    let Some(b) = bench_ok(ctx, path, &r.benchmark, t, v) else {
        return;
    };
    let dataset = match ctx.ix.resolves_dataset(&r.dataset) {
        Some(p) if ctx.is_valid(p) && ctx.intro(p) <= t => match ctx.ix.record(p) {
            Some(Record::Dataset(d)) => Some(d),
            _ => None,
        },
        _ => {
            v.fail(
                path,
                Rule::Reference,
                "its dataset does not resolve to a valid dataset",
            );
            None
        }
    };
    if let Some(d) = dataset
        && d.owner != r.owner
    {
        v.fail(
            path,
            Rule::Authority,
            format!("only the dataset's owner ({}) submits its results", d.owner),
        );
    }
    cube_ok(ctx, path, "model", &r.model, t, v);
    if b.metrics != r.metrics || b.data_preparator != r.preparator {
        v.fail(
            path,
            Rule::Reference,
            format!(
                "its metrics or preparator cube differs from benchmark {} v{}",
                b.name, b.version
            ),
        );
    }
    if !model_active(ctx, b, &r.model, t) {
        v.fail(
            path,
            Rule::Approval,
            format!(
                "model {} v{} has no approved association with {}",
                r.model.name, r.model.version, b.name
            ),
        );
    }
    if !association_active(
        ctx,
        &b.name,
        &AssocKey::Dataset(r.dataset.id.clone()),
        None,
        t,
    ) {
        v.fail(
            path,
            Rule::Approval,
            format!(
                "dataset {} has no approved association with {}",
                &r.dataset.id[..12],
                b.name
            ),
        );
    }
    if let Some(sealed) = &r.sealed {
        check_sealed(
            ctx,
            path,
            "result",
            sealed,
            &expected_recipients(ctx, b, &r.owner, t),
            v,
        );
    }
}

/// How much a policy shows; a release may not show more than any covered result agreed to.
fn wider(release: &model::Policy, agreed: &model::Policy) -> Option<String> {
    if release.release > agreed.release {
        return Some(format!(
            "shows {:?} but the result was submitted under {:?}",
            release.release, agreed.release
        ));
    }
    if release.dataset_names == model::DatasetNaming::Shown
        && agreed.dataset_names == model::DatasetNaming::Pseudonymised
    {
        return Some(
            "shows dataset names but the result was submitted under pseudonymised names".into(),
        );
    }
    if release.min_datasets < agreed.min_datasets {
        return Some(format!(
            "lists models with {} dataset(s); the result was submitted under a minimum of {}",
            release.min_datasets, agreed.min_datasets
        ));
    }
    None
}

fn check_leaderboard(ctx: &Ctx, path: &str, v: &mut Verdict) {
    let Some(Record::Leaderboard(l)) = ctx.ix.record(path) else {
        return;
    };
    let t = ctx.intro(path);
    numbered(
        path,
        ctx.ix.leaderboards.get(&l.benchmark.name),
        l.number,
        v,
    );
    let Some(b) = bench_ok(ctx, path, &l.benchmark, t, v) else {
        return;
    };
    let good = ctx.signatures(path, v, &|signer, st| {
        if !b.committee.iter().any(|m| m == signer) {
            return Err(format!(
                "{signer} is not on the committee of {}; releases are signed by the committee",
                b.name
            ));
        }
        ctx.key_at(signer, st)
            .ok_or_else(|| format!("{signer} has no valid key"))
    });
    if !good.contains(&l.by) {
        v.fail(
            path,
            Rule::Signature,
            format!("has no valid signature by {}, who made it", l.by),
        );
    }
    if good.len() < b.release_threshold as usize {
        v.fail(
            path,
            Rule::Approval,
            format!(
                "has {} committee signature(s); the release threshold is {}",
                good.len(),
                b.release_threshold
            ),
        );
    }
    if l.policy != b.policy {
        v.fail(
            path,
            Rule::Reference,
            format!(
                "applies a policy that differs from benchmark {} v{}'s",
                b.name, b.version
            ),
        );
    }
    let covered: BTreeSet<&str> = l.results.iter().map(|c| c.path.as_str()).collect();
    for c in &l.results {
        if ctx.ix.sha(&c.path) != Some(&c.sha256) {
            v.fail(
                path,
                Rule::Reference,
                format!("covers {} with a sha256 that does not match", c.path),
            );
            continue;
        }
        if !ctx.is_valid(&c.path) || ctx.intro(&c.path) > t {
            v.fail(
                path,
                Rule::Reference,
                format!(
                    "covers {}, which is not a valid result (unapproved association?)",
                    c.path
                ),
            );
            continue;
        }
        if let Some(Record::Result(r)) = ctx.ix.record(&c.path) {
            if r.benchmark.name != b.name {
                v.fail(
                    path,
                    Rule::Reference,
                    format!("covers {}, a result of another benchmark", c.path),
                );
            }
            if let Some((_, agreed)) = ctx.ix.benchmark(&r.benchmark.name, r.benchmark.version)
                && let Some(why) = wider(&l.policy, &agreed.policy)
            {
                v.fail(path, Rule::Sealed, format!("{why} ({})", c.path));
            }
        }
    }
    for e in &l.entries {
        let cells_allowed = l.policy.release == Release::CrossProduct;
        if !e.cells.is_empty() && !cells_allowed {
            v.fail(
                path,
                Rule::Sealed,
                format!(
                    "shows per-dataset cells for {} but the policy releases {:?}",
                    e.model.name, l.policy.release
                ),
            );
        }
        if l.policy.release == Release::Aggregate
            && e.metrics.keys().any(|k| k != &l.policy.primary_metric)
        {
            v.fail(
                path,
                Rule::Sealed,
                format!(
                    "shows metrics beyond {} for {} under an aggregate policy",
                    l.policy.primary_metric, e.model.name
                ),
            );
        }
        for cell in &e.cells {
            if !covered.contains(cell.result.as_str()) {
                v.fail(
                    path,
                    Rule::Reference,
                    format!("shows a cell from {}, which it does not cover", cell.result),
                );
            }
            if l.policy.dataset_names == model::DatasetNaming::Pseudonymised
                && !cell.dataset.starts_with("site-")
            {
                v.fail(
                    path,
                    Rule::Sealed,
                    format!(
                        "names dataset `{}` although the policy pseudonymises names",
                        cell.dataset
                    ),
                );
            }
        }
    }
}

fn check_meta(ctx: &Ctx, path: &str, v: &mut Verdict) {
    let Some(Record::Meta(m)) = ctx.ix.record(path) else {
        return;
    };
    numbered(path, Some(&ctx.ix.metas), m.version, v);
    let t = ctx.intro(path);
    if !ctx.is_admin(&m.by, t) {
        v.fail(
            path,
            Rule::Authority,
            format!(
                "{} is not an admin; only admins change README, CI and hooks",
                m.by
            ),
        );
    }
    ctx.signed_by(path, &m.by, v);
}

/// Decisions whose subject is not in the tree (rejections of branches that were deleted).
fn select_loose_decisions(ix: &Index) -> Vec<String> {
    ix.decisions
        .iter()
        .filter(|(subject, _)| !ix.files.contains_key(*subject))
        .flat_map(|(_, ds)| ds.iter().cloned())
        .collect()
}

fn check_loose_decision(ctx: &Ctx, path: &str, v: &mut Verdict) {
    let Some(Record::Decision(d)) = ctx.ix.record(path) else {
        return;
    };
    let t = ctx.intro(path);
    if d.kind != DecisionKind::Rejection.as_str() {
        v.fail(
            path,
            Rule::Reference,
            format!("{} of {}, which is not in the registry", d.kind, d.subject),
        );
        return;
    }
    let allowed = match ctx.ix.files.get(path).map(|f| &f.rp) {
        Some(RecordPath::Decision { subject, .. }) => match model::classify(subject) {
            Ok(RecordPath::User { .. }) | Ok(RecordPath::Benchmark { .. }) => {
                ctx.is_admin(&d.by, t)
            }
            Ok(RecordPath::Association { bench, .. }) => ctx
                .ix
                .benchmarks
                .get(&bench)
                .into_iter()
                .flatten()
                .filter_map(|(_, p)| match ctx.ix.record(p) {
                    Some(Record::Benchmark(b)) => Some(b),
                    _ => None,
                })
                .any(|b| b.committee.contains(&d.by)),
            _ => false,
        },
        _ => false,
    };
    if !allowed {
        v.fail(
            path,
            Rule::Authority,
            format!("{} may not reject {}", d.by, d.subject),
        );
    }
    ctx.signed_by(path, &d.by, v);
}

/// Files that only make sense next to a record: signatures of missing files, sealed payloads and
/// cube files nobody references, meta files no meta manifest pins.
pub(super) fn check_orphans(ctx: &Ctx, problems: &mut Vec<Problem>) {
    let ix = ctx.ix;
    let mut push = |path: &str, rule: Rule, message: String| {
        problems.push(Problem {
            path: path.to_string(),
            rule,
            message,
            commit: None,
        })
    };
    for (signed, sigs) in &ix.signatures {
        if !ix.files.contains_key(signed) {
            for (_, sp) in sigs {
                push(
                    sp,
                    Rule::Signature,
                    format!("signs {signed}, which is not in the registry"),
                );
            }
        }
    }
    for (owner, files) in &ix.sealed {
        let referenced = match ix.record(owner) {
            Some(Record::Dataset(d)) => vec![d.statistics.file.clone()],
            Some(Record::Association(a)) => a.sealed.iter().map(|s| s.file.clone()).collect(),
            Some(Record::Result(r)) => r.sealed.iter().map(|s| s.file.clone()).collect(),
            _ => vec![],
        };
        for f in files {
            let name = f.rsplit('/').next().unwrap_or(f);
            if !referenced.iter().any(|r| r == name) {
                push(f, Rule::Sealed, format!("is not referenced by {owner}"));
            }
        }
    }
    for (path, info) in &ix.files {
        if let RecordPath::MlcubeFile { name, version, .. } = &info.rp
            && ix.cube(name, *version).is_none()
        {
            push(
                path,
                Rule::DefaultDeny,
                format!("has no {}", build::mlcube(name, *version)),
            );
        }
    }
    let latest_meta = ix
        .metas
        .values()
        .rev()
        .find(|p| ctx.is_valid(p))
        .and_then(|p| match ix.record(p) {
            Some(Record::Meta(m)) => Some((p.clone(), m)),
            _ => None,
        });
    for f in &ix.meta_files {
        let pinned = latest_meta.as_ref().and_then(|(_, m)| m.files.get(f));
        match (pinned, ix.sha(f)) {
            (Some(want), Some(have)) if want == have => {}
            (Some(_), _) => push(
                f,
                Rule::Signature,
                format!(
                    "differs from the sha256 pinned in {} (README, CI and hook changes need an admin's new meta version)",
                    latest_meta
                        .as_ref()
                        .map(|(p, _)| p.as_str())
                        .unwrap_or("meta")
                ),
            ),
            (None, _) => push(
                f,
                Rule::DefaultDeny,
                "is not pinned by any valid meta/v<N>.toml".into(),
            ),
        }
    }
}
