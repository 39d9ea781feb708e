//! Safe extraction: good archives in both encodings, hostile ones refused with nothing left.

use super::*;

/// A tar entry written header-by-hand, so hostile names and types can be expressed.
struct Raw<'a> {
    name: &'a [u8],
    kind: tar::EntryType,
    data: &'a [u8],
    link: Option<&'a [u8]>,
}

fn raw(name: &[u8], kind: tar::EntryType) -> Raw<'_> {
    Raw {
        name,
        kind,
        data: b"",
        link: None,
    }
}

fn file<'a>(name: &'a [u8], data: &'a [u8]) -> Raw<'a> {
    Raw {
        data,
        ..raw(name, tar::EntryType::Regular)
    }
}

fn tarball(entries: &[Raw<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        let mut h = tar::Header::new_gnu();
        h.as_gnu_mut().unwrap().name[..e.name.len()].copy_from_slice(e.name);
        h.set_size(e.data.len() as u64);
        h.set_mode(0o4755); // setuid + exec in the archive: must not survive
        h.set_entry_type(e.kind);
        if let Some(l) = e.link {
            h.set_link_name_literal(l).unwrap();
        }
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(e.data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

#[test]
fn plain_and_gzipped_archives_extract_whatever_their_names_say() {
    let tar = tarball(&[
        raw(b"./", tar::EntryType::Directory),
        raw(b"data/", tar::EntryType::Directory),
        file(b"data/a.csv", b"x,y\n1,2\n"),
        file(b"paths.yaml", b"data_path: data\n"),
        file(b"deep/er/f", b"implicit parents"),
    ]);
    let dir = tempfile::tempdir().unwrap();
    // A gzip file named .tar and a plain tar named .tgz: content decides.
    for (name, bytes) in [("a.tar", gzip(&tar)), ("b.tgz", tar.clone())] {
        let archive = dir.path().join(name);
        fs::write(&archive, bytes).unwrap();
        let dest = dir.path().join(format!("out-{name}"));
        let files = extract_tarball(&archive, &dest, &ExtractLimits::default())
            .unwrap()
            .files;
        assert_eq!(
            files,
            [
                PathBuf::from("data/a.csv"),
                "paths.yaml".into(),
                "deep/er/f".into()
            ]
        );
        assert_eq!(fs::read(dest.join("data/a.csv")).unwrap(), b"x,y\n1,2\n");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
            assert_eq!(mode(&dest.join("paths.yaml")) & !0o022, 0o644 & !0o022);
            assert_eq!(mode(&dest.join("deep/er")) & !0o022, 0o755 & !0o022);
            assert_eq!(mode(&dest), 0o755);
        }
    }
}

#[test]
fn hostile_archives_are_refused_and_leave_nothing() {
    use tar::EntryType as T;
    let ok = || file(b"fine.txt", b"fine");
    let cases: Vec<(&str, Vec<Raw<'_>>, &str)> = vec![
        (
            "dotdot",
            vec![ok(), file(b"../evil", b"x")],
            "`../evil` contains `..`",
        ),
        (
            "nested-dotdot",
            vec![file(b"a/../../evil", b"x")],
            "contains `..`",
        ),
        (
            "absolute",
            vec![file(b"/tmp/evil", b"x")],
            "`/tmp/evil` is an absolute path",
        ),
        (
            "symlink",
            vec![
                ok(),
                Raw {
                    link: Some(b"/etc/passwd"),
                    ..raw(b"link", T::Symlink)
                },
            ],
            "`link` is a symbolic link (to `/etc/passwd`)",
        ),
        (
            "hardlink",
            vec![
                ok(),
                Raw {
                    link: Some(b"../../x"),
                    ..raw(b"hard", T::Link)
                },
            ],
            "`hard` is a hard link",
        ),
        (
            "chardev",
            vec![raw(b"null", T::Char)],
            "`null` is a device file",
        ),
        ("blockdev", vec![raw(b"sda", T::Block)], "is a device file"),
        ("fifo", vec![raw(b"pipe", T::Fifo)], "`pipe` is a fifo"),
        ("non-utf8", vec![file(b"bad\xff", b"x")], "not UTF-8"),
        (
            "through-a-file",
            vec![ok(), file(b"fine.txt/x", b"x")],
            "which is a file",
        ),
        ("duplicate", vec![ok(), ok()], "appears twice"),
        (
            // A GNU long-name record carries the real (hostile) name of the next entry.
            "gnu-longname",
            vec![
                Raw {
                    data: b"../../escaped-through-a-long-name\0",
                    ..raw(b"././@LongLink", T::GNULongName)
                },
                file(b"innocent", b"x"),
            ],
            "`../../escaped-through-a-long-name` contains `..`",
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (name, entries, why) in cases {
        let archive = dir.path().join(format!("{name}.tar.gz"));
        fs::write(&archive, gzip(&tarball(&entries))).unwrap();
        let dest = dir.path().join("out").join(name);
        let e = extract_tarball(&archive, &dest, &ExtractLimits::default()).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains(why), "{name}: {msg}");
        assert!(
            msg.contains(&format!("{name}.tar.gz")),
            "{name}: names the archive: {msg}"
        );
        assert!(!dest.exists(), "{name}: nothing extracted");
    }
    assert!(names(&dir.path().join("out")).is_empty(), "no staging left");
    assert!(!dir.path().join("evil").exists() && !Path::new("/tmp/evil").exists());
}

#[test]
fn archive_limits_and_an_existing_destination_survives_a_refusal() {
    let many: Vec<Vec<u8>> = (0..11).map(|i| format!("f{i}").into_bytes()).collect();
    let entries: Vec<Raw<'_>> = many.iter().map(|n| file(n, b"1")).collect();
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("many.tar");
    fs::write(&archive, tarball(&entries)).unwrap();
    let dest = dir.path().join("ws");
    fs::create_dir(&dest).unwrap();
    fs::write(dest.join("keep"), b"previous extraction").unwrap();
    let limits = ExtractLimits {
        max_entries: 10,
        ..ExtractLimits::default()
    };
    let e = extract_tarball(&archive, &dest, &limits).unwrap_err();
    assert!(e.to_string().contains("more than 10 entries"), "{e}");
    assert_eq!(fs::read(dest.join("keep")).unwrap(), b"previous extraction");

    let big = vec![7u8; 4096];
    fs::write(&archive, tarball(&[file(b"a", &big), file(b"b", &big)])).unwrap();
    let limits = ExtractLimits {
        max_total_bytes: 5000,
        ..ExtractLimits::default()
    };
    let e = extract_tarball(&archive, &dest, &limits).unwrap_err();
    assert!(
        e.to_string().contains("more than 5000 bytes (at `b`)"),
        "{e}"
    );
    assert_eq!(names(&dest), ["keep"]);

    fs::write(
        &archive,
        b"this is not a tarball at all, just some text. ".repeat(20),
    )
    .unwrap();
    let e = extract_tarball(&archive, &dest, &ExtractLimits::default()).unwrap_err();
    assert!(e.to_string().contains("many.tar"), "{e}");
    assert_eq!(names(dir.path()), ["many.tar", "ws"]);
}

#[test]
fn long_names_written_by_a_real_tar_builder_extract() {
    let long = format!("{}/file.txt", "nested-folder-name".repeat(8));
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(5);
    h.set_mode(0o644);
    b.append_data(&mut h, &long, &b"hello"[..]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("long.tar.gz");
    fs::write(&archive, gzip(&b.into_inner().unwrap())).unwrap();
    let out = dir.path().join("out");
    let files = extract_tarball(&archive, &out, &ExtractLimits::default())
        .unwrap()
        .files;
    assert_eq!(files, [PathBuf::from(&long)]);
    assert_eq!(fs::read(out.join(&long)).unwrap(), b"hello");
}
