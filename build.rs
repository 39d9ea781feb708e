//! Embeds the fixture cubes and datasets so `cohort demo` works from any directory: writes
//! `$OUT_DIR/fixtures.rs` with one `(relative path, bytes)` entry per file under `fixtures/`.
//! Also names the code that parses records (`COHORT_PARSE_FINGERPRINT`): records parsed by
//! another build are never carried into a verification (see `trust::carry`); and the code that
//! checks them (`COHORT_RULES_FINGERPRINT`): verdicts another build reached are never kept
//! (see `registry::carry`).

use std::path::Path;

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("fixtures dir")
        .flatten()
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if name == "workspace"
            && p.parent()
                .and_then(|d| d.parent())
                .is_some_and(|d| d.ends_with("cubes"))
        {
            // Cube workspaces: only the committed parameters file.
            let params = p.join("parameters.yaml");
            if params.exists() {
                out.push(params.strip_prefix(root).unwrap().display().to_string());
            }
            continue;
        }
        if name == "busybox" || name.starts_with('.') {
            continue;
        }
        if p.is_dir() {
            walk(root, &p, out);
        } else if p.is_file() {
            out.push(p.strip_prefix(root).unwrap().display().to_string());
        }
    }
}

/// Every file under `dir`, sorted.
fn files_under(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).expect("source dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// A digest of the sources under `dirs`, the locked dependency versions (serde, toml,
/// minisign) and the crate's version.
fn fingerprint(manifest: &Path, dirs: &[&str]) -> String {
    use std::hash::{Hash, Hasher};
    let mut files = Vec::new();
    for d in dirs {
        files_under(&manifest.join(d), &mut files);
    }
    files.push(manifest.join("Cargo.lock"));
    files.sort();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    env!("CARGO_PKG_VERSION").hash(&mut h);
    for f in &files {
        f.strip_prefix(manifest).unwrap_or(f).hash(&mut h);
        std::fs::read(f).unwrap_or_default().hash(&mut h);
    }
    let first = h.finish();
    first.hash(&mut h);
    format!("{first:016x}{:016x}", h.finish())
}

fn main() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    println!("cargo:rerun-if-changed=src/model");
    println!("cargo:rerun-if-changed=src/trust");
    println!("cargo:rerun-if-changed=Cargo.lock");
    // The record parser: the model.
    println!(
        "cargo:rustc-env=COHORT_PARSE_FINGERPRINT={}",
        fingerprint(manifest, &["src/model"])
    );
    // The trust rules: the model and the checks.
    println!(
        "cargo:rustc-env=COHORT_RULES_FINGERPRINT={}",
        fingerprint(manifest, &["src/model", "src/trust"])
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    println!("cargo:rerun-if-changed=fixtures");
    let mut files = Vec::new();
    for sub in ["cubes", "data"] {
        walk(&root, &root.join(sub), &mut files);
    }
    let mut code = String::from(
        "/// Fixture files: (path relative to fixtures/, bytes).\npub const FIXTURES: &[(&str, &[u8])] = &[\n",
    );
    for f in &files {
        code.push_str(&format!(
            "    ({f:?}, include_bytes!({:?})),\n",
            root.join(f).display().to_string()
        ));
    }
    code.push_str("];\n");
    let out = Path::new(&std::env::var("OUT_DIR").unwrap()).join("fixtures.rs");
    std::fs::write(out, code).unwrap();
}
