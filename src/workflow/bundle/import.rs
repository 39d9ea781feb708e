//! Reading bundles. The tar is unpacked with the safe extractor into scratch space, every
//! entry is hashed against the manifest, the registry inside goes through exactly the rules
//! of `registry clone` (a new clone) or `registry sync` (an existing one), every image's id is
//! computed from its tarball and every artifact matched to a record of the verified main.
//! Only then are images loaded and caches filled; a submissions bundle only adds branches,
//! never overwriting a different tip.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use git2::Oid;

use crate::mlcube::ContainerRuntime;
use crate::model::Sha256;
use crate::registry::{self, MAIN_REF};
use crate::storage::{Cache, ExtractLimits, extract_tarball};

use super::super::engine::Engine;
use super::super::identity::adopt_clone;
use super::super::registry_ops::{Opened, Synced, adopt_main};
use super::super::{Ctx, Result, WorkflowError};
use super::BundleError;
use super::create::sha_of;
use super::image_tar::{image_id_of_tarball, saved_images};
use super::manifest::{BundleKind, MANIFEST_NAME, MAX_MANIFEST_BYTES, Manifest};
use super::needs::needs;

/// What happened to one branch of a submissions bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportedBranch {
    Added(String),
    /// Already here with the same tip.
    Unchanged(String),
    /// The local branch has another tip that the bundle's does not descend from: kept as is.
    Kept(String),
}

/// What `bundle import` did.
pub struct Imported {
    pub kind: BundleKind,
    pub registry_id: Sha256,
    /// The new main (registry bundles).
    pub main: Option<Oid>,
    /// For an update: what moved.
    pub synced: Option<Synced>,
    pub branches: Vec<ImportedBranch>,
    /// Image ids loaded into the Engine (or already there).
    pub images: Vec<String>,
    /// Artifacts placed in the cache.
    pub artifacts: usize,
    /// Files on the verified main (clone form).
    pub files: usize,
}

/// A bundle unpacked into scratch space with every entry's hash checked.
struct Unpacked {
    file: PathBuf,
    dir: tempfile::TempDir,
    manifest: Manifest,
}

impl Unpacked {
    fn path(&self, entry: &str) -> PathBuf {
        self.dir.path().join("b").join(entry)
    }
    fn malformed(&self, why: impl Into<String>) -> WorkflowError {
        BundleError::Malformed {
            file: self.file.clone(),
            why: why.into(),
        }
        .into()
    }
}

fn unpack(ctx: &Ctx, file: &Path) -> Result<Unpacked> {
    let malformed = |why: String| -> WorkflowError {
        BundleError::Malformed {
            file: file.to_path_buf(),
            why,
        }
        .into()
    };
    match std::fs::metadata(file) {
        Ok(m) if m.is_file() => {}
        Ok(_) => return Err(malformed("it is not a file".into())),
        Err(e) => return Err(malformed(format!("cannot read it ({e})"))),
    }
    let tmp = ctx.home.tmp_dir();
    let scratch = |e: std::io::Error| WorkflowError::Refused(format!("{}: {e}", tmp.display()));
    std::fs::create_dir_all(&tmp).map_err(scratch)?;
    let dir = tempfile::Builder::new()
        .prefix("import-")
        .tempdir_in(&tmp)
        .map_err(scratch)?;
    // Bundles are written as plain tars: their contents never exceed the file itself, so a
    // compressed "bundle" expanding past its own size is refused as a bomb.
    let limits = ExtractLimits {
        max_entries: 10_000,
        max_total_bytes: 64 << 30,
        max_ratio: Some(1),
        ..ExtractLimits::default()
    };
    let task = ctx
        .reporter
        .begin(&format!("unpack {}", file.display()), None);
    let files = extract_tarball(file, &dir.path().join("b"), &limits);
    ctx.reporter.end(task, files.is_ok());
    let files = files
        .map_err(|e| malformed(format!("cannot unpack it ({e}); truncated or not a bundle")))?;
    let mpath = dir.path().join("b").join(MANIFEST_NAME);
    let size = std::fs::metadata(&mpath)
        .map_err(|_| malformed(format!("it has no {MANIFEST_NAME}")))?
        .len();
    if size > MAX_MANIFEST_BYTES {
        return Err(malformed(format!(
            "{MANIFEST_NAME} is over {MAX_MANIFEST_BYTES} bytes"
        )));
    }
    let text =
        std::fs::read_to_string(&mpath).map_err(|e| malformed(format!("{MANIFEST_NAME}: {e}")))?;
    let manifest = Manifest::parse(&text).map_err(malformed)?;
    let listed: BTreeSet<String> = manifest.entries().map(|e| e.path.clone()).collect();
    let present: BTreeSet<String> = files
        .files
        .iter()
        .map(|p| p.to_string_lossy().replace('\\', "/"))
        .filter(|p| p != MANIFEST_NAME)
        .collect();
    if let Some(extra) = present.difference(&listed).next() {
        return Err(malformed(format!("{extra} is not listed in its manifest")));
    }
    if let Some(missing) = listed.difference(&present).next() {
        return Err(malformed(format!(
            "{missing} is missing: the bundle is truncated"
        )));
    }
    let u = Unpacked {
        file: file.to_path_buf(),
        dir,
        manifest,
    };
    for e in u.manifest.entries() {
        let actual = sha_of(ctx, &u.path(&e.path))?;
        if actual.as_str() != e.sha256 {
            return Err(BundleError::HashMismatch {
                file: file.to_path_buf(),
                entry: e.path.clone(),
                expected: e.sha256.clone(),
                actual: actual.to_string(),
            }
            .into());
        }
    }
    Ok(u)
}

