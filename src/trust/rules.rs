//! The rule pass: every record kind checked in dependency order (roots, users, grants, cubes,
//! benchmarks, datasets, associations, priorities, access, results, releases, meta, decisions),
//! each kind's records in parallel, then the checks across the whole registry. On a main grown
//! from one this machine accepted, only the records whose horizon reaches the new commits are
//! checked: every other record's check reads exactly what it read then (see [`super::view`]).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};

use rayon::prelude::*;

use crate::model;

use super::index::Index;
use super::policy::{self, STAGES};
use super::verify::{Ctx, Run, Verdict, VerifyOptions};
use super::view::{META_UNIT, ROOT_UNIT, Reach};
use super::{Code, Problem, Report, Rule, Timeline, TreeRead, TrustError};

/// Verifies a registry tree. `timeline` says when each file entered main (use
/// [`Timeline::flat`] for a bare tree). Returns the report and the index it built.
pub fn verify(
    tree: &dyn TreeRead,
    timeline: &Timeline,
    opts: &VerifyOptions,
) -> Result<(Report, Index), TrustError> {
    let built = Index::build_checking(tree, timeline, opts.cache.as_deref())?;
    Ok(verify_index(built, timeline, opts))
}

/// `verify` over an index already built from the tree (with `Index::build`), whose files'
/// arrival commits are those of `timeline`.
pub fn verify_index(
    built: (Index, Vec<Problem>),
    timeline: &Timeline,
    opts: &VerifyOptions,
) -> (Report, Index) {
    let (ix, problems) = built;
    let pass = rule_pass(&ix, timeline, opts, None).expect("a whole pass never falls back");
    let expected = opts.expected_registry.as_ref();
    (report(&ix, problems, pass, timeline, expected), ix)
}

/// What a grown main's verification knows of the main it grew from, as this machine verified
/// it with this build's trust rules (see `registry::carry`): no problem and no warning.
#[derive(Debug, Clone, Copy)]
pub struct Accepted {
    /// How many first-parent commits that main has: files of later commits are new.
    pub commits: usize,
}

/// `verify_index` over the index of a main grown from `base` (an accepted main) whose files
/// [`Index::fresh`] names the new ones: only the records those files are or attach to are
/// checked, with every other record of `base` valid as it was. When one of those records of
/// `base` no longer passes, records that relied on it may change too, and every record is
/// checked; the report is the same either way.
pub fn verify_grown(
    built: (Index, Vec<Problem>),
    timeline: &Timeline,
    opts: &VerifyOptions,
    base: Accepted,
) -> (Report, Index) {
    let (ix, problems) = built;
    let pass = match ix.fresh.as_ref() {
        Some(fresh) => {
            let scope = Scope {
                at: base.commits,
                reach: Reach::of(&ix, fresh),
            };
            rule_pass(&ix, timeline, opts, Some(&scope))
        }
        None => None,
    };
    let pass = pass.unwrap_or_else(|| {
        rule_pass(&ix, timeline, opts, None).expect("a whole pass never falls back")
    });
    let expected = opts.expected_registry.as_ref();
    (report(&ix, problems, pass, timeline, expected), ix)
}

/// Loads parts of a main (see [`super::view::unit_of`]) into a partial index: the index of
/// their files read from the main's tree, or `None` when they did not read as a main accepted
/// here reads (the whole read then reports why).
pub type Load<'l> = dyn FnMut(&[String]) -> Result<Option<Index>, TrustError> + 'l;

/// At most this many rounds of loading what the checks missed (a round loads at least one
/// part; ten new cubes take one).
const MAX_ROUNDS: usize = 32;

/// `verify_grown` over a partial index (see [`super::index::Lazy`]) holding the new files of a
/// main grown from `base`: the rule pass runs, the parts of the main its reads missed are
/// loaded with `load`, and it runs again, until it reads nothing missing. `None` when the
/// whole index is needed after all (a record of `base` the new files reach no longer passes,
/// or a part does not load): the caller then reads it whole, which reports the same.
pub fn verify_lazily(
    built: (Index, Vec<Problem>),
    timeline: &Timeline,
    opts: &VerifyOptions,
    base: Accepted,
    load: &mut Load,
) -> Result<Option<(Report, Index)>, TrustError> {
    let (mut ix, problems) = built;
    let (Some(fresh), true) = (ix.fresh.clone(), ix.is_partial()) else {
        return Ok(None);
    };
    let expected = opts.expected_registry.as_ref();
    let mut parts = 0;
    for _ in 0..MAX_ROUNDS {
        let scope = Scope {
            at: base.commits,
            reach: Reach::of(&ix, &fresh),
        };
        let pass = rule_pass(&ix, timeline, opts, Some(&scope));
        let report = pass.map(|p| report(&ix, problems.clone(), p, timeline, expected));
        let misses = ix
            .lazy
            .as_ref()
            .map(|l| l.take_misses())
            .unwrap_or_default();
        if misses.is_empty() {
            return Ok(report.map(|mut r| {
                r.parts_read = Some(parts);
                (r, ix)
            }));
        }
        parts += misses.len();
        let Some(more) = load(&misses)? else {
            return Ok(None);
        };
        ix.merge(more, false);
        if let Some(l) = ix.lazy.as_mut() {
            l.loaded.extend(misses);
        }
    }
    Ok(None)
}

/// What a grown main's rule pass checks: the stages run one at a time (roots, meta: few, each
/// relying on the one before) whole, and of the others the records the new files reach (whose
/// horizon therefore reaches the new commits); the checks across the registry look at what
/// the new files reach.
struct Scope {
    at: usize,
    reach: Reach,
}

