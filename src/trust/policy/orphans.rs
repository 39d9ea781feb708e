//! Files that only make sense next to a record, checked after every record kind.

use crate::model::{Record, RecordPath, build};

use super::super::verify::{Ctx, Verdict};
use super::super::{Problem, Rule};

/// Files that only make sense next to a record: signatures of missing files, sealed payloads and
/// cube files nobody references, meta files no meta manifest pins.
pub(in crate::trust) fn check_orphans(ctx: &Ctx, problems: &mut Vec<Problem>) {
    let ix = ctx.ix;
    let mut push = |path: &str, rule: Rule, message: String| {
        problems.push(Problem {
            path: path.to_string(),
            rule,
            code: crate::trust::Code::of_rule(rule),
            message,
            commit: None,
        })
    };
    let mut stray = Vec::new();
    for (signed, sigs) in &ix.signatures {
        if !ix.files.contains_key(signed) {
            for (_, sp) in sigs {
                push(
                    sp,
                    Rule::Signature,
                    format!("signs {signed}, which is not in the registry"),
                );
            }
        } else if ix.record(signed).is_none() {
            // The record itself did not parse; its signatures still show where they came from
            // (a signature copied from another path says so).
            let mut v = Verdict::default();
            // Signers without a key here (e.g. a self-signed request that did not parse) add
            // nothing beyond the parse error.
            ctx.signatures(signed, &mut v, &|signer, t| {
                ctx.key_at(signer, t).ok_or_else(String::new)
            });
            v.problems.retain(|p| !p.message.is_empty());
            stray.extend(v.problems);
        }
    }
    for (owner, files) in &ix.sealed {
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
    for (path, info) in &ix.files {
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
