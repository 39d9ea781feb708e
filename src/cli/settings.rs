//! Global flags and the one step that turns flags, environment variables and defaults into
//! the settings every command receives. Nothing below the CLI reads the environment.

use std::path::PathBuf;

use clap::Args;
use cohort::storage::Home;

use super::error::{CliError, CliResult};
use super::ui::Ui;

/// The options every command accepts. Explained once, in `cohort --help` and `cohort help
/// options`; hidden under each subcommand (see `help.rs`). Their environment variables are read
/// in [`Settings::resolve`], not by clap: an option clap fills from the environment counts as
/// given, and its usage lines then show it as if typed (`Usage: cohort user approve --as <HANDLE>`).
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// The registry clone to use (default: the registry clone containing the current directory).
    /// Environment: COHORT_REGISTRY.
    #[arg(long, global = true, help_heading = GLOBAL, value_name = "PATH")]
    pub registry: Option<PathBuf>,
    /// Which local key signs (a handle under COHORT_HOME/keys). Environment: COHORT_AS.
    #[arg(long = "as", global = true, help_heading = GLOBAL, value_name = "HANDLE")]
    pub as_handle: Option<String>,
    /// Machine-readable output on stdout (docs/json.md lists each command's shape).
    #[arg(long, global = true, help_heading = GLOBAL)]
    pub json: bool,
    /// Only errors and warnings on stderr.
    #[arg(
        short,
        long,
        global = true,
        help_heading = GLOBAL,
        conflicts_with = "verbose"
    )]
    pub quiet: bool,
    /// More detail: container logs and git steps on stderr.
    #[arg(short, long, global = true, help_heading = GLOBAL)]
    pub verbose: bool,
    /// Never use the network: no git fetch or push, no download, no image pull or push; work
    /// from the last synced state and the local caches (commands that write keep their changes
    /// locally until `cohort registry push`). Environment: COHORT_OFFLINE=1.
    #[arg(long, global = true, help_heading = GLOBAL)]
    pub offline: bool,
    /// Answer yes to confirmations (for automation).
    #[arg(short = 'y', long, global = true, help_heading = GLOBAL)]
    pub yes: bool,
    /// Read the key passphrase from this file (first line) instead of prompting (or from the
    /// environment variable COHORT_PASSPHRASE).
    #[arg(long, global = true, help_heading = GLOBAL, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// cohort's local storage (keys, caches, prepared data, state). Environment: COHORT_HOME.
    #[arg(long, global = true, help_heading = GLOBAL, value_name = "DIR")]
    pub home: Option<PathBuf>,
    /// Largest unpacked size of a tarball (cube additional files, demo datasets), and largest
    /// download of an asset, whose record does not state its own (e.g. 5G; default 1G, and at
    /// most 100 times the archive unpacked).
    #[arg(
        long,
        global = true,
        help_heading = GLOBAL,
        value_name = "SIZE",
        value_parser = super::result::parse_size
    )]
    pub max_unpacked_size: Option<u64>,
}

/// The help heading of the global options.
pub const GLOBAL: &str = "Global options";

/// A non-empty environment variable.
fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// COHORT_OFFLINE=1 / true / yes / on (and 0 / false / no / off) as people write them.
fn env_flag(name: &str) -> CliResult<bool> {
    match env_var(name).map(|v| v.to_ascii_lowercase()) {
        None => Ok(false),
        Some(v) => match v.as_str() {
            "1" | "true" | "yes" | "on" | "y" => Ok(true),
            "0" | "false" | "no" | "off" | "n" => Ok(false),
            _ => Err(CliError::usage(format!("{name}={v} is not a yes or no"))
                .hint(format!("set {name}=1 or {name}=0"))),
        },
    }
}

/// Where a passphrase comes from, resolved once; read only when a key is unlocked.
#[derive(Debug, Clone)]
pub enum Passphrase {
    File(PathBuf),
    /// COHORT_PASSPHRASE.
    Value(String),
    Prompt,
}

impl Passphrase {
    /// Where the passphrase came from, for hints.
    pub fn source(&self) -> String {
        match self {
            Passphrase::File(f) => format!("the first line of --passphrase-file {}", f.display()),
            Passphrase::Value(_) => "COHORT_PASSPHRASE".into(),
            Passphrase::Prompt => "the terminal prompt".into(),
        }
    }
}

