//! The image id of a `docker save` tarball, computed from the tarball itself: the sha256 of
//! the config file its `manifest.json` names (what `docker inspect` reports as the id). A
//! bundle's image is checked this way before the Engine ever sees it, so an image that is not
//! the one a signed cube record names is refused without loading anything.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};
use tar::EntryType;

/// `manifest.json` is a few hundred bytes per image.
const MAX_MANIFEST_JSON: u64 = 1 << 20;
const MAX_ENTRIES: usize = 100_000;

#[derive(serde::Deserialize)]
struct SaveManifest {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
}

/// One image a `docker save` tarball holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedImage {
    /// `sha256:<hex>`: the sha256 of its config file.
    pub id: String,
    /// The tags `docker load` would give it (`RepoTags`).
    pub tags: Vec<String>,
}

/// The ids (`sha256:<hex>`) of the images in the `docker save` tarball at `path`, computed
/// from their config files. Errors say what is wrong with the tarball.
pub fn image_id_of_tarball(path: &Path) -> Result<Vec<String>, String> {
    Ok(saved_images(path)?.into_iter().map(|i| i.id).collect())
}

/// The images of the `docker save` tarball at `path`, read as the Engine will read them. The
/// Engine unpacks the tar (cleaning each name, following links) before it opens
/// `manifest.json` and the configs, so a tar where a name could mean two files is refused: a
/// name that leaves the tar, two entries with one cleaned name, and a link standing for
/// `manifest.json`, for a config or for a folder other entries sit in. Layers may be links
/// (`docker save` links a repeated layer); the Engine checks each layer against the config.
pub fn saved_images(path: &Path) -> Result<Vec<SavedImage>, String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut ar = tar::Archive::new(std::io::BufReader::new(file));
    let mut digests: HashMap<String, String> = HashMap::new();
    let mut names: HashSet<String> = HashSet::new();
    let mut links: HashSet<String> = HashSet::new();
    let mut manifest: Option<Vec<u8>> = None;
    for (n, entry) in ar.entries().map_err(|e| e.to_string())?.enumerate() {
        if n >= MAX_ENTRIES {
            return Err(format!("more than {MAX_ENTRIES} entries"));
        }
        let mut entry = entry.map_err(|e| format!("not a readable tar: {e}"))?;
        let kind = entry.header().entry_type();
        if matches!(kind, EntryType::XGlobalHeader | EntryType::XHeader) {
            continue;
        }
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let name = clean(&raw).ok_or_else(|| format!("entry `{raw}` leaves the tarball"))?;
        if name.is_empty() {
            continue;
        }
        if !names.insert(name.clone()) {
            return Err(format!("`{name}` appears twice"));
        }
        match kind {
            EntryType::Directory => continue,
            EntryType::Symlink | EntryType::Link => {
                links.insert(name);
                continue;
            }
            EntryType::Regular | EntryType::Continuous => {}
            other => return Err(format!("entry `{name}` is a {other:?}, not a file")),
        }
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
    // Nothing may sit inside a linked folder: the Engine would write it through the link.
    for name in &names {
        let mut parent = name.as_str();
        while let Some((up, _)) = parent.rsplit_once('/') {
            if links.contains(up) {
                return Err(format!("`{name}` sits inside `{up}`, which is a link"));
            }
            parent = up;
        }
    }
    if links.contains("manifest.json") {
        return Err("manifest.json is a link".into());
    }
    let manifest = manifest.ok_or("it has no manifest.json (not a `docker save` tarball)")?;
    let images: Vec<SaveManifest> =
        serde_json::from_slice(&manifest).map_err(|e| format!("manifest.json: {e}"))?;
    if images.is_empty() {
        return Err("manifest.json names no image".into());
    }
    images
        .into_iter()
        .map(|m| {
            let config = clean(&m.config).unwrap_or_default();
            if links.contains(&config) {
                return Err(format!("config {config} is a link"));
            }
            let digest = digests.get(&config).ok_or_else(|| {
                format!("manifest.json names config {}, which is missing", m.config)
            })?;
            Ok(SavedImage {
                id: format!("sha256:{digest}"),
                tags: m.repo_tags.unwrap_or_default(),
            })
        })
        .collect()
}

