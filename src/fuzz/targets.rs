//! The fuzz targets: each feeds one input to the real parsing code for one kind of untrusted
//! bytes (signature files, TOML records, sealed payloads, metrics, mlcube.yaml and planning,
//! parameters and run arguments, tarballs, HTTP header values and whole HTTP responses).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::seeds;
use crate::mlcube::{self, CubeConfig, Mode, RunRequest};
use crate::model::{self, Sealed, SealedFor, Sha256, envelope, metrics};
use crate::progress::{Cancel, Silent};
use crate::storage::{self, ExtractLimits, NetConfig};
use crate::trust::{keys, sign};

/// Runs one input through a parser.
pub type RunFn = Box<dyn Fn(&[u8])>;

/// One parser under fuzzing.
pub struct Target {
    pub name: &'static str,
    pub seeds: Vec<Vec<u8>>,
    /// Extra dictionary tokens for this syntax.
    pub dict: Vec<Vec<u8>>,
    pub run: RunFn,
}

fn tokens(list: &[&str]) -> Vec<Vec<u8>> {
    list.iter().map(|t| t.as_bytes().to_vec()).collect()
}

/// Every target. `repo` is the source tree (seeds from docs/, fixtures/ and the conformance
/// corpora in tests/conformance), `scratch` a folder for keys, tarball extraction and downloads
/// (tmpfs keeps it fast).
pub fn all_targets(repo: &Path, scratch: &Path) -> Vec<Target> {
    // The conformance corpora (MLCube's and MedPerf's) live in the repository.
    let yaml_dirs = [repo.join("tests/conformance"), repo.join("fixtures")];
    let yaml_seeds = |suffixes: &[&str], limit: usize| -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for d in &yaml_dirs {
            out.extend(seeds::files(d, suffixes, limit));
        }
        out
    };
    let records = seeds::format_examples(repo);
    let mut cubes = yaml_seeds(&["mlcube.yaml", "container_config.yaml"], 400);
    cubes.dedup();
    let mut params = yaml_seeds(&["parameters.yaml", "paths.yaml"], 100);
    params.extend(seeds::parameter_lines());
    vec![
        signature_target(scratch, &records),
        record_target(records),
        sealed_target(),
        metrics_target(),
        mlcube_target(cubes),
        parameters_target(params),
        tarball_target(scratch),
        http_header_target(),
        http_target(scratch),
    ]
}

fn signature_target(scratch: &Path, records: &[Vec<u8>]) -> Target {
    let home = storage::Home::new(scratch.join("keys"));
    if keys::public(&home, "fuzzer").is_err() {
        keys::generate(&home, "fuzzer", None, std::time::SystemTime::now())
            .expect("a fresh key in the scratch folder");
    }
    let signer =
        keys::unlock(&home, "fuzzer", &mut || unreachable!("unencrypted")).expect("our own key");
    let registry = Sha256::of(b"fuzz registry");
    let signed = records
        .first()
        .cloned()
        .unwrap_or_else(|| b"format = 1\n".to_vec());
    let mut seeds: Vec<Vec<u8>> = records
        .iter()
        .take(4)
        .map(|r| {
            sign::sign(&signer, &registry, "users/fuzzer/v1.toml", "user", r)
                .expect("signing in memory")
        })
        .collect();
    if seeds.is_empty() {
        seeds.push(
            sign::sign(&signer, &registry, "a.toml", "user", &signed).expect("signing in memory"),
        );
    }
    let pk = signer.pk.clone();
    Target {
        name: "signature",
        seeds,
        dict: tokens(&[
            "cohort format=1 registry=",
            " path=",
            " sha256=",
            " kind=user",
            " signer=",
        ]),
        run: Box::new(move |input| {
            let _ = sign::verify(&pk, input, &signed);
            let _ = sign::claimed_key_id(input);
        }),
    }
}

