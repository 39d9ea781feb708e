//! What a site needs to take part in some benchmarks offline, read from a registry index: the
//! cubes the benchmarks use (the three of each benchmark and every approved model) and the
//! artifacts that live outside git (URL-located demo data and additional files; images travel
//! as images). `bundle create` packs exactly this; `bundle import` accepts nothing else.

use std::collections::BTreeMap;

use crate::model::{Asset, AssetLocation, CubeRef, Mlcube};
use crate::trust::Index;

use super::super::{Result, WorkflowError, benchmarks, execution};

/// One cube a benchmark uses.
pub struct CubeNeed {
    pub cube: CubeRef,
    pub record: Mlcube,
}

impl CubeNeed {
    pub fn label(&self) -> String {
        format!("cube {} v{}", self.cube.name, self.cube.version)
    }
}

/// Everything the benchmarks use.
#[derive(Default)]
pub struct Needs {
    pub cubes: Vec<CubeNeed>,
    /// Artifacts located by URL, by sha256 (what, asset).
    pub url_assets: BTreeMap<String, (String, Asset)>,
}

impl Needs {
    /// The cube records whose image id is `id`.
    pub fn cubes_with_image(&self, id: &str) -> Vec<String> {
        self.cubes
            .iter()
            .filter(|c| c.record.image.id == id)
            .map(CubeNeed::label)
            .collect()
    }
}

/// The cubes and URL artifacts of `benches` (each must be approved on `ix`).
pub fn needs(ix: &Index, benches: &[String]) -> Result<Needs> {
    let mut out = Needs::default();
    let add_asset = |out: &mut Needs, what: String, a: &Asset| {
        if let AssetLocation::Url(_) = a.location() {
            out.url_assets
                .entry(a.sha256.to_string())
                .or_insert((what, a.clone()));
        }
    };
    for name in benches {
        let (_, b, _) = benchmarks::approved(ix, name)?;
        add_asset(&mut out, format!("demo dataset of {name}"), &b.demo_dataset);
        let mut refs = vec![b.data_preparator.clone(), b.metrics.clone()];
        refs.extend(execution::models_to_run(ix, &b).into_iter().map(|(r, _)| r));
        for r in refs {
            if out.cubes.iter().any(|c| c.cube == r) {
                continue;
            }
            let path = ix.resolves_cube(&r).ok_or_else(|| {
                WorkflowError::NotFound(format!(
                    "cube {} v{} of benchmark {name} is not in the registry",
                    r.name, r.version
                ))
            })?;
            let Some(crate::model::Record::Mlcube(rec)) = ix.record(path) else {
                return Err(WorkflowError::NotFound(format!(
                    "{path} is not a cube record"
                )));
            };
            let label = format!("cube {} v{}", r.name, r.version);
            if let Some(a) = &rec.additional_files {
                add_asset(&mut out, format!("additional files of {label}"), a);
            }
            if let Some(p) = &rec.image.private {
                add_asset(
                    &mut out,
                    format!("encrypted image of {label}"),
                    &p.ciphertext,
                );
                if let Some(a) = &p.files {
                    add_asset(
                        &mut out,
                        format!("encrypted additional files of {label}"),
                        a,
                    );
                }
                if let Some(a) = &p.parameters {
                    add_asset(&mut out, format!("encrypted parameters of {label}"), a);
                }
            }
            out.cubes.push(CubeNeed {
                cube: r,
                record: rec.clone(),
            });
        }
    }
    Ok(out)
}
