//! The image id of a `docker save` tarball, computed from the tarball itself: the sha256 of
//! the config file its `manifest.json` names (what `docker inspect` reports as the id). A
//! bundle's image is checked this way before the Engine ever sees it, so an image that is not
//! the one a signed cube record names is refused without loading anything.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

/// `manifest.json` is a few hundred bytes per image.
const MAX_MANIFEST_JSON: u64 = 1 << 20;
const MAX_ENTRIES: usize = 100_000;

#[derive(serde::Deserialize)]
struct SaveManifest {
    #[serde(rename = "Config")]
    config: String,
}

/// The ids (`sha256:<hex>`) of the images in the `docker save` tarball at `path`, computed
/// from their config files. Errors say what is wrong with the tarball.
pub fn image_id_of_tarball(path: &Path) -> Result<Vec<String>, String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut ar = tar::Archive::new(std::io::BufReader::new(file));
    let mut digests: HashMap<String, String> = HashMap::new();
    let mut manifest: Option<Vec<u8>> = None;
    for (n, entry) in ar.entries().map_err(|e| e.to_string())?.enumerate() {
        if n >= MAX_ENTRIES {
            return Err(format!("more than {MAX_ENTRIES} entries"));
        }
        let mut entry = entry.map_err(|e| format!("not a readable tar: {e}"))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let name = name.trim_start_matches("./").to_string();
        if name == "manifest.json" {
            let mut buf = Vec::new();
            (&mut entry)
                .take(MAX_MANIFEST_JSON + 1)
                .read_to_end(&mut buf)
                .map_err(|e| format!("manifest.json: {e}"))?;
            if buf.len() as u64 > MAX_MANIFEST_JSON {
                return Err("manifest.json is too large".into());
            }
            manifest = Some(buf);
            continue;
        }
        // Hash every file as it streams by: the config may come before or after manifest.json.
        let mut h = Sha256::new();
        std::io::copy(&mut entry, &mut HashWriter(&mut h)).map_err(|e| format!("{name}: {e}"))?;
        digests.insert(name, hex::encode(h.finalize()));
    }
    let manifest = manifest.ok_or("it has no manifest.json (not a `docker save` tarball)")?;
    let images: Vec<SaveManifest> =
        serde_json::from_slice(&manifest).map_err(|e| format!("manifest.json: {e}"))?;
    if images.is_empty() {
        return Err("manifest.json names no image".into());
    }
    images
        .iter()
        .map(|m| {
            let config = m.config.trim_start_matches("./");
            digests
                .get(config)
                .map(|d| format!("sha256:{d}"))
                .ok_or_else(|| format!("manifest.json names config {config}, which is missing"))
        })
        .collect()
}

struct HashWriter<'a>(&'a mut Sha256);

impl std::io::Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tarball(dir: &Path, files: &[(&str, &[u8])]) -> std::path::PathBuf {
        let p = dir.join("image.tar");
        let mut b = tar::Builder::new(std::fs::File::create(&p).unwrap());
        for (name, bytes) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(bytes.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, name, *bytes).unwrap();
        }
        b.finish().unwrap();
        p
    }

    #[test]
    fn the_id_is_the_sha256_of_the_config_the_manifest_names() {
        let dir = tempfile::tempdir().unwrap();
        let config = br#"{"architecture":"amd64"}"#;
        let want = format!("sha256:{}", hex::encode(Sha256::digest(config)));
        // OCI layout (Docker 25+) and the older `<hex>.json` layout.
        for name in ["blobs/sha256/abc", "abc.json"] {
            let manifest = format!(r#"[{{"Config":"{name}","RepoTags":null,"Layers":[]}}]"#);
            let p = tarball(
                dir.path(),
                &[(name, config), ("manifest.json", manifest.as_bytes())],
            );
            assert_eq!(image_id_of_tarball(&p).unwrap(), vec![want.clone()]);
        }
    }

    #[test]
    fn a_tarball_without_manifest_or_config_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = tarball(dir.path(), &[("x", b"y")]);
        assert!(
            image_id_of_tarball(&p)
                .unwrap_err()
                .contains("no manifest.json")
        );
        let p = tarball(
            dir.path(),
            &[("manifest.json", br#"[{"Config":"gone.json"}]"#)],
        );
        assert!(image_id_of_tarball(&p).unwrap_err().contains("gone.json"));
        std::fs::write(&p, b"not a tar at all, just bytes").unwrap();
        assert!(image_id_of_tarball(&p).is_err());
    }
}
