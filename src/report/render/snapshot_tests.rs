//! Snapshot tests of every renderer on the fixture release, and the hostile-name checks.

use crate::model::{DatasetNaming as N, Leaderboard, Release as R};
use crate::report::history;
use crate::report::testdata::*;

use super::{csv, json, markdown, table};

fn render(
    f: fn(&Leaderboard, &mut dyn std::io::Write) -> Result<(), crate::report::ReportError>,
    lb: &Leaderboard,
) -> String {
    let mut buf = Vec::new();
    f(lb, &mut buf).unwrap();
    String::from_utf8(buf).unwrap()
}

fn cross() -> Leaderboard {
    fixture_release(&policy(R::CrossProduct, N::Pseudonymised, 2))
}

#[test]
fn table_cross_product() {
    insta::assert_snapshot!(render(table::write, &cross()));
}

#[test]
fn table_aggregate() {
    let lb = fixture_release(&policy(R::Aggregate, N::Pseudonymised, 1));
    insta::assert_snapshot!(render(table::write, &lb));
}

#[test]
fn markdown_cross_product() {
    insta::assert_snapshot!(render(markdown::write, &cross()));
}

#[test]
fn markdown_per_model_shown() {
    let lb = fixture_release(&policy(R::PerModel, N::Shown, 2));
    insta::assert_snapshot!(render(markdown::write, &lb));
}

#[test]
fn json_cross_product() {
    insta::assert_snapshot!(render(json::write, &cross()));
}

#[test]
fn csv_cross_product() {
    insta::assert_snapshot!(render(csv::write, &cross()));
}

#[test]
fn csv_aggregate() {
    let lb = fixture_release(&policy(R::Aggregate, N::Pseudonymised, 2));
    insta::assert_snapshot!(render(csv::write, &lb));
}

#[test]
fn history_between_releases() {
    let p = policy(R::PerModel, N::Pseudonymised, 2);
    let mut inputs = fixture_inputs(&p);
    // Release 1: model-slow and the reference have not run on hospital B yet.
    inputs.retain(|i| {
        !(i.dataset_id == HOSPITAL_B
            && (i.model.name == "model-slow" || i.model.name == "reference"))
    });
    let first = crate::report::testdata::release(&meta(1), &p, &inputs).unwrap();
    let second = crate::report::testdata::release(&meta(2), &p, &fixture_inputs(&p)).unwrap();
    // Release 3: model-weak withdrew, model-malformed got its second dataset.
    let mut third_inputs = fixture_inputs(&p);
    third_inputs.retain(|i| i.model.name != "model-weak");
    third_inputs.push(ok("model-malformed", HOSPITAL_B, 3, &p));
    let third = crate::report::testdata::release(&meta(3), &p, &third_inputs).unwrap();
    let h = history(&[third.clone(), first.clone(), second.clone()]).unwrap();
    let mut text = Vec::new();
    h.write_text(&mut text).unwrap();
    insta::assert_snapshot!("history_text", String::from_utf8(text).unwrap());
    let mut md = Vec::new();
    h.write_markdown(&mut md).unwrap();
    insta::assert_snapshot!("history_markdown", String::from_utf8(md).unwrap());
    insta::assert_snapshot!("history_json", serde_json::to_string_pretty(&h).unwrap());

    let mut other = second.clone();
    other.benchmark.name = "other".into();
    assert!(history(&[first, other]).is_err());
}

#[test]
fn hostile_text_is_neutralised_everywhere() {
    let mut lb = cross();
    let evil = "<script>alert(1)</script>";
    lb.entries[0].owner = format!("{evil}\x1b[31m|*x*|");
    lb.entries[0].cells[0].dataset = "=HYPERLINK(\"http://x\",\"y\"),z".into();
    let t = render(table::write, &lb);
    assert!(!t.contains('\x1b'), "{t}");
    let md = render(markdown::write, &lb);
    assert!(
        md.contains("\\<script\\>") && !md.contains("<script>"),
        "{md}"
    );
    assert!(md.contains("\\|\\*x\\*\\|"), "{md}");
    let c = render(csv::write, &lb);
    assert!(
        c.contains("\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\"),z\""),
        "{c}"
    );
    let j = render(json::write, &lb);
    let back: serde_json::Value = serde_json::from_str(&j).unwrap();
    assert_eq!(back["entries"][0]["owner"], format!("{evil}\x1b[31m|*x*|"));
}
