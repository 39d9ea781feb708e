//! One grammar and machine-readable output: -b/-d/-m beside the positional forms, `list` and
//! `set_priority` aliases, global options explained once, no unrelated tips, listing filters
//! on every `ls`, and `--json` shapes pinned by snapshots (docs/json.md).

use crate::env::{TestEnv, json};
use crate::world::World;

/// Ids, hashes, times, keys and temporary paths vary from run to run: replaced by placeholders
/// so a snapshot shows the shape and the stable values.
fn redact(v: &mut serde_json::Value, tmp: &str) {
    use serde_json::Value;
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if matches!(k.as_str(), "key_id" | "minisign" | "age" | "at" | "created")
                    && x.is_string()
                {
                    *x = Value::String(format!("[{k}]"));
                } else if k.ends_with("_ms") || k == "seconds" {
                    // Durations.
                    *x = Value::String("[duration]".into());
                } else {
                    redact(x, tmp);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| redact(x, tmp)),
        Value::String(s) => {
            let t = s.as_bytes();
            if t.len() >= 20 && t[4] == b'-' && s.contains('T') && s.contains(':') {
                *s = "[time]".into();
                return;
            }
            *s = s.replace(tmp, "[tmp]");
            *s = redact_hex(s);
        }
        _ => {}
    }
}

/// Runs of 12 or more hex digits (ids, hashes, commits, inside paths too) become `[hex]`.
fn redact_hex(s: &str) -> String {
    let mut out = String::new();
    let mut run = String::new();
    for c in s.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_hexdigit() {
            run.push(c);
            continue;
        }
        if run.len() >= 12 {
            out.push_str("[hex]");
        } else {
            out.push_str(&run);
        }
        run.clear();
        out.push(c);
    }
    out.pop();
    out
}

fn snapshot(env: &TestEnv, name: &str, stdout: &str) {
    let mut v: serde_json::Value = serde_json::from_str(stdout)
        .unwrap_or_else(|e| panic!("{name}: not JSON ({e}):\n{stdout}"));
    redact(&mut v, &env.path().display().to_string());
    insta::with_settings!({ snapshot_path => "snapshots", prepend_module_to_snapshot => false }, {
        insta::assert_snapshot!(name, serde_json::to_string_pretty(&v).unwrap());
    });
}

#[test]
fn help_usage_and_unknown_flags() {
    let env = TestEnv::new();
    let sub = env.cohort("u", &["user", "approve", "--help"]).ok();
    assert!(!sub.stdout.contains("--registry <PATH>"), "{}", sub.stdout);
    sub.says("see `cohort help options`");
    let top = env.cohort("u", &["--help"]).ok();
    top.says("--registry <PATH>").says("cohort help options");
    env.cohort("u", &["help", "options"])
        .ok()
        .says("COHORT_HOME")
        .says("--offline");
    // Manual pages: one per command into a folder; a path that is a file is refused as it is.
    let man = env.path().join("man");
    env.cohort("u", &["man", "--dir", man.to_str().unwrap()])
        .ok();
    assert!(man.join("cohort-registry-push.1").is_file());
    let file = env.path().join("not-a-folder");
    std::fs::write(&file, "mine").unwrap();
    env.cohort("u", &["man", "--dir", file.to_str().unwrap()])
        .fails(1)
        .says("not-a-folder: already exists")
        .says("hint:");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "mine");
    env.cohort("u", &["completions", "tcsh"]).fails(2);
    // An environment variable never makes an option look typed in a usage line.
    let usage = env
        .cohort_env(
            "u",
            &["user", "approve"],
            &[("COHORT_AS", "x"), ("COHORT_REGISTRY", "/tmp")],
        )
        .fails(2);
    usage.says("Usage: cohort user approve <HANDLE>");
    assert!(!usage.stderr.contains("--as"), "{}", usage.stderr);
    // A far-fetched tip is dropped; a typo still gets one.
    let far = env.cohort("u", &["verify", "--frobnicate"]).fails(2);
    assert!(!far.stderr.contains("tip"), "{}", far.stderr);
    assert!(!far.stderr.contains("from-git-env"), "{}", far.stderr);
    env.cohort("u", &["benchmark", "ls", "--pendng"])
        .fails(2)
        .says("'--pending'");
    // Aliases, kebab-case, and the positional form beside the flag (never both).
    env.cohort("u", &["association", "set_priority", "--help"])
        .ok()
        .says("cohort association set-priority");
    env.cohort("u", &["benchmark", "list", "--help"]).ok();
    env.cohort("u", &["benchmark", "view", "heart", "-b", "heart"])
        .fails(2)
        .says("cannot be used with");
    env.cohort("u", &["dataset", "view", "--help"])
        .ok()
        .says("-d, --dataset");
    env.cohort("u", &["mlcube", "view", "--help"])
        .ok()
        .says("-m, --model");
    env.cohort("u", &["leaderboard", "--help"])
        .ok()
        .says("-b, --benchmark");
}

