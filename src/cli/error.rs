//! The CLI's one error type: a message naming the file or entity, optional `hint:` lines, and
//! the exit code that tells scripts what kind of failure happened.

use std::fmt;

/// Exit codes (DESIGN.md "Command surface").
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
}

#[derive(Debug)]
pub struct CliError {
    pub exit: Exit,
    pub message: String,
    pub hints: Vec<String>,
}

impl CliError {
    pub fn new(exit: Exit, message: impl Into<String>) -> CliError {
        CliError {
            exit,
            message: message.into(),
            hints: Vec::new(),
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
        CliError::user(e.to_string())
    }
}

impl From<anyhow::Error> for CliError {
    fn from(e: anyhow::Error) -> CliError {
        CliError::new(Exit::Internal, format!("{e:#}"))
    }
}

pub type CliResult<T = ()> = Result<T, CliError>;
