//! `cohort agent`: start, stop and query the key agent. `start` runs this binary again as a
//! hidden `agent serve` in its own session; the two talk over the child's stdin and stdout
//! until the keys are unlocked and the socket listens, so the passphrase is asked (and
//! retried) here, on the terminal, and derived once, in the agent.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use clap::{Args, Subcommand};
use cohort::trust::agent::{self, AgentClient, AgentStatus};
use cohort::trust::{Signer, TrustError, keys};
use serde::Serialize;
use zeroize::Zeroizing;

use super::error::{CliError, CliResult};
use super::session::{passphrase_error, read_passphrase, with_retries};
use super::settings::Settings;

#[derive(Debug, Args)]
pub struct AgentArgs {
    #[command(subcommand)]
    command: AgentCommand,
}

#[derive(Debug, Subcommand)]
enum AgentCommand {
    /// Unlock your keys (all of them, or --as HANDLE) into a background agent and print the
    /// line that points commands at it: `eval "$(cohort agent start)"`.
    Start {
        /// Wipe the keys and exit after this long (e.g. 30m, 8h); default: until stopped.
        #[arg(long, value_parser = humantime::parse_duration)]
        ttl: Option<Duration>,
    },
    /// Wipe the agent's keys and stop it.
    Stop,
    /// Whether an agent runs, which keys it holds and until when.
    Status,
    /// The agent process itself (started by `agent start`).
    #[command(hide = true)]
    Serve {
        /// The socket to listen on (resolved by `agent start`).
        #[arg(long)]
        socket: PathBuf,
        /// Seconds until the agent wipes its keys and exits.
        #[arg(long)]
        ttl_secs: Option<u64>,
    },
}

/// `agent start --json`.
#[derive(Serialize)]
struct StartedJson {
    socket: PathBuf,
    pid: u32,
    keys: Vec<String>,
}

#[derive(Serialize)]
struct StatusJson {
    socket: PathBuf,
    #[serde(flatten)]
    status: AgentStatus,
}

pub fn run(settings: &Settings, args: AgentArgs) -> CliResult {
    match args.command {
        AgentCommand::Start { ttl } => start(settings, ttl),
        AgentCommand::Stop => stop(settings),
        AgentCommand::Status => status(settings),
        AgentCommand::Serve { socket, ttl_secs } => serve(settings, socket, ttl_secs),
    }
}

fn not_running(settings: &Settings) -> CliError {
    CliError::user(format!(
        "no key agent is running at {}",
        settings.agent_sock.display()
    ))
    .hint("start one with `eval \"$(cohort agent start)\"`; COHORT_AGENT_SOCK says where to look")
}

/// `'...'` for a POSIX shell.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The parent's end of the start-up conversation with the agent.
struct Pipe {
    to: std::process::ChildStdin,
    from: BufReader<std::process::ChildStdout>,
}

impl Pipe {
    fn read(&mut self) -> CliResult<String> {
        let mut line = String::new();
        self.from
            .read_line(&mut line)
            .map_err(|e| CliError::env(format!("the key agent stopped answering: {e}")))?;
        Ok(line.trim_end().to_string())
    }

    fn send(&mut self, line: &str) -> CliResult {
        writeln!(self.to, "{line}")
            .and_then(|_| self.to.flush())
            .map_err(|e| CliError::env(format!("the key agent stopped: {e}")))
    }
}

fn start(settings: &Settings, ttl: Option<Duration>) -> CliResult {
    let ui = &settings.ui;
    let sock = &settings.agent_sock;
    let client = AgentClient::new(sock);
    if let Ok(s) = client.status() {
        return Err(CliError::user(format!(
            "a key agent (pid {}) is already running at {}",
            s.pid,
            sock.display()
        ))
        .hint("use it, or stop it first with `cohort agent stop`"));
    }
    let exe = std::env::current_exe()
        .map_err(|e| CliError::env(format!("cannot find the cohort binary: {e}")))?;
    let home = std::path::absolute(settings.home.root()).map_err(|e| {
        CliError::env(format!(
            "cannot resolve {}: {e}",
            settings.home.root().display()
        ))
    })?;
    let sock_abs = std::path::absolute(sock)
        .map_err(|e| CliError::env(format!("cannot resolve {}: {e}", sock.display())))?;
    let mut cmd = Command::new(exe);
    // The agent outlives this command: it keeps no folder busy.
    cmd.current_dir("/")
        .arg("--home")
        .arg(home)
        .args(["agent", "serve", "--socket"])
        .arg(&sock_abs);
    if let Some(h) = &settings.as_handle {
        cmd.args(["--as", h]);
    }
    if let Some(t) = ttl {
        cmd.args(["--ttl-secs", &t.as_secs().max(1).to_string()]);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| CliError::env(format!("cannot start the key agent: {e}")))?;
    let mut pipe = Pipe {
        to: child.stdin.take().expect("piped"),
        from: BufReader::new(child.stdout.take().expect("piped")),
    };
    let handles = loop {
        let msg = pipe.read()?;
        if let Some(handle) = msg.strip_prefix("need ") {
            let handle = handle.to_string();
            ui.status(format!("unlocking the key of {handle}"));
            let source = &settings.passphrase;
            let attempt = || -> Result<(), TrustError> {
                let pass = Zeroizing::new(read_passphrase(source, &handle, false)?);
                // Refused here, before the agent derives anything from it.
                if pass.is_empty() {
                    return Err(TrustError::EmptyPassphrase(handle.clone()));
                }
                let lost = |e: CliError| TrustError::Key(e.message);
                pipe.send(&pass).map_err(lost)?;
                let answer = pipe.read().map_err(lost)?;
                if answer.starts_with("unlocked ") {
                    Ok(())
                } else if answer.starts_with("wrong ") {
                    Err(TrustError::WrongPassphrase(handle.clone()))
                } else {
                    let why = answer.strip_prefix("error ").unwrap_or(&answer);
                    Err(TrustError::Key(format!(
                        "the key agent did not start: {why}"
                    )))
                }
            };
            // On failure the pipe closes with `child`, and the agent exits without a key.
            with_retries(source, attempt, |w| ui.warn(w))
                .map_err(|e| passphrase_error(e, source))?;
        } else if let Some(rest) = msg.strip_prefix("ready ") {
            break rest.to_string();
        } else if let Some(why) = msg.strip_prefix("error ") {
            let _ = child.wait();
            return Err(CliError::user(format!(
                "the key agent did not start: {why}"
            )));
        } else {
            let _ = child.wait();
            return Err(CliError::env("the key agent exited before it was ready"));
        }
    };
    let pid = child.id();
    // The agent lives on in its own session; nothing here waits for it.
    drop(child);
    let quoted = shell_quote(&sock_abs.to_string_lossy());
    if ui.json {
        ui.json(&StartedJson {
            socket: sock.clone(),
            pid,
            keys: handles.split(',').map(str::to_string).collect(),
        });
    } else {
        ui.out(format!(
            "COHORT_AGENT_SOCK={quoted}; export COHORT_AGENT_SOCK;\necho Agent pid {pid};"
        ));
    }
    ui.status(format!(
        "key agent {pid} holds the keys of {handles}{}",
        ttl.map(|t| format!(" for {}", humantime::format_duration(t)))
            .unwrap_or_default()
    ));
    Ok(())
}