#[derive(Debug)]
#[allow(dead_code)] // registry, signing and confirmation settings serve later issues' commands
pub struct Settings {
    pub ui: Ui,
    pub home: Home,
    pub registry: Option<PathBuf>,
    pub as_handle: Option<String>,
    pub yes: bool,
    pub passphrase: Passphrase,
    /// Directory the command was started in (for finding the registry clone).
    pub cwd: PathBuf,
    /// DOCKER_HOST, when set (else the local socket).
    pub docker_host: Option<String>,
    /// The Docker client configuration registry credentials come from:
    /// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json` (as the docker CLI).
    pub docker_config: Option<PathBuf>,
    pub offline: bool,
    /// COHORT_ALLOW_PRIVATE_HOSTS: downloads may reach the site's own networks.
    pub allow_private_hosts: bool,
    /// `--max-unpacked-size`.
    pub max_unpacked: Option<u64>,
    /// Where the key agent listens (`COHORT_AGENT_SOCK`, else `$XDG_RUNTIME_DIR/cohort/`,
    /// else under the home).
    pub agent_sock: PathBuf,
}

impl Settings {
    pub fn resolve(g: &GlobalArgs) -> CliResult<Settings> {
        let ui = Ui::new(g.quiet, g.verbose, g.json);
        let home = match g
            .home
            .clone()
            .or_else(|| env_var("COHORT_HOME").map(PathBuf::from))
        {
            Some(h) => h,
            None => default_home()?,
        };
        let passphrase = match (&g.passphrase_file, std::env::var("COHORT_PASSPHRASE")) {
            (Some(f), _) => Passphrase::File(f.clone()),
            (None, Ok(v)) => Passphrase::Value(v),
            (None, Err(_)) => Passphrase::Prompt,
        };
        let cwd = std::env::current_dir()
            .map_err(|e| CliError::env(format!("cannot read the current directory: {e}")))?;
        let agent_sock = agent_sock(&home);
        Ok(Settings {
            ui,
            agent_sock,
            home: Home::new(home),
            registry: g
                .registry
                .clone()
                .or_else(|| env_var("COHORT_REGISTRY").map(PathBuf::from)),
            as_handle: g.as_handle.clone().or_else(|| env_var("COHORT_AS")),
            yes: g.yes,
            passphrase,
            cwd,
            docker_host: std::env::var("DOCKER_HOST").ok().filter(|s| !s.is_empty()),
            docker_config: docker_config_path(),
            offline: g.offline || env_flag("COHORT_OFFLINE")?,
            allow_private_hosts: env_flag("COHORT_ALLOW_PRIVATE_HOSTS")?,
            max_unpacked: g.max_unpacked_size,
        })
    }
}

/// The key agent's socket: `COHORT_AGENT_SOCK`, else `$XDG_RUNTIME_DIR/cohort/agent.sock`
/// (a per-user, per-boot folder), else `<COHORT_HOME>/agent/agent.sock`.
fn agent_sock(home: &std::path::Path) -> PathBuf {
    if let Some(p) = std::env::var_os("COHORT_AGENT_SOCK").filter(|v| !v.is_empty()) {
        return PathBuf::from(p);
    }
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir).join("cohort").join("agent.sock"),
        None => home.join("agent").join("agent.sock"),
    }
}

/// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`: where `docker login` keeps
/// credentials. Resolved here so the core never reads the environment or $HOME.
fn docker_config_path() -> Option<PathBuf> {
    match std::env::var_os("DOCKER_CONFIG").filter(|v| !v.is_empty()) {
        Some(dir) => Some(PathBuf::from(dir).join("config.json")),
        None => directories::BaseDirs::new().map(|d| d.home_dir().join(".docker/config.json")),
    }
}

fn default_home() -> CliResult<PathBuf> {
    directories::ProjectDirs::from("org", "cohort", "cohort")
        .map(|d| d.data_dir().to_path_buf())
        .ok_or_else(|| {
            CliError::env("cannot find a home directory for cohort's local storage")
                .hint("set COHORT_HOME to a directory cohort may use")
        })
}
