//! The rule pass of a grown main, over only the records its new files reach, gives the report
//! of the whole pass on random growth: new records good and forged, signatures and decisions
//! added to old records, files added to old cube folders, damaged signatures, admissions,
//! grants and revocations. And the records it checks are exactly those whose horizon reaches
//! the new commits.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::model::{self, DecisionKind, GrantAction, Sha256, build};
use crate::trust::view::{Reach, View, horizon, unit_of};
use crate::trust::{Accepted, Index, Lazy, Report, VerifyOptions, verify_lazily};

use super::carry::{check, same};
use super::onto::{added_to, onto_with};
use super::{Mem, World, cube_by};

const HANDLES: [&str; 5] = ["admin", "alice", "bob", "carol", "mallory"];

/// Adds a decision of `kind` on `subject` by `by`, unless that file exists.
fn decide(w: &mut World, subject: &str, kind: DecisionKind, by: &str) {
    if !w
        .tree
        .files
        .contains_key(&build::decision(subject, kind, by))
    {
        super::onto::decide(w, subject, kind, by);
    }
}

/// The files of `w` that are no records a signature may name: blobs and cube configurations.
fn non_records(w: &World) -> Vec<String> {
    w.tree
        .files
        .keys()
        .filter(|p| p.starts_with("blobs/") || p.ends_with("mlcube.yaml"))
        .cloned()
        .collect()
}

/// A cube `name` by `owner` whose additional files are `additional`.
fn cube_naming(w: &mut World, name: &str, owner: &str, additional: model::Asset) {
    cube_by(w, name, owner);
    let path = build::mlcube(name, 1);
    let mut cube: model::Mlcube =
        toml::from_str(std::str::from_utf8(&w.tree.files[&path].0).unwrap()).unwrap();
    cube.additional_files = Some(additional);
    w.tree.files.remove(&build::signature(&path, owner));
    w.record(&path, &cube, &[owner]);
}

/// A signature by `by` on `path`, a file that is no record (which nobody signs).
fn sign_file(w: &mut World, path: &str, by: &str) {
    let sig_path = build::signature(path, by);
    if w.tree.files.contains_key(&sig_path) {
        return;
    }
    let bytes = w.tree.files[path].0.clone();
    let reg = w.id.clone().unwrap();
    let sig = crate::trust::sign::sign(&w.signers[by], &reg, path, "file", &bytes).unwrap();
    w.add(&sig_path, sig);
}

