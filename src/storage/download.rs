//! Downloads of cube assets, image tarballs and demo datasets from `http(s)://` URLs,
//! `file://` URLs or local paths: streamed to disk while hashing, resumed with `Range` after
//! a broken connection (even by a later run), retried with backoff, capped in size, and only
//! renamed to the destination once complete and verified, so nothing that looks finished
//! exists before it is.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use sha2::Digest;
use ureq::http::Uri;

use crate::model::Sha256;
use crate::progress::{Cancel, Reporter};

use super::error::{Result, StorageError};
use super::http::fetch_http;
use super::net::NetConfig;

/// Copy buffer size for local sources.
const BUF: usize = 256 << 10;

/// A downloaded (or copied) file at its destination, verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    pub path: PathBuf,
    pub sha256: Sha256,
    pub bytes: u64,
}

/// Where an asset comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    Http(String),
    Local(PathBuf),
}

impl Source {
    /// `http(s)://` and `file://` URLs, anything else is a local path. Other schemes are
    /// refused rather than taken for a relative path.
    pub(crate) fn parse(given: &str) -> Result<Source> {
        let bad = |why: &str| StorageError::BadSource {
            given: given.to_string(),
            why: why.to_string(),
        };
        let lower = given.get(..8).unwrap_or(given).to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            given
                .parse::<Uri>()
                .map_err(|e| bad(&format!("not a valid URL ({e})")))?;
            return Ok(Source::Http(given.to_string()));
        }
        if lower.starts_with("file://") {
            let rest = &given["file://".len()..];
            let path = if rest.starts_with('/') {
                rest.to_string()
            } else if let Some(p) = rest.strip_prefix("localhost/") {
                format!("/{p}")
            } else {
                return Err(bad(
                    "file URLs must name a local absolute path: file:///path/to/file",
                ));
            };
            let decoded = percent_decode(&path).ok_or_else(|| bad("bad %-escape in the path"))?;
            return Ok(Source::Local(decoded));
        }
        if given.contains("://") {
            return Err(bad(
                "only http://, https://, file:// and local paths are supported",
            ));
        }
        if given.is_empty() {
            return Err(bad("it is empty"));
        }
        Ok(Source::Local(PathBuf::from(given)))
    }
}

/// Decodes `%XX` escapes into path bytes.
fn percent_decode(s: &str) -> Option<PathBuf> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStringExt;
        Some(PathBuf::from(std::ffi::OsString::from_vec(out)))
    }
    #[cfg(not(unix))]
    {
        String::from_utf8(out).ok().map(PathBuf::from)
    }
}

/// Fetches `source` (an `http(s)://` URL, a `file://` URL or a local path) to the file
/// `dest`, verifying `expected` when given.
///
/// The bytes stream to `<dest>.partial` (HTTP) or a temporary sibling (local copies) while
/// being hashed; only a complete, verified file is renamed to `dest`. An interrupted HTTP
/// download keeps `<dest>.partial` and `<dest>.partial.json` (URL, validators, expected
/// hash) so a rerun resumes with `Range`; the final hash always covers the whole file. On a
/// hash mismatch, a size-cap breach or a permanent HTTP error nothing is left behind.
/// Callers that may race on the same `dest` serialize themselves ([`super::Cache`] does).
pub fn fetch(
    source: &str,
    expected: Option<&Sha256>,
    dest: &Path,
    net: &NetConfig,
    reporter: &dyn Reporter,
    cancel: &Cancel,
) -> Result<Fetched> {
    let parent = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(parent).map_err(|e| StorageError::io("create", parent, e))?;
    match Source::parse(source)? {
        Source::Http(_) if net.offline => Err(StorageError::Offline {
            url: source.to_string(),
        }),
        Source::Http(url) => fetch_http(&url, expected, dest, net, reporter, cancel),
        Source::Local(path) => copy_local(source, &path, expected, dest, net, reporter, cancel),
    }
}

/// Copies a local file into place while hashing (the source may change later; the copy
/// is what was verified).
fn copy_local(
    given: &str,
    src: &Path,
    expected: Option<&Sha256>,
    dest: &Path,
    net: &NetConfig,
    reporter: &dyn Reporter,
    cancel: &Cancel,
) -> Result<Fetched> {
    let meta = fs::metadata(src).map_err(|e| StorageError::io("read", src, e))?;
    if !meta.is_file() {
        return Err(StorageError::BadSource {
            given: given.to_string(),
            why: format!("{} is not a regular file", src.display()),
        });
    }
    if meta.len() > net.max_bytes {
        return Err(StorageError::TooLarge {
            url: given.to_string(),
            limit: net.max_bytes,
            size: format!("{} bytes", meta.len()),
        });
    }
    let mut input = File::open(src).map_err(|e| StorageError::io("open", src, e))?;
    let parent = dest.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".cohort-fetch-")
        .tempfile_in(parent)
        .map_err(|e| StorageError::io("create a temporary file in", parent, e))?;
    let task = reporter.begin(&format!("copying {}", src.display()), Some(meta.len()));
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; BUF];
    let mut bytes = 0u64;
    let copied: Result<()> = (|| loop {
        if cancel.is_cancelled() {
            return Err(StorageError::Cancelled {
                what: format!("copying {}", src.display()),
            });
        }
        let n = match input.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(StorageError::io("read", src, e)),
        };
        tmp.write_all(&buf[..n])
            .map_err(|e| StorageError::io("write", tmp.path(), e))?;
        hasher.update(&buf[..n]);
        bytes += n as u64;
        if bytes > net.max_bytes {
            return Err(StorageError::TooLarge {
                url: given.to_string(),
                limit: net.max_bytes,
                size: "it grew while being copied".into(),
            });
        }
        reporter.advance(task, n as u64);
    })();
    reporter.end(task, copied.is_ok());
    copied?;
    let actual = Sha256::from_digest(&hasher.finalize());
    if let Some(exp) = expected
        && *exp != actual
    {
        // `tmp` is deleted on drop: nothing is left behind.
        return Err(StorageError::HashMismatch {
            url: given.to_string(),
            expected: exp.clone(),
            actual,
        });
    }
    tmp.as_file()
        .sync_all()
        .map_err(|e| StorageError::io("write", tmp.path(), e))?;
    tmp.persist(dest)
        .map_err(|e| StorageError::io("move into place", dest, e.error))?;
    sync_dir(parent);
    Ok(Fetched {
        path: dest.to_path_buf(),
        sha256: actual,
        bytes,
    })
}

/// Persists a rename; best effort (some filesystems refuse to open directories).
pub(crate) fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources() {
        assert_eq!(
            Source::parse("https://h.org/a.tgz").unwrap(),
            Source::Http("https://h.org/a.tgz".into())
        );
        assert_eq!(
            Source::parse("file:///tmp/a%20b.tgz").unwrap(),
            Source::Local("/tmp/a b.tgz".into())
        );
        assert_eq!(
            Source::parse("file://localhost/tmp/x").unwrap(),
            Source::Local("/tmp/x".into())
        );
        assert_eq!(
            Source::parse("rel/dir/x.tar").unwrap(),
            Source::Local("rel/dir/x.tar".into())
        );
        for bad in ["ftp://h/x", "file://otherhost/x", "", "file:///a%zz"] {
            let e = Source::parse(bad).unwrap_err().to_string();
            assert!(e.contains("not a usable download source"), "{bad}: {e}");
        }
    }
}
