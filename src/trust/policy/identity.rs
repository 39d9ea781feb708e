//! Roots, users, grants, meta manifests and decisions about records no longer in the tree.

use std::collections::BTreeSet;

use crate::model::{self, DecisionKind, Record, RecordPath, build};

use super::super::Rule;
use super::super::index::Index;
use super::super::verify::{Ctx, Verdict};
use super::*;

pub(super) fn check_root(ctx: &Ctx, path: &str, v: &mut Verdict) {
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
        if let Some(id) = super::super::keys::key_id_of(k)
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

pub(super) fn check_user(ctx: &Ctx, path: &str, v: &mut Verdict) {
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

pub(super) fn check_grant(ctx: &Ctx, path: &str, v: &mut Verdict) {
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
    if !ctx.ix.signatures.contains_key(path) {
        v.fail(
            path,
            Rule::Signature,
            format!("is not signed (needs a signature by {})", g.by),
        );
    } else if !good.contains(&g.by) {
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
            .any(|u| super::super::keys::key_id_of(&u.minisign).as_deref() == Some(key))
    {
        v.fail(
            path,
            Rule::Reference,
            format!("revokes key {key}, which is not a key of {}", g.handle),
        );
    }
}

pub(super) fn check_meta(ctx: &Ctx, path: &str, v: &mut Verdict) {
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
pub(super) fn select_loose_decisions(ix: &Index) -> Vec<String> {
    ix.decisions
        .iter()
        .filter(|(subject, _)| !ix.files.contains_key(*subject))
        .flat_map(|(_, ds)| ds.iter().cloned())
        .collect()
}

pub(super) fn check_loose_decision(ctx: &Ctx, path: &str, v: &mut Verdict) {
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
