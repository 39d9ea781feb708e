//! The listing index is used only for the commit it was built for, and only whole.

use git2::Oid;

use super::{decode, encode};

type Files = Vec<(String, Vec<u8>)>;

fn files(commit: Oid, ix: &Index) -> Files {
    encode(commit, ix).unwrap()
}

fn read(files: &Files, commit: Oid, folders: &[&str]) -> Option<Index> {
    let get = |name: &str| {
        files
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, b)| b.clone())
    };
    decode(&get, commit, folders, &|_| true)
}

const ALL: &[&str] = &["root/", "users/", "grants/", "mlcubes/"];
use crate::model::{self, FORMAT_VERSION, Sha256, build};
use crate::trust::{EntryMode, Index, Timeline, TreeEntry, TreeRead, TrustError};

/// A tree in memory.
struct Mem(Vec<(String, Vec<u8>)>);

impl TreeRead for Mem {
    fn entries(&self) -> Result<Vec<TreeEntry>, TrustError> {
        Ok(self
            .0
            .iter()
            .map(|(p, _)| TreeEntry {
                path: p.clone(),
                mode: EntryMode::File,
                blob: None,
            })
            .collect())
    }
    fn read(&self, path: &str) -> Result<Vec<u8>, TrustError> {
        Ok(self.0.iter().find(|(p, _)| p == path).unwrap().1.clone())
    }
}

const AT: &str = "2026-01-01T00:00:00Z";

/// Records of several kinds (the listing index holds parsed records; signatures play no part).
fn fixture_index() -> Index {
    index_of(fixture_files())
}

fn index_of(files: Vec<(String, Vec<u8>)>) -> Index {
    let (ix, problems) = Index::build(&Mem(files), &Timeline::flat()).unwrap();
    assert!(problems.is_empty(), "{problems:#?}");
    ix
}

fn holder(h: &str) -> model::KeyHolder {
    model::KeyHolder {
        handle: h.into(),
        minisign: "RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3".into(),
        age: "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p".into(),
    }
}

fn user_file(h: &str) -> (String, Vec<u8>) {
    let k = holder(h);
    let u = model::User {
        format: FORMAT_VERSION,
        kind: "user".into(),
        handle: h.into(),
        version: 1,
        name: format!("User {h}"),
        email: format!("{h}@example.org"),
        minisign: k.minisign,
        age: k.age,
        created: AT.into(),
        previous: None,
    };
    (build::user(h, 1), model::to_bytes(&u))
}

fn cube_file(name: &str, version: u32) -> (String, Vec<u8>) {
    let c = model::Mlcube {
        format: FORMAT_VERSION,
        kind: "mlcube".into(),
        name: name.into(),
        version,
        owner: "alice".into(),
        created: AT.into(),
        description: Some("a model".into()),
        mlcube_yaml: Some(Sha256::of(b"yaml")),
        container_config_yaml: None,
        parameters_yaml: None,
        additional_files: None,
        image: model::Image {
            id: format!("sha256:{}", Sha256::of(&[version as u8])),
            source: model::ImageSource::Local,
            reference: None,
            tarball: None,
            private: None,
        },
    };
    (build::mlcube(name, version), model::to_bytes(&c))
}

fn fixture_files() -> Vec<(String, Vec<u8>)> {
    let root = model::Root {
        format: FORMAT_VERSION,
        kind: "root".into(),
        version: 1,
        name: "t".into(),
        created: AT.into(),
        nonce: "0123456789abcdef0123456789abcdef".into(),
        threshold: 1,
        previous: None,
        rules: Some(model::RULES_VERSION),
        admins: vec![holder("admin")],
    };
    let mut files = vec![(build::root(1), model::to_bytes(&root))];
    for h in ["alice", "bob"] {
        let (path, bytes) = user_file(h);
        let d = model::Decision {
            format: FORMAT_VERSION,
            kind: "approval".into(),
            subject: path.clone(),
            subject_sha256: Sha256::of(&bytes),
            by: "admin".into(),
            at: AT.into(),
            reason: Some("known to us".into()),
        };
        files.push((
            build::decision(&path, model::DecisionKind::Approval, "admin"),
            model::to_bytes(&d),
        ));
        files.push((path, bytes));
    }
    files.push(grant_file("alice", 1, model::Role::BenchmarkOwner));
    for version in 1..=2 {
        files.push(cube_file("heart", version));
    }
    files
}

