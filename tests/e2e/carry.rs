//! The carry under COHORT_HOME (what the last verification read) changes how fast `verify`
//! is, never its verdict: taken file by file, a carried file is used only where its bytes hash
//! to the blob the verified tree names, its record only where its JSON is whole and was written
//! by this build's parser; taken whole, for a main grown from the one verified here, only what
//! the commits since add is read, and the verdict is the one from scratch.

use std::path::{Path, PathBuf};

use cohort::model::{self, Sha256, build};
use cohort::trust::sign;

use crate::blobs::signed_cube;
use crate::env::{TestEnv, json};
use crate::listing::{join, site_registry};

fn carry_dir(env: &TestEnv, role: &str, id: &str) -> PathBuf {
    env.cohort_home(role)
        .join("state")
        .join(format!("{id}.carry"))
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    out.sort();
    out
}

/// Replaces the first `from` in the carry's segments by `to` (same length); whether found.
fn tamper(dir: &Path, from: &[u8], to: &[u8]) -> bool {
    assert_eq!(from.len(), to.len());
    for seg in segments(dir) {
        let mut bytes = std::fs::read(&seg).unwrap();
        if let Some(at) = bytes.windows(from.len()).position(|w| w == from) {
            bytes[at..at + to.len()].copy_from_slice(to);
            std::fs::write(&seg, bytes).unwrap();
            return true;
        }
    }
    false
}

/// Rewrites the carry's head to say its main was not accepted under these trust rules (as a
/// head another build wrote would): the next verification then takes the old main's files from
/// the carry, instead of reading from git only the parts of it the checks need.
fn unaccept(dir: &Path) {
    let head = dir.join("head");
    let text = std::fs::read_to_string(&head).unwrap();
    let (first, rest) = text.split_once('\n').unwrap();
    let (main, segments) = rest.split_once('\n').unwrap();
    let mut fields: Vec<&str> = main.split(' ').collect();
    assert_eq!(fields.len(), 4, "{main}");
    fields[3] = "-";
    let rest = format!("{}\n{segments}", fields.join(" "));
    let first = first.rsplit_once(' ').unwrap().0;
    let text = format!("{first} {}\n{rest}", Sha256::of(rest.as_bytes()));
    std::fs::write(&head, text).unwrap();
}

/// A registry the admin shares on a bare remote, `who` joined and approved: its id.
fn shared_with(env: &TestEnv, who: &str) -> String {
    let id = env.init_shared("admin");
    env.join(who, &id);
    env.cohort("admin", &["registry", "sync"]).ok();
    env.cohort("admin", &["user", "approve", who]).ok();
    id
}

/// `verify --json`: (ok, files, files carried).
fn verify(env: &TestEnv) -> (bool, u64, u64) {
    let v = json(&env.cohort("site", &["verify", "--json"]).ok());
    (
        v["ok"].as_bool().unwrap(),
        v["files"].as_u64().unwrap(),
        v["files_carried"].as_u64().unwrap(),
    )
}

