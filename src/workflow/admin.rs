//! Admin-threshold records: role grants and key revocations, root rotation, and co-signing a
//! proposal on its branch until the threshold is met.

use crate::model::{self, FORMAT_VERSION, GrantAction, KeyHolder, Role, build};
use crate::registry::{self, NewFile};
use crate::trust::{Index, Signer, keys, next_number, sign};

use super::identity::{holder, nonce};
use super::permission::{Needs, require};
use super::registry_ops::{Landed, Opened, apply_to_main, land};
use super::submission::{SubmissionKind, branch_name, record_file, sign_all};
use super::{Ctx, Result, WorkflowError};

/// Next free grant number for `handle`.
fn next_grant(ix: &Index, handle: &str) -> u32 {
    next_number(ix.grants.get(handle))
}

/// Lands admin-threshold records directly when this admin meets the threshold, else proposes
/// them on a branch for co-signing.
fn land_or_propose(
    ctx: &Ctx,
    opened: &Opened,
    signer: &Signer,
    record: NewFile,
    kind: SubmissionKind,
    id: &str,
    message: &str,
) -> Result<Proposal> {
    let ix = opened.index()?;
    let threshold = ix.root().map(|r| r.threshold).unwrap_or(1);
    if threshold <= 1 {
        return Ok(Proposal::Landed(apply_to_main(
            ctx,
            opened,
            signer,
            vec![record],
            message,
        )?));
    }
    let branch = branch_name(&signer.handle, kind, id);
    let files = sign_all(signer, &opened.id, vec![record])?;
    let base = opened.view()?;
    let commit = registry::commit_files(opened.reg.repo(), base, &files, message, &signer.handle)?;
    registry::set_branch(opened.reg.repo(), &branch, commit, message)?;
    Ok(Proposal::NeedsCosign { branch, threshold })
}

/// Where an admin-threshold record went.
pub enum Proposal {
    Landed(Landed),
    NeedsCosign { branch: String, threshold: u32 },
}

/// Grants a role (admin).
pub fn grant(
    ctx: &Ctx,
    opened: &Opened,
    admin: &Signer,
    handle: &str,
    role: Role,
    revoke: bool,
) -> Result<Proposal> {
    let ix = opened.index()?;
    let verb = if revoke { "revoke" } else { "grant" };
    require(opened, &ix, admin, Needs::Admin, &format!("{verb} roles"))?;
    if ix.user(handle).is_none() {
        return Err(
            super::lookup::unknown(opened, &ix, super::lookup::Entity::User, handle).into(),
        );
    }
    let n = next_grant(&ix, handle);
    let g = model::Grant {
        format: FORMAT_VERSION,
        kind: "grant".into(),
        number: n,
        handle: handle.to_string(),
        action: if revoke {
            GrantAction::RevokeRole
        } else {
            GrantAction::GrantRole
        },
        role: Some(role),
        key: None,
        reason: None,
        by: admin.handle.clone(),
        at: ctx.timestamp(),
    };
    land_or_propose(
        ctx,
        opened,
        admin,
        record_file(build::grant(handle, n), &g),
        SubmissionKind::Grant,
        &format!("{handle}-{n}"),
        &format!("{verb} {} to {handle}", role.as_str()),
    )
}

/// Revokes a user's current key from the commit that merges the record (admin).
pub fn revoke(
    ctx: &Ctx,
    opened: &Opened,
    admin: &Signer,
    handle: &str,
    reason: Option<String>,
) -> Result<Proposal> {
    let ix = opened.index()?;
    require(opened, &ix, admin, Needs::Admin, "revoke keys")?;
    let (_, user) = ix
        .user(handle)
        .ok_or_else(|| super::lookup::unknown(opened, &ix, super::lookup::Entity::User, handle))?;
    let key = keys::key_id_of(&user.minisign)
        .ok_or_else(|| WorkflowError::Refused(format!("{handle}'s key does not parse")))?;
    let n = next_grant(&ix, handle);
    let g = model::Grant {
        format: FORMAT_VERSION,
        kind: "grant".into(),
        number: n,
        handle: handle.to_string(),
        action: GrantAction::RevokeKey,
        role: None,
        key: Some(key.clone()),
        reason,
        by: admin.handle.clone(),
        at: ctx.timestamp(),
    };
    land_or_propose(
        ctx,
        opened,
        admin,
        record_file(build::grant(handle, n), &g),
        SubmissionKind::Grant,
        &format!("{handle}-{n}"),
        &format!("revoke key {key} of {handle}"),
    )
}

