//! A main built onto the carried files of the main it grew from is the main read whole: the
//! same index (files, records, lookups in the same order) and the same report, whatever the
//! new commits add, including what changes the verdict on files the old main held; and so is
//! its rule pass over only the records the new files reach.

use crate::model::{self, DecisionKind, FORMAT_VERSION, GrantAction, Sha256, build};
use crate::trust::{Accepted, Carried, Index, Report, VerifyOptions, verify_grown, verify_index};

use super::carry::{carry_of, check, same};
use super::{Mem, World, cube_by};

/// The report and index of `w` built onto `base` (the index of the main it grew from): the
/// files `base` holds come from its carry, the others are read from `w`'s tree.
fn onto(base: &Index, w: &World) -> Option<(Report, Index)> {
    onto_with(base, w, false)
}

/// The files of `w` that `base` (the index of an earlier main of it) does not hold.
pub(super) fn added_to(base: &Index, w: &World) -> Mem {
    Mem {
        files: w
            .tree
            .files
            .iter()
            .filter(|(p, _)| !base.files.contains_key(*p))
            .map(|(p, f)| (p.clone(), f.clone()))
            .collect(),
        commit: w.tree.commit,
    }
}

/// `onto`, with the rule pass of [`verify_grown`] when `grown` (`base` was clean).
pub(super) fn onto_with(base: &Index, w: &World, grown: bool) -> Option<(Report, Index)> {
    let tl = w.timeline();
    let added = added_to(base, w);
    let ix = Index::from_carried(Carried::from_segments(vec![carry_of(base)]), &tl)
        .expect("a carry of a verified main");
    let built = ix.extend_checking(&added, &tl, None).unwrap()?;
    let opts = VerifyOptions::default();
    if grown {
        let commits = base.files.values().map(|f| f.intro + 1).max().unwrap_or(0);
        return Some(verify_grown(built, &tl, &opts, Accepted { commits }));
    }
    Some(verify_index(built, &tl, &opts))
}

/// `onto` agrees with the whole read, lookups included; returns the report.
fn agree(base: &Index, w: &World) -> Report {
    let whole = check(w, Vec::new());
    let got = onto(base, w).expect("built onto the base");
    same(&whole, &got);
    let grown = onto_with(base, w, true).expect("built onto the base");
    same(&whole, &grown);
    assert!(grown.0.records_checked <= whole.0.records_checked);
    let (a, b) = (&whole.1, &got.1);
    assert_eq!(a.decisions, b.decisions);
    assert_eq!(a.signatures, b.signatures);
    assert_eq!(a.sealed, b.sealed);
    assert_eq!(a.meta_files, b.meta_files);
    assert_eq!(
        (&a.users, &a.grants, &a.cubes),
        (&b.users, &b.grants, &b.cubes)
    );
    assert_eq!(a.registry_id, b.registry_id);
    assert_eq!(b.carried, base.files.len());
    let fresh = b.fresh.clone().unwrap();
    assert_eq!(fresh.len() + b.carried, b.files.len());
    assert!(fresh.iter().all(|p| !base.files.contains_key(p)));
    got.0
}

pub(super) fn decide(w: &mut World, subject: &str, kind: DecisionKind, by: &str) -> String {
    let d = model::Decision {
        format: FORMAT_VERSION,
        kind: kind.as_str().into(),
        subject: subject.into(),
        subject_sha256: Sha256::of(&w.tree.files[subject].0),
        by: by.into(),
        at: "2026-01-01T00:00:00Z".into(),
        reason: None,
    };
    let path = build::decision(subject, kind, by);
    w.record(&path, &d, &[by]);
    path
}

/// A clean main: an admin, alice and bob admitted, alice's cube.
fn base() -> (World, Index) {
    let mut w = World::new(&["admin", "alice", "bob", "mallory"]);
    w.root(1, &["admin"], 1, &["admin"]);
    w.next_commit();
    w.user("alice", "admin");
    w.user("bob", "admin");
    w.next_commit();
    cube_by(&mut w, "good", "alice");
    let (report, ix) = check(&w, Vec::new());
    assert!(report.is_clean(), "{:#?}", report.problems);
    w.next_commit();
    (w, ix)
}

#[test]
fn new_records_good_and_forged_are_judged_as_in_the_whole_read() {
    let (mut w, ix) = base();
    assert!(agree(&ix, &w).is_clean(), "nothing added");
    cube_by(&mut w, "other", "bob");
    w.unadmitted("mallory");
    let forged = cube_by(&mut w, "forged", "mallory");
    let r = agree(&ix, &w);
    assert!(r.problems.iter().any(|p| p.path.starts_with(&forged)));
    assert!(!r.problems.iter().any(|p| p.path.contains("other")));
}

#[test]
fn what_new_files_say_about_old_ones_is_judged_as_in_the_whole_read() {
    // A signature by someone else added to a file the old main held.
    let (mut w, ix) = base();
    let good = build::mlcube("good", 1);
    w.sign(&good, "bob");
    let r = agree(&ix, &w);
    assert!(!r.is_clean(), "bob may not sign alice's cube");

    // A rejection of an old user record by someone who may not decide on it.
    let (mut w, ix) = base();
    decide(
        &mut w,
        &build::user("alice", 1),
        DecisionKind::Rejection,
        "bob",
    );
    assert!(!agree(&ix, &w).is_clean());

    // A late rejection by the admin who approved it (the file stays as merged).
    let (mut w, ix) = base();
    decide(
        &mut w,
        &build::user("alice", 1),
        DecisionKind::Rejection,
        "admin",
    );
    agree(&ix, &w);
}

#[test]
fn new_keys_roles_and_revocations_are_judged_as_in_the_whole_read() {
    let (mut w, ix) = base();
    w.user("mallory", "admin");
    w.grant(1, "bob", GrantAction::GrantRole, "admin", &["admin"]);
    w.next_commit();
    cube_by(&mut w, "mallorys", "mallory");
    assert!(agree(&ix, &w).is_clean());

    // alice's key revoked; what she signs after it does not count, what she signed before does.
    let (mut w, ix) = base();
    w.grant(1, "alice", GrantAction::RevokeKey, "admin", &["admin"]);
    w.next_commit();
    let late = cube_by(&mut w, "late", "alice");
    let r = agree(&ix, &w);
    assert!(r.problems.iter().any(|p| p.path.starts_with(&late)));
    assert!(!r.problems.iter().any(|p| p.path.contains("good")));

    // A root rotation signed below the threshold.
    let (mut w, ix) = base();
    w.root(2, &["admin", "bob"], 2, &["bob"]);
    assert!(!agree(&ix, &w).is_clean());
}

#[test]
fn a_path_that_differs_only_in_case_is_left_to_the_whole_read() {
    let (mut w, ix) = base();
    let upper = build::mlcube("good", 1).replace("good", "Good");
    w.add(&upper, b"x".to_vec());
    assert!(onto(&ix, &w).is_none());
    assert!(!check(&w, Vec::new()).0.is_clean());

    let (mut w, ix) = base();
    w.add("mlcubes/new/v1/a.yaml", b"x".to_vec());
    w.add("mlcubes/NEW/v1/a.yaml", b"x".to_vec());
    assert!(onto(&ix, &w).is_none());

    // Unknown files and files over their limits: read and reported as the whole read does.
    let (mut w, ix) = base();
    w.add("stray.txt", b"x".to_vec());
    w.add(&build::mlcube("big", 1), vec![b'#'; 2 << 20]);
    let r = agree(&ix, &w);
    assert!(r.problems.iter().any(|p| p.path == "stray.txt"));
}
