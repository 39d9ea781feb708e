//! Services the sites tests start on loopback: a real image registry (Debian's
//! `docker-registry`, the CNCF distribution registry) with htpasswd authentication, a plain
//! HTTP file server for image tarball URLs, and the Docker Engine check that fails under CI.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const USER: &str = "cohort";
pub const PASSWORD: &str = "s3cret-pass";
const REGISTRY: &str = "/usr/bin/docker-registry";

/// Whether a Docker Engine is reachable; under CI its absence fails the test (never a silent
/// skip there), elsewhere the test says it skipped.
pub fn docker_or_skip(test: &str) -> bool {
    let present =
        std::env::var_os("DOCKER_HOST").is_some() || Path::new("/var/run/docker.sock").exists();
    if !present {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{test}: no Docker Engine (CI=true: the container tests must run)");
        }
        eprintln!("skipped {test}: no Docker Engine on this machine");
    }
    present
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn base64(s: &str) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    let mut out = String::new();
    for c in b.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A registry on 127.0.0.1 (Docker Engine allows plain http there) with one htpasswd user,
/// storage in a temp dir; stopped when dropped.
pub struct ImageRegistry {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl ImageRegistry {
    pub fn start() -> ImageRegistry {
        ImageRegistry::start_with("")
    }

    /// A registry with `extra` appended to its configuration (e.g. read-only maintenance).
    pub fn start_with(extra: &str) -> ImageRegistry {
        assert!(
            Path::new(REGISTRY).exists(),
            "{REGISTRY} is missing: apt-get install -y docker-registry apache2-utils (.ci/run installs them)"
        );
        let dir = tempfile::Builder::new()
            .prefix("cohort-registry-")
            .tempdir()
            .unwrap();
        let out = Command::new("htpasswd")
            .args(["-Bbn", USER, PASSWORD])
            .output()
            .expect("htpasswd (apache2-utils) is installed");
        assert!(out.status.success());
        std::fs::write(dir.path().join("htpasswd"), &out.stdout).unwrap();
        let port = free_port();
        let config = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {data}\n{extra}http:\n  addr: 127.0.0.1:{port}\n  secret: cohort-test-secret\nauth:\n  htpasswd:\n    realm: cohort-test\n    path: {htpasswd}\n",
            data = dir.path().join("data").display(),
            htpasswd = dir.path().join("htpasswd").display(),
        );
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let child = Command::new(REGISTRY)
            .arg("serve")
            .arg(&config_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry starts");
        let r = ImageRegistry { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the registry did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        r
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// A Docker client configuration folder (for DOCKER_CONFIG) holding `auths` for this
    /// registry with `password`.
    pub fn docker_config(&self, name: &str, password: &str) -> PathBuf {
        let d = self.dir.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("config.json"),
            format!(
                r#"{{"auths": {{"{}": {{"auth": "{}"}}}}}}"#,
                self.host(),
                base64(&format!("{USER}:{password}"))
            ),
        )
        .unwrap();
        d
    }
}

impl Drop for ImageRegistry {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// Serves the files of one folder over plain HTTP on 127.0.0.1 (GET only), for as long as
/// the test runs.
pub struct FileServer {
    pub port: u16,
}

impl FileServer {
    pub fn start(root: PathBuf) -> FileServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let root = root.clone();
                std::thread::spawn(move || serve(stream, &root));
            }
        });
        FileServer { port }
    }

    pub fn url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/{name}", self.port)
    }
}

fn serve(mut stream: TcpStream, root: &Path) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
    }
    let name = line
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .trim_start_matches('/');
    let body = (!name.contains('/') && !name.is_empty())
        .then(|| std::fs::read(root.join(name)).ok())
        .flatten();
    match body {
        Some(b) => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n",
                b.len()
            );
            stream.write_all(head.as_bytes()).ok();
            stream.write_all(&b).ok();
        }
        None => {
            stream
                .write_all(
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                )
                .ok();
        }
    }
    let _ = reader.read(&mut [0u8; 0]);
}

#[test]
fn base64_matches_the_docker_cli() {
    assert_eq!(base64("user:pass"), "dXNlcjpwYXNz");
    assert_eq!(base64("a"), "YQ==");
    assert_eq!(base64("ab"), "YWI=");
}
