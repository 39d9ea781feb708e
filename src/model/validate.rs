//! Rules a record must satisfy on its own and against its path: the format version, the kind,
//! ids that agree with the path, well-formed keys, timestamps and internally consistent fields.
//! Rules that need other records (references, signers, approvals) live in `trust`.

use std::collections::BTreeSet;

use super::asset::{Asset, is_http_url};
use super::ids::{check_hex_id, check_name, check_timestamp};
use super::paths::{AssocKey, RecordPath, classify};
use super::records::*;
use super::{FORMAT_VERSION, Kind, ModelError, Record};

#[path = "validate_cube.rs"]
mod cube;

struct Ctx<'a> {
    path: &'a str,
}

impl Ctx<'_> {
    fn err(&self, why: impl Into<String>) -> ModelError {
        ModelError::Invalid {
            what: self.path.to_string(),
            why: why.into(),
        }
    }
    fn ensure(&self, cond: bool, why: impl Into<String>) -> Result<(), ModelError> {
        if cond { Ok(()) } else { Err(self.err(why)) }
    }
    fn name(&self, what: &str, s: &str) -> Result<(), ModelError> {
        check_name(what, s).map_err(|e| self.err(e.to_string()))
    }
    fn time(&self, what: &str, s: &str) -> Result<(), ModelError> {
        check_timestamp(what, s).map_err(|e| self.err(e.to_string()))
    }
    fn text(&self, what: &str, s: &str, max: usize) -> Result<(), ModelError> {
        self.ensure(
            s.len() <= max && !s.chars().any(|c| c.is_control() && c != '\n'),
            format!("{what} must be at most {max} bytes without control characters"),
        )
    }
    fn line(&self, what: &str, s: &str, max: usize) -> Result<(), ModelError> {
        self.text(what, s, max)?;
        self.ensure(
            !s.contains('\n') && !s.trim().is_empty(),
            format!("{what} must be one non-empty line"),
        )
    }
    /// Exactly one location: an `http(s)` URL or the blob named by the asset's own sha256.
    /// Never a local path: a path means something on one machine only.
    fn asset(&self, what: &str, a: &Asset) -> Result<(), ModelError> {
        match (&a.url, &a.blob) {
            (Some(u), None) => {
                self.line(&format!("{what}.url"), u, 2000)?;
                self.ensure(
                    is_http_url(u),
                    format!(
                        "{what}.url must be an http:// or https:// URL (local paths mean nothing on other machines; store small files as blobs)"
                    ),
                )
            }
            (None, Some(b)) => self.ensure(
                *b == super::paths::build::blob(a.sha256.as_str()),
                format!("{what}.blob must be blobs/sha256/<its sha256>"),
            ),
            _ => Err(self.err(format!("{what} names exactly one of `url` and `blob`"))),
        }
    }
    fn keys(&self, who: &str, minisign: &str, age: &str) -> Result<(), ModelError> {
        check_minisign_key(minisign).map_err(|why| self.err(format!("{who}: {why}")))?;
        check_age_recipient(age).map_err(|why| self.err(format!("{who}: {why}")))
    }
    fn cube(&self, what: &str, c: &CubeRef) -> Result<(), ModelError> {
        self.name(what, &c.name)?;
        self.ensure(c.version >= 1, format!("{what} version must be 1 or more"))
    }
    fn bench(&self, b: &BenchRef) -> Result<(), ModelError> {
        self.name("benchmark", &b.name)?;
        self.ensure(b.version >= 1, "benchmark version must be 1 or more")
    }
    fn dataset(&self, d: &DatasetRef) -> Result<(), ModelError> {
        check_hex_id("dataset id", &d.id).map_err(|e| self.err(e.to_string()))?;
        self.ensure(d.version >= 1, "dataset version must be 1 or more")
    }
    fn previous(&self, version: u32, previous: &Option<super::Sha256>) -> Result<(), ModelError> {
        match (version, previous) {
            (1, None) => Ok(()),
            (1, Some(_)) => Err(self.err("version 1 has no `previous`")),
            (_, Some(_)) => Ok(()),
            (_, None) => {
                Err(self
                    .err("versions after 1 name the sha256 of the previous version in `previous`"))
            }
        }
    }
}