fn grant_file(handle: &str, number: u32, role: model::Role) -> (String, Vec<u8>) {
    let g = model::Grant {
        format: FORMAT_VERSION,
        kind: "grant".into(),
        number,
        handle: handle.into(),
        action: model::GrantAction::GrantRole,
        role: Some(role),
        key: None,
        reason: None,
        by: "admin".into(),
        at: AT.into(),
    };
    (build::grant(handle, number), model::to_bytes(&g))
}

fn commit(n: u8) -> Oid {
    Oid::from_bytes(&[n; 20]).unwrap()
}

#[test]
fn every_record_comes_back_as_parsed() {
    let ix = fixture_index();
    assert_eq!(ix.records.len(), 8);
    let back = read(&files(commit(1), &ix), commit(1), ALL).unwrap();
    assert_eq!(back.records, ix.records);
    for p in ix.records.keys() {
        assert_eq!(back.sha(p), ix.sha(p), "{p}");
    }
    assert_eq!(back.registry_id, ix.registry_id);
    assert_eq!(back.users, ix.users);
    assert_eq!(back.cubes, ix.cubes);
}

#[test]
fn only_the_folders_asked_for_and_the_root() {
    let ix = fixture_index();
    let f = files(commit(1), &ix);
    let users = read(&f, commit(1), &["users/"]).unwrap();
    assert!(
        users
            .records
            .keys()
            .all(|p| p.starts_with("users/") || p.starts_with("root/"))
    );
    assert_eq!(users.users, ix.users);
    assert!(users.cubes.is_empty());
    // A folder the registry does not have yet lists nothing (and is no reason to rebuild).
    let none = read(&f, commit(1), &["benchmarks/"]).unwrap();
    assert!(none.benchmarks.is_empty());
}

/// The manifest again over the files in `f` as they are now.
fn remanifest(f: &mut Files, commit: Oid) {
    f.retain(|(n, _)| n != "manifest");
    let parts = f
        .iter()
        .map(|(n, b)| (n.clone(), Sha256::of(b).to_string()))
        .collect();
    f.push(("manifest".into(), super::manifest(commit, &parts)));
}

#[test]
fn never_read_for_another_commit() {
    let ix = fixture_index();
    assert!(read(&files(commit(1), &ix), commit(2), ALL).is_none());
    // One folder's file left from another commit's listing voids the listing of that folder.
    let mut fewer = fixture_files();
    fewer.retain(|(p, _)| p != &build::user("bob", 1));
    let mut mixed = files(commit(2), &ix);
    let old = files(commit(1), &index_of(fewer));
    let users = mixed.iter().position(|(n, _)| n == "users").unwrap();
    mixed[users] = old.iter().find(|(n, _)| n == "users").unwrap().clone();
    assert!(read(&mixed, commit(2), &["users/"]).is_none());
    assert!(read(&mixed, commit(2), &["mlcubes/"]).is_some());
}

#[test]
fn a_cut_short_or_altered_index_is_ignored() {
    let ix = fixture_index();
    let f = files(commit(1), &ix);
    for name in ["users", "manifest"] {
        let i = f.iter().position(|(n, _)| n == name).unwrap();
        let bytes = f[i].1.clone();
        for cut in [0, 10, bytes.len() / 2, bytes.len() - 1] {
            let mut g = f.clone();
            g[i].1.truncate(cut);
            assert!(read(&g, commit(1), ALL).is_none(), "{name} cut at {cut}");
        }
        // One byte changed: the file no longer has the digest the manifest names.
        let mut g = f.clone();
        let at = g[i].1.len() - 3;
        g[i].1[at] ^= 1;
        assert!(read(&g, commit(1), ALL).is_none(), "{name} altered");
    }
    let mut g = f.clone();
    g.retain(|(n, _)| n != "users");
    assert!(read(&g, commit(1), ALL).is_none(), "a folder file missing");
}