fn want_kind(u: &Unpacked, kind: BundleKind, wanted: &str) -> Result<()> {
    if u.manifest.kind != kind {
        return Err(BundleError::WrongKind {
            file: u.file.clone(),
            found: u.manifest.kind,
            wanted: wanted.to_string(),
        }
        .into());
    }
    Ok(())
}

/// Reads the git bundle into `opened`'s object database; returns main's commit.
fn read_main(u: &Unpacked, reg: &registry::Registry) -> Result<Oid> {
    let refs = registry::read_bundle(reg.repo(), &u.path(&u.manifest.registry.path))
        .map_err(|e| u.malformed(e.to_string()))?;
    match refs.as_slice() {
        [(name, oid)] if name == MAIN_REF => Ok(*oid),
        _ => Err(u.malformed("a registry bundle holds exactly refs/heads/main")),
    }
}

/// The bundle's own registry id must be the manifest's and the clone's.
fn check_registry(
    u: &Unpacked,
    reg: &registry::Registry,
    commit: Oid,
    expected: Option<&Sha256>,
) -> Result<Sha256> {
    let id = reg
        .registry_id(commit)
        .map_err(|e| u.malformed(e.to_string()))?;
    if id.as_str() != u.manifest.registry_id {
        return Err(u.malformed(format!(
            "its manifest says registry {}, its git bundle holds {}",
            &u.manifest.registry_id[..12],
            id.short()
        )));
    }
    if let Some(want) = expected
        && want != &id
    {
        return Err(BundleError::OtherRegistry {
            file: u.file.clone(),
            found: id.to_string(),
            expected: want.to_string(),
        }
        .into());
    }
    Ok(id)
}

/// Checks every image and artifact against the records on `commit`: each image's id computed
/// from its tarball is the one its manifest entry claims and some cube records; each artifact
/// is named by a record. Nothing is loaded or cached yet.
fn check_artifacts(u: &Unpacked, reg: &registry::Registry, commit: Oid) -> Result<()> {
    let (ix, _) = reg.index_at(commit)?;
    let need = needs(&ix, &u.manifest.benchmarks)?;
    for e in &u.manifest.images {
        let claimed = e.image_id.clone().expect("checked by Manifest::parse");
        let cubes = need.cubes_with_image(&claimed);
        if cubes.is_empty() {
            return Err(BundleError::Unreferenced {
                file: u.file.clone(),
                entry: e.path.clone(),
            }
            .into());
        }
        let saved = saved_images(&u.path(&e.path))
            .map_err(|why| u.malformed(format!("{}: {why}", e.path)))?;
        // A tarball some cube record publishes (`source = "tarball"`, its sha256 signed) loads
        // as its owner made it. Any other is a `docker save` of exactly this image, untagged:
        // an unsigned bundle may not add images to the site's Engine or move its tags.
        let published = need.cubes.iter().any(|c| {
            c.record.image.id == claimed
                && c.record
                    .image
                    .tarball
                    .as_ref()
                    .is_some_and(|t| t.sha256.as_str() == e.sha256)
        });
        if !published {
            if saved.len() != 1 {
                return Err(u.malformed(format!(
                    "{} holds {} images; a bundle's image tarball holds exactly its one image",
                    e.path,
                    saved.len()
                )));
            }
            if let Some(tag) = saved[0].tags.first() {
                return Err(u.malformed(format!(
                    "{} would tag the image as {tag}; a bundle's image tarball carries no tags",
                    e.path
                )));
            }
        }
        let ids: Vec<String> = saved.into_iter().map(|i| i.id).collect();
        if !ids.contains(&claimed) {
            return Err(BundleError::ImageIdMismatch {
                file: u.file.clone(),
                entry: e.path.clone(),
                cube: cubes.join(", "),
                expected: claimed,
                actual: ids.join(", "),
            }
            .into());
        }
    }
    for e in &u.manifest.artifacts {
        if !need.url_assets.contains_key(&e.sha256) {
            return Err(BundleError::Unreferenced {
                file: u.file.clone(),
                entry: e.path.clone(),
            }
            .into());
        }
    }
    Ok(())
}

