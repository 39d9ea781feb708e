//! The foundation: keys, registry init, user request/approve, and `verify` catching every kind
//! of bad file in one run.

use cohort::model::Sha256;
use cohort::trust::sign;

use crate::env::{TestEnv, json};

/// The "done when": init, request, approve, verify; a flipped byte is caught.
#[test]
fn walkthrough_and_a_flipped_byte() {
    let env = TestEnv::new();
    let reg = env.clone_dir("site");
    let reg_s = reg.to_str().unwrap();
    env.cohort(
        "site",
        &["key", "generate", "--handle", "admin", "--no-passphrase"],
    )
    .ok();
    env.cohort(
        "site",
        &["key", "generate", "--handle", "alice", "--no-passphrase"],
    )
    .ok();
    let keys = json(&env.cohort("site", &["key", "ls", "--json"]).ok());
    assert_eq!(keys.as_array().unwrap().len(), 2);
    let id = env
        .cohort_in(
            "site",
            &env.role_dir("site"),
            &[
                "registry", "init", reg_s, "--name", "demo", "--admin", "admin",
            ],
            &[],
        )
        .ok();
    let id = id.stdout.trim().to_string();
    assert_eq!(id.len(), 64);
    // The registry id is the sha256 of root/v1.toml.
    let root = std::fs::read(reg.join("root/v1.toml")).unwrap();
    assert_eq!(Sha256::of(&root).to_string(), id);
    assert_eq!(
        env.cohort("site", &["registry", "fingerprint"])
            .ok()
            .stdout
            .trim(),
        id
    );

    env.cohort(
        "site",
        &[
            "--as",
            "alice",
            "user",
            "request",
            "--name",
            "Alice",
            "--email",
            "alice@example.org",
        ],
    )
    .ok();
    env.cohort("site", &["--as", "admin", "user", "approve", "alice"])
        .ok();
    env.cohort("site", &["verify"]).ok().says("verifies");
    let users = json(&env.cohort("site", &["user", "ls", "--json"]).ok());
    assert!(
        users
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["handle"] == "alice")
    );

    // Flip one byte of alice's file and commit it.
    let p = reg.join("users/alice/v1.toml");
    let mut bytes = std::fs::read(&p).unwrap();
    let i = bytes.iter().position(|b| *b == b'A').unwrap();
    bytes[i] = b'B';
    std::fs::write(&p, bytes).unwrap();
    env.commit_all("site", "tamper");
    let run = env.cohort("site", &["verify"]).fails(1);
    run.says("users/alice/v1.toml");
    run.says("does not match the file's bytes");
    let report = json(&env.cohort("site", &["verify", "--json"]).fails(1));
    assert_eq!(report["ok"], false);
    let problems = report["problems"].as_array().unwrap();
    assert!(
        problems
            .iter()
            .any(|p| p["path"] == "users/alice/v1.toml" && p["rule"] == "signature"),
        "{report}"
    );
    assert!(problems.iter().any(|p| p["rule"] == "history"), "{report}");
}

fn sign_file(
    env: &TestEnv,
    role: &str,
    registry: &str,
    path: &str,
    kind: &str,
    bytes: &[u8],
) -> Vec<u8> {
    let s = env.signer_of("site", role);
    sign::sign(&s, &registry.parse().unwrap(), path, kind, bytes).unwrap()
}

