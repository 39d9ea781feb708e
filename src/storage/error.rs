//! The one error type of the storage primitives (downloads, cache, extraction, content hash).
//! Every message names the URL, archive or file involved and says what to do, because the CLI
//! shows it to a user who has to act on it.

use std::io;
use std::path::PathBuf;

use crate::model::Sha256;

use super::LockError;

/// Why a network operation failed; decides retries and the CLI's exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetFailure {
    /// The host name did not resolve.
    Dns,
    /// Connecting failed (refused, unreachable, reset during the handshake).
    Connect,
    /// A connect, read or total timeout expired.
    Timeout,
    /// The connection broke while the body was streaming.
    Interrupted,
    /// The proxy refused the tunnel or answered garbage.
    Proxy,
    /// The server broke the HTTP protocol.
    Protocol,
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error(
        "cannot download {url}: {reason}{hint}",
        hint = network_hint(.failure)
    )]
    Network {
        url: String,
        failure: NetFailure,
        reason: String,
    },

    #[error("cannot download {url}: the server answered HTTP {status}{hint}", hint = status_hint(.status))]
    HttpStatus { url: String, status: u16 },

    #[error(
        "TLS failure talking to {url}: {reason}; if a proxy or a private CA signs this server's \
         certificate, pass its PEM bundle (COHORT_CA_BUNDLE or SSL_CERT_FILE)"
    )]
    Tls { url: String, reason: String },

    #[error(
        "sha256 mismatch for {url}: expected {expected}, got {actual}; nothing was kept. The file \
         changed at its source or the recorded hash is wrong: ask its owner"
    )]
    HashMismatch {
        url: String,
        expected: Sha256,
        actual: Sha256,
    },

    #[error(
        "{url} is larger than the {limit}-byte download limit ({size}); nothing was kept. An \
         asset's record states its size; for one that does not (1 GiB by default), \
         --max-unpacked-size raises the limit"
    )]
    TooLarge {
        url: String,
        limit: u64,
        size: String,
    },

    #[error(
        "cannot download {url}: {received} bytes in {elapsed_secs} s is under the minimum rate of \
         {min_rate} bytes/s; the link is too slow or the server is stalling; a rerun resumes"
    )]
    TooSlow {
        url: String,
        received: u64,
        elapsed_secs: u64,
        min_rate: u64,
    },

    #[error(
        "not downloading {url}: offline (--offline or COHORT_OFFLINE=1) and it is not in the local \
         cache; import a registry bundle that carries it (`cohort bundle import`), or go online"
    )]
    Offline { url: String },

    #[error(
        "not downloading {url}: it leads to {addr}, an address of this site's own network \
         (loopback, link-local or private), and a URL comes from a record another organisation \
         wrote; if your consortium hosts files on a private network, set \
         COHORT_ALLOW_PRIVATE_HOSTS=1"
    )]
    PrivateHost { url: String, addr: std::net::IpAddr },

    #[error("`{given}` is not a usable download source: {why}")]
    BadSource { given: String, why: String },

    #[error("invalid proxy `{proxy}` (from the proxy settings): {why}")]
    BadProxy { proxy: String, why: String },

    #[error("cannot use the CA bundle {path}: {why}; give a file of PEM certificates")]
    CaBundle { path: PathBuf, why: String },

    #[error("{what} was cancelled; a rerun continues where it stopped")]
    Cancelled { what: String },

    #[error("cannot {op} {path}: {}", crate::storage::plain_io(.source))]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error(
        "refusing to extract {archive}: entry `{entry}` {why}; nothing was extracted. Rebuild the \
         archive with plain files and folders only"
    )]
    UnsafeArchive {
        archive: PathBuf,
        entry: String,
        why: String,
    },

    #[error("refusing to extract {archive}: {why}; nothing was extracted")]
    ArchiveLimit { archive: PathBuf, why: String },

    #[error("cannot read archive {archive}: {why}; is it a .tar or .tar.gz file?")]
    BadArchive { archive: PathBuf, why: String },

    #[error("cannot hash {path}: {why}")]
    Unhashable { path: PathBuf, why: String },

    #[error(transparent)]
    Lock(#[from] LockError),
}

fn network_hint(failure: &NetFailure) -> &'static str {
    match failure {
        NetFailure::Dns => "; check the host name, DNS, or the proxy settings (HTTPS_PROXY)",
        NetFailure::Connect | NetFailure::Timeout | NetFailure::Interrupted => {
            "; check the network or the proxy settings; a rerun resumes the download"
        }
        NetFailure::Proxy => "; check HTTPS_PROXY/HTTP_PROXY/ALL_PROXY and NO_PROXY",
        NetFailure::Protocol => "",
    }
}

fn status_hint(status: &u16) -> &'static str {
    match *status {
        404 | 410 => "; the asset is gone from that address: ask its owner for a new URL",
        401 | 403 => "; the server refuses access: the asset must be public",
        407 => "; the proxy wants credentials: put them in the proxy URL",
        500..=599 => "; the server is failing: try again later",
        _ => "",
    }
}

impl StorageError {
    /// True when the failure is the environment's (network unreachable, DNS, timeouts, a
    /// failing server, a full disk) rather than the input's: the CLI maps it to exit code 3.
    pub fn is_environment(&self) -> bool {
        match self {
            StorageError::Network { failure, .. } => *failure != NetFailure::Protocol,
            StorageError::HttpStatus { status, .. } => {
                *status >= 500 || *status == 408 || *status == 429 || *status == 407
            }
            StorageError::Io { source, .. } => is_disk_full(source),
            StorageError::TooSlow { .. } | StorageError::Offline { .. } => true,
            _ => false,
        }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        StorageError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

fn is_disk_full(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    )
}

/// Shorthand used across the storage modules.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_url_and_a_way_out() {
        let e = StorageError::HttpStatus {
            url: "https://example.org/a.tar.gz".into(),
            status: 404,
        };
        let s = e.to_string();
        assert!(
            s.contains("https://example.org/a.tar.gz") && s.contains("404"),
            "{s}"
        );
        assert!(!e.is_environment());
        let e = StorageError::Network {
            url: "https://example.org/x".into(),
            failure: NetFailure::Dns,
            reason: "host not found".into(),
        };
        assert!(e.is_environment());
        assert!(e.to_string().contains("DNS"), "{e}");
    }
}
