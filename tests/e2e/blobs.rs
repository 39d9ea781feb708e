//! In-registry blobs forged with plain git: a blob whose content does not match its name, an
//! orphan blob, and a signed record naming a blob that is not there are each refused by the
//! remote's pre-receive hook and by `verify`, with the path named. A signed record whose
//! artifact URL holds a password is refused by the hook and a warning to `verify`.

use cohort::model::{self, Sha256, build};
use cohort::trust::sign;

use crate::env::{TestEnv, json};

fn refused(env: &TestEnv, files: &[(String, Vec<u8>)], path: &str, code: &str) {
    let clone = env.clone_dir("admin");
    for (p, bytes) in files {
        env.write("admin", p, bytes);
    }
    env.commit_all("admin", &format!("forge {path}"));
    let push = env.git("admin", &clone, &["push", "--quiet", "origin", "main"]);
    assert_ne!(push.code, 0, "the hook took it:\n{}", push.all());
    push.says(path);
    let report = json(
        &env.cohort("admin", &["verify", "main", "--full", "--json"])
            .fails(1),
    );
    let hit = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["path"] == path && p["code"] == code);
    assert!(hit, "no {code} on {path}: {report}");
    env.git(
        "admin",
        &clone,
        &["reset", "--quiet", "--hard", "origin/main"],
    )
    .ok();
}

/// The files of admin's cube `name` v1, signed, whose `additional_files` is `additional`: its
/// mlcube.yaml, its signature and the record, as a hand-made commit would add them.
pub(crate) fn signed_cube(
    env: &TestEnv,
    id: &str,
    name: &str,
    additional: model::Asset,
) -> Vec<(String, Vec<u8>)> {
    let yaml = b"name: x\n".to_vec();
    let cube = model::Mlcube {
        format: model::FORMAT_VERSION,
        kind: "mlcube".into(),
        name: name.into(),
        version: 1,
        owner: "admin".into(),
        created: "2026-01-01T00:00:00Z".into(),
        description: None,
        mlcube_yaml: Some(Sha256::of(&yaml)),
        container_config_yaml: None,
        parameters_yaml: None,
        additional_files: Some(additional),
        image: model::Image {
            id: format!("sha256:{}", Sha256::of(b"img")),
            source: model::ImageSource::Local,
            reference: None,
            tarball: None,
            private: None,
        },
    };
    let path = build::mlcube(name, 1);
    let record = model::to_bytes(&cube);
    let sig = sign::sign(
        &env.signer("admin"),
        &id.parse().unwrap(),
        &path,
        "mlcube",
        &record,
    )
    .unwrap();
    vec![
        (
            build::mlcube_file(name, 1, model::CubeFile::MlcubeYaml),
            yaml,
        ),
        (build::signature(&path, "admin"), sig),
        (path, record),
    ]
}

#[test]
fn forged_blobs_are_refused_by_the_hook_and_verify() {
    let env = TestEnv::new();
    let id = env.init_shared("admin");
    env.cohort("admin", &["registry", "sync"]).ok();

    // Content that does not hash to its name.
    let named = build::blob(Sha256::of(b"what the name says").as_str());
    refused(
        &env,
        &[(named.clone(), b"other bytes".to_vec())],
        &named,
        "blob-digest",
    );

    // A blob no record names.
    let bytes = b"nobody names me".to_vec();
    let orphan = build::blob(Sha256::of(&bytes).as_str());
    refused(&env, &[(orphan.clone(), bytes)], &orphan, "orphan-blob");

    // A signed record naming a blob that is not in the registry.
    let files = signed_cube(
        &env,
        &id,
        "dangling",
        model::Asset::in_blob(Sha256::of(b"never stored")),
    );
    let path = build::mlcube("dangling", 1);
    refused(&env, &files, &path, "missing-blob");
}

#[test]
fn an_artifact_url_holding_a_password_is_refused_new_and_a_warning_to_verify() {
    let env = TestEnv::new();
    let id = env.init_shared("admin");
    env.cohort("admin", &["registry", "sync"]).ok();
    let files = signed_cube(
        &env,
        &id,
        "leaky",
        model::Asset::at_url(
            "https://mo:hunter2@files.example.org/extra.tar.gz",
            Sha256::of(b"extra"),
        ),
    );
    let path = build::mlcube("leaky", 1);
    let clone = env.clone_dir("admin");
    for (p, bytes) in &files {
        env.write("admin", p, bytes);
    }
    env.commit_all("admin", "a cube whose URL holds a password");
    // The hook refuses it as it refuses every warning on a new file...
    let push = env.git("admin", &clone, &["push", "--quiet", "origin", "main"]);
    assert_ne!(push.code, 0, "the hook took it:\n{}", push.all());
    push.says(&path);
    push.says("password");
    assert!(!push.all().contains("hunter2"), "{}", push.all());
    // ...while `verify` reads the record as valid and warns (failing with --strict).
    let report = json(
        &env.cohort("admin", &["verify", "main", "--full", "--json"])
            .ok(),
    );
    let warned = report["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["path"] == path.as_str() && p["code"] == "url-credentials");
    assert!(warned, "no url-credentials warning on {path}: {report}");
    assert!(
        report["problems"].as_array().unwrap().is_empty(),
        "{report}"
    );
    env.cohort("admin", &["verify", "main", "--full", "--strict"])
        .fails(1);
}
