//! The registry's entity model: record types as they appear in TOML, the path scheme, id and
//! digest rules, strict parsing with size and nesting limits, the sealed envelope and the
//! metrics payload schema. Depends on no other cohort module.

pub mod about;
pub mod asset;
pub mod envelope;
pub mod ids;
pub mod leaderboard;
pub mod metrics;
pub mod paths;
pub mod prescan;
pub mod private;
pub mod pseudonyms;
pub mod records;
mod validate;

use std::fmt;

pub use about::About;
pub use asset::{
    Asset, AssetLocation, is_http_url, is_image_digest_reference, is_image_repository,
    url_has_credentials,
};
pub use envelope::{Sealed, SealedFor};
pub use ids::Sha256;
pub use paths::{AssocKey, CubeFile, DecisionKind, RecordPath, build, classify};
pub use private::{Access, AccessAction, PrivateImage, SealedKey};
pub use records::*;
pub use validate::{check_minisign_key, raw_key, validate_against_path};

/// The format version written into every record. Readers refuse versions they do not know.
pub const FORMAT_VERSION: u32 = 1;

/// Names this build's record parser (the model's sources, the dependency versions): records
/// an earlier verification parsed are reused only by a build whose parser is the same.
pub const PARSE_FINGERPRINT: &str = env!("COHORT_PARSE_FINGERPRINT");

/// The trust rules a registry opts into, recorded as `rules` in its root (absent = 1). Rules 2
/// (docs/design.md "Trust rules"): root rotations counted per listed key, one vote per person
/// and key, every decision accounted for, unlinkable pseudonyms. On a registry whose root
/// in force says 1, a record that only rules 2 refuses is a warning (`verify --strict` fails
/// on it); from the commit that merges a root saying 2, it is a problem.
pub const RULES_VERSION: u32 = 2;

/// Largest record (TOML) file.
pub const MAX_RECORD_BYTES: usize = 256 * 1024;
/// Largest cube file (`mlcube.yaml`, `parameters.yaml`) or meta file.
pub const MAX_TEXT_BYTES: usize = 256 * 1024;
/// Largest signature file.
pub const MAX_SIGNATURE_BYTES: usize = 2048;
/// Largest in-registry blob (`blobs/sha256/<hex>`): a format constant, so every clone agrees
/// on what a registry may hold. Bigger artifacts travel by URL or image registry.
pub const MAX_BLOB_BYTES: usize = 25 * 1024 * 1024;
/// Deepest table/array nesting a record may use.
pub const MAX_NESTING: usize = 8;

/// Record kinds, as written in each record's `kind` field and in trusted comments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Root,
    Meta,
    User,
    Grant,
    Approval,
    Rejection,
    Withdrawal,
    Mlcube,
    Benchmark,
    Association,
    Priority,
    Dataset,
    Result,
    Leaderboard,
    Access,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Root => "root",
            Kind::Meta => "meta",
            Kind::User => "user",
            Kind::Grant => "grant",
            Kind::Approval => "approval",
            Kind::Rejection => "rejection",
            Kind::Withdrawal => "withdrawal",
            Kind::Mlcube => "mlcube",
            Kind::Benchmark => "benchmark",
            Kind::Association => "association",
            Kind::Priority => "priority",
            Kind::Dataset => "dataset",
            Kind::Result => "result",
            Kind::Leaderboard => "leaderboard",
            Kind::Access => "access",
        }
    }
    pub fn parse(s: &str) -> Option<Kind> {
        ALL_KINDS.iter().copied().find(|k| k.as_str() == s)
    }
}

pub const ALL_KINDS: &[Kind] = &[
    Kind::Root,
    Kind::Meta,
    Kind::User,
    Kind::Grant,
    Kind::Approval,
    Kind::Rejection,
    Kind::Withdrawal,
    Kind::Mlcube,
    Kind::Benchmark,
    Kind::Association,
    Kind::Priority,
    Kind::Dataset,
    Kind::Result,
    Kind::Leaderboard,
    Kind::Access,
];

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{path}: {why}")]
    UnknownPath { path: String, why: String },
    #[error("{what} `{id}` {why}")]
    BadId {
        what: String,
        id: String,
        why: String,
    },
    #[error("{what}: {why}")]
    Invalid { what: String, why: String },
    #[error("{path}: is {size} bytes, over the {limit}-byte limit for this kind of file")]
    TooLarge {
        path: String,
        size: usize,
        limit: usize,
    },
    #[error("{path}: {why}")]
    Parse { path: String, why: String },
    #[error("{0}")]
    Seal(String),
    #[error("{0}: this key is not among the recipients of the sealed payload")]
    NotARecipient(String),
}

