//! Private models: the encrypted image's ciphertext is a blob like any artifact, access records
//! are signed by the cube's owner and only for private cubes, and a benchmark never uses one.

use super::*;

/// A cube of `owner`'s; private (ciphertext stored as a blob) when `private` is set.
fn cube(w: &mut World, name: &str, owner: &str, private: bool) -> model::CubeRef {
    cube_edited(w, name, owner, private, |_, _| {})
}

/// [`cube`], with `edit` changing the record before it is signed.
fn cube_edited(
    w: &mut World,
    name: &str,
    owner: &str,
    private: bool,
    edit: impl FnOnce(&mut World, &mut model::Mlcube),
) -> model::CubeRef {
    let image = if private {
        let ct = b"age-encryption.org/v1\n(ciphertext)".to_vec();
        let sha = Sha256::of(&ct);
        w.add(&build::blob(sha.as_str()), ct);
        let key = model::private::new_model_key();
        let owner_age = w.signers[owner].public.age.clone();
        model::Image {
            id: format!("sha256:{}", Sha256::of(b"secret-img")),
            source: model::ImageSource::Encrypted,
            reference: None,
            tarball: None,
            private: Some(model::PrivateImage {
                scheme: model::private::SCHEME.into(),
                recipient: key.to_public().to_string(),
                ciphertext: model::Asset::in_blob(sha),
                owner_key: model::private::seal_key(&key, owner, &owner_age).unwrap(),
                files: None,
                parameters: None,
            }),
        }
    } else {
        model::Image {
            id: format!("sha256:{}", Sha256::of(b"img")),
            source: model::ImageSource::Local,
            reference: None,
            tarball: None,
            private: None,
        }
    };
    let mut c = model::Mlcube {
        format: FORMAT_VERSION,
        kind: "mlcube".into(),
        name: name.into(),
        version: 1,
        owner: owner.into(),
        created: "2026-01-01T00:00:00Z".into(),
        description: None,
        mlcube_yaml: Some(Sha256::of(b"x")),
        container_config_yaml: None,
        parameters_yaml: None,
        additional_files: None,
        image,
    };
    w.add(
        &build::mlcube_file(name, 1, model::CubeFile::MlcubeYaml),
        b"x".to_vec(),
    );
    edit(w, &mut c);
    let path = build::mlcube(name, 1);
    w.record(&path, &c, &[owner]);
    model::CubeRef {
        name: name.into(),
        version: 1,
        sha256: Sha256::of(&w.tree.files[&path].0),
    }
}

fn revocation(w: &mut World, m: &model::CubeRef, by: &str, signer: &str) -> String {
    let dataset = "3b1e9a7c5d2f4e6a8b0c1d3e5f7a9b2c4d6e8f0a1b3c5d7e9f2a4b6c8d0e1f3a";
    let a = model::Access {
        format: FORMAT_VERSION,
        kind: "access".into(),
        number: 1,
        model: m.clone(),
        dataset: dataset.into(),
        action: model::AccessAction::Revoke,
        by: by.into(),
        created: "2026-01-01T00:00:00Z".into(),
        key: None,
    };
    let path = build::access(&m.name, 1, dataset, 1);
    w.record(&path, &a, &[signer]);
    path
}

fn world() -> World {
    let mut w = World::new(&["admin", "mo", "eve"]);
    w.root(1, &["admin"], 1, &["admin"]);
    w.next_commit();
    w.user("mo", "admin");
    w.user("eve", "admin");
    w.next_commit();
    w
}

#[test]
fn a_private_cube_with_its_ciphertext_blob_verifies() {
    let mut w = world();
    cube(&mut w, "secret", "mo", true);
    let r = w.verify();
    assert!(r.problems.is_empty(), "{:#?}", r.problems);
}