/// Proposes root version N+1 naming `admins` (current admins keep their keys; others come from
/// their user record or local storage), signed by `signers`. With `next`, the first signer
/// changes their own key to `next` (a local identity kept under another name): the new root
/// lists it for their handle, and both keys sign it in key-named signature files.
pub fn rotate_root(
    ctx: &Ctx,
    opened: &Opened,
    signers: &[Signer],
    admins: &[String],
    threshold: u32,
    next: Option<&Signer>,
) -> Result<Proposal> {
    let ix = opened.index()?;
    let current = ix
        .root()
        .ok_or_else(|| WorkflowError::Refused("this registry has no root".into()))?;
    // New admins may sign too, but the current admins' threshold needs at least one of them.
    let action = "rotate the trust root";
    if !signers
        .iter()
        .any(|s| super::permission::check(&ix, s, Needs::Admin, action).is_ok())
        && let Some(first) = signers.first()
    {
        require(opened, &ix, first, Needs::Admin, action)?;
    }
    let rotating = next.map(|_| signers[0].handle.as_str());
    if let Some(h) = rotating
        && !admins.iter().any(|a| a == h)
    {
        return Err(WorkflowError::Refused(format!(
            "--new-key changes {h}'s key, but {h} is not among --admins"
        )));
    }
    let mut holders = Vec::new();
    for a in admins {
        if let (Some(h), Some(n)) = (rotating, next)
            && h == a
        {
            holders.push(KeyHolder {
                handle: a.clone(),
                ..holder(&n.public)
            });
        } else if let Some(h) = current.admins.iter().find(|h| &h.handle == a) {
            holders.push(h.clone());
        } else if let Some((_, u)) = ix.user(a) {
            holders.push(KeyHolder {
                handle: a.clone(),
                minisign: u.minisign.clone(),
                age: u.age.clone(),
            });
        } else {
            holders.push(holder(&keys::public(ctx.home, a)?));
        }
    }
    let version = current.version + 1;
    let prev_path = build::root(current.version);
    let root = model::Root {
        format: FORMAT_VERSION,
        kind: "root".into(),
        version,
        name: current.name.clone(),
        created: ctx.timestamp(),
        nonce: nonce(ctx, "rotate"),
        threshold,
        previous: ix.sha(&prev_path).cloned(),
        rules: Some(model::RULES_VERSION),
        admins: holders,
    };
    let path = build::root(version);
    let bytes = model::to_bytes(&root);
    model::parse_record(&path, &model::classify(&path)?, &bytes)?;
    let mut files = vec![NewFile::new(path.clone(), bytes.clone())];
    for s in signers {
        let sig_path = match rotating {
            Some(h) if h == s.handle => build::key_signature(&path, h, &s.public.key_id),
            _ => build::signature(&path, &s.handle),
        };
        files.push(NewFile::new(
            sig_path,
            sign::sign(s, &opened.id, &path, "root", &bytes)?,
        ));
    }
    if let (Some(h), Some(n)) = (rotating, next) {
        files.push(NewFile::new(
            build::key_signature(&path, h, &n.public.key_id),
            sign::sign_as(n, h, &opened.id, &path, "root", &bytes)?,
        ));
    }
    // Whether each version's threshold is met, counted with the keys that version lists.
    let signed_with = |list: &[KeyHolder]| {
        list.iter()
            .filter(|a| {
                signers
                    .iter()
                    .map(|s| &s.public)
                    .chain(next.map(|n| &n.public))
                    .any(|p| p.minisign == a.minisign)
            })
            .count()
    };
    let old_ok = signed_with(&current.admins) >= current.threshold as usize;
    let new_ok = signed_with(&root.admins) >= threshold as usize;
    let message = format!("rotate root to version {version}");
    if old_ok && new_ok {
        let landed = land(ctx, opened, &message, &|base| {
            Ok(registry::commit_files(
                opened.reg.repo(),
                base,
                &files,
                &message,
                &signers[0].handle,
            )?)
        })?;
        return Ok(Proposal::Landed(landed));
    }
    let branch = branch_name(
        &signers[0].handle,
        SubmissionKind::Root,
        &format!("v{version}"),
    );
    let commit = registry::commit_files(
        opened.reg.repo(),
        opened.view()?,
        &files,
        &message,
        &signers[0].handle,
    )?;
    registry::set_branch(opened.reg.repo(), &branch, commit, &message)?;
    Ok(Proposal::NeedsCosign {
        branch,
        threshold: current.threshold.max(threshold),
    })
}