fn record_target(records: Vec<Vec<u8>>) -> Target {
    Target {
        name: "record",
        seeds: records,
        dict: tokens(&[
            "format = ",
            "kind = \"",
            "[[admins]]\n",
            "sha256 = \"",
            "= [",
            "= {",
            "\"\"\"",
            "1979-05-27T07:32:00Z",
            "users/alice/v1.toml",
            "approval-",
        ]),
        // The first line is the path, the rest the file: both are attacker-chosen.
        run: Box::new(|input| {
            let (path, body) = match input.iter().position(|b| *b == b'\n') {
                Some(i) => (&input[..i], &input[i + 1..]),
                None => (input, &[][..]),
            };
            let Ok(path) = std::str::from_utf8(path) else {
                return;
            };
            if let Ok(rp) = model::classify(path) {
                let _ = model::parse_record(path, &rp, body);
            }
        }),
    }
}

fn sealed_target() -> Target {
    let ids: Vec<age::x25519::Identity> =
        (0..3).map(|_| age::x25519::Identity::generate()).collect();
    let who: Vec<SealedFor> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| SealedFor {
            handle: format!("h{i}"),
            age: id.to_public().to_string(),
        })
        .collect();
    let plain = metrics::to_canonical(&[("auc".to_string(), 0.9)].into_iter().collect());
    let seeds = vec![
        envelope::seal(&plain, &who[..1], "f.age", envelope::SCHEMA_METRICS)
            .expect("sealing in memory")
            .1,
        envelope::seal(&plain, &who, "f.age", envelope::SCHEMA_METRICS)
            .expect("sealing in memory")
            .1,
    ];
    let identity = ids.into_iter().next().expect("three identities");
    Target {
        name: "sealed",
        seeds,
        dict: tokens(&[
            "-> X25519 ",
            "-> scrypt ",
            "--- ",
            "age-encryption.org/v1\n",
        ]),
        run: Box::new(move |input| {
            let _ = envelope::stanza_count(input);
            let manifest = Sealed {
                file: "f.age".into(),
                schema: envelope::SCHEMA_METRICS.into(),
                ciphertext_sha256: Sha256::of(input),
                plaintext_sha256: Sha256::of(b""),
                recipients: who.clone(),
            };
            let _ = envelope::open(&manifest, input, &identity);
        }),
    }
}

fn metrics_target() -> Target {
    Target {
        name: "metrics",
        seeds: tokens(&[
            "auc: 0.875\naccuracy: 0.8\nn: 120\n",
            "\"auc\" = 0.875\n\"n\" = 120.0\n",
            "dice: {a: 1}\nx: [1, 2]\n",
        ]),
        dict: tokens(&["0.5", "1e308", "-.inf", ".nan", "~", "!!float "]),
        run: Box::new(|input| {
            let _ = metrics::parse_yaml_metrics("results.yaml", input);
            let _ = metrics::from_canonical("payload", input);
        }),
    }
}

fn mlcube_target(seeds: Vec<Vec<u8>>) -> Target {
    Target {
        name: "mlcube",
        seeds,
        dict: tokens(&[
            "${runtime.root}",
            "${runtime.workspace}",
            "${docker.image}",
            "${oc.env:HOME,/x}",
            "${.x}",
            "${..y}",
            "\\${",
            "tasks:\n",
            "parameters:\n",
            "inputs:\n",
            "outputs:\n",
            "type: directory",
            "default: ",
            "opts: rw",
            "gpu_args: ",
            "cpu_args: --gpus all -e A=b",
            "build_strategy: ",
            "entrypoint: ",
            "~/",
            "$HOME/",
        ]),
        run: Box::new(|input| {
            let Ok(text) = std::str::from_utf8(input) else {
                return;
            };
            let Ok(cfg) = CubeConfig::from_text(text, Path::new("/nonexistent/fuzz/mlcube.yaml"))
            else {
                return;
            };
            let _ = mlcube::check_strict(&cfg);
            let env = |k: &str| (k == "HOME" || k == "X").then(|| "/home/fuzz".to_string());
            for task in cfg.tasks().into_iter().take(3) {
                for mode in [Mode::Local, Mode::Strict] {
                    let mut req = RunRequest::new(task.clone());
                    req.mode = mode;
                    let _ = mlcube::plan(&cfg, &req, &env, Path::new("/nonexistent/home"));
                }
            }
        }),
    }
}

fn parameters_target(seeds: Vec<Vec<u8>>) -> Target {
    Target {
        name: "parameters",
        seeds,
        dict: tokens(&[
            "=",
            ".",
            "--gpus",
            "--shm-size=",
            "$(",
            "`",
            "\"$X\"",
            "'",
            "device=",
        ]),
        run: Box::new(|input| {
            let Ok(text) = std::str::from_utf8(input) else {
                return;
            };
            mlcube::fuzz_parameters(text);
        }),
    }
}

