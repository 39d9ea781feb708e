//! Sealed data and pseudonyms (issue 13, classes 4 and 6), attacked through the real binary:
//! a result sealed to outsiders under an honest-looking recipient list is refused by the
//! committee member asked to merge it, and, forced onto main with plain git, is left out of a
//! release that lists it with a reason code; a pseudonymised release links no pseudonym to a
//! dataset in any rendering or file, the public verify checks its digest set and counts, and a
//! committee member's check catches a cell swapped between two pseudonyms.

use cohort::model::{self, Record, Sha256, build};
use cohort::registry::NewFile;
use cohort::trust::sign;

use crate::env::json;
use crate::world::World;

/// `git` in `role`'s clone, returning stdout.
fn git(w: &World, role: &str, args: &[&str]) -> String {
    let e = &w.env;
    e.git(role, &e.clone_dir(role), args).ok().stdout
}

fn repo(w: &World, role: &str) -> git2::Repository {
    git2::Repository::open(w.env.clone_dir(role)).unwrap()
}

/// Signs `bytes` as `signer` for `path` in this registry.
fn signed(w: &World, signer: &str, path: &str, bytes: &[u8]) -> NewFile {
    let kind = model::classify(path).unwrap().kind().unwrap();
    let sig = sign::sign(
        &w.env.signer(signer),
        &w.id.parse().unwrap(),
        path,
        kind.as_str(),
        bytes,
    )
    .unwrap();
    NewFile::new(build::signature(path, signer), sig)
}

/// Writes files into `role`'s work tree and commits them with git (no cohort involved).
fn plant(w: &World, role: &str, files: &[NewFile], msg: &str) {
    for f in files {
        w.env.write(role, &f.path, &f.bytes);
    }
    w.env.commit_all(role, msg);
}

fn reset(w: &World, role: &str) {
    git(w, role, &["reset", "--quiet", "--hard", "origin/main"]);
}

/// Each hospital runs the benchmark and submits its results.
fn run_and_submit(w: &World, role: &str, dataset: &str) {
    w.as_(role, &["registry", "sync"]).ok();
    w.as_(role, &["benchmark", "run", "-b", "heart", "-d", dataset])
        .ok();
    w.as_(
        role,
        &["--yes", "result", "submit", "-b", "heart", "-d", dataset],
    )
    .ok();
}

/// Rewrites `role`'s submission branch (the first whose name starts with `prefix`) so the
/// payload sealed for `purpose` is encrypted to `role` and two outsiders instead of the
/// committee, while the signed manifest still lists the committee: as many X25519 stanzas as
/// listed recipients, so the count `verify` can check is right. Returns the branch, the record
/// and the sealed file.
fn reseal_to_outsiders(
    w: &World,
    role: &str,
    prefix: &str,
    purpose: &str,
) -> (String, String, String) {
    let branches = w.branches(role);
    let branch = branches
        .lines()
        .map(|l| l.trim().trim_start_matches("* ").to_string())
        .find(|b| b.starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix}* branch in {branches}"));
    let added = git(w, role, &["show", "--name-only", "--format=", &branch]);
    let record_path = added
        .lines()
        .find(|p| model::classify(p).is_ok_and(|rp| rp.kind().is_some()) && !p.contains(".minisig"))
        .unwrap()
        .to_string();
    let sealed_path = build::sealed(&record_path, purpose);
    let repo = repo(w, role);
    let tip = repo
        .revparse_single(&branch)
        .unwrap()
        .peel_to_commit()
        .unwrap();
    let read = |p: &str| {
        let entry = tip
            .tree()
            .unwrap()
            .get_path(std::path::Path::new(p))
            .unwrap();
        repo.find_blob(entry.id()).unwrap().content().to_vec()
    };
    let rp = model::classify(&record_path).unwrap();
    let mut record = model::parse_record(&record_path, &rp, &read(&record_path)).unwrap();
    let slot = match &mut record {
        Record::Result(r) => r.sealed.as_mut(),
        Record::Association(a) => a.sealed.as_mut(),
        Record::Dataset(d) => Some(&mut d.statistics),
        _ => None,
    }
    .unwrap_or_else(|| panic!("{record_path} carries nothing sealed"));
    assert_eq!(slot.recipients.len(), 3, "carol, dave and {role}");
    let plain =
        model::envelope::open(slot, &read(&sealed_path), w.env.signer(role).decryptor()).unwrap();
    let outsider = |h: &str| model::SealedFor {
        handle: h.into(),
        age: age::x25519::Identity::generate().to_public().to_string(),
    };
    let me = slot.recipients.iter().find(|r| r.handle == role).unwrap();
    let (_, forged) = model::envelope::seal(
        &plain,
        &[me.clone(), outsider("eve"), outsider("mallory")],
        &slot.file,
        &slot.schema,
    )
    .unwrap();
    slot.ciphertext_sha256 = Sha256::of(&forged);
    let bytes = match &record {
        Record::Result(r) => model::to_bytes(r),
        Record::Association(a) => model::to_bytes(a),
        Record::Dataset(d) => model::to_bytes(d),
        _ => unreachable!("matched above"),
    };
    let files = vec![
        NewFile::new(record_path.clone(), bytes.clone()),
        signed(w, role, &record_path, &bytes),
        NewFile::new(sealed_path.clone(), forged),
    ];
    // The submission rebuilt on the same base, as if cohort had written the forgery.
    let base = tip.parent_id(0).unwrap();
    let c = cohort::registry::commit_files(&repo, base, &files, "reseal", role).unwrap();
    cohort::registry::set_branch(&repo, &branch, c, "reseal").unwrap();
    (branch, record_path, sealed_path)
}

