//! The registry's path scheme: every file in a registry tree has exactly one meaning, decided
//! by its path alone (default deny). Builders and the classifier live together so the two
//! can never disagree.

use std::fmt;

use super::ids::{check_hex_id, check_name};
use super::{Kind, ModelError};

/// What a decision record says about its subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DecisionKind {
    Approval,
    Rejection,
    Withdrawal,
}

impl DecisionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DecisionKind::Approval => "approval",
            DecisionKind::Rejection => "rejection",
            DecisionKind::Withdrawal => "withdrawal",
        }
    }
    pub fn parse(s: &str) -> Option<DecisionKind> {
        match s {
            "approval" => Some(DecisionKind::Approval),
            "rejection" => Some(DecisionKind::Rejection),
            "withdrawal" => Some(DecisionKind::Withdrawal),
            _ => None,
        }
    }
    pub fn kind(self) -> Kind {
        match self {
            DecisionKind::Approval => Kind::Approval,
            DecisionKind::Rejection => Kind::Rejection,
            DecisionKind::Withdrawal => Kind::Withdrawal,
        }
    }
}

/// Which side of a benchmark an association joins.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AssocKey {
    /// A model cube, by name.
    Model(String),
    /// A dataset, by its hex id.
    Dataset(String),
}

impl AssocKey {
    pub fn dir_name(&self) -> String {
        match self {
            AssocKey::Model(m) => format!("model-{m}"),
            AssocKey::Dataset(d) => format!("dataset-{d}"),
        }
    }
}

/// The files inside an MLCube version folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CubeFile {
    MlcubeYaml,
    /// MedPerf 0.3.0's container configuration, in place of mlcube.yaml.
    ContainerConfigYaml,
    ParametersYaml,
}

impl CubeFile {
    pub fn file_name(self) -> &'static str {
        match self {
            CubeFile::MlcubeYaml => "mlcube.yaml",
            CubeFile::ContainerConfigYaml => "container_config.yaml",
            CubeFile::ParametersYaml => "parameters.yaml",
        }
    }
}

/// Non-record files a registry may hold; their bytes are pinned by the latest `meta` manifest.
pub const META_FILES: &[&str] = &[
    "README.md",
    ".gitattributes",
    ".gitignore",
    ".gitlab-ci.yml",
    "hooks/pre-receive",
];

/// Folder whose `*.yml` files are allowed as meta files (GitHub Actions workflows).
pub const META_WORKFLOW_DIR: &str = ".github/workflows/";

/// The meaning of one path in a registry tree.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RecordPath {
    Root {
        version: u32,
    },
    Meta {
        version: u32,
    },
    User {
        handle: String,
        version: u32,
    },
    Grant {
        handle: String,
        number: u32,
    },
    Mlcube {
        name: String,
        version: u32,
    },
    MlcubeFile {
        name: String,
        version: u32,
        file: CubeFile,
    },
    Benchmark {
        name: String,
        version: u32,
    },
    Association {
        bench: String,
        key: AssocKey,
        version: u32,
    },
    Priority {
        bench: String,
        model: String,
        number: u32,
    },
    Dataset {
        id: String,
        version: u32,
    },
    Result {
        bench: String,
        dataset: String,
        model: String,
        number: u32,
    },
    Leaderboard {
        bench: String,
        number: u32,
    },
    /// `mlcubes/<name>/v<N>/access/<dataset-id>/<n>.toml`: a private cube version's grant (or
    /// revocation) for one dataset.
    Access {
        name: String,
        version: u32,
        dataset: String,
        number: u32,
    },
    /// `<subject stem>.<decision>.<by>.toml` next to the subject it decides on.
    Decision {
        subject: String,
        decision: DecisionKind,
        by: String,
    },
    /// `<record stem>.<purpose>.age`: an encrypted payload owned by the record `owner`.
    Sealed {
        owner: String,
        purpose: String,
    },
    /// `<signed path>.<signer>.minisig`, or `<root path>.<signer>.<KEYID>.minisig` for a root
    /// version signed by a named key of the signer (an admin rotating their own key signs with
    /// the old and the new key). The key id only selects which listed key to try; the
    /// signature must verify with that exact key.
    Signature {
        signed: String,
        signer: String,
        key_id: Option<String>,
    },
    /// A non-record file (README, CI configuration, hook script).
    MetaFile,
    /// `blobs/sha256/<64 hex>`: a small artifact (demo data, additional files, an image
    /// tarball) named by its content hash and located by the record that references it.
    Blob {
        sha256: String,
    },
}