/// Checks a minisign public key in the base64 form minisign prints. The key must not be a
/// point of Ed25519's small subgroup: minisign accepts signatures that anyone can make under
/// a key of small order (eight such points exist; no key generator produces one).
pub fn check_minisign_key(s: &str) -> Result<(), String> {
    let pk = minisign::PublicKey::from_base64(s)
        .map_err(|e| format!("`{s}` is not a minisign public key ({e})"))?;
    let raw = raw_key(&pk);
    // Bytes that are no point at all verify nothing (minisign refuses every signature under
    // them), so only the small subgroup is refused here.
    match curve25519_dalek::edwards::CompressedEdwardsY(raw).decompress() {
        Some(p) if p.is_small_order() => Err(format!(
            "`{s}` is a key of small order: anyone can make signatures that verify under it; generate a real key with `cohort key generate`"
        )),
        _ => Ok(()),
    }
}

/// The raw 32-byte Ed25519 public key: what identifies a key (key ids are labels anyone can
/// choose).
pub fn raw_key(pk: &minisign::PublicKey) -> [u8; 32] {
    let bytes = pk.to_bytes();
    let mut raw = [0u8; 32];
    // Serialized as algorithm (2 bytes), key id (8), key (32).
    raw.copy_from_slice(&bytes[bytes.len() - 32..]);
    raw
}

/// Checks an age X25519 recipient.
pub fn check_age_recipient(s: &str) -> Result<(), String> {
    s.parse::<age::x25519::Recipient>()
        .map(|_| ())
        .map_err(|e| format!("`{s}` is not an age X25519 recipient ({e})"))
}

fn check_image_id(s: &str) -> bool {
    s.strip_prefix("sha256:")
        .is_some_and(super::ids::is_sha256_hex)
}

fn check_policy(c: &Ctx, p: &Policy) -> Result<(), ModelError> {
    c.ensure(p.min_datasets >= 1, "policy.min_datasets must be 1 or more")?;
    c.ensure(
        !p.primary_metric.is_empty() && p.primary_metric.len() <= 64,
        "policy.primary_metric must name a metric",
    )?;
    // Declared with the field itself, so no older record breaks these rules. `n` always
    // counts cases; listing it again would give one policy two spellings.
    c.ensure(
        p.size_metrics.len() <= 64,
        "policy.size_metrics lists too many metrics",
    )?;
    for (i, m) in p.size_metrics.iter().enumerate() {
        c.ensure(
            !m.is_empty() && m.len() <= 64,
            "policy.size_metrics must name metrics",
        )?;
        c.ensure(
            m != super::SIZE_METRIC,
            "policy.size_metrics need not list `n`: it always counts cases",
        )?;
        c.ensure(
            !p.size_metrics[..i].contains(m),
            "policy.size_metrics lists a metric twice",
        )?;
        c.ensure(
            *m != p.primary_metric,
            "policy.primary_metric cannot be a size metric: a count of cases ranks nothing",
        )?;
    }
    Ok(())
}

fn check_report(c: &Ctx, r: &CompatReport) -> Result<(), ModelError> {
    c.line("report.data", &r.data, 200)?;
    c.line("report.cohort_version", &r.cohort_version, 64)?;
    c.ensure(r.steps.len() <= 64, "report has too many steps")?;
    for s in &r.steps {
        c.line("report step", &s.step, 64)?;
        c.line("report step cube", &s.cube, 64)?;
    }
    Ok(())
}

