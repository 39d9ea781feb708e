//! The record types, one struct per kind, exactly as they appear in TOML. Unknown fields are
//! refused everywhere so a typo or a smuggled field never passes silently.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::asset::Asset;
use super::envelope::Sealed;
use super::ids::Sha256;

/// A public identity: a minisign signing key and an age encryption recipient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyHolder {
    pub handle: String,
    /// minisign public key, base64 (the second line of a `.pub` file).
    pub minisign: String,
    /// age X25519 recipient (`age1...`).
    pub age: String,
}

/// `root/v<N>.toml`: the trust root.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Root {
    pub format: u32,
    pub kind: String,
    pub version: u32,
    /// The registry's display name.
    pub name: String,
    pub created: String,
    /// Random bytes so two registries with the same name and admins have different ids.
    pub nonce: String,
    /// How many distinct admins must sign admin-threshold records (grants, root rotation).
    pub threshold: u32,
    /// sha256 of `root/v<N-1>.toml`; absent in v1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<Sha256>,
    /// The trust rules in force from this root on (see [`crate::model::RULES_VERSION`]);
    /// absent in roots written before rules were versioned, which means 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<u32>,
    pub admins: Vec<KeyHolder>,
}

impl Root {
    /// The trust-rules version this root puts in force.
    pub fn rules(&self) -> u32 {
        self.rules.unwrap_or(1)
    }
}

/// `meta/v<N>.toml`: pins the bytes of the non-record files (README, CI, hook).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Meta {
    pub format: u32,
    pub kind: String,
    pub version: u32,
    pub created: String,
    pub by: String,
    /// path -> sha256 of every meta file the tree may hold.
    pub files: BTreeMap<String, Sha256>,
}

/// `users/<handle>/v<N>.toml`: who a participant is and which keys they sign and decrypt with.
/// Carries no roles: roles come from grants.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub format: u32,
    pub kind: String,
    pub handle: String,
    pub version: u32,
    pub name: String,
    pub email: String,
    pub minisign: String,
    pub age: String,
    pub created: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<Sha256>,
}

/// Roles an admin can grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    BenchmarkOwner,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::BenchmarkOwner => "benchmark-owner",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GrantAction {
    GrantRole,
    RevokeRole,
    /// The named key stops counting from the commit that merges this record.
    RevokeKey,
}

/// `grants/<handle>/<n>.toml`: an admin grants or revokes a role, or revokes a key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    pub format: u32,
    pub kind: String,
    pub number: u32,
    pub handle: String,
    pub action: GrantAction,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// minisign key id (16 upper-case hex digits, as minisign prints it) for `revoke-key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub by: String,
    pub at: String,
}

/// Approval, rejection or withdrawal of exactly one version of a record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    pub format: u32,
    pub kind: String,
    /// Registry path of the record decided on.
    pub subject: String,
    /// sha256 of the subject's bytes: the decision covers these bytes and no others.
    pub subject_sha256: Sha256,
    pub by: String,
    pub at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImageSource {
    /// Built or loaded by hand on each machine (development, demo); only the id is checked.
    Local,
    /// Pulled by digest (`reference` = `repo@sha256:...`).
    Pull,
    /// Loaded from a tarball (`url` + `sha256`).
    Tarball,
    /// A private model: an age ciphertext of the tarball (`[image.private]`), decrypted only by
    /// the owner and the sites granted the key.
    Encrypted,
}

/// The container image a cube runs, by id (the config digest `docker inspect` reports).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Image {
    pub id: String,
    pub source: ImageSource,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tarball: Option<Asset>,
    /// The ciphertext and the owner's key, for `source = "encrypted"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private: Option<super::private::PrivateImage>,
}

/// `mlcubes/<name>/v<N>/cube.toml`: one version of an MLCube, binding every asset by hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mlcube {
    pub format: u32,
    pub kind: String,
    pub name: String,
    pub version: u32,
    pub owner: String,
    pub created: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// sha256 of `mlcube.yaml` in the same folder (an MLCube).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mlcube_yaml: Option<Sha256>,
    /// sha256 of `container_config.yaml` in the same folder (a MedPerf 0.3.0 container);
    /// exactly one of the two is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_config_yaml: Option<Sha256>,
    /// sha256 of `parameters.yaml` in the same folder, when the cube has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters_yaml: Option<Sha256>,
    /// The additional-files tarball extracted into the workspace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_files: Option<Asset>,
    pub image: Image,
}

impl Mlcube {
    /// The cube's configuration file and its recorded sha256 (validation ensures one is set).
    pub fn config_file(&self) -> (crate::model::CubeFile, &Sha256) {
        match (&self.mlcube_yaml, &self.container_config_yaml) {
            (_, Some(s)) => (crate::model::CubeFile::ContainerConfigYaml, s),
            (Some(s), None) => (crate::model::CubeFile::MlcubeYaml, s),
            (None, None) => unreachable!("validated: a cube records its configuration file"),
        }
    }
}