#[test]
fn listing_filters_and_json_shapes() {
    let w = World::people();
    let e = &w.env;
    // zed waits on a branch; yan is turned down.
    e.join("zed", &w.id);
    e.join("yan", &w.id);
    let rejected = w
        .as_(
            "admin",
            &[
                "--json",
                "user",
                "reject",
                "yan",
                "--reason",
                "unknown to us",
            ],
        )
        .ok();
    snapshot(e, "user_reject", &rejected.stdout);
    w.as_("admin", &["registry", "sync"]).ok();

    let all = json(&w.as_("admin", &["user", "ls", "--json"]).ok());
    assert_eq!(all.as_array().unwrap().len(), 6, "{all}");
    let carol = json(
        &w.as_("admin", &["user", "list", "--owner", "carol", "--json"])
            .ok(),
    );
    assert_eq!(carol.as_array().unwrap().len(), 1, "{carol}");
    assert_eq!(carol[0]["handle"], "carol");
    let mine = json(&w.as_("dave", &["user", "ls", "--mine", "--json"]).ok());
    assert_eq!(mine[0]["handle"], "dave", "{mine}");
    snapshot(
        e,
        "user_ls_mine",
        &w.as_("dave", &["user", "ls", "--mine", "--json"])
            .ok()
            .stdout,
    );

    let pending = w
        .as_("admin", &["user", "ls", "--state", "pending", "--json"])
        .ok();
    snapshot(e, "user_ls_pending", &pending.stdout);
    let p = json(&pending);
    assert_eq!(p.as_array().unwrap().len(), 1, "{p}");
    assert_eq!(p[0]["owner"], "zed");
    let r = json(
        &w.as_("admin", &["user", "ls", "--state", "rejected", "--json"])
            .ok(),
    );
    assert_eq!(r[0]["owner"], "yan", "{r}");
    assert_eq!(r[0]["reason"], "unknown to us", "{r}");
    snapshot(
        e,
        "user_ls_rejected",
        &w.as_("admin", &["user", "ls", "--state", "rejected", "--json"])
            .ok()
            .stdout,
    );
    let none = json(
        &w.as_(
            "admin",
            &[
                "user", "ls", "--state", "pending", "--owner", "carol", "--json",
            ],
        )
        .ok(),
    );
    assert_eq!(none, serde_json::json!([]));
    w.as_("admin", &["user", "ls", "--state", "rejected"])
        .ok()
        .says("unknown to us");

    // Every registry listing takes the same filters; an empty listing is `[]`, never nothing.
    for ls in [
        &["benchmark", "ls"][..],
        &["mlcube", "list"],
        &["dataset", "ls"],
        &["association", "ls"],
        &["result", "ls"],
    ] {
        for state in ["pending", "approved", "rejected"] {
            let mut args = ls.to_vec();
            args.extend(["--mine", "--state", state, "--json"]);
            let out = json(&w.as_("carol", &args).ok());
            assert_eq!(out, serde_json::json!([]), "{args:?}");
        }
    }
    // Commands with nothing to do still answer in JSON.
    snapshot(
        e,
        "result_submit_nothing",
        &w.as_("carol", &["result", "submit", "--all", "--json"])
            .ok()
            .stdout,
    );
    snapshot(
        e,
        "registry_merge_nothing",
        &w.as_("carol", &["registry", "merge", "--all", "--json"])
            .ok()
            .stdout,
    );
    snapshot(
        e,
        "registry_status",
        &w.as_("zed", &["registry", "status", "--json"]).ok().stdout,
    );
    snapshot(
        e,
        "registry_fingerprint",
        &w.as_("carol", &["registry", "fingerprint", "--json"])
            .ok()
            .stdout,
    );
    snapshot(
        e,
        "key_ls",
        &w.as_("carol", &["key", "ls", "--json"]).ok().stdout,
    );
    snapshot(
        e,
        "user_grant",
        &w.as_(
            "admin",
            &[
                "--json",
                "user",
                "grant",
                "dave",
                "--role",
                "benchmark-owner",
            ],
        )
        .ok()
        .stdout,
    );
}

