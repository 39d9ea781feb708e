//! Files carried from an earlier verification change how fast a verification is, never its
//! verdict: each is taken only where the tree names its path and blob and its record's JSON
//! is whole, and a build with a carry gives the index and report a build without one gives.

use sha2::Digest;

use crate::model::{self, build};
use crate::trust::carry::blob_id;
use crate::trust::{Carried, CarriedFile, Index, Report, VerifyOptions, verify_index};

use super::{Mem, World, cube_by};

/// Every file of `ix`, carried as the registry's carry keeps it.
pub(super) fn carry_of(ix: &Index) -> Vec<CarriedFile> {
    ix.files
        .values()
        .map(|f| {
            let json = ix
                .records
                .get(&f.path)
                .map(|r| r.to_json().unwrap())
                .unwrap_or_default();
            CarriedFile {
                path: f.path.clone().into(),
                blob: blob_id(&f.bytes),
                bytes: f.bytes.clone(),
                sha256: f.sha256.digest(),
                json_sha256: sha2::Sha256::digest(json.as_bytes()).into(),
                json: json.into(),
            }
        })
        .collect()
}

/// The report and index of `w`'s tree, built with `carried` (or reading every file).
pub(super) fn check(w: &World, carried: Vec<CarriedFile>) -> (Report, Index) {
    let tl = w.timeline();
    let built =
        Index::build_carrying(&w.tree, &tl, None, Carried::from_segments(vec![carried])).unwrap();
    verify_index(built, &tl, &VerifyOptions::default())
}

pub(super) fn same(a: &(Report, Index), b: &(Report, Index)) {
    assert_eq!(a.0.problems, b.0.problems);
    assert_eq!(a.0.warnings, b.0.warnings);
    assert_eq!(a.0.files, b.0.files);
    assert_eq!(a.1.records, b.1.records);
    for (p, f) in &a.1.files {
        let g = &b.1.files[p];
        assert_eq!(
            (&f.bytes, &f.sha256, &f.rp),
            (&g.bytes, &g.sha256, &g.rp),
            "{p}"
        );
    }
}

fn world() -> World {
    let mut w = World::new(&["admin", "alice", "mallory"]);
    w.root(1, &["admin"], 1, &["admin"]);
    w.next_commit();
    w.user("alice", "admin");
    w.next_commit();
    cube_by(&mut w, "good", "alice");
    w
}

#[test]
fn carried_files_change_speed_never_verdicts() {
    let mut w = world();
    let first = check(&w, Vec::new());
    assert!(first.0.is_clean(), "{:#?}", first.0.problems);
    assert_eq!(first.1.carried, 0);
    assert!(first.1.fresh.is_none(), "no carry: every file read");
    let carried = carry_of(&first.1);

    // Main grows: a good cube, one signed by a key nobody admitted, and a file main already
    // held changed under the carry (its signature no longer matches).
    w.next_commit();
    cube_by(&mut w, "other", "alice");
    w.unadmitted("mallory");
    let forged = cube_by(&mut w, "forged", "mallory");
    let good = build::mlcube("good", 1);
    let mut changed = w.tree.files[&good].0.clone();
    changed.extend_from_slice(b"# edited\n");
    w.tree.files.get_mut(&good).unwrap().0 = changed;

    let read = check(&w, Vec::new());
    let with = check(&w, carried.clone());
    same(&read, &with);
    assert!(with.0.problems.iter().any(|p| p.path.starts_with(&forged)));
    assert!(
        with.0.problems.iter().any(|p| p.path == good),
        "{:#?}",
        with.0.problems
    );
    // Taken: every file the first tree held but the changed one.
    assert_eq!(with.1.carried, first.1.files.len() - 1);
    let fresh = with.1.fresh.clone().unwrap();
    assert!(fresh.contains(&good));
    assert_eq!(fresh.len(), read.1.files.len() - with.1.carried);
}

