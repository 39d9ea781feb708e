//! `--offline` and COHORT_OFFLINE=1 (an air-gapped site) never touch the network: the git
//! remote, an image registry and an artifact URL all point at one loopback listener, and every
//! command that would have reached them is refused saying it is offline while the listener
//! sees no connection.

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::env::TestEnv;
use crate::services::docker_or_skip;

/// A loopback port that counts the connections it is offered.
struct Listener {
    port: u16,
    seen: Arc<AtomicUsize>,
}

impl Listener {
    fn start() -> Listener {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let seen = Arc::new(AtomicUsize::new(0));
        let count = seen.clone();
        std::thread::spawn(move || {
            for conn in l.incoming() {
                count.fetch_add(1, Ordering::SeqCst);
                drop(conn);
            }
        });
        Listener { port, seen }
    }
}

#[test]
fn offline_never_touches_the_network() {
    if !docker_or_skip("offline_never_touches_the_network") {
        return;
    }
    let e = TestEnv::new();
    e.init_shared("admin");
    let net = Listener::start();
    let host = format!("127.0.0.1:{}", net.port);
    let clone = e.clone_dir("admin");
    e.git(
        "admin",
        &clone,
        &[
            "remote",
            "set-url",
            "origin",
            &format!("http://{host}/reg.git"),
        ],
    )
    .ok();
    let offline = [("COHORT_OFFLINE", "1")];
    let prep = e.cube("prep");
    let digest = format!("{host}/team/prep@sha256:{}", "ab".repeat(32));
    let url = format!("http://{host}/files.tar.gz");
    let repo = format!("{host}/team/prep");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["registry", "sync"], "offline"),
        (vec!["registry", "push"], "offline"),
        (
            vec!["mlcube", "submit", &prep, "--name", "p1", "--pull", &digest],
            "offline",
        ),
        (
            vec![
                "mlcube", "submit", &prep, "--name", "p2", "--push", &repo, "--build",
            ],
            "offline",
        ),
        (
            vec![
                "mlcube",
                "submit",
                &prep,
                "--name",
                "p3",
                "--local-only",
                "--build",
                "--additional-files",
                &url,
            ],
            "offline",
        ),
    ];
    for (args, needle) in cases {
        let r = e.cohort_env("admin", &args, &offline);
        assert_ne!(r.code, 0, "{args:?} went through:\n{}", r.all());
        r.says(needle);
        let r = e.cohort("admin", &[&["--offline"], args.as_slice()].concat());
        assert_ne!(r.code, 0, "--offline {args:?} went through:\n{}", r.all());
        r.says(needle);
    }
    assert_eq!(
        net.seen.load(Ordering::SeqCst),
        0,
        "something reached the network while offline"
    );
}