#[test]
fn a_damaged_carry_is_never_what_is_verified() {
    let env = TestEnv::new();
    let reg = env.clone_dir("site");
    let id = site_registry(&env, &["alice", "bob"]);
    join(&env, "alice");
    // Joining verified main as it moved: what those verifications read is carried.
    let (ok, files, carried) = verify(&env);
    assert!(ok);
    assert_eq!(carried, files, "an accepted main is carried whole");
    let dir = carry_dir(&env, "site", &id);

    // bob joins: the verifications since read only the new files, each set as a segment.
    let before = segments(&dir).len();
    join(&env, "bob");
    let (ok, all, carried) = verify(&env);
    assert!(ok);
    assert!(all > files);
    assert_eq!(carried, all);
    assert!(segments(&dir).len() > before);

    // alice's record in the carry, its bytes changed (a signed file): not the blob main
    // names, so it is read from git, and main still verifies.
    let user = std::fs::read(reg.join("users/alice/v1.toml")).unwrap();
    let line = String::from_utf8(user).unwrap();
    assert!(line.contains("alice@example.org"));
    assert!(tamper(&dir, b"email = \"alice@", b"email = \"alicf@"));
    // Main accepted here clean: the parts the checks need are read from git, the carry's
    // files not at all.
    let (ok, files, carried) = verify(&env);
    assert!(ok);
    assert_eq!((files, carried), (all, all));
    // Taken from the carry: the changed file is read from git again.
    unaccept(&dir);
    let (ok, _, carried) = verify(&env);
    assert!(ok, "a changed carried file would not match its signature");
    assert_eq!(carried, all - 1);
    // What was read from git again is carried from then on.
    assert_eq!(verify(&env).2, all);

    // bob's key in his carried record's JSON changed (its digest left): the record is parsed
    // again from the file. Taken, it would have bob sign with a key that is not his.
    let bob = std::fs::read_to_string(reg.join("users/bob/v1.toml")).unwrap();
    let key = bob
        .lines()
        .find_map(|l| l.strip_prefix("minisign = \""))
        .unwrap()
        .trim_end_matches('"')
        .to_string();
    let mut other = key.clone().into_bytes();
    other[20] = if other[20] == b'A' { b'B' } else { b'A' };
    let from = format!("\"minisign\":\"{key}\"");
    let to = format!("\"minisign\":\"{}\"", String::from_utf8(other).unwrap());
    assert!(tamper(&dir, from.as_bytes(), to.as_bytes()), "bob's JSON");
    unaccept(&dir);
    let (ok, _, carried) = verify(&env);
    assert!(
        ok,
        "a key bob does not hold would not verify his own request"
    );
    assert_eq!(carried, all - 1);
    assert_eq!(verify(&env).2, all);

    // A carry written by another build's parser is not used at all.
    let head = dir.join("head");
    let text = std::fs::read_to_string(&head).unwrap();
    let fingerprint = text.split(' ').nth(3).unwrap().to_string();
    let other = "0".repeat(fingerprint.len());
    std::fs::write(&head, text.replacen(&fingerprint, &other, 1)).unwrap();
    let (ok, _, carried) = verify(&env);
    assert!(ok);
    assert_eq!(carried, 0);
    // That verification read everything, so the carry was written again whole, without the
    // damaged segments.
    let (ok, _, carried) = verify(&env);
    assert!(ok);
    assert_eq!(carried, all);
    assert_eq!(segments(&dir).len(), 1);
}

/// The pre-receive hook verifies each push with the carry of earlier verifications under its
/// COHORT_HOME (here the admin's, as a local push runs the hook): only what the push brings
/// is read from git, and a damaged carry changes what is read, never the verdict.
#[test]
fn the_hook_reads_only_what_a_push_brings() {
    let env = TestEnv::new();
    let id = shared_with(&env, "alice");
    let remote = env.remote();
    let rev = |r: &str| {
        env.git("admin", &remote, &["rev-parse", r])
            .ok()
            .stdout
            .trim()
            .to_string()
    };
    let (old, new) = (rev("main^"), rev("main"));
    let git_dir = remote.to_str().unwrap();
    // As git runs it for a push of main from `old` to `new`.
    let hook = || {
        let run = env
            .cohort_in(
                "admin",
                &remote,
                &["verify", "--from-git-env", "--since", &old, &new, "--json"],
                &[("GIT_DIR", git_dir)],
            )
            .ok();
        let v = json(&run);
        assert!(v["ok"].as_bool().unwrap(), "{v}");
        (
            v["files"].as_u64().unwrap(),
            v["files_carried"].as_u64().unwrap(),
        )
    };
    let (files, carried) = hook();
    assert_eq!(carried, files, "the admin's sync carried the merged main");
    // alice's record damaged in the carry: read from git, and the push still verifies.
    let dir = carry_dir(&env, "admin", &id);
    assert!(tamper(&dir, b"email = \"alice@", b"email = \"alicf@"));
    unaccept(&dir);
    let (_, carried) = hook();
    assert_eq!(carried, files - 1);
    assert_eq!(
        hook().1,
        files,
        "what the hook read is carried from then on"
    );

    // A push grown from the main verified last here: the old main's files come whole from the
    // carry, only what the push adds is read, and the verdict is the one from scratch.
    let admin = env.clone_dir("admin");
    env.write("admin", "mlcubes/stray/v1/cube.toml", b"format = 1\n");
    env.commit_all("admin", "a stray cube");
    env.git(
        "admin",
        &admin,
        &["push", "--quiet", "origin", "HEAD:refs/heads/side"],
    )
    .ok();
    let side = rev("side");
    let push = |extra: &[&str]| {
        let mut args = vec!["verify", "--from-git-env", "--since", &new, &side, "--json"];
        args.extend_from_slice(extra);
        json(&env.cohort_in("admin", &remote, &args, &[("GIT_DIR", git_dir)]))
    };
    let grown = push(&[]);
    let full = push(&["--full"]);
    assert_eq!(grown["ok"], false, "{grown}");
    assert_eq!(grown["grown_from"], new.as_str(), "{grown}");
    assert_eq!(grown["files_carried"], files, "{grown}");
    assert_eq!(full["grown_from"], serde_json::Value::Null, "{full}");
    assert_eq!(grown["problems"], full["problems"]);
    assert!(
        grown["problems"]
            .to_string()
            .contains("mlcubes/stray/v1/cube.toml")
    );
}