/// One random addition to `w` (new paths only: a registry's main only grows).
fn grow(w: &mut World, rng: &mut StdRng, cubes: &mut u32) {
    let records: Vec<String> = w
        .tree
        .files
        .keys()
        .filter(|p| model::classify(p).is_ok_and(|rp| rp.kind().is_some()))
        .cloned()
        .collect();
    let users: Vec<String> = records
        .iter()
        .filter(|p| {
            p.starts_with("users/") && !p.contains(".approval.") && !p.contains(".rejection.")
        })
        .cloned()
        .collect();
    let blobs: Vec<String> = w
        .tree
        .files
        .keys()
        .filter(|p| matches!(model::classify(p), Ok(model::RecordPath::Blob { .. })))
        .cloned()
        .collect();
    let who = *HANDLES.choose(rng).unwrap();
    // Additions that keep a main clean come more often, so that mains grow long.
    let op = *[
        0, 0, 0, 1, 2, 3, 3, 4, 5, 6, 7, 7, 8, 8, 8, 9, 10, 10, 10, 11, 12,
    ]
    .choose(rng)
    .unwrap();
    match op {
        11 => {
            // A damaged signature on a file that is no record.
            if let Some(p) = non_records(w).choose(rng) {
                let sig = build::signature(p, who);
                if !w.tree.files.contains_key(&sig) {
                    w.add(&sig, b"untrusted comment: x\nRWQ=\n".to_vec());
                }
            }
        }
        12 => {
            // A signature of a record that is not there.
            *cubes += 1;
            let ghost = cube_by(w, &format!("c{cubes}"), who);
            w.tree.files.remove(&ghost);
        }
        8 => {
            // A cube with its blob, or naming one already there, or one that is not.
            *cubes += 1;
            let bytes = format!("files {cubes}").into_bytes();
            let sha = match (rng.gen_range(0..3), blobs.choose(rng)) {
                (0, Some(old)) => old.rsplit('/').next().unwrap().parse().unwrap(),
                (1, _) => Sha256::of(b"never stored"),
                _ => {
                    let sha = Sha256::of(&bytes);
                    w.add(&build::blob(sha.as_str()), bytes);
                    sha
                }
            };
            cube_naming(w, &format!("c{cubes}"), "bob", model::Asset::in_blob(sha));
        }
        9 => {
            // A blob no record names.
            *cubes += 1;
            let bytes = format!("orphan {cubes}").into_bytes();
            w.add(&build::blob(Sha256::of(&bytes).as_str()), bytes);
        }
        10 => {
            // A signature on a file that is no record: a blob or a cube's configuration, by
            // someone admitted.
            if let Some(p) = non_records(w).choose(rng).cloned() {
                sign_file(w, &p, ["admin", "alice", "bob"].choose(rng).unwrap());
            }
        }
        0 => {
            *cubes += 1;
            let owner = if rng.gen_bool(0.8) { "alice" } else { who };
            cube_by(w, &format!("c{cubes}"), owner);
        }
        1 => {
            let p = records.choose(rng).unwrap();
            if !w.tree.files.contains_key(&build::signature(p, who)) {
                w.sign(p, who);
            }
        }
        2 => {
            let kind = *[DecisionKind::Approval, DecisionKind::Rejection]
                .choose(rng)
                .unwrap();
            decide(w, users.choose(rng).unwrap(), kind, who);
        }
        3 => {
            let h = *["carol", "mallory"].choose(rng).unwrap();
            if !w.tree.files.contains_key(&build::user(h, 1)) {
                let approver = *["admin", "bob"].choose(rng).unwrap();
                w.user(h, approver);
            }
        }
        4 => {
            let h = *["alice", "bob", "carol"].choose(rng).unwrap();
            if w.tree.files.contains_key(&build::user(h, 1)) {
                let n = (1..).find(|n| !w.tree.files.contains_key(&build::grant(h, *n)));
                let action = *[GrantAction::GrantRole, GrantAction::RevokeKey]
                    .choose(rng)
                    .unwrap();
                let by = *["admin", "bob"].choose(rng).unwrap();
                w.grant(n.unwrap(), h, action, "admin", &[by]);
            }
        }
        5 => {
            let old: Vec<&String> = records
                .iter()
                .filter(|p| p.starts_with("mlcubes/") && p.ends_with("cube.toml"))
                .collect();
            if let Some(cube) = old.choose(rng) {
                let file = *[
                    model::CubeFile::ParametersYaml,
                    model::CubeFile::ContainerConfigYaml,
                ]
                .choose(rng)
                .unwrap();
                let folder = cube.trim_end_matches("cube.toml");
                let p = format!("{folder}{}", file.file_name());
                if !w.tree.files.contains_key(&p) {
                    w.add(&p, b"y".to_vec());
                }
            }
        }
        6 => {
            let p = records.choose(rng).unwrap();
            let sig = build::signature(p, who);
            if !w.tree.files.contains_key(&sig) {
                w.add(&sig, b"untrusted comment: x\nRWQ=\n".to_vec());
            }
        }
        _ => {
            // A later approval of a record already merged counts for nothing, and changes no
            // verdict: a record the new files reach without any other effect.
            let p = users.choose(rng).unwrap();
            decide(w, p, DecisionKind::Approval, "admin");
        }
    }
}

/// The files of `w` in the parts `units` of its tree (see [`unit_of`]).
fn parts(w: &World, units: &[String]) -> Mem {
    let within = |p: &str| {
        units
            .iter()
            .any(|u| unit_of(p) == u || (u.ends_with('/') && p.starts_with(u.as_str())))
    };
    Mem {
        files: w
            .tree
            .files
            .iter()
            .filter(|(p, _)| within(p))
            .map(|(p, f)| (p.clone(), f.clone()))
            .collect(),
        commit: w.tree.commit,
    }
}