#[test]
fn views_and_filters_over_real_records() {
    if !crate::services::docker_or_skip("views_and_filters_over_real_records") {
        return;
    }
    let w = World::people();
    let e = &w.env;
    w.benchmark(&[]);
    w.hospital("hosp-a", "hospital-a", "ward-a");
    w.as_(
        "hosp-a",
        &["benchmark", "run", "-b", "heart", "-d", "ward-a"],
    )
    .ok();
    w.as_(
        "hosp-a",
        &["--yes", "result", "submit", "-b", "heart", "-d", "ward-a"],
    )
    .ok();
    w.as_("hosp-a", &["registry", "push"]).ok();
    w.as_("carol", &["registry", "sync"]).ok();
    let waiting = json(
        &w.as_(
            "carol",
            &[
                "result", "ls", "--state", "pending", "--owner", "hosp-a", "--json",
            ],
        )
        .ok(),
    );
    assert_eq!(waiting.as_array().unwrap().len(), 1, "{waiting}");
    assert_eq!(waiting[0]["owner"], "hosp-a");
    w.committee_merges("hosp-a");

    let registered = json(
        &w.as_(
            "dave",
            &[
                "result", "ls", "--state", "approved", "--owner", "hosp-a", "--json",
            ],
        )
        .ok(),
    );
    assert_eq!(registered.as_array().unwrap().len(), 1, "{registered}");
    let path = registered[0]["path"].as_str().unwrap().to_string();
    // The committee reads the sealed part; anyone else sees the record and `sealed: null`.
    let dave = w.as_("dave", &["result", "view", &path, "--json"]).ok();
    assert!(json(&dave)["sealed"].is_object(), "{}", dave.stdout);
    snapshot(e, "result_view_committee", &dave.stdout);
    let mo = json(&w.as_("mo", &["result", "view", &path, "--json"]).ok());
    assert!(mo["sealed"].is_null(), "{mo}");
    snapshot(
        e,
        "dataset_view_committee",
        &w.as_("dave", &["dataset", "view", "-d", "ward-a", "--json"])
            .ok()
            .stdout,
    );
    let positional = json(&w.as_("mo", &["dataset", "view", "ward-a", "--json"]).ok());
    assert!(positional["sealed"].is_null(), "{positional}");

    assert_eq!(
        json(
            &w.as_("mo", &["benchmark", "ls", "--owner", "carol", "--json"])
                .ok()
        )
        .as_array()
        .unwrap()
        .len(),
        1
    );
    snapshot(
        e,
        "benchmark_ls",
        &w.as_("mo", &["benchmark", "list", "--json"]).ok().stdout,
    );
    assert_eq!(
        json(&w.as_("carol", &["mlcube", "ls", "--mine", "--json"]).ok())
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let assoc = json(
        &w.as_(
            "mo",
            &[
                "association",
                "ls",
                "-b",
                "heart",
                "--state",
                "approved",
                "--owner",
                "hosp-a",
                "--json",
            ],
        )
        .ok(),
    );
    assert_eq!(assoc.as_array().unwrap().len(), 1, "{assoc}");
    assert_eq!(assoc[0]["kind"], "dataset");
    let mine = json(
        &w.as_(
            "hosp-a",
            &["dataset", "ls", "--mine", "--state", "approved", "--json"],
        )
        .ok(),
    );
    assert_eq!(mine.as_array().unwrap().len(), 1, "{mine}");
    snapshot(e, "dataset_ls_mine", &serde_json::to_string(&mine).unwrap());
    snapshot(
        e,
        "benchmark_view",
        &w.as_("mo", &["benchmark", "view", "-b", "heart", "--json"])
            .ok()
            .stdout,
    );
}