/// A reference to one cube version: name, version and the sha256 of its `cube.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CubeRef {
    pub name: String,
    pub version: u32,
    pub sha256: Sha256,
}

/// A reference to one benchmark version.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BenchRef {
    pub name: String,
    pub version: u32,
    pub sha256: Sha256,
}

/// A reference to one dataset version.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetRef {
    pub id: String,
    pub version: u32,
    pub sha256: Sha256,
}

/// How much of the results a release may show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Release {
    /// One score per model (the primary metric, aggregated across datasets).
    Aggregate,
    /// Every metric per model, aggregated across datasets.
    PerModel,
    /// Every model x dataset cell.
    CrossProduct,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetNaming {
    Shown,
    Pseudonymised,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Ranking {
    HigherIsBetter,
    LowerIsBetter,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Weighting {
    Equal,
    /// Weighted by the `n` metric each result reports (its number of cases).
    Size,
}

/// The committee's sharing policy, part of each benchmark version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    pub release: Release,
    pub dataset_names: DatasetNaming,
    /// A model is listed only once it has results on at least this many datasets.
    pub min_datasets: u32,
    pub primary_metric: String,
    pub ranking: Ranking,
    pub weighting: Weighting,
    /// Metrics that count cases, besides `n` (always one): weights, never ranked, averaged
    /// or charted; a layout-3 release shows their total per model. Absent in records written
    /// before the declaration existed (docs/format.md "benchmark").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub size_metrics: Vec<String>,
}

/// The metric that counts a result's cases whatever the benchmark declares (and the weight of
/// `weighting = "size"`).
pub const SIZE_METRIC: &str = "n";

impl Release {
    /// The policy's spelling (`aggregate`, `per-model`, `cross-product`).
    pub fn as_str(self) -> &'static str {
        match self {
            Release::Aggregate => "aggregate",
            Release::PerModel => "per-model",
            Release::CrossProduct => "cross-product",
        }
    }
}

impl Policy {
    /// Whether `metric` counts cases (`n`, or one the benchmark declares in `size_metrics`):
    /// a weight, shown as a total, never ranked, averaged or charted.
    pub fn is_size_metric(&self, metric: &str) -> bool {
        metric == SIZE_METRIC || self.size_metrics.iter().any(|m| m == metric)
    }

    /// Why a release under `self` would show more than a result submitted under `agreed`
    /// allows, if it would: a higher release level, dataset names where the result agreed to
    /// pseudonyms, or a lower minimum number of datasets. A wider policy applies only to results
    /// submitted under it.
    pub fn exceeds(&self, agreed: &Policy) -> Option<String> {
        if self.release > agreed.release {
            return Some(format!(
                "shows {} but the result agreed to {}",
                self.release.as_str(),
                agreed.release.as_str()
            ));
        }
        if self.dataset_names == DatasetNaming::Shown
            && agreed.dataset_names == DatasetNaming::Pseudonymised
        {
            return Some("shows dataset names but the result agreed to pseudonyms".into());
        }
        if self.min_datasets < agreed.min_datasets {
            return Some(format!(
                "lists models with {} dataset(s) but the result agreed to a minimum of {}",
                self.min_datasets, agreed.min_datasets
            ));
        }
        None
    }
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            release: Release::PerModel,
            dataset_names: DatasetNaming::Pseudonymised,
            min_datasets: 1,
            primary_metric: "auc".into(),
            ranking: Ranking::HigherIsBetter,
            weighting: Weighting::Equal,
            size_metrics: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepStatus {
    Ok,
    Failed,
    Skipped,
}

/// One step of a compatibility test or a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepReport {
    /// `prepare`, `sanity_check`, `statistics`, `infer`, `evaluate`, ...
    pub step: String,
    /// The cube that ran it (name), or `cohort` for cohort's own checks.
    pub cube: String,
    pub status: StepStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    pub duration_ms: u64,
}

/// What a compatibility test did. Only steps (and, on public demo data, metrics) are public.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompatReport {
    /// What data it ran on: `demo:<sha256 of the demo tarball>` or `dataset:<id>`.
    pub data: String,
    pub ok: bool,
    pub cohort_version: String,
    pub steps: Vec<StepReport>,
    /// Metrics on the public demo dataset; never present for private data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<BTreeMap<String, f64>>,
}

/// `benchmarks/<name>/v<N>.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Benchmark {
    pub format: u32,
    pub kind: String,
    pub name: String,
    pub version: u32,
    pub owner: String,
    pub created: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<Sha256>,
    /// Handles of the committee; includes the owner.
    pub committee: Vec<String>,
    /// Distinct committee signatures a leaderboard release needs.
    pub release_threshold: u32,
    pub data_preparator: CubeRef,
    pub reference_model: CubeRef,
    pub metrics: CubeRef,
    pub demo_dataset: Asset,
    pub policy: Policy,
    pub report: CompatReport,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AssocSubject {
    Model,
    Dataset,
}

