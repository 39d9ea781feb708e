//! Trust rules on in-memory trees: a small builder signs records with throwaway keys, and each
//! test checks one rule (rotation thresholds, revocation timing, approvals, grants).

use std::collections::{BTreeMap, HashMap};

use crate::model::{self, FORMAT_VERSION, KeyHolder, Sha256, build};
use crate::storage::Home;

use super::keys::{self, Signer};
use super::{
    Code, EntryMode, Rule, Timeline, TreeEntry, TreeRead, TrustError, VerifyOptions, sign, verify,
};

/// A tree in memory, with a commit index per file.
#[derive(Default, Clone)]
struct Mem {
    files: BTreeMap<String, (Vec<u8>, usize)>,
    commit: usize,
}

impl TreeRead for Mem {
    fn entries(&self) -> Result<Vec<TreeEntry>, TrustError> {
        Ok(self
            .files
            .iter()
            .map(|(p, (bytes, _))| TreeEntry {
                path: p.clone(),
                mode: EntryMode::File,
                blob: Some(super::carry::blob_id(bytes)),
            })
            .collect())
    }
    fn read(&self, path: &str) -> Result<Vec<u8>, TrustError> {
        Ok(self.files[path].0.clone())
    }
}

struct World {
    _dir: tempfile::TempDir,
    home: Home,
    signers: HashMap<String, Signer>,
    tree: Mem,
    id: Option<Sha256>,
    /// Trust rules the roots name (None: a root from before rules were versioned).
    rules: Option<u32>,
}

impl World {
    fn new(handles: &[&str]) -> World {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path());
        let mut signers = HashMap::new();
        for h in handles {
            keys::generate(&home, h, None, std::time::SystemTime::now()).unwrap();
            signers.insert(
                h.to_string(),
                keys::unlock(&home, h, &mut || unreachable!()).unwrap(),
            );
        }
        World {
            _dir: dir,
            home,
            signers,
            tree: Mem::default(),
            id: None,
            rules: Some(model::RULES_VERSION),
        }
    }

    fn holder(&self, h: &str) -> KeyHolder {
        let p = &self.signers[h].public;
        KeyHolder {
            handle: h.into(),
            minisign: p.minisign.clone(),
            age: p.age.clone(),
        }
    }

    fn add(&mut self, path: &str, bytes: Vec<u8>) {
        self.tree
            .files
            .insert(path.into(), (bytes, self.tree.commit));
    }

    fn sign(&mut self, path: &str, by: &str) {
        let bytes = self.tree.files[path].0.clone();
        let kind = model::classify(path).unwrap().kind().unwrap();
        let reg = self.id.clone().unwrap_or_else(|| Sha256::of(&bytes));
        let sig = sign::sign(&self.signers[by], &reg, path, kind.as_str(), &bytes).unwrap();
        self.add(&build::signature(path, by), sig);
    }

    fn record<T: serde::Serialize>(&mut self, path: &str, r: &T, signers: &[&str]) {
        self.add(path, model::to_bytes(r));
        for s in signers {
            self.sign(path, s);
        }
    }

    fn next_commit(&mut self) {
        self.tree.commit += 1;
    }

    fn root(&mut self, version: u32, admins: &[&str], threshold: u32, signers: &[&str]) {
        let previous =
            (version > 1).then(|| Sha256::of(&self.tree.files[&build::root(version - 1)].0));
        let r = model::Root {
            format: FORMAT_VERSION,
            kind: "root".into(),
            version,
            name: "t".into(),
            created: "2026-01-01T00:00:00Z".into(),
            nonce: "0123456789abcdef0123456789abcdef".into(),
            threshold,
            previous,
            rules: self.rules,
            admins: admins.iter().map(|a| self.holder(a)).collect(),
        };
        self.record(&build::root(version), &r, signers);
        if version == 1 {
            self.id = Some(Sha256::of(&self.tree.files[&build::root(1)].0));
        }
    }

    /// `h`'s user record `version` naming `minisign` and `age` (chained to the version
    /// before it in the tree).
    fn user_record(&self, h: &str, version: u32, minisign: String, age: String) -> model::User {
        let previous =
            (version > 1).then(|| Sha256::of(&self.tree.files[&build::user(h, version - 1)].0));
        model::User {
            format: FORMAT_VERSION,
            kind: "user".into(),
            handle: h.into(),
            version,
            name: h.into(),
            email: format!("{h}@example.org"),
            minisign,
            age,
            created: "2026-01-01T00:00:00Z".into(),
            previous,
        }
    }

    /// `h`'s first user record, signed by `h` alone: nobody admitted the key. Returns its path.
    fn unadmitted(&mut self, h: &str) -> String {
        let p = self.signers[h].public.clone();
        let u = self.user_record(h, 1, p.minisign, p.age);
        let path = build::user(h, 1);
        self.record(&path, &u, &[h]);
        path
    }

    fn user(&mut self, h: &str, approver: &str) {
        let path = self.unadmitted(h);
        let sha = Sha256::of(&self.tree.files[&path].0);
        let d = model::Decision {
            format: FORMAT_VERSION,
            kind: "approval".into(),
            subject: path.clone(),
            subject_sha256: sha,
            by: approver.into(),
            at: "2026-01-01T00:00:00Z".into(),
            reason: None,
        };
        self.record(
            &build::decision(&path, model::DecisionKind::Approval, approver),
            &d,
            &[approver],
        );
    }

    fn grant(&mut self, n: u32, h: &str, action: model::GrantAction, by: &str, signers: &[&str]) {
        let key = (action == model::GrantAction::RevokeKey)
            .then(|| self.signers[h].public.key_id.clone());
        let role = (action != model::GrantAction::RevokeKey).then_some(model::Role::BenchmarkOwner);
        let g = model::Grant {
            format: FORMAT_VERSION,
            kind: "grant".into(),
            number: n,
            handle: h.into(),
            action,
            role,
            key,
            reason: None,
            by: by.into(),
            at: "2026-01-01T00:00:00Z".into(),
        };
        self.record(&build::grant(h, n), &g, signers);
    }

    fn timeline(&self) -> Timeline {
        let mut tl = Timeline::default();
        for i in 0..=self.tree.commit {
            tl.commits.push(format!("c{i}"));
        }
        for (p, (_, c)) in &self.tree.files {
            tl.intro.insert(p.clone(), *c);
        }
        tl
    }

    fn verify(&self) -> super::Report {
        verify(&self.tree, &self.timeline(), &VerifyOptions::default())
            .unwrap()
            .0
    }
}