/// `verify --json` of `rev` in `role`'s clone (`extra` flags), whatever its exit code.
fn verify_rev(env: &TestEnv, role: &str, rev: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["verify", rev, "--json"];
    args.extend_from_slice(extra);
    let run = env.cohort(role, &args);
    json(&run)
}

/// A main grown from the one a site verified last is read as what the commits since add: the
/// files of the main it grew from come whole from the carry (`grown_from` names it), and the
/// verdict is the one a verification from scratch gives, also when what is added refuses a
/// file the old main held.
#[test]
fn a_grown_main_is_read_as_what_it_adds() {
    let env = TestEnv::new();
    let id = shared_with(&env, "hosp");
    env.cohort("hosp", &["registry", "sync"]).ok();
    let clone = env.clone_dir("hosp");
    let rev = |r: &str| {
        env.git("hosp", &clone, &["rev-parse", r])
            .ok()
            .stdout
            .trim()
            .to_string()
    };
    let verified = rev("main");
    let before = verify_rev(&env, "hosp", "main", &[]);
    assert_eq!(before["ok"], true, "{before}");
    assert_eq!(before["grown_from"], verified.as_str(), "{before}");
    assert_eq!(before["files_carried"], before["files"]);

    // alice joins on the shared main; the site fetches it without verifying it yet.
    env.join("alice", &id);
    env.cohort("admin", &["registry", "sync"]).ok();
    env.cohort("admin", &["user", "approve", "alice"]).ok();
    env.git("hosp", &clone, &["fetch", "--quiet", "origin"])
        .ok();
    let grown = verify_rev(&env, "hosp", "origin/main", &[]);
    let full = verify_rev(&env, "hosp", "origin/main", &["--full"]);
    assert_eq!(grown["ok"], true, "{grown}");
    assert_eq!(grown["grown_from"], verified.as_str(), "{grown}");
    assert_eq!(grown["files_carried"], before["files"], "{grown}");
    assert!(grown["files"].as_u64() > before["files"].as_u64());
    assert_eq!(full["grown_from"], serde_json::Value::Null, "{full}");
    assert_eq!(full["files_carried"], 0, "{full}");
    assert_eq!(
        (&grown["files"], &grown["records"]),
        (&full["files"], &full["records"])
    );
    // Only the records alice's admission reaches were checked again; from scratch, all.
    let checked = grown["records_checked"].as_u64().unwrap();
    assert!(
        checked > 0 && checked < grown["records"].as_u64().unwrap(),
        "{grown}"
    );
    assert_eq!(full["records_checked"], full["records"], "{full}");

    // On the site's own main, with git alone: an unsigned cube, and a signature by nobody on
    // the root the old main held. Both refused, as from scratch.
    let cube = "mlcubes/stray/v1/cube.toml";
    env.write("hosp", cube, b"format = 1\nkind = \"mlcube\"\n");
    env.write(
        "hosp",
        "root/v1.toml.mallory.minisig",
        b"untrusted comment: x\n",
    );
    env.commit_all("hosp", "stray files");
    let bad = verify_rev(&env, "hosp", "main", &[]);
    let bad_full = verify_rev(&env, "hosp", "main", &["--full"]);
    assert_eq!(bad["ok"], false, "{bad}");
    assert_eq!(bad["grown_from"], verified.as_str(), "{bad}");
    assert_eq!(bad["problems"], bad_full["problems"]);
    let text = bad["problems"].to_string();
    assert!(
        text.contains(cube) && text.contains("root/v1.toml.mallory.minisig"),
        "{text}"
    );
}

