//! The rules an MLCube record must satisfy on its own and against its folder: the largest
//! kind, kept beside the others' in `validate`.

use super::{Ctx, check_age_recipient, check_image_id};
use crate::model::ModelError;
use crate::model::records::*;

/// Checks the cube `r`, read from the folder of cube `name` version `version`.
pub(super) fn check(c: &Ctx, name: &str, version: u32, r: &Mlcube) -> Result<(), ModelError> {
    c.ensure(r.name == name, "name differs from the folder name")?;
    c.ensure(r.version == version, "version differs from the folder name")?;
    c.name("owner", &r.owner)?;
    c.ensure(
        r.mlcube_yaml.is_some() != r.container_config_yaml.is_some(),
        "a cube records exactly one of mlcube_yaml and container_config_yaml",
    )?;
    c.time("created", &r.created)?;
    if let Some(d) = &r.description {
        c.text("description", d, 2000)?;
    }
    c.ensure(
        check_image_id(&r.image.id),
        "image.id must be `sha256:` and 64 hex digits (the id `docker inspect` reports)",
    )?;
    match r.image.source {
        ImageSource::Local => c.ensure(
            r.image.reference.is_none() && r.image.tarball.is_none(),
            "a local image has no reference or tarball",
        )?,
        ImageSource::Encrypted => {
            let p = r.image.private.as_ref().ok_or_else(|| {
                c.err("an encrypted image names `[image.private]` (scheme, recipient, ciphertext, owner_key)")
            })?;
            c.ensure(
                r.image.reference.is_none() && r.image.tarball.is_none(),
                "an encrypted image has no reference or tarball",
            )?;
            c.ensure(
                p.scheme == crate::model::private::SCHEME
                    || p.scheme == crate::model::private::SCHEME_FILES,
                format!(
                    "image.private.scheme `{}` is not {} or {} (a newer cohort wrote it; upgrade cohort)",
                    p.scheme,
                    crate::model::private::SCHEME,
                    crate::model::private::SCHEME_FILES
                ),
            )?;
            // Scheme 2 exists to keep the additional files secret: never beside a
            // public copy.
            c.ensure(
                (p.scheme == crate::model::private::SCHEME_FILES)
                    == (p.files.is_some() || p.parameters.is_some()),
                format!(
                    "image.private.files and image.private.parameters are named exactly by scheme {} (at least one of them)",
                    crate::model::private::SCHEME_FILES
                ),
            )?;
            // They exist to keep the files secret: never beside a public copy.
            c.ensure(
                p.files.is_none() || r.additional_files.is_none(),
                "a cube with image.private.files has no public additional_files",
            )?;
            c.ensure(
                p.parameters.is_none() || r.parameters_yaml.is_none(),
                "a cube with image.private.parameters has no public parameters_yaml",
            )?;
            if let Some(a) = &p.files {
                c.asset("image.private.files", a)?;
            }
            if let Some(a) = &p.parameters {
                c.asset("image.private.parameters", a)?;
            }
            check_age_recipient(&p.recipient)
                .map_err(|why| c.err(format!("image.private.recipient: {why}")))?;
            c.asset("image.private.ciphertext", &p.ciphertext)?;
            crate::model::private::check_sealed_key(&p.owner_key)
                .map_err(|why| c.err(format!("image.private.owner_key: {why}")))?;
            c.ensure(
                p.owner_key.handle == r.owner,
                "image.private.owner_key is sealed to the cube's owner",
            )?;
        }
        ImageSource::Pull => c.ensure(
            r.image
                .reference
                .as_deref()
                .is_some_and(crate::model::asset::is_image_digest_reference)
                && r.image.tarball.is_none(),
            "a pulled image names `reference` as repo@sha256:<64 hex digits>, an image registry's repository (never a local path, a tag or a URL)",
        )?,
        ImageSource::Tarball => c.ensure(
            r.image.tarball.is_some() && r.image.reference.is_none(),
            "a tarball image names `tarball` (url + sha256)",
        )?,
    }
    if r.image.source != ImageSource::Encrypted {
        c.ensure(
            r.image.private.is_none(),
            "only `source = \"encrypted\"` names `[image.private]`",
        )?;
    }
    if let Some(a) = &r.additional_files {
        c.asset("additional_files", a)?;
    }
    if let Some(a) = &r.image.tarball {
        c.asset("image.tarball", a)?;
    }
    Ok(())
}
