//! Who may sign, approve and reference what (docs/design.md "Trust rules" and "Who signs, who
//! approves, who merges"), as one check per record kind, run in dependency order.

use std::collections::BTreeSet;

use crate::model::{self, DecisionKind, Record, RecordPath, Sha256};

use super::Rule;
use super::index::Index;
use super::verify::{Ctx, Verdict};
use super::view::Vs;

mod access;
mod benchmarks;
mod blobs;
mod data;
mod identity;
mod orphans;
mod release;

use access::*;
use benchmarks::*;
pub(in crate::trust) use blobs::check_blobs;
use data::*;
use identity::*;
pub(in crate::trust) use identity::{check_revoked_users, revocations};
pub(in crate::trust) use orphans::check_orphans;
use release::*;

pub(super) struct Stage {
    pub select: fn(&Index) -> Vec<String>,
    /// Whether a file is one of the records `select` gives (one stage has each record kind).
    pub member: fn(&RecordPath) -> bool,
    pub check: fn(&Ctx, &str, &mut Verdict),
    pub sequential: bool,
    /// Once this stage is checked, the revoked raw keys are known (see [`revocations`]).
    pub then_revocations: bool,
}

pub(super) fn all(
    m: &std::collections::BTreeMap<impl Ord, std::collections::BTreeMap<u32, String>>,
) -> Vec<String> {
    m.values().flat_map(|v| v.values().cloned()).collect()
}

pub(super) const STAGES: &[Stage] = &[
    Stage {
        select: |ix| ix.roots.values().cloned().collect(),
        member: |rp| matches!(rp, RecordPath::Root { .. }),
        check: check_root,
        sequential: true,
        then_revocations: false,
    },
    Stage {
        select: |ix| all(&ix.users),
        member: |rp| matches!(rp, RecordPath::User { .. }),
        check: check_user,
        sequential: false,
        then_revocations: false,
    },
    Stage {
        select: |ix| all(&ix.grants),
        member: |rp| matches!(rp, RecordPath::Grant { .. }),
        check: check_grant,
        sequential: false,
        then_revocations: true,
    },
    Stage {
        select: |ix| all(&ix.cubes),
        member: |rp| matches!(rp, RecordPath::Mlcube { .. }),
        check: check_cube,
        sequential: false,
        then_revocations: false,
    },
    Stage {
        select: |ix| all(&ix.benchmarks),
        member: |rp| matches!(rp, RecordPath::Benchmark { .. }),
        check: check_benchmark,
        sequential: false,
        then_revocations: false,
    },
    Stage {
        select: |ix| all(&ix.datasets),
        member: |rp| matches!(rp, RecordPath::Dataset { .. }),
        check: check_dataset,
        sequential: false,
        then_revocations: false,
    },
    Stage {
        select: |ix| all(&ix.associations),
        member: |rp| matches!(rp, RecordPath::Association { .. }),
        check: check_association,
        sequential: false,
        then_revocations: false,
    },
    Stage {
        select: |ix| all(&ix.priorities),
        member: |rp| matches!(rp, RecordPath::Priority { .. }),
        check: check_priority,
        sequential: false,
        then_revocations: false,
    },
    Stage {
        select: |ix| all(&ix.access),
        member: |rp| matches!(rp, RecordPath::Access { .. }),
        check: check_access,
        sequential: false,
        then_revocations: false,
    },
    Stage {
        select: |ix| all(&ix.results),
        member: |rp| matches!(rp, RecordPath::Result { .. }),
        check: check_result,
        sequential: false,
        then_revocations: false,
    },
    Stage {
        select: |ix| all(&ix.leaderboards),
        member: |rp| matches!(rp, RecordPath::Leaderboard { .. }),
        check: check_leaderboard,
        sequential: false,
        then_revocations: false,
    },
    Stage {
        select: |ix| ix.metas.values().cloned().collect(),
        member: |rp| matches!(rp, RecordPath::Meta { .. }),
        check: check_meta,
        sequential: true,
        then_revocations: false,
    },
    Stage {
        select: select_decisions,
        member: |rp| matches!(rp, RecordPath::Decision { .. }),
        check: check_decision,
        sequential: false,
        then_revocations: false,
    },
];

/// The stage (index into [`STAGES`]) that checks the record at `rp`.
pub(super) fn stage_of(rp: &RecordPath) -> Option<usize> {
    STAGES.iter().position(|s| (s.member)(rp))
}

