//! Forgeries beyond the records' contents: git objects shaped so that readers disagree, keys
//! relabelled to slip past a revocation, signatures that arrive after what they vouch for. Each
//! is attacked through the real binary: the hook, a site's `registry sync`, a fresh clone and
//! `verify` with and without this machine's caches (see `forgery::Stage::refused_everywhere`).

use git2::{ObjectType, Oid, Repository};

use crate::forgery::Stage;

/// One tree entry: mode, name, object.
type Entry = (&'static str, String, Oid);

/// A tree object written byte by byte (git's own tools refuse to write these).
fn raw_tree(repo: &Repository, entries: &[Entry]) -> Oid {
    let mut raw = Vec::new();
    for (mode, name, oid) in entries {
        raw.extend_from_slice(format!("{mode} {name}\0").as_bytes());
        raw.extend_from_slice(oid.as_bytes());
    }
    repo.odb().unwrap().write(ObjectType::Tree, &raw).unwrap()
}

/// `tree` with the entry at `path` (a folder path, `/`-separated) replaced by what `edit`
/// makes of that folder's entries.
fn rewrite(
    repo: &Repository,
    tree: &git2::Tree,
    path: &[&str],
    edit: &dyn Fn(Vec<Entry>) -> Vec<Entry>,
) -> Oid {
    let mut entries: Vec<Entry> = tree
        .iter()
        .map(|e| {
            let mode = if e.kind() == Some(ObjectType::Tree) {
                "40000"
            } else {
                "100644"
            };
            (mode, e.name().unwrap().to_string(), e.id())
        })
        .collect();
    match path.split_first() {
        None => entries = edit(entries),
        Some((first, rest)) => {
            let e = entries.iter_mut().find(|e| e.1 == *first).unwrap();
            let sub = repo.find_tree(e.2).unwrap();
            e.2 = rewrite(repo, &sub, rest, edit);
        }
    }
    raw_tree(repo, &entries)
}

/// carol admitted by the admin, with main's tip replaced by the same commit over a tree in
/// which `edit` rewrote carol's folder; the admin's clone is reset to it, ready to push.
fn admit_carol_with_folder(s: &Stage, edit: &dyn Fn(&Repository, Vec<Entry>) -> Vec<Entry>) {
    let env = &s.env;
    env.join("carol", &s.id);
    // Fetch carol's request, then approve without pushing: the forged main is pushed below.
    env.cohort("admin", &["registry", "sync"]).ok();
    env.cohort("admin", &["--offline", "user", "approve", "carol"])
        .ok();
    let repo = Repository::open(env.clone_dir("admin")).unwrap();
    let head = repo.head().unwrap().peel_to_commit().unwrap();
    let tree = rewrite(&repo, &head.tree().unwrap(), &["users", "carol"], &|e| {
        edit(&repo, e)
    });
    let parents: Vec<git2::Commit> = head.parents().collect();
    let sig = head.author();
    let commit = repo
        .commit(
            None,
            &sig,
            &sig,
            "admit carol",
            &repo.find_tree(tree).unwrap(),
            &parents.iter().collect::<Vec<_>>(),
        )
        .unwrap();
    s.git(&["reset", "--quiet", "--hard", &commit.to_string()]);
}

/// A newly admitted user's record carried twice in its folder: first a forged copy (git's
/// lookups, `git show` and forges read that one), then the signed one. Whichever a reader
/// takes, readers disagree on what main holds; the folder is refused.
#[test]
fn a_folder_with_two_entries_of_one_name_is_refused() {
    let s = Stage::new();
    admit_carol_with_folder(&s, &|repo, mut e| {
        let real = String::from_utf8(s.read("users/carol/v1.toml")).unwrap();
        let forged = repo
            .blob(real.replace("carol person", "someone else").as_bytes())
            .unwrap();
        let at = e.iter().position(|x| x.1 == "v1.toml").unwrap();
        e.insert(at, ("100644", "v1.toml".into(), forged));
        e
    });
    let shown = s.git(&["show", "main:users/carol/v1.toml"]);
    assert!(
        shown.contains("someone else"),
        "git reads the first: {shown}"
    );
    s.refused_everywhere(
        "holds two entries named `v1.toml`",
        "malformed-tree",
        Some("holds two entries named `v1.toml`"),
    );
}

/// The signed record under a file mode git never writes (old gits' group-writable `100664`):
/// libgit2 reads it as a plain file and verification used to take it; `git fsck` flags it, and
/// what a tree holds must be what git itself writes. Refused as a malformed tree.
#[test]
fn a_file_mode_git_never_writes_is_refused() {
    let s = Stage::new();
    admit_carol_with_folder(&s, &|_, mut e| {
        let record = e.iter_mut().find(|x| x.1 == "v1.toml").unwrap();
        record.0 = "100664";
        e
    });
    s.refused_everywhere(
        "file mode 100664",
        "malformed-tree",
        Some("file mode 100664"),
    );
}

/// Commits a version 2 of bob's user record naming the key `minisign`, with the signature
/// `bob_signs` makes over it (given its path and bytes) and the admin's signed approval, as a
/// merge would.
fn commit_bob_v2(s: &Stage, minisign: String, bob_signs: &dyn Fn(&str, &[u8]) -> Vec<u8>) {
    use cohort::model::{self, Record, Sha256, build};
    use cohort::trust::sign;
    let admin = s.env.signer("admin");
    let id: Sha256 = s.id.parse().unwrap();
    let v1_path = build::user("bob", 1);
    let v1_bytes = s.read(&v1_path);
    let Record::User(v1) =
        model::parse_record(&v1_path, &model::classify(&v1_path).unwrap(), &v1_bytes).unwrap()
    else {
        unreachable!()
    };
    let v2 = model::User {
        version: 2,
        previous: Some(Sha256::of(&v1_bytes)),
        minisign,
        ..v1
    };
    let path = build::user("bob", 2);
    let bytes = model::to_bytes(&v2);
    let approval = model::Decision {
        format: model::FORMAT_VERSION,
        kind: "approval".into(),
        subject: path.clone(),
        subject_sha256: Sha256::of(&bytes),
        by: "admin".into(),
        at: "2026-01-02T00:00:00Z".into(),
        reason: None,
    };
    let dpath = build::decision(&path, model::DecisionKind::Approval, "admin");
    let dbytes = model::to_bytes(&approval);
    let dsig = sign::sign(&admin, &id, &dpath, "approval", &dbytes).unwrap();
    s.commit(
        &[
            (build::signature(&path, "bob"), bob_signs(&path, &bytes)),
            (path, bytes),
            (build::signature(&dpath, "admin"), dsig),
            (dpath, dbytes),
        ],
        "bob's new key",
    );
}

/// bob's signature over `bytes` at `path` with line 2 (algorithm, key id, signature) replaced
/// by what `edit` makes of its bytes.
fn bob_signature_edited(
    s: &Stage,
    path: &str,
    bytes: &[u8],
    edit: &dyn Fn(&mut Vec<u8>),
) -> Vec<u8> {
    let id: cohort::model::Sha256 = s.id.parse().unwrap();
    let bob = s.env.signer("bob");
    let sig = cohort::trust::sign::sign(&bob, &id, path, "user", bytes).unwrap();
    let mut lines: Vec<String> = String::from_utf8(sig)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let mut raw = crate::forgery::b64::decode(&lines[1]);
    edit(&mut raw);
    lines[1] = crate::forgery::b64::encode(&raw);
    format!("{}\n", lines.join("\n")).into_bytes()
}

/// bob's key is revoked; a "new key" bob asks to register is his revoked key relabelled with
/// another id (the id is not signed), and an admin approves it. Key ids are labels: the raw
/// key stays revoked, and the version registering it is refused.
#[test]
fn a_revoked_key_relabelled_as_a_new_key_is_refused() {
    let s = Stage::new();
    s.revoke_bob();
    let bob = s.env.signer("bob");
    let label = [0x42u8; 8];
    let mut pk = minisign::PublicKey::from_base64(&bob.public.minisign)
        .unwrap()
        .to_bytes();
    pk[2..10].copy_from_slice(&label);
    let key = minisign::PublicKey::from_bytes(&pk).unwrap().to_base64();
    // Signed with bob's (revoked) key, the signature relabelled to match.
    commit_bob_v2(&s, key, &|path, bytes| {
        bob_signature_edited(&s, path, bytes, &|raw| raw[2..10].copy_from_slice(&label))
    });
    s.refused_everywhere(
        "was revoked before it",
        "revoked-key",
        Some("was revoked before it"),
    );
}

/// A "new key" whose bytes are the identity point written with y = p + 1: minisign misses it
/// in its identity test and accepts, under it, a signature anyone can write without any secret
/// (R the identity, s = 0). An admin approves the version naming it; from then on anyone could
/// sign as bob. The key is refused as one of small order, so the forged version is too (the
/// code before this check verified it clean).
#[test]
fn a_key_of_small_order_is_refused_though_its_forged_signatures_verify() {
    let s = Stage::new();
    s.env.join("bob", &s.id);
    s.env.cohort("admin", &["user", "approve", "bob"]).ok();
    let label = [0x77u8; 8];
    let mut weak = [0xffu8; 32];
    weak[0] = 0xee;
    weak[31] = 0x7f;
    let key = minisign::PublicKey::from_bytes(&[&b"Ed"[..], &label, &weak].concat())
        .unwrap()
        .to_base64();
    // No secret involved: R = the identity (canonical), s = 0, for both signatures.
    let mut nothing = [0u8; 64];
    nothing[0] = 1;
    commit_bob_v2(&s, key, &|path, bytes| {
        let sig = bob_signature_edited(&s, path, bytes, &|raw| {
            raw[2..10].copy_from_slice(&label);
            raw[10..74].copy_from_slice(&nothing);
        });
        let mut lines: Vec<String> = String::from_utf8(sig)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        lines[3] = crate::forgery::b64::encode(&nothing);
        format!("{}\n", lines.join("\n")).into_bytes()
    });
    s.refused_everywhere("small order", "limits", Some("small order"));
}
