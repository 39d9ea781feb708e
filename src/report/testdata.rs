//! Realistic inputs for the report tests: the fixture benchmark's numbers (fixtures/README.md,
//! "results.yaml") for two hospitals, a tie, a crash and a model below the minimum.

use std::collections::BTreeMap;

use crate::model::{
    Asset, BenchRef, Benchmark, CompatReport, CubeRef, DatasetNaming, Entry, Failure, Image,
    ImageSource, Leaderboard, Mlcube, Policy, Ranking, Release, Sealed, SealedFor, Sha256,
    Weighting, metrics::Metrics, pseudonyms::Pseudonyms,
};

use super::{
    BenchmarkPage, Outcome, ReleaseInfo, ReleaseMeta, ReportError, ResultInput, SiteInput,
    Unlinking,
};

/// A pseudonym mapping in sorted-id order, so tests can name sites by their fixture ids (real
/// releases draw a random one); `None` when the policy shows names.
pub fn in_order(
    policy: &Policy,
    inputs: &[ResultInput],
) -> Result<Option<Pseudonyms>, ReportError> {
    if policy.dataset_names != DatasetNaming::Pseudonymised {
        return Ok(None);
    }
    let ids = super::datasets_used(inputs)?;
    Ok(Some(Pseudonyms {
        nonce: "0".repeat(64),
        sites: ids
            .into_iter()
            .enumerate()
            .map(|(i, id)| (crate::model::pseudonyms::label(i as u32 + 1), id))
            .collect(),
    }))
}

/// The manifest a sealed mapping would have (the bytes are never needed by the renderers).
pub fn sealed_stub(m: &Pseudonyms) -> Sealed {
    Sealed {
        file: "1.pseudonyms.age".into(),
        schema: crate::model::envelope::SCHEMA_PSEUDONYMS.into(),
        ciphertext_sha256: Sha256::of(b"ciphertext"),
        plaintext_sha256: m.digest(),
        recipients: vec![SealedFor {
            handle: "committee-chair".into(),
            age: "age1hja26cvlasc4pjhx5pzt4u82v24cvz7lq75jm907d3evwuwp4p2qmv2hc2".into(),
        }],
    }
}

/// [`super::release`] with [`in_order`] pseudonyms and no exclusions.
pub fn release(
    meta: &ReleaseMeta,
    policy: &Policy,
    inputs: &[ResultInput],
) -> Result<Leaderboard, ReportError> {
    let map = in_order(policy, inputs)?;
    let unlinking = map.as_ref().map(|m| Unlinking {
        mapping: m,
        sealed: sealed_stub(m),
    });
    super::release(meta, policy, inputs, unlinking, vec![])
}

/// [`super::aggregate`] with [`in_order`] pseudonyms.
pub fn aggregate(
    bench: &BenchRef,
    policy: &Policy,
    inputs: &[ResultInput],
) -> Result<Vec<Entry>, ReportError> {
    let map = in_order(policy, inputs)?;
    super::aggregate(bench, policy, inputs, map.as_ref())
}

pub const HOSPITAL_A: &str = "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1";
pub const HOSPITAL_B: &str = "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b";

pub fn bench() -> BenchRef {
    BenchRef {
        name: "cvd-risk".into(),
        version: 1,
        sha256: Sha256::of(b"benchmarks/cvd-risk/v1.toml"),
    }
}

pub fn cube(name: &str, version: u32) -> CubeRef {
    CubeRef {
        name: name.into(),
        version,
        sha256: Sha256::of(format!("{name}/v{version}").as_bytes()),
    }
}

pub fn policy(release: Release, names: DatasetNaming, min: u32) -> Policy {
    Policy {
        release,
        dataset_names: names,
        min_datasets: min,
        primary_metric: "auc".into(),
        ranking: Ranking::HigherIsBetter,
        weighting: Weighting::Equal,
        size_metrics: Vec::new(),
    }
}

