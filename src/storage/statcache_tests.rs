//! The stat cache re-hashes exactly what may have changed, and its content hash is always
//! the full hash's.

use std::fs;
use std::path::Path;

use super::{CacheUse, Stat, fs_now, hash_tree_cached, reusable};
use crate::progress::Silent;
use crate::storage::hash_tree;

fn tree(files: &[(&str, &[u8])]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (p, data) in files {
        let p = dir.path().join("data").join(p);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, data).unwrap();
    }
    dir
}

/// Waits until the filesystem's clock has moved past every stamp under `dir`, so a run that
/// starts now records the files as settled (a wait for a condition, not a timing).
fn settle(dir: &Path) {
    let newest = walk(dir)
        .iter()
        .map(|p| {
            let s = Stat::of(&fs::symlink_metadata(p).unwrap());
            s.mtime.max(s.ctime)
        })
        .max()
        .unwrap_or(0);
    while fs_now(dir).unwrap() <= newest {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// One cached check of `dir`'s data, asserting it equals the full hash.
fn check(dir: &Path, full: bool) -> CacheUse {
    let data = dir.join("data");
    let (h, used) = hash_tree_cached(&data, &dir.join("statcache"), full, &Silent).unwrap();
    assert_eq!(h, hash_tree(&data, None, &Silent).unwrap());
    used
}

fn used(hashed: u64, reused: u64) -> CacheUse {
    CacheUse { hashed, reused }
}

#[test]
fn an_unchanged_tree_is_not_read_again() {
    let d = tree(&[("a", b"1"), ("b/c", b"22"), ("b/d", b"333")]);
    settle(d.path());
    assert_eq!(check(d.path(), false), used(3, 0));
    assert_eq!(check(d.path(), false), used(0, 3));
    // --full-check reads everything whatever the cache says.
    assert_eq!(check(d.path(), true), used(3, 0));
}

#[test]
fn changed_added_and_deleted_files_are_found() {
    let d = tree(&[("a", b"1"), ("b", b"2"), ("c", b"3")]);
    settle(d.path());
    check(d.path(), false);
    let data = d.path().join("data");
    fs::write(data.join("a"), b"changed").unwrap();
    fs::remove_file(data.join("b")).unwrap();
    fs::write(data.join("new"), b"4").unwrap();
    assert_eq!(check(d.path(), false), used(2, 1));
}

#[test]
fn a_same_size_rewrite_with_its_old_mtime_is_found() {
    let d = tree(&[("a", b"one"), ("b", b"two")]);
    settle(d.path());
    check(d.path(), false);
    let a = d.path().join("data/a");
    let mtime = fs::metadata(&a).unwrap().modified().unwrap();
    fs::write(&a, b"ONE").unwrap();
    // A rewrite within the timestamps' granularity keeps the mtime: forge exactly that.
    fs::File::options()
        .write(true)
        .open(&a)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    assert_eq!(check(d.path(), false), used(1, 1));
}

#[test]
fn a_file_replaced_by_another_inode_is_read_again() {
    let d = tree(&[("a", b"one"), ("b", b"two")]);
    settle(d.path());
    check(d.path(), false);
    let data = d.path().join("data");
    let mtime = fs::metadata(data.join("a")).unwrap().modified().unwrap();
    fs::write(data.join("a.tmp"), b"ONE").unwrap();
    fs::File::options()
        .write(true)
        .open(data.join("a.tmp"))
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    fs::rename(data.join("a.tmp"), data.join("a")).unwrap();
    assert_eq!(check(d.path(), false), used(1, 1));
}

#[test]
fn a_file_stamped_after_the_run_began_is_never_trusted() {
    let d = tree(&[("a", b"one"), ("b", b"two")]);
    settle(d.path());
    // An mtime ahead of the clock (a skewed writer, or a write in the run's own tick).
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(3600);
    fs::File::options()
        .write(true)
        .open(d.path().join("data/a"))
        .unwrap()
        .set_modified(later)
        .unwrap();
    check(d.path(), false);
    assert_eq!(check(d.path(), false), used(1, 1));
    assert_eq!(check(d.path(), false), used(1, 1));
}

#[test]
fn racily_clean_entries_are_hashed_again() {
    let s = Stat {
        dev: 1,
        ino: 2,
        size: 3,
        mtime: 100,
        ctime: 100,
    };
    assert!(reusable(&s, 101, &s));
    // Stamped in the tick the recording run started in: a later write in that tick would
    // leave every field as it was.
    assert!(!reusable(&s, 100, &s));
    assert!(!reusable(
        &Stat { ctime: 101, ..s },
        101,
        &Stat { ctime: 101, ..s }
    ));
    for other in [
        Stat { dev: 9, ..s },
        Stat { ino: 9, ..s },
        Stat { size: 9, ..s },
        Stat { mtime: 99, ..s },
        Stat { ctime: 99, ..s },
    ] {
        assert!(!reusable(&s, 101, &other), "{other:?}");
    }
}

#[test]
fn a_damaged_cache_is_ignored() {
    let d = tree(&[("a", b"1"), ("b", b"2")]);
    settle(d.path());
    check(d.path(), false);
    let cache = d.path().join("statcache");
    let mut bytes = fs::read(&cache).unwrap();
    let last = bytes.len() - 3;
    bytes[last] ^= 1;
    fs::write(&cache, &bytes).unwrap();
    assert_eq!(check(d.path(), false), used(2, 0));
    fs::write(&cache, b"garbage").unwrap();
    assert_eq!(check(d.path(), false), used(2, 0));
}

#[test]
fn an_unchanged_check_leaves_the_cache_and_a_deleted_file_leaves_it() {
    let d = tree(&[("a", b"1"), ("b/c", b"2"), ("b/d", b"3")]);
    settle(d.path());
    check(d.path(), false);
    let cache = d.path().join("statcache");
    let written = fs::read(&cache).unwrap();
    assert_eq!(check(d.path(), false), used(0, 3));
    assert_eq!(
        fs::read(&cache).unwrap(),
        written,
        "nothing changed, nothing written"
    );
    // A deleted file: the others still come from the cache, which stops naming it.
    fs::remove_file(d.path().join("data/b/c")).unwrap();
    assert_eq!(check(d.path(), false), used(0, 2));
    let now = fs::read(&cache).unwrap();
    assert_ne!(now, written);
    assert!(!now.windows(3).any(|w| w == b"b/c"));
    assert_eq!(check(d.path(), false), used(0, 2));
}

#[test]
fn a_cache_of_the_first_format_is_hashed_over_once() {
    let d = tree(&[("a", b"1"), ("b", b"2")]);
    settle(d.path());
    let cache = d.path().join("statcache");
    // What the first format said of these files, whole and well-formed: not read.
    let mut body = Vec::new();
    for p in ["a", "b"] {
        let s = Stat::of(&fs::symlink_metadata(d.path().join("data").join(p)).unwrap());
        let sha = crate::model::Sha256::of(b"not the content");
        body.extend_from_slice(
            format!(
                "{} {} {} {} {} {sha} {p}\0",
                s.dev, s.ino, s.size, s.mtime, s.ctime
            )
            .as_bytes(),
        );
    }
    let mut old = format!(
        "cohort stat cache 1 {} {}\n",
        fs_now(d.path()).unwrap() + 1_000_000_000,
        crate::model::Sha256::of(&body)
    )
    .into_bytes();
    old.extend_from_slice(&body);
    fs::write(&cache, &old).unwrap();
    assert_eq!(check(d.path(), false), used(2, 0));
    assert_eq!(check(d.path(), false), used(0, 2));
}
