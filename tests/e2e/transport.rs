//! Git transport: four roles in their own clones over a bare remote; approvals as merges;
//! offline submissions; racing pushes; root rotation; forge-mode merges; the user's work never
//! touched (what every site refuses is in `transport_refused`).

use std::cell::Cell;
use std::sync::Mutex;

use cohort::progress::{Reporter, TaskId};
use cohort::registry::{self, NewFile};
use cohort::workflow::{Ctx, identity, registry_ops};

use crate::env::{TestEnv, json};

fn remote_files(env: &TestEnv) -> String {
    env.git(
        "admin",
        &env.remote(),
        &["ls-tree", "-r", "--name-only", "main"],
    )
    .ok()
    .stdout
}

#[test]
fn four_roles_request_approve_sync_verify() {
    let env = TestEnv::new();
    let id = env.init_shared("admin");
    for role in ["carol", "mo", "hosp"] {
        env.join(role, &id);
    }
    env.cohort("admin", &["registry", "sync"]).ok();
    let status = json(&env.cohort("admin", &["registry", "status", "--json"]).ok());
    let waiting: Vec<&str> = status["awaiting_me"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["branch"].as_str().unwrap())
        .collect();
    assert_eq!(waiting.len(), 3, "{status}");
    assert!(waiting.contains(&"submit/carol/user-carol-v1"));
    // carol sees her own request as pushed, waiting for an admin.
    let mine = json(&env.cohort("carol", &["registry", "status", "--json"]).ok());
    assert_eq!(mine["mine"][0]["state"], "pushed", "{mine}");
    assert_eq!(mine["mine"][0]["waiting_for"], "an admin's approval");

    for role in ["carol", "mo", "hosp"] {
        env.cohort("admin", &["user", "approve", role])
            .ok()
            .says("pushed");
    }
    env.cohort(
        "admin",
        &["user", "grant", "carol", "--role", "benchmark-owner"],
    )
    .ok();
    let files = remote_files(&env);
    for f in [
        "users/carol/v1.toml",
        "users/carol/v1.approval.admin.toml",
        "grants/carol/1.toml",
        "users/hosp/v1.toml",
    ] {
        assert!(files.contains(f), "{f} on the remote's main:\n{files}");
    }
    // Merged branches are gone from the remote.
    let branches = env
        .git("admin", &env.remote(), &["branch", "--list"])
        .ok()
        .stdout;
    assert!(!branches.contains("submit/"), "{branches}");
    for role in ["carol", "mo", "hosp"] {
        env.cohort(role, &["registry", "sync"]).ok();
        env.cohort(role, &["verify"]).ok();
        let st = json(&env.cohort(role, &["registry", "status", "--json"]).ok());
        assert_eq!(st["mine"][0]["state"], "merged", "{role}: {st}");
    }
    let users = json(&env.cohort("hosp", &["user", "ls", "--json"]).ok());
    let carol = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["handle"] == "carol")
        .unwrap();
    assert_eq!(carol["roles"][0], "benchmark-owner");
    // Every merge is a no-fast-forward merge carrying the approval.
    let log = env
        .git(
            "admin",
            &env.remote(),
            &["log", "--first-parent", "--format=%s", "main"],
        )
        .ok()
        .stdout;
    assert!(
        log.contains("Merge submit/carol/user-carol-v1: approve users/carol/v1.toml"),
        "{log}"
    );
}

