//! Tests of the aggregation rules in docs/aggregation.md.

use super::*;
use crate::model::{DatasetNaming as N, Ranking, Release as R};
use crate::report::testdata::*;
use crate::report::testdata::{aggregate, release};

fn entry<'a>(lb: &'a [Entry], model: &str) -> &'a Entry {
    lb.iter().find(|e| e.model.name == model).expect(model)
}

#[test]
fn means_sd_min_max_and_n() {
    let p = policy(R::PerModel, N::Pseudonymised, 1);
    let e = aggregate(&bench(), &p, &fixture_inputs(&p)).unwrap();
    let good = &entry(&e, "model-good").metrics["auc"];
    assert_eq!(good.mean, 0.792122);
    // sample SD of two values = |a - b| / sqrt(2)
    assert_eq!(
        good.sd,
        Some(stats::round((0.795184f64 - 0.78906).abs() / 2f64.sqrt()))
    );
    assert_eq!(
        (good.min, good.max, good.n),
        (Some(0.78906), Some(0.795184), 2)
    );
    assert_eq!(entry(&e, "model-good").datasets, 2);
    let one = &entry(&e, "model-malformed").metrics["auc"];
    assert_eq!((one.mean, one.sd, one.n), (0.78906, None, 1));
}

#[test]
fn size_weighting_uses_n_and_needs_it() {
    let mut p = policy(R::PerModel, N::Pseudonymised, 1);
    p.weighting = Weighting::Size;
    let e = aggregate(&bench(), &p, &fixture_inputs(&p)).unwrap();
    let auc = &entry(&e, "model-good").metrics["auc"];
    assert_eq!(
        auc.mean,
        stats::round((0.78906 * 240.0 + 0.795184 * 180.0) / 420.0)
    );
    assert_eq!(auc.mean, 0.791685);

    let mut inputs = fixture_inputs(&p);
    if let Outcome::Ok(m) = &mut inputs[2].outcome {
        m.remove("n");
    }
    let err = aggregate(&bench(), &p, &inputs).unwrap_err().to_string();
    assert!(
        err.contains(&inputs[2].path) && err.contains("`n`"),
        "{err}"
    );
}

#[test]
fn ties_share_a_rank_1224() {
    let p = policy(R::PerModel, N::Pseudonymised, 2);
    let e = aggregate(&bench(), &p, &fixture_inputs(&p)).unwrap();
    let order: Vec<(&str, Option<u32>)> =
        e.iter().map(|e| (e.model.name.as_str(), e.rank)).collect();
    assert_eq!(
        order,
        [
            ("model-good", Some(1)),
            ("model-slow", Some(1)),
            ("reference", Some(3)),
            ("model-weak", Some(4)),
            ("model-crash", None),
            ("model-malformed", None),
        ]
    );
    let mut low = p.clone();
    low.ranking = Ranking::LowerIsBetter;
    let e = aggregate(&bench(), &low, &fixture_inputs(&low)).unwrap();
    assert_eq!(e[0].model.name, "model-weak");
    assert_eq!(e[0].rank, Some(1));
}

#[test]
fn below_minimum_shows_no_values_at_all() {
    let p = policy(R::CrossProduct, N::Shown, 2);
    let e = aggregate(&bench(), &p, &fixture_inputs(&p)).unwrap();
    let m = entry(&e, "model-malformed");
    assert_eq!(m.status, EntryStatus::BelowMinimum);
    assert_eq!((m.rank, m.datasets), (None, 1));
    assert!(m.metrics.is_empty() && m.cells.is_empty());
    let toml = toml::to_string(&release_record(&meta(1), &p, e, vec![], None, vec![])).unwrap();
    let block = toml
        .split("[[entries]]")
        .find(|b| b.contains("model-malformed"))
        .unwrap();
    assert!(
        !block.contains("0.78906") && !block.contains("mean"),
        "{block}"
    );
}

