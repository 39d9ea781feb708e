//! A committee member's check of a release: open the sealed pseudonym mapping, decrypt every
//! covered result and compare each cell exactly (a cell swapped between two pseudonyms, or a
//! value that is not its result's, is named), then recompute the whole record byte for byte.
//! `cohort leaderboard B --check` runs it on a landed release; co-signing runs it on a
//! proposed one, and also asks that every result on main is covered or listed as left out.

use std::collections::BTreeMap;

use crate::model::{
    self, CubeRef, Leaderboard, Record, ResultManifest, ResultStatus, Sha256, build,
    pseudonyms::Pseudonyms,
};
use crate::report::{self, Outcome, ReleaseMeta};
use crate::trust::{Code, Index, Problem, Rule, Signer};

use super::release::input;
use super::results::registered;
use super::unseal::read_result;
use super::{Result, WorkflowError};

/// What a check opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// Covered results decrypted and compared.
    pub results: usize,
    /// Cells compared.
    pub cells: usize,
    /// The sealed pseudonym mapping was opened (pseudonymised layout-2 releases).
    pub mapping: bool,
    /// The whole record was recomputed byte for byte (layout 2; older releases are checked
    /// cell by cell only).
    pub recomputed: bool,
    /// Results the release lists as unreadable that open with this member's key (sealed to
    /// some members only?): not wrong in itself, worth a look.
    pub readable_exclusions: Vec<String>,
}

/// The manifests a release covers, resolved on main (by path, or by digest).
fn covered<'a>(
    ix: &'a Index,
    path: &str,
    l: &Leaderboard,
) -> Result<Vec<(String, &'a ResultManifest, Sha256)>> {
    let listed: Vec<(String, Sha256)> = if l.results.is_empty() {
        let by_sha: BTreeMap<&Sha256, &String> = ix
            .results
            .iter()
            .filter(|((b, _, _), _)| b == &l.benchmark.name)
            .flat_map(|(_, m)| m.values())
            .filter_map(|p| ix.sha(p).map(|s| (s, p)))
            .collect();
        l.inputs
            .iter()
            .map(|d| {
                by_sha
                    .get(d)
                    .map(|p| ((*p).clone(), d.clone()))
                    .ok_or_else(|| {
                        WorkflowError::Refused(format!(
                            "{path}: input {d} is no result manifest of {} on main",
                            l.benchmark.name
                        ))
                    })
            })
            .collect::<Result<_>>()?
    } else {
        l.results
            .iter()
            .map(|c| (c.path.clone(), c.sha256.clone()))
            .collect()
    };
    listed
        .into_iter()
        .map(|(p, sha)| match ix.record(&p) {
            Some(Record::Result(r)) if ix.sha(&p) == Some(&sha) => Ok((p, r, sha)),
            _ => Err(WorkflowError::Refused(format!(
                "{path}: covers {p}, which is not that result on main"
            ))),
        })
        .collect()
}