#[test]
fn an_unreadable_line_voids_the_whole_index() {
    let ix = fixture_index();
    let mut f = files(commit(1), &ix);
    let i = f.iter().position(|(n, _)| n == "users").unwrap();
    let body = String::from_utf8(f[i].1.clone()).unwrap();
    // A manifest naming the file's digest, over a file whose one record does not parse as
    // its kind.
    f[i].1 = body.replacen("\t{", "\t{\"unknown\":1,", 1).into_bytes();
    remanifest(&mut f, commit(1));
    assert!(read(&f, commit(1), ALL).is_none());
}

// The rows files: what `mlcube ls` and `user ls` print, kept with the listing.

use super::super::rows::{self, CUBES, USERS};

fn file<'a>(files: &'a Files, name: &str) -> &'a [u8] {
    &files.iter().find(|(n, _)| n == name).unwrap().1
}

#[test]
fn rows_are_what_the_records_give() {
    let ix = fixture_index();
    let f = files(commit(1), &ix);
    let cubes = rows::decode_cubes(file(&f, CUBES)).unwrap();
    assert_eq!(cubes, rows::cube_rows(&ix));
    let names: Vec<(&str, u32, &str)> = cubes
        .iter()
        .map(|r| (&*r.name, r.version, &*r.path))
        .collect();
    assert_eq!(
        names,
        [
            ("heart", 1, "mlcubes/heart/v1/cube.toml"),
            ("heart", 2, "mlcubes/heart/v2/cube.toml")
        ]
    );
    assert_eq!(
        cubes[1].sha256,
        ix.sha("mlcubes/heart/v2/cube.toml").unwrap().as_str()
    );
    let users = rows::decode_users(file(&f, USERS)).unwrap();
    assert_eq!(users, rows::user_rows(&ix));
    let who: Vec<(&str, bool, Vec<String>)> = users
        .iter()
        .map(|u| (u.handle.as_str(), u.admin, u.roles.clone()))
        .collect();
    assert_eq!(
        who,
        [
            ("admin", true, vec!["admin".to_string()]),
            ("alice", false, vec!["benchmark-owner".to_string()]),
            ("bob", false, vec![])
        ]
    );
    // The rows a listing computes when the rows file is missing (from the records of its
    // folders alone) are the rows written from the whole index.
    let mine = read(&f, commit(1), &["mlcubes/"]).unwrap();
    assert_eq!(rows::cube_rows(&mine), cubes);
    let people = read(&f, commit(1), &["users/", "grants/"]).unwrap();
    assert_eq!(rows::user_rows(&people), users);
}

#[test]
fn rows_are_never_read_for_another_commit_or_damaged() {
    let ix = fixture_index();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("x.listing");
    super::save(&d, commit(1), &ix, None).unwrap();
    for name in [CUBES, USERS] {
        let bytes = super::load_rows(&d, commit(1), name).unwrap();
        assert_eq!(bytes, std::fs::read(d.join(name)).unwrap());
        assert!(super::load_rows(&d, commit(2), name).is_none(), "{name}");
        let ok = |b: &[u8]| match name {
            CUBES => rows::decode_cubes(b).is_some(),
            _ => rows::decode_users(b).is_some(),
        };
        assert!(ok(&bytes), "{name}");
        // A line with a field too few.
        let short = String::from_utf8(bytes.clone())
            .unwrap()
            .replacen('\t', "", 1);
        assert!(!ok(short.as_bytes()), "{name} short line");
        for cut in [0, 10, bytes.len() / 2, bytes.len() - 1] {
            std::fs::write(d.join(name), &bytes[..cut]).unwrap();
            assert!(
                super::load_rows(&d, commit(1), name).is_none(),
                "{name} cut at {cut}"
            );
        }
        let mut altered = bytes.clone();
        let at = altered.len() - 3;
        altered[at] ^= 1;
        std::fs::write(d.join(name), &altered).unwrap();
        assert!(
            super::load_rows(&d, commit(1), name).is_none(),
            "{name} altered"
        );
        std::fs::write(d.join(name), &bytes).unwrap();
    }
}