fn tarball_target(scratch: &Path) -> Target {
    let dir = scratch.join("tar");
    std::fs::create_dir_all(&dir).expect("the scratch folder is writable");
    let limits = ExtractLimits {
        max_entries: 64,
        max_total_bytes: 1 << 20,
        ..ExtractLimits::default()
    };
    Target {
        name: "tarball",
        seeds: seeds::tarballs(),
        dict: tokens(&[
            "ustar\u{0}00",
            "ustar  \u{0}",
            "../",
            "././@LongLink",
            "\u{1f}\u{8b}\u{8}",
        ]),
        run: Box::new(move |input| {
            let archive = dir.join("in.tar");
            let dest = dir.join("out");
            if std::fs::write(&archive, input).is_ok() {
                let _ = storage::extract_tarball(&archive, &dest, &limits);
            }
            let _ = std::fs::remove_dir_all(&dest);
        }),
    }
}

fn http_header_target() -> Target {
    Target {
        name: "http-headers",
        seeds: tokens(&[
            "bytes 100-199/1000",
            "bytes */1000",
            "120",
            "https://example.org/a%20b.tgz",
            "file:///tmp/a%2",
        ]),
        dict: tokens(&["bytes ", "*/", "-", "%", "://", "file://localhost/"]),
        run: Box::new(|input| {
            if let Ok(text) = std::str::from_utf8(input) {
                storage::fuzz_header_values(text);
            }
        }),
    }
}

/// A loopback server that answers every request with the current input, then closes.
struct WireServer {
    port: u16,
    response: Arc<Mutex<Vec<u8>>>,
    stop: Arc<AtomicBool>,
}

impl WireServer {
    fn start() -> WireServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let port = listener.local_addr().expect("a bound socket").port();
        let response = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (resp, halt) = (response.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if halt.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut conn) = conn else { continue };
                let body = resp.lock().map(|r| r.clone()).unwrap_or_default();
                let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
                read_request(&mut conn);
                let _ = conn.write_all(&body);
                let _ = conn.shutdown(Shutdown::Both);
            }
        });
        WireServer {
            port,
            response,
            stop,
        }
    }
}

impl Drop for WireServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so the thread sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn read_request(conn: &mut TcpStream) {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !seen.windows(4).any(|w| w == b"\r\n\r\n") && seen.len() < 64 << 10 {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
}

fn http_target(scratch: &Path) -> Target {
    let server = WireServer::start();
    let dir = scratch.join("http");
    std::fs::create_dir_all(&dir).expect("the scratch folder is writable");
    // No proxy: ureq tunnels even http:// through CONNECT, and the inputs must reach the
    // response parser, not the tunnel handshake.
    let net = NetConfig {
        connect_timeout: Duration::from_secs(2),
        read_timeout: Duration::from_secs(2),
        retries: 0,
        backoff: Duration::from_millis(1),
        max_bytes: 1 << 20,
        min_rate: 1024,
        rate_grace: Duration::from_secs(3),
        // The server is on loopback.
        allow_private_hosts: true,
        ..NetConfig::default()
    };
    let url = format!("http://127.0.0.1:{}/asset.bin", server.port);
    Target {
        name: "http",
        seeds: seeds::http_responses(),
        dict: tokens(&[
            "Content-Length: ",
            "Content-Range: bytes ",
            "Transfer-Encoding: chunked\r\n",
            "Location: /x\r\n",
            "Retry-After: ",
            "\r\n",
            "HTTP/1.1 ",
            "206",
            "416",
            "301",
        ]),
        run: Box::new(move |input| {
            if let Ok(mut r) = server.response.lock() {
                *r = input.to_vec();
            }
            let dest = dir.join("asset.bin");
            let _ = storage::fetch(&url, None, &dest, &net, &Silent, &Cancel::new());
            for suffix in ["", ".partial", ".partial.json"] {
                let mut p = dest.clone().into_os_string();
                p.push(suffix);
                let _ = std::fs::remove_file(PathBuf::from(p));
            }
        }),
    }
}
