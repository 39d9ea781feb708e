//! The agent over a real socket in a temp folder: signatures and sealed payloads made through
//! it verify and open like local ones, and it keeps to its user, its folder and its lifetime.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, SystemTime};

use super::*;
use crate::model::Sha256;
use crate::model::envelope::{self, SealedFor};
use crate::storage::Home;
use crate::trust::{keys, sign};

fn home_with(handle: &str, pass: Option<&str>) -> (tempfile::TempDir, Home) {
    let dir = tempfile::tempdir().unwrap();
    let home = Home::new(dir.path().join("home"));
    keys::generate(&home, handle, pass, SystemTime::now()).unwrap();
    (dir, home)
}

#[test]
fn peer_check_admits_only_the_same_uid() {
    assert!(check_peer(Some(1000), 1000).is_ok());
    let e = check_peer(Some(1001), 1000).unwrap_err();
    assert!(e.contains("uid 1001"), "{e}");
    assert!(check_peer(None, 1000).is_err());
}

#[test]
fn socket_folder_is_private() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("run/cohort/agent.sock");
    let listening = bind(&sock).unwrap();
    let mode = std::fs::metadata(sock.parent().unwrap())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    // A live agent is never displaced.
    let e = bind(&sock).err().expect("second bind refused");
    assert!(e.to_string().contains("already running"), "{e}");
    drop(listening);
    // A folder others may enter is refused.
    let open = dir.path().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();
    let e = bind(&open.join("agent.sock")).err().expect("refused");
    assert!(e.to_string().contains("0700"), "{e}");
}

#[test]
fn signs_and_unwraps_through_the_socket_then_stops() {
    let (dir, home) = home_with("alice", Some("correct horse"));
    let local = keys::unlock(&home, "alice", &mut || Ok("correct horse".into())).unwrap();
    let sock = dir.path().join("agent/agent.sock");
    let listening = bind(&sock).unwrap();
    let server = std::thread::spawn(move || serve(listening, vec![local], None));
    let client = AgentClient::new(&sock);
    let status = client.status().unwrap();
    assert_eq!(status.keys.len(), 1);
    assert_eq!(status.keys[0].handle, "alice");
    assert_eq!(status.expires_in, None);

    let signer = client
        .signer(&home, "alice")
        .unwrap()
        .expect("agent holds alice");
    assert!(signer.via_agent());
    let reg = Sha256::of(b"registry");
    let bytes = b"format = 1\n";
    let sig = sign::sign(&signer, &reg, "users/alice/v1.toml", "user", bytes).unwrap();
    let c = sign::verify(&signer.pk, &sig, bytes).unwrap();
    assert_eq!(c.signer, "alice");

    let to = [SealedFor {
        handle: "alice".into(),
        age: signer.public.age.clone(),
    }];
    let (sealed, ct) = envelope::seal(b"x = 1\n", &to, "f.age", envelope::SCHEMA_METRICS).unwrap();
    let plain = envelope::open(&sealed, &ct, signer.decryptor()).unwrap();
    assert_eq!(plain, b"x = 1\n");
    // Sealed to someone else: not a recipient, as with a local key.
    let other = age::x25519::Identity::generate().to_public().to_string();
    let to = [SealedFor {
        handle: "bob".into(),
        age: other,
    }];
    let (sealed, ct) = envelope::seal(b"x = 1\n", &to, "f.age", envelope::SCHEMA_METRICS).unwrap();
    assert!(envelope::open(&sealed, &ct, signer.decryptor()).is_err());

    // A handle the agent does not hold: no agent signer (the caller unlocks locally).
    keys::generate(&home, "bob", None, SystemTime::now()).unwrap();
    assert!(client.signer(&home, "bob").unwrap().is_none());

    client.stop().unwrap();
    server.join().unwrap();
    assert!(!sock.exists());
    assert!(client.status().is_err());
    // With no agent, callers fall back.
    assert!(client.signer(&home, "alice").unwrap().is_none());
}

#[test]
fn expiry_wipes_and_exits() {
    let (dir, home) = home_with("bot", None);
    let local = keys::unlock(&home, "bot", &mut || unreachable!()).unwrap();
    let sock = dir.path().join("agent/agent.sock");
    let listening = bind(&sock).unwrap();
    let server =
        std::thread::spawn(move || serve(listening, vec![local], Some(Duration::from_millis(300))));
    // The serving thread ends on its own once the time limit has passed.
    server.join().unwrap();
    assert!(!sock.exists());
    assert!(AgentClient::new(&sock).status().is_err());
}

#[test]
fn frames_are_bounded() {
    let mut big = Vec::new();
    big.extend_from_slice(&(MAX_FRAME + 1).to_be_bytes());
    let e = read_frame::<Request>(&mut &big[..]).unwrap_err();
    assert!(e.to_string().contains("larger"), "{e}");
    let mut buf = Vec::new();
    write_frame(&mut buf, &Request::Status).unwrap();
    assert!(matches!(
        read_frame::<Request>(&mut &buf[..]).unwrap(),
        Request::Status
    ));
}
