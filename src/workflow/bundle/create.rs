//! Writing bundles: a registry bundle (main as a git bundle, every image the benchmarks'
//! cubes use, URL-located artifacts) and a submissions bundle (the local `submit/*` branches
//! not on main and not in an earlier submissions bundle, remembered under COHORT_HOME).
//! Everything is staged and hashed first, then written as one tar and renamed into place, so
//! a failed or interrupted run leaves no partial bundle.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use git2::Oid;

use crate::model::{ImageSource, Sha256};
use crate::registry::{self, MAIN_REF};
use crate::storage::{hash_file, write_atomic};

use super::super::engine::Engine;
use super::super::registry_ops::Opened;
use super::super::{Ctx, Result, WorkflowError, assets};
use super::image_tar::image_id_of_tarball;
use super::manifest::{
    BundleKind, GIT_BUNDLE_NAME, MANIFEST_FORMAT, MANIFEST_NAME, Manifest, ManifestEntry,
};
use super::needs::needs;

/// What `bundle create` wrote.
pub struct Created {
    pub path: PathBuf,
    pub manifest: Manifest,
    /// Total size of the bundle file.
    pub bytes: u64,
    /// Submission branches packed (submissions bundles).
    pub branches: Vec<String>,
}

fn io_refused(path: &Path, e: impl std::fmt::Display) -> WorkflowError {
    WorkflowError::Refused(format!("{}: {e}", path.display()))
}

fn staging(ctx: &Ctx) -> Result<tempfile::TempDir> {
    let tmp = ctx.home.tmp_dir();
    std::fs::create_dir_all(&tmp).map_err(|e| io_refused(&tmp, e))?;
    tempfile::Builder::new()
        .prefix("bundle-")
        .tempdir_in(&tmp)
        .map_err(|e| io_refused(&tmp, e))
}

/// Writes the git bundle of `refs` into `dir` and returns its manifest entry.
fn git_bundle(
    ctx: &Ctx,
    opened: &Opened,
    dir: &Path,
    refs: &[(String, Oid)],
) -> Result<ManifestEntry> {
    let path = dir.join(GIT_BUNDLE_NAME);
    let task = ctx.reporter.begin("pack the registry", None);
    let mut file = std::fs::File::create(&path).map_err(|e| io_refused(&path, e))?;
    let written = registry::write_bundle(opened.reg.repo(), refs, &mut file);
    ctx.reporter.end(task, written.is_ok());
    written?;
    file.sync_all().map_err(|e| io_refused(&path, e))?;
    entry(ctx, dir, GIT_BUNDLE_NAME, None, "the registry (git bundle)")
}

fn entry(
    ctx: &Ctx,
    dir: &Path,
    name: &str,
    image_id: Option<String>,
    what: &str,
) -> Result<ManifestEntry> {
    let (sha, bytes) = hash_file(&dir.join(name), ctx.reporter)?;
    Ok(ManifestEntry {
        path: name.to_string(),
        sha256: sha.to_string(),
        bytes,
        image_id,
        what: what.to_string(),
    })
}

