//! Registry scale against docs/design.md's targets: verify at 10,000 entities / 100,000 signed files
//! within 1.5x of bare minisign verification of the same bytes, listing and viewing under 100 ms,
//! and a submission commit whose cost does not grow with the registry.
//!
//! `cargo bench --bench registry_scale [-- ENTITIES...]` (default: 1000 10000). For each size it
//! creates a registry with the real binary (`key generate`, `registry init`), then adds signed
//! records straight to git's object database, as merges would: a fifth of the entities are users
//! (record, admin approval, two signatures), the rest model cubes of three versions each
//! (cube.toml, its signature, mlcube.yaml, parameters.yaml), one commit per ten entities. It
//! prints a table; nothing here is asserted except that the generated registry verifies clean.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use rayon::prelude::*;

use cohort::model::{self, CubeFile, DecisionKind, FORMAT_VERSION, Sha256, build};
use cohort::registry::Registry;
use cohort::registry::{NewFile, VERIFIED_REF, commit_files, set_branch, set_ref};
use cohort::storage::Home;
use cohort::trust::{Signer, VerifyOptions, keys, sign};

const BIN: &str = env!("CARGO_BIN_EXE_cohort");
const AT: &str = "2026-11-01T00:00:00Z";
const CUBE_VERSIONS: u32 = 3;
const ENTITIES_PER_COMMIT: usize = 10;

