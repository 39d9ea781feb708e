//! The thin shell around the core: clap definitions, one settings step, dispatch to one file
//! per command group, and the mapping of errors to exit codes and hints.

mod error;
mod mlcube;
mod settings;
mod ui;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use error::{CliError, CliResult, Exit};
pub use settings::{GlobalArgs, Settings};
#[allow(unused_imports)] // for command files that take the Ui alone (later issues)
pub use ui::Ui;

/// Federated benchmarking of medical AI with a Git repository as the registry.
#[derive(Debug, Parser)]
#[command(name = "cohort", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Work with MLCubes: run a task of a local cube.
    Mlcube(mlcube::Args),
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let argv: Vec<String> = std::env::args().collect();
            if let Some(err) = mlcube::dash_override_error(&e, &argv) {
                return report(err);
            }
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp
                | clap::error::ErrorKind::DisplayVersion
                | clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                    ExitCode::SUCCESS
                }
                _ => ExitCode::from(Exit::Usage as u8),
            };
        }
    };
    let settings = match Settings::resolve(&cli.global) {
        Ok(s) => s,
        Err(e) => return report(e),
    };
    match run(&settings, cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => report(e),
    }
}

fn run(settings: &Settings, command: Command) -> CliResult {
    match command {
        Command::Mlcube(args) => mlcube::run(settings, args),
    }
}

fn report(e: CliError) -> ExitCode {
    eprintln!("error: {}", e.message);
    for h in &e.hints {
        eprintln!("hint: {h}");
    }
    ExitCode::from(e.exit as u8)
}
