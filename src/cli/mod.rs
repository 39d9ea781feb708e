//! The thin shell around the core: clap definitions, one settings step, dispatch to one file
//! per command group, and the mapping of errors to exit codes and hints.

mod error;
mod settings;
mod ui;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use error::{CliError, CliResult, Exit};
pub use settings::{GlobalArgs, Settings};
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
pub enum Command {}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
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
    let _ = settings;
    match command {}
}

fn report(e: CliError) -> ExitCode {
    eprintln!("error: {}", e.message);
    for h in &e.hints {
        eprintln!("hint: {h}");
    }
    ExitCode::from(e.exit as u8)
}
