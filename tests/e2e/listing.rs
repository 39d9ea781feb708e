//! Listings read the listing index under COHORT_HOME only for the verified commit it was
//! built for: an index left from an older main, or a damaged one, is never what they show.

use std::path::{Path, PathBuf};

use crate::env::{TestEnv, json};

fn handles(env: &TestEnv) -> Vec<String> {
    let users = json(&env.cohort("site", &["user", "ls", "--json"]).ok());
    users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["handle"].as_str().unwrap().to_string())
        .collect()
}

fn listing(env: &TestEnv, id: &str) -> PathBuf {
    env.cohort_home("site")
        .join("state")
        .join(format!("{id}.listing"))
}

/// The commit a listing index says it was built for (its manifest's header, `cohort listing
/// index 2 <commit> <sha256>`, says).
fn built_for(p: &Path) -> String {
    let text = std::fs::read_to_string(p.join("manifest")).unwrap();
    let header = text.lines().next().unwrap();
    header.split(' ').nth(4).unwrap().to_string()
}

/// The files the listing's manifest names for the file `name` (`name`, `name@<commit>`...).
fn parts(p: &Path, name: &str) -> Vec<PathBuf> {
    let text = std::fs::read_to_string(p.join("manifest")).unwrap();
    text.lines()
        .skip(1)
        .filter_map(|l| l.split_once('\t'))
        .map(|(n, _)| n)
        .filter(|n| n.split('@').next() == Some(name))
        .map(|n| p.join(n))
        .collect()
}

/// The one file the listing's manifest names for `name` (a listing written whole).
fn part(p: &Path, name: &str) -> PathBuf {
    let mut all = parts(p, name);
    assert_eq!(all.len(), 1, "{all:?}");
    all.pop().unwrap()
}

fn verified(env: &TestEnv) -> String {
    let run = env.git(
        "site",
        &env.clone_dir("site"),
        &["rev-parse", "refs/cohort/verified"],
    );
    run.ok().stdout.trim().to_string()
}

/// `who` (whose key the site holds) asks to join and admin approves.
pub(crate) fn join(env: &TestEnv, who: &str) {
    env.cohort(
        "site",
        &[
            "--as",
            who,
            "user",
            "request",
            "--name",
            who,
            "--email",
            &format!("{who}@example.org"),
        ],
    )
    .ok();
    env.cohort("site", &["--as", "admin", "user", "approve", who])
        .ok();
}

/// A registry created by `admin` in the site's clone, with keys for `handles` (and admin) on
/// the site: its id.
pub(crate) fn site_registry(env: &TestEnv, handles: &[&str]) -> String {
    let reg = env.clone_dir("site");
    for h in std::iter::once(&"admin").chain(handles) {
        env.cohort(
            "site",
            &["key", "generate", "--handle", h, "--no-passphrase"],
        )
        .ok();
    }
    env.cohort_in(
        "site",
        &env.role_dir("site"),
        &[
            "registry",
            "init",
            reg.to_str().unwrap(),
            "--name",
            "demo",
            "--admin",
            "admin",
        ],
        &[],
    )
    .ok()
    .stdout
    .trim()
    .to_string()
}

#[test]
fn a_stale_or_damaged_listing_index_is_never_shown() {
    let env = TestEnv::new();
    let id = site_registry(&env, &["alice", "bob"]);
    join(&env, "alice");
    env.cohort("site", &["verify"]).ok();
    let index = listing(&env, &id);
    assert!(handles(&env).contains(&"alice".to_string()));
    assert_eq!(built_for(&index), verified(&env));
    let old: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&index)
        .unwrap()
        .flatten()
        .map(|e| (e.path(), std::fs::read(e.path()).unwrap()))
        .collect();
    let whole = |name: &str| -> Vec<u8> {
        parts(&index, name)
            .iter()
            .flat_map(|p| std::fs::read(p).unwrap())
            .collect()
    };
    let (old_users, old_rows) = (whole("users"), whole("users.rows"));

    // bob joins: the verified main moves on. The index of the older main, put back in place,
    // is not read for the new one; the listing shows bob and the index is written whole.
    join(&env, "bob");
    for (p, bytes) in &old {
        std::fs::write(p, bytes).unwrap();
    }
    assert_ne!(built_for(&index), verified(&env));
    let now = handles(&env);
    assert!(now.contains(&"bob".to_string()), "{now:?}");
    assert_eq!(built_for(&index), verified(&env));

    // Only the users' file from the older main, under the manifest of the new one: the same.
    std::fs::write(part(&index, "users"), &old_users).unwrap();
    assert_eq!(handles(&env), now);
    assert_eq!(built_for(&index), verified(&env));

    // The rows `user ls` prints, from the older main, beside the listing of the new one: not
    // shown, and written again for the new main.
    let rows = part(&index, "users.rows");
    let good_rows = std::fs::read(&rows).unwrap();
    assert_ne!(old_rows, good_rows);
    std::fs::write(&rows, &old_rows).unwrap();
    assert_eq!(handles(&env), now);
    assert_eq!(
        std::fs::read(part(&index, "users.rows")).unwrap(),
        good_rows
    );
    // Damaged, or gone: the same.
    let mut bytes = good_rows.clone();
    let last = bytes.len() - 2;
    bytes[last] ^= 1;
    std::fs::write(part(&index, "users.rows"), &bytes).unwrap();
    assert_eq!(handles(&env), now);
    assert_eq!(
        std::fs::read(part(&index, "users.rows")).unwrap(),
        good_rows
    );
    std::fs::remove_file(part(&index, "users.rows")).unwrap();
    assert_eq!(handles(&env), now);
    assert_eq!(
        std::fs::read(part(&index, "users.rows")).unwrap(),
        good_rows
    );

    // A damaged index is ignored and rebuilt.
    let users = part(&index, "users");
    let mut bytes = std::fs::read(&users).unwrap();
    let last = bytes.len() - 4;
    bytes[last] ^= 1;
    std::fs::write(&users, &bytes).unwrap();
    assert_eq!(handles(&env), now);
    std::fs::write(index.join("manifest"), b"not an index").unwrap();
    assert_eq!(handles(&env), now);
    assert_eq!(built_for(&index), verified(&env));
    // Gone: the same.
    std::fs::remove_dir_all(&index).unwrap();
    assert_eq!(handles(&env), now);
}
