//! The path scheme's round trips and refusals.
use super::*;

const D: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

#[test]
fn builders_round_trip() {
    let cases = vec![
        build::root(1),
        build::meta(2),
        build::user("alice", 1),
        build::grant("alice", 3),
        build::mlcube("prep", 1),
        build::mlcube_file("prep", 1, CubeFile::MlcubeYaml),
        build::mlcube_file("prep", 1, CubeFile::ContainerConfigYaml),
        build::benchmark("heart", 2),
        build::association("heart", &AssocKey::Model("good".into()), 1),
        build::association("heart", &AssocKey::Dataset(D.into()), 1),
        build::priority("heart", "good", 1),
        build::dataset(D, 1),
        build::result("heart", D, "good", 1),
        build::leaderboard("heart", 1),
        build::decision(&build::user("alice", 1), DecisionKind::Approval, "admin"),
        build::decision(
            &build::association("heart", &AssocKey::Model("m".into()), 1),
            DecisionKind::Withdrawal,
            "bob",
        ),
        build::sealed(&build::dataset(D, 1), "statistics"),
        build::sealed(&build::result("heart", D, "good", 1), "result"),
        build::sealed(&build::leaderboard("heart", 1), "pseudonyms"),
        build::signature(&build::user("alice", 1), "alice"),
        build::key_signature(&build::root(2), "admin", "0123456789ABCDEF"),
        "README.md".to_string(),
        ".github/workflows/verify.yml".to_string(),
    ];
    for p in cases {
        classify(&p).unwrap_or_else(|e| panic!("{p}: {e}"));
    }
    assert_eq!(
        classify("users/alice/v1.approval.admin.toml").unwrap(),
        RecordPath::Decision {
            subject: "users/alice/v1.toml".into(),
            decision: DecisionKind::Approval,
            by: "admin".into()
        }
    );
}

#[test]
fn refuses_unknown_and_tricky_paths() {
    for p in [
        "notes.txt",
        "users/Alice/v1.toml",
        "users/alice/v01.toml",
        "users/alice/v0.toml",
        "users/alice/1.toml",
        "users/alice/v1.toml.minisig",
        "users/alice/v1.toml.alice.minisig.bob.minisig",
        "users/alice/v1.toml.alice.0123456789ABCDEF.minisig",
        "root/v2.toml.0123456789ABCDEF.minisig",
        "root/v2.toml.admin.0123456789abcdef.minisig",
        "mlcubes/prep/v1/run.sh",
        "datasets/ABC/v1.toml",
        "users/alice/v1.statistics.age",
        "leaderboards/heart/1.result.age",
        "mlcubes/prep/v1.approval.admin.toml",
        "users/alice/v1.withdrawal.admin.toml",
        ".github/workflows/x.sh",
        "../etc/passwd",
        "users/al\u{e9}/v1.toml",
        "README.md.admin.minisig",
    ] {
        assert!(classify(p).is_err(), "{p} should be refused");
    }
}

#[test]
fn a_cube_folder_holds_either_configuration_format() {
    assert_eq!(
        classify("mlcubes/prep/v1/container_config.yaml").unwrap(),
        RecordPath::MlcubeFile {
            name: "prep".into(),
            version: 1,
            file: CubeFile::ContainerConfigYaml,
        }
    );
    let e = classify("mlcubes/prep/v1/container_config.yml").unwrap_err();
    assert!(e.to_string().contains("container_config.yaml"), "{e}");
}