#[test]
fn free_text_comes_back_as_written() {
    let ix = fixture_index();
    let mut users = rows::user_rows(&ix);
    users[1].name = "Alice\tB.\\ \"Al\"\r\nsecond line \\t".into();
    users[2].email = String::new();
    let bytes = rows::encode_users(&users).unwrap();
    assert_eq!(rows::decode_users(&bytes).unwrap(), users);
    // A role that would not come back whole: no rows file, listings use the records.
    users[1].roles.push("a,b".into());
    assert!(rows::encode_users(&users).is_none());
}

#[test]
fn rows_are_read_only_beside_the_listing_of_their_commit() {
    let ix = fixture_index();
    let dir = tempfile::tempdir().unwrap();
    let listing = dir.path().join("x.listing");
    super::save(&listing, commit(1), &ix, None).unwrap();
    let cubes = super::load_rows(&listing, commit(1), CUBES).unwrap();
    assert!(rows::decode_cubes(&cubes).is_some());
    assert!(super::load_rows(&listing, commit(2), CUBES).is_none());
    // The listing of another commit saved over it: that commit's rows are there, not these.
    super::save(&listing, commit(2), &ix, None).unwrap();
    assert!(super::load_rows(&listing, commit(2), CUBES).is_some());
    assert!(super::load_rows(&listing, commit(1), CUBES).is_none());
    // A damaged manifest voids the rows with the rest.
    std::fs::write(listing.join("manifest"), b"not an index").unwrap();
    assert!(super::load_rows(&listing, commit(2), CUBES).is_none());
}

/// Saving the listing of the commit already kept writes nothing; a damaged or missing file of
/// it makes the next save write it whole again.
#[test]
fn a_whole_listing_is_kept_and_a_damaged_one_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("x.listing");
    std::fs::create_dir(&d).unwrap();
    let mut ix = fixture_index();
    super::save(&d, commit(1), &ix, None).unwrap();
    let modified = |name: &str| std::fs::metadata(d.join(name)).unwrap().modified().unwrap();
    let first = (modified("users"), modified("manifest"));
    std::thread::sleep(std::time::Duration::from_millis(20));
    super::save(&d, commit(1), &ix, None).unwrap();
    // The same main verified again, as grown from itself (nothing added): the same.
    ix.fresh = Some(Vec::new());
    super::save(&d, commit(1), &ix, Some(commit(1))).unwrap();
    assert_eq!((modified("users"), modified("manifest")), first);
    std::fs::write(d.join("users"), b"cut").unwrap();
    super::save(&d, commit(1), &ix, Some(commit(1))).unwrap();
    assert!(super::load(&d, commit(1), ALL, &|_| true).is_some());
    std::fs::remove_file(d.join("mlcubes")).unwrap();
    super::save(&d, commit(1), &ix, None).unwrap();
    assert!(super::load(&d, commit(1), ALL, &|_| true).is_some());
    // Another commit's listing is replaced.
    super::save(&d, commit(2), &ix, None).unwrap();
    assert!(super::load(&d, commit(2), ALL, &|_| true).is_some());
}

// A main grown by additions from the one whose listing is kept.