/// A sync that only adds to the main verified here adds to the listing kept for it (parts
/// named by the new main, beside the old files, which stay as they were), and the listings
/// read from it show what listings rebuilt from git show.
#[test]
fn a_grown_sync_adds_to_the_listing() {
    let env = TestEnv::new();
    let id = shared_with(&env, "hosp");
    env.cohort("hosp", &["registry", "sync"]).ok();
    let dir = env
        .cohort_home("hosp")
        .join("state")
        .join(format!("{id}.listing"));
    let files = |dir: &Path| -> Vec<(String, Vec<u8>)> {
        let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                (name, std::fs::read(e.path()).unwrap())
            })
            .collect();
        out.sort();
        out
    };
    let before = files(&dir);
    let state = env.cohort_home("hosp").join("state");
    let timeline = std::fs::read(state.join(format!("{id}.timeline"))).unwrap();

    env.join("alice", &id);
    env.cohort("admin", &["registry", "sync"]).ok();
    env.cohort("admin", &["user", "approve", "alice"]).ok();
    env.cohort("hosp", &["registry", "sync"]).ok();
    // The timeline kept is the sync's main (the one verified now grew from itself), though
    // the file written for the old one stays as it was: the sync added a frame beside it.
    let v = json(&env.cohort("hosp", &["verify", "--json"]).ok());
    let main = v["commit"].as_str().unwrap();
    assert_eq!(v["grown_from"], main, "{v}");
    assert!(std::fs::read(state.join(format!("{id}.timeline"))).unwrap() == timeline);
    assert!(state.join(format!("{id}.timeline-more")).exists());
    let after = files(&dir);
    let added: Vec<&str> = after
        .iter()
        .map(|(n, _)| n.as_str())
        .filter(|n| n.ends_with(&format!("@{main}")))
        .collect();
    for part in ["users@", "users.rows@"] {
        assert!(added.iter().any(|n| n.starts_with(part)), "{added:?}");
    }
    for (name, bytes) in before.iter().filter(|(n, _)| n != "manifest") {
        let now = after.iter().find(|(n, _)| n == name);
        assert_eq!(now.map(|(_, b)| b), Some(bytes), "{name} rewritten");
    }

    let lists = || {
        ["user", "mlcube", "benchmark"]
            .map(|what| json(&env.cohort("hosp", &[what, "ls", "--json"]).ok()).to_string())
    };
    let from_parts = lists();
    assert!(from_parts[0].contains("\"alice\""), "{}", from_parts[0]);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(lists(), from_parts, "listings rebuilt from git");
    assert!(files(&dir).iter().all(|(n, _)| !n.contains('@')));

    // The frame damaged (one byte of its body): the timeline read stops before it, so the
    // sync's main is walked again from the main before; the verdict is the one from scratch,
    // and the next verification knows the main again.
    let more = state.join(format!("{id}.timeline-more"));
    let mut bytes = std::fs::read(&more).unwrap();
    let last = bytes.len() - 2;
    bytes[last] ^= 1;
    std::fs::write(&more, &bytes).unwrap();
    let again = json(&env.cohort("hosp", &["verify", "--json"]).ok());
    let full = json(&env.cohort("hosp", &["verify", "--full", "--json"]).ok());
    assert_eq!(again["ok"], true, "{again}");
    assert_ne!(again["grown_from"], main, "{again}");
    assert_eq!(again["problems"], full["problems"]);
    assert_eq!(again["files"], full["files"]);
    let healed = json(&env.cohort("hosp", &["verify", "--json"]).ok());
    assert_eq!(healed["grown_from"], main, "{healed}");
}