/// Every kind of bad file is reported, each naming its file, in one run.
#[test]
fn verify_lists_every_problem_in_one_run() {
    let env = TestEnv::new();
    let reg = env.clone_dir("site");
    let reg_s = reg.to_str().unwrap();
    for h in ["admin", "alice", "bob", "mallory", "erin"] {
        env.cohort(
            "site",
            &["key", "generate", "--handle", h, "--no-passphrase"],
        )
        .ok();
    }
    // Keys of everybody live in one home here; the signer decides who is who.
    let id = env
        .cohort_in(
            "site",
            &env.role_dir("site"),
            &[
                "registry", "init", reg_s, "--name", "demo", "--admin", "admin",
            ],
            &[],
        )
        .ok();
    let id = id.stdout.trim().to_string();
    for h in ["alice", "bob"] {
        env.cohort(
            "site",
            &[
                "--as",
                h,
                "user",
                "request",
                "--name",
                h,
                "--email",
                &format!("{h}@example.org"),
            ],
        )
        .ok();
        env.cohort("site", &["--as", "admin", "user", "approve", h])
            .ok();
    }
    env.cohort("site", &["verify"]).ok();

    let grant = |who: &str, n: u32, by: &str| {
        format!(
            "format = 1\nkind = \"grant\"\nnumber = {n}\nhandle = \"{who}\"\naction = \"grant-role\"\nrole = \"benchmark-owner\"\nby = \"{by}\"\nat = \"2026-11-27T10:00:00Z\"\n"
        )
    };
    // 1. tampered byte (alice's record), 2. CRLF flip (bob's record)
    let alice = reg.join("users/alice/v1.toml");
    let t = std::fs::read_to_string(&alice)
        .unwrap()
        .replace("alice@example.org", "alice@example.orh");
    std::fs::write(&alice, t).unwrap();
    let bob = reg.join("users/bob/v1.toml");
    let t = std::fs::read_to_string(&bob).unwrap().replace('\n', "\r\n");
    std::fs::write(&bob, t).unwrap();
    // 3. signed by an unknown key, 4. signed by a non-admin
    let g = grant("alice", 1, "mallory");
    env.write("site", "grants/alice/1.toml", g.as_bytes());
    env.write(
        "site",
        "grants/alice/1.toml.mallory.minisig",
        &sign_file(
            &env,
            "mallory",
            &id,
            "grants/alice/1.toml",
            "grant",
            g.as_bytes(),
        ),
    );
    let g = grant("bob", 1, "alice");
    env.write("site", "grants/bob/1.toml", g.as_bytes());
    env.write(
        "site",
        "grants/bob/1.toml.alice.minisig",
        &sign_file(
            &env,
            "alice",
            &id,
            "grants/bob/1.toml",
            "grant",
            g.as_bytes(),
        ),
    );
    // 5. a valid signed file copied to another path
    let g = grant("alice", 1, "admin");
    let sig = sign_file(
        &env,
        "admin",
        &id,
        "grants/alice/1.toml",
        "grant",
        g.as_bytes(),
    );
    env.write("site", "grants/erin/1.toml", g.as_bytes());
    env.write("site", "grants/erin/1.toml.admin.minisig", &sig);
    // 6. unsigned file
    env.write(
        "site",
        "grants/bob/2.toml",
        grant("bob", 2, "admin").as_bytes(),
    );
    // 7. unknown file, 8. symlink
    env.write("site", "notes.txt", b"hello");
    std::os::unix::fs::symlink("README.md", reg.join("link.toml")).unwrap();
    // 9. unknown key, 10. duplicate key (both signed by erin, self-signed)
    let erin = env.signer_of("site", "erin");
    let user = format!(
        "format = 1\nkind = \"user\"\nhandle = \"erin\"\nversion = 1\nname = \"Erin\"\nemail = \"erin@example.org\"\nminisign = \"{}\"\nage = \"{}\"\ncreated = \"2026-11-27T10:00:00Z\"\nrole = \"admin\"\n",
        erin.public.minisign, erin.public.age
    );
    env.write("site", "users/erin/v1.toml", user.as_bytes());
    env.write(
        "site",
        "users/erin/v1.toml.erin.minisig",
        &sign_file(
            &env,
            "erin",
            &id,
            "users/erin/v1.toml",
            "user",
            user.as_bytes(),
        ),
    );
    let dup = user.replace("role = \"admin\"\n", "name = \"Erin again\"\n");
    env.write("site", "users/erin/v2.toml", dup.as_bytes());
    // 11. a 100 MB file, 12. an id differing only in case
    let f = std::fs::File::create(reg.join("users/alice/v2.toml")).unwrap();
    f.set_len(100 << 20).unwrap();
    let a = std::fs::read(reg.join("users/alice/v1.toml")).unwrap();
    env.write("site", "users/Alice/v1.toml", &a);
    // 13. issue 14: a global signature of 3 bytes made minisign panic (exit 101) for ever
    let g = grant("dave", 1, "admin");
    env.write("site", "grants/dave/1.toml", g.as_bytes());
    let sig = sign_file(
        &env,
        "admin",
        &id,
        "grants/dave/1.toml",
        "grant",
        g.as_bytes(),
    );
    let text = String::from_utf8(sig).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines[3] = "YWJj";
    env.write(
        "site",
        "grants/dave/1.toml.admin.minisig",
        format!("{}\n", lines.join("\n")).as_bytes(),
    );
    env.commit_all("site", "everything wrong at once");

    let run = env.cohort("site", &["verify"]).fails(1);
    let out = run.all();
    let expect = [
        ("users/alice/v1.toml", "does not match the file's bytes"),
        ("users/bob/v1.toml", "carriage return"),
        (
            "grants/alice/1.toml.mallory.minisig",
            "mallory is not an admin",
        ),
        ("grants/bob/1.toml.alice.minisig", "alice is not an admin"),
        ("grants/erin/1.toml", "handle differs from the folder name"),
        (
            "grants/erin/1.toml.admin.minisig",
            "was made for `grants/alice/1.toml`",
        ),
        ("grants/bob/2.toml", "is not signed"),
        ("notes.txt", "unknown file"),
        ("link.toml", "symbolic link"),
        ("users/erin/v1.toml", "unknown field `role`"),
        ("users/erin/v2.toml", "duplicate key"),
        ("users/alice/v2.toml", "over the 262144-byte limit"),
        ("users/Alice/v1.toml", "only in case"),
        (
            "grants/dave/1.toml.admin.minisig",
            "malformed signature file: line 4 is not the base64 of a 64-byte",
        ),
    ];
    for (path, why) in expect {
        assert!(
            out.lines()
                .any(|l| l.starts_with(&format!("{path}: ")) && l.contains(why)),
            "expected a problem `{path}: ...{why}...` in:\n{out}"
        );
    }
    // The range check CI and the hook run reads the same file: a problem, not exit 101.
    let range = env
        .cohort("site", &["verify", "--range", "HEAD~1..HEAD"])
        .fails(1);
    assert!(
        range.all().contains("line 4 is not the base64"),
        "{}",
        range.all()
    );
    let report = json(&env.cohort("site", &["verify", "--json"]).fails(1));
    assert!(report["problems"].as_array().unwrap().len() >= expect.len());
}

