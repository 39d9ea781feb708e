//! Embeds the fixture cubes and datasets so `cohort demo` works from any directory: writes
//! `$OUT_DIR/fixtures.rs` with one `(relative path, bytes)` entry per file under `fixtures/`.

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

fn main() {
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