/// Loads the bundle's images (keeping a copy by image id for later reloads) and puts its
/// artifacts in the download cache. Runs only after everything verified.
fn fill_caches(ctx: &Ctx, u: &Unpacked) -> Result<(Vec<String>, usize)> {
    let io = |p: &Path, e: std::io::Error| WorkflowError::Refused(format!("{}: {e}", p.display()));
    let cache = Cache::new(ctx.home);
    for e in &u.manifest.artifacts {
        let sha: Sha256 = e.sha256.parse().map_err(WorkflowError::Refused)?;
        let dest = cache.path_for(&sha);
        place(&u.path(&e.path), &dest).map_err(|err| io(&dest, err))?;
    }
    let mut loaded = Vec::new();
    if u.manifest.images.is_empty() {
        return Ok((loaded, u.manifest.artifacts.len()));
    }
    let engine = Engine::connect(ctx)?;
    for e in &u.manifest.images {
        let id = e.image_id.clone().expect("checked by Manifest::parse");
        let src = u.path(&e.path);
        let kept = ctx
            .home
            .images_dir()
            .join(format!("{}.tar", id.trim_start_matches("sha256:")));
        place(&src, &kept).map_err(|err| io(&kept, err))?;
        load_checked(ctx, &engine.runtime, &kept, &id, &e.sha256)?;
        loaded.push(id);
    }
    Ok((loaded, u.manifest.artifacts.len()))
}

/// Loads the image tarball at `path` unless `id` is already present; refuses a tarball that
/// does not load as `id`.
fn load_checked(
    ctx: &Ctx,
    runtime: &dyn ContainerRuntime,
    path: &Path,
    id: &str,
    sha256: &str,
) -> Result<()> {
    if runtime.image_id(id)?.as_deref() == Some(id) {
        return Ok(());
    }
    let ids = runtime.load_tarball(path, sha256, ctx.reporter)?;
    if !ids.iter().any(|i| i == id) {
        return Err(WorkflowError::Refused(format!(
            "{} loaded as {}, not {id}",
            path.display(),
            ids.join(", ")
        )));
    }
    Ok(())
}

/// Reloads image `id` from the copy a bundle import kept under COHORT_HOME, when there is one
/// whose config digest (computed again now) is `id`. Returns whether it did: an air-gapped
/// site gets its images back after the image store was emptied, with no network.
pub fn reload_kept_image(ctx: &Ctx, runtime: &dyn ContainerRuntime, id: &str) -> Result<bool> {
    let kept = ctx
        .home
        .images_dir()
        .join(format!("{}.tar", id.trim_start_matches("sha256:")));
    if !kept.is_file() {
        return Ok(false);
    }
    match image_id_of_tarball(&kept) {
        Ok(ids) if ids.iter().any(|i| i == id) => {}
        _ => {
            ctx.reporter.warn(&format!(
                "{} is not image {id}; ignoring it",
                kept.display()
            ));
            return Ok(false);
        }
    }
    let sha = sha_of(ctx, &kept)?;
    load_checked(ctx, runtime, &kept, id, sha.as_str())?;
    Ok(true)
}

/// Copies `src` to `dest` atomically (same bytes, so replacing an existing copy is harmless).
fn place(src: &Path, dest: &Path) -> std::io::Result<()> {
    let parent = dest.parent().expect("cache paths have a parent");
    std::fs::create_dir_all(parent)?;
    let part = dest.with_extension("import-part");
    std::fs::copy(src, &part)?;
    std::fs::rename(&part, dest)
}