/// `w` verified from the files it adds to `base` (a clean main) and only the parts of `base`
/// its checks read, loaded from `w`'s tree as they miss; `None` when it needs the whole index.
/// Also returns how many parts it loaded.
fn lazily(base: &Index, w: &World) -> Option<(Report, usize)> {
    let tl = w.timeline();
    let added = added_to(base, w);
    let (mut ix, problems) = Index::build_checking(&added, &tl, None).unwrap();
    ix.fresh = Some(ix.files.keys().cloned().collect());
    ix.carried = base.files.len();
    ix.lazy = Some(Lazy {
        counts: (
            base.files.len() + ix.files.len(),
            base.records.len() + ix.records.len(),
        ),
        ..Lazy::default()
    });
    // Every new path, whether or not it classifies (as the tree's diff names them).
    let new: Vec<&String> = added.files.keys().collect();
    let mut loaded = 0;
    let mut load = |units: &[String]| {
        loaded += units.len();
        let (more, problems) = Index::build_checking(&parts(w, units), &tl, None)?;
        // What the new files showed is reported already; the rest was clean.
        Ok(problems
            .iter()
            .all(|p| new.contains(&&p.path))
            .then_some(more))
    };
    let commits = base.files.values().map(|f| f.intro + 1).max().unwrap();
    let opts = VerifyOptions::default();
    let got = verify_lazily((ix, problems), &tl, &opts, Accepted { commits }, &mut load);
    let (report, ix) = got.unwrap()?;
    assert!(ix.files.len() <= w.tree.files.len());
    Some((report, loaded))
}

/// A clean main to grow: an admin, alice and bob admitted, a cube each.
fn start() -> (World, Index) {
    let mut w = World::new(&HANDLES);
    w.root(1, &["admin"], 1, &["admin"]);
    w.next_commit();
    w.user("alice", "admin");
    w.user("bob", "admin");
    w.next_commit();
    cube_by(&mut w, "a", "alice");
    cube_by(&mut w, "b", "bob");
    let (report, ix) = check(&w, Vec::new());
    assert!(report.is_clean(), "{:#?}", report.problems);
    (w, ix)
}

#[test]
fn checking_what_the_new_files_reach_gives_the_whole_report() {
    let (mut skipped, mut fell_back, mut refused) = (0, 0, 0);
    let (mut partial, mut whole_needed) = (0, 0);
    for seed in 0..6 {
        let mut rng = StdRng::seed_from_u64(seed);
        let (mut w, mut base) = start();
        let mut cubes = 0;
        for _ in 0..40 {
            let before = w.tree.clone();
            w.next_commit();
            for _ in 0..rng.gen_range(1..=3) {
                grow(&mut w, &mut rng, &mut cubes);
            }
            let whole = check(&w, Vec::new());
            let grown = onto_with(&base, &w, true).expect("no case collisions here");
            same(&whole, &grown);
            match lazily(&base, &w) {
                Some((r, _)) => {
                    assert_eq!(r.problems, whole.0.problems);
                    assert_eq!(r.warnings, whole.0.warnings);
                    assert_eq!((r.files, r.records), (whole.0.files, whole.0.records));
                    assert_eq!(r.records_checked, grown.0.records_checked);
                    partial += 1;
                }
                None => whole_needed += 1,
            }

            let at = base.files.values().map(|f| f.intro + 1).max().unwrap();
            let ix = &grown.1;
            let reach = Reach::of(ix, ix.fresh.as_ref().unwrap());
            let reached: std::collections::BTreeSet<&String> = reach.records(ix).collect();
            for p in ix.records.keys() {
                assert_eq!(reached.contains(p), horizon(ix, p) >= at, "{p}");
            }
            if grown.0.records_checked < whole.0.records_checked {
                skipped += 1;
            } else {
                fell_back += 1;
            }
            if whole.0.is_clean() && whole.0.warnings.is_empty() {
                base = whole.1;
            } else {
                refused += 1;
                w.tree = before;
            }
        }
    }
    eprintln!(
        "STATS partial {partial} whole {whole_needed} skipped {skipped} fell_back {fell_back}"
    );
    assert!(partial > 20, "{partial}");
    // Both ways were taken, and forged growth was met.
    assert!(skipped > 20, "{skipped}");
    assert!(fell_back > 0, "{fell_back}");
    assert!(refused > 10, "{refused}");
}

