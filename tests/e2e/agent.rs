//! The key agent through the real binary: a passphrase-protected key unlocked once, signing
//! commands that then need no passphrase and no terminal, the private socket folder, stop,
//! expiry, and the fallback to a passphrase source when no agent runs.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use crate::env::TestEnv;

const ROLE: &str = "alice";

/// Stops the agent when a test ends, even by a failed assertion.
struct Agent<'e> {
    env: &'e TestEnv,
}

impl Drop for Agent<'_> {
    fn drop(&mut self) {
        let _ = self.env.cohort(ROLE, &["agent", "stop"]);
    }
}

/// A protected key for alice; returns the passphrase file.
fn protected_key(env: &TestEnv) -> String {
    let pf = env.path().join("passphrase");
    std::fs::write(&pf, "correct horse battery\n").unwrap();
    let pf = pf.to_str().unwrap().to_string();
    env.cohort(
        ROLE,
        &[
            "--passphrase-file",
            &pf,
            "key",
            "generate",
            "--handle",
            ROLE,
        ],
    )
    .ok();
    pf
}

fn socket(env: &TestEnv) -> PathBuf {
    // No XDG_RUNTIME_DIR in the hermetic environment: the socket lives under COHORT_HOME.
    env.cohort_home(ROLE).join("agent/agent.sock")
}

/// `registry init` signs the root and the meta manifest with alice's key.
fn init_registry(env: &TestEnv, name: &str, extra: &[&str]) -> crate::env::Run {
    let dest = env.role_dir(ROLE).join(name);
    let mut args: Vec<&str> = extra.to_vec();
    let dest = dest.to_str().unwrap().to_string();
    args.extend(["registry", "init", &dest, "--name", name, "--admin", ROLE]);
    env.cohort_in(ROLE, &env.role_dir(ROLE), &args, &[])
}

#[test]
fn agent_signs_for_a_protected_key_without_a_passphrase() {
    let env = TestEnv::new();
    let pf = protected_key(&env);

    // No agent and no passphrase source: the prompt is the fallback, and there is no terminal.
    init_registry(&env, "first", &[])
        .fails(1)
        .says("no terminal to ask");
    // No agent, a passphrase file: unlocked here.
    init_registry(&env, "second", &["--passphrase-file", &pf]).ok();

    let start = env
        .cohort(
            ROLE,
            &["--passphrase-file", &pf, "agent", "start", "--ttl", "10m"],
        )
        .ok();
    let _agent = Agent { env: &env };
    let sock = socket(&env);
    assert!(
        start.stdout.contains(&format!(
            "COHORT_AGENT_SOCK='{}'; export COHORT_AGENT_SOCK;",
            sock.display()
        )),
        "{}",
        start.stdout
    );
    let mode = std::fs::metadata(sock.parent().unwrap())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700, "the socket folder is private");

    let status = env.cohort(ROLE, &["agent", "status"]).ok();
    status.says(ROLE).says("expires in");
    let json = crate::env::json(&env.cohort(ROLE, &["agent", "status", "--json"]).ok());
    assert_eq!(json["keys"][0]["handle"], ROLE);

    // With the agent: no passphrase source, no terminal, and the signatures verify (init
    // verifies the registry it made; `verify` checks it again from the files).
    init_registry(&env, "third", &[]).ok();
    let third = env.role_dir(ROLE).join("third");
    env.cohort_in(ROLE, &third, &["verify"], &[]).ok();
    // A second start does not displace the running agent.
    env.cohort(ROLE, &["--passphrase-file", &pf, "agent", "start"])
        .fails(1)
        .says("already running");

    env.cohort(ROLE, &["agent", "stop"]).ok();
    assert!(!sock.exists(), "stop removes the socket");
    env.cohort(ROLE, &["agent", "status"])
        .fails(1)
        .says("no key agent is running");
    // Stopped: back to needing a passphrase.
    init_registry(&env, "fourth", &[])
        .fails(1)
        .says("no terminal to ask");
}

#[test]
fn agent_wipes_its_keys_when_its_time_is_up() {
    let env = TestEnv::new();
    let pf = protected_key(&env);
    env.cohort(
        ROLE,
        &["--passphrase-file", &pf, "agent", "start", "--ttl", "2s"],
    )
    .ok();
    let _agent = Agent { env: &env };
    let sock = socket(&env);
    // Waits for the expiry (bounded), then checks what it left.
    let mut gone = false;
    for _ in 0..300 {
        if env.cohort(ROLE, &["agent", "status"]).code != 0 {
            gone = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(gone, "the agent outlived its --ttl");
    assert!(!sock.exists(), "expiry removes the socket");
    init_registry(&env, "after", &[])
        .fails(1)
        .says("no terminal to ask");
}

#[test]
fn agent_refuses_a_wrong_or_empty_passphrase_naming_its_source() {
    let env = TestEnv::new();
    protected_key(&env);
    let wrong = env.path().join("wrong");
    std::fs::write(&wrong, "not it\n").unwrap();
    let wrong = wrong.to_str().unwrap();
    env.cohort(ROLE, &["--passphrase-file", wrong, "agent", "start"])
        .fails(1)
        .says("wrong passphrase")
        .says(&format!("--passphrase-file {wrong}"));
    assert!(!socket(&env).exists(), "no agent without its keys");
    env.cohort_env(ROLE, &["agent", "start"], &[("COHORT_PASSPHRASE", "")])
        .fails(1)
        .says("is empty")
        .says("COHORT_PASSPHRASE");
    // The same hints without an agent.
    init_registry(&env, "x", &["--passphrase-file", wrong])
        .fails(1)
        .says(&format!("--passphrase-file {wrong}"));
}
