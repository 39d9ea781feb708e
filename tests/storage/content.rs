//! The dataset content hash, including the shell reference from docs/content-hash.md.

use super::*;

fn write_tree(root: &Path, files: &[(&str, &[u8])]) {
    for (p, data) in files {
        let p = root.join(p);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, data).unwrap();
    }
}

const TREE: &[(&str, &[u8])] = &[
    ("labels/labels.csv", b"id,y\n1,0\n"),
    ("data/case 01.csv", b"a,b\n"),
    ("data/sub/été.bin", b"\x00\x01\x02"),
    ("a.b", b"dot"),
    ("a/b", b"slash"),
    (".hidden", b""),
    ("new\nline", b"newline in the name"),
];

#[test]
fn content_hash_is_order_independent_and_sensitive_to_names_and_bytes() {
    let one = tempfile::tempdir().unwrap();
    let two = tempfile::tempdir().unwrap();
    write_tree(one.path(), TREE);
    let mut reversed = TREE.to_vec();
    reversed.reverse();
    write_tree(two.path(), &reversed);
    let rec = Recorder::default();
    let h1 = hash_tree(one.path(), Some(1), &rec).unwrap();
    let h2 = hash_tree(two.path(), Some(2), &Silent).unwrap();
    assert_eq!(h1, h2, "creation order and thread count do not matter");
    assert_eq!(h1.files, TREE.len() as u64);
    assert_eq!(rec.advanced.load(Ordering::Relaxed), h1.bytes);

    fs::rename(two.path().join("a.b"), two.path().join("a.c")).unwrap();
    let renamed = hash_tree(two.path(), None, &Silent).unwrap();
    assert_ne!(renamed.sha256, h1.sha256, "a rename changes the hash");

    fs::rename(two.path().join("a.c"), two.path().join("a.b")).unwrap();
    fs::write(two.path().join("a/b"), b"slasH").unwrap();
    let edited = hash_tree(two.path(), None, &Silent).unwrap();
    assert_ne!(edited.sha256, h1.sha256, "one byte changes the hash");
    assert_eq!(
        edited.diff(&h1.entries),
        [cohort::storage::FileChange::Modified("a/b".into())]
    );
}

#[test]
fn content_hash_refuses_symlinks() {
    let d = tempfile::tempdir().unwrap();
    write_tree(d.path(), TREE);
    std::os::unix::fs::symlink("../labels/labels.csv", d.path().join("data/link.csv")).unwrap();
    let e = hash_tree(d.path(), None, &Silent).unwrap_err().to_string();
    assert!(
        e.contains("data/link.csv") && e.contains("symbolic link"),
        "{e}"
    );
}

/// The shell pipeline in docs/content-hash.md, extracted verbatim.
fn reference_script() -> String {
    let doc =
        fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/content-hash.md")).unwrap();
    let after = doc
        .split("<!-- content-hash-reference")
        .nth(1)
        .expect("the reference block is marked");
    let block = after.split("```bash\n").nth(1).unwrap();
    block.split("\n```").next().unwrap().to_string()
}

#[test]
fn content_hash_matches_the_documented_shell_reference() {
    let d = tempfile::tempdir().unwrap();
    write_tree(d.path(), TREE);
    write_tree(d.path(), &[("big/blob", &body(3 << 20))]);
    fs::create_dir_all(d.path().join("empty/dir")).unwrap();
    let script = d
        .path()
        .join("..")
        .join(format!("content-hash-{}.sh", std::process::id()));
    fs::write(&script, reference_script()).unwrap();
    let out = std::process::Command::new("bash")
        .arg(&script)
        .arg(d.path())
        .output()
        .unwrap();
    let _ = fs::remove_file(&script);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shell = String::from_utf8(out.stdout).unwrap();
    let ours = hash_tree(d.path(), None, &Silent).unwrap();
    assert_eq!(shell.trim(), ours.sha256.as_str());
}
