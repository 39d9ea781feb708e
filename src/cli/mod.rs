//! The thin shell around the core: clap definitions, one settings step, dispatch to one file
//! per command group, and the mapping of errors to exit codes and hints.

mod agent;
mod association;
mod benchmark;
mod bundle;
mod completions;
mod dataset;
mod demo;
mod devices;
mod doctor;
mod entity;
mod error;
mod filter;
mod help;
mod json;
mod key;
mod landed;
mod leaderboard;
mod mlcube;
mod registry;
mod result;
mod session;
mod settings;
mod steps;
mod storage;
mod table;
mod test;
mod ui;
mod user;
mod verify;

use std::process::ExitCode;

use clap::{FromArgMatches, Parser, Subcommand};

pub use error::{CliError, CliResult, Exit};
pub use settings::{GlobalArgs, Settings};

/// Federated benchmarking of medical AI with a Git repository as the registry.
#[derive(Debug, Parser)]
#[command(name = "cohort", version, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Play the whole workflow, every role in its own clone, against a local bare remote.
    Demo(demo::DemoArgs),
    /// What is missing on this machine and how to fix it.
    Doctor,
    /// Create and list your local keys.
    Key(key::KeyArgs),
    /// Keep your unlocked keys in a background agent: one passphrase per session.
    Agent(agent::AgentArgs),
    /// Create, clone, sync and push registries; merge and co-sign submissions.
    Registry(registry::RegistryArgs),
    /// Join a registry, admit users, grant roles, revoke keys.
    User(user::UserArgs),
    /// Work with MLCubes: run a task of a local cube, submit, list, associate.
    Mlcube(mlcube::Args),
    /// Submit, approve, list and run benchmarks.
    Benchmark(benchmark::BenchmarkArgs),
    /// Compatibility tests: the reference workflow with parts swapped, nothing submitted.
    Test(test::TestArgs),
    /// Associations of models and datasets with benchmarks: list, approve, reject, prioritise.
    Association(association::AssociationArgs),
    /// Prepare, register, associate and check datasets (the data stays at the site).
    Dataset(dataset::DatasetArgs),
    /// Results: list, view, submit (sealed), release (committee).
    Result(result::ResultArgs),
    /// Show a benchmark's released leaderboard (table, markdown, json, csv, html).
    Leaderboard(leaderboard::LeaderboardArgs),
    /// Write the static leaderboard site for every benchmark of the registry.
    Site(leaderboard::SiteArgs),
    /// Check every signature, approval and rule of a registry, offline.
    Verify(verify::VerifyArgs),
    /// What cohort keeps on this machine; clean up what nothing approved needs.
    Storage(storage::StorageArgs),
    /// Carry a registry, its images and artifacts to an air-gapped site, and its submissions
    /// back, as files.
    Bundle(bundle::BundleArgs),
    /// Print shell completions (bash, zsh, fish, elvish, powershell) for cohort.
    Completions(completions::CompletionsArgs),
    /// Print cohort's manual page, or write one page per command into a folder.
    Man(completions::ManArgs),
}

pub fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    if let Some("options") = help::topic_of(&argv) {
        print!("{}", help::options_topic());
        return ExitCode::SUCCESS;
    }
    let mut cmd = help::command();
    let parsed = cmd
        .try_get_matches_from_mut(&argv)
        .and_then(|m| Cli::from_arg_matches(&m));
    let cli = match parsed {
        Ok(cli) => cli,
        Err(e) => {
            if let Some(err) = mlcube::dash_override_error(&e, &argv) {
                return report(err);
            }
            let e = help::drop_unrelated_tip(e, &cmd, &argv);
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
    let group = cli.command.group();
    match run(&settings, cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        // Whatever a command failed with after Ctrl-C, it was interrupted: scripts see 130.
        Err(e) if session::interrupted() && e.exit != Exit::Interrupted => report(
            CliError::interrupted(format!("interrupted ({})", e.message)).hint(
                "nothing was left running; run the command again to continue where it stopped",
            ),
        ),
        Err(mut e) => {
            if e.hints.is_empty() {
                e.hints.push(fallback_hint(e.exit, group));
            }
            report(e)
        }
    }
}

fn run(settings: &Settings, command: Command) -> CliResult {
    match command {
        Command::Key(a) => key::run(settings, a),
        Command::Agent(a) => agent::run(settings, a),
        Command::Registry(a) => registry::run(settings, a),
        Command::User(a) => user::run(settings, a),
        Command::Verify(a) => verify::run(settings, a),
        Command::Doctor => doctor::run(settings),
        Command::Demo(a) => demo::run(settings, a),
        Command::Mlcube(args) => mlcube::run(settings, args),
        Command::Benchmark(a) => benchmark::run(settings, a),
        Command::Test(a) => test::run(settings, a),
        Command::Association(a) => association::run(settings, a),
        Command::Dataset(a) => dataset::run(settings, a),
        Command::Result(a) => result::run(settings, a),
        Command::Leaderboard(a) => leaderboard::run(settings, a),
        Command::Site(a) => leaderboard::site(settings, a),
        Command::Bundle(a) => bundle::run(settings, a),
        Command::Storage(a) => storage::run(settings, a),
        Command::Completions(a) => completions::completions(settings, a),
        Command::Man(a) => completions::man(settings, a),
    }
}

impl Command {
    /// The command group, for hints that point at its help.
    fn group(&self) -> &'static str {
        match self {
            Command::Demo(_) => "demo",
            Command::Doctor => "doctor",
            Command::Key(_) => "key",
            Command::Registry(_) => "registry",
            Command::User(_) => "user",
            Command::Mlcube(_) => "mlcube",
            Command::Benchmark(_) => "benchmark",
            Command::Test(_) => "test",
            Command::Association(_) => "association",
            Command::Dataset(_) => "dataset",
            Command::Result(_) => "result",
            Command::Leaderboard(_) => "leaderboard",
            Command::Site(_) => "site",
            Command::Verify(_) => "verify",
            Command::Bundle(_) => "bundle",
            Command::Agent(_) => "agent",
            Command::Storage(_) => "storage",
            Command::Completions(_) => "completions",
            Command::Man(_) => "man",
        }
    }
}

/// Every error ends with a `hint:`; where the error itself names none, this one says where to
/// look next.
fn fallback_hint(exit: Exit, group: &str) -> String {
    match exit {
        Exit::Environment => {
            "`cohort doctor` checks Docker, git and the keys of this machine".to_string()
        }
        Exit::Internal => {
            "this is a bug in cohort: please report it with the command that caused it".to_string()
        }
        Exit::Interrupted => "run the command again to continue where it stopped".to_string(),
        Exit::Usage => format!("`cohort {group} --help` lists what the command accepts"),
        Exit::Failure => format!("`cohort {group} --help` explains the command and its options"),
    }
}

fn report(e: CliError) -> ExitCode {
    for d in &e.details {
        eprintln!("  {d}");
    }
    eprintln!("error: {}", e.message);
    for h in &e.hints {
        eprintln!("hint: {h}");
    }
    ExitCode::from(e.exit as u8)
}
