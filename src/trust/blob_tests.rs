//! In-registry blobs: content named by its hash, referenced by a record that arrived with or
//! before it, and present wherever a record names one; records never name a local path.

use super::*;

fn cube_with(w: &mut World, name: &str, additional: model::Asset) {
    let cube = model::Mlcube {
        additional_files: Some(additional),
        ..cube_record(name)
    };
    w.add(
        &build::mlcube_file(name, 1, model::CubeFile::MlcubeYaml),
        b"x".to_vec(),
    );
    w.record(&build::mlcube(name, 1), &cube, &["alice"]);
}

/// alice's cube `name` v1 with a local image and nothing else.
fn cube_record(name: &str) -> model::Mlcube {
    model::Mlcube {
        format: FORMAT_VERSION,
        kind: "mlcube".into(),
        name: name.into(),
        version: 1,
        owner: "alice".into(),
        created: "2026-01-01T00:00:00Z".into(),
        description: None,
        mlcube_yaml: Some(Sha256::of(b"x")),
        container_config_yaml: None,
        parameters_yaml: None,
        additional_files: None,
        image: model::Image {
            id: format!("sha256:{}", Sha256::of(b"img")),
            source: model::ImageSource::Local,
            reference: None,
            tarball: None,
            private: None,
        },
    }
}

fn world() -> World {
    let mut w = World::new(&["admin", "alice"]);
    w.root(1, &["admin"], 1, &["admin"]);
    w.next_commit();
    w.user("alice", "admin");
    w.next_commit();
    w
}

fn codes(r: &super::super::Report) -> Vec<(String, Code)> {
    r.problems
        .iter()
        .map(|p| (p.path.clone(), p.code))
        .collect()
}

#[test]
fn a_blob_with_its_record_verifies() {
    let mut w = world();
    let bytes = b"additional files".to_vec();
    let sha = Sha256::of(&bytes);
    w.add(&build::blob(sha.as_str()), bytes);
    cube_with(&mut w, "good", model::Asset::in_blob(sha));
    let r = w.verify();
    assert!(r.problems.is_empty(), "{:#?}", r.problems);
}

#[test]
fn a_blob_whose_content_differs_from_its_name_is_refused() {
    let mut w = world();
    let sha = Sha256::of(b"what the record names");
    let path = build::blob(sha.as_str());
    w.add(&path, b"other bytes".to_vec());
    cube_with(&mut w, "swapped", model::Asset::in_blob(sha));
    let r = w.verify();
    assert!(has_code(&r, &path, Code::BlobDigest), "{:?}", codes(&r));
}

#[test]
fn an_orphan_blob_is_refused() {
    let mut w = world();
    let bytes = b"nobody names me".to_vec();
    let path = build::blob(Sha256::of(&bytes).as_str());
    w.add(&path, bytes);
    let r = w.verify();
    assert!(has_code(&r, &path, Code::OrphanBlob), "{:?}", codes(&r));
}

#[test]
fn a_blob_arriving_before_its_record_is_an_orphan_when_it_arrived() {
    let mut w = world();
    let bytes = b"early".to_vec();
    let sha = Sha256::of(&bytes);
    let path = build::blob(sha.as_str());
    w.add(&path, bytes);
    w.next_commit();
    cube_with(&mut w, "late", model::Asset::in_blob(sha));
    let r = w.verify();
    assert!(has_code(&r, &path, Code::OrphanBlob), "{:?}", codes(&r));
}

#[test]
fn a_record_naming_a_missing_blob_is_refused() {
    let mut w = world();
    cube_with(
        &mut w,
        "dangling",
        model::Asset::in_blob(Sha256::of(b"never stored")),
    );
    let r = w.verify();
    let cube = build::mlcube("dangling", 1);
    assert!(has_code(&r, &cube, Code::MissingBlob), "{:?}", codes(&r));
    assert!(
        r.problems
            .iter()
            .any(|p| p.path == cube && p.message.contains("blobs/sha256/")),
        "the problem names the blob: {:#?}",
        r.problems
    );
}

#[test]
fn records_never_name_a_local_path() {
    for url in [
        "../lung-demo.tar.gz",
        "/tmp/x.tar.gz",
        "file:///tmp/x.tar.gz",
    ] {
        let mut w = world();
        cube_with(&mut w, "local", model::Asset::at_url(url, Sha256::of(b"x")));
        let r = w.verify();
        let cube = build::mlcube("local", 1);
        assert!(
            has(&r, &cube, "http:// or https:// URL"),
            "{url}: {:#?}",
            r.problems
        );
    }
}