#[test]
fn a_metric_few_datasets_report_is_held_back() {
    let p = policy(R::PerModel, N::Pseudonymised, 2);
    let mut inputs = fixture_inputs(&p);
    if let Outcome::Ok(m) = &mut inputs[0].outcome {
        m.insert("brier".into(), 0.2);
    }
    let e = aggregate(&bench(), &p, &inputs).unwrap();
    assert!(
        !entry(&e, &inputs[0].model.name)
            .metrics
            .contains_key("brier")
    );
}

#[test]
fn pseudonyms_follow_the_mapping_across_models() {
    let p = policy(R::CrossProduct, N::Pseudonymised, 1);
    // The test mapping puts HOSPITAL_B (sorted first) at site-1; real ones are random.
    let e = aggregate(&bench(), &p, &fixture_inputs(&p)).unwrap();
    for entry in e.iter().filter(|e| !e.cells.is_empty()) {
        for c in &entry.cells {
            let hospital = if c.dataset == "site-1" {
                HOSPITAL_B
            } else {
                HOSPITAL_A
            };
            assert_eq!(
                c.metrics["auc"],
                fixture_metrics(&entry.model.name, hospital)["auc"],
                "{} {}",
                entry.model.name,
                c.dataset
            );
            assert!(c.result.is_none(), "no manifest path next to a pseudonym");
        }
    }
    assert_eq!(entry(&e, "model-good").cells[0].dataset, "site-1");
    let shown = policy(R::CrossProduct, N::Shown, 1);
    let e = aggregate(&bench(), &shown, &fixture_inputs(&shown)).unwrap();
    let labels: Vec<&str> = entry(&e, "model-good")
        .cells
        .iter()
        .map(|c| c.dataset.as_str())
        .collect();
    assert_eq!(labels, ["hospital-a", "hospital-b"]);
}

#[test]
fn release_levels_control_visibility() {
    let agg = policy(R::Aggregate, N::Pseudonymised, 1);
    let e = aggregate(&bench(), &agg, &fixture_inputs(&agg)).unwrap();
    let good = entry(&e, "model-good");
    assert_eq!(good.metrics.keys().collect::<Vec<_>>(), ["auc"]);
    assert!(
        good.totals.is_empty(),
        "aggregate shows the primary metric only"
    );
    let auc = &good.metrics["auc"];
    assert_eq!((auc.sd, auc.min, auc.max), (None, None, None));
    assert!(good.cells.is_empty());

    let per = policy(R::PerModel, N::Pseudonymised, 1);
    let e = aggregate(&bench(), &per, &fixture_inputs(&per)).unwrap();
    let good = entry(&e, "model-good");
    // `n` counts cases: a total, not a summary.
    assert_eq!(good.metrics.len(), 4);
    assert!(!good.metrics.contains_key("n"));
    assert_eq!(good.totals["n"], 420.0);
    assert!(good.cells.is_empty());

    let cross = policy(R::CrossProduct, N::Pseudonymised, 1);
    let e = aggregate(&bench(), &cross, &fixture_inputs(&cross)).unwrap();
    let good = entry(&e, "model-good");
    assert_eq!(good.metrics.len(), 4);
    assert_eq!(good.cells.len(), 2);
    // Per dataset, the count is a plain value.
    assert_eq!(good.cells[0].metrics["n"], 180.0);
    assert_eq!(good.cells[0].metrics["auc"], 0.795184);
}

#[test]
fn failure_receipts_are_notes_not_datasets() {
    let p = policy(R::PerModel, N::Pseudonymised, 1);
    let mut inputs = fixture_inputs(&p);
    // model-weak crashed on hospital A in a newer run: the crash replaces the old result.
    inputs.push(crash("model-weak", HOSPITAL_A, 7, &p));
    let e = aggregate(&bench(), &p, &inputs).unwrap();
    let crash = entry(&e, "model-crash");
    assert_eq!(
        (crash.datasets, crash.status),
        (0, EntryStatus::BelowMinimum)
    );
    assert_eq!(crash.failures.len(), 2);
    // Pseudonymised: receipts carry no label (they are public on main), only what failed.
    assert!(
        crash
            .failures
            .iter()
            .all(|f| f.dataset.is_none() && f.result.is_none())
    );
    assert_eq!(crash.failures[0].stage, "infer");
    assert_eq!(crash.failures[0].exit_code, Some(3));
    let weak = entry(&e, "model-weak");
    assert_eq!(weak.datasets, 1);
    assert_eq!(weak.failures.len(), 1);
    assert_eq!(weak.metrics["auc"].mean, 0.582207);
}