#[test]
fn a_carried_file_is_taken_only_as_the_tree_names_it() {
    let w = world();
    let read = check(&w, Vec::new());
    let all = carry_of(&read.1);
    let n = all.len();
    let good = build::mlcube("good", 1);
    let alter = |f: &mut dyn FnMut(&mut CarriedFile)| {
        let mut c = all.clone();
        for file in c.iter_mut().filter(|x| x.path == good.as_bytes()) {
            f(file);
        }
        c
    };

    // Other bytes under the blob id the tree names: not the tree's file.
    let c = alter(&mut |f| {
        let mut b = f.bytes.to_vec();
        b[0] ^= 1;
        f.bytes = b.into();
    });
    let got = check(&w, c);
    same(&read, &got);
    assert_eq!(got.1.carried, n - 1);

    // Its record's JSON changed with its digest left: parsed again from the file.
    let c = alter(&mut |f| {
        let json = String::from_utf8(f.json.to_vec()).unwrap();
        f.json = json.replace("\"good\"", "\"evil\"").into_bytes().into();
    });
    let got = check(&w, c);
    same(&read, &got);
    assert_eq!(got.1.carried, n - 1);

    // No JSON: taken, the record parsed from the carried bytes.
    let c = alter(&mut |f| {
        f.json = bytes::Bytes::new();
        f.json_sha256 = sha2::Sha256::digest(b"").into();
    });
    let got = check(&w, c);
    same(&read, &got);
    assert_eq!(got.1.carried, n);

    // JSON on a file that is no record: not what any writer keeps, so not taken.
    let yaml = build::mlcube_file("good", 1, model::CubeFile::MlcubeYaml);
    let mut c = all.clone();
    for f in c.iter_mut().filter(|x| x.path == yaml.as_bytes()) {
        f.json = bytes::Bytes::from_static(b"{}");
        f.json_sha256 = sha2::Sha256::digest(b"{}").into();
    }
    let got = check(&w, c);
    same(&read, &got);
    assert_eq!(got.1.carried, n - 1);

    // Another path's file: never taken for this one.
    let mut c = all.clone();
    for f in c.iter_mut().filter(|x| x.path == good.as_bytes()) {
        f.path = format!("{good}.bak").into_bytes().into();
    }
    let got = check(&w, c);
    same(&read, &got);
    assert_eq!(got.1.carried, n - 1);

    // A tree that gives no blob ids takes nothing.
    let plain = Mem {
        files: w.tree.files.clone(),
        ..Default::default()
    };
    let tl = w.timeline();
    let built = Index::build_carrying(
        &NoBlobs(plain),
        &tl,
        None,
        Carried::from_segments(vec![all.clone()]),
    )
    .unwrap();
    assert_eq!(built.0.carried, 0);
    assert_eq!(built.0.records, read.1.records);
}

#[test]
fn a_later_segment_replaces_an_earlier_file_of_the_same_path() {
    let w = world();
    let read = check(&w, Vec::new());
    let all = carry_of(&read.1);
    let good = build::mlcube("good", 1);
    let mut stale: Vec<CarriedFile> = all
        .iter()
        .filter(|f| f.path == good.as_bytes())
        .cloned()
        .collect();
    stale[0].bytes = b"stale".to_vec().into();
    let carried = Carried::from_segments(vec![stale.clone(), all.clone()]);
    assert_eq!(carried.len(), all.len());
    let tl = w.timeline();
    let got = verify_index(
        Index::build_carrying(&w.tree, &tl, None, carried).unwrap(),
        &tl,
        &VerifyOptions::default(),
    );
    same(&read, &got);
    assert_eq!(got.1.carried, all.len());
    // The other way round, the stale file is the one kept, and not taken.
    let carried = Carried::from_segments(vec![all.clone(), stale]);
    let got = verify_index(
        Index::build_carrying(&w.tree, &tl, None, carried).unwrap(),
        &tl,
        &VerifyOptions::default(),
    );
    same(&read, &got);
    assert_eq!(got.1.carried, all.len() - 1);
}

/// A tree that does not know its files' blob ids.
struct NoBlobs(Mem);

impl crate::trust::TreeRead for NoBlobs {
    fn entries(&self) -> Result<Vec<crate::trust::TreeEntry>, crate::trust::TrustError> {
        let mut e = self.0.entries()?;
        for x in &mut e {
            x.blob = None;
        }
        Ok(e)
    }
    fn read(&self, path: &str) -> Result<Vec<u8>, crate::trust::TrustError> {
        self.0.read(path)
    }
}

#[test]
fn segments_merge_by_path_and_a_later_one_wins_sorted_or_not() {
    let w = world();
    let all = carry_of(&check(&w, Vec::new()).1);
    let paths =
        |c: &Carried| -> Vec<bytes::Bytes> { c.files.iter().map(|f| f.path.clone()).collect() };
    let want: Vec<bytes::Bytes> = all.iter().map(|f| f.path.clone()).collect();
    // Split in three interleaved sorted segments, one file repeated with other bytes later.
    let mut parts = vec![Vec::new(), Vec::new(), Vec::new()];
    for (i, f) in all.iter().enumerate() {
        parts[i % 3].push(f.clone());
    }
    let mut late = all[4].clone();
    late.bytes = bytes::Bytes::from_static(b"later");
    parts.push(vec![late.clone()]);
    let merged = Carried::from_segments(parts.clone());
    assert_eq!(paths(&merged), want);
    assert_eq!(merged.files[4].bytes, late.bytes);
    // The same segments with one out of order: sorted, and the later file still wins.
    let mut shuffled = parts;
    shuffled[0].reverse();
    let merged = Carried::from_segments(shuffled);
    assert_eq!(paths(&merged), want);
    assert_eq!(merged.files[4].bytes, late.bytes);
}
