//! The HTTP side of [`super::fetch`]: one GET per attempt, resumed with `Range`/`If-Range`
//! from the `.partial` file an earlier attempt or run left, retried with backoff on
//! transient failures, and renamed into place only once the whole file's hash is known.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::Digest;
use ureq::http::Uri;

use crate::model::Sha256;
use crate::progress::{Cancel, Reporter, TaskId};

use super::content::hash_reader;
use super::download::{Fetched, sync_dir};
use super::error::{NetFailure, Result, StorageError};
use super::headers::{backoff, parse_content_range, parse_unsatisfied_range, retry_after};
use super::net::NetConfig;
use super::pace::Pace;

/// Network read size; the body reader buffers below it anyway.
const BUF: usize = 256 << 10;
/// Hard stop on attempts even while each one makes progress (a server dribbling one byte
/// per connection would otherwise go on for ever).
const MAX_ATTEMPTS: u32 = 200;

/// What a rerun needs to resume safely: same URL, same expected hash, and a validator so
/// the server's `If-Range` tells us whether the file changed in between.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
struct PartialMeta {
    url: String,
    expected: Option<String>,
    etag: Option<String>,
    last_modified: Option<String>,
}

impl PartialMeta {
    /// A resumable partial needs either a validator or an expected hash (which catches a
    /// file that changed under us at the end).
    fn resumable(&self) -> bool {
        self.etag.is_some() || self.last_modified.is_some() || self.expected.is_some()
    }
}

struct Paths {
    partial: PathBuf,
    meta: PathBuf,
}

impl Paths {
    fn new(dest: &Path) -> Paths {
        let with = |suffix: &str| {
            let mut s = dest.as_os_str().to_owned();
            s.push(suffix);
            PathBuf::from(s)
        };
        Paths {
            partial: with(".partial"),
            meta: with(".partial.json"),
        }
    }
    fn discard(&self) {
        let _ = fs::remove_file(&self.partial);
        let _ = fs::remove_file(&self.meta);
    }
}

/// How one HTTP attempt ended when it did not finish the file.
enum Failed {
    /// Worth another try; `progressed` says whether bytes arrived, `wait` honours
    /// Retry-After.
    Transient {
        err: StorageError,
        progressed: bool,
        wait: Option<Duration>,
    },
    /// The server cannot resume from our offset: start again from zero, now.
    Restart,
    /// No point retrying. `discard` removes the partial state.
    Fatal { err: StorageError, discard: bool },
}

/// One progress bar across attempts; a restart from zero opens a new one.
struct Bar<'a> {
    reporter: &'a dyn Reporter,
    label: String,
    task: Option<TaskId>,
}

impl Bar<'_> {
    fn start(&mut self, total: Option<u64>, already: u64) {
        if self.task.is_none() {
            let t = self.reporter.begin(&self.label, total);
            if already > 0 {
                self.reporter.advance(t, already);
            }
            self.task = Some(t);
        }
    }
    fn advance(&self, n: u64) {
        if let Some(t) = self.task {
            self.reporter.advance(t, n);
        }
    }
    fn line(&self, msg: &str) {
        match self.task {
            Some(t) => self.reporter.line(t, msg),
            None => self.reporter.note(msg),
        }
    }
    fn restart(&mut self) {
        if let Some(t) = self.task.take() {
            self.reporter.end(t, false);
        }
    }
    fn end(&mut self, ok: bool) {
        if let Some(t) = self.task.take() {
            self.reporter.end(t, ok);
        }
    }
}