/// One parsed record.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Root(Root),
    Meta(Meta),
    User(User),
    Grant(Grant),
    Decision(Decision),
    Mlcube(Mlcube),
    Benchmark(Benchmark),
    Association(Association),
    Priority(Priority),
    Dataset(Dataset),
    Result(ResultManifest),
    Leaderboard(Leaderboard),
    Access(Access),
}

impl Record {
    /// The record as JSON (the local indexes keep records this way: JSON reads back several
    /// times faster than TOML parses).
    pub fn to_json(&self) -> serde_json::Result<String> {
        match self {
            Record::Root(x) => serde_json::to_string(x),
            Record::Meta(x) => serde_json::to_string(x),
            Record::User(x) => serde_json::to_string(x),
            Record::Grant(x) => serde_json::to_string(x),
            Record::Decision(x) => serde_json::to_string(x),
            Record::Mlcube(x) => serde_json::to_string(x),
            Record::Benchmark(x) => serde_json::to_string(x),
            Record::Association(x) => serde_json::to_string(x),
            Record::Priority(x) => serde_json::to_string(x),
            Record::Dataset(x) => serde_json::to_string(x),
            Record::Result(x) => serde_json::to_string(x),
            Record::Leaderboard(x) => serde_json::to_string(x),
            Record::Access(x) => serde_json::to_string(x),
        }
    }

    /// A record of `kind` read back from [`Record::to_json`]'s output.
    pub fn from_json(kind: Kind, json: &str) -> serde_json::Result<Record> {
        Ok(match kind {
            Kind::Root => Record::Root(serde_json::from_str(json)?),
            Kind::Meta => Record::Meta(serde_json::from_str(json)?),
            Kind::User => Record::User(serde_json::from_str(json)?),
            Kind::Grant => Record::Grant(serde_json::from_str(json)?),
            Kind::Approval | Kind::Rejection | Kind::Withdrawal => {
                Record::Decision(serde_json::from_str(json)?)
            }
            Kind::Mlcube => Record::Mlcube(serde_json::from_str(json)?),
            Kind::Benchmark => Record::Benchmark(serde_json::from_str(json)?),
            Kind::Association => Record::Association(serde_json::from_str(json)?),
            Kind::Priority => Record::Priority(serde_json::from_str(json)?),
            Kind::Dataset => Record::Dataset(serde_json::from_str(json)?),
            Kind::Result => Record::Result(serde_json::from_str(json)?),
            Kind::Leaderboard => Record::Leaderboard(serde_json::from_str(json)?),
            Kind::Access => Record::Access(serde_json::from_str(json)?),
        })
    }

    /// The artifacts this record locates (demo data, additional files, image tarballs), for
    /// the blob checks: every in-registry blob must be referenced, every reference present.
    pub fn assets(&self) -> Vec<(&'static str, &Asset)> {
        match self {
            Record::Mlcube(c) => {
                let mut v = Vec::new();
                if let Some(a) = &c.additional_files {
                    v.push(("additional_files", a));
                }
                if let Some(a) = &c.image.tarball {
                    v.push(("image.tarball", a));
                }
                if let Some(p) = &c.image.private {
                    v.push(("image.private.ciphertext", &p.ciphertext));
                    if let Some(a) = &p.files {
                        v.push(("image.private.files", a));
                    }
                    if let Some(a) = &p.parameters {
                        v.push(("image.private.parameters", a));
                    }
                }
                v
            }
            Record::Benchmark(b) => vec![("demo_dataset", &b.demo_dataset)],
            _ => Vec::new(),
        }
    }

    pub fn kind(&self) -> Kind {
        match self {
            Record::Root(_) => Kind::Root,
            Record::Meta(_) => Kind::Meta,
            Record::User(_) => Kind::User,
            Record::Grant(_) => Kind::Grant,
            Record::Decision(d) => Kind::parse(&d.kind).unwrap_or(Kind::Approval),
            Record::Mlcube(_) => Kind::Mlcube,
            Record::Benchmark(_) => Kind::Benchmark,
            Record::Association(_) => Kind::Association,
            Record::Priority(_) => Kind::Priority,
            Record::Dataset(_) => Kind::Dataset,
            Record::Result(_) => Kind::Result,
            Record::Leaderboard(_) => Kind::Leaderboard,
            Record::Access(_) => Kind::Access,
        }
    }
}

