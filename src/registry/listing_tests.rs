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
    let holder = |h: &str| model::KeyHolder {
        handle: h.into(),
        minisign: "RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3".into(),
        age: "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p".into(),
    };
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
        let path = build::user(h, 1);
        let bytes = model::to_bytes(&u);
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
    let g = model::Grant {
        format: FORMAT_VERSION,
        kind: "grant".into(),
        number: 1,
        handle: "alice".into(),
        action: model::GrantAction::GrantRole,
        role: Some(model::Role::BenchmarkOwner),
        key: None,
        reason: None,
        by: "admin".into(),
        at: AT.into(),
    };
    files.push((build::grant("alice", 1), model::to_bytes(&g)));
    for version in 1..=2 {
        let c = model::Mlcube {
            format: FORMAT_VERSION,
            kind: "mlcube".into(),
            name: "heart".into(),
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
        files.push((build::mlcube("heart", version), model::to_bytes(&c)));
    }
    let (ix, problems) = Index::build(&Mem(files), &Timeline::flat()).unwrap();
    assert!(problems.is_empty(), "{problems:#?}");
    assert_eq!(ix.records.len(), 8);
    ix
}

fn commit(n: u8) -> Oid {
    Oid::from_bytes(&[n; 20]).unwrap()
}

#[test]
fn every_record_comes_back_as_parsed() {
    let ix = fixture_index();
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

#[test]
fn never_read_for_another_commit() {
    let ix = fixture_index();
    assert!(read(&files(commit(1), &ix), commit(2), ALL).is_none());
    // One folder's file left from another commit voids the listing of that folder.
    let mut mixed = files(commit(2), &ix);
    let old = files(commit(1), &ix);
    let users = mixed.iter().position(|(n, _)| n == "users").unwrap();
    mixed[users] = old.iter().find(|(n, _)| n == "users").unwrap().clone();
    assert!(read(&mixed, commit(2), &["users/"]).is_none());
    assert!(read(&mixed, commit(2), &["mlcubes/"]).is_some());
}

#[test]
fn a_cut_short_or_altered_index_is_ignored() {
    let ix = fixture_index();
    let f = files(commit(1), &ix);
    for name in ["users", "folders"] {
        let i = f.iter().position(|(n, _)| n == name).unwrap();
        let bytes = f[i].1.clone();
        for cut in [0, 10, bytes.len() / 2, bytes.len() - 1] {
            let mut g = f.clone();
            g[i].1.truncate(cut);
            assert!(read(&g, commit(1), ALL).is_none(), "{name} cut at {cut}");
        }
        // One byte changed: the body no longer has the digest the header names.
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
    let text = String::from_utf8(f[i].1.clone()).unwrap();
    let (_, body) = text.split_once('\n').unwrap();
    // A well-formed header over a body whose one record does not parse as its kind.
    let body = body.replacen("\t{", "\t{\"unknown\":1,", 1);
    f[i].1 = format!(
        "cohort listing index 1 {} {}\n{body}",
        commit(1),
        Sha256::of(body.as_bytes())
    )
    .into_bytes();
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
    let cubes = rows::decode_cubes(file(&f, CUBES), commit(1)).unwrap();
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
    let users = rows::decode_users(file(&f, USERS), commit(1)).unwrap();
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
    let f = files(commit(1), &ix);
    for name in [CUBES, USERS] {
        let bytes = file(&f, name);
        let ok = |b: &[u8], c: Oid| match name {
            CUBES => rows::decode_cubes(b, c).is_some(),
            _ => rows::decode_users(b, c).is_some(),
        };
        assert!(ok(bytes, commit(1)), "{name}");
        assert!(!ok(bytes, commit(2)), "{name} for another commit");
        for cut in [0, 10, bytes.len() / 2, bytes.len() - 1] {
            assert!(!ok(&bytes[..cut], commit(1)), "{name} cut at {cut}");
        }
        let mut altered = bytes.to_vec();
        let at = altered.len() - 3;
        altered[at] ^= 1;
        assert!(!ok(&altered, commit(1)), "{name} altered");
        // A line with a field too few, under a header that matches it.
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        let (header, body) = text.split_once('\n').unwrap();
        let body = body.replacen('\t', "", 1);
        let magic = header.rsplitn(3, ' ').nth(2).unwrap();
        let short = format!(
            "{magic} {} {}\n{body}",
            commit(1),
            Sha256::of(body.as_bytes())
        );
        assert!(!ok(short.as_bytes(), commit(1)), "{name} short line");
    }
}

#[test]
fn free_text_comes_back_as_written() {
    let ix = fixture_index();
    let mut users = rows::user_rows(&ix);
    users[1].name = "Alice\tB.\\ \"Al\"\r\nsecond line \\t".into();
    users[2].email = String::new();
    let bytes = rows::encode_users(commit(1), &users).unwrap();
    assert_eq!(rows::decode_users(&bytes, commit(1)).unwrap(), users);
    // A role that would not come back whole: no rows file, listings use the records.
    users[1].roles.push("a,b".into());
    assert!(rows::encode_users(commit(1), &users).is_none());
}

#[test]
fn rows_are_read_only_beside_the_listing_of_their_commit() {
    let ix = fixture_index();
    let dir = tempfile::tempdir().unwrap();
    let listing = dir.path().join("x.listing");
    super::save(&listing, commit(1), &ix).unwrap();
    let cubes = super::load_rows(&listing, commit(1), CUBES).unwrap();
    assert!(rows::decode_cubes(&cubes, commit(1)).is_some());
    assert!(super::load_rows(&listing, commit(2), CUBES).is_none());
    // The listing of another commit saved over it: its rows, not these, are what is there.
    super::save(&listing, commit(2), &ix).unwrap();
    let now = super::load_rows(&listing, commit(2), CUBES).unwrap();
    assert!(rows::decode_cubes(&now, commit(1)).is_none());
    // A damaged list of folders voids the rows with the rest.
    std::fs::write(listing.join("folders"), b"not an index").unwrap();
    assert!(super::load_rows(&listing, commit(2), CUBES).is_none());
}

/// Saving the listing of the commit already kept writes nothing; a damaged or missing file of
/// it makes the next save write it whole again.
#[test]
fn a_whole_listing_is_kept_and_a_damaged_one_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("x.listing");
    std::fs::create_dir(&d).unwrap();
    let ix = fixture_index();
    super::save(&d, commit(1), &ix).unwrap();
    let users = d.join("users");
    let first = std::fs::metadata(&users).unwrap().modified().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    super::save(&d, commit(1), &ix).unwrap();
    assert_eq!(
        std::fs::metadata(&users).unwrap().modified().unwrap(),
        first
    );
    std::fs::write(&users, b"cut").unwrap();
    super::save(&d, commit(1), &ix).unwrap();
    assert!(super::load(&d, commit(1), ALL, &|_| true).is_some());
    std::fs::remove_file(d.join("mlcubes")).unwrap();
    super::save(&d, commit(1), &ix).unwrap();
    assert!(super::load(&d, commit(1), ALL, &|_| true).is_some());
    // Another commit's listing is replaced.
    super::save(&d, commit(2), &ix).unwrap();
    assert!(super::load(&d, commit(2), ALL, &|_| true).is_some());
}