impl RecordPath {
    /// The record kind stored at this path (None for payloads, signatures and meta files).
    pub fn kind(&self) -> Option<Kind> {
        Some(match self {
            RecordPath::Root { .. } => Kind::Root,
            RecordPath::Meta { .. } => Kind::Meta,
            RecordPath::User { .. } => Kind::User,
            RecordPath::Grant { .. } => Kind::Grant,
            RecordPath::Mlcube { .. } => Kind::Mlcube,
            RecordPath::Benchmark { .. } => Kind::Benchmark,
            RecordPath::Association { .. } => Kind::Association,
            RecordPath::Priority { .. } => Kind::Priority,
            RecordPath::Dataset { .. } => Kind::Dataset,
            RecordPath::Result { .. } => Kind::Result,
            RecordPath::Leaderboard { .. } => Kind::Leaderboard,
            RecordPath::Access { .. } => Kind::Access,
            RecordPath::Decision { decision, .. } => decision.kind(),
            RecordPath::MlcubeFile { .. }
            | RecordPath::Sealed { .. }
            | RecordPath::Signature { .. }
            | RecordPath::MetaFile
            | RecordPath::Blob { .. } => return None,
        })
    }
}

/// Path builders: the only place paths are spelled.
pub mod build {
    use super::*;

    pub fn root(version: u32) -> String {
        format!("root/v{version}.toml")
    }
    pub fn meta(version: u32) -> String {
        format!("meta/v{version}.toml")
    }
    pub fn user(handle: &str, version: u32) -> String {
        format!("users/{handle}/v{version}.toml")
    }
    pub fn grant(handle: &str, number: u32) -> String {
        format!("grants/{handle}/{number}.toml")
    }
    pub fn mlcube(name: &str, version: u32) -> String {
        format!("mlcubes/{name}/v{version}/cube.toml")
    }
    pub fn mlcube_file(name: &str, version: u32, file: CubeFile) -> String {
        format!("mlcubes/{name}/v{version}/{}", file.file_name())
    }
    pub fn benchmark(name: &str, version: u32) -> String {
        format!("benchmarks/{name}/v{version}.toml")
    }
    pub fn association(bench: &str, key: &AssocKey, version: u32) -> String {
        format!("associations/{bench}/{}/v{version}.toml", key.dir_name())
    }
    pub fn priority(bench: &str, model: &str, number: u32) -> String {
        format!("associations/{bench}/model-{model}/priority-{number}.toml")
    }
    pub fn dataset(id: &str, version: u32) -> String {
        format!("datasets/{id}/v{version}.toml")
    }
    pub fn result(bench: &str, dataset: &str, model: &str, number: u32) -> String {
        format!("results/{bench}/{dataset}/{model}/{number}.toml")
    }
    pub fn leaderboard(bench: &str, number: u32) -> String {
        format!("leaderboards/{bench}/{number}.toml")
    }
    pub fn access(name: &str, version: u32, dataset: &str, number: u32) -> String {
        format!("mlcubes/{name}/v{version}/access/{dataset}/{number}.toml")
    }
    /// A decision about the record at `subject` (a `.toml` path).
    pub fn decision(subject: &str, decision: DecisionKind, by: &str) -> String {
        let stem = subject.strip_suffix(".toml").unwrap_or(subject);
        format!("{stem}.{}.{by}.toml", decision.as_str())
    }
    /// The sealed payload owned by the record at `owner` (a `.toml` path).
    pub fn sealed(owner: &str, purpose: &str) -> String {
        let stem = owner.strip_suffix(".toml").unwrap_or(owner);
        format!("{stem}.{purpose}.age")
    }
    /// File name (no folder) of the sealed payload, as the owning record names it.
    pub fn sealed_file_name(owner: &str, purpose: &str) -> String {
        let p = sealed(owner, purpose);
        p.rsplit('/')
            .next()
            .expect("split yields one item")
            .to_string()
    }
    /// The in-registry blob holding the bytes whose sha256 is `sha256` (lower-case hex).
    pub fn blob(sha256: &str) -> String {
        format!("{BLOB_DIR}{sha256}")
    }
    pub fn signature(signed: &str, signer: &str) -> String {
        format!("{signed}.{signer}.minisig")
    }
    /// A root version's signature by one named key of `signer` (16 upper-case hex digits).
    pub fn key_signature(signed: &str, signer: &str, key_id: &str) -> String {
        format!("{signed}.{signer}.{key_id}.minisig")
    }
}