/// Size limit for the file at `rp`.
pub fn size_limit(rp: &RecordPath) -> usize {
    match rp {
        RecordPath::Signature { .. } => MAX_SIGNATURE_BYTES,
        RecordPath::Sealed { .. } => envelope::MAX_SEALED_BYTES,
        RecordPath::MlcubeFile { .. } | RecordPath::MetaFile => MAX_TEXT_BYTES,
        RecordPath::Blob { .. } => MAX_BLOB_BYTES,
        _ => MAX_RECORD_BYTES,
    }
}

fn from_toml<T: serde::de::DeserializeOwned>(path: &str, text: &str) -> Result<T, ModelError> {
    toml::from_str(text).map_err(|e| ModelError::Parse {
        path: path.to_string(),
        why: one_line(&e.to_string()),
    })
}

/// Collapses a multi-line parser message to one line.
fn one_line(s: &str) -> String {
    let lines: Vec<&str> = s.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    // toml's messages are "TOML parse error at line X, column Y", a source excerpt, then the reason.
    match (lines.first(), lines.last()) {
        (Some(first), Some(last)) if lines.len() > 1 => format!("{first}: {last}"),
        (Some(first), _) => first.to_string(),
        _ => s.to_string(),
    }
}

/// Parses the record at `path` (already classified as `rp`) from its exact bytes, enforcing the
/// size limit, UTF-8, nesting, no unknown or duplicate keys, and the record's own rules.
pub fn parse_record(path: &str, rp: &RecordPath, bytes: &[u8]) -> Result<Record, ModelError> {
    let limit = size_limit(rp);
    if bytes.len() > limit {
        return Err(ModelError::TooLarge {
            path: path.to_string(),
            size: bytes.len(),
            limit,
        });
    }
    // Size, UTF-8 and nesting before any parser runs, so hostile input costs a linear scan.
    // Table headers (`[[x]]`) take two levels, hence twice the record nesting.
    let text = prescan::check_text(bytes, prescan::Syntax::Toml, limit, MAX_NESTING * 2).map_err(
        |why| ModelError::Parse {
            path: path.to_string(),
            why,
        },
    )?;
    if text.contains('\r') {
        return Err(ModelError::Parse {
            path: path.to_string(),
            why: "contains a carriage return (records use LF line endings; check core.autocrlf)"
                .into(),
        });
    }
    let kind = rp.kind().ok_or_else(|| ModelError::Parse {
        path: path.to_string(),
        why: "is not a record".into(),
    })?;
    // Defence in depth: the pre-scan and strict types leave the parsers nothing known to panic
    // on, but one malformed file must stay a problem for that file, never a crashed verifier.
    let parsed = std::panic::catch_unwind(|| typed_record(path, kind, text));
    let record = parsed.unwrap_or_else(|_| {
        Err(ModelError::Parse {
            path: path.to_string(),
            why: "the TOML parser failed on this file (refused rather than trusted)".into(),
        })
    })?;
    validate_against_path(path, rp, &record)?;
    Ok(record)
}

fn typed_record(path: &str, kind: Kind, text: &str) -> Result<Record, ModelError> {
    // A record from a newer cohort says "upgrade" rather than "unknown field". The loose parse
    // that finds its format version runs only when the strict one refuses the file (a strict
    // parse that succeeds has the version at hand): one TOML parse per record, not two.
    let newer = |f: i64| ModelError::Parse {
        path: path.to_string(),
        why: format!(
            "format version {f} is newer than this cohort understands ({FORMAT_VERSION}); upgrade cohort"
        ),
    };
    let strict = strict_record(path, kind, text);
    match &strict {
        Ok(r) if r.format() > FORMAT_VERSION => Err(newer(i64::from(r.format()))),
        Ok(_) => strict,
        Err(_) => match text
            .parse::<toml::Table>()
            .ok()
            .and_then(|t| t.get("format").and_then(toml::Value::as_integer))
        {
            Some(f) if f > FORMAT_VERSION as i64 => Err(newer(f)),
            _ => strict,
        },
    }
}

