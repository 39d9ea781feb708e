//! Files that only make sense next to a record, checked after every record kind.

use std::collections::BTreeSet;

use crate::model::{Record, RecordPath, build};

use super::super::index::FileInfo;
use super::super::verify::{Ctx, Run, Verdict};
use super::super::view::{META_UNIT, Reach};
use super::super::{Problem, Rule};

/// The (signer, signature path) pairs on one file.
type Signers = Vec<(String, String)>;

/// Files that only make sense next to a record: signatures of missing files, sealed payloads and
/// cube files nobody references, meta files no meta manifest pins. On a grown main, the files
/// `reach` holds (and every meta file): a file older than the new commits keeps what it signs,
/// seals or sits next to, and its signatures are checked seeing what stood at its horizon.
pub(in crate::trust) fn check_orphans(
    run: &Run,
    reach: Option<&Reach>,
    problems: &mut Vec<Problem>,
) {
    let ix = run.ix;
    let mut push = |path: &str, rule: Rule, message: String| {
        problems.push(Problem {
            path: path.to_string(),
            rule,
            code: crate::trust::Code::of_rule(rule),
            message,
            commit: None,
        })
    };
    let signed: Box<dyn Iterator<Item = (&String, &Signers)>> = match reach {
        None => Box::new(ix.signatures.iter()),
        Some(r) => Box::new(r.files.iter().filter_map(|p| {
            ix.need_path(p);
            ix.signatures.get_key_value(p)
        })),
    };
    let mut stray = Vec::new();
    for (signed, sigs) in signed {
        if !ix.files.contains_key(signed) {
            for (_, sp) in sigs {
                push(
                    sp,
                    Rule::Signature,
                    format!("signs {signed}, which is not in the registry"),
                );
            }
        } else if ix.record(signed).is_none() {
            let ctx = Ctx::of(run, signed);
            let mut v = Verdict::default();
            ctx.signatures(signed, &mut v, &|signer, t| {
                ctx.key_at(signer, t).ok_or_else(String::new)
            });
            v.problems.retain(|p| !p.message.is_empty());
            stray.extend(v.problems);
        }
    }
    let sealed: Box<dyn Iterator<Item = (&String, &Vec<String>)>> = match reach {
        None => Box::new(ix.sealed.iter()),
        Some(r) => {
            let owners: BTreeSet<&String> = r
                .files
                .iter()
                .filter_map(|p| match ix.files.get(p).map(|f| &f.rp) {
                    Some(RecordPath::Sealed { owner, .. }) => Some(owner),
                    _ => None,
                })
                .collect();
            Box::new(owners.into_iter().filter_map(|o| {
                ix.need_path(o);
                ix.sealed.get_key_value(o)
            }))
        }
    };
    for (owner, files) in sealed {
        let referenced = match ix.record(owner) {
            Some(Record::Dataset(d)) => std::iter::once(&d.statistics)
                .chain(&d.about)
                .map(|s| s.file.clone())
                .collect(),
            Some(Record::Association(a)) => a.sealed.iter().map(|s| s.file.clone()).collect(),
            Some(Record::Result(r)) => r.sealed.iter().map(|s| s.file.clone()).collect(),
            Some(Record::Leaderboard(l)) => l.pseudonyms.iter().map(|s| s.file.clone()).collect(),
            _ => vec![],
        };
        for f in files {
            let name = f.rsplit('/').next().unwrap_or(f);
            if !referenced.iter().any(|r| r == name) {
                push(f, Rule::Sealed, format!("is not referenced by {owner}"));
            }
        }
    }
    let files: Box<dyn Iterator<Item = (&String, &FileInfo)>> = match reach {
        None => Box::new(ix.files.iter()),
        Some(r) => Box::new(r.files.iter().filter_map(|p| ix.files.get_key_value(p))),
    };
    for (path, info) in files {
        if let RecordPath::MlcubeFile { name, version, .. } = &info.rp
            && ix.cube(name, *version).is_none()
        {
            push(
                path,
                Rule::DefaultDeny,
                format!("has no {}", build::mlcube(name, *version)),
            );
        }
    }
    let ctx = Ctx::at(run, usize::MAX);
    // Meta files live at the top, under `hooks/` and under `.github/workflows/`.
    for unit in ["", "hooks/", ".github/workflows/", META_UNIT] {
        ix.need(unit);
    }
    let latest_meta = ix
        .metas
        .values()
        .rev()
        .find(|p| ctx.is_valid(p))
        .and_then(|p| match ix.record(p) {
            Some(Record::Meta(m)) => Some((p.clone(), m)),
            _ => None,
        });
    for f in &ix.meta_files {
        let pinned = latest_meta.as_ref().and_then(|(_, m)| m.files.get(f));
        match (pinned, ix.sha(f)) {
            (Some(want), Some(have)) if want == have => {}
            (Some(_), _) => push(
                f,
                Rule::Signature,
                format!(
                    "differs from the sha256 pinned in {} (README, CI and hook changes need an admin's new meta version)",
                    latest_meta
                        .as_ref()
                        .map(|(p, _)| p.as_str())
                        .unwrap_or("meta")
                ),
            ),
            (None, _) => push(
                f,
                Rule::DefaultDeny,
                "is not pinned by any valid meta/v<N>.toml".into(),
            ),
        }
    }
    problems.extend(stray);
}