/// `associations/<bench>/<model-NAME|dataset-ID>/v<N>.toml`: a request to join a benchmark.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Association {
    pub format: u32,
    pub kind: String,
    pub benchmark: BenchRef,
    pub subject: AssocSubject,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<CubeRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<DatasetRef>,
    pub requested_by: String,
    pub created: String,
    pub report: CompatReport,
    /// For datasets: the metrics of the compatibility run, sealed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<Sealed>,
}

/// `associations/<bench>/model-<name>/priority-<n>.toml`: execution order set by the committee.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Priority {
    pub format: u32,
    pub kind: String,
    pub benchmark: String,
    pub model: String,
    pub number: u32,
    /// Higher runs first.
    pub priority: i64,
    pub by: String,
    pub at: String,
}

/// `datasets/<id>/v<N>.toml`: metadata of a prepared dataset; the data never leaves the site.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dataset {
    pub format: u32,
    pub kind: String,
    pub id: String,
    pub name: String,
    pub version: u32,
    pub owner: String,
    pub created: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The benchmark it was prepared for.
    pub benchmark: BenchRef,
    pub preparator: CubeRef,
    /// Content hash of the prepared data (docs/format.md "Dataset content hash").
    pub content_sha256: Sha256,
    /// `statistics.yaml` sealed to the committee and the owner.
    pub statistics: Sealed,
    /// The description and location the owner gave the committee (`dataset submit
    /// --description/--location`), sealed to the committee and the owner (`v<N>.about.age`,
    /// schema `dataset-about/1`); absent when none was given and in records from before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub about: Option<Sealed>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResultStatus {
    Ok,
    Failed,
}

/// Why a run failed, as a receipt says it: a closed set, so a signed record never carries free
/// text about a site's run (docs/format.md lists them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FailureReason {
    /// The container exited with a non-zero code.
    ExitCode,
    /// The task ran past its time limit.
    Timeout,
    /// The metrics cube's output was not a flat map of metric name to number.
    MalformedOutput,
    /// The model wrote more predictions than the cap allows.
    OutputTooLarge,
    /// cohort's own checks of the results failed.
    InvalidResults,
    /// The run was interrupted.
    Cancelled,
    /// Anything else (the container could not be created or started, ...).
    Error,
    /// A private model this dataset holds no (or a revoked) grant for: nothing ran.
    NoAccess,
}

impl FailureReason {
    pub const ALL: [FailureReason; 8] = [
        FailureReason::ExitCode,
        FailureReason::Timeout,
        FailureReason::MalformedOutput,
        FailureReason::OutputTooLarge,
        FailureReason::InvalidResults,
        FailureReason::Cancelled,
        FailureReason::Error,
        FailureReason::NoAccess,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::ExitCode => "exit-code",
            FailureReason::Timeout => "timeout",
            FailureReason::MalformedOutput => "malformed-output",
            FailureReason::OutputTooLarge => "output-too-large",
            FailureReason::InvalidResults => "invalid-results",
            FailureReason::Cancelled => "cancelled",
            FailureReason::Error => "error",
            FailureReason::NoAccess => "no-access",
        }
    }
    pub fn parse(s: &str) -> Option<FailureReason> {
        FailureReason::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// Where and how a model failed: no data, only what the committee needs to follow up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Failure {
    pub stage: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    pub duration_ms: u64,
    /// One of [`FailureReason`]'s names.
    pub reason: String,
}

/// How a result was produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provenance {
    pub cohort_version: String,
    pub model_image: String,
    pub metrics_image: String,
    pub preparator_image: String,
    pub infer_ms: u64,
    pub evaluate_ms: u64,
    /// The cache key the run was stored under (hash of every input's hash).
    pub run_key: Sha256,
    pub finished: String,
}

/// `results/<bench>/<dataset>/<model>/<n>.toml`: the signed manifest of one result or failure
/// receipt. The values themselves are in the sealed payload `<n>.result.age`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResultManifest {
    pub format: u32,
    pub kind: String,
    pub number: u32,
    pub benchmark: BenchRef,
    pub dataset: DatasetRef,
    pub model: CubeRef,
    pub metrics: CubeRef,
    pub preparator: CubeRef,
    pub owner: String,
    pub created: String,
    pub status: ResultStatus,
    /// The path of the earlier result of the same (benchmark, dataset, model) this one
    /// replaces (`benchmark run --rerun`); absent in results that replace none, and in every
    /// result written before the field existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supersedes: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<Sealed>,
    pub provenance: Provenance,
}

pub use super::leaderboard::*;
