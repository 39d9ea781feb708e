//! The static leaderboard site checked in a real headless Chromium over the DevTools protocol:
//! the page loads without console errors or exceptions, shows every model, draws every chart
//! with bars, re-sorts its table by mouse and keyboard, and fetches nothing but itself. Keeps
//! the site and screenshots in `tests/artifacts/` (gitignored) for a person to look at.
//!
//! Skipped, with a message, only when no Chromium binary exists and CI is not `true` (CI
//! installs Debian's `chromium`; with CI=true a missing browser fails the test);
//! `COHORT_CHROMIUM` names a binary explicitly.

mod browser;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use cohort::model::{
    Asset, BenchRef, Benchmark, CompatReport, CubeRef, DatasetNaming, Failure, Image, ImageSource,
    Leaderboard, Mlcube, Policy, Ranking, Release, Sealed, SealedFor, Sha256, Weighting,
    pseudonyms::{Pseudonyms, label},
};
use cohort::report::{
    BenchmarkPage, Outcome, ReleaseInfo, ReleaseMeta, ResultInput, SiteInput, Unlinking, write_site,
};
use serde_json::json;

use browser::{Cdp, click, find_chromium, launch, press_enter, rows, screenshot};

// ---------------------------------------------------------------------------------------------
// The fixture benchmark: four models on two hospitals, cross-product, pseudonymised names.

const HOSP_A: &str = "5e2a8f0c41d7b6a93e1f0c2d4b6a8e0f1c3d5b7a9e1f3c5d7b9a1e3f5c7d9b1a";
const HOSP_B: &str = "2c4e6a8b0d1f3e5c7a9b1d3f5e7c9a1b3d5f7e9c1a3b5d7f9e1c3a5b7d9f1e3c";

fn cube(name: &str) -> CubeRef {
    CubeRef {
        name: name.into(),
        version: 1,
        sha256: Sha256::of(format!("mlcubes/{name}/v1/cube.toml").as_bytes()),
    }
}

fn policy() -> Policy {
    Policy {
        release: Release::CrossProduct,
        dataset_names: DatasetNaming::Pseudonymised,
        min_datasets: 2,
        primary_metric: "auc".into(),
        ranking: Ranking::HigherIsBetter,
        weighting: Weighting::Equal,
        size_metrics: Vec::new(),
    }
}

fn metrics(v: [f64; 5]) -> BTreeMap<String, f64> {
    ["accuracy", "auc", "n", "sensitivity", "specificity"]
        .iter()
        .zip(v)
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}

fn result(model: &str, dataset: &str, number: u32, outcome: Outcome) -> ResultInput {
    let path = format!("results/cvd-risk/{dataset}/{model}/{number}.toml");
    ResultInput {
        sha256: Sha256::of(path.as_bytes()),
        path,
        model: cube(model),
        model_owner: match model {
            "reference" => "okafor".into(),
            "model-good" => "northlab".into(),
            "model-weak" => "baseline-co".into(),
            _ => "quickml".into(),
        },
        dataset_id: dataset.into(),
        dataset_name: if dataset == HOSP_A {
            "st-mary-cardiology"
        } else {
            "city-general-2024"
        }
        .into(),
        dataset_owner: if dataset == HOSP_A {
            "st-mary"
        } else {
            "city-general"
        }
        .into(),
        outcome,
        agreed_policy: policy(),
        is_reference: model == "reference",
    }
}