#[test]
fn newest_result_counts_and_exact_duplicates_collapse() {
    let p = policy(R::CrossProduct, N::Shown, 1);
    let mut inputs = fixture_inputs(&p);
    let mut newer = ok("model-weak", HOSPITAL_B, 9, &p);
    newer.outcome = Outcome::Ok(metrics(&[("auc", 0.9), ("n", 180.0)]));
    inputs.push(newer);
    inputs.push(inputs[0].clone());
    let lb = release(&meta(1), &p, &inputs).unwrap();
    let weak = entry(&lb.entries, "model-weak");
    assert_eq!(weak.cells[1].metrics["auc"], 0.9);
    assert!(
        weak.cells[1]
            .result
            .as_deref()
            .unwrap()
            .ends_with("/9.toml")
    );
    assert!(
        lb.results
            .iter()
            .any(|c| c.path.ends_with("model-weak/9.toml"))
    );
    assert!(
        !lb.results
            .iter()
            .any(|c| c.path.contains(HOSPITAL_B) && c.path.ends_with("model-weak/2.toml"))
    );

    let mut clash = inputs[0].clone();
    clash.sha256 = Sha256::of(b"other bytes");
    inputs.push(clash);
    let err = aggregate(&bench(), &p, &inputs).unwrap_err().to_string();
    assert!(err.contains("both result 1"), "{err}");
}

#[test]
fn narrower_agreed_policy_is_refused() {
    let release_p = policy(R::CrossProduct, N::Shown, 1);
    for (agreed, word) in [
        (policy(R::PerModel, N::Shown, 1), "cross-product"),
        (policy(R::CrossProduct, N::Pseudonymised, 1), "pseudonyms"),
        (policy(R::CrossProduct, N::Shown, 2), "minimum of 2"),
    ] {
        let mut inputs = fixture_inputs(&release_p);
        inputs[3].agreed_policy = agreed;
        let err = aggregate(&bench(), &release_p, &inputs)
            .unwrap_err()
            .to_string();
        assert!(err.contains(&inputs[3].path) && err.contains(word), "{err}");
    }
    // A wider agreed policy is fine: the release shows less than agreed.
    let mut inputs = fixture_inputs(&release_p);
    let narrow_release = policy(R::Aggregate, N::Pseudonymised, 2);
    inputs[3].agreed_policy = release_p.clone();
    aggregate(&bench(), &narrow_release, &inputs).unwrap();
    // An older, superseded result under a narrower policy does not count.
    let old = ok(
        "model-good",
        HOSPITAL_A,
        0,
        &policy(R::Aggregate, N::Pseudonymised, 5),
    );
    inputs.push(old);
    aggregate(&bench(), &release_p, &inputs).unwrap();
}

#[test]
fn missing_primary_and_bad_paths_name_the_result() {
    let p = policy(R::PerModel, N::Shown, 1);
    let mut inputs = fixture_inputs(&p);
    inputs[1].outcome = Outcome::Ok(metrics(&[("accuracy", 0.5)]));
    let err = aggregate(&bench(), &p, &inputs).unwrap_err().to_string();
    assert!(
        err.contains(&inputs[1].path) && err.contains("`auc`"),
        "{err}"
    );
    let mut inputs = fixture_inputs(&p);
    inputs[1].path = "results/cvd-risk/x/model-good/latest.toml".into();
    let err = aggregate(&bench(), &p, &inputs).unwrap_err().to_string();
    assert!(err.contains("latest.toml"), "{err}");
}

