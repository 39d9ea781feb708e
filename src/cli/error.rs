//! The CLI's one error type: a message naming the file or entity, optional `hint:` lines, and
//! the exit code that tells scripts what kind of failure happened.

use std::fmt;

/// Exit codes (docs/design.md "Command surface").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// A negative verdict (verify found problems) or a user error (bad input, refused action).
    Failure = 1,
    /// The command line itself was wrong.
    Usage = 2,
    /// The environment: Docker or a git remote unreachable, a missing program.
    Environment = 3,
    /// A bug in cohort.
    Internal = 70,
    /// Interrupted (Ctrl-C): what was running was stopped and cleaned up (128 + SIGINT).
    Interrupted = 130,
}

#[derive(Debug)]
pub struct CliError {
    pub exit: Exit,
    pub message: String,
    pub hints: Vec<String>,
    /// Lines printed before the error (e.g. each problem verification found).
    pub details: Vec<String>,
}

impl CliError {
    pub fn new(exit: Exit, message: impl Into<String>) -> CliError {
        CliError {
            exit,
            message: message.into(),
            hints: Vec::new(),
            details: Vec::new(),
        }
    }
    pub fn user(message: impl Into<String>) -> CliError {
        CliError::new(Exit::Failure, message)
    }
    pub fn usage(message: impl Into<String>) -> CliError {
        CliError::new(Exit::Usage, message)
    }
    pub fn env(message: impl Into<String>) -> CliError {
        CliError::new(Exit::Environment, message)
    }
    pub fn interrupted(message: impl Into<String>) -> CliError {
        CliError::new(Exit::Interrupted, message)
    }
    pub fn hint(mut self, hint: impl Into<String>) -> CliError {
        self.hints.push(hint.into());
        self
    }
    /// A negative verdict whose details were already printed (e.g. `verify`'s report).
    #[allow(dead_code)] // for `verify` (a later issue)
    pub fn verdict(message: impl Into<String>) -> CliError {
        CliError::new(Exit::Failure, message)
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> CliError {
        CliError::user(cohort::storage::plain_io(&e)).hint(cohort::storage::io_hint(&e))
    }
}

impl CliError {
    /// An I/O error on `path`, in words, with what to do.
    pub fn io(path: &std::path::Path, e: &std::io::Error) -> CliError {
        CliError::user(format!(
            "{}: {}",
            path.display(),
            cohort::storage::plain_io(e)
        ))
        .hint(cohort::storage::io_hint(e))
    }
}

impl From<anyhow::Error> for CliError {
    fn from(e: anyhow::Error) -> CliError {
        CliError::new(Exit::Internal, format!("{e:#}"))
    }
}

pub type CliResult<T = ()> = Result<T, CliError>;

/// One line per problem: `path: message [rule] (commit abc1234567)`.
pub fn problem_line(p: &cohort::trust::Problem) -> String {
    let rule = serde_json::to_value(p.rule)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    match &p.commit {
        Some(c) => format!(
            "{}: {} [{rule}] (commit {})",
            p.path,
            p.message,
            &c[..c.len().min(10)]
        ),
        None => format!("{}: {} [{rule}]", p.path, p.message),
    }
}

impl From<cohort::trust::TrustError> for CliError {
    fn from(e: cohort::trust::TrustError) -> CliError {
        use cohort::trust::TrustError as T;
        let hint = match &e {
            T::NoKey { handle, .. } => Some(format!(
                "create it with `cohort key generate --handle {handle}`, or pick another with --as"
            )),
            T::WrongPassphrase(_) => {
                Some("check COHORT_PASSPHRASE or the file given to --passphrase-file".to_string())
            }
            T::KeyExists { .. } => {
                Some("choose another handle; an existing key is never overwritten".to_string())
            }
            T::Io { source, .. } => Some(format!(
                "{} (keys live under COHORT_HOME)",
                cohort::storage::io_hint(source)
            )),
            _ => None,
        };
        let err = CliError::user(e.to_string());
        match hint {
            Some(h) => err.hint(h),
            None => err,
        }
    }
}

impl From<cohort::registry::RegistryError> for CliError {
    fn from(e: cohort::registry::RegistryError) -> CliError {
        use cohort::registry::RegistryError as R;
        match &e {
            R::Remote { .. } => CliError::env(e.to_string())
                .hint("check the network and the remote URL; local work is kept, run `cohort registry push` or `sync` later"),
            R::PushRejected { .. } => CliError::user(e.to_string())
                .hint("run `cohort registry sync` and try again"),
            R::Conflict { .. } => CliError::user(e.to_string())
                .hint("run `cohort registry sync`; someone added that file first"),
            R::Trust(t) => CliError::user(t.to_string()),
            R::Io { source, .. } => {
                CliError::user(e.to_string()).hint(cohort::storage::io_hint(source))
            }
            _ => CliError::user(e.to_string()),
        }
    }
}

impl From<cohort::model::ModelError> for CliError {
    fn from(e: cohort::model::ModelError) -> CliError {
        CliError::user(e.to_string())
    }
}

impl From<cohort::workflow::WorkflowError> for CliError {
    fn from(e: cohort::workflow::WorkflowError) -> CliError {
        use cohort::workflow::WorkflowError as W;
        match e {
            W::Registry(r) => r.into(),
            W::Trust(t) => t.into(),
            W::Model(m) => m.into(),
            W::Mlcube(m) => m.into(),
            W::Storage(st) => {
                let env = st.is_environment();
                let err = CliError::new(
                    if env {
                        Exit::Environment
                    } else {
                        Exit::Failure
                    },
                    st.to_string(),
                );
                if let cohort::storage::StorageError::Io { source, .. } = &st {
                    err.hint(cohort::storage::io_hint(source))
                } else if env {
                    err.hint("check the network, proxy settings (HTTPS_PROXY, NO_PROXY) and disk space, then run the command again: downloads resume")
                } else {
                    err
                }
            }
            W::Problems { summary, problems } => {
                let mut err = CliError::user(format!(
                    "{summary} ({} problem{})",
                    problems.len(),
                    if problems.len() == 1 { "" } else { "s" }
                ));
                err.details = problems.iter().map(problem_line).collect();
                err
            }
            W::SealedRefused { file, code, why } => {
                use cohort::model::envelope::Unreadable;
                use cohort::workflow::unseal::SealRefusal;
                let hint = match code {
                    SealRefusal::NotOnCommittee => {
                        "a member of that benchmark's committee merges it: they decrypt it first"
                            .to_string()
                    }
                    SealRefusal::Unreadable(Unreadable::Undecryptable) => format!(
                        "{file} is not sealed to you although its manifest says so (sealed to someone else?): do not merge it; ask its submitter to submit again with cohort, which seals to the committee and the data owner"
                    ),
                    SealRefusal::Unreadable(u) => format!(
                        "{file} is damaged ({u}): do not merge it; ask its submitter to submit again"
                    ),
                };
                CliError::user(format!("{file}: {why}; not merging it")).hint(hint)
            }
            W::NotFound(m) => CliError::user(m),
            W::Denied(d) => CliError::user(d.to_string()).hint(d.hint()),
            W::Unknown(u) => CliError::user(u.to_string()).hint(u.hint()),
            W::Bundle(b) => CliError::user(b.to_string()).hint(b.hint()),
            W::RefusedBecause { message, hint } => CliError::user(message).hint(hint),
            other => CliError::user(other.to_string()),
        }
    }
}