#[test]
fn statistics_and_reports_sealed_to_outsiders_are_not_merged_or_approved() {
    let w = World::people();
    let e = &w.env;
    w.benchmark(&[]);
    w.as_(
        "hosp-b",
        &[
            "dataset",
            "prepare",
            "-b",
            "heart",
            "--name",
            "ward-b",
            "--data-path",
            &e.data("hospital-b/data"),
            "--labels-path",
            &e.data("hospital-b/labels"),
        ],
    )
    .ok();
    // Statistics sealed to outsiders: the committee member asked to merge them refuses.
    w.as_("hosp-b", &["--yes", "dataset", "submit", "ward-b"])
        .ok();
    let (branch, _, statistics) =
        reseal_to_outsiders(&w, "hosp-b", "submit/hosp-b/dataset-", "statistics");
    w.as_("hosp-b", &["registry", "push"]).ok();
    w.as_("carol", &["registry", "sync"]).ok();
    w.as_("carol", &["registry", "merge", &branch])
        .fails(1)
        .says(&statistics)
        .says("undecryptable")
        .says("hint:");
    // Submitted again honestly, it merges.
    w.as_("hosp-b", &["--yes", "dataset", "submit", "ward-b"])
        .ok();
    w.committee_merges("hosp-b");
    w.as_("hosp-b", &["dataset", "check", "ward-b"]).ok();
    // A compatibility report sealed to outsiders: `association approve` refuses it.
    w.as_(
        "hosp-b",
        &["dataset", "associate", "-d", "ward-b", "-b", "heart"],
    )
    .ok();
    let (_, _, report) = reseal_to_outsiders(&w, "hosp-b", "submit/hosp-b/association-", "report");
    w.as_("hosp-b", &["registry", "push"]).ok();
    w.as_(
        "carol",
        &["association", "approve", "-b", "heart", "-d", "ward-b"],
    )
    .fails(1)
    .says(&report)
    .says("undecryptable");
    w.as_(
        "hosp-b",
        &["benchmark", "run", "-b", "heart", "-d", "ward-b"],
    )
    .fails(1)
    .says("no approved association");
}

