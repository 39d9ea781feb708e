//! Git transport, what every site refuses whatever the remote serves: a main rolled back by a
//! force push, another registry's root, approvals by people without the role, files edited
//! after approval, and a rewritten history that drops a revocation.

use crate::env::{TestEnv, json};

#[test]
fn force_pushed_remote_and_wrong_root_are_refused() {
    let env = TestEnv::new();
    let id = env.init_shared("admin");
    env.join("carol", &id);
    env.join("mo", &id);
    env.cohort("admin", &["user", "approve", "carol"]).ok();
    env.cohort("mo", &["registry", "sync"]).ok();
    // The remote's main is rolled back to the first commit.
    let first = env
        .git(
            "admin",
            &env.remote(),
            &["rev-list", "--max-parents=0", "main"],
        )
        .ok()
        .stdout
        .trim()
        .to_string();
    let admin_clone = env.clone_dir("admin");
    env.git(
        "admin",
        &admin_clone,
        &[
            "push",
            "--quiet",
            "--force",
            "--no-verify",
            "origin",
            &format!("{first}:refs/heads/main"),
        ],
    );
    // The hook refuses the rewind; bypass it the way a compromised server would.
    env.git(
        "admin",
        &env.remote(),
        &["update-ref", "refs/heads/main", &first],
    )
    .ok();
    env.cohort("mo", &["registry", "sync"])
        .fails(1)
        .says("does not descend from");
    // A clone pinned to another id is refused and nothing is kept.
    env.key("eve");
    let dest = env.role_dir("eve").join("registry");
    let wrong = "0".repeat(64);
    env.cohort_in(
        "eve",
        &env.role_dir("eve"),
        &[
            "registry",
            "clone",
            env.remote().to_str().unwrap(),
            dest.to_str().unwrap(),
            "--root",
            &wrong,
        ],
        &[],
    )
    .fails(1)
    .says("not 0000");
    assert!(!dest.exists());
    // Without --root and without a terminal, trust must be explicit.
    env.cohort_in(
        "eve",
        &env.role_dir("eve"),
        &[
            "registry",
            "clone",
            env.remote().to_str().unwrap(),
            dest.to_str().unwrap(),
        ],
        &[],
    )
    .fails(1)
    .says("--trust-on-first-use");
    env.cohort_in(
        "eve",
        &env.role_dir("eve"),
        &[
            "registry",
            "clone",
            env.remote().to_str().unwrap(),
            dest.to_str().unwrap(),
            "--trust-on-first-use",
        ],
        &[],
    )
    .ok();
}

#[test]
fn non_admin_approval_and_edited_files_are_refused_by_verify_and_hook() {
    let env = TestEnv::new();
    let id = env.init_shared("admin");
    env.join("carol", &id);
    env.cohort("admin", &["user", "approve", "carol"]).ok();
    env.join("bob", &id);
    env.cohort("carol", &["registry", "sync"]).ok();
    // carol (not an admin) approves bob's request herself and merges it into her main.
    let carol = env.clone_dir("carol");
    env.git(
        "carol",
        &carol,
        &[
            "checkout",
            "--quiet",
            "-b",
            "sneaky",
            "origin/submit/bob/user-bob-v1",
        ],
    )
    .ok();
    let sha = cohort::model::Sha256::of(&std::fs::read(carol.join("users/bob/v1.toml")).unwrap());
    let d = format!(
        "format = 1\nkind = \"approval\"\nsubject = \"users/bob/v1.toml\"\nsubject_sha256 = \"{sha}\"\nby = \"carol\"\nat = \"2026-11-27T10:00:00Z\"\n"
    );
    env.write("carol", "users/bob/v1.approval.carol.toml", d.as_bytes());
    let sig = cohort::trust::sign::sign(
        &env.signer("carol"),
        &id.parse().unwrap(),
        "users/bob/v1.approval.carol.toml",
        "approval",
        d.as_bytes(),
    )
    .unwrap();
    env.write(
        "carol",
        "users/bob/v1.approval.carol.toml.carol.minisig",
        &sig,
    );
    env.commit_all("carol", "approve bob myself");
    env.git("carol", &carol, &["checkout", "--quiet", "main"])
        .ok();
    env.git(
        "carol",
        &carol,
        &["merge", "--quiet", "--no-ff", "--no-edit", "sneaky"],
    )
    .ok();
    env.cohort("carol", &["verify", "main"])
        .fails(1)
        .says("carol is not an admin");
    env.cohort("carol", &["verify", "--range", "origin/main..sneaky"])
        .fails(1)
        .says("carol is not an admin");
    let push = env.git("carol", &carol, &["push", "origin", "main"]);
    assert_ne!(
        push.code,
        0,
        "the pre-receive hook must refuse:\n{}",
        push.all()
    );
    assert!(
        push.all().contains("carol is not an admin"),
        "{}",
        push.all()
    );

    // A pull request that edits a merged file.
    env.git(
        "carol",
        &carol,
        &["checkout", "--quiet", "-b", "edit", "origin/main"],
    )
    .ok();
    let p = carol.join("users/carol/v1.toml");
    let t = std::fs::read_to_string(&p)
        .unwrap()
        .replace("carol person", "Carol Person");
    std::fs::write(&p, t).unwrap();
    env.commit_all("carol", "fix my name");
    env.cohort("carol", &["verify", "--range", "origin/main..edit"])
        .fails(1)
        .says("users/carol/v1.toml")
        .says("append-only");
    let push = env.git("carol", &carol, &["push", "origin", "edit:main"]);
    assert_ne!(push.code, 0, "{}", push.all());
    assert!(push.all().contains("append-only"), "{}", push.all());
}

#[test]
fn rewrite_dropping_a_revocation_is_caught_on_a_fresh_clone() {
    let env = TestEnv::new();
    let id = env.init_shared("admin");
    env.join("bob", &id);
    env.cohort("admin", &["user", "approve", "bob"]).ok();
    env.join("hosp", &id);
    env.cohort("admin", &["user", "approve", "hosp"]).ok();
    let before = env
        .git("admin", &env.remote(), &["rev-parse", "main"])
        .ok()
        .stdout
        .trim()
        .to_string();
    env.cohort(
        "admin",
        &["user", "revoke", "bob", "--reason", "laptop stolen"],
    )
    .ok();
    env.cohort("hosp", &["registry", "sync"]).ok();
    let users = json(&env.cohort("hosp", &["user", "ls", "--json"]).ok());
    assert_eq!(
        users
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["handle"] == "bob")
            .unwrap()["revoked"],
        true
    );
    // Someone with access to the server drops the revocation.
    env.git(
        "admin",
        &env.remote(),
        &["update-ref", "refs/heads/main", &before],
    )
    .ok();
    // hosp deletes its clone and clones again: this machine remembers what it verified.
    std::fs::remove_dir_all(env.clone_dir("hosp")).unwrap();
    let dest = env.clone_dir("hosp");
    env.cohort_in(
        "hosp",
        &env.role_dir("hosp"),
        &[
            "registry",
            "clone",
            env.remote().to_str().unwrap(),
            dest.to_str().unwrap(),
            "--root",
            &id,
        ],
        &[],
    )
    .fails(1)
    .says("does not descend from");
}
