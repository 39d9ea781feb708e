//! Datasets and results: ownership, references, approved associations and sealed payloads.

use std::collections::BTreeSet;

use crate::model::{self, AssocKey, Record, build};

use super::super::Rule;
use super::super::verify::{Ctx, Verdict};
use super::*;

/// The expected recipients of data sealed for benchmark `b` and owner `owner` at `t`.
pub(super) fn expected_recipients(
    ctx: &Ctx,
    b: &model::Benchmark,
    owner: &str,
    t: usize,
) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for h in b
        .committee
        .iter()
        .map(String::as_str)
        .chain(std::iter::once(owner))
    {
        if let Some(age) = age_key_at(ctx, h, t) {
            out.insert((h.to_string(), age));
        }
    }
    out
}

pub(super) fn age_key_at(ctx: &Ctx, handle: &str, t: usize) -> Option<String> {
    let valid = |p: &str| ctx.is_valid(p);
    if let Some(a) = ctx
        .ix
        .root_at(t, &valid)
        .and_then(|r| r.admins.iter().find(|a| a.handle == handle))
    {
        return Some(a.age.clone());
    }
    ctx.ix
        .users
        .get(handle)?
        .values()
        .rev()
        .filter(|p| ctx.is_valid(p) && ctx.intro(p) <= t)
        .find_map(|p| match ctx.ix.record(p) {
            Some(Record::User(u)) => Some(u.age.clone()),
            _ => None,
        })
}

pub(super) fn check_sealed(
    ctx: &Ctx,
    owner_path: &str,
    purpose: &str,
    sealed: &model::Sealed,
    expected: &BTreeSet<(String, String)>,
    v: &mut Verdict,
) {
    let want_file = build::sealed_file_name(owner_path, purpose);
    if sealed.file != want_file {
        v.fail(
            owner_path,
            Rule::Sealed,
            format!(
                "names sealed file `{}`; it must be `{want_file}`",
                sealed.file
            ),
        );
        return;
    }
    // A release's pseudonym mapping and a dataset's description have their own schemas;
    // every other payload is metrics.
    let want_schema = match purpose {
        "pseudonyms" => model::envelope::SCHEMA_PSEUDONYMS,
        "about" => model::about::SCHEMA_ABOUT,
        _ => model::envelope::SCHEMA_METRICS,
    };
    if sealed.schema != want_schema {
        v.fail(
            owner_path,
            Rule::Sealed,
            format!("unknown sealed schema `{}`", sealed.schema),
        );
    }
    let file = build::sealed(owner_path, purpose);
    let Some(bytes) = ctx.ix.bytes(&file) else {
        v.fail(
            owner_path,
            Rule::Sealed,
            format!("its sealed payload {file} is missing"),
        );
        return;
    };
    if ctx.ix.sha(&file) != Some(&sealed.ciphertext_sha256) {
        v.fail(
            &file,
            Rule::Sealed,
            format!("does not match the ciphertext sha256 signed in {owner_path}"),
        );
    }
    match model::envelope::stanza_count(bytes) {
        Ok(n) if n == sealed.recipients.len() => {}
        Ok(n) => v.fail(
            &file,
            Rule::Sealed,
            format!(
                "is encrypted to {n} recipient(s), the manifest lists {}",
                sealed.recipients.len()
            ),
        ),
        Err(e) => v.fail(&file, Rule::Sealed, e.to_string()),
    }
    let listed: BTreeSet<(String, String)> = sealed
        .recipients
        .iter()
        .map(|r| (r.handle.clone(), r.age.clone()))
        .collect();
    if &listed != expected {
        let want: Vec<&str> = expected.iter().map(|(h, _)| h.as_str()).collect();
        let got: Vec<&str> = listed.iter().map(|(h, _)| h.as_str()).collect();
        let who = if purpose == "pseudonyms" {
            "the committee"
        } else {
            "the committee and the data owner"
        };
        v.fail(owner_path, Rule::Sealed, format!(
            "is sealed to [{}] but the policy at this commit names [{}] ({who}, with their current keys)",
            got.join(", "), want.join(", ")
        ));
    }
}

