//! The carry's folder: segments written once, a head naming them, compaction, and what a
//! damaged or foreign carry reads as (nothing, or less: never other files).

use super::*;
use crate::model::{CubeFile, build, classify};
use crate::trust::FileInfo;
use crate::trust::carry::blob_id;

/// An index of `n` cube files (no records), numbered from `from`.
fn index(from: usize, n: usize) -> Index {
    let mut ix = Index::default();
    for i in from..from + n {
        let path = build::mlcube_file(&format!("cube{i:04}"), 1, CubeFile::MlcubeYaml);
        let bytes = format!("file {i}\n").into_bytes();
        ix.files.insert(
            path.clone(),
            FileInfo {
                rp: classify(&path).unwrap(),
                sha256: Sha256::of(&bytes),
                intro: 0,
                bytes: bytes.into(),
                json: Bytes::new(),
                path,
            },
        );
    }
    ix
}

fn blob_of(ix: &Index) -> impl Fn(&str) -> Option<[u8; 20]> + '_ {
    |p| ix.files.get(p).map(|f| blob_id(&f.bytes))
}

fn paths(c: &Carried) -> Vec<String> {
    c.files
        .iter()
        .map(|f| String::from_utf8(f.path.to_vec()).unwrap())
        .collect()
}

#[test]
fn segments_follow_what_changed_and_compact_past_the_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("x.carry");
    assert!(load(&dir).is_empty(), "no carry yet");
    let mut ix = index(0, 10);
    save(&dir, "c0", &ix, true, &blob_of(&ix)).unwrap();
    let c = load(&dir);
    assert_eq!(paths(&c), ix.files.keys().cloned().collect::<Vec<_>>());
    let f = &c.files[3];
    let info = &ix.files[std::str::from_utf8(&f.path).unwrap()];
    assert_eq!((&f.bytes, f.blob), (&info.bytes, blob_id(&info.bytes)));
    assert_eq!(segments(&dir).unwrap().len(), 1);

    // Nothing read from git: nothing written.
    ix.fresh = Some(Vec::new());
    ix.carried = 10;
    save(&dir, "c0", &ix, true, &blob_of(&ix)).unwrap();
    assert_eq!(segments(&dir).unwrap().len(), 1);
    // Nor for another main with the same files: the head names it.
    save(&dir, "c0b", &ix, true, &blob_of(&ix)).unwrap();
    assert_eq!(segments(&dir).unwrap().len(), 1);
    assert!(load_main(&dir, "c0").is_none());
    assert_eq!(load_main(&dir, "c0b").unwrap().len(), 10);

    // Each main that adds files adds one segment with those files only.
    for round in 1..MAX_SEGMENTS {
        let more = index(10 * round, 10);
        let mut next = index(0, 10 * (round + 1));
        next.fresh = Some(more.files.keys().cloned().collect());
        next.carried = 10 * round;
        let before = std::fs::read_dir(&dir).unwrap().count();
        save(&dir, &format!("c{round}"), &next, true, &blob_of(&next)).unwrap();
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), before + 1);
        assert_eq!(segments(&dir).unwrap().len(), round + 1);
        assert_eq!(load(&dir).len(), next.files.len());
        assert_eq!(
            load_main(&dir, &format!("c{round}")).unwrap().len(),
            10 * (round + 1)
        );
    }
    // Past the limit: one segment with every file, the others removed.
    let mut last = index(0, 10 * (MAX_SEGMENTS + 1));
    last.fresh = Some(index(10 * MAX_SEGMENTS, 10).files.keys().cloned().collect());
    last.carried = 10 * MAX_SEGMENTS;
    save(&dir, "last", &last, true, &blob_of(&last)).unwrap();
    assert_eq!(segments(&dir).unwrap().len(), 1);
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        2,
        "head and one segment"
    );
    assert_eq!(
        paths(&load(&dir)),
        last.files.keys().cloned().collect::<Vec<_>>()
    );
}

