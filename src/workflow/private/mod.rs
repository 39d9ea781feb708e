//! Private models: a cube version whose image travels only as an age ciphertext under a fresh
//! model key. The owner keeps the key sealed to themselves in the cube record; a site runs the
//! model only with a signed grant for its dataset, and the image is decrypted as a stream
//! straight into the Docker Engine's image load, so no plaintext copy is ever written to disk.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::mlcube::DockerRuntime;
use crate::model::{
    self, Access, AccessAction, Asset, Image, ImageSource, Mlcube, PrivateImage, Sha256, build,
    private::SCHEME,
};
use crate::registry::NewFile;
use crate::trust::{Index, Signer};

use super::{Ctx, Result, WorkflowError};

mod grant;
mod notices;

pub use grant::{GrantTarget, Granted, grant};
pub use notices::{AccessNotice, notices};

/// Who is asking to decrypt a private model, and for which dataset.
pub struct SiteKey {
    pub handle: String,
    pub identity: std::sync::Arc<dyn age::Identity + Send + Sync>,
    /// The dataset a grant must name (a benchmark run); `None` for the owner's own runs.
    pub dataset: Option<String>,
}

impl SiteKey {
    pub fn of(signer: &Signer, dataset: Option<String>) -> SiteKey {
        SiteKey {
            handle: signer.handle.clone(),
            identity: signer.shared_decryptor(),
            dataset,
        }
    }
}

/// The newest access record (grant or revocation) of a cube version for a dataset.
pub fn latest_access<'a>(
    ix: &'a Index,
    name: &str,
    version: u32,
    dataset: &str,
) -> Option<(&'a str, &'a Access)> {
    let versions = ix
        .access
        .get(&(name.to_string(), version, dataset.to_string()))?;
    let (_, path) = versions.last_key_value()?;
    match ix.record(path) {
        Some(model::Record::Access(a)) => Some((path.as_str(), a)),
        _ => None,
    }
}

/// Whether `dataset` may run the private cube `rec` now: its newest access record is a grant.
pub fn granted(ix: &Index, rec: &Mlcube, dataset: &str) -> bool {
    latest_access(ix, &rec.name, rec.version, dataset)
        .is_some_and(|(_, a)| a.action == AccessAction::Grant)
}

/// Opens the model key of `rec` with the site's key: the owner's copy, or the grant for the
/// site's dataset. `None` when the site holds no grant it can open.
pub fn model_key(ix: &Index, rec: &Mlcube, site: &SiteKey) -> Option<age::x25519::Identity> {
    let p = rec.image.private.as_ref()?;
    if site.handle == rec.owner
        && let Ok(k) = model::private::open_key(&p.owner_key, &*site.identity, &p.recipient)
    {
        return Some(k);
    }
    let dataset = site.dataset.as_deref()?;
    let (_, a) = latest_access(ix, &rec.name, rec.version, dataset)?;
    let sealed = a.key.as_ref().filter(|_| a.action == AccessAction::Grant)?;
    model::private::open_key(sealed, &*site.identity, &p.recipient).ok()
}