/// What a rule pass found.
struct Pass {
    problems: Vec<Problem>,
    warnings: Vec<Problem>,
    records_checked: usize,
    sigs_checked: usize,
    sigs_cached: usize,
}

/// Runs the stages over every record, or over `scope`'s; `None` when a record of the main the
/// scope's main grew from does not pass any more (the whole pass is then needed).
fn rule_pass(
    ix: &Index,
    timeline: &Timeline,
    opts: &VerifyOptions,
    scope: Option<&Scope>,
) -> Option<Pass> {
    let mut run = Run {
        ix,
        timeline,
        valid: HashMap::new(),
        sigs_checked: AtomicUsize::new(0),
        sigs_cached: AtomicUsize::new(0),
        memo: opts.cache.clone().unwrap_or_default(),
        memo_is_persistent: opts.cache.is_some(),
        revoked: HashMap::new(),
        stages_done: 0,
        grown_at: scope.map(|s| s.at),
    };
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    let mut records_checked = 0;
    // The stages run one at a time read every root and meta manifest.
    ix.need(ROOT_UNIT);
    ix.need(META_UNIT);
    for (n, stage) in STAGES.iter().enumerate() {
        let paths = match scope {
            Some(s) if !stage.sequential => s
                .reach
                .records(ix)
                .filter(|p| ix.files.get(*p).is_some_and(|f| (stage.member)(&f.rp)))
                .cloned()
                .collect(),
            _ => (stage.select)(ix),
        };
        records_checked += paths.len();
        let verdicts: Vec<(String, Verdict)> = if stage.sequential {
            // Each item's validity feeds the next one's check (root rotation).
            let mut out = Vec::new();
            for p in paths {
                let mut v = Verdict::default();
                (stage.check)(&Ctx::of(&run, &p), &p, &mut v);
                if v.ok() {
                    run.valid.insert(p.clone(), ix.intro(&p));
                }
                out.push((p, v));
            }
            out
        } else {
            let run = &run;
            paths
                .into_par_iter()
                .map(|p| {
                    let mut v = Verdict::default();
                    (stage.check)(&Ctx::of(run, &p), &p, &mut v);
                    (p, v)
                })
                .collect()
        };
        for (p, v) in verdicts {
            if v.ok() {
                let intro = ix.intro(&p);
                run.valid.insert(p, intro);
            } else if scope.is_some_and(|s| ix.intro(&p) < s.at) {
                return None;
            }
            problems.extend(v.problems);
            warnings.extend(v.warnings);
        }
        run.stages_done = n + 1;
        if stage.then_revocations {
            run.revoked = policy::revocations(&run);
        }
    }
    let reach = scope.map(|s| &s.reach);
    let mut v = Verdict::default();
    policy::check_revoked_users(&run, reach, &mut v);
    problems.extend(v.problems);
    warnings.extend(v.warnings);
    policy::check_orphans(&run, reach, &mut problems);
    policy::check_blobs(&run, reach, &mut problems, &mut warnings);
    Some(Pass {
        problems,
        warnings,
        records_checked,
        sigs_checked: run.sigs_checked.load(Ordering::Relaxed),
        sigs_cached: run.sigs_cached.load(Ordering::Relaxed),
    })
}

/// The report of a pass over `ix`, with the problems reading it showed.
fn report(
    ix: &Index,
    read: Vec<Problem>,
    pass: Pass,
    timeline: &Timeline,
    expected: Option<&model::Sha256>,
) -> Report {
    let mut problems = read;
    problems.extend(timeline.problems.iter().cloned());
    match (&ix.registry_id, expected) {
        (None, _) => problems.push(Problem {
            path: model::build::root(1),
            rule: Rule::Root,
            code: Code::MissingRoot,
            message: "is missing; every registry starts with a signed root".into(),
            commit: None,
        }),
        (Some(id), Some(pinned)) if id != pinned => problems.push(Problem {
            path: model::build::root(1),
            rule: Rule::Rollback,
            code: Code::OtherRegistry,
            message: format!(
                "registry id is {id}, but this clone pinned {pinned}: a different registry"
            ),
            commit: None,
        }),
        _ => {}
    }
    problems.extend(pass.problems);
    let mut warnings = pass.warnings;
    for p in problems.iter_mut().chain(warnings.iter_mut()) {
        ix.need_path(&p.path);
        if p.commit.is_none()
            && let Some(info) = ix.files.get(&p.path)
        {
            p.commit = timeline.commit(info.intro).map(str::to_string);
        }
    }
    // A malformed folder shows both in the tree verified and in the history walk that met
    // it: reported once, with the commit.
    let dated: HashSet<(String, Code, String)> = problems
        .iter()
        .filter(|p| p.commit.is_some())
        .map(|p| (p.path.clone(), p.code, p.message.clone()))
        .collect();
    problems.retain(|p| {
        p.commit.is_some() || !dated.contains(&(p.path.clone(), p.code, p.message.clone()))
    });
    problems.sort();
    problems.dedup();
    warnings.sort();
    warnings.dedup();
    Report {
        registry_id: ix.registry_id.as_ref().map(|s| s.to_string()),
        files: ix.file_count(),
        records: ix.record_count(),
        records_checked: pass.records_checked,
        signatures_checked: pass.sigs_checked,
        signatures_cached: pass.sigs_cached,
        files_carried: ix.carried,
        grown_from: None,
        parts_read: None,
        problems,
        warnings,
    }
}