fn has(report: &super::Report, path: &str, needle: &str) -> bool {
    report
        .problems
        .iter()
        .any(|p| p.path == path && p.message.contains(needle))
}

fn has_code(report: &super::Report, path: &str, code: Code) -> bool {
    report
        .problems
        .iter()
        .any(|p| p.path == path && p.code == code)
}

#[test]
fn a_fresh_registry_verifies() {
    let mut w = World::new(&["root1", "alice"]);
    w.root(1, &["root1"], 1, &["root1"]);
    w.next_commit();
    w.user("alice", "root1");
    let r = w.verify();
    assert!(r.is_clean(), "{:#?}", r.problems);
    assert!(r.signatures_checked >= 3);
    let _ = &w.home;
}

#[test]
fn root_rotation_needs_both_thresholds() {
    let mut w = World::new(&["a1", "a2", "a3"]);
    w.root(1, &["a1", "a2"], 2, &["a1", "a2"]);
    w.next_commit();
    // v2 signed only by the new admin: the old threshold is missing.
    w.root(2, &["a3"], 1, &["a3"]);
    let r = w.verify();
    assert!(
        has_code(&r, "root/v2.toml", Code::RootThreshold)
            && has(&r, "root/v2.toml", "the admins of version 1"),
        "{:#?}",
        r.problems
    );

    let mut w = World::new(&["a1", "a2", "a3"]);
    w.root(1, &["a1", "a2"], 2, &["a1", "a2"]);
    w.next_commit();
    w.root(2, &["a3"], 1, &["a1", "a2", "a3"]);
    w.next_commit();
    // After the rotation, a1 is no longer an admin: its approval does not count.
    w.user("a2", "a1");
    let r = w.verify();
    assert!(
        !r.problems.iter().any(|p| p.path.starts_with("root/")),
        "{:#?}",
        r.problems
    );
    assert!(
        has(&r, "users/a2/v1.approval.a1.toml", "not an admin"),
        "{:#?}",
        r.problems
    );
}

#[test]
fn a_root_v1_signed_below_its_threshold_fails() {
    let mut w = World::new(&["a1", "a2"]);
    w.root(1, &["a1", "a2"], 2, &["a1"]);
    let r = w.verify();
    assert!(
        has_code(&r, "root/v1.toml", Code::RootThreshold),
        "{:#?}",
        r.problems
    );
}

