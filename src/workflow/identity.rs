//! Identities in the registry: creating a registry with its admins, user requests and
//! admissions, role grants, key revocations, root rotation and co-signing, and the view of who
//! is who.

use std::path::{Path, PathBuf};

use git2::Oid;

use crate::model::{self, FORMAT_VERSION, KeyHolder, Sha256, build};
use crate::registry::{self, NewFile, Registry, State, StateStore, VERIFIED_REF};
use crate::trust::{Signer, keys, sign};

use super::registry_ops::{self, Opened, Submitted, submit};
use super::submission::{SubmissionKind, branch_name, record_file, sign_all};
use super::{Ctx, Result, Unlock, WorkflowError};

/// The files `registry init` lays down besides the root: (path, template text).
pub const TEMPLATE: &[(&str, &str)] = &[
    (
        "README.md",
        include_str!("../../registry-template/README.md"),
    ),
    (
        ".gitattributes",
        include_str!("../../registry-template/.gitattributes"),
    ),
    (
        ".github/workflows/verify.yml",
        include_str!("../../registry-template/.github/workflows/verify.yml"),
    ),
    (
        ".github/workflows/pages.yml",
        include_str!("../../registry-template/.github/workflows/pages.yml"),
    ),
    (
        ".gitlab-ci.yml",
        include_str!("../../registry-template/.gitlab-ci.yml"),
    ),
    (
        "hooks/pre-receive",
        include_str!("../../registry-template/hooks/pre-receive"),
    ),
];

/// What `registry init` created.
pub struct Initialized {
    pub registry_id: Sha256,
    pub path: PathBuf,
    pub commit: Oid,
}

pub(super) fn nonce(ctx: &Ctx, seed: &str) -> String {
    let nanos = ctx
        .now
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut extra = [0u8; 16];
    // Uniqueness, not secrecy: mix the clock, the pid and a fresh age key's public half.
    let fresh = age::x25519::Identity::generate().to_public().to_string();
    extra.copy_from_slice(&Sha256::of(fresh.as_bytes()).as_str().as_bytes()[..16]);
    Sha256::of(
        format!(
            "{nanos}\n{}\n{seed}\n{}",
            std::process::id(),
            String::from_utf8_lossy(&extra)
        )
        .as_bytes(),
    )
    .as_str()[..32]
        .to_string()
}

pub(super) fn holder(p: &keys::PublicIdentity) -> KeyHolder {
    KeyHolder {
        handle: p.handle.clone(),
        minisign: p.minisign.clone(),
        age: p.age.clone(),
    }
}

/// Creates a registry at `path` with a root naming `admins` (whose keys are in local storage),
/// signed by all of them, plus the template files pinned by an admin-signed meta manifest.
pub fn init_registry(
    ctx: &Ctx,
    path: &Path,
    name: &str,
    admins: &[String],
    threshold: u32,
    unlock: &mut Unlock,
) -> Result<Initialized> {
    if admins.is_empty() {
        return Err(WorkflowError::Refused(
            "a registry needs at least one admin (--admin)".into(),
        ));
    }
    let mut holders = Vec::new();
    for a in admins {
        holders.push(holder(&keys::public(ctx.home, a)?));
    }
    let root = model::Root {
        format: FORMAT_VERSION,
        kind: "root".into(),
        version: 1,
        name: name.to_string(),
        created: ctx.timestamp(),
        nonce: nonce(ctx, &path.display().to_string()),
        threshold,
        previous: None,
        rules: Some(model::RULES_VERSION),
        admins: holders,
    };
    let root_path = build::root(1);
    let root_bytes = model::to_bytes(&root);
    let rp = model::classify(&root_path)?;
    model::parse_record(&root_path, &rp, &root_bytes)?;
    let id = Sha256::of(&root_bytes);
    let mut signers = Vec::new();
    for a in admins {
        signers.push(unlock(a)?);
    }
    let mut files = vec![NewFile::new(root_path.clone(), root_bytes.clone())];
    for s in &signers {
        let sig = sign::sign(s, &id, &root_path, "root", &root_bytes)?;
        files.push(NewFile::new(build::signature(&root_path, &s.handle), sig));
    }
    let mut meta_files = std::collections::BTreeMap::new();
    for (p, text) in TEMPLATE {
        let bytes = render_template(text, name, &id).into_bytes();
        meta_files.insert(p.to_string(), Sha256::of(&bytes));
        files.push(NewFile::new(*p, bytes));
    }
    let meta = model::Meta {
        format: FORMAT_VERSION,
        kind: "meta".into(),
        version: 1,
        created: ctx.timestamp(),
        by: signers[0].handle.clone(),
        files: meta_files,
    };
    files.extend(sign_all(
        &signers[0],
        &id,
        vec![record_file(build::meta(1), &meta)],
    )?);
    let reg = registry::create(
        path,
        &files,
        &format!("Create registry {name}"),
        &signers[0].handle,
    )?;
    let commit = reg.main()?;
    // The creator trusts what it just made: pin and record it.
    registry::set_ref(reg.repo(), VERIFIED_REF, commit, "cohort registry init")?;
    let opened = Opened {
        reg,
        id: id.clone(),
    };
    let outcome = registry_ops::verify_commit(ctx, &opened, commit, true)?;
    if !outcome.report.is_clean() {
        return Err(registry_ops::problems_error(
            "the new registry does not verify (a bug)".into(),
            outcome.report.problems,
        ));
    }
    Ok(Initialized {
        registry_id: id,
        path: path.to_path_buf(),
        commit,
    })
}

fn render_template(text: &str, name: &str, id: &Sha256) -> String {
    text.replace("{{name}}", name)
        .replace("{{registry_id}}", id.as_str())
        .replace("{{cohort_version}}", crate::VERSION)
}