/// A main that adds a cube to the one a site accepted clean is verified from what it adds and
/// only the parts of the rest its checks read: the verdict, the listing and what is kept are
/// those a verification of every file gives, also when what it adds forges something about an
/// older record.
#[test]
fn a_grown_main_is_read_from_what_it_adds_and_the_parts_it_needs() {
    let env = TestEnv::new();
    let id = shared_with(&env, "hosp");
    env.cohort("hosp", &["registry", "sync"]).ok();

    // The admin adds a cube with its blob, by plain git (the hook verifies the push).
    let extra = b"additional files".to_vec();
    let sha = Sha256::of(&extra);
    let mut files = signed_cube(&env, &id, "added", model::Asset::in_blob(sha.clone()));
    files.push((build::blob(sha.as_str()), extra));
    let admin = env.clone_dir("admin");
    for (p, bytes) in &files {
        env.write("admin", p, bytes);
    }
    env.commit_all("admin", "a cube");
    env.git("admin", &admin, &["push", "--quiet", "origin", "main"])
        .ok();

    let hosp = env.clone_dir("hosp");
    env.git("hosp", &hosp, &["fetch", "--quiet", "origin"]).ok();
    let lazy = verify_rev(&env, "hosp", "origin/main", &[]);
    let full = verify_rev(&env, "hosp", "origin/main", &["--full"]);
    assert_eq!(lazy["ok"], true, "{lazy}");
    let parts = lazy["parts_read"].as_u64().expect("read lazily");
    // The fixed parts (root, meta, top-level and hook files, grants), the cube's folder, and
    // the folders of those it names or who signed it: fewer than the files, even here.
    assert!(
        parts > 0 && parts < lazy["files"].as_u64().unwrap(),
        "{lazy}"
    );
    for field in ["ok", "files", "records", "problems", "warnings"] {
        assert_eq!(lazy[field], full[field], "{field}: {lazy} {full}");
    }
    assert_eq!(full["parts_read"], serde_json::Value::Null, "{full}");

    // Synced: the listing grows by the cube, as rebuilt from git.
    env.cohort("hosp", &["registry", "sync"]).ok();
    let cubes = || json(&env.cohort("hosp", &["mlcube", "ls", "--json"]).ok()).to_string();
    let listed = cubes();
    assert!(listed.contains("\"added\""), "{listed}");
    let listing = env
        .cohort_home("hosp")
        .join("state")
        .join(format!("{id}.listing"));
    std::fs::remove_dir_all(&listing).unwrap();
    assert_eq!(cubes(), listed, "listings rebuilt from git");

    // On the site's own main, with git alone: a signature by someone else on the cube the
    // old main holds, and a stray blob. Refused as from scratch.
    let cube = build::mlcube("added", 1);
    let bytes = std::fs::read(hosp.join(&cube)).unwrap();
    let forged = sign::sign(
        &env.signer("hosp"),
        &id.parse().unwrap(),
        &cube,
        "mlcube",
        &bytes,
    )
    .unwrap();
    env.write("hosp", &build::signature(&cube, "hosp"), &forged);
    let stray = b"nobody names me".to_vec();
    env.write("hosp", &build::blob(Sha256::of(&stray).as_str()), &stray);
    env.commit_all("hosp", "forged on the site");
    let lazy = verify_rev(&env, "hosp", "main", &[]);
    let full = verify_rev(&env, "hosp", "main", &["--full"]);
    assert_eq!(lazy["ok"], false, "{lazy}");
    for field in ["ok", "files", "records", "problems", "warnings"] {
        assert_eq!(lazy[field], full[field], "{field}: {lazy} {full}");
    }
    let problems = lazy["problems"].to_string();
    assert!(problems.contains("orphan-blob"), "{problems}");
    assert!(
        problems.contains(&format!("{cube}.hosp.minisig")),
        "{problems}"
    );
}