/// Writes a registry bundle of main for `benches` to `out`.
pub fn create_registry_bundle(
    ctx: &Ctx,
    opened: &Opened,
    benches: &[String],
    out: &Path,
) -> Result<Created> {
    let view = opened.view()?;
    let ix = opened.index()?;
    let need = needs(&ix, benches)?;
    let stage = staging(ctx)?;
    let dir = stage.path();
    let registry = git_bundle(ctx, opened, dir, &[(MAIN_REF.to_string(), view)])?;
    std::fs::create_dir_all(dir.join("images")).map_err(|e| io_refused(dir, e))?;
    std::fs::create_dir_all(dir.join("artifacts")).map_err(|e| io_refused(dir, e))?;
    let mut images: BTreeMap<String, ManifestEntry> = BTreeMap::new();
    let mut engine: Option<Engine> = None;
    for c in &need.cubes {
        let id = &c.record.image.id;
        // A private image never travels in plaintext: its ciphertext is an artifact of the
        // record (a blob inside the registry, or a URL artifact below).
        if images.contains_key(id) || c.record.image.source == ImageSource::Encrypted {
            continue;
        }
        let hex = id.trim_start_matches("sha256:");
        let name = format!("images/{hex}.tar");
        let dest = dir.join(&name);
        match (&c.record.image.source, &c.record.image.tarball) {
            (ImageSource::Tarball, Some(asset)) => {
                // The published tarball (blob or URL), re-checked against its record.
                let got = assets::fetch(ctx, &ix, asset)?;
                std::fs::copy(&got.path, &dest).map_err(|e| io_refused(&dest, e))?;
            }
            _ => {
                if engine.is_none() {
                    engine = Some(Engine::connect(ctx)?);
                }
                let e = engine.as_ref().expect("connected above");
                // Pulls it by digest when it is not here yet; the id is checked on the way.
                let cube = e.registered(ctx, &ix, &c.cube)?;
                let task = ctx
                    .reporter
                    .begin(&format!("docker save {}", c.label()), None);
                let saved = e.runtime.save(&cube.image_id, &dest);
                ctx.reporter.end(task, saved.is_ok());
                saved?;
            }
        }
        // Never write a bundle its importers would refuse.
        let ids = image_id_of_tarball(&dest).map_err(|e| io_refused(&dest, e))?;
        if !ids.contains(id) {
            return Err(WorkflowError::Refused(format!(
                "{}: the image tarball holds {}, not the recorded image {id}",
                c.label(),
                ids.join(", ")
            )));
        }
        images.insert(
            id.clone(),
            entry(ctx, dir, &name, Some(id.clone()), &c.label())?,
        );
    }
    let mut artifacts = Vec::new();
    for (sha, (what, asset)) in &need.url_assets {
        let got = assets::fetch(ctx, &ix, asset)?;
        let name = format!("artifacts/{sha}");
        let dest = dir.join(&name);
        std::fs::copy(&got.path, &dest).map_err(|e| io_refused(&dest, e))?;
        let e = entry(ctx, dir, &name, None, what)?;
        if e.sha256 != *sha {
            return Err(WorkflowError::Refused(format!(
                "{what} changed while it was copied; try again"
            )));
        }
        artifacts.push(e);
    }
    let manifest = Manifest {
        format: MANIFEST_FORMAT,
        kind: BundleKind::Registry,
        registry_id: opened.id.to_string(),
        created: ctx.timestamp(),
        cohort_version: crate::VERSION.to_string(),
        benchmarks: benches.to_vec(),
        registry,
        images: images.into_values().collect(),
        artifacts,
    };
    let bytes = write_tar(ctx, dir, &manifest, out)?;
    Ok(Created {
        path: out.to_path_buf(),
        manifest,
        bytes,
        branches: Vec::new(),
    })
}

/// Which submission branches were bundled before, by registry (`state/<id>.bundled.toml`).
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Bundled {
    /// Branch name -> the tip that went into a submissions bundle.
    #[serde(default)]
    branches: BTreeMap<String, String>,
}

fn bundled_path(ctx: &Ctx, opened: &Opened) -> PathBuf {
    ctx.home
        .state_dir()
        .join(format!("{}.bundled.toml", opened.id))
}

