//! Forgeries of the registry's trust, each attacked through the real binary the way an outside
//! reviewer did it (plain git, an editor, a minisign library): the pre-receive hook must refuse
//! the push; a compromised server that installs it anyway must be refused by `registry sync` at a
//! site that verified main before, by a fresh `registry clone --root` on a new machine, and by
//! `verify` both with this machine's memo of earlier signature checks and with `--full`.

use std::io::Cursor;

use cohort::model::{self, Record, Sha256, build};
use cohort::trust::sign::Comment;

use crate::env::{TestEnv, json};

/// A minisign key made outside cohort, as an attacker makes one.
pub struct RawKey {
    pk: minisign::PublicKey,
    sk: minisign::SecretKey,
}

impl RawKey {
    pub fn new() -> RawKey {
        let kp = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
        RawKey {
            pk: kp.pk,
            sk: kp.sk,
        }
    }

    /// The public key in base64, labelled with key id `label` instead of its own.
    pub fn public(&self, label: Option<&[u8]>) -> String {
        let mut b = self.pk.to_bytes();
        if let Some(l) = label {
            b[2..10].copy_from_slice(l);
        }
        minisign::PublicKey::from_bytes(&b).unwrap().to_base64()
    }

    pub fn key_id(&self) -> String {
        key_id_of(self.pk.keynum())
    }

    /// A signature file in cohort's format, its key id field set to `label` when given.
    pub fn sign(
        &self,
        id: &str,
        path: &str,
        kind: &str,
        signer: &str,
        bytes: &[u8],
        label: Option<&[u8]>,
    ) -> Vec<u8> {
        let comment = Comment {
            registry: id.parse().unwrap(),
            format: model::FORMAT_VERSION,
            path: path.into(),
            sha256: Sha256::of(bytes),
            kind: kind.into(),
            signer: signer.into(),
        }
        .render();
        let sig = minisign::sign(None, &self.sk, Cursor::new(bytes), Some(&comment), None)
            .unwrap()
            .into_string();
        let Some(label) = label else {
            return sig.into_bytes();
        };
        // The key id is not covered by the signature: anyone can relabel one.
        let mut lines: Vec<String> = sig.lines().map(str::to_string).collect();
        let mut raw = b64::decode(&lines[1]);
        raw[2..10].copy_from_slice(label);
        lines[1] = b64::encode(&raw);
        format!("{}\n", lines.join("\n")).into_bytes()
    }
}

fn key_id_of(keynum: &[u8]) -> String {
    let mut le = [0u8; 8];
    le.copy_from_slice(&keynum[..8]);
    format!("{:016X}", u64::from_le_bytes(le))
}

/// Plain base64 (the tests need it only to relabel signatures).
pub mod b64 {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    pub fn encode(data: &[u8]) -> String {
        let mut out = String::new();
        for chunk in data.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    pub fn decode(s: &str) -> Vec<u8> {
        let mut bits = 0u32;
        let mut n = 0;
        let mut out = Vec::new();
        for c in s.bytes().filter(|c| *c != b'=') {
            let v = ABC.iter().position(|a| *a == c).expect("base64") as u32;
            bits = bits << 6 | v;
            n += 6;
            if n >= 8 {
                n -= 8;
                out.push((bits >> n) as u8);
                bits &= (1 << n) - 1;
            }
        }
        out
    }
}

/// A shared registry (bare remote with the hook), its admin, and a hospital that verified it.
pub struct Stage {
    pub env: TestEnv,
    pub id: String,
}

impl Stage {
    pub fn new() -> Stage {
        let env = TestEnv::new();
        let id = env.init_shared("admin");
        env.join("hosp", &id);
        env.cohort("admin", &["user", "approve", "hosp"]).ok();
        env.cohort("hosp", &["registry", "sync"]).ok();
        // The admin's machine has verified main: its memo holds every signature so far.
        env.cohort("admin", &["registry", "sync"]).ok();
        Stage { env, id }
    }

    pub fn read(&self, path: &str) -> Vec<u8> {
        std::fs::read(self.env.clone_dir("admin").join(path)).unwrap()
    }

    pub fn root(&self, version: u32) -> (Vec<u8>, model::Root) {
        let path = build::root(version);
        let bytes = self.read(&path);
        match model::parse_record(&path, &model::classify(&path).unwrap(), &bytes).unwrap() {
            Record::Root(r) => (bytes, r),
            _ => unreachable!(),
        }
    }

    /// Root v2 as the next version of v1, everything else kept (the caller changes admins).
    pub fn next_root(&self, nonce: &str) -> model::Root {
        let (v1_bytes, v1) = self.root(1);
        model::Root {
            version: 2,
            previous: Some(Sha256::of(&v1_bytes)),
            nonce: nonce.into(),
            rules: Some(model::RULES_VERSION),
            ..v1
        }
    }