#[test]
fn revocation_counts_from_its_merge() {
    let mut w = World::new(&["admin", "alice", "bob"]);
    w.root(1, &["admin"], 1, &["admin"]);
    w.next_commit();
    w.user("alice", "admin");
    w.user("bob", "admin");
    w.next_commit();
    // alice signs a request for a role (any record she may sign): before the revocation it counts.
    w.grant(1, "bob", model::GrantAction::GrantRole, "admin", &["admin"]);
    w.next_commit();
    w.grant(
        1,
        "alice",
        model::GrantAction::RevokeKey,
        "admin",
        &["admin"],
    );
    w.next_commit();
    // After the revocation, a record signed by alice does not count.
    let cube = model::Mlcube {
        format: FORMAT_VERSION,
        kind: "mlcube".into(),
        name: "late".into(),
        version: 1,
        owner: "alice".into(),
        created: "2026-01-01T00:00:00Z".into(),
        description: None,
        mlcube_yaml: Some(Sha256::of(b"x")),
        container_config_yaml: None,
        parameters_yaml: None,
        additional_files: None,
        image: model::Image {
            id: format!("sha256:{}", Sha256::of(b"img")),
            source: model::ImageSource::Local,
            reference: None,
            tarball: None,
            private: None,
        },
    };
    w.add(
        &build::mlcube_file("late", 1, model::CubeFile::MlcubeYaml),
        b"x".to_vec(),
    );
    w.record(&build::mlcube("late", 1), &cube, &["alice"]);
    let r = w.verify();
    assert!(
        r.problems
            .iter()
            .any(|p| p.path.starts_with("mlcubes/late/v1/cube.toml") && p.rule == Rule::Authority),
        "{:#?}",
        r.problems
    );
    // alice's own earlier user record stays valid.
    assert!(
        !r.problems
            .iter()
            .any(|p| p.path.starts_with("users/alice/")),
        "{:#?}",
        r.problems
    );
}

/// A cube `name` owned and signed by `owner`, merged in the current commit.
fn cube_by(w: &mut World, name: &str, owner: &str) -> String {
    let cube = model::Mlcube {
        format: FORMAT_VERSION,
        kind: "mlcube".into(),
        name: name.into(),
        version: 1,
        owner: owner.into(),
        created: "2026-01-01T00:00:00Z".into(),
        description: None,
        mlcube_yaml: Some(Sha256::of(b"x")),
        container_config_yaml: None,
        parameters_yaml: None,
        additional_files: None,
        image: model::Image {
            id: format!("sha256:{}", Sha256::of(b"img")),
            source: model::ImageSource::Local,
            reference: None,
            tarball: None,
            private: None,
        },
    };
    w.add(
        &build::mlcube_file(name, 1, model::CubeFile::MlcubeYaml),
        b"x".to_vec(),
    );
    w.record(&build::mlcube(name, 1), &cube, &[owner]);
    build::mlcube(name, 1)
}

/// A revocation ends a raw key, not a handle's label: the same key admitted again under
/// another handle (an admin deceived by a fresh name) signs nothing, and its record is refused.
#[test]
fn a_revoked_raw_key_stays_revoked_under_another_handle() {
    let mut w = World::new(&["admin", "alice"]);
    let mut stolen = keys::unlock(&w.home, "alice", &mut || unreachable!()).unwrap();
    stolen.handle = "mallory".into();
    w.root(1, &["admin"], 1, &["admin"]);
    w.next_commit();
    w.user("alice", "admin");
    w.next_commit();
    w.grant(
        1,
        "alice",
        model::GrantAction::RevokeKey,
        "admin",
        &["admin"],
    );
    w.next_commit();
    w.signers.insert("mallory".into(), stolen);
    w.user("mallory", "admin");
    w.next_commit();
    let cube = cube_by(&mut w, "stolen", "mallory");
    let r = w.verify();
    assert!(
        has_code(&r, &build::user("mallory", 1), Code::RevokedKey),
        "{:#?}",
        r.problems
    );
    assert!(
        r.problems
            .iter()
            .any(|p| p.path.starts_with(&cube) && p.rule == Rule::Authority),
        "{:#?}",
        r.problems
    );
}

#[test]
fn grants_need_the_admin_threshold_and_admins() {
    let mut w = World::new(&["a1", "a2", "alice"]);
    w.root(1, &["a1", "a2"], 2, &["a1", "a2"]);
    w.next_commit();
    w.user("alice", "a1");
    w.next_commit();
    w.grant(1, "alice", model::GrantAction::GrantRole, "a1", &["a1"]);
    let r = w.verify();
    assert!(
        has(&r, "grants/alice/1.toml", "the admin threshold is 2"),
        "{:#?}",
        r.problems
    );
    w.sign("grants/alice/1.toml", "a2");
    let r = w.verify();
    assert!(r.is_clean(), "{:#?}", r.problems);
}