/// Checks `record` (whose file bytes are `bytes`, at `path`) with `signer`'s key: every cell
/// against its decrypted result, through the sealed mapping when pseudonymised
/// (`pseudonyms`: the `.age` bytes; read from main when `None`), then the whole record.
pub fn check_release(
    ix: &Index,
    signer: &Signer,
    path: &str,
    record: &Leaderboard,
    bytes: &[u8],
    pseudonyms: Option<&[u8]>,
) -> Result<Checked> {
    let l = record;
    let (_, b) = ix
        .benchmark(&l.benchmark.name, l.benchmark.version)
        .ok_or_else(|| {
            WorkflowError::NotFound(format!(
                "{path}: benchmark {} v{} is not on main",
                l.benchmark.name, l.benchmark.version
            ))
        })?;
    if !b.committee.contains(&signer.handle) {
        return Err(WorkflowError::Refused(format!(
            "{} is not on the {} committee ({}); only its members hold the keys to check a release",
            signer.handle,
            b.name,
            b.committee.join(", ")
        )));
    }
    let mut inputs = Vec::new();
    for (p, r, sha) in covered(ix, path, l)? {
        let outcome = match r.status {
            ResultStatus::Ok => Outcome::Ok(read_result(ix, &p, r, signer).map_err(|code| {
                WorkflowError::Refused(format!(
                    "{path}: cannot check it: {p} does not open with {}'s key ({code})",
                    signer.handle
                ))
            })?),
            ResultStatus::Failed => Outcome::Failed(r.failure.clone().ok_or_else(|| {
                WorkflowError::Refused(format!("{p}: a failure receipt without `failure`"))
            })?),
        };
        let agreed = ix
            .benchmark(&r.benchmark.name, r.benchmark.version)
            .map(|(_, a)| a.policy.clone())
            .unwrap_or_else(|| b.policy.clone());
        inputs.push(input(ix, b, p, r, sha, outcome, agreed));
    }
    let mapping = match (&l.pseudonyms, l.is_unlinked()) {
        (Some(sealed), true) => {
            let file = build::sealed(path, "pseudonyms");
            let ct = pseudonyms
                .or_else(|| ix.bytes(&file))
                .ok_or_else(|| WorkflowError::NotFound(format!("{file} is missing")))?;
            let plain = model::envelope::open(sealed, ct, signer.decryptor())?;
            Some(Pseudonyms::from_canonical(&file, &plain)?)
        }
        (None, true) => {
            return Err(WorkflowError::Refused(format!(
                "{path}: pseudonymised, but has no sealed mapping"
            )));
        }
        _ => None,
    };
    // (model, dataset id) -> the covered result's outcome.
    let by_cell: BTreeMap<(&CubeRef, &str), (&str, &Outcome)> = inputs
        .iter()
        .map(|i| {
            (
                (&i.model, i.dataset_id.as_str()),
                (i.path.as_str(), &i.outcome),
            )
        })
        .collect();
    let dataset_of_path: BTreeMap<&str, &str> = inputs
        .iter()
        .map(|i| (i.path.as_str(), i.dataset_id.as_str()))
        .collect();
    let mut problems = Vec::new();
    let mut cells = 0;
    let problem = |message: String| Problem {
        path: path.to_string(),
        rule: Rule::Sealed,
        code: Code::ReleaseMismatch,
        message,
        commit: None,
    };
    for e in &l.entries {
        for c in &e.cells {
            cells += 1;
            let id = match (&mapping, &c.result) {
                (Some(m), _) => m.sites.get(&c.dataset).map(String::as_str),
                (None, Some(r)) => dataset_of_path.get(r.as_str()).copied(),
                (None, None) => None,
            };
            let Some(id) = id else {
                problems.push(problem(format!(
                    "{}: {} stands for no dataset this release covers",
                    e.model.name, c.dataset
                )));
                continue;
            };
            let want = match by_cell.get(&(&e.model, id)) {
                Some((_, Outcome::Ok(m))) => m,
                _ => {
                    problems.push(problem(format!(
                        "{}: {} shows values, but the dataset it stands for has no successful result of this model",
                        e.model.name, c.dataset
                    )));
                    continue;
                }
            };
            let rounded: BTreeMap<String, f64> = want
                .iter()
                .map(|(k, v)| (k.clone(), report::round(*v)))
                .collect();
            if rounded != c.metrics {
                let diff = rounded
                    .iter()
                    .find(|(k, v)| c.metrics.get(*k) != Some(v))
                    .map(|(k, v)| {
                        format!(
                            "{k} = {} where its result says {v}",
                            c.metrics
                                .get(k)
                                .map(|x| x.to_string())
                                .unwrap_or_else(|| "nothing".into())
                        )
                    })
                    .unwrap_or_else(|| "metrics its result does not report".into());
                problems.push(problem(format!(
                    "{}: the cell {} shows {diff}",
                    e.model.name, c.dataset
                )));
            }
        }
    }
    let mut recomputed = false;
    if l.layout.is_some() {
        let meta = ReleaseMeta {
            bench: l.benchmark.clone(),
            number: l.number,
            created: l.created.clone(),
            by: l.by.clone(),
        };
        let unlinking = match (&mapping, &l.pseudonyms) {
            (Some(m), Some(s)) => Some(report::Unlinking {
                mapping: m,
                sealed: s.clone(),
            }),
            _ => None,
        };
        // By the rules of the record's own layout: an older release recomputes as it was made.
        match report::release_in(
            l.layout(),
            &meta,
            &b.policy,
            &inputs,
            unlinking,
            l.excluded.clone(),
        ) {
            Ok(mine) if model::to_bytes(&mine) == bytes => recomputed = true,
            Ok(_) if problems.is_empty() => problems.push(problem(
                "its summaries, ranks or listings differ from a recomputation from its results"
                    .into(),
            )),
            Ok(_) => {}
            Err(e) => problems.push(problem(format!("recomputing it fails: {e}"))),
        }
    }
    if !problems.is_empty() {
        return Err(WorkflowError::Problems {
            summary: format!("{path} does not match the results it covers"),
            problems,
        });
    }
    let readable_exclusions = l
        .excluded
        .iter()
        .filter(|x| x.reason.is_cryptographic())
        .filter(|x| match ix.record(&x.path) {
            Some(Record::Result(r)) => read_result(ix, &x.path, r, signer).is_ok(),
            _ => false,
        })
        .map(|x| x.path.clone())
        .collect();
    Ok(Checked {
        results: inputs.len(),
        cells,
        mapping: mapping.is_some(),
        recomputed,
        readable_exclusions,
    })
}

