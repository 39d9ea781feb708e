//! Early checks (signatures checked while the index is read) change speed, never verdicts,
//! and stay bounded against hostile key lists; keys of small order are refused.

use super::*;

/// Signatures checked while the index is read are facts of cryptography only: a signature
/// by a key no valid record admits verifies then, and is still refused; the report is the
/// one a build without early checks gives.
#[test]
fn early_checks_change_speed_never_verdicts() {
    let mut w = World::new(&["admin", "alice", "mallory"]);
    w.root(1, &["admin"], 1, &["admin"]);
    w.next_commit();
    w.user("alice", "admin");
    w.unadmitted("mallory");
    let p = w.signers["mallory"].public.clone();
    w.next_commit();
    cube_by(&mut w, "good", "alice");
    let bad = cube_by(&mut w, "forged", "mallory");
    let mut tl = Timeline::default();
    for i in 0..=w.tree.commit {
        tl.commits.push(format!("c{i}"));
    }
    for (p, (_, c)) in &w.tree.files {
        tl.intro.insert(p.clone(), *c);
    }
    let (early, ix) = verify(&w.tree, &tl, &VerifyOptions::default()).unwrap();
    let mallory = minisign::PublicKey::from_base64(&p.minisign).unwrap();
    let sig = ix.bytes(&build::signature(&bad, "mallory")).unwrap();
    let k = crate::trust::SigCache::key(&mallory, sig, ix.sha(&bad).unwrap());
    assert!(
        ix.early.contains(&k),
        "mallory's signature was checked early"
    );
    assert!(
        early.problems.iter().any(|p| p.path.starts_with(&bad)),
        "{:#?}",
        early.problems
    );
    let plain = crate::trust::Index::build(&w.tree, &tl).unwrap();
    assert!(plain.0.early.is_empty());
    let (late, _) = crate::trust::verify_index(plain, &tl, &VerifyOptions::default());
    assert_eq!(early.problems, late.problems);
    assert_eq!(early.warnings, late.warnings);
    assert_eq!(early.signatures_checked, late.signatures_checked);
}

/// Hostile input: many versions of one user record, each naming its own key (anyone can push
/// such a submission). A signature's early check looks its signer's keys up by handle and key
/// id and tries at most [`EARLY_KEYS_PER_ID`](crate::trust::build::EARLY_KEYS_PER_ID) of them, so
/// thousands of keys under one handle, or under one key id, cost a lookup each rather than a
/// scan of the others (4,000 versions once took 10 times the whole read). The time itself is
/// the registry_scale bench's to measure; this checks the bound that keeps it linear.
#[test]
fn many_user_versions_keep_early_key_lookups_bounded() {
    let mut w = World::new(&["admin"]);
    w.root(1, &["admin"], 1, &["admin"]);
    let n: u32 = 4000;
    let mut named = Vec::new();
    for v in 1..=n {
        let mut raw = [0u8; 42];
        raw[..2].copy_from_slice(b"Ed");
        // Half the versions share one key id, each with its own key; half have their own id.
        let id = if v % 2 == 0 { 0 } else { v };
        raw[2..6].copy_from_slice(&id.to_le_bytes());
        // y = v + 1: never 1 or 0, whose points are of small order (refused as keys).
        raw[10..14].copy_from_slice(&(v + 1).to_le_bytes());
        let key = minisign::PublicKey::from_bytes(&raw).unwrap().to_base64();
        named.push(key.clone());
        let u = w.user_record("mallory", v, key, w.signers["admin"].public.age.clone());
        w.add(&build::user("mallory", v), model::to_bytes(&u));
    }
    let keys = crate::trust::build::gather_keys(named.iter().map(|k| ("mallory", k.as_str())));
    let by_id = &keys["mallory"];
    assert_eq!(by_id.len(), n as usize / 2 + 1, "one entry per key id");
    assert!(
        by_id
            .values()
            .all(|l| l.len() <= crate::trust::build::EARLY_KEYS_PER_ID),
        "a key id keeps at most {} keys",
        crate::trust::build::EARLY_KEYS_PER_ID
    );
    assert_eq!(
        by_id[&[0u8; 8]].len(),
        crate::trust::build::EARLY_KEYS_PER_ID
    );
    // The whole build still reads and parses every version, with and without early checks.
    let tl = Timeline::flat();
    let (plain, problems) = crate::trust::Index::build(&w.tree, &tl).unwrap();
    assert!(
        problems.is_empty(),
        "every version parses: {:?}",
        problems.first()
    );
    let (early, early_problems) = crate::trust::Index::build_checking(&w.tree, &tl, None).unwrap();
    assert_eq!(early_problems, problems);
    assert_eq!(early.users["mallory"].len(), plain.users["mallory"].len());
}

/// A user record naming a key of small order is refused whoever approved it: minisign accepts
/// signatures under such a key that anyone can make (src/trust/fastsig_tests.rs forges some).
#[test]
fn a_key_of_small_order_is_refused() {
    use curve25519_dalek::constants::EIGHT_TORSION;
    for t in EIGHT_TORSION {
        let mut raw = [0u8; 42];
        raw[..2].copy_from_slice(b"Ed");
        raw[2..10].copy_from_slice(b"weakkey!");
        raw[10..].copy_from_slice(t.compress().as_bytes());
        let key = minisign::PublicKey::from_bytes(&raw).unwrap().to_base64();
        let why = model::check_minisign_key(&key).unwrap_err();
        assert!(why.contains("small order"), "{why}");
    }
    let mut w = World::new(&["admin", "mallory"]);
    w.root(1, &["admin"], 1, &["admin"]);
    let real = w.signers["mallory"].public.clone();
    assert_eq!(model::check_minisign_key(&real.minisign), Ok(()));
    let mut raw = [0u8; 42];
    raw[..2].copy_from_slice(b"Ed");
    raw[10..].copy_from_slice(EIGHT_TORSION[4].compress().as_bytes());
    let weak = minisign::PublicKey::from_bytes(&raw).unwrap().to_base64();
    let u = w.user_record("mallory", 1, weak, real.age);
    let path = build::user("mallory", 1);
    w.record(&path, &u, &["admin"]);
    let report = w.verify();
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.path == path && p.message.contains("small order")),
        "{:#?}",
        report.problems
    );
}