/// A `Write` that hashes and counts what passes through it.
struct Hashing<W> {
    inner: W,
    hasher: sha2::Sha256,
    bytes: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        use sha2::Digest;
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// An encrypted image written to a file.
#[derive(Debug, Clone)]
pub struct Ciphertext {
    pub path: PathBuf,
    pub sha256: Sha256,
    pub bytes: u64,
}

/// Exports `image_id` (`docker save`) through the age encryptor to `out`: the plaintext only
/// ever exists in memory, one chunk at a time. `out` appears whole or not at all.
pub fn encrypt_image(
    runtime: &DockerRuntime,
    image_id: &str,
    recipient: &age::x25519::Recipient,
    out: &Path,
) -> Result<Ciphertext> {
    encrypt_to(recipient, out, &mut |w| Ok(runtime.save_to(image_id, w)?))
}

/// Encrypts what `produce` writes to `recipient` into `out`, written whole (a temporary file
/// beside it, renamed) or not at all.
fn encrypt_to(
    recipient: &age::x25519::Recipient,
    out: &Path,
    produce: &mut dyn FnMut(&mut dyn Write) -> Result<()>,
) -> Result<Ciphertext> {
    let io = |e: std::io::Error| WorkflowError::Refused(format!("{}: {e}", out.display()));
    let dir = match out.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let part = tempfile::NamedTempFile::new_in(&dir).map_err(io)?;
    let (sha256, bytes) = {
        let mut hashing = Hashing {
            inner: std::io::BufWriter::new(part.as_file()),
            hasher: <sha2::Sha256 as sha2::Digest>::new(),
            bytes: 0,
        };
        let encryptor = age::Encryptor::with_recipients(std::iter::once(recipient as _))
            .map_err(|e| WorkflowError::Refused(format!("encrypting {}: {e}", out.display())))?;
        let mut w = encryptor.wrap_output(&mut hashing).map_err(io)?;
        produce(&mut w)?;
        w.finish().map_err(io)?;
        hashing.flush().map_err(io)?;
        (
            Sha256::from_digest(&sha2::Digest::finalize(hashing.hasher)),
            hashing.bytes,
        )
    };
    part.as_file().sync_all().map_err(io)?;
    part.persist(out).map_err(|e| io(e.error))?;
    Ok(Ciphertext {
        path: out.to_path_buf(),
        sha256,
        bytes,
    })
}

/// Decrypts the ciphertext at `path` with `key` as a stream into the Engine's image load.
/// A tampered ciphertext fails age's authentication before its last chunk reaches the Engine.
pub fn load(
    ctx: &Ctx,
    runtime: &DockerRuntime,
    path: &Path,
    key: &age::x25519::Identity,
    label: &str,
) -> Result<Vec<String>> {
    let refuse = |why: String| WorkflowError::Refused(format!("{label}: {why}"));
    let file = std::fs::File::open(path).map_err(|e| refuse(e.to_string()))?;
    let decryptor = age::Decryptor::new_buffered(std::io::BufReader::new(file))
        .map_err(|e| refuse(format!("not an age ciphertext ({e})")))?;
    let reader = decryptor
        .decrypt(std::iter::once(key as &dyn age::Identity))
        .map_err(|e| refuse(format!("the model key does not open it ({e})")))?;
    Ok(runtime.load_reader(reader, label, ctx.reporter)?)
}

/// Checks a private model's additional-files tarball: a local file (it is encrypted here and
/// never copied into the cache), at most `expected` when given, and safe to extract now rather
/// than at a hospital months later. Returns its path and measured size, unpacked size and files.
pub fn measure_files(
    ctx: &Ctx,
    source: &str,
    expected: Option<&Sha256>,
) -> Result<(PathBuf, Asset)> {
    if source.contains("://") {
        return Err(WorkflowError::RefusedBecause {
            message: format!(
                "--additional-files {source}: a private model's additional files are encrypted on this machine"
            ),
            hint: "give the tarball as a local file".into(),
        });
    }
    let path = PathBuf::from(source);
    let bytes = std::fs::read(&path)
        .map_err(|e| WorkflowError::Refused(format!("{}: {e}", path.display())))?;
    let sha = Sha256::of(&bytes);
    if let Some(want) = expected.filter(|w| **w != sha) {
        return Err(WorkflowError::Refused(format!(
            "{} has sha256 {sha}, not {want}",
            path.display()
        )));
    }
    let probe = tempfile::tempdir_in(ctx.home.root())
        .map_err(|e| crate::storage::StorageError::io("create a folder in", ctx.home.root(), e))?;
    let unpacked = crate::storage::extract_tarball(
        &path,
        &probe.path().join("x"),
        &crate::storage::ExtractLimits::for_asset(None, None, ctx.max_unpacked),
    )?;
    let asset = Asset {
        size: Some(bytes.len() as u64),
        unpacked_size: Some(unpacked.bytes),
        files: Some(unpacked.files.len() as u64),
        ..Asset::in_blob(sha)
    };
    Ok((path, asset))
}

/// Encrypts the additional-files tarball at `plain` to the model key that `image` names, as a
/// blob (`measured`: its `unpacked_size` and `files`), and moves the record to
/// [`model::private::SCHEME_FILES`].
pub fn encrypt_files(
    ctx: &Ctx,
    image: &mut Image,
    plain: &Path,
    measured: &Asset,
) -> Result<NewFile> {
    let (asset, blob) = encrypt_blob(ctx, image, &plain.display().to_string(), &mut |w| {
        let io = |e: std::io::Error| WorkflowError::Refused(format!("{}: {e}", plain.display()));
        let mut f = std::fs::File::open(plain).map_err(io)?;
        std::io::copy(&mut f, w).map_err(io)?;
        Ok(())
    })?;
    let p = image.private.as_mut().expect("checked by encrypt_blob");
    p.files = Some(Box::new(Asset {
        unpacked_size: measured.unpacked_size,
        files: measured.files,
        ..asset
    }));
    Ok(blob)
}

/// Encrypts `parameters.yaml` to the model key that `image` names, as a blob, and moves the
/// record to [`model::private::SCHEME_FILES`]; the record then names no public parameters.
pub fn encrypt_parameters(ctx: &Ctx, image: &mut Image, plain: &[u8]) -> Result<NewFile> {
    let (asset, blob) = encrypt_blob(ctx, image, "parameters.yaml", &mut |w| {
        w.write_all(plain)
            .map_err(|e| WorkflowError::Refused(format!("encrypting parameters.yaml: {e}")))
    })?;
    image.private.as_mut().expect("checked").parameters = Some(Box::new(asset));
    Ok(blob)
}

/// Encrypts what `produce` writes to the model key of `image` into a blob (staged in cohort's
/// scratch folder) and sets the record's scheme to [`model::private::SCHEME_FILES`].
fn encrypt_blob(
    ctx: &Ctx,
    image: &mut Image,
    what: &str,
    produce: &mut dyn FnMut(&mut dyn Write) -> Result<()>,
) -> Result<(Asset, NewFile)> {
    let p = image
        .private
        .as_mut()
        .expect("an encrypted image names [image.private]");
    let recipient: age::x25519::Recipient = p
        .recipient
        .parse()
        .map_err(|e| WorkflowError::Refused(format!("model key `{}`: {e}", p.recipient)))?;
    let io =
        |at: &Path, e: std::io::Error| WorkflowError::Refused(format!("{}: {e}", at.display()));
    let tmp = ctx.home.tmp_dir();
    std::fs::create_dir_all(&tmp).map_err(|e| io(&tmp, e))?;
    let dir = tempfile::tempdir_in(&tmp).map_err(|e| io(&tmp, e))?;
    let out = dir.path().join("part.age");
    let ct = encrypt_to(&recipient, &out, produce)?;
    if ct.bytes > model::MAX_BLOB_BYTES as u64 {
        return Err(WorkflowError::RefusedBecause {
            message: format!(
                "{what}: encrypted, it takes {} bytes, over the {} bytes a registry blob may hold",
                ct.bytes,
                model::MAX_BLOB_BYTES
            ),
            hint: "put the larger weights into the image (it may be uploaded by URL), and keep the additional files small".into(),
        });
    }
    let bytes = std::fs::read(&out).map_err(|e| io(&out, e))?;
    if Sha256::of(&bytes) != ct.sha256 {
        return Err(WorkflowError::Refused(format!(
            "{} changed while it was read; try again",
            out.display()
        )));
    }
    p.scheme = model::private::SCHEME_FILES.to_string();
    let asset = Asset {
        size: Some(ct.bytes),
        ..Asset::in_blob(ct.sha256.clone())
    };
    Ok((asset, NewFile::new(build::blob(ct.sha256.as_str()), bytes)))
}

/// Decrypts a private model's `parameters.yaml` (at most a cube file's size) into memory.
pub fn open_parameters(path: &Path, key: &age::x25519::Identity, label: &str) -> Result<Vec<u8>> {
    use std::io::Read;
    let refuse = |why: String| WorkflowError::Refused(format!("{label}: {why}"));
    let file = std::fs::File::open(path).map_err(|e| refuse(e.to_string()))?;
    let decryptor = age::Decryptor::new_buffered(std::io::BufReader::new(file))
        .map_err(|e| refuse(format!("not an age ciphertext ({e})")))?;
    let reader = decryptor
        .decrypt(std::iter::once(key as &dyn age::Identity))
        .map_err(|e| refuse(format!("the model key does not open it ({e})")))?;
    let mut plain = Vec::new();
    reader
        .take(model::MAX_TEXT_BYTES as u64 + 1)
        .read_to_end(&mut plain)
        .map_err(|e| refuse(format!("it does not decrypt ({e})")))?;
    if plain.len() > model::MAX_TEXT_BYTES {
        return Err(refuse(format!(
            "it holds more than {} bytes",
            model::MAX_TEXT_BYTES
        )));
    }
    Ok(plain)
}

/// Decrypts the additional-files ciphertext at `path` with `key` as a stream straight into the
/// tarball extractor (its limits and path checks hold): no plaintext tarball is ever written.
/// A changed byte fails age's authentication and the extraction leaves nothing behind.
pub fn extract_files(
    path: &Path,
    key: &age::x25519::Identity,
    dest: &Path,
    limits: &crate::storage::ExtractLimits,
    label: &str,
) -> Result<crate::storage::Extracted> {
    let refuse = |why: String| WorkflowError::Refused(format!("{label}: {why}"));
    let file = std::fs::File::open(path).map_err(|e| refuse(e.to_string()))?;
    let packed = file.metadata().map_err(|e| refuse(e.to_string()))?.len();
    let decryptor = age::Decryptor::new_buffered(std::io::BufReader::new(file))
        .map_err(|e| refuse(format!("not an age ciphertext ({e})")))?;
    let reader = decryptor
        .decrypt(std::iter::once(key as &dyn age::Identity))
        .map_err(|e| refuse(format!("the model key does not open it ({e})")))?;
    Ok(crate::storage::extract_reader(
        Box::new(reader),
        packed,
        Path::new(label),
        dest,
        limits,
    )?)
}

/// What a pending encryption keeps between `--encrypt -o FILE` and `--encrypted-image URL`
/// (the model key only sealed to its owner), under `COHORT_HOME/private/<sha256>.toml`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pending {
    pub image_id: String,
    pub recipient: String,
    pub owner_key: model::SealedKey,
    pub bytes: u64,
}

