//! Roots, users, grants, meta manifests and decisions about records no longer in the tree.

use std::collections::{BTreeMap, BTreeSet};

use crate::model::{self, DecisionKind, Record, RecordPath, build};

use super::super::index::Index;
use super::super::keys::{key_id, key_id_of, raw_key, raw_key_of};
use super::super::verify::{Ctx, Run, Signed, Verdict};
use super::super::view::Reach;
use super::super::{Code, Rule};
use super::*;

pub(super) fn check_root(ctx: &Ctx, path: &str, v: &mut Verdict) {
    let Some(Record::Root(root)) = ctx.ix.record(path) else {
        return;
    };
    let Some(info) = ctx.ix.files.get(path) else {
        return;
    };
    let t = ctx.intro(path);
    check_chain(
        ctx,
        path,
        Some(ctx.ix.roots),
        root.version,
        root.previous.as_ref(),
        v,
    );
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
    if let Some(p) = previous
        && root.rules() < p.rules()
    {
        v.fail(
            path,
            Rule::Root,
            format!(
                "lowers the trust rules from {} to {}; rules only go up",
                p.rules(),
                root.rules()
            ),
        );
    }
    let own = listed_keys(path, root, v);
    let prev = previous.map(|p| listed_keys(path, p, &mut Verdict::default()));
    shared_keys(path, root, &own, v);
    // Each signature counts toward a version's threshold only if it verifies with the key
    // that version lists for its signer: a new root cannot vouch for itself in the old
    // admins' name (docs/design.md, rotation).
    let mut own_good = Signed::default();
    let mut prev_good = Signed::default();
    for (signer, sig_path) in ctx.ix.signatures.get(path).into_iter().flatten() {
        let named = match ctx.ix.files.get(sig_path).map(|f| &f.rp) {
            Some(RecordPath::Signature { key_id, .. }) => key_id.clone(),
            _ => None,
        };
        let mut candidates: Vec<(bool, bool, &minisign::PublicKey)> = Vec::new();
        if let Some(k) = own.get(signer.as_str()) {
            candidates.push((true, false, k));
        }
        if let Some(k) = prev.as_ref().and_then(|p| p.get(signer.as_str())) {
            match candidates.first_mut() {
                Some(c) if raw_key(c.2) == raw_key(k) => c.1 = true,
                _ => candidates.push((false, true, k)),
            }
        }
        if let Some(id) = &named {
            candidates.retain(|(_, _, k)| &key_id(k) == id);
        }
        if candidates.is_empty() {
            let why = match &named {
                Some(id) => format!(
                    "names key {id}, which is not a key of {signer} in this root or the one before it"
                ),
                None => format!("{signer} is not an admin of this root or the one before it"),
            };
            v.fail(sig_path, Rule::Authority, why);
            continue;
        }
        let mut failures = Vec::new();
        let mut verified = false;
        for (in_own, in_prev, k) in candidates {
            let mut one = Verdict::default();
            if ctx.check_signature(info, sig_path, signer, k, &mut one) {
                verified = true;
                if in_own {
                    own_good.0.insert(signer.clone(), raw_key(k));
                }
                if in_prev {
                    prev_good.0.insert(signer.clone(), raw_key(k));
                }
            } else {
                failures.extend(one.problems);
            }
        }
        if !verified {
            // A key mismatch against one candidate says less than a failure against the
            // other: report the most telling problem.
            failures.sort_by_key(|p| p.code == Code::WrongKey);
            v.problems.extend(failures.into_iter().take(1));
        }
    }
    threshold_of(
        v,
        path,
        own_good.people(&|_| true),
        root.threshold,
        "its own admins (with the keys it lists)",
    );
    if let Some(p) = previous {
        threshold_of(
            v,
            path,
            prev_good.people(&|_| true),
            p.threshold,
            &format!(
                "the admins of version {} (with the keys version {} lists); rotation needs them",
                p.version, p.version
            ),
        );
    }
    if root.version == 1 && t != 0 && ctx.has_history() {
        v.fail(
            path,
            Rule::Root,
            "root v1 must be in the registry's first commit",
        );
    }
}

/// Each admin's parsed key in `root`, reporting keys that do not parse.
fn listed_keys<'r>(
    path: &str,
    root: &'r model::Root,
    v: &mut Verdict,
) -> BTreeMap<&'r str, minisign::PublicKey> {
    let mut keys = BTreeMap::new();
    for a in &root.admins {
        match minisign::PublicKey::from_base64(&a.minisign) {
            Ok(k) => {
                keys.insert(a.handle.as_str(), k);
            }
            Err(e) => v.fail(
                path,
                Rule::Root,
                format!("admin {}'s key does not parse: {e}", a.handle),
            ),
        }
    }
    keys
}