pub(crate) fn fetch_http(
    url: &str,
    expected: Option<&Sha256>,
    dest: &Path,
    net: &NetConfig,
    reporter: &dyn Reporter,
    cancel: &Cancel,
) -> Result<Fetched> {
    let uri: Uri = url.parse().map_err(|e| StorageError::BadSource {
        given: url.to_string(),
        why: format!("not a valid URL ({e})"),
    })?;
    let roots = net.root_certs()?;
    let agent = net.agent_for(&uri, &roots)?;
    let paths = Paths::new(dest);
    let mut meta = load_meta(&paths, url, expected);
    let mut bar = Bar {
        reporter,
        label: format!("downloading {url}"),
        task: None,
    };
    let mut failures = 0u32;
    let mut attempts = 0u32;
    let mut pace = Pace::new(net);
    loop {
        attempts += 1;
        if let Err(err) = pace.check(url) {
            bar.end(false);
            return Err(err);
        }
        let outcome = attempt(
            &agent, url, &paths, &mut meta, net, &mut bar, cancel, &mut pace,
        );
        let err = match outcome {
            Ok((sha256, bytes)) => {
                let done = finish(url, expected, &paths, dest, sha256, bytes);
                bar.end(done.is_ok());
                return done;
            }
            Err(Failed::Restart) if attempts < MAX_ATTEMPTS => {
                paths.discard();
                meta = fresh_meta(url, expected);
                bar.restart();
                continue;
            }
            Err(Failed::Restart) => StorageError::Network {
                url: url.to_string(),
                failure: NetFailure::Protocol,
                reason: "the server keeps answering ranges that do not match the request".into(),
            },
            Err(Failed::Fatal { err, discard }) => {
                if discard {
                    paths.discard();
                }
                bar.end(false);
                return Err(err);
            }
            Err(Failed::Transient {
                err,
                progressed,
                wait,
            }) => {
                // An attempt that brought bytes counts as the first failure of a new run
                // of failures, so a flaky link keeps going while a dead one stops.
                failures = if progressed { 1 } else { failures + 1 };
                if failures <= net.retries && attempts < MAX_ATTEMPTS {
                    let delay = wait.unwrap_or_else(|| backoff(net.backoff, failures));
                    bar.line(&format!(
                        "{err}; retrying in {}",
                        humantime::format_duration(delay)
                    ));
                    match sleep(delay, cancel, url) {
                        Ok(()) => continue,
                        Err(e) => e,
                    }
                } else {
                    err
                }
            }
        };
        bar.end(false);
        return Err(err);
    }
}

fn fresh_meta(url: &str, expected: Option<&Sha256>) -> PartialMeta {
    PartialMeta {
        url: url.to_string(),
        expected: expected.map(|h| h.to_string()),
        ..PartialMeta::default()
    }
}

/// The partial state of an earlier run for the same URL and hash, or a fresh start (an
/// unrelated or unreadable partial is discarded).
fn load_meta(paths: &Paths, url: &str, expected: Option<&Sha256>) -> PartialMeta {
    let fresh = fresh_meta(url, expected);
    // Our own small file, but it sits in a user-writable cache: bounded before parsing.
    let old: Option<PartialMeta> = fs::read(&paths.meta)
        .ok()
        .filter(|b| {
            crate::model::prescan::check_text(b, crate::model::prescan::Syntax::Json, 64 << 10, 4)
                .is_ok()
        })
        .and_then(|b| serde_json::from_slice(&b).ok());
    match old {
        Some(m)
            if m.url == fresh.url
                && m.expected == fresh.expected
                && m.resumable()
                && paths.partial.is_file() =>
        {
            m
        }
        _ => {
            paths.discard();
            fresh
        }
    }
}

/// Sleeps in slices so Ctrl-C is honoured within ~50 ms.
fn sleep(total: Duration, cancel: &Cancel, url: &str) -> Result<()> {
    let step = Duration::from_millis(50);
    let mut left = total;
    while !left.is_zero() {
        if cancel.is_cancelled() {
            return Err(cancelled(url));
        }
        let d = left.min(step);
        std::thread::sleep(d);
        left -= d;
    }
    Ok(())
}

fn cancelled(url: &str) -> StorageError {
    StorageError::Cancelled {
        what: format!("downloading {url}"),
    }
}