/// Before co-signing a proposed release, a committee member checks it with their own key
/// ([`check_release`]), and that it leaves nothing on main out silently: every result of the
/// benchmark is covered, listed as left out, or older than a covered one of the same model on
/// the same dataset.
pub fn check_proposed(
    ix: &Index,
    signer: &Signer,
    path: &str,
    bytes: &[u8],
    pseudonyms: Option<&[u8]>,
) -> Result<()> {
    let rp = model::classify(path)?;
    let Record::Leaderboard(proposed) = model::parse_record(path, &rp, bytes)? else {
        return Err(WorkflowError::Refused(format!("{path} is not a release")));
    };
    check_release(ix, signer, path, &proposed, bytes, pseudonyms).map_err(|e| match e {
        WorkflowError::Problems { summary, problems } => WorkflowError::Problems {
            summary: format!("{summary}; not co-signing"),
            problems,
        },
        other => other,
    })?;
    let covered = covered(ix, path, &proposed)?;
    let newest: BTreeMap<(&CubeRef, &str), u32> =
        covered.iter().fold(BTreeMap::new(), |mut m, (_, r, _)| {
            let n = m.entry((&r.model, r.dataset.id.as_str())).or_insert(0);
            *n = (*n).max(r.number);
            m
        });
    for (p, r) in registered(ix, Some(&proposed.benchmark.name)) {
        let is_covered = covered.iter().any(|(c, _, _)| c == &p);
        let is_excluded = proposed.excluded.iter().any(|x| x.path == p);
        let superseded = newest
            .get(&(&r.model, r.dataset.id.as_str()))
            .is_some_and(|n| *n > r.number);
        if !is_covered && !is_excluded && !superseded {
            return Err(WorkflowError::Refused(format!(
                "{path}: leaves out {p} without listing it; not co-signing (run `cohort registry sync` and ask for a new release)"
            )));
        }
    }
    Ok(())
}

/// `verify --committee`: every release of the benchmarks whose committee `signer` sits on,
/// checked cell by cell through the sealed mappings ([`check_release`]). Returns how many
/// releases were opened, and the problems found.
pub fn check_committee_releases(ix: &Index, signer: &Signer) -> (usize, Vec<Problem>) {
    let mut opened = 0;
    let mut problems = Vec::new();
    for versions in ix.leaderboards.values() {
        for path in versions.values() {
            let (Some(Record::Leaderboard(l)), Some(bytes)) = (ix.record(path), ix.bytes(path))
            else {
                continue;
            };
            let on_committee = ix
                .benchmark(&l.benchmark.name, l.benchmark.version)
                .is_some_and(|(_, b)| b.committee.contains(&signer.handle));
            if !on_committee {
                continue;
            }
            opened += 1;
            match check_release(ix, signer, path, l, bytes, None) {
                Ok(_) => {}
                Err(WorkflowError::Problems { problems: p, .. }) => problems.extend(p),
                Err(e) => problems.push(Problem {
                    path: path.clone(),
                    rule: Rule::Sealed,
                    code: Code::ReleaseMismatch,
                    message: format!("cannot be checked: {e}"),
                    commit: None,
                }),
            }
        }
    }
    (opened, problems)
}
