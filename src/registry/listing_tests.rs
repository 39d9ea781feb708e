//! The listing index is used only for the commit it was built for, and only whole.

use git2::Oid;

use super::{decode, encode};
use crate::model::{self, FORMAT_VERSION, Sha256, build};
use crate::trust::{EntryMode, Index, Timeline, TreeEntry, TreeRead, TrustError};

/// A tree in memory.
struct Mem(Vec<(String, Vec<u8>)>);

impl TreeRead for Mem {
    fn entries(&self) -> Result<Vec<TreeEntry>, TrustError> {
        Ok(self
            .0
            .iter()
            .map(|(p, b)| TreeEntry {
                path: p.clone(),
                mode: EntryMode::File,
                size: b.len() as u64,
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
    let bytes = encode(commit(1), &ix).unwrap();
    let back = decode(&bytes, commit(1), &[""], &|_| true).unwrap();
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
    let bytes = encode(commit(1), &ix).unwrap();
    let users = decode(&bytes, commit(1), &["users/"], &|_| true).unwrap();
    assert!(
        users
            .records
            .keys()
            .all(|p| p.starts_with("users/") || p.starts_with("root/"))
    );
    assert_eq!(users.users, ix.users);
    assert!(users.cubes.is_empty());
}

#[test]
fn never_read_for_another_commit() {
    let ix = fixture_index();
    let bytes = encode(commit(1), &ix).unwrap();
    assert!(decode(&bytes, commit(2), &[""], &|_| true).is_none());
}

#[test]
fn a_cut_short_or_altered_index_is_ignored() {
    let ix = fixture_index();
    let bytes = encode(commit(1), &ix).unwrap();
    for cut in [0, 10, bytes.len() / 2, bytes.len() - 1] {
        assert!(
            decode(&bytes[..cut], commit(1), &[""], &|_| true).is_none(),
            "cut at {cut}"
        );
    }
    // One byte changed in a record: the body no longer has the digest the header names.
    let mut altered = bytes.clone();
    let at = altered.len() - 5;
    altered[at] ^= 1;
    assert!(decode(&altered, commit(1), &[""], &|_| true).is_none());
    assert!(decode(b"garbage\nmore", commit(1), &[""], &|_| true).is_none());
}

#[test]
fn an_unreadable_line_voids_the_whole_index() {
    let ix = fixture_index();
    let bytes = encode(commit(1), &ix).unwrap();
    let text = String::from_utf8(bytes).unwrap();
    let (_, body) = text.split_once('\n').unwrap();
    // A well-formed header over a body whose one record does not parse as its kind.
    let body = body.replacen("\t{", "\t{\"unknown\":1,", 1);
    let forged = format!(
        "cohort listing index 1 {} {}\n{body}",
        commit(1),
        Sha256::of(body.as_bytes())
    );
    assert!(decode(forged.as_bytes(), commit(1), &[""], &|_| true).is_none());
}
