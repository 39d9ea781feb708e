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

/// The commit a listing index says it was built for (its list of folders says).
fn built_for(p: &Path) -> String {
    header_commit(&p.join("folders"))
}

/// The commit named by the header of a file of the listing index (`cohort listing <what> 1
/// <commit> <sha256>`).
fn header_commit(file: &Path) -> String {
    let text = std::fs::read_to_string(file).unwrap();
    let header = text.lines().next().unwrap();
    header.split(' ').nth(4).unwrap().to_string()
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
    let old = std::fs::read(index.join("users")).unwrap();
    let old_folders = std::fs::read(index.join("folders")).unwrap();
    let rows = index.join("users.rows");
    assert_eq!(header_commit(&rows), verified(&env));
    let old_rows = std::fs::read(&rows).unwrap();

    // bob joins: the verified main moves on. The index of the older main, put back in place,
    // is not read for the new one; the listing shows bob and the index is rebuilt.
    join(&env, "bob");
    std::fs::write(index.join("users"), &old).unwrap();
    std::fs::write(index.join("folders"), &old_folders).unwrap();
    assert_ne!(built_for(&index), verified(&env));
    let now = handles(&env);
    assert!(now.contains(&"bob".to_string()), "{now:?}");
    assert_eq!(built_for(&index), verified(&env));

    // Only the users' file from the older main: the same.
    std::fs::write(index.join("users"), &old).unwrap();
    assert_eq!(built_for(&index), verified(&env));
    assert_eq!(handles(&env), now);

    // The rows `user ls` prints, from the older main, beside the listing of the new one: not
    // shown, and written again for the new main.
    std::fs::write(&rows, &old_rows).unwrap();
    assert_eq!(handles(&env), now);
    assert_eq!(header_commit(&rows), verified(&env));
    let good_rows = std::fs::read(&rows).unwrap();
    // Damaged, or gone: the same.
    let mut bytes = good_rows.clone();
    let last = bytes.len() - 2;
    bytes[last] ^= 1;
    std::fs::write(&rows, &bytes).unwrap();
    assert_eq!(handles(&env), now);
    assert_eq!(std::fs::read(&rows).unwrap(), good_rows);
    std::fs::remove_file(&rows).unwrap();
    assert_eq!(handles(&env), now);
    assert_eq!(std::fs::read(&rows).unwrap(), good_rows);

    // A damaged index is ignored and rebuilt.
    let mut bytes = std::fs::read(index.join("users")).unwrap();
    let last = bytes.len() - 4;
    bytes[last] ^= 1;
    std::fs::write(index.join("users"), &bytes).unwrap();
    assert_eq!(handles(&env), now);
    std::fs::write(index.join("folders"), b"not an index").unwrap();
    assert_eq!(handles(&env), now);
    assert_eq!(built_for(&index), verified(&env));
    // Gone: the same.
    std::fs::remove_dir_all(&index).unwrap();
    assert_eq!(handles(&env), now);
}
