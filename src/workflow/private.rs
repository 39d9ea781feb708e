//! Private models: a cube version whose image travels only as an age ciphertext under a fresh
//! model key. The owner keeps the key sealed to themselves in the cube record; a site runs the
//! model only with a signed grant for its dataset, and the image is decrypted as a stream
//! straight into the Docker Engine's image load, so no plaintext copy is ever written to disk.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::mlcube::DockerRuntime;
use crate::model::{
    self, Access, AccessAction, Asset, FORMAT_VERSION, Image, ImageSource, Mlcube, PrivateImage,
    Sha256, build, private::SCHEME,
};
use crate::registry::NewFile;
use crate::trust::{Index, Signer, next_number};

use super::cubes::cube_ref;
use super::registry_ops::{Landed, Opened, apply_to_main};
use super::submission::record_file;
use super::{Ctx, Result, WorkflowError};

/// Who is asking to decrypt a private model, and for which dataset.
pub struct SiteKey {
    pub handle: String,
    pub identity: age::x25519::Identity,
    /// The dataset a grant must name (a benchmark run); `None` for the owner's own runs.
    pub dataset: Option<String>,
}

impl SiteKey {
    pub fn of(signer: &Signer, dataset: Option<String>) -> SiteKey {
        SiteKey {
            handle: signer.handle.clone(),
            identity: signer.age.clone(),
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
        && let Ok(k) = model::private::open_key(&p.owner_key, &site.identity, &p.recipient)
    {
        return Some(k);
    }
    let dataset = site.dataset.as_deref()?;
    let (_, a) = latest_access(ix, &rec.name, rec.version, dataset)?;
    let sealed = a.key.as_ref().filter(|_| a.action == AccessAction::Grant)?;
    model::private::open_key(sealed, &site.identity, &p.recipient).ok()
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
            .map_err(|e| WorkflowError::Refused(format!("encrypting {image_id}: {e}")))?;
        let mut w = encryptor.wrap_output(&mut hashing).map_err(io)?;
        runtime.save_to(image_id, &mut w)?;
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
    let owner_key =
        model::private::seal_key(&key, &signer.handle, &signer.age.to_public().to_string())?;
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
    let key = model::private::open_key(&pending.owner_key, &signer.age, &pending.recipient)
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

/// Which datasets a grant covers.
pub enum GrantTarget {
    /// One dataset (name, id or id prefix).
    Dataset(String),
    /// Every dataset currently associated with the benchmark (approved, not withdrawn).
    Benchmark(String),
}

/// `mlcube grant` / `--revoke`: what was decided.
pub struct Granted {
    /// The access records written, with the dataset each covers.
    pub records: Vec<(String, Access)>,
    pub landed: Landed,
}

/// The datasets with an association with `bench` on main that is not withdrawn.
fn datasets_of(ix: &Index, bench: &str) -> Vec<String> {
    ix.associations
        .iter()
        .filter_map(|((b, key), versions)| match key {
            model::AssocKey::Dataset(id) if b == bench => {
                let (_, p) = versions.last_key_value()?;
                ix.decisions_on(p, model::DecisionKind::Withdrawal)
                    .is_empty()
                    .then(|| id.clone())
            }
            _ => None,
        })
        .collect()
}

/// Writes signed grants (the model key sealed to each dataset owner's age key at this commit)
/// or revocations for one private cube version, and merges them (the owner's own records that
/// need nobody else). A revocation cannot unshare a key already given: it makes cohort refuse
/// to run the model for that dataset and `verify` refuse new results for the pair.
pub fn grant(
    ctx: &Ctx,
    opened: &Opened,
    signer: &Signer,
    model_spec: &str,
    target: &GrantTarget,
    revoke: bool,
) -> Result<Granted> {
    let ix = opened.index()?;
    let mref = cube_ref(&ix, model_spec)?;
    let (_, rec) = ix.cube(&mref.name, mref.version).expect("resolved");
    let Some(p) = rec.image.private.as_ref() else {
        return Err(WorkflowError::Refused(format!(
            "{} v{} is not a private model (submitted without --encrypt): everyone may run it already",
            mref.name, mref.version
        )));
    };
    if rec.owner != signer.handle {
        return Err(WorkflowError::Refused(format!(
            "only {} (the owner of {}) may grant or revoke access to it",
            rec.owner, mref.name
        )));
    }
    let ids = match target {
        GrantTarget::Dataset(spec) => vec![super::datasets::resolve_dataset_id(&ix, spec)?],
        GrantTarget::Benchmark(b) => {
            let ids = datasets_of(&ix, b);
            if ids.is_empty() {
                return Err(WorkflowError::NotFound(format!(
                    "no dataset is associated with benchmark `{b}` yet"
                )));
            }
            ids
        }
    };
    let model_key = if revoke {
        None
    } else {
        Some(
            model::private::open_key(&p.owner_key, &signer.age, &p.recipient).map_err(|_| {
                WorkflowError::Refused(format!(
                    "the model key of {} v{} is sealed to a key you no longer hold",
                    mref.name, mref.version
                ))
            })?,
        )
    };
    let mut records = Vec::new();
    let mut files = Vec::new();
    for id in ids {
        let (_, drec) = ix.dataset(&id).expect("resolved");
        let latest = latest_access(&ix, &mref.name, mref.version, &id).map(|(_, a)| a.action);
        let wanted = if revoke {
            AccessAction::Revoke
        } else {
            AccessAction::Grant
        };
        // Granting a granted dataset again re-seals to its owner's current key (a rotation).
        if revoke && latest != Some(AccessAction::Grant) {
            if matches!(target, GrantTarget::Dataset(_)) {
                return Err(WorkflowError::Refused(format!(
                    "dataset {} holds no grant for {} v{}; nothing to revoke",
                    &id[..12],
                    mref.name,
                    mref.version
                )));
            }
            continue;
        }
        let key = match &model_key {
            None => None,
            Some(k) => {
                let to = ix.age_recipient(&drec.owner).ok_or_else(|| {
                    WorkflowError::NotFound(format!(
                        "{} (the owner of dataset {}) has no approved user record with an age key",
                        drec.owner,
                        &id[..12]
                    ))
                })?;
                Some(model::private::seal_key(k, &drec.owner, &to)?)
            }
        };
        let number = next_number(
            ix.access
                .get(&(mref.name.clone(), mref.version, id.clone())),
        );
        let record = Access {
            format: FORMAT_VERSION,
            kind: "access".into(),
            number,
            model: mref.clone(),
            dataset: id.clone(),
            action: wanted,
            by: signer.handle.clone(),
            created: ctx.timestamp(),
            key,
        };
        let path = build::access(&mref.name, mref.version, &id, number);
        files.push(record_file(path.clone(), &record));
        records.push((path, record));
    }
    if files.is_empty() {
        return Err(WorkflowError::Refused(format!(
            "no dataset of that benchmark holds a grant for {} v{}; nothing to revoke",
            mref.name, mref.version
        )));
    }
    let landed = apply_to_main(
        ctx,
        opened,
        signer,
        files,
        &format!(
            "{} {} v{} for {} dataset(s)",
            if revoke { "Revoke" } else { "Grant" },
            mref.name,
            mref.version,
            records.len()
        ),
    )?;
    Ok(Granted { records, landed })
}

/// Something the owner of a private model should act on (`registry status`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessNotice {
    /// A dataset associated with a benchmark the model is associated with, that holds neither a
    /// grant nor a revocation yet.
    Undecided {
        model: model::CubeRef,
        bench: String,
        dataset: String,
        dataset_name: String,
    },
    /// A granted dataset's owner now has another age key than the grant sealed the key to: a
    /// new grant re-seals it (`mlcube grant` again).
    Rotated {
        model: model::CubeRef,
        dataset: String,
        dataset_name: String,
        handle: String,
    },
}

/// The access decisions waiting for `me` on my private models.
pub fn notices(ix: &Index, me: &str) -> Vec<AccessNotice> {
    let mut out = Vec::new();
    for (name, versions) in &ix.cubes {
        for path in versions.values() {
            let Some(model::Record::Mlcube(c)) = ix.record(path) else {
                continue;
            };
            if c.owner != me || c.image.source != ImageSource::Encrypted {
                continue;
            }
            let mref = model::CubeRef {
                name: name.clone(),
                version: c.version,
                sha256: ix.sha(path).cloned().expect("indexed"),
            };
            notices_of(ix, c, &mref, &mut out);
        }
    }
    out
}

fn notices_of(ix: &Index, c: &Mlcube, mref: &model::CubeRef, out: &mut Vec<AccessNotice>) {
    let name_of = |id: &str| {
        ix.dataset(id)
            .map(|(_, d)| d.name.clone())
            .unwrap_or_default()
    };
    // Benchmarks this version is associated with (not withdrawn).
    let benches: Vec<&String> = ix
        .associations
        .iter()
        .filter_map(|((b, key), versions)| {
            let model::AssocKey::Model(m) = key else {
                return None;
            };
            let (_, p) = versions.last_key_value()?;
            let ok = m == &c.name
                && ix.decisions_on(p, model::DecisionKind::Withdrawal).is_empty()
                && matches!(ix.record(p), Some(model::Record::Association(a)) if a.model.as_ref() == Some(mref));
            ok.then_some(b)
        })
        .collect();
    let mut seen = std::collections::BTreeSet::new();
    for b in benches {
        for id in datasets_of(ix, b) {
            if latest_access(ix, &c.name, c.version, &id).is_none() && seen.insert(id.clone()) {
                out.push(AccessNotice::Undecided {
                    model: mref.clone(),
                    bench: b.clone(),
                    dataset_name: name_of(&id),
                    dataset: id,
                });
            }
        }
    }
    for ((n, v, id), _) in ix
        .access
        .range((c.name.clone(), c.version, String::new())..)
    {
        if n != &c.name || *v != c.version {
            break;
        }
        let Some((_, a)) = latest_access(ix, n, *v, id) else {
            continue;
        };
        let Some(k) = a.key.as_ref().filter(|_| a.action == AccessAction::Grant) else {
            continue;
        };
        if ix.age_recipient(&k.handle).as_deref() != Some(k.age.as_str()) {
            out.push(AccessNotice::Rotated {
                model: mref.clone(),
                dataset: id.clone(),
                dataset_name: name_of(id),
                handle: k.handle.clone(),
            });
        }
    }
}