/// Writes every local submission branch that is not on main and not in an earlier
/// submissions bundle (with the same tip) to `out`, and remembers them.
pub fn create_submissions_bundle(ctx: &Ctx, opened: &Opened, out: &Path) -> Result<Created> {
    let view = opened.view()?;
    let repo = opened.reg.repo();
    let state_path = bundled_path(ctx, opened);
    let mut bundled: Bundled = match std::fs::read_to_string(&state_path) {
        Ok(t) => toml::from_str(&t).map_err(|e| io_refused(&state_path, e))?,
        Err(_) => Bundled::default(),
    };
    let mut refs = Vec::new();
    for (name, tip) in opened.reg.submission_branches(false)? {
        let on_main = tip == view
            || repo
                .graph_descendant_of(view, tip)
                .map_err(registry::RegistryError::from)?;
        if on_main || bundled.branches.get(&name) == Some(&tip.to_string()) {
            continue;
        }
        refs.push((format!("refs/heads/{name}"), tip));
    }
    if refs.is_empty() {
        return Err(WorkflowError::RefusedBecause {
            message: "no submission to bundle: every local submit/* branch is on main or in an earlier submissions bundle".into(),
            hint: "submit something first (it waits on its branch), or carry the earlier bundle again".into(),
        });
    }
    let stage = staging(ctx)?;
    let dir = stage.path();
    let registry = git_bundle(ctx, opened, dir, &refs)?;
    let manifest = Manifest {
        format: MANIFEST_FORMAT,
        kind: BundleKind::Submissions,
        registry_id: opened.id.to_string(),
        created: ctx.timestamp(),
        cohort_version: crate::VERSION.to_string(),
        benchmarks: Vec::new(),
        registry,
        images: Vec::new(),
        artifacts: Vec::new(),
    };
    let bytes = write_tar(ctx, dir, &manifest, out)?;
    let mut branches = Vec::new();
    for (r, tip) in &refs {
        let name = r.trim_start_matches("refs/heads/").to_string();
        bundled.branches.insert(name.clone(), tip.to_string());
        branches.push(name);
    }
    let text = toml::to_string(&bundled).expect("serializes");
    write_atomic(&state_path, text.as_bytes()).map_err(|e| io_refused(&state_path, e))?;
    Ok(Created {
        path: out.to_path_buf(),
        manifest,
        bytes,
        branches,
    })
}

/// Writes the tar: the manifest first, then every entry it lists, with a progress bar; the
/// file appears at `out` only when complete.
fn write_tar(ctx: &Ctx, dir: &Path, manifest: &Manifest, out: &Path) -> Result<u64> {
    let text = toml::to_string(manifest).expect("the manifest serializes");
    let part = out.with_extension("part");
    let file = std::fs::File::create(&part).map_err(|e| io_refused(&part, e))?;
    let mut b = tar::Builder::new(std::io::BufWriter::new(file));
    let total: u64 = manifest.entries().map(|e| e.bytes).sum();
    let task = ctx
        .reporter
        .begin(&format!("write {}", out.display()), Some(total));
    let result = (|| -> std::io::Result<()> {
        append(
            &mut b,
            MANIFEST_NAME,
            text.len() as u64,
            &mut text.as_bytes(),
        )?;
        for e in manifest.entries() {
            let mut f = std::fs::File::open(dir.join(&e.path))?;
            let mut counted = Counted {
                inner: &mut f,
                ctx,
                task,
            };
            append(&mut b, &e.path, e.bytes, &mut counted)?;
        }
        let mut w = b.into_inner()?;
        w.flush()?;
        w.get_ref().sync_all()
    })();
    ctx.reporter.end(task, result.is_ok());
    if let Err(e) = result {
        let _ = std::fs::remove_file(&part);
        return Err(io_refused(out, e));
    }
    std::fs::rename(&part, out).map_err(|e| io_refused(out, e))?;
    Ok(std::fs::metadata(out).map(|m| m.len()).unwrap_or(0))
}

fn append<W: Write>(
    b: &mut tar::Builder<W>,
    name: &str,
    size: u64,
    data: &mut dyn Read,
) -> std::io::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mtime(0);
    b.append_data(&mut h, name, data)
}

/// A reader that advances a progress bar.
struct Counted<'a, 'c> {
    inner: &'a mut dyn Read,
    ctx: &'a Ctx<'c>,
    task: crate::progress::TaskId,
}

impl Read for Counted<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.ctx.reporter.advance(self.task, n as u64);
        Ok(n)
    }
}

/// The sha256 of a file, for callers outside this module.
pub(super) fn sha_of(ctx: &Ctx, path: &Path) -> Result<Sha256> {
    Ok(hash_file(path, ctx.reporter)?.0)
}