fn pending_path(ctx: &Ctx, sha: &Sha256) -> PathBuf {
    ctx.home
        .root()
        .join("private")
        .join(format!("{}.toml", sha.as_str()))
}

/// Encrypts a local image under a fresh model key sealed to `signer`. Returns the image record
/// part and, when the ciphertext fits, the blob to store it in the registry.
pub fn encrypt_for_submission(
    ctx: &Ctx,
    runtime: &DockerRuntime,
    signer: &Signer,
    image_id: &str,
    out: &Path,
) -> Result<(Ciphertext, Option<(Image, NewFile)>)> {
    let key = model::private::new_model_key();
    let recipient = key.to_public();
    let owner_key = model::private::seal_key(&key, &signer.handle, &signer.public.age)?;
    let ct = encrypt_image(runtime, image_id, &recipient, out)?;
    let pending = Pending {
        image_id: image_id.to_string(),
        recipient: recipient.to_string(),
        owner_key: owner_key.clone(),
        bytes: ct.bytes,
    };
    let p = pending_path(ctx, &ct.sha256);
    let text = toml::to_string(&pending).expect("plain struct serializes");
    crate::storage::write_atomic(&p, text.as_bytes())
        .map_err(|e| WorkflowError::Refused(format!("{}: {e}", p.display())))?;
    if ct.bytes > model::MAX_BLOB_BYTES as u64 {
        return Ok((ct, None));
    }
    let bytes = std::fs::read(out)
        .map_err(|e| WorkflowError::Refused(format!("{}: {e}", out.display())))?;
    if Sha256::of(&bytes) != ct.sha256 {
        return Err(WorkflowError::Refused(format!(
            "{} changed while it was read; try again",
            out.display()
        )));
    }
    let asset = Asset {
        size: Some(ct.bytes),
        ..Asset::in_blob(ct.sha256.clone())
    };
    let image = private_image(&pending, asset);
    let blob = NewFile::new(build::blob(ct.sha256.as_str()), bytes);
    Ok((ct, Some((image, blob))))
}