fn cohort(home: &Path, dir: &Path, args: &[&str]) -> (Duration, String) {
    let t = Instant::now();
    let out = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env("COHORT_HOME", home)
        .env("GIT_AUTHOR_NAME", "bench")
        .env("GIT_AUTHOR_EMAIL", "bench@example.org")
        .env("GIT_COMMITTER_NAME", "bench")
        .env("GIT_COMMITTER_EMAIL", "bench@example.org")
        .output()
        .expect("the cohort binary runs");
    let took = t.elapsed();
    assert!(
        out.status.success(),
        "cohort {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (took, String::from_utf8_lossy(&out.stdout).into_owned())
}

fn unlock(home: &Home, handle: &str) -> Signer {
    keys::unlock(home, handle, &mut || {
        unreachable!("keys have no passphrase")
    })
    .unwrap()
}

fn signed(s: &Signer, id: &Sha256, path: &str, kind: &str, bytes: Vec<u8>) -> [NewFile; 2] {
    let sig = sign::sign(s, id, path, kind, &bytes).unwrap();
    [
        NewFile::new(build::signature(path, &s.handle), sig),
        NewFile::new(path, bytes),
    ]
}

fn user_files(id: &Sha256, admin: &Signer, u: &Signer) -> Vec<NewFile> {
    let h = &u.handle;
    let rec = model::User {
        format: FORMAT_VERSION,
        kind: "user".into(),
        handle: h.clone(),
        version: 1,
        name: format!("User {h}"),
        email: format!("{h}@hospital.example.org"),
        minisign: u.public.minisign.clone(),
        age: u.public.age.clone(),
        created: AT.into(),
        previous: None,
    };
    let path = build::user(h, 1);
    let bytes = model::to_bytes(&rec);
    let approval = model::Decision {
        format: FORMAT_VERSION,
        kind: "approval".into(),
        subject: path.clone(),
        subject_sha256: Sha256::of(&bytes),
        by: admin.handle.clone(),
        at: AT.into(),
        reason: None,
    };
    let dpath = build::decision(&path, DecisionKind::Approval, &admin.handle);
    let mut files = signed(u, id, &path, "user", bytes).to_vec();
    files.extend(signed(
        admin,
        id,
        &dpath,
        "approval",
        model::to_bytes(&approval),
    ));
    files
}

fn cube_files(id: &Sha256, owner: &Signer, name: &str) -> Vec<NewFile> {
    let mut files = Vec::new();
    for version in 1..=CUBE_VERSIONS {
        let yaml = format!(
            "name: {name}\ndescription: model {name} v{version}\nplatform:\n  accelerator_count: 0\n\
             docker:\n  image: cohort-bench/{name}:v{version}\ntasks:\n  infer:\n    parameters:\n\
             \x20     inputs:\n        data_path: data/\n        parameters_file: parameters.yaml\n\
             \x20     outputs:\n        output_path: {{type: directory, default: predictions}}\n"
        );
        let params = format!("threshold: 0.{version}\nseed: {}\n", name.len());
        let rec = model::Mlcube {
            format: FORMAT_VERSION,
            kind: "mlcube".into(),
            name: name.into(),
            version,
            owner: owner.handle.clone(),
            created: AT.into(),
            description: Some(format!("risk model {name}")),
            mlcube_yaml: Some(Sha256::of(yaml.as_bytes())),
            container_config_yaml: None,
            parameters_yaml: Some(Sha256::of(params.as_bytes())),
            additional_files: None,
            image: model::Image {
                id: format!(
                    "sha256:{}",
                    Sha256::of(format!("{name}{version}").as_bytes())
                ),
                source: model::ImageSource::Local,
                reference: None,
                tarball: None,
                private: None,
            },
        };
        let path = build::mlcube(name, version);
        files.extend(signed(owner, id, &path, "mlcube", model::to_bytes(&rec)));
        files.push(NewFile::new(
            build::mlcube_file(name, version, CubeFile::MlcubeYaml),
            yaml,
        ));
        files.push(NewFile::new(
            build::mlcube_file(name, version, CubeFile::ParametersYaml),
            params,
        ));
    }
    files
}

struct Built {
    _dir: Option<tempfile::TempDir>,
    home: PathBuf,
    reg: PathBuf,
    files: usize,
    commits: usize,
    generate: Duration,
}

/// Rewrites a carry's `head` to name another main (its digest made again), so that the
/// verification takes the carried files one by one against the tree.
fn other_main(head: &Path) {
    let text = std::fs::read_to_string(head).unwrap();
    let (first, rest) = text.split_once('\n').unwrap();
    let (main, segments) = rest.split_once('\n').unwrap();
    let files = main.split_once(' ').unwrap().1;
    let rest = format!("{} {files}\n{segments}", "0".repeat(40));
    let mut fields: Vec<&str> = first.split(' ').collect();
    let digest = Sha256::of(rest.as_bytes()).to_string();
    *fields.last_mut().unwrap() = &digest;
    std::fs::write(head, format!("{}\n{rest}", fields.join(" "))).unwrap();
}

/// A registry built earlier under `COHORT_BENCH_FIXTURES/<entities>` (read here: this is a
/// tool), or a new one, kept there when that variable is set: 10,000 entities take minutes to
/// generate, and measuring them again should not.
fn fixture(entities: usize) -> Built {
    let Some(root) = std::env::var_os("COHORT_BENCH_FIXTURES") else {
        return build_registry(entities, None);
    };
    let at = PathBuf::from(root).join(entities.to_string());
    let ready = at.join("ready");
    if let Ok(text) = std::fs::read_to_string(&ready) {
        let mut n = text.split_whitespace().map(|w| w.parse::<usize>().unwrap());
        eprintln!("  reusing {}", at.display());
        return Built {
            _dir: None,
            home: at.join("home"),
            reg: at.join("registry"),
            files: n.next().unwrap(),
            commits: n.next().unwrap(),
            generate: Duration::ZERO,
        };
    }
    let _ = std::fs::remove_dir_all(&at);
    std::fs::create_dir_all(&at).unwrap();
    let b = build_registry(entities, Some(&at));
    std::fs::write(&ready, format!("{} {}", b.files, b.commits)).unwrap();
    b
}

fn build_registry(entities: usize, keep_at: Option<&Path>) -> Built {
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let dir = keep_at.unwrap_or(tmp.path());
    let home = dir.join("home");
    let reg = dir.join("registry");
    cohort(
        &home,
        dir,
        &["key", "generate", "--handle", "admin", "--no-passphrase"],
    );
    cohort(
        &home,
        dir,
        &[
            "registry",
            "init",
            reg.to_str().unwrap(),
            "--name",
            "scale",
            "--admin",
            "admin",
        ],
    );
    let h = Home::new(&home);
    let admin = unlock(&h, "admin");
    let users = (entities / 5).max(1);
    // Keys live in a separate home so `user ls` and friends see only the admin as local.
    let key_home = Home::new(dir.join("user-keys"));
    let signers: Vec<Signer> = (0..users)
        .into_par_iter()
        .map(|i| {
            let handle = format!("user{i:05}");
            keys::generate(&key_home, &handle, None, std::time::SystemTime::now()).unwrap();
            unlock(&key_home, &handle)
        })
        .collect();
    let registry = Registry::open(&reg).unwrap();
    let repo = registry.repo();
    let id = registry.registry_id(registry.main().unwrap()).unwrap();
    // Entities in submission order: users first (they own the cubes), then cubes.
    let batches: Vec<Vec<NewFile>> = (0..entities)
        .collect::<Vec<_>>()
        .par_chunks(ENTITIES_PER_COMMIT)
        .map(|chunk| {
            chunk
                .iter()
                .flat_map(|&e| {
                    if e < users {
                        user_files(&id, &admin, &signers[e])
                    } else {
                        let owner = &signers[e % users];
                        cube_files(&id, owner, &format!("cube{e:06}"))
                    }
                })
                .collect()
        })
        .collect();
    let mut main = registry.main().unwrap();
    let mut files = 0;
    for (i, batch) in batches.iter().enumerate() {
        files += batch.len();
        main = commit_files(repo, main, batch, &format!("Merge batch {i}"), "bench").unwrap();
    }
    repo.reference("refs/heads/main", main, true, "bench: generated")
        .unwrap();
    // A clone receives packed objects; pack the generated loose ones the same way.
    for args in [
        &["checkout", "-q", "-f", "main"][..],
        &["repack", "-a", "-d", "-q"],
    ] {
        let status = Command::new("git")
            .args(args)
            .current_dir(&reg)
            .status()
            .unwrap();
        assert!(status.success(), "git {args:?}");
    }
    // COHORT_BENCH_KEEP=1 keeps the registry for profiling (read here: this is a tool).
    let dir = if keep_at.is_some() {
        None
    } else if std::env::var_os("COHORT_BENCH_KEEP").is_some() {
        eprintln!("  keeping {}", tmp.path().display());
        let _ = tmp.keep();
        None
    } else {
        Some(tmp)
    };
    Built {
        _dir: dir,
        home,
        reg,
        files,
        commits: batches.len(),
        generate: started.elapsed(),
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

fn best_of<T>(n: usize, mut f: impl FnMut() -> (Duration, T)) -> (Duration, T) {
    let mut best = f();
    for _ in 1..n {
        let r = f();
        if r.0 < best.0 {
            best = r;
        }
    }
    best
}

/// A table row of the ratio of two measured times.
fn ratio(label: &str, a: Duration, b: Duration) {
    println!("| {label} | {:.2}x |", a.as_secs_f64() / b.as_secs_f64());
}

/// A table row of a measured time.
fn row(label: &str, d: Duration) {
    println!("| {label} | {} |", ms(d));
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn measure(entities: usize) {
    eprintln!("building a registry of {entities} entities...");
    let b = fixture(entities);
    let reg = Registry::open(&b.reg).unwrap();
    let main = reg.main().unwrap();
    eprintln!(
        "  {} files in {} commits, generated in {:.1} s",
        b.files,
        b.commits,
        b.generate.as_secs_f64()
    );

    // Full verification in the library, every signature checked.
    let (verify_time, (report, _, _)) = best_of(3, || {
        let t = Instant::now();
        let r = reg.verify(main, &VerifyOptions::default()).unwrap();
        (t.elapsed(), r)
    });
    assert!(
        report.is_clean(),
        "the generated registry does not verify: {:#?}",
        &report.problems[..report.problems.len().min(5)]
    );

    // The floor: minisign over the same signature files and bytes, already in memory, both cores.
    let tree = reg.tree(main).unwrap();
    let mut triples = Vec::new();
    let user_keys: std::collections::HashMap<String, minisign::PublicKey> = {
        let ix = reg.index_at(main).unwrap().0;
        let mut m = std::collections::HashMap::new();
        for (_, r) in ix.records_in(&ix.users) {
            if let model::Record::User(u) = r {
                m.insert(
                    u.handle.clone(),
                    minisign::PublicKey::from_base64(&u.minisign).unwrap(),
                );
            }
        }
        if let Some(model::Record::Root(root)) = ix.record(&build::root(1)) {
            for a in &root.admins {
                m.insert(
                    a.handle.clone(),
                    minisign::PublicKey::from_base64(&a.minisign).unwrap(),
                );
            }
        }
        m
    };
    for p in tree.paths() {
        if let Ok(model::RecordPath::Signature { signed, signer, .. }) = model::classify(p) {
            triples.push((
                user_keys[&signer].clone(),
                tree.read_path(p).unwrap(),
                tree.read_path(&signed).unwrap(),
            ));
        }
    }
    // minisign's own parse and verify: the reference.
    let (floor, checked) = best_of(3, || {
        let t = Instant::now();
        let ok = triples
            .par_iter()
            .filter(|(pk, sig, bytes)| {
                let text = std::str::from_utf8(sig).unwrap();
                let sig = minisign::SignatureBox::from_string(text).unwrap();
                minisign::verify(pk, &sig, std::io::Cursor::new(bytes), true, false, false).is_ok()
            })
            .count();
        (t.elapsed(), ok)
    });
    assert_eq!(checked, triples.len());
    // cohort's own check of one signature file (shape, trusted comment, the same verdict as
    // minisign's computed with curve25519-dalek): the floor of cohort's verification.
    let (own_floor, checked) = best_of(3, || {
        let t = Instant::now();
        let ok = triples
            .par_iter()
            .filter(|(pk, sig, bytes)| sign::verify(pk, sig, bytes).is_ok())
            .count();
        (t.elapsed(), ok)
    });
    assert_eq!(checked, triples.len());

    // Listing and viewing through the binary, after one `cohort verify` recorded the state.
    let dir = b.reg.as_path();
    let (cli_verify, _) = cohort(&b.home, dir, &["verify"]);
    // Every run checks everything; the memo of earlier signature checks saves their
    // cryptography only, and `--full` runs without it.
    let (cli_verify_memo, _) = best_of(3, || cohort(&b.home, dir, &["verify"]));
    let (cli_verify_full, _) = cohort(&b.home, dir, &["verify", "--full"]);
    let empty_home = tempfile::tempdir().unwrap();
    let (cli_verify_empty, _) = cohort(empty_home.path(), dir, &["verify", "--full"]);
    // main moved under cohort's feet (the generator wrote it); `registry sync` would now move
    // the verified ref that reads come from. There is no remote here, so move it as sync does.
    set_ref(reg.repo(), VERIFIED_REF, main, "bench: verified").unwrap();
    let (user_ls, out) = best_of(3, || cohort(&b.home, dir, &["user", "ls"]));
    assert!(out.contains("user00000"), "{out}");
    let (cube_ls, out) = best_of(3, || cohort(&b.home, dir, &["mlcube", "ls", "--json"]));
    assert!(out.contains("cube"));
    let last = format!("cube{:06}", entities - 1);
    let (cube_view, out) = best_of(3, || cohort(&b.home, dir, &["mlcube", "view", &last]));
    assert!(out.contains(&last));
    let (index_time, _) = best_of(3, || {
        let t = Instant::now();
        let ix = reg.index_at(main).unwrap();
        (t.elapsed(), ix.0.files.len())
    });
    let (timeline_time, _) = best_of(3, || {
        let t = Instant::now();
        let tl = cohort::registry::timeline(reg.repo(), main).unwrap();
        (t.elapsed(), tl.commits.len())
    });

    // A sync that brings 10 new records: one more commit on main, verified by the binary
    // with what the last verification left (memo, timeline, listing) in a copy of the home,
    // then main and the home put back (the fixture is reused).
    let owner_home = Home::new(b.reg.parent().unwrap().join("user-keys"));
    let owner = unlock(&owner_home, "user00000");
    let id = reg.registry_id(main).unwrap();
    // Ten cubes of one version each: ten records, their signatures and files.
    let added: Vec<NewFile> = (0..10)
        .flat_map(|i| cube_files(&id, &owner, &format!("synced{i:02}")))
        .filter(|f| f.path.contains("/v1/"))
        .collect();
    let next = commit_files(reg.repo(), main, &added, "Merge ten new records", "bench").unwrap();
    reg.repo()
        .reference("refs/heads/main", next, true, "bench: sync")
        .unwrap();
    // Each run starts from a fresh copy of the home the last verification left. With the
    // carry whole, the old main's files come from it and only what the commit adds is read;
    // with a carry whose head names another main, each file is taken against the tree (as
    // before carries named their main); without the carry, every file is read and parsed.
    let sync = |carry: &str| {
        best_of(3, || {
            let sync_home = tempfile::tempdir().unwrap();
            copy_dir(&b.home, sync_home.path());
            let state = sync_home.path().join("state");
            for e in std::fs::read_dir(&state).unwrap().flatten() {
                if !e.file_name().to_string_lossy().ends_with(".carry") {
                    continue;
                }
                match carry {
                    "whole" => {}
                    "none" => std::fs::remove_dir_all(e.path()).unwrap(),
                    _ => other_main(&e.path().join("head")),
                }
            }
            cohort(sync_home.path(), dir, &["verify"])
        })
        .0
    };
    let sync_verify = sync("whole");
    let sync_file_by_file = sync("file by file");
    let sync_uncarried = sync("none");
    // COHORT_BENCH_SYNC_KEEP=DIR leaves that home in DIR/home and the new main as
    // `refs/bench/sync` for profiling (read here: this is a tool).
    if let Some(keep) = std::env::var_os("COHORT_BENCH_SYNC_KEEP") {
        let keep = PathBuf::from(keep).join(entities.to_string());
        copy_dir(&b.home, &keep.join("home"));
        reg.repo()
            .reference("refs/bench/sync", next, true, "bench: sync kept")
            .unwrap();
        eprintln!("sync setup kept in {}", keep.display());
    }
    reg.repo()
        .reference("refs/heads/main", main, true, "bench: back")
        .unwrap();
    set_ref(reg.repo(), VERIFIED_REF, main, "bench: verified").unwrap();

    // One submission: a new cube version's files as a commit on a branch.
    let mut submit_times: Vec<Duration> = (0..20)
        .map(|i| {
            let files = cube_files(&id, &owner, &format!("fresh{i:03}"));
            let t = Instant::now();
            let c = commit_files(reg.repo(), main, &files, "submit", "bench").unwrap();
            set_branch(reg.repo(), &format!("submit/fresh{i:03}"), c, "bench").unwrap();
            t.elapsed()
        })
        .collect();
    submit_times.sort();

    println!(
        "## {entities} entities, {} files, {} commits",
        b.files, b.commits
    );
    println!("| measurement | time |");
    println!("|---|---|");
    println!(
        "| verify, library, every signature ({} checked) | {} |",
        report.signatures_checked,
        ms(verify_time)
    );
    println!(
        "| minisign alone, same {} signatures in memory, both cores | {} |",
        triples.len(),
        ms(floor)
    );
    ratio("ratio verify / minisign", verify_time, floor);
    row(
        "cohort's signature check alone, same signatures, both cores",
        own_floor,
    );
    ratio(
        "ratio verify / cohort's signature check",
        verify_time,
        own_floor,
    );
    row("`cohort verify` (binary, first run)", cli_verify);
    row(
        "`cohort verify` (binary, memo and carry of earlier checks)",
        cli_verify_memo,
    );
    row("`cohort verify --full` (binary, no memo)", cli_verify_full);
    row(
        "`cohort verify` after a commit of 10 new records (memo, timeline, carry kept)",
        sync_verify,
    );
    row(
        "the same, the carry taken file by file against the tree",
        sync_file_by_file,
    );
    row(
        "the same without the carry (every file read and parsed)",
        sync_uncarried,
    );
    ratio(
        "ratio sync / sync without the carry",
        sync_verify,
        sync_uncarried,
    );
    row(
        "`cohort verify --full` on an empty COHORT_HOME",
        cli_verify_empty,
    );
    println!("| `cohort user ls` | {} |", ms(user_ls));
    println!("| `cohort mlcube ls --json` | {} |", ms(cube_ls));
    println!("| `cohort mlcube view {last}` | {} |", ms(cube_view));
    println!("| index of main (library) | {} |", ms(index_time));
    println!("| of which first-parent timeline | {} |", ms(timeline_time));
    row(
        "submission commit on a branch (median of 20)",
        submit_times[submit_times.len() / 2],
    );
    println!();
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` does not: only run for real then.
    if !std::env::args().any(|a| a == "--bench") {
        println!("registry_scale: run with `cargo bench --bench registry_scale`");
        return;
    }
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![1000, 10000]
    } else {
        sizes
    };
    for n in sizes {
        measure(n);
    }
}