    /// bob is admitted, then revoked; hosp syncs the revocation. Returns main before and
    /// after the revocation.
    pub fn revoke_bob(&self) -> (String, String) {
        let env = &self.env;
        env.join("bob", &self.id);
        env.cohort("admin", &["user", "approve", "bob"]).ok();
        let before = self.git(&["rev-parse", "main"]);
        env.cohort("admin", &["user", "revoke", "bob", "--reason", "stolen"])
            .ok();
        env.cohort("hosp", &["registry", "sync"]).ok();
        (before, self.git(&["rev-parse", "main"]))
    }

    pub fn git(&self, args: &[&str]) -> String {
        self.env
            .git("admin", &self.env.clone_dir("admin"), args)
            .ok()
            .stdout
            .trim()
            .to_string()
    }

    /// Adds `files` on the admin clone's main with plain git.
    pub fn commit(&self, files: &[(String, Vec<u8>)], msg: &str) {
        for (p, bytes) in files {
            self.env.write("admin", p, bytes);
        }
        self.env.commit_all("admin", msg);
    }

    pub fn push_main(&self) -> crate::env::Run {
        self.env.git(
            "admin",
            &self.env.clone_dir("admin"),
            &["push", "--quiet", "origin", "main"],
        )
    }

    /// The admin clone's main reaches no one (see the module comment). `fresh` is what a new
    /// machine's clone says, or None where a new machine cannot know (a dropped record).
    pub fn refused_everywhere(&self, hook_says: &str, verify_says: &str, fresh: Option<&str>) {
        let env = &self.env;
        let run = self.push_main();
        assert_ne!(run.code, 0, "the hook took the forgery:\n{}", run.all());
        run.says(hook_says);
        // A compromised server installs it anyway.
        let head = self.git(&["rev-parse", "main"]);
        env.git(
            "admin",
            &env.clone_dir("admin"),
            &["push", "--quiet", "origin", "main:refs/heads/evil"],
        )
        .ok();
        env.git(
            "admin",
            &env.remote(),
            &["update-ref", "refs/heads/main", &head],
        )
        .ok();
        env.cohort("hosp", &["registry", "sync"])
            .fails(1)
            .says(hook_says);
        if let Some(needle) = fresh {
            env.key("newsite");
            let dest = env.clone_dir("newsite");
            env.cohort_in(
                "newsite",
                &env.role_dir("newsite"),
                &[
                    "registry",
                    "clone",
                    env.remote().to_str().unwrap(),
                    dest.to_str().unwrap(),
                    "--root",
                    &self.id,
                ],
                &[],
            )
            .fails(1)
            .says(needle);
            assert!(!dest.exists(), "a refused clone keeps nothing");
        }
        // With the memo of earlier checks, and from scratch: the same verdict.
        let with_memo = json(&env.cohort("admin", &["verify", "main", "--json"]).fails(1));
        let full = json(
            &env.cohort("admin", &["verify", "main", "--full", "--json"])
                .fails(1),
        );
        assert_eq!(full["signatures_cached"], 0, "{full}");
        assert!(
            with_memo["signatures_cached"].as_u64().unwrap() > 0,
            "{with_memo}"
        );
        assert_eq!(with_memo["problems"], full["problems"]);
        assert!(full.to_string().contains(verify_says), "{full}");
    }
}

/// Class 1: a root v2 that keeps the handle `admin` but swaps in the attacker's key (labelled
/// with the real key's id), signed only by that key.
#[test]
fn a_root_rotation_signed_only_by_the_new_key_is_refused() {
    let s = Stage::new();
    let real = s.env.signer("admin");
    let real_pk = minisign::PublicKey::from_base64(&real.public.minisign).unwrap();
    let evil = RawKey::new();
    let mut v2 = s.next_root("00112233445566778899aabbccddeeff");
    v2.admins[0].minisign = evil.public(Some(real_pk.keynum()));
    let path = build::root(2);
    let bytes = model::to_bytes(&v2);
    let sig = evil.sign(
        &s.id,
        &path,
        "root",
        "admin",
        &bytes,
        Some(real_pk.keynum()),
    );
    s.commit(
        &[
            (path.clone(), bytes),
            (build::signature(&path, "admin"), sig),
        ],
        "rotate",
    );
    s.refused_everywhere("root/v2.toml", "root-threshold", Some("root/v2.toml"));
}

/// The same rotation done by the admin: signed with the old key and with the new one, each in
/// its own key-named signature file. The hook, a site's sync and verify accept it.
#[test]
fn an_admin_rotating_their_own_key_signs_with_both_keys() {
    let s = Stage::new();
    let real = s.env.signer("admin");
    let new = RawKey::new();
    let mut v2 = s.next_root("ffeeddccbbaa99887766554433221100");
    v2.admins[0].minisign = new.public(None);
    let path = build::root(2);
    let bytes = model::to_bytes(&v2);
    // Only the new key: refused (the old admins never agreed).
    let only_new = new.sign(&s.id, &path, "root", "admin", &bytes, None);
    s.commit(
        &[
            (path.clone(), bytes.clone()),
            (
                build::key_signature(&path, "admin", &new.key_id()),
                only_new,
            ),
        ],
        "rotate, new key only",
    );
    let run = s.push_main();
    assert_ne!(run.code, 0, "{}", run.all());
    run.says("the admins of version 1");
    // Add the old key's signature: accepted everywhere.
    let old =
        cohort::trust::sign::sign(&real, &s.id.parse().unwrap(), &path, "root", &bytes).unwrap();
    s.commit(
        &[(
            build::key_signature(&path, "admin", &real.public.key_id),
            old,
        )],
        "rotate, old key too",
    );
    s.push_main().ok();
    s.env.cohort("hosp", &["registry", "sync"]).ok();
    s.env.cohort("hosp", &["verify", "--full"]).ok();
    let users = json(&s.env.cohort("hosp", &["user", "ls", "--json"]).ok());
    assert!(users.to_string().contains("\"admin\""), "{users}");
}

/// Class 2: one key under two admin handles (two chosen key ids) meets no threshold of 2.
#[test]
fn one_key_under_two_admin_handles_is_one_vote() {
    let s = Stage::new();
    let real = s.env.signer("admin");
    let k = RawKey::new();
    let mut v2 = s.next_root("0123456789abcdef0123456789abcdef");
    v2.threshold = 2;
    let mut twin = v2.admins[0].clone();
    twin.handle = "twin-a".into();
    twin.minisign = k.public(None);
    let mut other = twin.clone();
    other.handle = "twin-b".into();
    other.minisign = k.public(Some(&[7, 7, 7, 7, 7, 7, 7, 7]));
    v2.admins = vec![twin, other];
    let path = build::root(2);
    let bytes = model::to_bytes(&v2);
    let files = vec![
        (
            build::signature(&path, "admin"),
            cohort::trust::sign::sign(&real, &s.id.parse().unwrap(), &path, "root", &bytes)
                .unwrap(),
        ),
        (
            build::signature(&path, "twin-a"),
            k.sign(&s.id, &path, "root", "twin-a", &bytes, None),
        ),
        (
            build::signature(&path, "twin-b"),
            k.sign(&s.id, &path, "root", "twin-b", &bytes, Some(&[7; 8])),
        ),
        (path.clone(), bytes),
    ];
    s.commit(&files, "two admins, one key");
    s.refused_everywhere("same public key", "shared-key", Some("same public key"));
}

/// Class 3: main rewritten to drop a revocation (and to slip in a record whose signature is
/// plain text, before the point this machine had verified), with the old main merged back in
/// as a second parent.
#[test]
fn a_rewrite_merged_back_as_a_second_parent_is_refused() {
    let s = Stage::new();
    let (before, revoked) = s.revoke_bob();
    // The rewrite: from before the revocation, a withdrawal "signed" with plain text.
    s.git(&["checkout", "--quiet", "-B", "rewrite", &before]);
    let subject = build::user("hosp", 1);
    let d = model::Decision {
        format: model::FORMAT_VERSION,
        kind: "withdrawal".into(),
        subject: subject.clone(),
        subject_sha256: Sha256::of(&s.read(&subject)),
        by: "bob".into(),
        at: "2026-01-01T00:00:00Z".into(),
        reason: None,
    };
    let dpath = build::decision(&subject, model::DecisionKind::Withdrawal, "bob");
    s.commit(
        &[
            (dpath.clone(), model::to_bytes(&d)),
            (
                build::signature(&dpath, "bob"),
                b"trust me, bob signed this\n".to_vec(),
            ),
        ],
        "rewrite",
    );
    s.git(&["merge", "--quiet", "-s", "ours", "--no-edit", &revoked]);
    s.git(&["checkout", "--quiet", "-B", "main", "rewrite"]);
    s.refused_everywhere("does not descend from", &dpath, Some(&dpath));

    // The same trick with nothing forged in the tree: only a rollback, which the hook and a
    // site that saw the revocation refuse (a new machine cannot know what it never saw).
    let s = Stage::new();
    let env = &s.env;
    let (before, revoked) = s.revoke_bob();
    s.git(&["checkout", "--quiet", "-B", "rewrite", &before]);
    s.git(&["merge", "--quiet", "-s", "ours", "--no-edit", &revoked]);
    s.git(&["checkout", "--quiet", "-B", "main", "rewrite"]);
    let run = s.push_main();
    assert_ne!(run.code, 0, "{}", run.all());
    run.says("does not descend from");
    s.git(&["push", "--quiet", "origin", "main:refs/heads/evil"]);
    env.git(
        "admin",
        &env.remote(),
        &[
            "update-ref",
            "refs/heads/main",
            &s.git(&["rev-parse", "main"]),
        ],
    )
    .ok();
    env.cohort("hosp", &["registry", "sync"])
        .fails(1)
        .says("does not descend from");
}

/// Class 5: a decision whose `subject_sha256` names nothing, unsigned, by nobody.
#[test]
fn a_decision_naming_nothing_is_refused() {
    let s = Stage::new();
    let subject = build::user("hosp", 1);
    let d = model::Decision {
        format: model::FORMAT_VERSION,
        kind: "rejection".into(),
        subject: subject.clone(),
        subject_sha256: Sha256::of(b"nothing"),
        by: "mallory".into(),
        at: "2026-01-01T00:00:00Z".into(),
        reason: Some("because".into()),
    };
    let dpath = build::decision(&subject, model::DecisionKind::Rejection, "mallory");
    s.commit(&[(dpath.clone(), model::to_bytes(&d))], "stray decision");
    s.refused_everywhere(&dpath, "mallory may not reject", Some(&dpath));
}

/// `verify REV` answers for REV alone, whatever this machine verified before; `--full` checks
/// every record and signature again, and what this machine kept changes speed, not verdicts.
#[test]
fn verify_rev_answers_for_rev_alone() {
    let s = Stage::new();
    let env = &s.env;
    // hosp verified main (which has more commits than main~1).
    env.cohort("hosp", &["verify", "main~1"]).ok();
    let full = json(&env.cohort("hosp", &["verify", "--full", "--json"]).ok());
    assert_eq!(full["signatures_cached"], 0, "{full}");
    assert_eq!(full["records_checked"], full["records"], "{full}");
    assert_eq!(full["recorded"], false, "--full records nothing: {full}");
    let kept = json(&env.cohort("hosp", &["verify", "--json"]).ok());
    assert_eq!(kept["signatures_checked"], 0, "{kept}");
    // Main, accepted here clean: grown from itself by nothing, so no record but the root
    // and meta versions (checked one at a time) is in reach of anything new.
    assert_eq!(kept["grown_from"], kept["commit"], "{kept}");
    assert!(
        kept["records_checked"].as_u64() < full["records_checked"].as_u64(),
        "{kept} {full}"
    );
    for field in ["ok", "files", "records", "problems", "warnings"] {
        assert_eq!(kept[field], full[field], "{field}: {kept} {full}");
    }
}

/// The same through the CLI: a next key under a local name, a rotation both keys sign, the
/// local switch, and the admin's next approval signed with the new key, accepted by a site.
#[test]
fn admin_key_rotation_through_the_cli() {
    let s = Stage::new();
    let env = &s.env;
    env.cohort(
        "admin",
        &[
            "key",
            "generate",
            "--handle",
            "admin-next",
            "--no-passphrase",
        ],
    )
    .ok();
    env.cohort(
        "admin",
        &[
            "--as",
            "admin",
            "registry",
            "rotate-root",
            "--admins",
            "admin",
            "--new-key",
            "admin-next",
        ],
    )
    .ok()
    .says("cohort key adopt admin-next --handle admin");
    let new_id = env
        .cohort(
            "admin",
            &["key", "adopt", "admin-next", "--handle", "admin"],
        )
        .ok()
        .stdout
        .trim()
        .to_string();
    assert_eq!(new_id.len(), 16);
    let files = env
        .git(
            "admin",
            &env.remote(),
            &["ls-tree", "-r", "--name-only", "main"],
        )
        .ok()
        .stdout;
    assert_eq!(
        files
            .lines()
            .filter(|l| l.starts_with("root/v2.toml.admin."))
            .count(),
        2,
        "{files}"
    );
    assert!(
        files.contains(&format!("root/v2.toml.admin.{new_id}.minisig")),
        "{files}"
    );
    env.join("carol", &s.id);
    env.cohort("admin", &["user", "approve", "carol"]).ok();
    env.cohort("hosp", &["registry", "sync"]).ok();
    env.cohort("hosp", &["verify", "--full", "--strict"]).ok();
    let users = json(&env.cohort("hosp", &["user", "ls", "--json"]).ok());
    assert!(users.to_string().contains("carol"), "{users}");
}