/// The index of `base` and `added`, as verification builds it for a main that adds `added`:
/// those are the files it read.
fn grown(base: &[(String, Vec<u8>)], added: &[(String, Vec<u8>)]) -> Index {
    let mut ix = index_of(base.iter().chain(added).cloned().collect());
    ix.fresh = Some(added.iter().map(|(p, _)| p.clone()).collect());
    ix
}

/// The listing kept in `d` for `commit` shows what `ix` holds, as a listing written whole
/// would: every record and digest, and the rows.
fn assert_shows(d: &std::path::Path, commit: Oid, ix: &Index) {
    let back = super::load(d, commit, ALL, &|_| true).expect("listing readable");
    assert_eq!(back.records, ix.records);
    for p in ix.records.keys() {
        assert_eq!(back.sha(p), ix.sha(p), "{p}");
    }
    let cubes = super::load_rows(d, commit, CUBES).unwrap();
    assert_eq!(rows::decode_cubes(&cubes).unwrap(), rows::cube_rows(ix));
    let users = super::load_rows(d, commit, USERS).unwrap();
    assert_eq!(rows::decode_users(&users).unwrap(), rows::user_rows(ix));
}

/// A listing folder (in the temp dir returned with it) holding the fixture's listing of
/// commit 1, then that of commit 2, grown from it by `added`; with commit 2's index.
fn grown_once(added: &[(String, Vec<u8>)]) -> (tempfile::TempDir, std::path::PathBuf, Index) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("x.listing");
    let files = fixture_files();
    super::save(&d, commit(1), &index_of(files.clone()), None).unwrap();
    let ix = grown(&files, added);
    super::save(&d, commit(2), &ix, Some(commit(1))).unwrap();
    (dir, d, ix)
}

fn parts(d: &std::path::Path, commit: Oid) -> Vec<String> {
    super::parts_in(d, commit)
        .unwrap()
        .into_iter()
        .map(|(n, _)| n)
        .collect()
}

#[test]
fn a_grown_main_writes_what_it_adds_and_reads_as_written_whole() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("x.listing");
    let mut files = fixture_files();
    let ix1 = index_of(files.clone());
    super::save(&d, commit(1), &ix1, None).unwrap();
    let before: Vec<(String, Vec<u8>)> = parts(&d, commit(1))
        .into_iter()
        .map(|n| (n.clone(), std::fs::read(d.join(&n)).unwrap()))
        .collect();

    // New cube versions only: one part for their folder and one for the cube rows; the
    // files of the old main stay as they were, and the new name sorts before the old one.
    let added = vec![cube_file("heart", 3), cube_file("aorta", 1)];
    let ix2 = grown(&files, &added);
    super::save(&d, commit(2), &ix2, Some(commit(1))).unwrap();
    let c2 = commit(2).to_string();
    let mut want: Vec<String> = before.iter().map(|(n, _)| n.clone()).collect();
    want.extend([format!("mlcubes@{c2}"), format!("cubes.rows@{c2}")]);
    assert_eq!(parts(&d, commit(2)), want);
    for (n, b) in &before {
        assert_eq!(&std::fs::read(d.join(n)).unwrap(), b, "{n} rewritten");
    }
    assert_shows(&d, commit(2), &ix2);
    assert!(super::load(&d, commit(1), ALL, &|_| true).is_none());
    files.extend(added);

    // A new user and a grant: the user rows are written again, as a part of this commit
    // that replaces the old.
    let added = vec![
        user_file("carol"),
        grant_file("carol", 1, model::Role::BenchmarkOwner),
    ];
    let ix3 = grown(&files, &added);
    super::save(&d, commit(3), &ix3, Some(commit(2))).unwrap();
    let now = parts(&d, commit(3));
    let c3 = commit(3).to_string();
    assert!(now.contains(&format!("users.rows@{c3}")));
    assert!(now.contains(&format!("users@{c3}")));
    assert!(now.contains(&format!("grants@{c3}")));
    assert!(!now.iter().any(|n| n == USERS), "{now:?}");
    assert_shows(&d, commit(3), &ix3);
    assert!(
        rows::decode_users(&super::load_rows(&d, commit(3), USERS).unwrap())
            .unwrap()
            .iter()
            .any(|u| u.handle == "carol" && u.roles == ["benchmark-owner"])
    );

    // Grown from a main whose listing is not the one kept: written whole.
    let ix4 = grown(&files, &[cube_file("heart", 4)]);
    super::save(&d, commit(4), &ix4, Some(commit(9))).unwrap();
    assert!(parts(&d, commit(4)).iter().all(|n| !n.contains('@')));
    assert_shows(&d, commit(4), &ix4);
    // Parts no manifest names any more are gone.
    let left: Vec<String> = std::fs::read_dir(&d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(left.iter().all(|n| !n.contains('@')), "{left:?}");
}