/// A view at a commit shows nothing that arrived after it, through every lookup the checks
/// read by: what a record's check sees is what stood at its horizon.
#[test]
fn a_view_shows_only_what_arrived_by_its_horizon() {
    let (mut w, _) = start();
    let early = w.tree.commit;
    w.next_commit();
    let a1 = build::mlcube("a", 1);
    // A second version of cube a, bob's signature on a v1, and a later rejection of alice.
    let mut c2: model::Mlcube =
        toml::from_str(std::str::from_utf8(&w.tree.files[&a1].0).unwrap()).unwrap();
    c2.version = 2;
    let yaml = build::mlcube_file("a", 2, model::CubeFile::MlcubeYaml);
    w.add(&yaml, b"x".to_vec());
    w.record(&build::mlcube("a", 2), &c2, &["alice"]);
    w.sign(&a1, "bob");
    decide(
        &mut w,
        &build::user("alice", 1),
        DecisionKind::Rejection,
        "admin",
    );
    w.user("carol", "admin");
    let (_, ix) = check(&w, Vec::new());
    let a2 = build::mlcube("a", 2);

    let then = View::at(&ix, early);
    let now = View::at(&ix, w.tree.commit);
    for (view, seen) in [(then, false), (now, true)] {
        assert_eq!(view.record(&a2).is_some(), seen);
        assert_eq!(view.sha(&a2).is_some(), seen);
        assert_eq!(view.files.contains_key(&a2), seen);
        assert_eq!(view.intro(&a2) == usize::MAX, !seen);
        assert_eq!(view.cubes.get("a").unwrap().contains_key(&2), seen);
        assert_eq!(
            view.cubes.get("a").unwrap().values().count(),
            1 + seen as usize
        );
        assert_eq!(view.cube("a", 2).is_some(), seen);
        assert_eq!(view.users.get("carol").is_some(), seen);
        let signers: Vec<&str> = view
            .signatures
            .get(&a1)
            .unwrap()
            .map(|(s, _)| s.as_str())
            .collect();
        assert_eq!(signers.contains(&"bob"), seen, "{signers:?}");
        let alice = build::user("alice", 1);
        assert_eq!(
            view.decisions_on(&alice, DecisionKind::Rejection)
                .is_empty(),
            !seen
        );
        assert!(view.record(&a1).is_some() && view.users.get("alice").is_some());
    }
    // The horizon of a1 is where bob's signature arrived; alice's user record reaches the
    // rejection, and carol's record is as late as its approval.
    assert_eq!(horizon(&ix, &a1), w.tree.commit);
    assert_eq!(horizon(&ix, &build::user("alice", 1)), w.tree.commit);
    assert_eq!(horizon(&ix, &build::user("bob", 1)), 1);
}