/// Version N needs version N-1 (versions go up by exactly one) and, after 1, names its sha.
pub(super) fn check_chain(
    ctx: &Ctx,
    path: &str,
    versions: Option<Vs>,
    version: u32,
    previous: Option<&Sha256>,
    v: &mut Verdict,
) {
    if version <= 1 {
        return;
    }
    match versions.and_then(|m| m.get(&(version - 1))) {
        None => v.fail(
            path,
            Rule::Reference,
            format!(
                "is version {version} but version {} does not exist",
                version - 1
            ),
        ),
        Some(prev) => {
            if let Some(sha) = previous
                && ctx.ix.sha(prev) != Some(sha)
            {
                v.fail(
                    path,
                    Rule::Reference,
                    format!("`previous` does not match the sha256 of {prev}"),
                );
            }
        }
    }
}

pub(super) fn numbered(path: &str, versions: Option<Vs>, n: u32, v: &mut Verdict) {
    if n > 1 && !versions.is_some_and(|m| m.contains_key(&(n - 1))) {
        v.fail(
            path,
            Rule::Reference,
            format!("is number {n} but number {} does not exist", n - 1),
        );
    }
}

/// Checks the decisions on `subject` by people `may_decide` accepts, signed by them, merged no
/// later than `by_t`. Returns the handles with valid approvals; reports rejections.
pub(super) fn approvals(
    ctx: &Ctx,
    subject: &str,
    by_t: usize,
    may_decide: &dyn Fn(&str, usize) -> Result<(), String>,
    v: &mut Verdict,
) -> BTreeSet<String> {
    let mut who = BTreeSet::new();
    for kind in [DecisionKind::Approval, DecisionKind::Rejection] {
        for (dpath, d) in ctx.ix.decisions_on(subject, kind) {
            let t = ctx.intro(dpath);
            if let Err(why) = may_decide(&d.by, t) {
                v.fail(dpath, Rule::Approval, why);
                continue;
            }
            if !ctx.signed_by(dpath, &d.by, v) {
                continue;
            }
            if t > by_t {
                continue;
            }
            match kind {
                DecisionKind::Approval => {
                    who.insert(d.by.clone());
                }
                _ => v.fail_code(
                    subject,
                    Rule::Approval,
                    super::Code::RejectedButMerged,
                    format!("was rejected by {} ({dpath}) but merged anyway", d.by),
                ),
            }
        }
    }
    who
}

/// The cube a reference names, valid and merged by `t`.
pub(super) fn cube_ok(
    ctx: &Ctx,
    path: &str,
    what: &str,
    r: &model::CubeRef,
    t: usize,
    v: &mut Verdict,
) -> bool {
    match ctx.ix.resolves_cube(r) {
        Some(p) if ctx.is_valid(p) && ctx.intro(p) <= t => true,
        Some(_) => {
            v.fail(
                path,
                Rule::Reference,
                format!(
                    "{what} {} v{} is not a valid cube at this point",
                    r.name, r.version
                ),
            );
            false
        }
        None => {
            v.fail(
                path,
                Rule::Reference,
                format!(
                    "{what} {} v{} (sha256 {}) does not resolve",
                    r.name,
                    r.version,
                    r.sha256.short()
                ),
            );
            false
        }
    }
}

/// The benchmark a reference names, valid (approved) and merged by `t`.
pub(super) fn bench_ok<'a>(
    ctx: &'a Ctx,
    path: &str,
    r: &model::BenchRef,
    t: usize,
    v: &mut Verdict,
) -> Option<&'a model::Benchmark> {
    match ctx.ix.resolves_bench(r) {
        Some(p) if ctx.is_valid(p) && ctx.intro(p) <= t => match ctx.ix.record(p) {
            Some(Record::Benchmark(b)) => Some(b),
            _ => None,
        },
        Some(_) => {
            v.fail(
                path,
                Rule::Reference,
                format!(
                    "benchmark {} v{} is not approved at this point",
                    r.name, r.version
                ),
            );
            None
        }
        None => {
            v.fail(
                path,
                Rule::Reference,
                format!(
                    "benchmark {} v{} (sha256 {}) does not resolve",
                    r.name,
                    r.version,
                    r.sha256.short()
                ),
            );
            None
        }
    }
}