pub(super) fn check_dataset(ctx: &Ctx, path: &str, v: &mut Verdict) {
    let Some(Record::Dataset(d)) = ctx.ix.record(path) else {
        return;
    };
    let t = ctx.intro(path);
    let versions = ctx.ix.datasets.get(&d.id);
    check_chain(ctx, path, versions, d.version, None, v);
    if let Some(first) = versions.and_then(|m| m.values().next())
        && let Some(Record::Dataset(d1)) = ctx.ix.record(first)
        && d1.owner != d.owner
    {
        v.fail(
            path,
            Rule::Authority,
            format!("dataset belongs to {}", d1.owner),
        );
    }
    ctx.signed_by(path, &d.owner, v);
    let want_id = model::ids::dataset_id(&d.owner, &d.preparator.sha256, &d.content_sha256);
    if want_id != d.id {
        v.fail(
            path,
            Rule::Reference,
            "id is not derived from its owner, preparator and content hash (docs/format.md)",
        );
    }
    let Some(b) = bench_ok(ctx, path, &d.benchmark, t, v) else {
        return;
    };
    if b.data_preparator != d.preparator {
        v.fail(
            path,
            Rule::Reference,
            format!(
                "was prepared with {} v{}, but benchmark {} v{} uses {} v{}",
                d.preparator.name,
                d.preparator.version,
                b.name,
                b.version,
                b.data_preparator.name,
                b.data_preparator.version
            ),
        );
    }
    let expected = expected_recipients(ctx, b, &d.owner, t);
    check_sealed(ctx, path, "statistics", &d.statistics, &expected, v);
    if let Some(about) = &d.about {
        check_sealed(ctx, path, "about", about, &expected, v);
    }
}

pub(super) fn check_result(ctx: &Ctx, path: &str, v: &mut Verdict) {
    let Some(Record::Result(r)) = ctx.ix.record(path) else {
        return;
    };
    let t = ctx.intro(path);
    numbered(
        path,
        ctx.ix.results.get(&(
            r.benchmark.name.clone(),
            r.dataset.id.clone(),
            r.model.name.clone(),
        )),
        r.number,
        v,
    );
    ctx.signed_by(path, &r.owner, v);
    let Some(b) = bench_ok(ctx, path, &r.benchmark, t, v) else {
        return;
    };
    let dataset = match ctx.ix.resolves_dataset(&r.dataset) {
        Some(p) if ctx.is_valid(p) && ctx.intro(p) <= t => match ctx.ix.record(p) {
            Some(Record::Dataset(d)) => Some(d),
            _ => None,
        },
        _ => {
            v.fail(
                path,
                Rule::Reference,
                "its dataset does not resolve to a valid dataset",
            );
            None
        }
    };
    if let Some(d) = dataset
        && d.owner != r.owner
    {
        v.fail(
            path,
            Rule::Authority,
            format!("only the dataset's owner ({}) submits its results", d.owner),
        );
    }
    if cube_ok(ctx, path, "model", &r.model, t, v) {
        check_result_access(ctx, path, r, t, v);
    }
    if b.metrics != r.metrics || b.data_preparator != r.preparator {
        v.fail(
            path,
            Rule::Reference,
            format!(
                "its metrics or preparator cube differs from benchmark {} v{}",
                b.name, b.version
            ),
        );
    }
    if !model_active(ctx, b, &r.model, t) {
        v.fail(
            path,
            Rule::Approval,
            format!(
                "model {} v{} has no approved association with {}",
                r.model.name, r.model.version, b.name
            ),
        );
    }
    if !association_active(
        ctx,
        &b.name,
        &AssocKey::Dataset(r.dataset.id.clone()),
        None,
        t,
    ) {
        v.fail(
            path,
            Rule::Approval,
            format!(
                "dataset {} has no approved association with {}",
                &r.dataset.id[..12],
                b.name
            ),
        );
    }
    if let Some(earlier) = &r.supersedes {
        check_supersedes(ctx, path, r, earlier, t, v);
    }
    if let Some(sealed) = &r.sealed {
        check_sealed(
            ctx,
            path,
            "result",
            sealed,
            &expected_recipients(ctx, b, &r.owner, t),
            v,
        );
    }
}

/// A result may replace only an earlier result of the same model on the same dataset
/// of the same benchmark, by the same dataset owner: anything else would let a release drop
/// someone else's result, or one of another pairing.
fn check_supersedes(
    ctx: &Ctx,
    path: &str,
    r: &model::ResultManifest,
    earlier: &str,
    t: usize,
    v: &mut Verdict,
) {
    // Results are checked side by side (one stage), so the earlier one's own validity is not
    // known here; it is reported on its own when it fails.
    let same = match ctx.ix.record(earlier) {
        Some(Record::Result(e)) if ctx.intro(earlier) <= t => {
            e.benchmark.name == r.benchmark.name
                && e.dataset.id == r.dataset.id
                && e.model.name == r.model.name
                && e.owner == r.owner
                && e.number < r.number
        }
        _ => false,
    };
    if !same {
        v.fail(
            path,
            Rule::Reference,
            format!(
                "it supersedes {earlier}, which is not an earlier result of the same benchmark, dataset and model by {}",
                r.owner
            ),
        );
    }
}
