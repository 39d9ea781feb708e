//! Resource bombs (issue 14): archives that expand far beyond their size, archives that break
//! the counts their record states, a server that dribbles a byte at a time, and one that
//! streams for ever without a length. Each must stop early with an error naming its subject.

use std::io::{Read, Write};
use std::time::Instant;

use super::*;

/// A tar holding one file of `size` zero bytes (or several), gzipped.
fn zeros_tgz(files: &[(&str, usize)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, size) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(*size as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, std::io::repeat(0).take(*size as u64))
            .unwrap();
    }
    let tar = b.into_inner().unwrap();
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(&tar).unwrap();
    enc.finish().unwrap()
}

#[test]
fn a_gzip_bomb_is_refused_by_the_default_ratio_before_it_expands() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("bomb.tgz");
    // 12 MiB of zeros in ~12 KB: 1000:1, far over the 100:1 default for unrecorded assets.
    fs::write(&archive, zeros_tgz(&[("zeros", 12 << 20)])).unwrap();
    let dest = dir.path().join("out");
    let e = extract_tarball(&archive, &dest, &ExtractLimits::default()).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("bomb.tgz"), "{msg}");
    assert!(msg.contains("--max-unpacked-size"), "{msg}");
    assert!(!dest.exists(), "nothing extracted");
    // The user may raise the limit for an asset whose record states nothing.
    let limits = ExtractLimits::for_asset(None, None, Some(16 << 20));
    let got = extract_tarball(&archive, &dest, &limits).unwrap();
    assert_eq!((got.bytes, got.files.len()), (12 << 20, 1));
}

#[test]
fn recorded_sizes_bound_extraction_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("asset.tgz");
    fs::write(&archive, zeros_tgz(&[("a", 1000), ("b", 1000)])).unwrap();
    let dest = dir.path().join("out");
    let exact = ExtractLimits::for_asset(Some(2000), Some(2), None);
    let got = extract_tarball(&archive, &dest, &exact).unwrap();
    assert_eq!((got.bytes, got.files.len()), (2000, 2));
    let e = extract_tarball(
        &archive,
        &dest,
        &ExtractLimits::for_asset(Some(1999), Some(2), None),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("more than 1999 bytes") && e.contains("asset.tgz"),
        "{e}"
    );
    let e = extract_tarball(
        &archive,
        &dest,
        &ExtractLimits::for_asset(Some(2000), Some(1), None),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("more than the 1 files its record states"), "{e}");
}

/// Entries tar reads into memory (a pax header) or skips (a folder claiming a size) are
/// bounded by the cap on the decompressed stream, not only file contents.
#[test]
fn huge_metadata_entries_are_cut_off() {
    let mut tar = Vec::new();
    let mut h = tar::Header::new_ustar();
    h.set_path("PaxHeaders/x").unwrap();
    h.set_entry_type(tar::EntryType::XHeader);
    h.set_size(8 << 20);
    h.set_cksum();
    tar.extend_from_slice(h.as_bytes());
    tar.extend(std::iter::repeat_n(b'a', 8 << 20));
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(&tar).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("pax.tgz");
    fs::write(&archive, enc.finish().unwrap()).unwrap();
    let t = Instant::now();
    let limits = ExtractLimits {
        max_entries: 10,
        ..ExtractLimits::for_asset(Some(1 << 20), None, None)
    };
    let e = extract_tarball(&archive, &dir.path().join("out"), &limits)
        .unwrap_err()
        .to_string();
    assert!(e.contains("unpacks to more than 1048576 bytes"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
}

#[test]
fn a_dribbling_server_is_dropped_at_the_minimum_rate() {
    let srv = Server::start();
    srv.serve(
        "/slow",
        Served {
            dribble: Some(Duration::from_millis(100)),
            ..Served::file(&body(10_000))
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("slow");
    let slow = NetConfig {
        min_rate: 1000,
        rate_grace: Duration::from_millis(500),
        ..net()
    };
    let t = Instant::now();
    let e = get(&srv.url("/slow"), None, &dest, &slow).unwrap_err();
    assert!(
        matches!(e, StorageError::TooSlow { .. }) && e.is_environment(),
        "{e}"
    );
    let msg = e.to_string();
    assert!(
        msg.contains("/slow") && msg.contains("minimum rate of 1000 bytes/s"),
        "{msg}"
    );
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert!(!dest.exists());
}

#[test]
fn an_endless_stream_stops_at_the_recorded_size() {
    let srv = Server::start();
    srv.serve(
        "/endless",
        Served {
            endless: true,
            ..Served::default()
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("asset");
    // A 112-byte asset once streamed 2.1 GB: its record's size bounds the download.
    let t = Instant::now();
    let e = get(
        &srv.url("/endless"),
        None,
        &dest,
        &net().bounded_to(Some(112)),
    )
    .unwrap_err();
    let msg = e.to_string();
    assert!(
        matches!(e, StorageError::TooLarge { limit: 112, .. }) && msg.contains("/endless"),
        "{msg}"
    );
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert_eq!(names(dir.path()), Vec::<String>::new(), "nothing kept");
    // A record that states no size (crafted to leave it out) gets the 1 GiB default, which
    // only the user raises (--max-unpacked-size), never past a size a record states.
    assert_eq!(
        net().for_asset(None, None).max_bytes,
        DEFAULT_MAX_UNRECORDED
    );
    assert_eq!(net().for_asset(Some(112), Some(1 << 40)).max_bytes, 112);
    let e = get(
        &srv.url("/endless"),
        None,
        &dest,
        &net().for_asset(None, Some(8 << 20)),
    )
    .unwrap_err();
    let msg = e.to_string();
    assert!(
        matches!(e, StorageError::TooLarge { limit, .. } if limit == 8 << 20)
            && msg.contains("--max-unpacked-size"),
        "{msg}"
    );
    assert_eq!(names(dir.path()), Vec::<String>::new(), "nothing kept");
}