#[test]
fn offline_submission_waits_then_pushes() {
    let env = TestEnv::new();
    let id = env.init_shared("admin");
    env.key("mo");
    let clone = env.clone_dir("mo");
    env.cohort_in(
        "mo",
        &env.role_dir("mo"),
        &[
            "registry",
            "clone",
            env.remote().to_str().unwrap(),
            clone.to_str().unwrap(),
            "--root",
            &id,
        ],
        &[],
    )
    .ok();
    env.git(
        "mo",
        &clone,
        &["remote", "set-url", "origin", "/nonexistent/remote.git"],
    )
    .ok();
    env.cohort(
        "mo",
        &[
            "user",
            "request",
            "--name",
            "Mo",
            "--email",
            "mo@example.org",
        ],
    )
    .ok();
    let st = json(&env.cohort("mo", &["registry", "status", "--json"]).ok());
    assert_eq!(st["mine"][0]["state"], "local");
    let r = env.cohort("mo", &["registry", "push"]).fails(3);
    r.says("remote");
    env.git(
        "mo",
        &clone,
        &[
            "remote",
            "set-url",
            "origin",
            env.remote().to_str().unwrap(),
        ],
    )
    .ok();
    env.cohort("mo", &["registry", "push"])
        .ok()
        .says("submit/mo/user-mo-v1");
    let st = json(&env.cohort("mo", &["registry", "status", "--json"]).ok());
    assert_eq!(st["mine"][0]["state"], "pushed");
    env.cohort("admin", &["registry", "sync"]).ok();
    env.cohort("admin", &["user", "approve", "mo"]).ok();
}

#[derive(Default)]
struct Notes(Mutex<Vec<String>>);

impl Reporter for Notes {
    fn note(&self, m: &str) {
        self.0.lock().unwrap().push(m.to_string());
    }
    fn begin(&self, _: &str, _: Option<u64>) -> TaskId {
        TaskId::next()
    }
}

/// Two maintainers push main at the same moment: the loser fetches, re-merges, re-verifies and
/// retries. The race is forced: the other approval lands between our sync and our push.
#[test]
fn racing_pushes_retry() {
    let env = TestEnv::new();
    let id = env.init_shared("admin");
    env.join("carol", &id);
    env.join("mo", &id);
    // A second clone of the admin, in the same home (the admin's laptop and the admin's desktop).
    let other = env.path().join("admin/desktop");
    env.cohort_in(
        "admin",
        &env.role_dir("admin"),
        &[
            "registry",
            "clone",
            env.remote().to_str().unwrap(),
            other.to_str().unwrap(),
            "--root",
            &id,
        ],
        &[],
    )
    .ok();

    let home = cohort::storage::Home::new(env.cohort_home("admin"));
    let notes = Notes::default();
    let git = cohort::workflow::GitProgram::Known(true);
    let ctx = Ctx {
        home: &home,
        reporter: &notes,
        now: std::time::SystemTime::now(),
        git: &git,
        transport: None,
        docker_host: None,
        docker_config: None,
        net: cohort::storage::NetConfig::default(),
        cancel: cohort::progress::Cancel::new(),
        task_timeout: None,
        offline: false,
        full: false,
        max_output_bytes: 1 << 30,
        max_unpacked: None,
        devices: Default::default(),
    };
    let opened = identity::open_path(&ctx, &env.clone_dir("admin")).unwrap();
    registry_ops::sync(&ctx, &opened).unwrap();
    let signer = env.signer("admin");
    let sub = registry_ops::find_submission(&opened, "submit/carol/user-carol-v1").unwrap();
    let first = Cell::new(true);
    let decision = format!(
        "format = 1\nkind = \"approval\"\nsubject = \"{}\"\nsubject_sha256 = \"{}\"\nby = \"admin\"\nat = \"2026-11-27T10:00:00Z\"\n",
        sub.subject, sub.subject_sha256
    );
    let files = cohort::workflow::sign_records(
        &signer,
        &opened.id,
        vec![NewFile::new(
            cohort::model::build::decision(
                &sub.subject,
                cohort::model::DecisionKind::Approval,
                "admin",
            ),
            decision.into_bytes(),
        )],
    )
    .unwrap();
    let approved =
        registry::commit_files(opened.reg.repo(), sub.tip, &files, "approve carol", "admin")
            .unwrap();
    let landed = registry_ops::land(&ctx, &opened, "approve carol", &|base| {
        if first.replace(false) {
            // The desktop approves mo and pushes first.
            env.cohort_in("admin", &other, &["user", "approve", "mo"], &[])
                .ok();
        }
        Ok(registry::merge(
            opened.reg.repo(),
            base,
            approved,
            "Merge carol",
            "admin",
        )?)
    })
    .unwrap();
    assert_eq!(landed.pushed, Some(true));
    assert!(
        notes
            .0
            .lock()
            .unwrap()
            .iter()
            .any(|n| n.contains("pushed main first")),
        "retried"
    );
    let files = remote_files(&env);
    assert!(
        files.contains("users/mo/v1.approval.admin.toml")
            && files.contains("users/carol/v1.approval.admin.toml"),
        "{files}"
    );
    env.cohort("carol", &["registry", "sync"]).ok();
    env.cohort("carol", &["verify"]).ok();
}