/// One GET: resume from the partial file when possible, stream the rest to it while
/// hashing. Returns the whole file's sha256 and size.
#[allow(clippy::too_many_arguments)]
fn attempt(
    agent: &ureq::Agent,
    url: &str,
    paths: &Paths,
    meta: &mut PartialMeta,
    net: &NetConfig,
    bar: &mut Bar<'_>,
    cancel: &Cancel,
    pace: &mut Pace,
) -> std::result::Result<(Sha256, u64), Failed> {
    let fatal_io = |op: &'static str, path: &Path, e: io::Error| Failed::Fatal {
        err: StorageError::io(op, path, e),
        discard: false,
    };
    if cancel.is_cancelled() {
        return Err(Failed::Fatal {
            err: cancelled(url),
            discard: false,
        });
    }
    let offset = if meta.resumable() {
        fs::metadata(&paths.partial).map(|m| m.len()).unwrap_or(0)
    } else {
        0
    };
    let mut req = agent.get(url);
    if offset > 0 {
        req = req.header("Range", format!("bytes={offset}-"));
        // If-Range: the server sends the whole (new) file if it changed since.
        if let Some(v) = meta.etag.as_ref().or(meta.last_modified.as_ref()) {
            req = req.header("If-Range", v.as_str());
        }
    }
    let resp = req.call().map_err(|e| classify(url, e))?;
    let status = resp.status().as_u16();
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let http_err = || StorageError::HttpStatus {
        url: url.to_string(),
        status,
    };
    let start = match status {
        200 => {
            if offset > 0 {
                // Range ignored or the file changed: the bar starts over too.
                bar.restart();
            }
            0
        }
        206 if offset > 0 => match header("content-range").and_then(|v| parse_content_range(&v)) {
            Some(first) if first == offset => offset,
            _ => return Err(Failed::Restart),
        },
        416 if offset > 0 => {
            // Our partial may already be the whole file (the last run died before renaming).
            let total = header("content-range").and_then(|v| parse_unsatisfied_range(&v));
            if total != Some(offset) {
                return Err(Failed::Restart);
            }
            let mut f =
                File::open(&paths.partial).map_err(|e| fatal_io("open", &paths.partial, e))?;
            let mut buf = vec![0u8; BUF];
            return hash_reader(&mut f, &mut buf, &|_| {})
                .map_err(|e| fatal_io("read", &paths.partial, e));
        }
        408 | 429 | 500..=599 => {
            return Err(Failed::Transient {
                err: http_err(),
                progressed: false,
                wait: header("retry-after").and_then(|v| retry_after(&v)),
            });
        }
        _ => {
            return Err(Failed::Fatal {
                err: http_err(),
                discard: true,
            });
        }
    };
    let total = resp.body().content_length().map(|l| l + start);
    if let Some(t) = total.filter(|t| *t > net.max_bytes) {
        return Err(Failed::Fatal {
            err: too_large(url, net, format!("{t} bytes")),
            discard: true,
        });
    }
    let mut hasher = sha2::Sha256::new();
    let mut file = if start == 0 {
        meta.etag = header("etag").filter(|e| !e.starts_with("W/"));
        meta.last_modified = header("last-modified");
        let json = serde_json::to_vec(meta).expect("plain strings serialize");
        super::write_atomic(&paths.meta, &json).map_err(|e| fatal_io("write", &paths.meta, e))?;
        File::create(&paths.partial).map_err(|e| fatal_io("create", &paths.partial, e))?
    } else {
        let mut f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&paths.partial)
            .map_err(|e| fatal_io("open", &paths.partial, e))?;
        // Seed the hash with the bytes we already have, so it covers the whole file.
        let mut prefix = (&mut f).take(start);
        let mut buf = vec![0u8; BUF];
        let n = hash_reader_into(&mut prefix, &mut buf, &mut hasher)
            .map_err(|e| fatal_io("read", &paths.partial, e))?;
        if n != start {
            return Err(Failed::Restart);
        }
        f.seek(SeekFrom::Start(start))
            .map_err(|e| fatal_io("seek in", &paths.partial, e))?;
        f
    };
    bar.start(total, start);
    let mut body = resp.into_body().into_reader();
    let mut buf = vec![0u8; BUF];
    let mut got = 0u64;
    loop {
        if cancel.is_cancelled() {
            let _ = file.sync_data();
            return Err(Failed::Fatal {
                err: cancelled(url),
                discard: false,
            });
        }
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                // Keep what arrived: the next attempt (or run) resumes from it.
                let _ = file.sync_data();
                return Err(progressed(classify_io(url, e), got > 0));
            }
        };
        file.write_all(&buf[..n])
            .map_err(|e| fatal_io("write", &paths.partial, e))?;
        hasher.update(&buf[..n]);
        got += n as u64;
        pace.add(n as u64);
        if let Err(err) = pace.check(url) {
            // Keep what arrived: a rerun (perhaps on a better link) resumes from it.
            let _ = file.sync_data();
            return Err(Failed::Fatal {
                err,
                discard: false,
            });
        }
        if start + got > net.max_bytes {
            return Err(Failed::Fatal {
                err: too_large(url, net, "the server kept sending".into()),
                discard: true,
            });
        }
        bar.advance(n as u64);
    }
    let _ = file.sync_data();
    if let Some(t) = total.filter(|t| *t != start + got) {
        return Err(Failed::Transient {
            err: StorageError::Network {
                url: url.to_string(),
                failure: NetFailure::Interrupted,
                reason: format!("the connection closed after {} of {t} bytes", start + got),
            },
            progressed: got > 0,
            wait: None,
        });
    }
    file.sync_all()
        .map_err(|e| fatal_io("write", &paths.partial, e))?;
    Ok((Sha256::from_digest(&hasher.finalize()), start + got))
}

