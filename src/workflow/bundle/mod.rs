//! Bundles carry a registry and everything a site needs to use it across an air gap, and
//! carry a site's submissions back. A bundle is a tar holding a versioned manifest, a git
//! bundle and content-addressed artifacts (docs/bundles.md). Bundles are untrusted input: the
//! registry inside is verified exactly as `registry clone` and `registry sync` verify a remote,
//! every artifact is hashed, every image's id is computed from its tarball before it is loaded,
//! and nothing local changes unless all of it checks out.

mod create;
mod image_tar;
mod import;
mod manifest;
mod needs;

use std::path::PathBuf;

pub use create::{Created, create_registry_bundle, create_submissions_bundle};
pub use image_tar::image_id_of_tarball;
pub use import::{Imported, ImportedBranch, import_clone, import_into, reload_kept_image};
pub use manifest::{BundleKind, MANIFEST_FORMAT, MANIFEST_NAME, Manifest, ManifestEntry};

/// Why a bundle was refused. Each names the bundle file and what failed, in one line.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("bundle {file}: {why}")]
    Malformed { file: PathBuf, why: String },
    #[error(
        "bundle {file}: {entry} does not hash to the sha256 its manifest names (expected {expected}, found {actual}): the bundle was truncated or altered"
    )]
    HashMismatch {
        file: PathBuf,
        entry: String,
        expected: String,
        actual: String,
    },
    #[error("bundle {file} is a {found} bundle; {wanted}")]
    WrongKind {
        file: PathBuf,
        found: BundleKind,
        wanted: String,
    },
    #[error("bundle {file} is for registry {found}, not {expected} (this clone's)")]
    OtherRegistry {
        file: PathBuf,
        found: String,
        expected: String,
    },
    #[error(
        "bundle {file}: image {entry} is {actual} (its config digest), not {expected} as {cube} records"
    )]
    ImageIdMismatch {
        file: PathBuf,
        entry: String,
        cube: String,
        expected: String,
        actual: String,
    },
    #[error("bundle {file}: {entry} is not named by any record on the bundle's verified main")]
    Unreferenced { file: PathBuf, entry: String },
}

impl BundleError {
    /// What to do about it (the CLI prints it as a `hint:` line).
    pub fn hint(&self) -> &'static str {
        match self {
            BundleError::Malformed { .. } | BundleError::HashMismatch { .. } => {
                "copy the bundle again from the machine that wrote it (compare its sha256 there and here); nothing was changed"
            }
            BundleError::WrongKind { .. } => {
                "a registry bundle (`cohort bundle create -b BENCH`) makes or updates a clone; a submissions bundle (`bundle create --submissions`) goes into a clone that already exists"
            }
            BundleError::OtherRegistry { .. } => {
                "import it into a clone of that registry, or ask for a bundle of this one; nothing was changed"
            }
            BundleError::ImageIdMismatch { .. } | BundleError::Unreferenced { .. } => {
                "the bundle does not match its signed registry: do not use it; nothing was changed"
            }
        }
    }
}
