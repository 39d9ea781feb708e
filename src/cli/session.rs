//! What most commands need before calling the core: the workflow context (with a progress
//! reporter), the registry clone, and unlocked signing keys.

use std::time::SystemTime;

use cohort::progress::Cancel;
use cohort::registry::{Registry, Transport};
use cohort::storage::NetConfig;
use cohort::trust::{Signer, TrustError, keys};
use cohort::workflow::Ctx;
use cohort::workflow::registry_ops::{self, Opened};

use super::error::{CliError, CliResult};
use super::settings::{Passphrase, Settings};
use super::ui::BarReporter;

/// Owns what a [`Ctx`] borrows.
pub struct Session<'s> {
    pub settings: &'s Settings,
    pub reporter: BarReporter,
    git_available: bool,
    transport: Option<Transport>,
    net: NetConfig,
    pub cancel: Cancel,
    /// Per-task container time limit (commands that run cubes may change it).
    pub task_timeout: Option<std::time::Duration>,
    /// Cap on a model's predictions (`benchmark run --max-output`).
    pub max_output_bytes: u64,
    /// Verify from scratch, ignoring local state (`verify --full`).
    pub full: bool,
    /// `--gpus` / `--shm-size` of the commands that run cubes.
    pub devices: cohort::workflow::Devices,
}

/// The default per-task time limit for registered cubes.
pub const DEFAULT_TASK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2 * 3600);

/// Whether Ctrl-C was pressed during this process (the command exits 130, whatever it failed
/// with on the way out).
pub fn interrupted() -> bool {
    CANCEL.get().is_some_and(|c| c.is_cancelled())
}

static CANCEL: std::sync::OnceLock<Cancel> = std::sync::OnceLock::new();

/// One cancellation flag for the process: the first Ctrl-C sets it (containers are stopped and
/// removed, partial outputs discarded), a second one exits at once.
pub fn cancel_on_ctrl_c() -> Cancel {
    CANCEL
        .get_or_init(|| {
            let cancel = Cancel::new();
            let c = cancel.clone();
            let _ = ctrlc::set_handler(move || {
                if c.is_cancelled() {
                    std::process::exit(130);
                }
                eprintln!("\ninterrupted: stopping (press Ctrl-C again to quit at once)");
                c.cancel();
            });
            cancel
        })
        .clone()
}

impl<'s> Session<'s> {
    pub fn new(settings: &'s Settings) -> Session<'s> {
        let git_available = std::process::Command::new("git")
            .arg("--version")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        let transport = match std::env::var("COHORT_GIT_TRANSPORT").as_deref() {
            Ok("libgit2") => Some(Transport::Libgit2),
            Ok("cli") => Some(Transport::GitCli),
            _ => None,
        };
        Session {
            settings,
            reporter: settings.ui.reporter(),
            git_available,
            transport,
            net: NetConfig::from_env_lookup(|k| std::env::var(k).ok()),
            cancel: cancel_on_ctrl_c(),
            task_timeout: Some(DEFAULT_TASK_TIMEOUT),
            max_output_bytes: cohort::workflow::DEFAULT_MAX_OUTPUT_BYTES,
            full: false,
            devices: cohort::workflow::Devices::default(),
        }
    }

    pub fn ctx(&self) -> Ctx<'_> {
        Ctx {
            home: &self.settings.home,
            reporter: &self.reporter,
            now: SystemTime::now(),
            git_available: self.git_available,
            transport: self.transport,
            docker_host: self.settings.docker_host.clone(),
            docker_config: self.settings.docker_config.clone(),
            net: self.net.clone(),
            cancel: self.cancel.clone(),
            task_timeout: self.task_timeout,
            offline: self.settings.offline,
            max_output_bytes: self.max_output_bytes,
            full: self.full,
            max_unpacked: self.settings.max_unpacked,
            devices: self.devices.clone(),
        }
    }

