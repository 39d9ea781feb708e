//! The exact pseudonym rules of releases, on hand-made records.

use super::*;

const A: &str = "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1";
const B: &str = "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b";

/// A cross-product release of one model with the given cells (label, optional result).
fn release(cells: &[(&str, Option<&str>)], failure: Option<(&str, &str)>) -> Leaderboard {
    let mut text = String::from(
        "format = 1\nkind = \"leaderboard\"\nnumber = 1\ncreated = \"2026-12-06T00:00:00Z\"\nby = \"carol\"\n\
         [benchmark]\nname = \"heart\"\nversion = 1\nsha256 = \"ab9b0a56f51756f59da73b9ce06c5ae930b42f8bf6dbb612f740e6c6a770a53b\"\n\
         [policy]\nrelease = \"cross-product\"\ndataset_names = \"pseudonymised\"\nmin_datasets = 1\nprimary_metric = \"auc\"\nranking = \"higher-is-better\"\nweighting = \"equal\"\n\
         [[entries]]\nowner = \"carol\"\ndatasets = 2\nstatus = \"listed\"\n\
         [entries.model]\nname = \"m\"\nversion = 1\nsha256 = \"6e4086f9a904d26401ffb37e0fdc3f784ff0e95eb9d232a1d33e6dae6a0c1229\"\n",
    );
    for (label, result) in cells {
        text.push_str(&format!("[[entries.cells]]\ndataset = \"{label}\"\n"));
        if let Some(r) = result {
            text.push_str(&format!("result = \"{r}\"\n"));
        }
        text.push_str("[entries.cells.metrics]\nauc = 0.5\n");
    }
    if let Some((label, result)) = failure {
        text.push_str(&format!(
            "[[entries.failures]]\ndataset = \"{label}\"\nstage = \"infer\"\nreason = \"timeout\"\nresult = \"{result}\"\n"
        ));
    }
    toml::from_str(&text).unwrap()
}

fn path(id: &str) -> String {
    format!("results/heart/{id}/m/1.toml")
}

#[test]
fn unlinked_labels_are_exact() {
    let ok = release(&[("site-1", None), ("site-2", None)], None);
    assert!(unlinked_labels(&ok, 2).is_empty());
    for bad in [
        "site-01", "site-3", "site-0", "Site-1", "site-1 ", "ward-a", "site-",
    ] {
        let l = release(&[("site-1", None), (bad, None)], None);
        let problems = unlinked_labels(&l, 2);
        assert_eq!(problems.len(), 1, "{bad}: {problems:?}");
        assert!(problems[0].1.contains("site-1..site-2"), "{bad}");
    }
    let twice = release(&[("site-1", None), ("site-1", None)], None);
    assert!(unlinked_labels(&twice, 2)[0].1.contains("twice"));
    let p = path(A);
    let linked = release(&[("site-1", Some(p.as_str()))], None);
    assert!(unlinked_labels(&linked, 1)[0].1.contains("result manifest"));
    let labelled = release(&[("site-1", None)], Some(("site-2", p.as_str())));
    assert!(
        unlinked_labels(&labelled, 2)[0]
            .1
            .contains("failure receipt")
    );
}

#[test]
fn legacy_labels_follow_sorted_ids_exactly() {
    let (pa, pb) = (path(A), path(B));
    let dataset_of: BTreeMap<&str, &str> = [(pa.as_str(), A), (pb.as_str(), B)].into();
    // B sorts first: site-1.
    let ok = release(&[("site-1", Some(&pb)), ("site-2", Some(&pa))], None);
    assert!(legacy_labels(&ok, &dataset_of).is_empty());
    let swapped = release(&[("site-2", Some(&pb)), ("site-1", Some(&pa))], None);
    assert_eq!(legacy_labels(&swapped, &dataset_of).len(), 2);
    // `starts_with("site-")` used to accept these.
    let loose = release(&[("site-01", Some(&pb)), ("site-2x", Some(&pa))], None);
    assert_eq!(legacy_labels(&loose, &dataset_of).len(), 2);
    let receipt = release(&[("site-2", Some(&pa))], Some(("site-9", &pb)));
    let problems = legacy_labels(&receipt, &dataset_of);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("site-9"));
}