#[test]
fn a_pulled_image_is_named_only_by_repository_and_digest() {
    let hex = "ab".repeat(32);
    let cube = build::mlcube("pulled", 1);
    for (reference, ok) in [
        (
            format!("registry.example.org/team/model@sha256:{hex}"),
            true,
        ),
        (format!("127.0.0.1:5000/mo/model@sha256:{hex}"), true),
        (format!("/tmp/image.tar@sha256:{hex}"), false),
        (format!("../image@sha256:{hex}"), false),
        (format!("~/images/model@sha256:{hex}"), false),
        (format!("C:\\images\\model@sha256:{hex}"), false),
        (format!("file:///tmp/model@sha256:{hex}"), false),
        (format!("team/model:v1@sha256:{hex}"), false),
        ("team/model@sha256:abc".to_string(), false),
        (format!("team/model @sha256:{hex}"), false),
    ] {
        let mut w = world();
        let mut rec = cube_record("pulled");
        rec.image.source = model::ImageSource::Pull;
        rec.image.reference = Some(reference.clone());
        w.add(
            &build::mlcube_file("pulled", 1, model::CubeFile::MlcubeYaml),
            b"x".to_vec(),
        );
        w.record(&cube, &rec, &["alice"]);
        let r = w.verify();
        assert_eq!(r.problems.is_empty(), ok, "{reference}: {:#?}", r.problems);
        if !ok {
            assert!(
                has(&r, &cube, "repo@sha256:"),
                "{reference}: {:#?}",
                r.problems
            );
        }
    }
}

#[test]
fn a_blob_over_the_cap_is_refused_by_size() {
    let mut w = world();
    let bytes = vec![0u8; model::MAX_BLOB_BYTES + 1];
    let sha = Sha256::of(&bytes);
    let path = build::blob(sha.as_str());
    w.add(&path, bytes);
    cube_with(&mut w, "huge", model::Asset::in_blob(sha));
    let r = w.verify();
    assert!(has_code(&r, &path, Code::Limits), "{:?}", codes(&r));
}

#[test]
fn an_asset_names_exactly_one_location_and_its_own_blob() {
    let sha = Sha256::of(b"x");
    let cases = [
        (
            model::Asset {
                url: Some("https://example.org/x.tar.gz".into()),
                blob: Some(build::blob(sha.as_str())),
                sha256: sha.clone(),
                ..model::Asset::in_blob(sha.clone())
            },
            "exactly one of `url` and `blob`",
        ),
        (
            model::Asset {
                url: None,
                blob: None,
                sha256: sha.clone(),
                ..model::Asset::in_blob(sha.clone())
            },
            "exactly one of `url` and `blob`",
        ),
        (
            model::Asset {
                url: None,
                blob: Some(build::blob(Sha256::of(b"other").as_str())),
                sha256: sha.clone(),
                ..model::Asset::in_blob(sha.clone())
            },
            "blobs/sha256/<its sha256>",
        ),
    ];
    for (asset, needle) in cases {
        let mut w = world();
        cube_with(&mut w, "odd", asset);
        let r = w.verify();
        assert!(
            has(&r, &build::mlcube("odd", 1), needle),
            "{needle}: {:#?}",
            r.problems
        );
    }
}

#[test]
fn an_artifact_url_holding_a_password_is_a_warning_on_its_record() {
    let mut w = world();
    let leaky = "https://mo:hunter2@files.example.org/extra.tar.gz";
    cube_with(
        &mut w,
        "leaky",
        model::Asset::at_url(leaky, Sha256::of(b"x")),
    );
    // An `@` after the host is part of the path, not credentials.
    let clean = "https://files.example.org/a@b/extra.tar.gz?mail=a@b";
    cube_with(
        &mut w,
        "clean",
        model::Asset::at_url(clean, Sha256::of(b"y")),
    );
    let r = w.verify();
    // The record stays valid (cohort wrote such URLs before it refused them at submission);
    // the warning is what the hook and `registry sync` refuse in anything new.
    assert!(r.problems.is_empty(), "{:#?}", r.problems);
    let cube = build::mlcube("leaky", 1);
    let warned: Vec<_> = r
        .warnings
        .iter()
        .filter(|p| p.code == Code::UrlCredentials)
        .collect();
    assert_eq!(warned.len(), 1, "{:#?}", r.warnings);
    assert_eq!(warned[0].path, cube);
    assert!(warned[0].message.contains("additional_files.url"));
    assert!(
        !warned[0].message.contains("hunter2"),
        "the password is not repeated: {}",
        warned[0].message
    );
}