fn strict_record(path: &str, kind: Kind, text: &str) -> Result<Record, ModelError> {
    Ok(match kind {
        Kind::Root => Record::Root(from_toml(path, text)?),
        Kind::Meta => Record::Meta(from_toml(path, text)?),
        Kind::User => Record::User(from_toml(path, text)?),
        Kind::Grant => Record::Grant(from_toml(path, text)?),
        Kind::Approval | Kind::Rejection | Kind::Withdrawal => {
            Record::Decision(from_toml(path, text)?)
        }
        Kind::Mlcube => Record::Mlcube(from_toml(path, text)?),
        Kind::Benchmark => Record::Benchmark(from_toml(path, text)?),
        Kind::Association => Record::Association(from_toml(path, text)?),
        Kind::Priority => Record::Priority(from_toml(path, text)?),
        Kind::Dataset => Record::Dataset(from_toml(path, text)?),
        Kind::Result => Record::Result(from_toml(path, text)?),
        Kind::Leaderboard => Record::Leaderboard(from_toml(path, text)?),
        Kind::Access => Record::Access(from_toml(path, text)?),
    })
}

impl Record {
    /// The record's format version.
    pub fn format(&self) -> u32 {
        match self {
            Record::Root(x) => x.format,
            Record::Meta(x) => x.format,
            Record::User(x) => x.format,
            Record::Grant(x) => x.format,
            Record::Decision(x) => x.format,
            Record::Mlcube(x) => x.format,
            Record::Benchmark(x) => x.format,
            Record::Association(x) => x.format,
            Record::Priority(x) => x.format,
            Record::Dataset(x) => x.format,
            Record::Result(x) => x.format,
            Record::Leaderboard(x) => x.format,
            Record::Access(x) => x.format,
        }
    }
}

/// Serializes a record to the exact bytes that get signed and committed.
pub fn to_bytes<T: serde::Serialize>(record: &T) -> Vec<u8> {
    toml::to_string(record)
        .expect("records always serialize to TOML")
        .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every example in docs/format.md tagged with a path parses and validates as that path.
    #[test]
    fn format_doc_examples() {
        let doc = include_str!("../../docs/format.md");
        let mut n = 0;
        let mut rest = doc;
        while let Some(start) = rest.find("```toml path=") {
            let after = &rest[start + "```toml path=".len()..];
            let (path, body) = after.split_once('\n').expect("fence line");
            let end = body.find("\n```").expect("closing fence");
            let text = format!("{}\n", &body[..end]);
            let rp = classify(path).unwrap_or_else(|e| panic!("{path}: {e}"));
            parse_record(path, &rp, text.as_bytes()).unwrap_or_else(|e| panic!("{path}: {e}"));
            n += 1;
            rest = &body[end..];
        }
        assert!(n >= 12, "found {n} examples");
    }

    /// A result's provenance names image ids only: the format.md example with a site's path
    /// in one of them is refused, naming the field.
    #[test]
    fn provenance_names_image_ids_only() {
        let doc = include_str!("../../docs/format.md");
        let start = doc.find("```toml path=results/").expect("a result example");
        let after = &doc[start + "```toml path=".len()..];
        let (path, body) = after.split_once('\n').expect("fence line");
        let text = format!("{}\n", &body[..body.find("\n```").expect("closing fence")]);
        let rp = classify(path).unwrap();
        assert!(parse_record(path, &rp, text.as_bytes()).is_ok());
        for (field, bad) in [
            ("model_image", "/home/hosp/images/model.tar"),
            ("metrics_image", "cohort-e2e/metrics:latest"),
            ("preparator_image", ""),
        ] {
            let line = text
                .lines()
                .find(|l| l.starts_with(&format!("{field} = ")))
                .expect("the field is in the example");
            let edited = text.replace(line, &format!("{field} = \"{bad}\""));
            let e = parse_record(path, &rp, edited.as_bytes())
                .unwrap_err()
                .to_string();
            assert!(e.contains(&format!("provenance.{field}")), "{e}");
        }
    }

    #[test]
    fn strict_parsing() {
        let path = "users/alice/v1.toml";
        let rp = classify(path).unwrap();
        let deep = format!("format = 1\nx = {}1{}\n", "[".repeat(40), "]".repeat(40));
        let e = parse_record(path, &rp, deep.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(e.contains("deeper than 16 levels"), "{e}");
        let e = parse_record(path, &rp, b"format = 2\nkind = \"user\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("newer than this cohort understands"), "{e}");
        let big = vec![b'#'; MAX_RECORD_BYTES + 1];
        assert!(matches!(
            parse_record(path, &rp, &big),
            Err(ModelError::TooLarge { .. })
        ));
    }
}