/// Checks `record` on its own and against the path it was read from.
pub fn validate_against_path(
    path: &str,
    rp: &RecordPath,
    record: &Record,
) -> Result<(), ModelError> {
    let c = Ctx { path };
    let (format, kind) = match record {
        Record::Root(r) => (r.format, r.kind.as_str()),
        Record::Meta(r) => (r.format, r.kind.as_str()),
        Record::User(r) => (r.format, r.kind.as_str()),
        Record::Grant(r) => (r.format, r.kind.as_str()),
        Record::Decision(r) => (r.format, r.kind.as_str()),
        Record::Mlcube(r) => (r.format, r.kind.as_str()),
        Record::Benchmark(r) => (r.format, r.kind.as_str()),
        Record::Association(r) => (r.format, r.kind.as_str()),
        Record::Priority(r) => (r.format, r.kind.as_str()),
        Record::Dataset(r) => (r.format, r.kind.as_str()),
        Record::Result(r) => (r.format, r.kind.as_str()),
        Record::Leaderboard(r) => (r.format, r.kind.as_str()),
        Record::Access(r) => (r.format, r.kind.as_str()),
    };
    if format > FORMAT_VERSION {
        return Err(c.err(format!(
            "format version {format} is newer than this cohort understands ({FORMAT_VERSION}); upgrade cohort"
        )));
    }
    c.ensure(
        format == FORMAT_VERSION,
        format!("unknown format version {format}"),
    )?;
    let expected: Kind = rp.kind().ok_or_else(|| c.err("is not a record"))?;
    c.ensure(
        kind == expected.as_str(),
        format!("kind is `{kind}` but files at this path are `{expected}` records"),
    )?;
    match (rp, record) {
        (RecordPath::Root { version }, Record::Root(r)) => {
            c.ensure(r.version == *version, "version differs from the file name")?;
            c.previous(r.version, &r.previous)?;
            c.line("name", &r.name, 200)?;
            c.time("created", &r.created)?;
            c.ensure(
                r.nonce.len() == 32 && r.nonce.bytes().all(|b| b.is_ascii_hexdigit()),
                "nonce must be 32 hex digits",
            )?;
            c.ensure(!r.admins.is_empty(), "a root names at least one admin")?;
            c.ensure(
                r.rules() >= 1 && r.rules() <= super::RULES_VERSION,
                format!(
                    "names trust rules {}; this cohort knows rules 1 to {} (upgrade cohort)",
                    r.rules(),
                    super::RULES_VERSION
                ),
            )?;
            c.ensure(
                r.threshold >= 1 && r.threshold as usize <= r.admins.len(),
                format!(
                    "threshold {} must be between 1 and the number of admins ({})",
                    r.threshold,
                    r.admins.len()
                ),
            )?;
            let mut seen = BTreeSet::new();
            for a in &r.admins {
                c.name("admin handle", &a.handle)?;
                c.ensure(
                    seen.insert(a.handle.clone()),
                    format!("admin `{}` is listed twice", a.handle),
                )?;
                c.keys(&a.handle, &a.minisign, &a.age)?;
            }
        }
        (RecordPath::Meta { version }, Record::Meta(r)) => {
            c.ensure(r.version == *version, "version differs from the file name")?;
            c.time("created", &r.created)?;
            c.name("by", &r.by)?;
            for f in r.files.keys() {
                c.ensure(
                    matches!(classify(f), Ok(RecordPath::MetaFile)),
                    format!(
                        "`{f}` is not a meta file (README, .gitattributes, CI configuration, hook)"
                    ),
                )?;
            }
        }
        (RecordPath::User { handle, version }, Record::User(r)) => {
            c.ensure(&r.handle == handle, "handle differs from the folder name")?;
            c.ensure(r.version == *version, "version differs from the file name")?;
            c.previous(r.version, &r.previous)?;
            c.line("name", &r.name, 200)?;
            c.line("email", &r.email, 200)?;
            c.ensure(
                r.email.contains('@') && !r.email.contains(char::is_whitespace),
                "email must look like an address",
            )?;
            c.time("created", &r.created)?;
            c.keys(handle, &r.minisign, &r.age)?;
        }
        (RecordPath::Grant { handle, number }, Record::Grant(r)) => {
            c.ensure(&r.handle == handle, "handle differs from the folder name")?;
            c.ensure(r.number == *number, "number differs from the file name")?;
            c.name("by", &r.by)?;
            c.time("at", &r.at)?;
            if let Some(reason) = &r.reason {
                c.line("reason", reason, 500)?;
            }
            match r.action {
                GrantAction::GrantRole | GrantAction::RevokeRole => {
                    c.ensure(r.role.is_some() && r.key.is_none(), "role grants name a `role` and no `key`")?
                }
                GrantAction::RevokeKey => c.ensure(
                    r.role.is_none()
                        && r.key.as_deref().is_some_and(|k| k.len() == 16 && k.bytes().all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))),
                    "key revocations name the minisign key id (16 upper-case hex digits) in `key` and no `role`",
                )?,
            }
        }
        (
            RecordPath::Decision {
                subject,
                decision,
                by,
            },
            Record::Decision(r),
        ) => {
            c.ensure(
                r.kind == decision.as_str(),
                "kind differs from the file name",
            )?;
            c.ensure(
                &r.subject == subject,
                format!("subject must be `{subject}`, the record this file sits next to"),
            )?;
            c.ensure(&r.by == by, "by differs from the file name")?;
            c.time("at", &r.at)?;
            if let Some(reason) = &r.reason {
                c.text("reason", reason, 2000)?;
            }
        }
        (RecordPath::Mlcube { name, version }, Record::Mlcube(r)) => {
            cube::check(&c, name, *version, r)?;
        }
        (RecordPath::Benchmark { name, version }, Record::Benchmark(r)) => {
            c.ensure(&r.name == name, "name differs from the folder name")?;
            c.ensure(r.version == *version, "version differs from the file name")?;
            c.previous(r.version, &r.previous)?;
            c.name("owner", &r.owner)?;
            c.time("created", &r.created)?;
            if let Some(d) = &r.description {
                c.text("description", d, 4000)?;
            }
            let mut seen = BTreeSet::new();
            for m in &r.committee {
                c.name("committee member", m)?;
                c.ensure(
                    seen.insert(m.clone()),
                    format!("committee member `{m}` is listed twice"),
                )?;
            }
            c.ensure(
                seen.contains(&r.owner),
                "the owner must be on the committee",
            )?;
            c.ensure(
                r.release_threshold >= 1 && r.release_threshold as usize <= r.committee.len(),
                "release_threshold must be between 1 and the committee size",
            )?;
            c.cube("data_preparator", &r.data_preparator)?;
            c.cube("reference_model", &r.reference_model)?;
            c.cube("metrics", &r.metrics)?;
            c.asset("demo_dataset", &r.demo_dataset)?;
            check_policy(&c, &r.policy)?;
            check_report(&c, &r.report)?;
        }
        (
            RecordPath::Association {
                bench,
                key,
                version: _,
            },
            Record::Association(r),
        ) => {
            c.bench(&r.benchmark)?;
            c.ensure(
                &r.benchmark.name == bench,
                "benchmark differs from the folder name",
            )?;
            c.name("requested_by", &r.requested_by)?;
            c.time("created", &r.created)?;
            check_report(&c, &r.report)?;
            match (key, r.subject) {
                (AssocKey::Model(m), AssocSubject::Model) => {
                    let model = r
                        .model
                        .as_ref()
                        .ok_or_else(|| c.err("a model association names `model`"))?;
                    c.cube("model", model)?;
                    c.ensure(
                        &model.name == m && r.dataset.is_none(),
                        "model differs from the folder name",
                    )?;
                    c.ensure(
                        r.sealed.is_none(),
                        "model associations run on public demo data; nothing is sealed",
                    )?;
                }
                (AssocKey::Dataset(d), AssocSubject::Dataset) => {
                    let ds = r
                        .dataset
                        .as_ref()
                        .ok_or_else(|| c.err("a dataset association names `dataset`"))?;
                    c.dataset(ds)?;
                    c.ensure(
                        &ds.id == d && r.model.is_none(),
                        "dataset differs from the folder name",
                    )?;
                    c.ensure(
                        r.report.metrics.is_none(),
                        "metrics computed on private data must be sealed, not in `report.metrics`",
                    )?;
                    c.ensure(
                        r.sealed.is_some(),
                        "a dataset association carries its sealed metrics in `sealed`",
                    )?;
                }
                _ => return Err(c.err("subject differs from the folder name")),
            }
        }
        (
            RecordPath::Priority {
                bench,
                model,
                number,
            },
            Record::Priority(r),
        ) => {
            c.ensure(
                &r.benchmark == bench && &r.model == model,
                "benchmark/model differ from the path",
            )?;
            c.ensure(r.number == *number, "number differs from the file name")?;
            c.name("by", &r.by)?;
            c.time("at", &r.at)?;
        }
        (RecordPath::Dataset { id, version }, Record::Dataset(r)) => {
            c.ensure(&r.id == id, "id differs from the folder name")?;
            c.ensure(r.version == *version, "version differs from the file name")?;
            c.name("dataset name", &r.name)?;
            c.name("owner", &r.owner)?;
            c.time("created", &r.created)?;
            c.bench(&r.benchmark)?;
            c.cube("preparator", &r.preparator)?;
            if let Some(d) = &r.description {
                c.text("description", d, 2000)?;
            }
        }
        (
            RecordPath::Result {
                bench,
                dataset,
                model,
                number,
            },
            Record::Result(r),
        ) => {
            c.ensure(
                &r.benchmark.name == bench,
                "benchmark differs from the path",
            )?;
            c.ensure(&r.dataset.id == dataset, "dataset differs from the path")?;
            c.ensure(&r.model.name == model, "model differs from the path")?;
            c.ensure(r.number == *number, "number differs from the file name")?;
            c.bench(&r.benchmark)?;
            c.dataset(&r.dataset)?;
            c.cube("model", &r.model)?;
            c.cube("metrics", &r.metrics)?;
            c.cube("preparator", &r.preparator)?;
            c.name("owner", &r.owner)?;
            c.time("created", &r.created)?;
            match r.status {
                ResultStatus::Ok => c.ensure(
                    r.sealed.is_some() && r.failure.is_none(),
                    "a successful result carries `sealed` and no `failure`",
                )?,
                ResultStatus::Failed => c.ensure(
                    r.failure.is_some() && r.sealed.is_none(),
                    "a failure receipt carries `failure` and no data",
                )?,
            }
            if let Some(f) = &r.failure {
                c.ensure(
                    super::FailureReason::parse(&f.reason).is_some(),
                    format!(
                        "failure reason `{}` is not one of: {}",
                        f.reason,
                        super::FailureReason::ALL.map(|r| r.as_str()).join(", ")
                    ),
                )?;
                c.line("failure stage", &f.stage, 64)?;
            }
            // Image ids only: a free string here could carry a site's local path or more.
            let p = &r.provenance;
            for (what, id) in [
                ("provenance.model_image", &p.model_image),
                ("provenance.metrics_image", &p.metrics_image),
                ("provenance.preparator_image", &p.preparator_image),
            ] {
                c.ensure(
                    check_image_id(id),
                    format!("{what} must be an image id (`sha256:` and 64 hex digits)"),
                )?;
            }
            c.line("provenance.cohort_version", &p.cohort_version, 64)?;
            c.time("provenance.finished", &p.finished)?;
        }
        (RecordPath::Leaderboard { bench, number }, Record::Leaderboard(r)) => {
            c.ensure(
                &r.benchmark.name == bench,
                "benchmark differs from the path",
            )?;
            c.ensure(r.number == *number, "number differs from the file name")?;
            c.bench(&r.benchmark)?;
            c.name("by", &r.by)?;
            c.time("created", &r.created)?;
            check_policy(&c, &r.policy)?;
        }
        (
            RecordPath::Access {
                name,
                version,
                dataset,
                number,
            },
            Record::Access(r),
        ) => {
            c.ensure(r.number == *number, "number differs from the file name")?;
            c.ensure(&r.model.name == name, "model differs from the folder name")?;
            c.ensure(
                r.model.version == *version,
                "model version differs from the folder name",
            )?;
            c.ensure(
                &r.dataset == dataset,
                "dataset differs from the folder name",
            )?;
            c.cube("model", &r.model)?;
            c.name("by", &r.by)?;
            c.time("created", &r.created)?;
            match (&r.action, &r.key) {
                (super::AccessAction::Grant, Some(k)) => super::private::check_sealed_key(k)
                    .map_err(|why| c.err(format!("key: {why}")))?,
                (super::AccessAction::Grant, None) => {
                    return Err(c.err(
                        "a grant carries the model key sealed to the dataset's owner (`key`)",
                    ));
                }
                (super::AccessAction::Revoke, Some(_)) => {
                    return Err(c.err("a revocation carries no key"));
                }
                (super::AccessAction::Revoke, None) => {}
            }
        }
        _ => return Err(c.err("record does not match its path")),
    }
    Ok(())
}
