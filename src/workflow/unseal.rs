//! Opening sealed payloads before a decision. age stanzas do not name their recipients, so
//! `verify` can only count them: a payload sealed to outsiders under an honest-looking
//! recipient list passes it. Two things close that gap: the committee member who merges (or
//! approves) a submission carrying sealed data decrypts every sealed file it adds first
//! ([`gate`]), and a release leaves out what its maker cannot read, with a typed reason
//! ([`read_result`]), so one site cannot block every release.

use crate::model::{
    self, Record, ResultManifest, Sealed,
    envelope::{SCHEMA_PSEUDONYMS, Unreadable},
    metrics::Metrics,
    pseudonyms::Pseudonyms,
};
use crate::trust::{Index, Signer};

use super::registry_ops::Opened;
use super::submission::Submission;
use super::{Result, WorkflowError};

/// Why a merge refused a sealed file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealRefusal {
    /// The merging member is not on the committee the payload is sealed for: their reading
    /// it would prove nothing about the committee.
    NotOnCommittee,
    /// The merging member could not read it.
    Unreadable(Unreadable),
}

/// Opens a sealed payload's bytes with `signer`'s key and checks its schema; the failure is a
/// reason code.
pub fn open_payload(
    sealed: &Sealed,
    bytes: Option<&[u8]>,
    signer: &Signer,
) -> Result<(), Unreadable> {
    let bytes = bytes.ok_or(Unreadable::MissingPayload)?;
    let plain =
        model::envelope::try_open(sealed, bytes, signer.decryptor()).map_err(|e| e.code())?;
    let ok = if sealed.schema == SCHEMA_PSEUDONYMS {
        Pseudonyms::from_canonical(&sealed.file, &plain).is_ok()
    } else if sealed.schema == model::about::SCHEMA_ABOUT {
        model::About::from_canonical(&sealed.file, &plain).is_ok()
    } else {
        sealed.schema == model::envelope::SCHEMA_METRICS
            && model::metrics::from_canonical(&sealed.file, &plain).is_ok()
    };
    if ok {
        Ok(())
    } else {
        Err(Unreadable::MalformedPayload)
    }
}

/// Decrypts a registered result with `signer`'s key, or says why it cannot.
pub fn read_result(
    ix: &Index,
    path: &str,
    r: &ResultManifest,
    signer: &Signer,
) -> Result<Metrics, Unreadable> {
    let sealed = r.sealed.as_ref().ok_or(Unreadable::MissingPayload)?;
    let file = model::build::sealed(path, "result");
    let bytes = ix.bytes(&file).ok_or(Unreadable::MissingPayload)?;
    let plain =
        model::envelope::try_open(sealed, bytes, signer.decryptor()).map_err(|e| e.code())?;
    model::metrics::from_canonical(&file, &plain).map_err(|_| Unreadable::MalformedPayload)
}

/// The sealed payloads a record carries, their purposes and the benchmark whose committee
/// they are sealed for.
fn sealed_of(record: &Record) -> Vec<(&Sealed, &'static str, &model::BenchRef)> {
    match record {
        Record::Dataset(d) => std::iter::once((&d.statistics, "statistics", &d.benchmark))
            .chain(d.about.as_ref().map(|s| (s, "about", &d.benchmark)))
            .collect(),
        Record::Association(a) => a
            .sealed
            .iter()
            .map(|s| (s, "report", &a.benchmark))
            .collect(),
        Record::Result(r) => r
            .sealed
            .iter()
            .map(|s| (s, "result", &r.benchmark))
            .collect(),
        Record::Leaderboard(l) => l
            .pseudonyms
            .iter()
            .map(|s| (s, "pseudonyms", &l.benchmark))
            .collect(),
        _ => Vec::new(),
    }
}

/// Whether a submission adds any sealed payload (so merging it needs a key).
pub fn carries_sealed(sub: &Submission) -> bool {
    sub.added.iter().any(|p| p.ends_with(".age"))
}

/// Before a submission reaches main: `signer` must be on the committee of the benchmark each
/// sealed payload it adds is for, and must decrypt every one (digests and schema checked).
pub fn gate(opened: &Opened, sub: &Submission, signer: &Signer) -> Result<()> {
    if !carries_sealed(sub) {
        return Ok(());
    }
    let ix = opened.index()?;
    let tree = opened.reg.tree(sub.tip)?;
    for p in &sub.added {
        let Ok(rp) = model::classify(p) else { continue };
        if rp.kind().is_none() {
            continue;
        }
        let bytes = tree.read_path(p)?;
        let Ok(record) = model::parse_record(p, &rp, &bytes) else {
            continue;
        };
        for (sealed, purpose, bench) in sealed_of(&record) {
            let file = model::build::sealed(p, purpose);
            let Some((_, b)) = ix.benchmark(&bench.name, bench.version) else {
                return Err(WorkflowError::Refused(format!(
                    "{file} is sealed for benchmark {} v{}, which is not approved on main",
                    bench.name, bench.version
                )));
            };
            if !b.committee.contains(&signer.handle) {
                return Err(WorkflowError::SealedRefused {
                    file,
                    code: SealRefusal::NotOnCommittee,
                    why: format!(
                        "it is sealed for the {} committee ({}); {} is not on it, so decrypting it would not show the committee can",
                        b.name,
                        b.committee.join(", "),
                        signer.handle
                    ),
                });
            }
            let payload = tree.read_path(&file).ok();
            if let Err(code) = open_payload(sealed, payload.as_deref(), signer) {
                return Err(WorkflowError::SealedRefused {
                    file,
                    code: SealRefusal::Unreadable(code),
                    why: format!(
                        "{} cannot read it ({code}), although its manifest in {p} lists them as a recipient",
                        signer.handle
                    ),
                });
            }
        }
    }
    Ok(())
}
