//! Malformed bundles: every way a bundle file can be wrong is refused in one line naming it.

use super::*;
use crate::storage::Home;

fn ctx(home: &Home) -> Ctx<'_> {
    Ctx::offline_for_tests(home)
}

fn tar_of(path: &Path, entries: &[(&str, &[u8])]) {
    let mut b = tar::Builder::new(std::fs::File::create(path).unwrap());
    for (name, bytes) in entries {
        let mut h = tar::Header::new_gnu();
        let raw = &mut h.as_gnu_mut().unwrap().name;
        raw[..name.len()].copy_from_slice(name.as_bytes());
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append(&h, *bytes).unwrap();
    }
    b.finish().unwrap();
}

/// Whatever the bytes, unpacking refuses them with a `Malformed` or `HashMismatch` error
/// naming the file, and leaves no scratch files behind.
#[test]
fn malformed_bundles_are_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let home = Home::new(dir.path().join("home"));
    let c = ctx(&home);
    let h = "ab".repeat(32);
    let manifest = format!(
        "format = 1\nkind = \"submissions\"\nregistry_id = \"{h}\"\ncreated = \"x\"\ncohort_version = \"0\"\n[registry]\npath = \"registry.bundle\"\nsha256 = \"{}\"\nbytes = 3\n",
        Sha256::of(b"abc")
    );
    let f = dir.path().join("b.bundle");
    type Entries<'a> = Vec<(&'a str, &'a [u8])>;
    let cases: Vec<(&str, Entries, &str)> = vec![
        (
            "no manifest",
            vec![("registry.bundle", b"abc")],
            "no manifest.toml",
        ),
        (
            "bad manifest",
            vec![("manifest.toml", b"format = [")],
            "manifest.toml",
        ),
        (
            "traversal",
            vec![("manifest.toml", manifest.as_bytes()), ("../evil", b"x")],
            "cannot unpack",
        ),
        (
            "unlisted",
            vec![
                ("manifest.toml", manifest.as_bytes()),
                ("registry.bundle", b"abc"),
                ("extra", b"x"),
            ],
            "extra is not listed",
        ),
        (
            "missing",
            vec![("manifest.toml", manifest.as_bytes())],
            "registry.bundle is missing",
        ),
        (
            "changed",
            vec![
                ("manifest.toml", manifest.as_bytes()),
                ("registry.bundle", b"abd"),
            ],
            "does not hash",
        ),
    ];
    for (what, entries, needle) in cases {
        tar_of(&f, &entries);
        let err = unpack(&c, &f)
            .err()
            .unwrap_or_else(|| panic!("{what} accepted"));
        let text = err.to_string();
        assert!(text.contains(needle), "{what}: {text}");
        assert!(text.contains("b.bundle"), "{what} names the file: {text}");
        assert!(!text.contains('\n'), "{what}: one line: {text}");
    }
    std::fs::write(&f, b"\x00\x01garbage").unwrap();
    assert!(unpack(&c, &f).is_err());
    assert!(unpack(&c, &dir.path().join("absent")).is_err());
    let left = std::fs::read_dir(home.tmp_dir()).unwrap().count();
    assert_eq!(left, 0, "scratch space is cleaned up");
    // A well-formed submissions bundle unpacks (its git bundle is checked later).
    tar_of(
        &f,
        &[
            ("manifest.toml", manifest.as_bytes()),
            ("registry.bundle", b"abc"),
        ],
    );
    let u = unpack(&c, &f).unwrap();
    assert_eq!(u.manifest.kind, BundleKind::Submissions);
    assert!(
        want_kind(&u, BundleKind::Registry, "x")
            .unwrap_err()
            .to_string()
            .contains("is a submissions bundle")
    );
}