#[test]
fn the_users_work_is_never_touched() {
    let env = TestEnv::new();
    let id = env.init_shared("admin");
    env.key("mo");
    let clone = env.clone_dir("mo");
    env.cohort_in(
        "mo",
        &env.role_dir("mo"),
        &[
            "registry",
            "clone",
            env.remote().to_str().unwrap(),
            clone.to_str().unwrap(),
            "--root",
            &id,
        ],
        &[],
    )
    .ok();
    // Work in progress on another branch: an edit, a staged file, an untracked file.
    env.git("mo", &clone, &["checkout", "--quiet", "-b", "mywork"])
        .ok();
    std::fs::write(clone.join("README.md"), "my notes\n").unwrap();
    std::fs::write(clone.join("staged.txt"), "staged\n").unwrap();
    env.git("mo", &clone, &["add", "staged.txt"]).ok();
    std::fs::write(clone.join("scratch.txt"), "untracked\n").unwrap();
    let before = env
        .git("mo", &clone, &["status", "--porcelain"])
        .ok()
        .stdout;
    let head = env.git("mo", &clone, &["symbolic-ref", "HEAD"]).ok().stdout;

    env.cohort(
        "mo",
        &[
            "user",
            "request",
            "--name",
            "Mo",
            "--email",
            "mo@example.org",
        ],
    )
    .ok();
    env.cohort("mo", &["registry", "push"]).ok();
    env.cohort("admin", &["user", "approve", "mo"]).ok();
    env.cohort("mo", &["registry", "sync"]).ok();
    env.cohort("mo", &["registry", "status"]).ok();
    env.cohort("mo", &["verify"]).ok();

    assert_eq!(
        env.git("mo", &clone, &["status", "--porcelain"])
            .ok()
            .stdout,
        before
    );
    assert_eq!(
        env.git("mo", &clone, &["symbolic-ref", "HEAD"]).ok().stdout,
        head
    );
    assert_eq!(
        std::fs::read_to_string(clone.join("README.md")).unwrap(),
        "my notes\n"
    );
    // main moved (it is not checked out), so the merged request is visible to git users too.
    let files = env
        .git("mo", &clone, &["ls-tree", "-r", "--name-only", "main"])
        .ok()
        .stdout;
    assert!(files.contains("users/mo/v1.toml"), "{files}");

    // main checked out with uncommitted changes: sync says it left main alone.
    env.git("mo", &clone, &["stash", "--include-untracked", "--quiet"])
        .ok();
    env.git("mo", &clone, &["checkout", "--quiet", "main"]).ok();
    std::fs::write(clone.join("README.md"), "dirty\n").unwrap();
    env.join("zed", &id);
    env.cohort("admin", &["user", "approve", "zed"]).ok();
    env.cohort("mo", &["registry", "sync"])
        .ok()
        .says("left as is");
    assert_eq!(
        std::fs::read_to_string(clone.join("README.md")).unwrap(),
        "dirty\n"
    );
    // cohort reads the verified ref, so it sees zed anyway.
    let users = json(&env.cohort("mo", &["user", "ls", "--json"]).ok());
    assert!(
        users
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["handle"] == "zed")
    );
}