#[test]
fn a_damaged_or_foreign_carry_reads_as_less() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("x.carry");
    let ix = index(0, 20);
    save(&dir, "c0", &ix, true, &blob_of(&ix)).unwrap();
    let mut more = index(0, 30);
    more.fresh = Some(index(20, 10).files.keys().cloned().collect());
    more.carried = 20;
    save(&dir, "c1", &more, true, &blob_of(&more)).unwrap();
    assert_eq!(load(&dir).len(), 30);
    assert_eq!(load_main(&dir, "c1").unwrap().len(), 30);
    let names = segments(&dir).unwrap();

    // One byte of a segment changed: the whole main is no longer taken on trust (the files
    // are then taken one by one against the tree).
    let first = dir.join(&names[0]);
    let good = std::fs::read(&first).unwrap();
    let mut bad = good.clone();
    let at = bad.len() / 2;
    bad[at] ^= 1;
    std::fs::write(&first, &bad).unwrap();
    assert!(load_main(&dir, "c1").is_none());
    std::fs::write(&first, &good).unwrap();
    assert!(load_main(&dir, "c1").is_some());

    // The second segment cut short: the first still reads.
    let second = dir.join(&names[1]);
    let bytes = std::fs::read(&second).unwrap();
    std::fs::write(&second, &bytes[..bytes.len() - 3]).unwrap();
    assert_eq!(load(&dir).len(), 20);
    assert!(load_main(&dir, "c1").is_none());
    // Gone: the same.
    std::fs::remove_file(&second).unwrap();
    assert_eq!(load(&dir).len(), 20);
    assert!(load_main(&dir, "c1").is_none());

    // A head whose list was edited, or written by another parser: nothing.
    let head = dir.join(HEAD);
    let text = std::fs::read_to_string(&head).unwrap();
    std::fs::write(&head, format!("{text}{}\n", names[1])).unwrap();
    assert!(load(&dir).is_empty());
    let other = text.replacen(PARSE_FINGERPRINT, &"0".repeat(PARSE_FINGERPRINT.len()), 1);
    assert_ne!(other, text);
    std::fs::write(&head, other).unwrap();
    assert!(load(&dir).is_empty());
    // A segment named outside the folder is never read.
    let rest = "c1 30 0 -\n../../etc/passwd\n";
    let forged = format!(
        "{MAGIC} {PARSE_FINGERPRINT} {}\n{rest}",
        Sha256::of(rest.as_bytes())
    );
    std::fs::write(&head, forged).unwrap();
    assert!(segments(&dir).is_none());
    assert!(load(&dir).is_empty());
}

#[test]
fn a_carry_that_was_not_exactly_the_main_grown_from_is_written_again_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("x.carry");
    let ix = index(0, 20);
    save(&dir, "c0", &ix, true, &blob_of(&ix)).unwrap();
    // Five of its files were not taken (stale or damaged): they are among those read.
    let mut next = index(0, 30);
    next.fresh = Some(index(15, 15).files.keys().cloned().collect());
    next.carried = 15;
    save(&dir, "c1", &next, true, &blob_of(&next)).unwrap();
    assert_eq!(segments(&dir).unwrap().len(), 1, "written again as one");
    assert_eq!(load_main(&dir, "c1").unwrap().len(), 30);
    // A carry of another main (more files than the new one has) is not appended to either.
    let mut other = index(0, 25);
    other.fresh = Some(index(20, 5).files.keys().cloned().collect());
    other.carried = 20;
    save(&dir, "c2", &other, true, &blob_of(&other)).unwrap();
    assert_eq!(segments(&dir).unwrap().len(), 1);
    assert_eq!(paths(&load_main(&dir, "c2").unwrap()), paths(&load(&dir)));
    assert_eq!(load(&dir).len(), 25);
}

/// A main's verdict is kept only as the build that reached it wrote it: a clean main's head
/// names this build's trust rules, any other main's names none, and a head naming other rules
/// gives the files without the verdict.
#[test]
fn the_verdict_on_a_main_counts_only_under_the_same_trust_rules() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("x.carry");
    let ix = index(0, 5);
    save(&dir, "c0", &ix, true, &blob_of(&ix)).unwrap();
    assert!(load_main(&dir, "c0").unwrap().accepted);
    assert!(
        !load(&dir).accepted,
        "files taken one by one carry no verdict"
    );

    // The same main found with warnings: the head is written again, without the verdict.
    let mut same = index(0, 5);
    same.fresh = Some(Vec::new());
    same.carried = 5;
    save(&dir, "c0", &same, false, &blob_of(&same)).unwrap();
    let c = load_main(&dir, "c0").unwrap();
    assert_eq!((c.len(), c.accepted), (5, false));

    // Other trust rules: the files still, not the verdict.
    save(&dir, "c0", &ix, true, &blob_of(&ix)).unwrap();
    let head = dir.join(HEAD);
    let text = std::fs::read_to_string(&head).unwrap();
    let (first, rest) = text.split_once('\n').unwrap();
    assert!(
        rest.starts_with(&format!("c0 5 0 {RULES_FINGERPRINT}\n")),
        "{rest}"
    );
    assert_eq!(
        kept(&dir, "c0"),
        Some(Kept {
            files: 5,
            records: 0,
            accepted: true,
            room: true
        })
    );
    assert_eq!(kept(&dir, "c1"), None);
    let rest = rest.replacen(RULES_FINGERPRINT, &"0".repeat(RULES_FINGERPRINT.len()), 1);
    let first = first.rsplit_once(' ').unwrap().0;
    let forged = format!("{first} {}\n{rest}", Sha256::of(rest.as_bytes()));
    std::fs::write(&head, forged).unwrap();
    let c = load_main(&dir, "c0").unwrap();
    assert_eq!((c.len(), c.accepted), (5, false));
}
