//! `cohort mlcube ...`: the command group for MLCubes. Each subcommand lives in its own file
//! under `mlcube/`; this file holds the group's clap enum, the dispatch, and the mapping of
//! the engine's errors to exit codes and hints.

mod grant;
mod run;
mod submit;

pub use run::dash_override_error;
pub use submit::{AssociateArgs, associate, fmt_metrics};

use clap::{Args as ClapArgs, Subcommand};
use cohort::mlcube;

use super::error::{CliError, Exit};
use super::{CliResult, Settings};

/// Work with MLCubes (containers following the MLCube 0.0.9 contract).
#[derive(Debug, ClapArgs)]
pub struct Args {
    #[command(subcommand)]
    pub command: MlcubeCommand,
}

#[derive(Debug, Subcommand)]
pub enum MlcubeCommand {
    /// Run a task of a local MLCube (for authors and for debugging).
    Run(run::RunArgs),
    /// Register a cube version (its files, additional files and image pinned by hash).
    Submit(submit::SubmitArgs),
    /// List the cubes on main.
    #[command(visible_alias = "list")]
    Ls(super::filter::ListFilter),
    /// Show a cube record (NAME or NAME:VERSION).
    View {
        #[command(flatten)]
        name: super::entity::ModelRef,
    },
    /// Ask to join a benchmark with a model: runs the compatibility test on the demo data first.
    Associate(submit::AssociateArgs),
    /// Grant a dataset the key of your private model, or revoke it (--revoke).
    ///
    /// A grant seals the model key to the dataset owner's age key and lands a signed record on
    /// main. A revocation makes cohort refuse to run the model for that dataset and `verify`
    /// refuse new results for the pair, but it cannot unshare what was already shared: a site
    /// that held the key may have kept it, and the image it decrypted.
    Grant(grant::GrantArgs),
}

pub fn run(settings: &Settings, args: Args) -> CliResult {
    match args.command {
        MlcubeCommand::Run(a) => run::run(settings, a),
        MlcubeCommand::Submit(a) => submit::submit(settings, a),
        MlcubeCommand::Ls(f) => submit::ls(settings, f),
        MlcubeCommand::View { name } => submit::view(settings, &name.name()),
        MlcubeCommand::Associate(a) => submit::associate(settings, a),
        MlcubeCommand::Grant(a) => grant::grant(settings, a),
    }
}

impl From<mlcube::Error> for CliError {
    fn from(e: mlcube::Error) -> CliError {
        let exit = if matches!(e, mlcube::Error::Cancelled { .. }) {
            Exit::Interrupted
        } else if e.is_environment() {
            Exit::Environment
        } else {
            Exit::Failure
        };
        let mut err = CliError::new(exit, e.to_string());
        if let Some(h) = e.hint() {
            err = err.hint(h);
        }
        err
    }
}