/// The root rotates to two admins with a threshold of two: the rotation and every grant after it
/// need both; co-signatures travel on the proposal's branch.
#[test]
fn root_rotation_and_threshold_grants() {
    let env = TestEnv::new();
    let id = env.init_shared("admin");
    env.join("erin", &id);
    env.cohort("admin", &["user", "approve", "erin"]).ok();
    env.join("carol", &id);
    env.cohort("admin", &["user", "approve", "carol"]).ok();
    let r = env
        .cohort(
            "admin",
            &[
                "registry",
                "rotate-root",
                "--admins",
                "admin,erin",
                "--threshold",
                "2",
            ],
        )
        .ok();
    r.says("registry cosign");
    let branch = "submit/admin/root-v2";
    env.cohort("admin", &["registry", "push", branch]).ok();
    // Merging before erin signs does not verify.
    env.cohort("admin", &["registry", "merge", branch])
        .fails(1)
        .says("root/v2.toml");
    env.cohort("erin", &["registry", "sync"]).ok();
    env.cohort("erin", &["registry", "cosign", branch]).ok();
    env.cohort("erin", &["registry", "merge", branch]).ok();
    let files = remote_files(&env);
    assert!(
        files.contains("root/v2.toml.erin.minisig") && files.contains("root/v2.toml.admin.minisig"),
        "{files}"
    );
    // A grant now needs both admins.
    env.cohort("admin", &["registry", "sync"]).ok();
    env.cohort(
        "admin",
        &["user", "grant", "carol", "--role", "benchmark-owner"],
    )
    .ok()
    .says("needs 2 admin signatures");
    let grant = "submit/admin/grant-carol-1";
    env.cohort("admin", &["registry", "push", grant]).ok();
    env.cohort("erin", &["registry", "sync"]).ok();
    env.cohort("erin", &["registry", "cosign", grant]).ok();
    env.cohort("erin", &["registry", "merge", grant]).ok();
    env.cohort("carol", &["registry", "sync"]).ok();
    env.cohort("carol", &["verify"]).ok();
    let users = json(&env.cohort("carol", &["user", "ls", "--json"]).ok());
    let carol = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["handle"] == "carol")
        .unwrap();
    assert_eq!(carol["roles"][0], "benchmark-owner");
    let admins: Vec<&str> = users
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["admin"] == true)
        .map(|u| u["handle"].as_str().unwrap())
        .collect();
    assert_eq!(admins, ["admin", "erin"]);
}

/// Forge mode: the approver pushes the signed approval onto the request's branch; the forge's
/// merge button (here: a plain `git merge` pushed through the hook) merges it; verify accepts
/// main either way, because the evidence is the record.
#[test]
fn forge_mode_approval_then_merge_button() {
    let env = TestEnv::new();
    let id = env.init_shared("admin");
    env.join("mo", &id);
    env.cohort("admin", &["user", "approve", "mo", "--no-merge"])
        .ok()
        .says("merge its pull request");
    let admin = env.clone_dir("admin");
    env.git("admin", &admin, &["fetch", "--quiet", "origin"])
        .ok();
    env.git(
        "admin",
        &admin,
        &[
            "merge",
            "--quiet",
            "--no-ff",
            "--no-edit",
            "origin/submit/mo/user-mo-v1",
        ],
    )
    .ok();
    env.git("admin", &admin, &["push", "--quiet", "origin", "main"])
        .ok();
    env.cohort("mo", &["registry", "sync"]).ok();
    env.cohort("mo", &["verify"]).ok();
    let st = json(&env.cohort("mo", &["registry", "status", "--json"]).ok());
    assert_eq!(st["mine"][0]["state"], "merged", "{st}");
}