/// Each read names the part of the registry the file or id it reads lives in, so an index that
/// holds only some parts knows what it misses: checked against where the format puts each kind.
#[test]
fn every_read_names_the_folder_its_files_live_in() {
    let ix = Index {
        lazy: Some(Lazy::default()),
        ..Index::default()
    };
    let view = View::at(&ix, usize::MAX);
    let missed = |read: &dyn Fn(&View) -> bool| -> Vec<String> {
        read(&view);
        ix.lazy.as_ref().unwrap().take_misses()
    };
    let key = model::AssocKey::Model("m".into());
    let id = "ab".repeat(32);
    type Read<'r> = Box<dyn Fn(&View) -> bool + 'r>;
    let cases: Vec<(Read, String)> = vec![
        (
            Box::new(|v| v.users.get("h").is_some()),
            build::user("h", 2),
        ),
        (
            Box::new(|v| v.grants.get("h").is_some()),
            build::grant("h", 2),
        ),
        (
            Box::new(|v| v.cubes.get("c").is_some()),
            build::mlcube("c", 2),
        ),
        (
            Box::new(|v| v.access.get(&("c".into(), 1, id.clone())).is_some()),
            build::access("c", 1, &id, 1),
        ),
        (
            Box::new(|v| v.benchmarks.get("b").is_some()),
            build::benchmark("b", 2),
        ),
        (
            Box::new(|v| v.datasets.get(id.as_str()).is_some()),
            build::dataset(&id, 1),
        ),
        (
            Box::new(|v| v.leaderboards.get("b").is_some()),
            build::leaderboard("b", 1),
        ),
        (
            Box::new(|v| v.associations.get(&("b".into(), key.clone())).is_some()),
            build::association("b", &key, 1),
        ),
        (
            Box::new(|v| v.priorities.get(&("b".into(), "m".into())).is_some()),
            build::priority("b", "m", 1),
        ),
        (
            Box::new(|v| {
                v.results
                    .get(&("b".into(), id.clone(), "m".into()))
                    .is_some()
            }),
            build::result("b", &id, "m", 1),
        ),
        (
            Box::new(|v| v.results.of_first("b").count() > 0),
            build::result("b", &id, "m", 1),
        ),
        (Box::new(|v| v.roots.values().count() > 0), build::root(2)),
        (Box::new(|v| v.metas.get(&1).is_some()), build::meta(1)),
    ];
    for (read, path) in &cases {
        assert_eq!(
            missed(read.as_ref()),
            vec![unit_of(path).to_string()],
            "{path}"
        );
    }
    // Files attached to a record sit in its part; blobs are parts of their own.
    let user = build::user("h", 1);
    for p in [
        build::signature(&user, "admin"),
        build::decision(&user, DecisionKind::Approval, "admin"),
        build::sealed(&build::dataset(&id, 1), "statistics"),
    ] {
        let owner = model::classify(&p)
            .ok()
            .and_then(|rp| crate::trust::view::owner(&rp));
        assert_eq!(unit_of(&p), unit_of(&owner.unwrap()), "{p}");
    }
    let blob = build::blob(&id);
    assert_eq!(unit_of(&blob), blob);
    assert_eq!(
        missed(&|v| v.files.get(&blob).is_some()),
        vec![blob.clone()]
    );
    assert_eq!(unit_of("README.md"), "");
    assert_eq!(unit_of("hooks/pre-receive"), "hooks/");
    assert_eq!(unit_of(".github/workflows/ci.yml"), ".github/workflows/");
    // A folder loaded covers what is under it.
    let lazy = Lazy {
        loaded: ["grants/".to_string()].into(),
        ..Lazy::default()
    };
    assert!(lazy.covers("grants/h/") && !lazy.covers("users/h/") && !lazy.covers(""));
}

/// Each record kind is checked by exactly one stage, and that stage selects every record of
/// the kind: a grown pass picks a record's stage by its kind, a whole pass by the selection.
#[test]
fn each_record_kind_has_one_stage_that_selects_its_records() {
    use crate::trust::policy::{STAGES, stage_of};
    let id = "ab".repeat(32);
    let key = model::AssocKey::Model("m".into());
    let user = build::user("h", 1);
    for path in [
        build::root(1),
        build::meta(1),
        user.clone(),
        build::grant("h", 1),
        build::mlcube("c", 1),
        build::access("c", 1, &id, 1),
        build::benchmark("b", 1),
        build::association("b", &key, 1),
        build::priority("b", "m", 1),
        build::dataset(&id, 1),
        build::result("b", &id, "m", 1),
        build::leaderboard("b", 1),
        build::decision(&user, DecisionKind::Approval, "admin"),
    ] {
        let rp = model::classify(&path).unwrap();
        assert!(rp.kind().is_some(), "{path}");
        let stages = STAGES.iter().filter(|s| (s.member)(&rp)).count();
        assert_eq!(stages, 1, "{path}");
    }
    let mut rng = StdRng::seed_from_u64(7);
    let (mut w, _) = start();
    let mut cubes = 0;
    for _ in 0..30 {
        grow(&mut w, &mut rng, &mut cubes);
    }
    let (_, ix) = check(&w, Vec::new());
    let selected: Vec<Vec<String>> = STAGES.iter().map(|s| (s.select)(&ix)).collect();
    for p in ix.records.keys() {
        let stage = stage_of(&ix.files[p].rp).unwrap_or_else(|| panic!("{p} has no stage"));
        assert!(selected[stage].contains(p), "{p}");
    }
}