#[test]
fn results_sealed_to_outsiders_are_refused_and_left_out_of_releases() {
    let w = World::people();
    let e = &w.env;
    w.benchmark(&[]);
    w.hospital("hosp-a", "hospital-a", "ward-a");
    w.hospital("hosp-b", "hospital-b", "ward-b");
    run_and_submit(&w, "hosp-a", "ward-a");
    w.committee_merges("hosp-a");

    // hosp-b submits honestly, then reseals its result to two outsiders and itself: three
    // X25519 stanzas for the three recipients its manifest still lists (carol, dave, hosp-b),
    // so the stanza count `verify` can check is right.
    run_and_submit(&w, "hosp-b", "ward-b");
    let (branch, manifest_path, sealed_path) =
        reseal_to_outsiders(&w, "hosp-b", "submit/hosp-b/result-", "result");
    w.as_("hosp-b", &["registry", "push"]).ok();

    // Anyone's verify passes it (age stanzas do not name recipients)...
    w.as_(
        "hosp-b",
        &["verify", "--range", &format!("origin/main..{branch}")],
    )
    .ok();
    // ...but a committee member asked to merge it must decrypt it first, and cannot.
    w.as_("carol", &["registry", "sync"]).ok();
    w.as_("carol", &["registry", "merge", &branch])
        .fails(1)
        .says(&sealed_path)
        .says("undecryptable")
        .says("hint:");
    // The submitter cannot vouch for the committee either.
    w.as_("hosp-b", &["registry", "merge", &branch])
        .fails(1)
        .says("not on it")
        .says("committee");

    // Forced onto main with plain git: the hook's verify cannot tell, so it lands.
    let merged = {
        let repo = repo(&w, "hosp-b");
        let main = repo.revparse_single("origin/main").unwrap().id();
        let tip = repo.revparse_single(&branch).unwrap().id();
        cohort::registry::merge(&repo, main, tip, "force", "hosp-b").unwrap()
    };
    git(
        &w,
        "hosp-b",
        &[
            "push",
            "--quiet",
            "origin",
            &format!("{merged}:refs/heads/main"),
        ],
    );

    // The release still succeeds, leaves the forged result out and says so in the signed
    // record, with the reason code.
    w.as_("carol", &["registry", "sync"]).ok();
    w.as_("carol", &["result", "release", "-b", "heart"])
        .ok()
        .says("left out")
        .says(&manifest_path)
        .says("undecryptable");
    w.as_("hosp-a", &["registry", "sync"]).ok();
    let record =
        std::fs::read_to_string(e.clone_dir("hosp-a").join(build::leaderboard("heart", 1)))
            .unwrap();
    assert!(record.contains("[[excluded]]"), "{record}");
    assert!(
        record.contains(&format!("path = \"{manifest_path}\"")),
        "{record}"
    );
    assert!(record.contains("reason = \"undecryptable\""), "{record}");
    w.as_("hosp-a", &["verify"]).ok();
    let lb = json(&w.as_("hosp-a", &["leaderboard", "heart", "--json"]).ok());
    assert_eq!(lb["excluded"][0]["reason"], "undecryptable", "{lb}");
    assert_eq!(lb["entries"][0]["datasets"], 1, "{lb}");

    // Exclusions are checked for form: listing a covered result as left out fails verify.
    w.as_("mo", &["registry", "sync"]).ok();
    let covered = json(
        &w.as_("carol", &["result", "ls", "--registered", "--json"])
            .ok(),
    );
    let a_path = covered
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["path"].as_str().unwrap().to_string())
        .find(|p| p != &manifest_path)
        .unwrap();
    let a_sha = Sha256::of(&std::fs::read(e.clone_dir("mo").join(&a_path)).unwrap());
    let path2 = build::leaderboard("heart", 2);
    let both = format!(
        "{}\n[[excluded]]\npath = \"{a_path}\"\nsha256 = \"{a_sha}\"\nreason = \"undecryptable\"\n",
        record
            .replace("number = 1", "number = 2")
            .replace("1.pseudonyms.age", "2.pseudonyms.age")
    );
    let age = std::fs::read(
        e.clone_dir("mo")
            .join(build::sealed(&build::leaderboard("heart", 1), "pseudonyms")),
    )
    .unwrap();
    plant(
        &w,
        "mo",
        &[
            NewFile::new(path2.clone(), both.clone().into_bytes()),
            signed(&w, "carol", &path2, both.as_bytes()),
            NewFile::new(build::sealed(&path2, "pseudonyms"), age),
        ],
        "exclude a covered result",
    );
    w.as_("mo", &["verify"])
        .fails(1)
        .says(&format!("both covers and excludes {a_path}"));
    reset(&w, "mo");
}