pub fn metrics(pairs: &[(&str, f64)]) -> Metrics {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

/// The metrics cube's output for a model on a hospital (fixtures/README.md).
pub fn fixture_metrics(model: &str, dataset: &str) -> Metrics {
    let row = match (model, dataset) {
        ("model-good" | "model-slow", HOSPITAL_A) => [0.7375, 0.78906, 240.0, 0.644444, 0.758974],
        ("model-good" | "model-slow", HOSPITAL_B) => [0.638889, 0.795184, 180.0, 0.8, 0.547826],
        ("model-weak", HOSPITAL_A) => [0.658333, 0.57641, 240.0, 0.333333, 0.733333],
        ("model-weak", HOSPITAL_B) => [0.538889, 0.582207, 180.0, 0.369231, 0.634783],
        // The reference model: between the two.
        ("reference", HOSPITAL_A) => [0.7, 0.70125, 240.0, 0.5, 0.75],
        ("reference", HOSPITAL_B) => [0.6, 0.69875, 180.0, 0.6, 0.6],
        ("model-malformed", _) => [0.7375, 0.78906, 240.0, 0.644444, 0.758974],
        _ => panic!("no fixture metrics for {model} on {dataset}"),
    };
    metrics(&[
        ("accuracy", row[0]),
        ("auc", row[1]),
        ("n", row[2]),
        ("sensitivity", row[3]),
        ("specificity", row[4]),
    ])
}

pub fn input(
    model: &str,
    dataset: &str,
    number: u32,
    outcome: Outcome,
    agreed: &Policy,
) -> ResultInput {
    let path = format!("results/cvd-risk/{dataset}/{model}/{number}.toml");
    let (name, owner) = if dataset == HOSPITAL_A {
        ("hospital-a", "hosp-a")
    } else {
        ("hospital-b", "hosp-b")
    };
    ResultInput {
        sha256: Sha256::of(path.as_bytes()),
        path,
        model: cube(model, 1),
        model_owner: if model == "reference" {
            "committee-chair".into()
        } else {
            format!("{model}-owner")
        },
        dataset_id: dataset.into(),
        dataset_name: name.into(),
        dataset_owner: owner.into(),
        outcome,
        agreed_policy: agreed.clone(),
        is_reference: model == "reference",
    }
}

pub fn ok(model: &str, dataset: &str, number: u32, agreed: &Policy) -> ResultInput {
    input(
        model,
        dataset,
        number,
        Outcome::Ok(fixture_metrics(model, dataset)),
        agreed,
    )
}

pub fn crash(model: &str, dataset: &str, number: u32, agreed: &Policy) -> ResultInput {
    input(
        model,
        dataset,
        number,
        Outcome::Failed(Failure {
            stage: "infer".into(),
            exit_code: Some(3),
            duration_ms: 1200,
            reason: "exit-code".into(),
        }),
        agreed,
    )
}

/// Five models on two hospitals: good and slow tie, weak, the reference, crash fails on both,
/// malformed has one dataset (below a minimum of 2).
pub fn fixture_inputs(agreed: &Policy) -> Vec<ResultInput> {
    let mut v = Vec::new();
    for (n, d) in [(1, HOSPITAL_A), (2, HOSPITAL_B)] {
        for m in ["model-good", "model-slow", "model-weak", "reference"] {
            v.push(ok(m, d, n, agreed));
        }
        v.push(crash("model-crash", d, n, agreed));
    }
    v.push(ok("model-malformed", HOSPITAL_A, 1, agreed));
    v
}

pub fn meta(number: u32) -> ReleaseMeta {
    ReleaseMeta {
        bench: bench(),
        number,
        created: format!("2026-11-2{number}T12:00:00Z"),
        by: "committee-chair".into(),
    }
}

/// A release of the fixture inputs under `policy`.
pub fn fixture_release(policy: &Policy) -> Leaderboard {
    release(&meta(1), policy, &fixture_inputs(policy)).expect("fixture inputs aggregate")
}

pub fn mlcube(c: &CubeRef, owner: &str, description: &str) -> Mlcube {
    Mlcube {
        format: 1,
        kind: "mlcube".into(),
        name: c.name.clone(),
        version: c.version,
        owner: owner.into(),
        created: "2026-11-20T09:00:00Z".into(),
        description: Some(description.into()),
        mlcube_yaml: Some(Sha256::of(format!("{}-yaml", c.name).as_bytes())),
        container_config_yaml: None,
        parameters_yaml: None,
        additional_files: None,
        image: Image {
            id: format!(
                "sha256:{}",
                Sha256::of(format!("{}-image", c.name).as_bytes())
            ),
            source: ImageSource::Local,
            reference: None,
            tarball: None,
            private: None,
        },
    }
}

pub fn benchmark(policy: &Policy, description: &str) -> Benchmark {
    Benchmark {
        format: 1,
        kind: "benchmark".into(),
        name: "cvd-risk".into(),
        version: 1,
        owner: "committee-chair".into(),
        created: "2026-11-19T09:00:00Z".into(),
        description: Some(description.into()),
        previous: None,
        committee: vec!["committee-chair".into(), "cardiologist".into()],
        release_threshold: 1,
        data_preparator: cube("prep", 1),
        reference_model: cube("reference", 1),
        metrics: cube("metrics", 1),
        demo_dataset: Asset::at_url("https://example.org/demo.tar.gz", Sha256::of(b"demo")),
        policy: policy.clone(),
        report: CompatReport {
            data: format!("demo:{}", Sha256::of(b"demo")),
            ok: true,
            cohort_version: "0.1.0".into(),
            steps: vec![],
            metrics: None,
        },
    }
}

/// A site with the fixture benchmark and `releases` of it.
pub fn site(policy: &Policy, releases: Vec<Leaderboard>) -> SiteInput {
    let mut cubes = BTreeMap::new();
    for r in &releases {
        for e in &r.entries {
            cubes.insert(e.model.clone(), mlcube(&e.model, &e.owner, "A model."));
        }
    }
    for c in [cube("prep", 1), cube("metrics", 1)] {
        cubes.insert(c.clone(), mlcube(&c, "committee-chair", "Pipeline cube."));
    }
    SiteInput {
        registry_name: "Cardiology benchmarks".into(),
        registry_id: Sha256::of(b"root/v1.toml").to_string(),
        commit: "0123456789abcdef0123456789abcdef01234567".into(),
        clone_url: Some("https://git.example.org/cardio/registry.git".into()),
        benchmarks: vec![BenchmarkPage {
            benchmark: benchmark(policy, "10-year cardiovascular risk from tabular records."),
            releases: releases
                .into_iter()
                .map(|r| ReleaseInfo {
                    path: crate::model::build::leaderboard("cvd-risk", r.number),
                    sha256: Sha256::of(&crate::model::to_bytes(&r)),
                    record: r,
                    signers: vec![("committee-chair".into(), "6F2A1C0D9E8B7A65".into())],
                })
                .collect(),
            cubes,
        }],
    }
}
