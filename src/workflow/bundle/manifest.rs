//! The bundle manifest (`manifest.toml`, the first entry of the tar): its format version, the
//! bundle's kind, the registry id it belongs to, and the path, size and sha256 of every other
//! entry. Parsed strictly (unknown keys refused, bounded size): it is read before anything in
//! the bundle is trusted, and trusted only for hashes the import re-checks against the
//! verified registry.

use serde::{Deserialize, Serialize};

/// The entry name of the manifest inside the bundle tar.
pub const MANIFEST_NAME: &str = "manifest.toml";
/// The manifest format this build writes and reads.
pub const MANIFEST_FORMAT: u32 = 1;
/// The largest manifest accepted.
pub const MAX_MANIFEST_BYTES: u64 = 4 << 20;
/// The entry name of the git bundle inside the bundle tar.
pub const GIT_BUNDLE_NAME: &str = "registry.bundle";

/// What a bundle is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BundleKind {
    /// The registry's main and the artifacts of some benchmarks: makes or updates a clone.
    Registry,
    /// Submission branches from a site: added to an existing clone, then pushed.
    Submissions,
}

impl std::fmt::Display for BundleKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BundleKind::Registry => "registry",
            BundleKind::Submissions => "submissions",
        })
    }
}

/// One file inside the bundle besides the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestEntry {
    /// Path inside the tar (`registry.bundle`, `images/<hex>.tar`, `artifacts/<hex>`).
    pub path: String,
    pub sha256: String,
    pub bytes: u64,
    /// For images: the image id (`sha256:<hex>`, the config digest) it must load as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    /// What it is, for people (`cube prep v1`, `demo dataset of chest`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub what: String,
}

/// `manifest.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: u32,
    pub kind: BundleKind,
    /// The registry id (sha256 of root/v1.toml).
    pub registry_id: String,
    pub created: String,
    pub cohort_version: String,
    /// Benchmarks whose artifacts a registry bundle carries.
    #[serde(default)]
    pub benchmarks: Vec<String>,
    /// The git bundle.
    pub registry: ManifestEntry,
    #[serde(default)]
    pub images: Vec<ManifestEntry>,
    #[serde(default)]
    pub artifacts: Vec<ManifestEntry>,
}

impl Manifest {
    /// Every entry besides the manifest.
    pub fn entries(&self) -> impl Iterator<Item = &ManifestEntry> {
        std::iter::once(&self.registry)
            .chain(&self.images)
            .chain(&self.artifacts)
    }

    /// Parses and checks the manifest's shape: the format version, the paths each kind of
    /// entry may have, hex hashes.
    pub fn parse(text: &str) -> Result<Manifest, String> {
        // toml's own rendering spans several lines; a refusal is one line.
        let m: Manifest = toml::from_str(text).map_err(|e| match e.span() {
            Some(span) => format!("{MANIFEST_NAME}: {} (at byte {})", e.message(), span.start),
            None => format!("{MANIFEST_NAME}: {}", e.message()),
        })?;
        if m.format != MANIFEST_FORMAT {
            return Err(format!(
                "{MANIFEST_NAME}: format {} (this cohort reads format {MANIFEST_FORMAT}; update cohort)",
                m.format
            ));
        }
        if !is_hex64(&m.registry_id) {
            return Err(format!("{MANIFEST_NAME}: registry_id is not a sha256"));
        }
        if m.registry.path != GIT_BUNDLE_NAME {
            return Err(format!(
                "{MANIFEST_NAME}: the registry entry must be {GIT_BUNDLE_NAME}"
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for e in m.entries() {
            if !is_hex64(&e.sha256) {
                return Err(format!("{MANIFEST_NAME}: {}: sha256 is not hex", e.path));
            }
            if !seen.insert(e.path.as_str()) {
                return Err(format!("{MANIFEST_NAME}: {} is listed twice", e.path));
            }
        }
        for e in &m.images {
            let ok = e
                .path
                .strip_prefix("images/")
                .and_then(|p| p.strip_suffix(".tar"))
                .is_some_and(is_hex64)
                && e.image_id
                    .as_deref()
                    .and_then(|i| i.strip_prefix("sha256:"))
                    .is_some_and(is_hex64);
            if !ok {
                return Err(format!(
                    "{MANIFEST_NAME}: image entry {} must be images/<hex>.tar with an image_id",
                    e.path
                ));
            }
        }
        for e in &m.artifacts {
            if e.path != format!("artifacts/{}", e.sha256) {
                return Err(format!(
                    "{MANIFEST_NAME}: artifact entry {} must be artifacts/<its sha256>",
                    e.path
                ));
            }
        }
        if m.kind == BundleKind::Submissions && (!m.images.is_empty() || !m.artifacts.is_empty()) {
            return Err(format!(
                "{MANIFEST_NAME}: a submissions bundle carries only branches"
            ));
        }
        Ok(m)
    }
}

pub fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        let h = "ab".repeat(32);
        Manifest {
            format: MANIFEST_FORMAT,
            kind: BundleKind::Registry,
            registry_id: h.clone(),
            created: "2026-01-01T00:00:00Z".into(),
            cohort_version: "0".into(),
            benchmarks: vec!["chest".into()],
            registry: ManifestEntry {
                path: GIT_BUNDLE_NAME.into(),
                sha256: h.clone(),
                bytes: 1,
                image_id: None,
                what: String::new(),
            },
            images: vec![ManifestEntry {
                path: format!("images/{h}.tar"),
                sha256: h.clone(),
                bytes: 1,
                image_id: Some(format!("sha256:{h}")),
                what: "cube prep v1".into(),
            }],
            artifacts: vec![ManifestEntry {
                path: format!("artifacts/{h}"),
                sha256: h.clone(),
                bytes: 1,
                image_id: None,
                what: String::new(),
            }],
        }
    }

    #[test]
    fn a_written_manifest_parses_back() {
        let m = sample();
        let text = toml::to_string(&m).expect("serializes");
        assert_eq!(Manifest::parse(&text).expect("parses"), m);
    }

    #[test]
    fn traversal_unknown_keys_and_other_formats_are_refused() {
        let mut m = sample();
        m.artifacts[0].path = "../../etc/passwd".into();
        let err = Manifest::parse(&toml::to_string(&m).unwrap()).unwrap_err();
        assert!(err.contains("artifacts/<its sha256>"), "{err}");
        let mut m = sample();
        m.format = 2;
        let err = Manifest::parse(&toml::to_string(&m).unwrap()).unwrap_err();
        assert!(err.contains("format 2"), "{err}");
        let text = format!("{}\nextra = 1\n", toml::to_string(&sample()).unwrap());
        assert!(Manifest::parse(&text).is_err());
        let mut m = sample();
        m.kind = BundleKind::Submissions;
        let err = Manifest::parse(&toml::to_string(&m).unwrap()).unwrap_err();
        assert!(err.contains("only branches"), "{err}");
    }
}