#[test]
fn pseudonymised_releases_link_no_pseudonym_to_a_dataset() {
    let w = World::people();
    let e = &w.env;
    w.benchmark(&["--policy", "cross-product"]);
    w.hospital("hosp-a", "hospital-a", "ward-a");
    w.hospital("hosp-b", "hospital-b", "ward-b");
    for (role, name) in [("hosp-a", "ward-a"), ("hosp-b", "ward-b")] {
        run_and_submit(&w, role, name);
        w.committee_merges(role);
    }
    w.as_("carol", &["result", "release", "-b", "heart"]).ok();
    let registered = json(
        &w.as_("carol", &["result", "ls", "--registered", "--json"])
            .ok(),
    );
    let ids: Vec<String> = registered
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["dataset"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 2);
    let mut forbidden: Vec<String> = vec!["results/".into(), "ward-a".into(), "ward-b".into()];
    for id in &ids {
        forbidden.push(id.clone());
        forbidden.push(id[..12].to_string());
    }
    let links = |what: &str, text: &str| {
        for f in &forbidden {
            assert!(!text.contains(f.as_str()), "{what} names {f}:\n{text}");
        }
    };

    // Every rendering, made by someone outside the committee.
    w.as_("hosp-b", &["registry", "sync"]).ok();
    for format in ["table", "markdown", "json", "csv"] {
        let out = w
            .as_("hosp-b", &["leaderboard", "heart", "--format", format])
            .ok();
        assert!(out.stdout.contains("site-1"), "{format}: {}", out.stdout);
        links(format, &out.stdout);
    }
    let site = e.path().join("site");
    w.as_(
        "hosp-b",
        &[
            "leaderboard",
            "heart",
            "--format",
            "html",
            "-o",
            site.to_str().unwrap(),
        ],
    )
    .ok();
    let mut pages = 0;
    for entry in walk(&site) {
        let text = String::from_utf8_lossy(&std::fs::read(&entry).unwrap()).into_owned();
        links(&entry.display().to_string(), &text);
        pages += 1;
    }
    assert!(pages > 0);
    // No file on main puts a pseudonym next to a dataset id or a result path.
    let files = git(
        &w,
        "hosp-b",
        &["ls-tree", "-r", "--name-only", "origin/main"],
    );
    let mut with_pseudonyms = 0;
    for p in files.lines() {
        let bytes = git(&w, "hosp-b", &["show", &format!("origin/main:{p}")]);
        if bytes.contains("site-1") {
            with_pseudonyms += 1;
            links(p, &bytes);
        }
    }
    assert_eq!(with_pseudonyms, 1, "the release record");

    // The public verify checks the digest set and the counts...
    w.as_("hosp-b", &["verify"]).ok();
    // ...and the committee's check opens the mapping and every result.
    w.as_("dave", &["registry", "sync"]).ok();
    w.as_("dave", &["leaderboard", "heart", "--check"])
        .ok()
        .says("match");
    w.as_("hosp-b", &["leaderboard", "heart", "--check"])
        .fails(1)
        .says("not on the heart committee");

    // Hand-made releases, signed by carol, in mo's clone.
    w.as_("mo", &["registry", "sync"]).ok();
    let path1 = build::leaderboard("heart", 1);
    let record = std::fs::read_to_string(e.clone_dir("mo").join(&path1)).unwrap();
    let age = std::fs::read(e.clone_dir("mo").join(build::sealed(&path1, "pseudonyms"))).unwrap();
    let path2 = build::leaderboard("heart", 2);
    let release2 = |edit: &dyn Fn(String) -> String| -> Vec<NewFile> {
        let text = edit(
            record
                .replace("number = 1", "number = 2")
                .replace("1.pseudonyms.age", "2.pseudonyms.age"),
        );
        vec![
            NewFile::new(path2.clone(), text.clone().into_bytes()),
            signed(&w, "carol", &path2, text.as_bytes()),
            NewFile::new(build::sealed(&path2, "pseudonyms"), age.clone()),
        ]
    };
    // 1. a digest set that names something else
    let first_digest = record
        .lines()
        .skip_while(|l| !l.starts_with("inputs"))
        .find_map(|l| l.split('"').nth(1))
        .expect("the release lists its inputs by digest")
        .to_string();
    plant(
        &w,
        "mo",
        &release2(&|t| t.replacen(&first_digest, Sha256::of(b"x").as_str(), 1)),
        "wrong digest",
    );
    w.as_("mo", &["verify"])
        .fails(1)
        .says("which is no result manifest of heart on main");
    reset(&w, "mo");
    // 2. a wrong count of datasets
    plant(
        &w,
        "mo",
        &release2(&|t| t.replace("datasets = 2\n", "datasets = 3\n")),
        "wrong count",
    );
    w.as_("mo", &["verify"])
        .fails(1)
        .says("says it uses 3 dataset(s)");
    reset(&w, "mo");
    // 3. the cells of two pseudonyms swapped: nothing public changes, so it passes the hook
    // and everyone's verify; the committee's check names the cells.
    let swapped = release2(&|t| {
        t.replace("dataset = \"site-1\"", "dataset = \"site-x\"")
            .replace("dataset = \"site-2\"", "dataset = \"site-1\"")
            .replace("dataset = \"site-x\"", "dataset = \"site-2\"")
    });
    plant(&w, "mo", &swapped, "swap two cells");
    w.as_("mo", &["verify"]).ok();
    git(
        &w,
        "mo",
        &["push", "--quiet", "origin", "HEAD:refs/heads/main"],
    );
    w.as_("dave", &["registry", "sync"]).ok();
    w.as_("dave", &["leaderboard", "heart", "--check"])
        .fails(1)
        .says("the cell site-1 shows")
        .says("the cell site-2 shows");
    w.as_(
        "dave",
        &["leaderboard", "heart", "--check", "--release", "1"],
    )
    .ok();
    // A committee member's `verify` opens the mapping too; everyone else's passes.
    w.as_("dave", &["verify", "--committee"])
        .fails(1)
        .says("the cell site-1 shows");
    w.as_("dave", &["verify"]).ok();
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