/// The fixture cubes' real numbers (fixtures/README.md), a reference model, and model-slow,
/// which timed out at one hospital and so stays below the minimum of two datasets.
fn inputs() -> Vec<ResultInput> {
    vec![
        result(
            "model-good",
            HOSP_A,
            1,
            Outcome::Ok(metrics([0.7375, 0.78906, 240.0, 0.644444, 0.758974])),
        ),
        result(
            "model-good",
            HOSP_B,
            2,
            Outcome::Ok(metrics([0.638889, 0.795184, 180.0, 0.8, 0.547826])),
        ),
        result(
            "model-weak",
            HOSP_A,
            1,
            Outcome::Ok(metrics([0.658333, 0.57641, 240.0, 0.333333, 0.733333])),
        ),
        result(
            "model-weak",
            HOSP_B,
            2,
            Outcome::Ok(metrics([0.538889, 0.582207, 180.0, 0.369231, 0.634783])),
        ),
        result(
            "reference",
            HOSP_A,
            1,
            Outcome::Ok(metrics([0.7, 0.70125, 240.0, 0.5, 0.75])),
        ),
        result(
            "reference",
            HOSP_B,
            2,
            Outcome::Ok(metrics([0.6, 0.69875, 180.0, 0.6, 0.6])),
        ),
        result(
            "model-slow",
            HOSP_A,
            1,
            Outcome::Ok(metrics([0.7375, 0.78906, 240.0, 0.644444, 0.758974])),
        ),
        result(
            "model-slow",
            HOSP_B,
            2,
            Outcome::Failed(Failure {
                stage: "infer".into(),
                exit_code: None,
                duration_ms: 600_000,
                reason: "timeout".into(),
            }),
        ),
    ]
}

fn mlcube(name: &str, owner: &str, description: &str) -> Mlcube {
    Mlcube {
        format: 1,
        kind: "mlcube".into(),
        name: name.into(),
        version: 1,
        owner: owner.into(),
        created: "2026-11-20T09:00:00Z".into(),
        description: Some(description.into()),
        mlcube_yaml: Some(Sha256::of(format!("{name}/mlcube.yaml").as_bytes())),
        container_config_yaml: None,
        parameters_yaml: Some(Sha256::of(format!("{name}/parameters.yaml").as_bytes())),
        additional_files: None,
        image: Image {
            id: format!("sha256:{}", Sha256::of(format!("{name} image").as_bytes())),
            source: ImageSource::Local,
            reference: None,
            tarball: None,
            private: None,
        },
    }
}

fn site() -> SiteInput {
    let bench = BenchRef {
        name: "cvd-risk".into(),
        version: 1,
        sha256: Sha256::of(b"benchmarks/cvd-risk/v1.toml"),
    };
    let meta = ReleaseMeta {
        bench: bench.clone(),
        number: 1,
        created: "2026-11-27T18:00:00Z".into(),
        by: "okafor".into(),
    };
    // A fixed mapping keeps the screenshots stable (real releases draw a random one).
    let ids = cohort::report::datasets_used(&inputs()).expect("fixture inputs");
    let mapping = Pseudonyms {
        nonce: "0".repeat(64),
        sites: ids
            .into_iter()
            .enumerate()
            .map(|(i, id)| (label(i as u32 + 1), id))
            .collect(),
    };
    let sealed = Sealed {
        file: "1.pseudonyms.age".into(),
        schema: "pseudonyms/1".into(),
        ciphertext_sha256: Sha256::of(b"sealed mapping"),
        plaintext_sha256: mapping.digest(),
        recipients: vec![SealedFor {
            handle: "okafor".into(),
            age: "age1hja26cvlasc4pjhx5pzt4u82v24cvz7lq75jm907d3evwuwp4p2qmv2hc2".into(),
        }],
    };
    let unlinking = Unlinking {
        mapping: &mapping,
        sealed,
    };
    let record: Leaderboard =
        cohort::report::release(&meta, &policy(), &inputs(), Some(unlinking), vec![])
            .expect("fixture aggregates");
    let benchmark = Benchmark {
        format: 1,
        kind: "benchmark".into(),
        name: "cvd-risk".into(),
        version: 1,
        owner: "okafor".into(),
        created: "2026-11-19T09:00:00Z".into(),
        description: Some(
            "Predicting 10-year risk of a cardiovascular event (heart attack or stroke) from \
             routine patient records: age, sex, blood pressure, cholesterol, smoking, diabetes \
             and BMI. AUC measures how well a model ranks patients who went on to have an \
             event above those who did not (0.5 is chance, 1 is perfect)."
                .into(),
        ),
        previous: None,
        committee: vec!["okafor".into(), "lindqvist".into()],
        release_threshold: 1,
        data_preparator: cube("prep"),
        reference_model: cube("reference"),
        metrics: cube("metrics"),
        demo_dataset: Asset::at_url("https://example.org/cvd-demo.tar.gz", Sha256::of(b"demo")),
        policy: policy(),
        report: CompatReport {
            data: format!("demo:{}", Sha256::of(b"demo")),
            ok: true,
            cohort_version: cohort::VERSION.into(),
            steps: vec![],
            metrics: None,
        },
    };
    let mut cubes = BTreeMap::new();
    for (name, owner, about) in [
        (
            "model-good",
            "northlab",
            "Logistic model on all eight risk factors.",
        ),
        (
            "model-weak",
            "baseline-co",
            "Single-feature baseline (age only).",
        ),
        (
            "model-slow",
            "quickml",
            "Gradient-boosted trees; slow at inference.",
        ),
        (
            "reference",
            "okafor",
            "The committee's reference: a published risk score.",
        ),
        (
            "prep",
            "okafor",
            "Maps each hospital's export to one table format.",
        ),
        (
            "metrics",
            "okafor",
            "Accuracy, AUC, sensitivity and specificity at risk 0.2.",
        ),
    ] {
        cubes.insert(cube(name), mlcube(name, owner, about));
    }
    let bytes = cohort::model::to_bytes(&record);
    SiteInput {
        registry_name: "Cardiology AI benchmarks".into(),
        registry_id: Sha256::of(b"root/v1.toml").to_string(),
        commit: "4f1c2e9a7b3d5f60812c4e6a8b0d2f4163859a7c".into(),
        clone_url: Some("https://git.example.org/cardio/registry.git".into()),
        benchmarks: vec![BenchmarkPage {
            benchmark,
            releases: vec![ReleaseInfo {
                path: "leaderboards/cvd-risk/1.toml".into(),
                sha256: Sha256::of(&bytes),
                record,
                signers: vec![("okafor".into(), "3A9F27C1D04E8B65".into())],
            }],
            cubes,
        }],
    }
}