/// Two admins of one root with the same key (by id, or by the raw key behind different ids).
fn shared_keys(
    path: &str,
    root: &model::Root,
    keys: &BTreeMap<&str, minisign::PublicKey>,
    v: &mut Verdict,
) {
    let mut ids = BTreeSet::new();
    let mut raws = BTreeMap::new();
    for a in &root.admins {
        let Some(k) = keys.get(a.handle.as_str()) else {
            continue;
        };
        if !ids.insert(key_id(k)) {
            v.fail_code(
                path,
                Rule::Root,
                Code::SharedKey,
                format!(
                    "admin {} shares a key with another admin; thresholds count distinct people",
                    a.handle
                ),
            );
        } else if let Some(other) = raws.insert(raw_key(k), a.handle.as_str()) {
            v.fail_code(
                path,
                Rule::Root,
                Code::SharedKey,
                format!(
                    "admins {other} and {} hold the same public key under different key ids; thresholds count distinct people and keys",
                    a.handle
                ),
            );
        }
    }
}

/// Whether `people` (distinct handles with distinct keys) meets `need`. This holds under every
/// trust-rules version: cohort never wrote a root that needs the leniency older verifiers
/// showed (an admin's key only ever changed by hand), so a shortfall is always a forgery.
fn threshold_of(v: &mut Verdict, path: &str, people: usize, need: u32, by: &str) {
    if people < need as usize {
        v.fail_code(
            path,
            Rule::Root,
            Code::RootThreshold,
            format!(
                "has {people} valid signature(s) by {by}; the threshold is {need} (distinct people and keys)"
            ),
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
        v.fail_code(
            path,
            Rule::Approval,
            Code::AwaitingApproval,
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
    let is_admin = |h: &str| root.admins.iter().any(|a| a.handle == h);
    let admins = good.people(&is_admin);
    if admins < root.threshold as usize {
        v.fail(
            path,
            Rule::Approval,
            format!(
                "has {admins} admin signature(s) by distinct people and keys; the admin threshold is {}",
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
            .any(|u| key_id_of(&u.minisign).as_deref() == Some(key))
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
    numbered(path, Some(ctx.ix.metas), m.version, v);
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

/// Every decision record: each is accounted for here, whether or not a record's check
/// consumes it (a decision that names other bytes, or a kind of record nobody decides on,
/// would otherwise sit on main unchecked forever).
pub(super) fn select_decisions(ix: &Index) -> Vec<String> {
    ix.decisions.values().flatten().cloned().collect()
}

/// The decisions each kind of subject can take.
fn decisions_allowed(subject: &RecordPath) -> &'static [DecisionKind] {
    match subject {
        RecordPath::User { .. } | RecordPath::Benchmark { .. } => {
            &[DecisionKind::Approval, DecisionKind::Rejection]
        }
        RecordPath::Association { .. } => &[
            DecisionKind::Approval,
            DecisionKind::Rejection,
            DecisionKind::Withdrawal,
        ],
        _ => &[],
    }
}

pub(super) fn check_decision(ctx: &Ctx, path: &str, v: &mut Verdict) {
    let Some(Record::Decision(d)) = ctx.ix.record(path) else {
        return;
    };
    let t = ctx.intro(path);
    let Some(kind) = DecisionKind::parse(&d.kind) else {
        return;
    };
    ctx.signed_by(path, &d.by, v);
    let subject = match model::classify(&d.subject) {
        Ok(rp) => rp,
        Err(_) => {
            v.fail_code(
                path,
                Rule::Reference,
                Code::StrayDecision,
                format!("decides on {}, which is not a record path", d.subject),
            );
            return;
        }
    };
    if !decisions_allowed(&subject).contains(&kind) {
        v.fail_since_rules2(
            ctx.rules_at(t),
            path,
            Rule::Reference,
            Code::StrayDecision,
            format!(
                "is a {} of {}, a kind of record that takes no {}",
                d.kind, d.subject, d.kind
            ),
        );
        return;
    }
    let current = ctx.ix.sha(&d.subject);
    match (current, kind) {
        // Bound to the subject's bytes: the subject's own check counts it.
        (Some(sha), _) if sha == &d.subject_sha256 => {}
        // A rejection of a submission that never reached main (a later one may have).
        (_, DecisionKind::Rejection) => check_rejection_authority(ctx, path, d, &subject, t, v),
        (None, _) => v.fail_code(
            path,
            Rule::Reference,
            Code::StrayDecision,
            format!("{} of {}, which is not in the registry", d.kind, d.subject),
        ),
        (Some(_), _) => v.fail_since_rules2(
            ctx.rules_at(t),
            path,
            Rule::Reference,
            Code::StrayDecision,
            format!(
                "is a {} of bytes of {} that are not the ones on main (subject_sha256 names nothing here)",
                d.kind, d.subject
            ),
        ),
    }
}

/// Who may reject a submission that is not (or not in those bytes) on main.
fn check_rejection_authority(
    ctx: &Ctx,
    path: &str,
    d: &model::Decision,
    subject: &RecordPath,
    t: usize,
    v: &mut Verdict,
) {
    let allowed = match subject {
        RecordPath::User { .. } | RecordPath::Benchmark { .. } => ctx.is_admin(&d.by, t),
        RecordPath::Association { bench, .. } => ctx
            .ix
            .benchmarks
            .get(bench)
            .into_iter()
            .flatten()
            .filter(|(_, p)| ctx.is_valid(p) && ctx.intro(p) <= t)
            .filter_map(|(_, p)| match ctx.ix.record(p) {
                Some(Record::Benchmark(b)) => Some(b),
                _ => None,
            })
            .any(|b| b.committee.contains(&d.by)),
        _ => false,
    };
    if !allowed {
        v.fail(
            path,
            Rule::Authority,
            format!("{} may not reject {}", d.by, d.subject),
        );
    }
}

/// The raw keys valid revoke-key grants end, with the commit index of the earliest: each grant
/// revokes the raw keys its handle registered (by then) under the id it names.
pub(in crate::trust) fn revocations(run: &Run) -> std::collections::HashMap<[u8; 32], usize> {
    let ctx = &Ctx::at(run, usize::MAX);
    let mut out = std::collections::HashMap::new();
    let ix = run.ix;
    ix.need("grants/");
    for p in ix.grants.values().flat_map(|m| m.values()) {
        let Some(Record::Grant(g)) = ix.record(p) else {
            continue;
        };
        if g.action != model::GrantAction::RevokeKey || !ctx.is_valid(p) {
            continue;
        }
        let t = ctx.intro(p);
        ix.need(&format!("users/{}/", g.handle));
        for up in ix
            .users
            .get(&g.handle)
            .into_iter()
            .flatten()
            .map(|(_, up)| up)
        {
            if let Some(Record::User(u)) = ix.record(up)
                && ctx.intro(up) <= t
                && key_id_of(&u.minisign) == g.key
                && let Some(raw) = raw_key_of(&u.minisign)
            {
                let e = out.entry(raw).or_insert(t);
                *e = (*e).min(t);
            }
        }
    }
    out
}

/// A user version registering, under any handle or label, a raw key revoked before it arrived:
/// a revoked key never comes back (it could never sign anyway; the record would mislead). On a
/// grown main, the user versions `reach` holds: a revocation the new files add is later than
/// every older user version, so only a new one can register a key revoked before it.
pub(in crate::trust) fn check_revoked_users(run: &Run, reach: Option<&Reach>, v: &mut Verdict) {
    let (ix, ctx) = (run.ix, Ctx::at(run, usize::MAX));
    let users: Box<dyn Iterator<Item = (&str, &Record)>> = match reach {
        None => Box::new(ix.records_in(&ix.users)),
        Some(r) => Box::new(r.records(ix).filter_map(|p| match ix.record(p) {
            Some(u @ Record::User(_)) => Some((p.as_str(), u)),
            _ => None,
        })),
    };
    for (path, record) in users {
        let Record::User(u) = record else { continue };
        let t = ctx.intro(path);
        if let Some(raw) = raw_key_of(&u.minisign)
            && run.revoked.get(&raw).is_some_and(|&r| r < t)
        {
            v.fail_since_rules2(
                ctx.rules_at(t),
                path,
                Rule::Authority,
                Code::RevokedKey,
                format!(
                    "registers a key that was revoked before it (key ids are labels: the raw key {} is revoked, whatever its id or handle)",
                    key_id_of(&u.minisign).unwrap_or_default()
                ),
            );
        }
    }
}
