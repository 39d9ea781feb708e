//! What the owner of a private model should act on (`registry status`): datasets that joined
//! without a decision, grantees whose age key changed since their grant.

use crate::model::{self, AccessAction, ImageSource, Mlcube};
use crate::trust::Index;

use super::grant::datasets_of;
use super::latest_access;

/// Something the owner of a private model should act on (`registry status`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessNotice {
    /// A dataset associated with a benchmark the model is associated with, that holds neither a
    /// grant nor a revocation yet.
    Undecided {
        model: model::CubeRef,
        bench: String,
        dataset: String,
        dataset_name: String,
    },
    /// A granted dataset's owner now has another age key than the grant sealed the key to: a
    /// new grant re-seals it (`mlcube grant` again).
    Rotated {
        model: model::CubeRef,
        dataset: String,
        dataset_name: String,
        handle: String,
    },
}

/// The access decisions waiting for `me` on my private models.
pub fn notices(ix: &Index, me: &str) -> Vec<AccessNotice> {
    let mut out = Vec::new();
    for (name, versions) in &ix.cubes {
        for path in versions.values() {
            let Some(model::Record::Mlcube(c)) = ix.record(path) else {
                continue;
            };
            if c.owner != me || c.image.source != ImageSource::Encrypted {
                continue;
            }
            let mref = model::CubeRef {
                name: name.clone(),
                version: c.version,
                sha256: ix.sha(path).cloned().expect("indexed"),
            };
            notices_of(ix, c, &mref, &mut out);
        }
    }
    out
}

fn notices_of(ix: &Index, c: &Mlcube, mref: &model::CubeRef, out: &mut Vec<AccessNotice>) {
    let name_of = |id: &str| {
        ix.dataset(id)
            .map(|(_, d)| d.name.clone())
            .unwrap_or_default()
    };
    // Benchmarks this version is associated with (not withdrawn).
    let benches: Vec<&String> = ix
        .associations
        .iter()
        .filter_map(|((b, key), versions)| {
            let model::AssocKey::Model(m) = key else {
                return None;
            };
            let (_, p) = versions.last_key_value()?;
            let ok = m == &c.name
                && ix.decisions_on(p, model::DecisionKind::Withdrawal).is_empty()
                && matches!(ix.record(p), Some(model::Record::Association(a)) if a.model.as_ref() == Some(mref));
            ok.then_some(b)
        })
        .collect();
    let mut seen = std::collections::BTreeSet::new();
    for b in benches {
        for id in datasets_of(ix, b) {
            if latest_access(ix, &c.name, c.version, &id).is_none() && seen.insert(id.clone()) {
                out.push(AccessNotice::Undecided {
                    model: mref.clone(),
                    bench: b.clone(),
                    dataset_name: name_of(&id),
                    dataset: id,
                });
            }
        }
    }
    for ((n, v, id), _) in ix
        .access
        .range((c.name.clone(), c.version, String::new())..)
    {
        if n != &c.name || *v != c.version {
            break;
        }
        let Some((_, a)) = latest_access(ix, n, *v, id) else {
            continue;
        };
        let Some(k) = a.key.as_ref().filter(|_| a.action == AccessAction::Grant) else {
            continue;
        };
        if ix.age_recipient(&k.handle).as_deref() != Some(k.age.as_str()) {
            out.push(AccessNotice::Rotated {
                model: mref.clone(),
                dataset: id.clone(),
                dataset_name: name_of(id),
                handle: k.handle.clone(),
            });
        }
    }
}