/// Adds `signer`'s signature to every record a pending branch proposes (root rotations,
/// admin-threshold grants, leaderboard releases).
pub fn cosign(ctx: &Ctx, opened: &Opened, signer: &Signer, branch: &str) -> Result<Vec<String>> {
    let tip = opened
        .reg
        .branch_tip(branch)
        .ok_or_else(|| WorkflowError::NotFound(format!("no branch `{branch}`")))?;
    let base = opened
        .reg
        .repo()
        .merge_base(opened.view()?, tip)
        .map_err(registry::RegistryError::from)?;
    let changes = opened.reg.changes(base, tip)?;
    let tree = opened.reg.tree(tip)?;
    let mut sigs = Vec::new();
    for p in &changes.added {
        let rp = model::classify(p)?;
        let Some(kind) = rp.kind() else { continue };
        if !matches!(
            kind,
            model::Kind::Root | model::Kind::Grant | model::Kind::Leaderboard
        ) {
            continue;
        }
        let sig_path = build::signature(p, &signer.handle);
        if tree.contains(&sig_path) {
            continue;
        }
        if kind == model::Kind::Grant {
            // Roots are co-signed by incoming admins too; grants by admins only.
            require(
                opened,
                &opened.index()?,
                signer,
                Needs::Admin,
                "co-sign grants",
            )?;
        }
        let bytes = tree.read_path(p)?;
        if kind == model::Kind::Leaderboard {
            // The sealed pseudonyms travel on the branch with the record.
            let mapping = tree.read_path(&build::sealed(p, "pseudonyms")).ok();
            super::release::check_proposed(
                &opened.index()?,
                signer,
                p,
                &bytes,
                mapping.as_deref(),
            )?;
        }
        sigs.push(NewFile::new(
            sig_path,
            sign::sign(signer, &opened.id, p, kind.as_str(), &bytes)?,
        ));
    }
    if sigs.is_empty() {
        return Err(WorkflowError::Refused(format!(
            "{branch} has nothing {} can co-sign (already signed?)",
            signer.handle
        )));
    }
    let commit = registry::commit_files(
        opened.reg.repo(),
        tip,
        &sigs,
        &format!("co-sign by {}", signer.handle),
        &signer.handle,
    )?;
    registry::set_branch(opened.reg.repo(), branch, commit, "cohort cosign")?;
    if let Some(url) = opened.reg.remote_url()
        && let Ok(t) = ctx.transport_for(&url)
        && opened
            .reg
            .push(&[format!("+{commit}:refs/heads/{branch}")], t)
            .is_ok()
    {
        registry::set_ref(
            opened.reg.repo(),
            &format!("refs/remotes/origin/{branch}"),
            commit,
            "cohort cosign",
        )?;
    }
    Ok(sigs.into_iter().map(|f| f.path).collect())
}