#[test]
fn a_listing_grown_many_times_is_written_whole_again() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("x.listing");
    let mut files = fixture_files();
    super::save(&d, commit(1), &index_of(files.clone()), None).unwrap();
    for step in 1..=super::MAX_STEPS + 1 {
        let (from, to) = (commit(step as u8), commit(step as u8 + 1));
        let added = vec![cube_file("lung", step as u32)];
        let ix = grown(&files, &added);
        super::save(&d, to, &ix, Some(from)).unwrap();
        assert_shows(&d, to, &ix);
        let grown_parts = parts(&d, to).iter().filter(|n| n.contains('@')).count();
        let expected = if step <= super::MAX_STEPS {
            2 * step
        } else {
            0
        };
        assert_eq!(grown_parts, expected, "after {step} additions");
        files.extend(added);
    }
}

#[test]
fn a_damaged_part_of_a_grown_listing_voids_it_until_written_whole() {
    let (_dir, d, ix) = grown_once(&[cube_file("heart", 3)]);
    let part = d.join(format!("mlcubes@{}", commit(2)));
    let bytes = std::fs::read(&part).unwrap();
    std::fs::write(&part, &bytes[..bytes.len() - 1]).unwrap();
    assert!(super::load(&d, commit(2), ALL, &|_| true).is_none());
    assert!(
        super::load_rows(&d, commit(2), CUBES).is_some(),
        "other files still whole"
    );
    // The next save of that commit (a listing read from git) writes it whole.
    super::save(&d, commit(2), &ix, None).unwrap();
    assert_shows(&d, commit(2), &ix);
}

#[test]
fn rows_computed_again_replace_every_part_of_theirs() {
    let (_dir, d, ix) = grown_once(&[cube_file("aorta", 1)]);
    assert_eq!(
        parts(&d, commit(2))
            .iter()
            .filter(|n| n.starts_with(CUBES))
            .count(),
        2
    );
    std::fs::write(d.join(format!("{CUBES}@{}", commit(2))), b"x").unwrap();
    assert!(super::load_rows(&d, commit(2), CUBES).is_none());
    let bytes = rows::encode_cubes(&rows::cube_rows(&ix));
    // Not the listing kept: nothing written.
    super::save_rows(&d, commit(1), CUBES, &bytes).unwrap();
    assert!(super::load_rows(&d, commit(2), CUBES).is_none());
    super::save_rows(&d, commit(2), CUBES, &bytes).unwrap();
    assert_eq!(
        parts(&d, commit(2))
            .iter()
            .filter(|n| n.starts_with(CUBES))
            .count(),
        1
    );
    assert_shows(&d, commit(2), &ix);
}

#[test]
fn a_first_sync_far_larger_than_the_listing_kept_writes_it_whole() {
    let added: Vec<(String, Vec<u8>)> = (0..400).map(|i| cube_file(&format!("c{i}"), 1)).collect();
    let (_dir, d, ix) = grown_once(&added);
    assert!(parts(&d, commit(2)).iter().all(|n| !n.contains('@')));
    assert_shows(&d, commit(2), &ix);
}