#[test]
fn the_memo_changes_speed_never_verdicts() {
    let mut w = World::new(&["admin", "alice"]);
    w.root(1, &["admin"], 1, &["admin"]);
    w.next_commit();
    w.user("alice", "admin");
    let mut tl = Timeline {
        commits: vec!["c0".into(), "c1".into()],
        ..Timeline::default()
    };
    for (p, (_, c)) in &w.tree.files {
        tl.intro.insert(p.clone(), *c);
    }
    let memo = std::sync::Arc::new(crate::trust::SigCache::default());
    let opts = VerifyOptions {
        expected_registry: None,
        cache: Some(memo.clone()),
    };
    let (r, _) = verify(&w.tree, &tl, &opts).unwrap();
    assert!(r.is_clean(), "{:#?}", r.problems);
    let first = r.signatures_checked;
    assert!(first >= 3, "root, user and approval signatures: {first}");
    let (r, _) = verify(&w.tree, &tl, &opts).unwrap();
    assert!(r.is_clean());
    assert_eq!(r.signatures_checked, 0, "everything comes from the memo");
    assert!(r.signatures_cached >= first);
    // A memo survives a round trip through its file encoding.
    let reloaded = crate::trust::SigCache::from_bytes(&memo.to_bytes());
    assert_eq!(reloaded.len(), memo.len());
    // Tampered bytes are a new triple: checked, and refused, memo or not.
    let path = build::user("alice", 1);
    w.tree
        .files
        .get_mut(&path)
        .unwrap()
        .0
        .extend_from_slice(b"# x\n");
    for cache in [Some(memo.clone()), None] {
        let opts = VerifyOptions {
            expected_registry: None,
            cache,
        };
        let (r, _) = verify(&w.tree, &tl, &opts).unwrap();
        assert!(
            r.problems
                .iter()
                .any(|p| p.path == path && p.code == crate::trust::Code::BadSignature),
            "{:#?}",
            r.problems
        );
    }
    let (r, _) = verify(
        &w.tree,
        &tl,
        &VerifyOptions {
            expected_registry: Some(Sha256::of(b"other")),
            cache: None,
        },
    )
    .unwrap();
    assert!(
        r.problems.iter().any(|p| p.rule == Rule::Rollback),
        "{:#?}",
        r.problems
    );
}

/// A stray approval (naming bytes that are not the subject's): a problem under trust rules 2,
/// a warning on a registry whose root predates them (`verify --strict` fails on it).
#[test]
fn newer_rules_warn_on_older_registries() {
    for rules in [None, Some(model::RULES_VERSION)] {
        let mut w = World::new(&["admin", "admin2", "alice"]);
        w.rules = rules;
        w.root(1, &["admin", "admin2"], 1, &["admin", "admin2"]);
        w.next_commit();
        w.user("alice", "admin");
        w.next_commit();
        let subject = build::user("alice", 1);
        let stray = model::Decision {
            format: FORMAT_VERSION,
            kind: "approval".into(),
            subject: subject.clone(),
            subject_sha256: Sha256::of(b"other bytes"),
            by: "admin2".into(),
            at: "2026-01-01T00:00:00Z".into(),
            reason: None,
        };
        let path = build::decision(&subject, model::DecisionKind::Approval, "admin2");
        w.record(&path, &stray, &["admin2"]);
        let r = w.verify();
        let found = |list: &[super::Problem]| {
            list.iter()
                .any(|p| p.path == path && p.code == Code::StrayDecision)
        };
        if rules.is_none() {
            assert!(r.is_clean(), "{:#?}", r.problems);
            assert!(!r.is_strictly_clean());
            assert!(found(&r.warnings), "{:#?}", r.warnings);
        } else {
            assert!(found(&r.problems), "{:#?}", r.problems);
        }
    }
}

/// Thresholds count people and keys: two handles with one raw key are one vote.
#[test]
fn signed_counts_distinct_keys() {
    use super::verify::Signed;
    let mut s = Signed::default();
    s.0.insert("a".into(), [1; 32]);
    s.0.insert("b".into(), [1; 32]);
    s.0.insert("c".into(), [2; 32]);
    assert_eq!(s.people(&|_| true), 2);
    assert_eq!(s.people(&|h| h != "c"), 1);
    assert!(s.contains("b") && !s.contains("d"));
}

#[path = "blob_tests.rs"]
mod blob_tests;

#[path = "access_tests.rs"]
mod access_tests;

#[path = "early_tests.rs"]
mod early;

#[path = "carry_tests.rs"]
mod carry;

#[path = "onto_tests.rs"]
mod onto;

#[path = "grown_tests.rs"]
mod grown;
