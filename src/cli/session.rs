//! What most commands need before calling the core: the workflow context (with a progress
//! reporter), the registry clone, and unlocked signing keys.

use std::time::SystemTime;

use cohort::progress::Cancel;
use cohort::registry::{Registry, Transport};
use cohort::storage::NetConfig;
use cohort::trust::agent::AgentClient;
use cohort::trust::{Signer, TrustError, keys};
use cohort::workflow::registry_ops::{self, Opened};
use cohort::workflow::{Ctx, GitProgram};

use super::error::{CliError, CliResult};
use super::settings::{Passphrase, Settings};
use super::ui::BarReporter;

/// Owns what a [`Ctx`] borrows.
pub struct Session<'s> {
    pub settings: &'s Settings,
    pub reporter: BarReporter,
    git: GitProgram,
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
        let transport = match std::env::var("COHORT_GIT_TRANSPORT").as_deref() {
            Ok("libgit2") => Some(Transport::Libgit2),
            Ok("cli") => Some(Transport::GitCli),
            _ => None,
        };
        Session {
            settings,
            reporter: settings.ui.reporter(),
            git: GitProgram::ask(),
            transport,
            net: NetConfig {
                offline: settings.offline,
                allow_private_hosts: settings.allow_private_hosts,
                ..NetConfig::from_env_lookup(|k| std::env::var(k).ok())
            },
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
            git: &self.git,
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

    /// `handle`'s key: through the key agent when one runs and holds it, else unlocked here,
    /// reading the passphrase from the configured source (a few tries at the prompt).
    pub fn unlock(&self, handle: &str) -> CliResult<Signer> {
        let home = &self.settings.home;
        if self.settings.agent_sock.exists()
            && let Some(signer) = AgentClient::new(&self.settings.agent_sock)
                .signer(home, handle)
                .map_err(CliError::from)?
        {
            return Ok(signer);
        }
        let source = &self.settings.passphrase;
        with_retries(
            source,
            || keys::unlock(home, handle, &mut || read_passphrase(source, handle, false)),
            |why| self.settings.ui.warn(why),
        )
        .map_err(|e| passphrase_error(e, source))
    }

    pub fn signer(&self) -> CliResult<Signer> {
        let h = self.handle()?;
        self.unlock(&h)
    }
}

/// How many passphrases the prompt accepts before giving up.
pub const PROMPT_TRIES: u32 = 3;

/// Runs `attempt` again while it fails for a wrong or empty passphrase and the passphrase was
/// typed at the prompt ([`PROMPT_TRIES`] in all); a file or COHORT_PASSPHRASE gets one try,
/// since asking again would read the same value.
pub fn with_retries<T>(
    source: &Passphrase,
    mut attempt: impl FnMut() -> Result<T, TrustError>,
    mut warn: impl FnMut(String),
) -> Result<T, TrustError> {
    let tries = match source {
        Passphrase::Prompt => PROMPT_TRIES,
        _ => 1,
    };
    let mut n = 1;
    loop {
        match attempt() {
            Err(e @ (TrustError::WrongPassphrase(_) | TrustError::EmptyPassphrase(_)))
                if n < tries =>
            {
                warn(format!("{e}; try again ({} left)", tries - n));
                n += 1;
            }
            other => return other,
        }
    }
}

/// A passphrase failure with a hint naming where the passphrase came from.
pub fn passphrase_error(e: TrustError, source: &Passphrase) -> CliError {
    let hint = match (&e, source) {
        (TrustError::WrongPassphrase(_), Passphrase::Prompt) => format!(
            "the passphrase came from {} ({PROMPT_TRIES} tries); `cohort agent start` asks once per session",
            source.source()
        ),
        (TrustError::WrongPassphrase(_), _) => {
            format!("the passphrase came from {}; check it", source.source())
        }
        (TrustError::EmptyPassphrase(_), _) => format!(
            "the passphrase came from {}; an empty passphrase is refused before any key derivation",
            source.source()
        ),
        _ => return e.into(),
    };
    CliError::user(e.to_string()).hint(hint)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn wrong() -> TrustError {
        TrustError::WrongPassphrase("alice".into())
    }

    #[test]
    fn the_prompt_gets_three_tries_then_the_last_error() {
        let (mut calls, mut warnings) = (0, Vec::new());
        let r: Result<(), _> = with_retries(
            &Passphrase::Prompt,
            || {
                calls += 1;
                Err(wrong())
            },
            |w| warnings.push(w),
        );
        assert!(matches!(r, Err(TrustError::WrongPassphrase(_))));
        assert_eq!(calls, PROMPT_TRIES);
        assert_eq!(warnings.len(), 2);
        assert!(warnings[0].contains("2 left"), "{warnings:?}");
    }

    #[test]
    fn the_prompt_succeeds_on_a_later_try_and_empty_counts_as_a_try() {
        let mut calls = 0;
        let r = with_retries(
            &Passphrase::Prompt,
            || {
                calls += 1;
                match calls {
                    1 => Err(TrustError::EmptyPassphrase("alice".into())),
                    2 => Err(wrong()),
                    _ => Ok(calls),
                }
            },
            |_| {},
        );
        assert_eq!(r.unwrap(), 3);
    }

    #[test]
    fn files_and_the_environment_get_one_try_and_other_errors_none() {
        for source in [Passphrase::File("/p".into()), Passphrase::Value("v".into())] {
            let mut calls = 0;
            let r: Result<(), _> = with_retries(
                &source,
                || {
                    calls += 1;
                    Err(wrong())
                },
                |_| panic!("no retry"),
            );
            assert!(r.is_err());
            assert_eq!(calls, 1);
            let e = passphrase_error(wrong(), &source);
            assert!(e.hints[0].contains(&source.source()), "{:?}", e.hints);
        }
        let mut calls = 0;
        let r: Result<(), _> = with_retries(
            &Passphrase::Prompt,
            || {
                calls += 1;
                Err(TrustError::Key("unreadable key file".into()))
            },
            |_| panic!("no retry"),
        );
        assert!(r.is_err());
        assert_eq!(calls, 1);
    }
}