/// `bundle import FILE DIR`: a new clone from a registry bundle, accepted exactly as
/// `registry clone` accepts a remote (`expected` checks the registry id).
pub fn import_clone(
    ctx: &Ctx,
    file: &Path,
    dest: &Path,
    expected: &dyn Fn(&Sha256) -> Result<()>,
) -> Result<(Opened, Imported)> {
    let u = unpack(ctx, file)?;
    want_kind(
        &u,
        BundleKind::Registry,
        "only a registry bundle makes a new clone",
    )?;
    let reg = registry::init_for_bundle(dest)?;
    let cleanup = |e: WorkflowError| {
        let _ = std::fs::remove_dir_all(dest);
        e
    };
    let main = read_main(&u, &reg).map_err(cleanup)?;
    check_registry(&u, &reg, main, None).map_err(cleanup)?;
    check_artifacts(&u, &reg, main).map_err(cleanup)?;
    registry::start_main(&reg, main).map_err(|e| cleanup(e.into()))?;
    let source = format!("bundle {}", file.display());
    let (opened, outcome) = adopt_clone(ctx, reg, main, &source, dest, expected)?;
    let (images, artifacts) = fill_caches(ctx, &u)?;
    let imported = Imported {
        kind: BundleKind::Registry,
        registry_id: opened.id.clone(),
        main: Some(main),
        synced: None,
        branches: Vec::new(),
        images,
        artifacts,
        files: outcome.report.files,
    };
    Ok((opened, imported))
}

/// `bundle import FILE` in a clone: a registry bundle updates it under `registry sync`'s
/// rules; a submissions bundle adds its branches.
pub fn import_into(ctx: &Ctx, opened: &Opened, file: &Path) -> Result<Imported> {
    let u = unpack(ctx, file)?;
    if u.manifest.registry_id != opened.id.as_str() {
        return Err(BundleError::OtherRegistry {
            file: file.to_path_buf(),
            found: u.manifest.registry_id.clone(),
            expected: opened.id.to_string(),
        }
        .into());
    }
    match u.manifest.kind {
        BundleKind::Registry => {
            let main = read_main(&u, &opened.reg)?;
            check_registry(&u, &opened.reg, main, Some(&opened.id))?;
            check_artifacts(&u, &opened.reg, main)?;
            let source = format!("bundle {}", file.display());
            let synced = adopt_main(ctx, opened, main, &source)?;
            let (images, artifacts) = fill_caches(ctx, &u)?;
            Ok(Imported {
                kind: BundleKind::Registry,
                registry_id: opened.id.clone(),
                main: Some(main),
                synced: Some(synced),
                branches: Vec::new(),
                images,
                artifacts,
                files: 0,
            })
        }
        BundleKind::Submissions => {
            let branches = add_branches(&u, opened)?;
            Ok(Imported {
                kind: BundleKind::Submissions,
                registry_id: opened.id.clone(),
                main: None,
                synced: None,
                branches,
                images: Vec::new(),
                artifacts: 0,
                files: 0,
            })
        }
    }
}

/// Adds a submissions bundle's branches: each must be a `submit/` branch of this registry;
/// an existing branch moves only forward, a different tip is kept.
fn add_branches(u: &Unpacked, opened: &Opened) -> Result<Vec<ImportedBranch>> {
    let repo = opened.reg.repo();
    let refs = registry::read_bundle(repo, &u.path(&u.manifest.registry.path))
        .map_err(|e| u.malformed(e.to_string()))?;
    // Check them all before creating any.
    for (name, tip) in &refs {
        if !name.starts_with(&format!("refs/heads/{}", registry::SUBMIT_PREFIX)) {
            return Err(u.malformed(format!("{name} is not a submission branch")));
        }
        check_registry(u, &opened.reg, *tip, Some(&opened.id))?;
    }
    let mut out = Vec::new();
    for (name, tip) in refs {
        let short = name.trim_start_matches("refs/heads/").to_string();
        match opened.reg.ref_target(&name) {
            Some(cur) if cur == tip => out.push(ImportedBranch::Unchanged(short)),
            Some(cur)
                if !repo
                    .graph_descendant_of(tip, cur)
                    .map_err(registry::RegistryError::from)? =>
            {
                out.push(ImportedBranch::Kept(short))
            }
            _ => {
                registry::set_ref(repo, &name, tip, "cohort bundle import")?;
                out.push(ImportedBranch::Added(short));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
#[path = "import_tests.rs"]
mod tests;