#[test]
fn same_inputs_in_any_order_give_identical_bytes() {
    for p in [
        policy(R::CrossProduct, N::Pseudonymised, 2),
        policy(R::PerModel, N::Shown, 1),
        policy(R::Aggregate, N::Pseudonymised, 1),
    ] {
        let inputs = fixture_inputs(&p);
        let a = toml::to_string(&release(&meta(1), &p, &inputs).unwrap()).unwrap();
        let mut reversed = inputs.clone();
        reversed.reverse();
        let b = toml::to_string(&release(&meta(1), &p, &reversed).unwrap()).unwrap();
        let mut rotated = inputs.clone();
        rotated.rotate_left(4);
        let c = toml::to_string(&release(&meta(1), &p, &rotated).unwrap()).unwrap();
        assert_eq!(a, b);
        assert_eq!(a, c);
    }
}

#[test]
fn the_record_parses_as_a_registry_record() {
    let p = policy(R::CrossProduct, N::Pseudonymised, 2);
    let lb = fixture_release(&p);
    let path = crate::model::build::leaderboard("cvd-risk", 1);
    let rp = crate::model::classify(&path).unwrap();
    let bytes = crate::model::to_bytes(&lb);
    match crate::model::parse_record(&path, &rp, &bytes).unwrap() {
        crate::model::Record::Leaderboard(back) => assert_eq!(back, lb),
        other => panic!("parsed as {:?}", other.kind()),
    }
    // Pseudonymised: the covered manifests are a sorted set of digests, no paths.
    assert!(lb.results.is_empty());
    let mut sorted = lb.inputs.clone();
    sorted.sort();
    assert_eq!(lb.inputs, sorted);
    assert_eq!(lb.inputs.len(), 11);
    assert_eq!(lb.layout, Some(crate::model::LEADERBOARD_LAYOUT));
    // Shown names: paths, as before.
    let shown = fixture_release(&policy(R::CrossProduct, N::Shown, 2));
    let paths: Vec<&str> = shown.results.iter().map(|c| c.path.as_str()).collect();
    let mut sorted = paths.clone();
    sorted.sort();
    assert_eq!(paths, sorted);
    assert_eq!(shown.results.len(), 11);
    assert!(shown.inputs.is_empty() && shown.pseudonyms.is_none());
}

#[test]
fn pseudonymised_releases_follow_the_mapping_and_name_no_dataset() {
    use crate::model::pseudonyms::{Pseudonyms, label};
    let p = policy(R::CrossProduct, N::Pseudonymised, 1);
    let mut inputs = fixture_inputs(&p);
    inputs.push(crash("model-weak", HOSPITAL_A, 7, &p));
    // The reverse of sorted order: HOSPITAL_A is site-1.
    let map = Pseudonyms {
        nonce: "1".repeat(64),
        sites: [
            (label(1), HOSPITAL_A.to_string()),
            (label(2), HOSPITAL_B.to_string()),
        ]
        .into_iter()
        .collect(),
    };
    let lb = super::release(
        &meta(1),
        &p,
        &inputs,
        Some(super::Unlinking {
            mapping: &map,
            sealed: sealed_stub(&map),
        }),
        vec![],
    )
    .unwrap();
    let good = lb
        .entries
        .iter()
        .find(|e| e.model.name == "model-good")
        .unwrap();
    let labels: Vec<&str> = good.cells.iter().map(|c| c.dataset.as_str()).collect();
    assert_eq!(labels, ["site-1", "site-2"], "shown in pseudonym order");
    assert_eq!(
        good.cells[0].metrics["auc"],
        fixture_metrics("model-good", HOSPITAL_A)["auc"]
    );
    let text = String::from_utf8(crate::model::to_bytes(&lb)).unwrap();
    for id in [HOSPITAL_A, HOSPITAL_B] {
        assert!(!text.contains(id), "the record names {id}:\n{text}");
    }
    assert!(!text.contains("results/"), "{text}");
    // The mapping must cover exactly the datasets used, and is required.
    let mut short = map.clone();
    short.sites.remove("site-2");
    let err = super::aggregate(&bench(), &p, &inputs, Some(&short)).unwrap_err();
    assert!(matches!(err, ReportError::Pseudonyms(_)), "{err}");
    let err = super::aggregate(&bench(), &p, &inputs, None).unwrap_err();
    assert!(matches!(err, ReportError::Pseudonyms(_)), "{err}");
    let shown = policy(R::CrossProduct, N::Shown, 1);
    let err = super::aggregate(&bench(), &shown, &fixture_inputs(&shown), Some(&map)).unwrap_err();
    assert!(matches!(err, ReportError::Pseudonyms(_)), "{err}");
}