/// Clones `url`, pins its registry id and verifies it.
pub fn clone_registry(
    ctx: &Ctx,
    url: &str,
    dest: &Path,
    expected: &dyn Fn(&Sha256) -> Result<()>,
) -> Result<(Opened, registry_ops::VerifyOutcome)> {
    let transport = ctx.transport_for(url)?;
    let task = ctx.reporter.begin("clone", None);
    let cloned = registry::clone(url, dest, transport);
    ctx.reporter.end(task, cloned.is_ok());
    let reg = cloned?;
    let main = reg.main()?;
    adopt_clone(ctx, reg, main, url, dest, expected)
}

/// Accepts a fresh clone at `dest` whose main is `main` (read from `source`: a remote URL or a
/// registry bundle) exactly as `registry clone` does: the registry id checked by `expected`,
/// the whole history verified, rollback against this machine's last accepted main refused,
/// and the folder removed when anything fails.
pub fn adopt_clone(
    ctx: &Ctx,
    reg: Registry,
    main: Oid,
    source: &str,
    dest: &Path,
    expected: &dyn Fn(&Sha256) -> Result<()>,
) -> Result<(Opened, registry_ops::VerifyOutcome)> {
    let id = match reg.registry_id(main) {
        Ok(id) => id,
        Err(e) => {
            let _ = std::fs::remove_dir_all(dest);
            return Err(e.into());
        }
    };
    if let Err(e) = expected(&id) {
        let _ = std::fs::remove_dir_all(dest);
        return Err(e);
    }
    let opened = Opened { reg, id };
    let outcome = match registry_ops::verify_commit(ctx, &opened, main, true) {
        Ok(o) => o,
        Err(e) => {
            let _ = std::fs::remove_dir_all(dest);
            return Err(e);
        }
    };
    if !outcome.acceptable_as_new_main() {
        // Nothing half-made stays behind: a registry that does not verify is not a clone
        // anyone should work in.
        drop(opened);
        let _ = std::fs::remove_dir_all(dest);
        return Err(registry_ops::problems_error(
            format!("{source} does not verify; nothing was kept"),
            outcome.refusals(),
        ));
    }
    registry::set_ref(
        opened.reg.repo(),
        VERIFIED_REF,
        main,
        "cohort registry clone",
    )?;
    Ok((opened, outcome))
}

/// Whether this machine has pinned `id` before.
pub fn pinned(ctx: &Ctx, id: &Sha256) -> Result<Option<State>> {
    Ok(StateStore::new(ctx.home).load(id)?)
}

/// Writes a request to join as `signer`'s handle (or a key rotation, when the handle exists).
pub fn user_request(
    ctx: &Ctx,
    opened: &Opened,
    signer: &Signer,
    name: &str,
    email: &str,
) -> Result<Submitted> {
    let ix = opened.index()?;
    let handle = &signer.handle;
    if ix
        .root()
        .is_some_and(|r| r.admins.iter().any(|a| &a.handle == handle))
    {
        return Err(WorkflowError::Refused(format!(
            "{handle} is an admin of this registry; admins need no user record"
        )));
    }
    let (version, previous) = match ix.users.get(handle).and_then(|v| v.last_key_value()) {
        Some((v, p)) => (v + 1, ix.sha(p).cloned()),
        None => (1, None),
    };
    if let Some((_, u)) = ix.user(handle)
        && u.minisign == signer.public.minisign
        && u.age == signer.public.age
        && u.name == name
        && u.email == email
    {
        return Err(WorkflowError::Refused(format!(
            "{handle} is already registered with these keys and details"
        )));
    }
    let user = model::User {
        format: FORMAT_VERSION,
        kind: "user".into(),
        handle: handle.clone(),
        version,
        name: name.to_string(),
        email: email.to_string(),
        minisign: signer.public.minisign.clone(),
        age: signer.public.age.clone(),
        created: ctx.timestamp(),
        previous,
    };
    let path = build::user(handle, version);
    model::parse_record(&path, &model::classify(&path)?, &model::to_bytes(&user))?;
    let branch = branch_name(
        handle,
        SubmissionKind::User,
        &format!("{handle}-v{version}"),
    );
    submit(
        opened,
        signer,
        &branch,
        vec![record_file(path, &user)],
        vec![],
        &format!("Request to join as {handle}"),
    )
}

/// The pending submission branch whose subject is under `prefix` (e.g. `users/alice/`).
pub fn branch_for(opened: &Opened, kind: SubmissionKind, prefix: &str) -> Result<String> {
    let mut found: Vec<String> = super::benchmarks::pending(opened, kind)?
        .into_iter()
        .filter(|(s, _)| s.subject.starts_with(prefix))
        .map(|(s, _)| s.branch)
        .collect();
    found.dedup();
    match found.len() {
        0 => Err(WorkflowError::NotFound(format!(
            "no pending {} submission for {} (run `cohort registry sync` to fetch new ones)",
            kind.as_str(),
            prefix.trim_end_matches('/')
        ))),
        1 => Ok(found.remove(0)),
        _ => Err(WorkflowError::Refused(format!(
            "several pending submissions match: {}; name the branch",
            found.join(", ")
        ))),
    }
}

/// Everyone in the registry (on a verified tree): one row of `user ls` each.
pub use crate::registry::rows::{UserRow, user_rows as users};

/// Opens a registry from a path, for convenience.
pub fn open_path(ctx: &Ctx, path: &Path) -> Result<Opened> {
    registry_ops::open(ctx, Registry::open(path)?)
}

pub use super::admin::{Proposal, cosign, grant, revoke, rotate_root};