fn stop(settings: &Settings) -> CliResult {
    let client = AgentClient::new(&settings.agent_sock);
    let pid = client.status().map_err(|_| not_running(settings))?.pid;
    client.stop()?;
    // The agent removes its socket right after answering: wait for it, so that a command run
    // next cannot reach a stopping agent.
    for _ in 0..100 {
        if !settings.agent_sock.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    settings
        .ui
        .status(format!("stopped key agent {pid}; its keys are wiped"));
    Ok(())
}

fn status(settings: &Settings) -> CliResult {
    let ui = &settings.ui;
    let status = AgentClient::new(&settings.agent_sock)
        .status()
        .map_err(|_| not_running(settings))?;
    if ui.json {
        ui.json(&StatusJson {
            socket: settings.agent_sock.clone(),
            status,
        });
        return Ok(());
    }
    ui.out(format!(
        "key agent {} at {}{}",
        status.pid,
        settings.agent_sock.display(),
        match status.expires_in {
            Some(s) => format!(
                ", expires in {}",
                humantime::format_duration(Duration::from_secs(s))
            ),
            None => ", no time limit".into(),
        }
    ));
    for k in &status.keys {
        ui.out(format!("{} {}", k.handle, k.key_id));
    }
    Ok(())
}

/// The agent process: unlock with passphrases from the parent, bind, report ready, serve.
fn serve(settings: &Settings, socket: PathBuf, ttl_secs: Option<u64>) -> CliResult {
    // Its own session: the terminal's hangup or Ctrl-C does not reach the agent.
    let _ = rustix::process::setsid();
    let mut out = std::io::stdout();
    let mut input = std::io::stdin().lock();
    let mut say = |msg: String| {
        let _ = writeln!(out, "{msg}");
        let _ = out.flush();
    };
    let result = (|| -> Result<(Vec<Signer>, agent::Listening), String> {
        let wanted = match &settings.as_handle {
            Some(h) => vec![keys::public(&settings.home, h).map_err(|e| e.to_string())?],
            None => keys::list(&settings.home).map_err(|e| e.to_string())?,
        };
        if wanted.is_empty() {
            return Err(format!("no keys in {}", settings.home.keys_dir().display()));
        }
        let mut unlocked = Vec::new();
        for p in wanted {
            if p.encrypted {
                say(format!("need {}", p.handle));
            }
            let signer = loop {
                let mut ask = || -> Result<String, TrustError> {
                    let mut line = Zeroizing::new(String::new());
                    match input.read_line(&mut line) {
                        Ok(0) | Err(_) => Err(TrustError::Key("no passphrase given".into())),
                        Ok(_) => Ok(line.trim_end_matches(['\n', '\r']).to_string()),
                    }
                };
                match keys::unlock(&settings.home, &p.handle, &mut ask) {
                    Ok(s) => break s,
                    Err(TrustError::WrongPassphrase(_) | TrustError::EmptyPassphrase(_)) => {
                        say(format!("wrong {}", p.handle));
                    }
                    Err(e) => return Err(e.to_string()),
                }
            };
            if p.encrypted {
                say(format!("unlocked {}", p.handle));
            }
            unlocked.push(signer);
        }
        let listening = agent::bind(&socket).map_err(|e| e.to_string())?;
        Ok((unlocked, listening))
    })();
    match result {
        Ok((keys, listening)) => {
            let handles: Vec<&str> = keys.iter().map(|k| k.handle.as_str()).collect();
            say(format!("ready {}", handles.join(",")));
            agent::serve(listening, keys, ttl_secs.map(Duration::from_secs));
            Ok(())
        }
        Err(why) => {
            say(format!("error {}", why.replace('\n', " ")));
            Err(CliError::user(why))
        }
    }
}