/// Folder of the in-registry blobs, named by their content's sha256.
pub const BLOB_DIR: &str = "blobs/sha256/";

/// Sealed payload purposes and the record kinds that own them.
pub const SEAL_PURPOSES: &[(&str, Kind)] = &[
    ("statistics", Kind::Dataset),
    ("about", Kind::Dataset),
    ("report", Kind::Association),
    ("result", Kind::Result),
    ("pseudonyms", Kind::Leaderboard),
];

/// A minisign key id as cohort spells it: 16 upper-case hex digits (never a handle, which is
/// lower-case).
pub fn is_key_id(s: &str) -> bool {
    s.len() == 16
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
}

fn version_of(s: &str) -> Option<u32> {
    let n = s.strip_prefix('v')?;
    number_of(n)
}

fn number_of(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 9 || !s.bytes().all(|b| b.is_ascii_digit()) || s.starts_with('0') {
        return None;
    }
    s.parse().ok()
}

/// Classifies a registry path, refusing anything the format does not define.
pub fn classify(path: &str) -> Result<RecordPath, ModelError> {
    let unknown = |why: &str| ModelError::UnknownPath {
        path: path.to_string(),
        why: why.to_string(),
    };
    if !path.is_ascii() {
        return Err(unknown("non-ASCII path"));
    }
    if path.contains("//")
        || path.starts_with('/')
        || path.split('/').any(|c| c == "." || c == "..")
    {
        return Err(unknown("malformed path"));
    }
    if META_FILES.contains(&path) {
        return Ok(RecordPath::MetaFile);
    }
    if let Some(rest) = path.strip_prefix(META_WORKFLOW_DIR) {
        if !rest.contains('/') && rest.ends_with(".yml") && rest.len() > 4 {
            return Ok(RecordPath::MetaFile);
        }
        return Err(unknown(
            "only .yml workflow files may live in .github/workflows",
        ));
    }
    if let Some(hex) = path.strip_prefix(BLOB_DIR) {
        check_hex_id("blob name", hex).map_err(|e| unknown(&e.to_string()))?;
        return Ok(RecordPath::Blob {
            sha256: hex.to_string(),
        });
    }
    if let Some(signed) = path.strip_suffix(".minisig") {
        let (mut signed, mut signer) = signed
            .rsplit_once('.')
            .ok_or_else(|| unknown("a signature file is named <file>.<signer>.minisig"))?;
        let mut key_id = None;
        if is_key_id(signer) {
            let (s, h) = signed.rsplit_once('.').ok_or_else(|| {
                unknown("a key-named signature file is named <file>.<signer>.<KEYID>.minisig")
            })?;
            key_id = Some(signer.to_string());
            (signed, signer) = (s, h);
        }
        check_name("signer handle", signer).map_err(|e| unknown(&e.to_string()))?;
        let target = classify(signed)?;
        match target {
            RecordPath::Signature { .. }
            | RecordPath::Sealed { .. }
            | RecordPath::MlcubeFile { .. }
            | RecordPath::Blob { .. } => {
                return Err(unknown("only records and meta files are signed"));
            }
            RecordPath::MetaFile => {
                return Err(unknown(
                    "meta files are pinned by meta/v<N>.toml, not signed one by one",
                ));
            }
            RecordPath::Root { .. } => {}
            _ if key_id.is_some() => {
                return Err(unknown(
                    "only root versions carry key-named signatures (<file>.<signer>.<KEYID>.minisig)",
                ));
            }
            _ => {}
        }
        return Ok(RecordPath::Signature {
            signed: signed.to_string(),
            signer: signer.to_string(),
            key_id,
        });
    }
    if let Some(stem) = path.strip_suffix(".age") {
        let (owner_stem, purpose) = stem
            .rsplit_once('.')
            .ok_or_else(|| unknown("a sealed payload is named <record>.<purpose>.age"))?;
        let owner = format!("{owner_stem}.toml");
        let owner_path = classify(&owner)?;
        let allowed = SEAL_PURPOSES
            .iter()
            .any(|(p, k)| *p == purpose && owner_path.kind() == Some(*k));
        if !allowed {
            return Err(unknown(
                "no record of that kind carries a sealed payload of that name",
            ));
        }
        return Ok(RecordPath::Sealed {
            owner,
            purpose: purpose.to_string(),
        });
    }
    let parts: Vec<&str> = path.split('/').collect();
    let name = |what: &str, s: &str| check_name(what, s).map_err(|e| unknown(&e.to_string()));
    let hex = |what: &str, s: &str| check_hex_id(what, s).map_err(|e| unknown(&e.to_string()));
    let file = *parts.last().expect("split yields one item");
    let Some(file_stem) = file.strip_suffix(".toml") else {
        // Only cube folders hold non-TOML files.
        if let ["mlcubes", cube, v, f] = parts.as_slice() {
            name("mlcube name", cube)?;
            let version = version_of(v).ok_or_else(|| unknown("cube versions are v1, v2, ..."))?;
            let file = match *f {
                "mlcube.yaml" => CubeFile::MlcubeYaml,
                "container_config.yaml" => CubeFile::ContainerConfigYaml,
                "parameters.yaml" => CubeFile::ParametersYaml,
                _ => {
                    return Err(unknown(
                        "a cube folder holds cube.toml, mlcube.yaml or container_config.yaml, and parameters.yaml only",
                    ));
                }
            };
            return Ok(RecordPath::MlcubeFile {
                name: cube.to_string(),
                version,
                file,
            });
        }
        return Err(unknown("not a file the registry format defines"));
    };
    // Decisions: <stem>.<decision>.<by>.toml
    let dotted: Vec<&str> = file_stem.split('.').collect();
    if dotted.len() == 3 {
        let decision = DecisionKind::parse(dotted[1]).ok_or_else(|| {
            unknown("decision records are <record>.approval|rejection|withdrawal.<handle>.toml")
        })?;
        name("decider handle", dotted[2])?;
        let mut subject_parts = parts.clone();
        let subject_file = format!("{}.toml", dotted[0]);
        *subject_parts.last_mut().expect("non-empty") = &subject_file;
        let subject = subject_parts.join("/");
        let subject_path = classify(&subject)?;
        let ok = matches!(
            (&subject_path, decision),
            (
                RecordPath::User { .. } | RecordPath::Benchmark { .. },
                DecisionKind::Approval | DecisionKind::Rejection
            ) | (RecordPath::Association { .. }, _)
        );
        if !ok {
            return Err(unknown("that record kind takes no decision of this kind"));
        }
        return Ok(RecordPath::Decision {
            subject,
            decision,
            by: dotted[2].to_string(),
        });
    }
    if dotted.len() != 1 {
        return Err(unknown("unexpected '.' in a record file name"));
    }
    let mut stems = parts.clone();
    *stems.last_mut().expect("non-empty") = file_stem;
    let rp = match stems.as_slice() {
        ["root", v] => RecordPath::Root {
            version: version_of(v)
                .ok_or_else(|| unknown("root versions are root/v1.toml, v2, ..."))?,
        },
        ["meta", v] => RecordPath::Meta {
            version: version_of(v)
                .ok_or_else(|| unknown("meta versions are meta/v1.toml, v2, ..."))?,
        },
        ["users", h, v] => {
            name("handle", h)?;
            RecordPath::User {
                handle: h.to_string(),
                version: version_of(v)
                    .ok_or_else(|| unknown("user versions are v1.toml, v2, ..."))?,
            }
        }
        ["grants", h, n] => {
            name("handle", h)?;
            RecordPath::Grant {
                handle: h.to_string(),
                number: number_of(n)
                    .ok_or_else(|| unknown("grants are numbered 1.toml, 2.toml, ..."))?,
            }
        }
        ["mlcubes", cube, v, "cube"] => {
            name("mlcube name", cube)?;
            RecordPath::Mlcube {
                name: cube.to_string(),
                version: version_of(v).ok_or_else(|| unknown("cube versions are v1, v2, ..."))?,
            }
        }
        ["benchmarks", b, v] => {
            name("benchmark name", b)?;
            RecordPath::Benchmark {
                name: b.to_string(),
                version: version_of(v)
                    .ok_or_else(|| unknown("benchmark versions are v1.toml, v2, ..."))?,
            }
        }
        ["associations", b, key, f] => {
            name("benchmark name", b)?;
            if let Some(n) = f.strip_prefix("priority-") {
                let model = key
                    .strip_prefix("model-")
                    .ok_or_else(|| unknown("priorities apply to model associations"))?;
                name("model name", model)?;
                RecordPath::Priority {
                    bench: b.to_string(),
                    model: model.to_string(),
                    number: number_of(n).ok_or_else(|| {
                        unknown("priorities are priority-1.toml, priority-2.toml, ...")
                    })?,
                }
            } else {
                let key = if let Some(m) = key.strip_prefix("model-") {
                    name("model name", m)?;
                    AssocKey::Model(m.to_string())
                } else if let Some(d) = key.strip_prefix("dataset-") {
                    hex("dataset id", d)?;
                    AssocKey::Dataset(d.to_string())
                } else {
                    return Err(unknown(
                        "association folders are model-<name> or dataset-<id>",
                    ));
                };
                RecordPath::Association {
                    bench: b.to_string(),
                    key,
                    version: version_of(f)
                        .ok_or_else(|| unknown("association requests are v1.toml, v2, ..."))?,
                }
            }
        }
        ["datasets", id, v] => {
            hex("dataset id", id)?;
            RecordPath::Dataset {
                id: id.to_string(),
                version: version_of(v)
                    .ok_or_else(|| unknown("dataset versions are v1.toml, v2, ..."))?,
            }
        }
        ["results", b, d, m, n] => {
            name("benchmark name", b)?;
            hex("dataset id", d)?;
            name("model name", m)?;
            RecordPath::Result {
                bench: b.to_string(),
                dataset: d.to_string(),
                model: m.to_string(),
                number: number_of(n)
                    .ok_or_else(|| unknown("results are numbered 1.toml, 2.toml, ..."))?,
            }
        }
        ["leaderboards", b, n] => {
            name("benchmark name", b)?;
            RecordPath::Leaderboard {
                bench: b.to_string(),
                number: number_of(n)
                    .ok_or_else(|| unknown("releases are numbered 1.toml, 2.toml, ..."))?,
            }
        }
        ["mlcubes", cube, v, "access", d, n] => {
            name("mlcube name", cube)?;
            hex("dataset id", d)?;
            RecordPath::Access {
                name: cube.to_string(),
                version: version_of(v).ok_or_else(|| unknown("cube versions are v1, v2, ..."))?,
                dataset: d.to_string(),
                number: number_of(n)
                    .ok_or_else(|| unknown("access records are numbered 1.toml, 2.toml, ..."))?,
            }
        }
        _ => return Err(unknown("not a file the registry format defines")),
    };
    Ok(rp)
}

impl fmt::Display for AssocKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AssocKey::Model(m) => write!(f, "model {m}"),
            AssocKey::Dataset(d) => write!(f, "dataset {}", &d[..12.min(d.len())]),
        }
    }
}

#[cfg(test)]
#[path = "paths_tests.rs"]
mod tests;