/// A tar entry name as the Engine cleans it before writing it (`filepath.Clean`): `.` and
/// empty components dropped, `..` taking one back. `None` when it leaves the tarball.
fn clean(name: &str) -> Option<String> {
    if name.starts_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = Vec::new();
    for c in name.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    Some(parts.join("/"))
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

    /// One raw tar entry: name, type, bytes, link target (empty for none).
    type Raw<'a> = (&'a str, EntryType, &'a [u8], &'a str);

    /// A tar with raw names (so `..` can be written) of files and links.
    fn raw_tarball(dir: &Path, entries: &[Raw]) -> std::path::PathBuf {
        let p = dir.join("raw.tar");
        let mut b = tar::Builder::new(std::fs::File::create(&p).unwrap());
        for (name, kind, bytes, target) in entries {
            let mut h = tar::Header::new_gnu();
            h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
            h.set_entry_type(*kind);
            h.set_size(bytes.len() as u64);
            h.set_mode(0o644);
            if !target.is_empty() {
                h.set_link_name(target).unwrap();
            }
            h.set_cksum();
            b.append(&h, *bytes).unwrap();
        }
        b.finish().unwrap();
        p
    }

    #[test]
    fn names_that_could_mean_another_file_to_the_engine_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let good = br#"{"architecture":"amd64"}"#.as_slice();
        let evil = br#"{"architecture":"evil"}"#.as_slice();
        let m =
            |c: &str| format!(r#"[{{"Config":"{c}","RepoTags":null,"Layers":["l/layer.tar"]}}]"#);
        let (mg, me) = (m("good.json"), m("evil.json"));
        let (f, sym, hard, dirk) = (
            EntryType::Regular,
            EntryType::Symlink,
            EntryType::Link,
            EntryType::Directory,
        );
        let cases: Vec<(&str, Vec<Raw>)> = vec![
            (
                "appears twice",
                vec![
                    ("good.json", f, good, ""),
                    ("evil.json", f, evil, ""),
                    ("manifest.json", f, mg.as_bytes(), ""),
                    ("x/../manifest.json", f, me.as_bytes(), ""),
                ],
            ),
            (
                "appears twice",
                vec![
                    ("good.json", f, good, ""),
                    ("manifest.json", f, mg.as_bytes(), ""),
                    ("./good.json", f, evil, ""),
                ],
            ),
            (
                "manifest.json is a link",
                vec![
                    ("good.json", f, good, ""),
                    ("evil.json", f, evil, ""),
                    ("m.json", f, mg.as_bytes(), ""),
                    ("manifest.json", sym, b"", "m.json"),
                ],
            ),
            (
                "is a link",
                vec![
                    ("evil.json", f, evil, ""),
                    ("manifest.json", f, mg.as_bytes(), ""),
                    ("good.json", hard, b"", "evil.json"),
                ],
            ),
            (
                "which is a link",
                vec![
                    ("d", sym, b"", "."),
                    ("good.json", f, good, ""),
                    ("d/manifest.json", f, me.as_bytes(), ""),
                    ("manifest.json", f, mg.as_bytes(), ""),
                ],
            ),
            (
                "leaves the tarball",
                vec![
                    ("good.json", f, good, ""),
                    ("manifest.json", f, mg.as_bytes(), ""),
                    ("../outside", f, b"x", ""),
                ],
            ),
        ];
        for (needle, entries) in cases {
            let p = raw_tarball(dir.path(), &entries);
            let err = saved_images(&p).unwrap_err();
            assert!(err.contains(needle), "`{needle}` not in `{err}`");
        }
        // A repeated layer saved as a link, in a folder of its own, is how `docker save` writes
        // it; tags and every image are reported.
        let two = br#"[{"Config":"good.json","RepoTags":["a/b:1"],"Layers":["l/layer.tar"]},{"Config":"evil.json","Layers":[]}]"#;
        let p = raw_tarball(
            dir.path(),
            &[
                ("l", dirk, b"", ""),
                ("l/layer.tar", f, b"layer", ""),
                ("k", dirk, b"", ""),
                ("k/layer.tar", sym, b"", "../l/layer.tar"),
                ("good.json", f, good, ""),
                ("evil.json", f, evil, ""),
                ("manifest.json", f, two.as_slice(), ""),
            ],
        );
        let images = saved_images(&p).unwrap();
        let id = |b: &[u8]| format!("sha256:{}", hex::encode(Sha256::digest(b)));
        assert_eq!(
            images,
            vec![
                SavedImage {
                    id: id(good),
                    tags: vec!["a/b:1".into()]
                },
                SavedImage {
                    id: id(evil),
                    tags: vec![]
                }
            ]
        );
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
