//! Where a record locates an artifact (demo data, additional files, an image tarball): an
//! `http(s)` URL or an in-registry blob, never a local path (sites share only the registry).

use serde::{Deserialize, Serialize};

use super::ids::Sha256;

/// An artifact pinned by hash and located either by an `http(s)://` URL or as an in-registry
/// blob (`blob = "blobs/sha256/<sha256>"`), exactly one of the two: never a local path, since
/// sites share nothing but the registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Asset {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blob: Option<String>,
    pub sha256: Sha256,
    /// Bytes of the file itself, measured at submission: a download stops there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// For tarballs cohort extracts: total bytes of the files inside (an extraction stops
    /// there; records made before sizes were recorded get defaults).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unpacked_size: Option<u64>,
    /// For tarballs cohort extracts: how many regular files it holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<u64>,
}

/// Where an [`Asset`] is fetched from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssetLocation<'a> {
    Url(&'a str),
    /// The registry path of the blob.
    Blob(&'a str),
}

impl Asset {
    /// An asset fetched from an `http(s)` URL.
    pub fn at_url(url: impl Into<String>, sha256: Sha256) -> Asset {
        Asset {
            url: Some(url.into()),
            blob: None,
            sha256,
            size: None,
            unpacked_size: None,
            files: None,
        }
    }
    /// [`Asset::at_url`].
    pub fn new(url: impl Into<String>, sha256: Sha256) -> Asset {
        Asset::at_url(url, sha256)
    }
    /// An asset stored in the registry as `blobs/sha256/<sha256>`.
    pub fn in_blob(sha256: Sha256) -> Asset {
        Asset {
            url: None,
            blob: Some(super::paths::build::blob(sha256.as_str())),
            sha256,
            size: None,
            unpacked_size: None,
            files: None,
        }
    }
    /// Where to fetch it (validated records name exactly one location).
    pub fn location(&self) -> AssetLocation<'_> {
        match (&self.blob, &self.url) {
            (Some(b), _) => AssetLocation::Blob(b),
            (None, Some(u)) => AssetLocation::Url(u),
            (None, None) => AssetLocation::Url(""),
        }
    }
    /// The blob path, for an in-registry asset.
    pub fn blob_path(&self) -> Option<&str> {
        self.blob.as_deref()
    }
    /// How a person reads its location (a URL, or the blob path).
    pub fn describe(&self) -> &str {
        match self.location() {
            AssetLocation::Url(u) | AssetLocation::Blob(u) => u,
        }
    }
}

/// Whether `s` is an `http://` or `https://` URL (the only URLs a record may name).
pub fn is_http_url(s: &str) -> bool {
    let lower = s.get(..8).unwrap_or(s).to_ascii_lowercase();
    (lower.starts_with("http://") && s.len() > 7) || (lower.starts_with("https://") && s.len() > 8)
}

/// Whether the http(s) URL `s` carries credentials (`https://user:secret@host/...`): a
/// signed record is published to every clone for ever, so a URL in one must not.
pub fn url_has_credentials(s: &str) -> bool {
    let rest = s.split_once("://").map_or(s, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    authority.contains('@')
}

/// Whether `s` is an image repository as the Docker Engine spells one, without tag or digest:
/// an optional registry host (`registry.example.org`, `127.0.0.1:5000`, `localhost`) and
/// lower-case path components (`team/model`). Nothing else (a local path, a URL, spaces)
/// names an image other sites can pull.
pub fn is_image_repository(s: &str) -> bool {
    if s.is_empty() || s.len() > 255 {
        return false;
    }
    let mut parts: Vec<&str> = s.split('/').collect();
    let first = parts[0];
    if parts.len() > 1 && (first.contains('.') || first.contains(':') || first == "localhost") {
        let (host, port) = match first.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (first, None),
        };
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if !host.split('.').all(label_ok)
            || port.is_some_and(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
        {
            return false;
        }
        parts.remove(0);
    }
    parts.iter().all(|c| {
        let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        !c.is_empty()
            && c.bytes().all(|b| alnum(b) || b"._-".contains(&b))
            && c.bytes().next().is_some_and(alnum)
            && c.bytes().last().is_some_and(alnum)
            && !c.contains("..")
    })
}

/// Whether `s` is `REPO@sha256:<64 lower-case hex>` (REPO as [`is_image_repository`]): the only
/// image reference a record names, pulled by digest so every site gets the same bytes.
pub fn is_image_digest_reference(s: &str) -> bool {
    s.split_once('@').is_some_and(|(repo, digest)| {
        is_image_repository(repo)
            && digest
                .strip_prefix("sha256:")
                .is_some_and(super::ids::is_sha256_hex)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_a_url_are_seen_wherever_the_authority_ends() {
        for bad in [
            "https://user:secret@example.org/x.tar.gz",
            "http://token@example.org",
            "HTTPS://u:p@127.0.0.1:8080/a?b=c",
        ] {
            assert!(url_has_credentials(bad), "{bad}");
        }
        for good in [
            "https://example.org/x.tar.gz",
            "https://example.org/a@b/c.tar.gz",
            "https://example.org/x?mail=a@b",
            "https://example.org/x#a@b",
        ] {
            assert!(!url_has_credentials(good), "{good}");
        }
    }
}