    /// The registry clone: `--registry`, else the clone containing the current directory.
    pub fn registry(&self) -> CliResult<Registry> {
        let reg = match &self.settings.registry {
            Some(p) => Registry::open(p),
            None => Registry::discover(&self.settings.cwd),
        };
        reg.map_err(|e| {
            CliError::user(e.to_string()).hint(
                "run inside a registry clone, pass --registry PATH, or create one with `cohort registry init` / `cohort registry clone`",
            )
        })
    }

    /// The registry, opened and verified, as of the last sync (no network).
    pub fn open_local(&self) -> CliResult<Opened> {
        let reg = self.registry()?;
        Ok(registry_ops::open(&self.ctx(), reg)?)
    }

    /// The registry, brought up to date with its remote first when one is reachable: commands
    /// that write build on the newest main. Offline, they work from the last synced state.
    pub fn open(&self) -> CliResult<Opened> {
        let opened = self.open_local()?;
        if opened.reg.remote_url().is_some() && !self.settings.offline {
            match registry_ops::sync(&self.ctx(), &opened) {
                Ok(_) => {}
                Err(e) if e.is_environment() => self
                    .settings
                    .ui
                    .warn(format!("offline ({e}); working from the last synced state")),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(opened)
    }

    /// Who signs: `--as`, else the only local key.
    pub fn handle(&self) -> CliResult<String> {
        if let Some(h) = &self.settings.as_handle {
            return Ok(h.clone());
        }
        let all = keys::list(&self.settings.home).map_err(CliError::from)?;
        match all.len() {
            1 => Ok(all[0].handle.clone()),
            0 => Err(CliError::user(format!(
                "no keys in {}",
                self.settings.home.keys_dir().display()
            ))
            .hint("create one with `cohort key generate --handle <you>`")),
            _ => Err(CliError::user(format!(
                "several keys are available ({}); say which signs",
                all.iter()
                    .map(|k| k.handle.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
            .hint("pass --as HANDLE or set COHORT_AS")),
        }
    }

    /// Unlocks `handle`'s key, reading the passphrase from the configured source if needed.
    pub fn unlock(&self, handle: &str) -> CliResult<Signer> {
        let source = self.settings.passphrase.clone();
        let mut ask = || -> Result<String, TrustError> { read_passphrase(&source, handle, false) };
        keys::unlock(&self.settings.home, handle, &mut ask).map_err(CliError::from)
    }

    pub fn signer(&self) -> CliResult<Signer> {
        let h = self.handle()?;
        self.unlock(&h)
    }
}

/// Reads a passphrase from a file, the environment value, or the terminal.
pub fn read_passphrase(
    source: &Passphrase,
    handle: &str,
    confirm: bool,
) -> Result<String, TrustError> {
    match source {
        Passphrase::File(p) => std::fs::read_to_string(p)
            .map(|s| s.lines().next().unwrap_or_default().to_string())
            .map_err(|e| {
                TrustError::Key(format!(
                    "cannot read the passphrase file {}: {e}",
                    p.display()
                ))
            }),
        Passphrase::Value(v) => Ok(v.clone()),
        Passphrase::Prompt => {
            use std::io::IsTerminal;
            if !std::io::stdin().is_terminal() {
                return Err(TrustError::Key(format!(
                    "the key of {handle} is passphrase-protected and there is no terminal to ask; set COHORT_PASSPHRASE or pass --passphrase-file"
                )));
            }
            let p = rpassword::prompt_password(format!("Passphrase for {handle}: "))
                .map_err(|e| TrustError::Key(format!("cannot read the passphrase: {e}")))?;
            if confirm {
                let again = rpassword::prompt_password("Again: ")
                    .map_err(|e| TrustError::Key(format!("cannot read the passphrase: {e}")))?;
                if again != p {
                    return Err(TrustError::Key("the passphrases differ".into()));
                }
            }
            Ok(p)
        }
    }
}

/// Asks a yes/no question on the terminal; `--yes` answers yes; with no terminal it refuses.
pub fn confirm(settings: &Settings, question: &str) -> CliResult<bool> {
    if settings.yes {
        return Ok(true);
    }
    if !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        return Err(
            CliError::user("confirmation needed and there is no terminal to ask")
                .hint("pass --yes to confirm in scripts"),
        );
    }
    eprint!("{question} [y/N] ");
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}
