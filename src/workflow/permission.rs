//! Who may do what, checked before any work starts: a command that signs or submits asks
//! [`require`] for the standing it needs, so a refusal comes in words, before an image is built,
//! a container runs or a branch is written, instead of as `[authority]` problems of a
//! verification that runs at the end. The rules are the trust policy's ("Who signs, who
//! approves, who merges" in docs/design.md), read from the verified main.

use crate::model::{self, Role};
use crate::registry::SUBMIT_PREFIX;
use crate::trust::{Index, Signer};

use super::registry_ops::Opened;
use super::{Result, WorkflowError};

/// The standing an action needs.
#[derive(Debug, Clone, Copy)]
pub enum Needs<'a> {
    /// An admitted user or an admin, signing with the key the registry lists for them.
    Member,
    /// A registry admin.
    Admin,
    /// An admin or a holder of the benchmark-owner right.
    BenchmarkOwner,
    /// A member of this benchmark's committee.
    Committee(&'a model::Benchmark),
}

/// Why someone may not do what they asked; each says what would make it possible.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("{handle} is not an admitted user of this registry, so cannot {action}")]
    NotAdmitted {
        handle: String,
        action: String,
        /// A request of theirs waiting for an admin (its branch).
        pending: Option<String>,
    },
    #[error(
        "the local key of {handle} ({local}) is not the key this registry lists for {handle} ({registered})"
    )]
    OtherKey {
        handle: String,
        local: String,
        registered: String,
    },
    #[error("the key of {handle} ({key}) was revoked; signatures made with it no longer count")]
    KeyRevoked { handle: String, key: String },
    #[error("only registry admins can {action} ({handle} is not an admin)")]
    NotAdmin { handle: String, action: String },
    #[error(
        "only admins and holders of the benchmark-owner right can {action} ({handle} holds neither)"
    )]
    NotBenchmarkOwner { handle: String, action: String },
    #[error(
        "only members of the {benchmark} committee ({committee}) can {action}; {handle} is not one"
    )]
    NotCommittee {
        handle: String,
        benchmark: String,
        committee: String,
        action: String,
    },
}

impl Denied {
    /// What to do about it.
    pub fn hint(&self) -> String {
        match self {
            Denied::NotAdmitted {
                handle,
                pending: Some(branch),
                ..
            } => format!(
                "your request to join waits on {branch}: push it (`cohort registry push`) and ask an admin to run `cohort user approve {handle}`"
            ),
            Denied::NotAdmitted { handle, .. } => format!(
                "run `cohort user request --name \"Your Name\" --email you@example.org` and ask an admin to run `cohort user approve {handle}`; or pick another key with --as"
            ),
            Denied::OtherKey { handle, .. } => format!(
                "sign with the key the registry lists (`cohort key ls`, --as), or register the new one with `cohort user request` as {handle} and have an admin approve it"
            ),
            Denied::KeyRevoked { handle, .. } => format!(
                "generate a new key and register it with `cohort user request` as {handle}; an admin approves it"
            ),
            Denied::NotAdmin { .. } => {
                "ask an admin (`cohort user ls` shows who they are) to do it".to_string()
            }
            Denied::NotBenchmarkOwner { handle, .. } => {
                format!("ask an admin to run `cohort user grant {handle} --role benchmark-owner`")
            }
            Denied::NotCommittee { benchmark, .. } => format!(
                "ask a member of the {benchmark} committee; `cohort benchmark view {benchmark}` shows who they are"
            ),
        }
    }
}

/// Checks, on the verified main, that `signer` may do `action` (words that complete "can ...",
/// e.g. "grant roles"). Every check first asks that the signer be admitted with the key they
/// sign with.
pub fn require(
    opened: &Opened,
    ix: &Index,
    signer: &Signer,
    needs: Needs,
    action: &str,
) -> Result<()> {
    check(ix, signer, needs, action).map_err(|d| match d {
        Denied::NotAdmitted { handle, action, .. } => {
            let pending = pending_request(opened, &handle);
            WorkflowError::Denied(Denied::NotAdmitted {
                handle,
                action,
                pending,
            })
        }
        d => WorkflowError::Denied(d),
    })
}

/// [`require`] without a registry to look for a waiting request in.
pub fn check(ix: &Index, signer: &Signer, needs: Needs, action: &str) -> Result<(), Denied> {
    let me = signer.handle.as_str();
    let admin = ix
        .root()
        .and_then(|r| r.admins.iter().find(|a| a.handle == me));
    let registered = match admin {
        Some(a) => Some(a.minisign.clone()),
        None => ix.user(me).map(|(_, u)| u.minisign.clone()),
    };
    let Some(registered) = registered else {
        return Err(Denied::NotAdmitted {
            handle: me.to_string(),
            action: action.to_string(),
            pending: None,
        });
    };
    let key_id = |b64: &str| crate::trust::keys::key_id_of(b64).unwrap_or_else(|| "?".into());
    if registered != signer.public.minisign {
        return Err(Denied::OtherKey {
            handle: me.to_string(),
            local: signer.public.key_id.clone(),
            registered: key_id(&registered),
        });
    }
    if ix.key_revoked(me, &signer.public.minisign) {
        return Err(Denied::KeyRevoked {
            handle: me.to_string(),
            key: signer.public.key_id.clone(),
        });
    }
    let is_admin = admin.is_some();
    match needs {
        Needs::Member => Ok(()),
        Needs::Admin if is_admin => Ok(()),
        Needs::Admin => Err(Denied::NotAdmin {
            handle: me.to_string(),
            action: action.to_string(),
        }),
        Needs::BenchmarkOwner if is_admin || ix.has_role(me, Role::BenchmarkOwner) => Ok(()),
        Needs::BenchmarkOwner => Err(Denied::NotBenchmarkOwner {
            handle: me.to_string(),
            action: action.to_string(),
        }),
        Needs::Committee(b) if b.committee.iter().any(|m| m == me) => Ok(()),
        Needs::Committee(b) => Err(Denied::NotCommittee {
            handle: me.to_string(),
            benchmark: b.name.clone(),
            committee: b.committee.join(", "),
            action: action.to_string(),
        }),
    }
}

/// A request to join by `handle` waiting on a branch, local or fetched.
fn pending_request(opened: &Opened, handle: &str) -> Option<String> {
    let prefix = format!("{SUBMIT_PREFIX}{handle}/user-");
    [false, true]
        .into_iter()
        .flat_map(|remote| opened.reg.submission_branches(remote).unwrap_or_default())
        .map(|(b, _)| b)
        .find(|b| b.starts_with(&prefix))
}