// ---------------------------------------------------------------------------------------------

#[test]
fn the_site_works_in_a_real_browser() {
    let Some(binary) = find_chromium() else {
        // CI must never pass by skipping.
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("CI=true but no chromium binary was found: this test needs a browser");
        }
        eprintln!(
            "SKIPPED site_browser: no chromium binary on PATH (apt-get install chromium, or set COHORT_CHROMIUM)"
        );
        return;
    };
    let started = Instant::now();
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/artifacts");
    let out = artifacts.join("site");
    let _ = std::fs::remove_dir_all(&out);
    let files = write_site(&site(), &out).expect("write the site");
    assert!(files.iter().any(|f| f.ends_with("cvd-risk/index.html")));
    let page = out
        .join("cvd-risk/index.html")
        .canonicalize()
        .expect("page exists");
    let page_url = format!("file://{}", page.display());

    let (_browser, ws_url) = launch(&binary);
    let mut cdp = Cdp::connect(&ws_url);
    let targets = cdp.call(None, "Target.getTargets", json!({}));
    let target = targets["targetInfos"]
        .as_array()
        .expect("targets")
        .iter()
        .find(|t| t["type"] == json!("page"))
        .expect("a page target")["targetId"]
        .clone();
    let attached = cdp.call(
        None,
        "Target.attachToTarget",
        json!({"targetId": target, "flatten": true}),
    );
    let sid = attached["sessionId"].as_str().expect("session").to_string();
    let s = sid.as_str();
    for domain in ["Page", "Runtime", "Log", "Network"] {
        cdp.call(Some(s), &format!("{domain}.enable"), json!({}));
    }
    cdp.call(
        Some(s),
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": false}),
    );
    let mark = cdp.events.len();
    cdp.call(Some(s), "Page.navigate", json!({"url": page_url}));
    cdp.wait_event("Page.loadEventFired", mark);
    cdp.drain(Duration::from_millis(500));

    // Every model is in the table, in rank order.
    let before = rows(&mut cdp, s);
    assert_eq!(
        before,
        ["model-good", "reference", "model-weak", "model-slow"]
    );
    let title = cdp.eval(s, "document.querySelector('h1').textContent");
    assert!(
        title.as_str().unwrap_or("").starts_with("cvd-risk"),
        "{title}"
    );

    // Every chart is laid out with a visible size and has bars.
    let charts = cdp.eval(
        s,
        "Array.from(document.querySelectorAll('svg.chart')).map(c => { const r = c.getBoundingClientRect(); \
         const bars = Array.from(c.querySelectorAll('rect.bar')); return {w: r.width, h: r.height, \
         bars: bars.length, drawn: bars.filter(b => b.getBoundingClientRect().width > 0).length, \
         dots: c.querySelectorAll('circle.dot').length}; })",
    );
    let charts = charts.as_array().expect("charts");
    // `n` counts cases: a total in the table, never a chart.
    assert_eq!(charts.len(), 4, "one chart per score: {charts:?}");
    for c in charts {
        assert!(c["w"].as_f64().unwrap_or(0.0) > 100.0, "{c}");
        assert!(c["h"].as_f64().unwrap_or(0.0) > 50.0, "{c}");
        assert_eq!(c["bars"], json!(3), "three ranked models: {c}");
        assert_eq!(c["drawn"], json!(3), "{c}");
        assert_eq!(c["dots"], json!(6), "a dot per dataset: {c}");
    }

    // Sorting by mouse: the Model column, alphabetically.
    click(&mut cdp, s, "#board thead th:nth-child(2) button");
    let by_name = rows(&mut cdp, s);
    assert_ne!(by_name, before);
    assert_eq!(
        by_name,
        ["model-good", "model-slow", "model-weak", "reference"]
    );
    let sort = cdp.eval(
        s,
        "document.querySelector('#board thead th:nth-child(2)').getAttribute('aria-sort')",
    );
    assert_eq!(sort, json!("ascending"));
    // Sorting by keyboard: auc, best first, then worst first; the unranked model stays last.
    // The primary metric is the third column, next to the model.
    press_enter(&mut cdp, s, "#board thead th:nth-child(3) button");
    assert_eq!(
        rows(&mut cdp, s),
        ["model-good", "reference", "model-weak", "model-slow"]
    );
    press_enter(&mut cdp, s, "#board thead th:nth-child(3) button");
    assert_eq!(
        rows(&mut cdp, s),
        ["model-weak", "reference", "model-good", "model-slow"]
    );
    let sorts = cdp.eval(
        s,
        "Array.from(document.querySelectorAll('#board thead th')).map(t => t.getAttribute('aria-sort'))",
    );
    assert_eq!(sorts[2], json!("ascending"));
    assert!(
        sorts
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| !v.is_null())
            .count()
            == 1,
        "{sorts}"
    );

    // Model cards (with the failure receipt), provenance and verification are there.
    let text = cdp.eval(s, "document.body.innerText");
    let text = text.as_str().unwrap_or("");
    for must in [
        "timeout",
        "site-1",
        "not ranked",
        "How to verify this page",
        "cohort registry clone https://git.example.org/cardio/registry.git",
        "sha256sum leaderboards/cvd-risk/1.toml",
        "cohort leaderboard cvd-risk",
        "n (total)",
    ] {
        assert!(text.contains(must), "page text lacks {must:?}");
    }
    // The collapsed provenance opens and lists every covered manifest.
    cdp.eval(
        s,
        "document.querySelectorAll('#provenance ~ details').forEach(d => d.open = true)",
    );
    let listed = cdp.eval(
        s,
        "document.querySelectorAll('#provenance ~ details tbody tr').length",
    );
    assert_eq!(listed, json!(8));

    // Back to rank order for the pictures.
    click(&mut cdp, s, "#board thead th:nth-child(1) button");
    assert_eq!(
        rows(&mut cdp, s),
        ["model-good", "reference", "model-weak", "model-slow"]
    );
    cdp.eval(s, "document.querySelectorAll('#provenance ~ details').forEach(d => d.open = false); window.scrollTo(0, 0)");
    cdp.drain(Duration::from_millis(200));
    std::fs::create_dir_all(&artifacts).expect("artifacts dir");
    screenshot(
        &mut cdp,
        s,
        &artifacts.join("site-screenshot-top.png"),
        None,
    );
    screenshot(
        &mut cdp,
        s,
        &artifacts.join("site-screenshot.png"),
        Some("body"),
    );
    for section in ["charts", "models", "verify"] {
        let file = format!("site-screenshot-{section}.png");
        screenshot(
            &mut cdp,
            s,
            &artifacts.join(file),
            Some(&format!("#{section}")),
        );
    }

    // On a phone, the first screen shows rank, model and the primary metric of the leader.
    cdp.call(
        Some(s),
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 375, "height": 667, "deviceScaleFactor": 2, "mobile": true}),
    );
    cdp.eval(s, "window.scrollTo(0, 0)");
    cdp.drain(Duration::from_millis(300));
    let first = cdp.eval(
        s,
        "Array.from(document.querySelectorAll('#board tbody tr:first-child td')).slice(0, 3)\
         .map(td => { const r = td.getBoundingClientRect(); return {text: td.textContent, \
         right: r.right, bottom: r.bottom}; })",
    );
    let first = first.as_array().expect("cells");
    assert_eq!(first.len(), 3, "{first:?}");
    assert!(
        first[1]["text"]
            .as_str()
            .unwrap_or("")
            .contains("model-good"),
        "{first:?}"
    );
    for c in first {
        assert!(
            c["right"].as_f64().unwrap_or(1e9) <= 375.0,
            "off screen: {c}"
        );
        assert!(
            c["bottom"].as_f64().unwrap_or(1e9) <= 667.0,
            "below the fold: {c}"
        );
    }
    screenshot(
        &mut cdp,
        s,
        &artifacts.join("site-screenshot-phone.png"),
        None,
    );
    cdp.call(
        Some(s),
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": false}),
    );

    // The index page links to the benchmark and loads cleanly too.
    let index_url = format!(
        "file://{}",
        out.join("index.html")
            .canonicalize()
            .expect("index")
            .display()
    );
    let mark = cdp.events.len();
    cdp.call(Some(s), "Page.navigate", json!({"url": index_url}));
    cdp.wait_event("Page.loadEventFired", mark);
    let link = cdp.eval(s, "document.querySelector('main a').getAttribute('href')");
    assert_eq!(link, json!("cvd-risk/index.html"));
    screenshot(
        &mut cdp,
        s,
        &artifacts.join("site-screenshot-index.png"),
        None,
    );
    cdp.drain(Duration::from_millis(300));

    // No console errors, no exceptions, no CSP violations, no requests but the pages.
    let mut problems = Vec::new();
    let mut requests = Vec::new();
    for e in &cdp.events {
        let p = &e["params"];
        match e["method"].as_str().unwrap_or("") {
            "Runtime.exceptionThrown" => problems.push(format!("exception: {p}")),
            "Runtime.consoleAPICalled"
                if matches!(p["type"].as_str(), Some("error" | "assert" | "warning")) =>
            {
                problems.push(format!("console {}: {}", p["type"], p["args"]))
            }
            "Log.entryAdded"
                if matches!(p["entry"]["level"].as_str(), Some("error" | "warning")) =>
            {
                problems.push(format!("log: {}", p["entry"]))
            }
            "Network.requestWillBeSent" => {
                requests.push(p["request"]["url"].as_str().unwrap_or("").to_string())
            }
            "Network.loadingFailed" => problems.push(format!("load failed: {p}")),
            _ => {}
        }
    }
    assert!(
        problems.is_empty(),
        "browser reported problems:\n{}",
        problems.join("\n")
    );
    let others: Vec<&String> = requests
        .iter()
        .filter(|u| **u != page_url && **u != index_url && !u.starts_with("data:"))
        .collect();
    assert!(others.is_empty(), "the page fetched {others:?}");
    assert!(
        requests.contains(&page_url),
        "the navigation was seen: {requests:?}"
    );

    let _ = cdp.call(None, "Browser.close", json!({}));
    eprintln!(
        "site_browser: checked in {} in {:.1} s; screenshots in {}",
        binary.display(),
        started.elapsed().as_secs_f64(),
        artifacts.display()
    );
}