#[test]
fn passphrases_and_missing_keys() {
    let env = TestEnv::new();
    let reg = env.clone_dir("site");
    env.cohort_env(
        "site",
        &["key", "generate", "--handle", "admin"],
        &[("COHORT_PASSPHRASE", "correct horse")],
    )
    .ok();
    // No terminal and no passphrase source: refused with a hint, nothing created.
    env.cohort("site", &["key", "generate", "--handle", "carol"])
        .fails(1)
        .says("COHORT_PASSPHRASE");
    assert!(!env.cohort_home("site").join("keys/carol").exists());
    // An empty passphrase is refused.
    env.cohort_env(
        "site",
        &["key", "generate", "--handle", "dave"],
        &[("COHORT_PASSPHRASE", "")],
    )
    .fails(1)
    .says("empty");
    // A second key with the same handle never overwrites the first.
    env.cohort(
        "site",
        &["key", "generate", "--handle", "admin", "--no-passphrase"],
    )
    .fails(1)
    .says("already exists");

    let reg_s = reg.to_str().unwrap();
    env.cohort_env(
        "site",
        &[
            "registry", "init", reg_s, "--name", "demo", "--admin", "admin",
        ],
        &[("COHORT_PASSPHRASE", "wrong")],
    )
    .fails(1)
    .says("wrong passphrase for the key of `admin`");
    assert!(!reg.exists(), "a failed init leaves nothing behind");
    let pass_file = env.path().join("pass.txt");
    std::fs::write(&pass_file, "correct horse\n").unwrap();
    env.cohort_in(
        "site",
        &env.role_dir("site"),
        &[
            "--passphrase-file",
            pass_file.to_str().unwrap(),
            "registry",
            "init",
            reg_s,
            "--name",
            "demo",
            "--admin",
            "admin",
        ],
        &[],
    )
    .ok();
    // A missing key names the handle and says how to create it.
    env.cohort(
        "site",
        &[
            "--as",
            "nobody",
            "user",
            "request",
            "--name",
            "N",
            "--email",
            "n@example.org",
        ],
    )
    .fails(1)
    .says("no key for `nobody`")
    .says("cohort key generate --handle nobody");
    let branches = env
        .git("site", &reg, &["branch", "--list", "submit/*"])
        .ok();
    assert!(
        branches.stdout.trim().is_empty(),
        "nothing half-written: {}",
        branches.stdout
    );
    // Secret files are 0600.
    use std::os::unix::fs::PermissionsExt;
    for f in ["minisign.key", "age.key"] {
        let m = std::fs::metadata(env.cohort_home("site").join("keys/admin").join(f))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(m & 0o777, 0o600, "{f}");
    }
}

#[test]
fn doctor_says_what_is_missing_and_how_to_fix_it() {
    let env = TestEnv::new();
    let r = env.cohort("site", &["doctor", "--json"]).fails(3);
    let report = json(&r);
    let checks = report["checks"].as_array().unwrap();
    let keys = checks.iter().find(|c| c["name"] == "keys").unwrap();
    assert_eq!(keys["ok"], false);
    assert!(
        keys["fix"]
            .as_str()
            .unwrap()
            .contains("cohort key generate")
    );
    let docker = checks.iter().find(|c| c["name"] == "docker").unwrap();
    assert_eq!(docker["ok"], true, "{docker}");
    env.key("site");
    env.cohort("site", &["doctor"])
        .ok()
        .says("can create containers");
    // Docker unreachable: named, with a fix, exit 3.
    env.cohort_env(
        "site",
        &["doctor"],
        &[("DOCKER_HOST", "unix:///nonexistent.sock")],
    )
    .fails(3)
    .says("FAIL docker");
}