fn hash_reader_into(r: &mut dyn Read, buf: &mut [u8], h: &mut sha2::Sha256) -> io::Result<u64> {
    let mut total = 0u64;
    loop {
        match r.read(buf) {
            Ok(0) => return Ok(total),
            Ok(n) => {
                h.update(&buf[..n]);
                total += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Verifies and renames the finished partial into place.
fn finish(
    url: &str,
    expected: Option<&Sha256>,
    paths: &Paths,
    dest: &Path,
    sha256: Sha256,
    bytes: u64,
) -> Result<Fetched> {
    if let Some(exp) = expected
        && *exp != sha256
    {
        paths.discard();
        return Err(StorageError::HashMismatch {
            url: url.to_string(),
            expected: exp.clone(),
            actual: sha256,
        });
    }
    fs::rename(&paths.partial, dest).map_err(|e| StorageError::io("move into place", dest, e))?;
    let _ = fs::remove_file(&paths.meta);
    if let Some(parent) = dest.parent() {
        sync_dir(parent);
    }
    Ok(Fetched {
        path: dest.to_path_buf(),
        sha256,
        bytes,
    })
}

fn too_large(url: &str, net: &NetConfig, size: String) -> StorageError {
    StorageError::TooLarge {
        url: url.to_string(),
        limit: net.max_bytes,
        size,
    }
}

fn progressed(f: Failed, got_bytes: bool) -> Failed {
    match f {
        Failed::Transient { err, wait, .. } => Failed::Transient {
            err,
            progressed: got_bytes,
            wait,
        },
        other => other,
    }
}

/// Sorts ureq's errors into retry-worthy and final ones.
fn classify(url: &str, e: ureq::Error) -> Failed {
    use ureq::Error as E;
    let net = |failure, reason: String| StorageError::Network {
        url: url.to_string(),
        failure,
        reason,
    };
    let transient = |err| Failed::Transient {
        err,
        progressed: false,
        wait: None,
    };
    let fatal = |err| Failed::Fatal {
        err,
        discard: false,
    };
    let tls = |reason: String| {
        fatal(StorageError::Tls {
            url: url.to_string(),
            reason,
        })
    };
    match e {
        E::Io(io) => classify_io(url, io),
        E::Timeout(t) => transient(net(NetFailure::Timeout, format!("timed out ({t})"))),
        E::BodyStalled => transient(net(NetFailure::Timeout, "the transfer stalled".into())),
        E::HostNotFound => transient(net(NetFailure::Dns, "host not found".into())),
        E::ConnectionFailed => transient(net(NetFailure::Connect, "connection failed".into())),
        E::Protocol(p) => transient(net(NetFailure::Protocol, p.to_string())),
        E::ConnectProxyFailed(r) => fatal(net(
            NetFailure::Proxy,
            format!("the proxy refused the tunnel ({r})"),
        )),
        E::Tls(r) => tls(r.to_string()),
        E::Rustls(r) => tls(r.to_string()),
        E::Pem(p) => tls(format!("{p:?}")),
        E::BadUri(why) => fatal(StorageError::BadSource {
            given: url.to_string(),
            why,
        }),
        other => fatal(net(NetFailure::Protocol, other.to_string())),
    }
}

fn classify_io(url: &str, e: io::Error) -> Failed {
    if let Some(private) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<super::guard::PrivateAddress>())
    {
        return Failed::Fatal {
            err: StorageError::PrivateHost {
                url: url.to_string(),
                addr: private.0,
            },
            discard: false,
        };
    }
    // The body reader wraps ureq's own errors (timeouts, protocol) in io::Error.
    if e.get_ref().is_some_and(|inner| inner.is::<ureq::Error>()) {
        let inner = e
            .into_inner()
            .expect("checked above")
            .downcast::<ureq::Error>()
            .expect("checked above");
        return classify(url, *inner);
    }
    use io::ErrorKind as K;
    let failure = match e.kind() {
        K::TimedOut | K::WouldBlock => NetFailure::Timeout,
        K::ConnectionRefused | K::HostUnreachable | K::NetworkUnreachable | K::AddrNotAvailable => {
            NetFailure::Connect
        }
        K::InvalidData => {
            let msg = e.to_string();
            // rustls reports certificate problems as InvalidData from the handshake.
            if msg.contains("certificate") || msg.contains("TLS") || msg.contains("handshake") {
                return Failed::Fatal {
                    err: StorageError::Tls {
                        url: url.to_string(),
                        reason: msg,
                    },
                    discard: false,
                };
            }
            NetFailure::Protocol
        }
        _ => NetFailure::Interrupted,
    };
    Failed::Transient {
        err: StorageError::Network {
            url: url.to_string(),
            failure,
            reason: e.to_string(),
        },
        progressed: false,
        wait: None,
    }
}