/// Scheme 2: the additional files as a second ciphertext (a blob like the image's), and then
/// never a public copy; scheme 1 names no files.
#[test]
fn encrypted_additional_files_verify_only_under_scheme_2() {
    let files = |w: &mut World, store: bool| {
        let ct = b"age-encryption.org/v1\n(files)".to_vec();
        let sha = Sha256::of(&ct);
        if store {
            w.add(&build::blob(sha.as_str()), ct);
        }
        model::Asset {
            size: Some(31),
            unpacked_size: Some(10),
            files: Some(1),
            ..model::Asset::in_blob(sha)
        }
    };
    let set = |c: &mut model::Mlcube, scheme: &str, a: Option<model::Asset>| {
        let p = c.image.private.as_mut().unwrap();
        p.scheme = scheme.into();
        p.files = a.map(Box::new);
    };
    let mut w = world();
    cube_edited(&mut w, "secret", "mo", true, |w, c| {
        let a = files(w, true);
        set(c, model::private::SCHEME_FILES, Some(a));
    });
    let r = w.verify();
    assert!(r.problems.is_empty(), "{:#?}", r.problems);
    let cases: [(&str, &str, bool, bool, &str); 4] = [
        (
            "no-files",
            model::private::SCHEME_FILES,
            false,
            false,
            "image.private.files",
        ),
        (
            "v1-files",
            model::private::SCHEME,
            true,
            false,
            "image.private.files",
        ),
        (
            "public-too",
            model::private::SCHEME_FILES,
            true,
            true,
            "image.private.files",
        ),
        ("v3", "cohort-private/3", true, false, "upgrade cohort"),
    ];
    for (name, scheme, with_files, public, says) in cases {
        let mut w = world();
        cube_edited(&mut w, name, "mo", true, |w, c| {
            let a = with_files.then(|| files(w, true));
            if public {
                c.additional_files = a.clone();
            }
            set(c, scheme, a);
        });
        let r = w.verify();
        assert!(
            r.problems.iter().any(|p| p.message.contains(says)),
            "{name}: {:#?}",
            r.problems
        );
    }
    // Parameters alone, or beside a public parameters.yaml.
    for public in [false, true] {
        let mut w = world();
        cube_edited(&mut w, "params", "mo", true, |w, c| {
            let a = files(w, true);
            set(c, model::private::SCHEME_FILES, None);
            c.image.private.as_mut().unwrap().parameters = Some(Box::new(a));
            if public {
                c.parameters_yaml = Some(Sha256::of(b"p"));
            }
        });
        let r = w.verify();
        let refused = r
            .problems
            .iter()
            .any(|p| p.message.contains("image.private.parameters"));
        assert_eq!(refused, public, "{:#?}", r.problems);
        if !public {
            assert!(r.problems.is_empty(), "{:#?}", r.problems);
        }
    }
    let mut w = world();
    cube_edited(&mut w, "lost", "mo", true, |w, c| {
        let a = files(w, false);
        set(c, model::private::SCHEME_FILES, Some(a));
    });
    let r = w.verify();
    assert!(
        r.problems.iter().any(|p| p.code == Code::MissingBlob),
        "{:#?}",
        r.problems
    );
}

#[test]
fn only_the_owner_of_a_private_cube_writes_its_access_records() {
    let mut w = world();
    let secret = cube(&mut w, "secret", "mo", true);
    let public = cube(&mut w, "open", "mo", false);
    w.next_commit();
    let forged = revocation(&mut w, &secret, "eve", "eve");
    let not_private = revocation(&mut w, &public, "mo", "mo");
    let r = w.verify();
    assert!(has(&r, &forged, "only mo"), "{:#?}", r.problems);
    assert!(
        has(&r, &not_private, "not a private model"),
        "{:#?}",
        r.problems
    );
    // A signature by someone other than the record's `by` does not count either.
    let mut w2 = world();
    let secret2 = cube(&mut w2, "secret", "mo", true);
    w2.next_commit();
    let unsigned = revocation(&mut w2, &secret2, "mo", "eve");
    let r2 = w2.verify();
    assert!(
        r2.problems.iter().any(|p| p.path.starts_with(&unsigned)),
        "{:#?}",
        r2.problems
    );
}