fn private_image(p: &Pending, ciphertext: Asset) -> Image {
    Image {
        id: p.image_id.clone(),
        source: ImageSource::Encrypted,
        reference: None,
        tarball: None,
        private: Some(PrivateImage {
            scheme: SCHEME.to_string(),
            recipient: p.recipient.clone(),
            ciphertext,
            owner_key: p.owner_key.clone(),
            files: None,
            parameters: None,
        }),
    }
}

/// The second step for a large ciphertext: downloads `url`, checks it is a ciphertext this
/// machine made with `--encrypt` (by sha256) and that the owner's key opens it, and returns the
/// image record part. A changed byte changes the digest and is refused.
pub fn from_uploaded(ctx: &Ctx, signer: &Signer, url: &str) -> Result<Image> {
    if !model::is_http_url(url) {
        return Err(WorkflowError::Refused(format!(
            "--encrypted-image {url}: give the http(s) URL the ciphertext was uploaded to"
        )));
    }
    crate::workflow::assets::refuse_credentials("--encrypted-image", url)?;
    let cache = crate::storage::Cache::new(ctx.home);
    let got = cache.get_or_fetch(url, None, &ctx.net, ctx.reporter, &ctx.cancel)?;
    let p = pending_path(ctx, &got.sha256);
    let text = std::fs::read_to_string(&p).map_err(|_| WorkflowError::RefusedBecause {
        message: format!(
            "{url} (sha256 {}) is not a ciphertext `mlcube submit --encrypt` made on this machine; it may have been changed on the way",
            got.sha256
        ),
        hint: "upload the file `--encrypt -o FILE` wrote, unchanged, and compare its sha256 with the one printed then".into(),
    })?;
    let pending: Pending = toml::from_str(&text)
        .map_err(|e| WorkflowError::Refused(format!("{}: {e}", p.display())))?;
    let key = model::private::open_key(&pending.owner_key, signer.decryptor(), &pending.recipient)
        .map_err(|_| {
            WorkflowError::Refused(format!(
                "{url}: its model key is sealed to {}, not to your key",
                pending.owner_key.handle
            ))
        })?;
    // The header must open with the key before the record names it.
    let file = std::fs::File::open(&got.path)
        .map_err(|e| WorkflowError::Refused(format!("{}: {e}", got.path.display())))?;
    age::Decryptor::new_buffered(std::io::BufReader::new(file))
        .ok()
        .and_then(|d| d.decrypt(std::iter::once(&key as &dyn age::Identity)).ok())
        .ok_or_else(|| WorkflowError::Refused(format!("{url}: the model key does not open it")))?;
    let asset = Asset {
        size: Some(got.bytes),
        ..Asset::at_url(url, got.sha256.clone())
    };
    Ok(private_image(&pending, asset))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decrypt(path: &Path, key: &age::x25519::Identity) -> std::io::Result<Vec<u8>> {
        use std::io::Read;
        let f = std::fs::File::open(path)?;
        let d = age::Decryptor::new_buffered(std::io::BufReader::new(f))
            .map_err(std::io::Error::other)?;
        let mut r = d
            .decrypt(std::iter::once(key as &dyn age::Identity))
            .map_err(std::io::Error::other)?;
        let mut out = Vec::new();
        r.read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn a_ciphertext_round_trips_and_one_flipped_byte_fails_authentication() {
        let dir = tempfile::tempdir().unwrap();
        let key = model::private::new_model_key();
        let out = dir.path().join("image.age");
        // Several of age's 64 KiB chunks, so the flip lands before the last one.
        let plain: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let ct = encrypt_to(&key.to_public(), &out, &mut |w| {
            w.write_all(&plain)
                .map_err(|e| WorkflowError::Refused(e.to_string()))
        })
        .unwrap();
        let bytes = std::fs::read(&out).unwrap();
        assert_eq!(Sha256::of(&bytes), ct.sha256);
        assert_eq!(bytes.len() as u64, ct.bytes);
        assert_eq!(decrypt(&out, &key).unwrap(), plain);
        let other = model::private::new_model_key();
        assert!(decrypt(&out, &other).is_err(), "another key opens nothing");
        let mut flipped = bytes.clone();
        let mid = flipped.len() / 2;
        flipped[mid] ^= 1;
        std::fs::write(&out, &flipped).unwrap();
        assert!(decrypt(&out, &key).is_err(), "a flipped byte is refused");
    }

    #[test]
    fn a_failed_export_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let key = model::private::new_model_key();
        let out = dir.path().join("image.age");
        let r = encrypt_to(&key.to_public(), &out, &mut |w| {
            w.write_all(b"half an image").unwrap();
            Err(WorkflowError::Refused("the Engine went away".into()))
        });
        assert!(r.is_err());
        assert!(!out.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn encrypted_files_extract_as_a_stream_and_a_flipped_byte_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let key = model::private::new_model_key();
        let mut b = tar::Builder::new(Vec::new());
        // Past several of age's 64 KiB chunks, so the flip lands inside the tar stream.
        let weights: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
        let mut h = tar::Header::new_gnu();
        h.set_size(weights.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, "weights.bin", &weights[..]).unwrap();
        let tarball = b.into_inner().unwrap();
        let out = dir.path().join("files.age");
        encrypt_to(&key.to_public(), &out, &mut |w| {
            w.write_all(&tarball)
                .map_err(|e| WorkflowError::Refused(e.to_string()))
        })
        .unwrap();
        let limits = crate::storage::ExtractLimits::default();
        let dest = dir.path().join("ws/additional_files");
        let got = extract_files(&out, &key, &dest, &limits, "files").unwrap();
        assert_eq!(got.files, vec![PathBuf::from("weights.bin")]);
        assert_eq!(std::fs::read(dest.join("weights.bin")).unwrap(), weights);
        let other = model::private::new_model_key();
        let elsewhere = dir.path().join("other");
        assert!(extract_files(&out, &other, &elsewhere, &limits, "files").is_err());
        assert!(!elsewhere.exists());
        for at in [
            std::fs::metadata(&out).unwrap().len() as usize / 2,
            std::fs::metadata(&out).unwrap().len() as usize - 3,
        ] {
            let mut bytes = std::fs::read(&out).unwrap();
            bytes[at] ^= 1;
            let bad = dir.path().join("bad.age");
            std::fs::write(&bad, &bytes).unwrap();
            let dest = dir.path().join(format!("bad-{at}"));
            let r = extract_files(&bad, &key, &dest, &limits, "files");
            assert!(r.is_err(), "a byte flipped at {at} is refused");
            assert!(!dest.exists(), "nothing extracted");
        }
    }

    #[test]
    fn encrypted_parameters_open_only_whole_and_with_the_model_key() {
        let dir = tempfile::tempdir().unwrap();
        let key = model::private::new_model_key();
        let out = dir.path().join("params.age");
        let plain = b"threshold: 0.5\n".to_vec();
        encrypt_to(&key.to_public(), &out, &mut |w| {
            w.write_all(&plain)
                .map_err(|e| WorkflowError::Refused(e.to_string()))
        })
        .unwrap();
        assert_eq!(open_parameters(&out, &key, "p").unwrap(), plain);
        let other = model::private::new_model_key();
        assert!(open_parameters(&out, &other, "p").is_err());
        let mut bytes = std::fs::read(&out).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&out, &bytes).unwrap();
        assert!(open_parameters(&out, &key, "p").is_err(), "a flipped byte");
    }
}