#[test]
fn shown_names_that_collide_get_the_id() {
    let p = policy(R::CrossProduct, N::Shown, 1);
    let mut inputs = fixture_inputs(&p);
    for i in &mut inputs {
        i.dataset_name = "general-hospital".into();
    }
    let e = aggregate(&bench(), &p, &inputs).unwrap();
    let labels: Vec<&str> = entry(&e, "model-good")
        .cells
        .iter()
        .map(|c| c.dataset.as_str())
        .collect();
    assert_eq!(
        labels,
        ["general-hospital (0b0b0b0b)", "general-hospital (a1a1a1a1)"]
    );
}

#[test]
fn size_metrics_are_totals_from_layout_3_and_summaries_before() {
    let mut p = policy(R::PerModel, N::Shown, 1);
    let inputs: Vec<ResultInput> = fixture_inputs(&p)
        .into_iter()
        .map(|mut i| {
            if let Outcome::Ok(m) = &mut i.outcome {
                m.insert("cases".into(), 7.0);
            }
            i
        })
        .collect();
    // Layout 2 (how older releases were made): `n` is averaged like any score.
    let old = aggregate_in(2, &bench(), &p, &inputs, None).unwrap();
    let good = entry(&old, "model-good");
    assert_eq!(good.metrics["n"].mean, 210.0);
    assert!(good.totals.is_empty());
    // Layout 3: `n` always, and what the benchmark declares, are totals, never summaries.
    p.size_metrics = vec!["cases".into()];
    let new = aggregate_in(LEADERBOARD_LAYOUT, &bench(), &p, &inputs, None).unwrap();
    let good = entry(&new, "model-good");
    assert_eq!(
        good.totals,
        BTreeMap::from([("cases".to_string(), 14.0), ("n".to_string(), 420.0)])
    );
    assert!(!good.metrics.contains_key("n") && !good.metrics.contains_key("cases"));
    // Not listed: no totals either (a single site's count could be read off).
    let crash = entry(&new, "model-crash");
    assert!(crash.totals.is_empty() && crash.metrics.is_empty());
    // The same ranks as before: a total ranks nothing.
    let ranks = |e: &[Entry]| e.iter().map(|e| e.rank).collect::<Vec<_>>();
    assert_eq!(ranks(&old), ranks(&new));
}

#[test]
fn a_size_metric_cannot_be_the_primary_metric() {
    let mut p = policy(R::PerModel, N::Shown, 1);
    p.primary_metric = "n".into();
    let err =
        aggregate_in(LEADERBOARD_LAYOUT, &bench(), &p, &fixture_inputs(&p), None).unwrap_err();
    assert!(matches!(err, ReportError::PrimaryIsSize { .. }), "{err}");
}

#[test]
fn every_result_without_the_primary_metric_is_named() {
    let p = policy(R::PerModel, N::Shown, 1);
    let mut inputs = fixture_inputs(&p);
    let mut lacking = Vec::new();
    for i in inputs.iter_mut().filter(|i| i.model.name == "model-good") {
        if let Outcome::Ok(m) = &mut i.outcome {
            m.remove("auc");
            lacking.push(i.path.clone());
        }
    }
    lacking.sort();
    assert_eq!(lacking.len(), 2);
    match aggregate(&bench(), &p, &inputs).unwrap_err() {
        ReportError::MissingPrimary {
            paths,
            metric,
            reported,
        } => {
            assert_eq!(paths, lacking);
            assert_eq!(metric, "auc");
            assert!(reported.contains(&"accuracy".to_string()), "{reported:?}");
        }
        other => panic!("{other}"),
    }
}
