//! Integration tests of the storage primitives against real sockets, files and tools:
//! downloads from a loopback HTTP server (resume, retry, hash mismatch, proxy, TLS with an
//! extra CA), the verified cache, safe tarball extraction and the dataset content hash
//! (including the shell reference from docs/content-hash.md).

mod bombs;
mod cache;
mod content;
mod downloads;
mod extract;
mod http;
mod tls;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cohort::model::Sha256;
use cohort::progress::{Cancel, Reporter, Silent, TaskId};
use cohort::storage::{
    Cache, DEFAULT_MAX_UNRECORDED, ExtractLimits, NetConfig, StorageError, extract_tarball, fetch,
    hash_tree,
};
use http::{Proxy, Served, Server};

/// Remembers what the core reported.
#[derive(Default)]
struct Recorder {
    begun: Mutex<Vec<(String, Option<u64>)>>,
    advanced: AtomicU64,
    warnings: Mutex<Vec<String>>,
}

impl Reporter for Recorder {
    fn begin(&self, label: &str, total: Option<u64>) -> TaskId {
        self.begun.lock().unwrap().push((label.to_string(), total));
        TaskId::next()
    }
    fn advance(&self, _task: TaskId, delta: u64) {
        self.advanced.fetch_add(delta, Ordering::Relaxed);
    }
    fn warn(&self, message: &str) {
        self.warnings.lock().unwrap().push(message.to_string());
    }
}

/// Fast retries, short timeouts: tests must not wait on backoff.
fn net() -> NetConfig {
    NetConfig {
        retries: 3,
        backoff: Duration::from_millis(10),
        connect_timeout: Duration::from_secs(5),
        read_timeout: Duration::from_secs(5),
        // The test servers listen on loopback.
        allow_private_hosts: true,
        ..NetConfig::default()
    }
}

fn body(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 251) as u8).collect()
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn get(
    url: &str,
    expected: Option<&Sha256>,
    dest: &Path,
    net: &NetConfig,
) -> Result<cohort::storage::Fetched, StorageError> {
    fetch(url, expected, dest, net, &Silent, &Cancel::new())
}
