//! Artifacts a signed record locates (demo datasets, additional files, image tarballs): a
//! local file given at submission becomes an in-registry blob (or is refused over the cap with
//! what to do instead), an `http(s)` URL stays a URL, and fetching resolves a blob from the
//! registry itself, re-checking its sha256 like any download. Sites share nothing but the
//! registry, so nothing machine-local ever reaches a record.

use crate::model::{Asset, AssetLocation, MAX_BLOB_BYTES, Sha256, build, is_http_url};
use crate::registry::NewFile;
use crate::storage::{Cache, Fetched};
use crate::trust::Index;

use super::{Ctx, Result, WorkflowError};

/// A user-given artifact turned into what a record may name.
pub struct Resolved {
    pub asset: Asset,
    /// The blob to add to the submission, for a local file.
    pub blob: Option<NewFile>,
    /// The verified bytes in the local cache.
    pub fetched: Fetched,
}

/// Refuses a URL that carries credentials before anything is fetched or recorded: the signed
/// record would publish them to every clone.
pub fn refuse_credentials(what: &str, url: &str) -> Result<()> {
    if is_http_url(url) && crate::model::url_has_credentials(url) {
        return Err(WorkflowError::RefusedBecause {
            message: format!(
                "{what}: the URL holds a user name or password, which the signed record would publish to every clone"
            ),
            hint: "host the file where sites can download it without credentials in the URL (or store a small file in the registry by giving its local path)".into(),
        });
    }
    Ok(())
}

/// Resolves `source` (an `http(s)` URL or a local file) for the record field `what`. A local
/// file is stored as a blob when at most [`MAX_BLOB_BYTES`]; `too_big_hint` says what to do
/// instead (upload it and give the URL, or push the image).
pub fn from_source(
    ctx: &Ctx,
    what: &str,
    source: &str,
    expected: Option<&Sha256>,
    too_big_hint: &str,
) -> Result<Resolved> {
    let cache = Cache::new(ctx.home);
    let remote = is_http_url(source);
    if !remote && source.contains("://") {
        return Err(WorkflowError::Refused(format!(
            "{what} {source}: records locate files by http(s) URL or as in-registry blobs; give an https:// URL or a local file"
        )));
    }
    refuse_credentials(what, source)?;
    let fetched = cache.get_or_fetch(source, expected, &ctx.net, ctx.reporter, &ctx.cancel)?;
    if remote {
        return Ok(Resolved {
            asset: Asset::at_url(source, fetched.sha256.clone()),
            blob: None,
            fetched,
        });
    }
    if fetched.bytes > MAX_BLOB_BYTES as u64 {
        return Err(WorkflowError::RefusedBecause {
            message: format!(
                "{what} {source} is {} bytes, over the {} MiB cap for files stored in the registry",
                fetched.bytes,
                MAX_BLOB_BYTES >> 20
            ),
            hint: too_big_hint.to_string(),
        });
    }
    let bytes = std::fs::read(&fetched.path)
        .map_err(|e| WorkflowError::Refused(format!("{}: {e}", fetched.path.display())))?;
    if Sha256::of(&bytes) != fetched.sha256 {
        return Err(WorkflowError::Refused(format!(
            "{what} {source} changed while it was read; try again"
        )));
    }
    Ok(Resolved {
        asset: Asset::in_blob(fetched.sha256.clone()),
        blob: Some(NewFile::new(build::blob(fetched.sha256.as_str()), bytes)),
        fetched,
    })
}

/// Fetches a recorded asset into the cache and returns it, re-checked against the recorded
/// sha256: a blob from the registry tree `ix`, a URL through the verified download cache.
pub fn fetch(ctx: &Ctx, ix: &Index, asset: &Asset) -> Result<Fetched> {
    let cache = Cache::new(ctx.home);
    match asset.location() {
        AssetLocation::Url(url) => Ok(cache.get_or_fetch(
            url,
            Some(&asset.sha256),
            // A recorded size bounds the download (a server streaming forever stops there);
            // a record without one gets the default, which only the user may raise.
            &ctx.net.for_asset(asset.size, ctx.max_unpacked),
            ctx.reporter,
            &ctx.cancel,
        )?),
        AssetLocation::Blob(path) => {
            if let Some(hit) = cache.get(&asset.sha256, ctx.reporter, &ctx.cancel)? {
                return Ok(hit);
            }
            let bytes = ix.bytes(path).ok_or_else(|| {
                WorkflowError::NotFound(format!(
                    "{path} is not in this registry clone (`cohort registry sync`, then `cohort verify`)"
                ))
            })?;
            if Sha256::of(bytes) != asset.sha256 {
                return Err(WorkflowError::Refused(format!(
                    "{path} does not hash to the sha256 its record names"
                )));
            }
            let dest = cache.path_for(&asset.sha256);
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| WorkflowError::Refused(format!("{}: {e}", parent.display())))?;
            }
            crate::storage::write_atomic(&dest, bytes)
                .map_err(|e| WorkflowError::Refused(format!("{}: {e}", dest.display())))?;
            Ok(Fetched {
                path: dest,
                sha256: asset.sha256.clone(),
                bytes: bytes.len() as u64,
            })
        }
    }
}

/// The hint for a local file too big to store in the registry.
pub fn upload_hint(flag: &str) -> String {
    format!(
        "upload it (any https server) and give {flag} the URL, with its sha256 checked on every fetch"
    )
}
