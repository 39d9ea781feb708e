//! One grammar for naming what a command acts on: a benchmark, dataset or model is given as
//! `-b/--benchmark`, `-d/--dataset`, `-m/--model` (MedPerf's habit) or, as before, positionally.
//! Each struct takes either form (never both) and resolves to the one name.

use clap::Args;

/// A benchmark, as `-b NAME` or positionally.
#[derive(Debug, Clone, Args)]
#[group(id = "benchmark_ref", required = true, multiple = false)]
pub struct BenchmarkRef {
    /// The benchmark (or -b NAME).
    #[arg(id = "benchmark_pos", value_name = "BENCHMARK")]
    positional: Option<String>,
    /// The benchmark.
    #[arg(id = "benchmark", short = 'b', long = "benchmark", value_name = "NAME")]
    flag: Option<String>,
}

impl BenchmarkRef {
    pub fn name(self) -> String {
        self.flag
            .or(self.positional)
            .expect("clap requires one of the two forms")
    }
}

/// A dataset (name, id or id prefix), as `-d DATASET` or positionally.
#[derive(Debug, Clone, Args)]
#[group(id = "dataset_ref", required = true, multiple = false)]
pub struct DatasetRef {
    /// The dataset: name, id or id prefix (or -d DATASET).
    #[arg(id = "dataset_pos", value_name = "DATASET")]
    positional: Option<String>,
    /// The dataset: name, id or id prefix.
    #[arg(id = "dataset", short = 'd', long = "dataset", value_name = "DATASET")]
    flag: Option<String>,
}

impl DatasetRef {
    pub fn name(self) -> String {
        self.flag
            .or(self.positional)
            .expect("clap requires one of the two forms")
    }
}

/// A cube (model, preparator or metrics), NAME or NAME:VERSION, as `-m CUBE` or positionally.
#[derive(Debug, Clone, Args)]
#[group(id = "model_ref", required = true, multiple = false)]
pub struct ModelRef {
    /// The cube: NAME or NAME:VERSION (or -m CUBE).
    #[arg(id = "model_pos", value_name = "CUBE")]
    positional: Option<String>,
    /// The cube: NAME or NAME:VERSION (a model, preparator or metrics cube).
    #[arg(
        id = "model",
        short = 'm',
        long = "model",
        visible_alias = "mlcube",
        value_name = "CUBE"
    )]
    flag: Option<String>,
}

impl ModelRef {
    pub fn name(self) -> String {
        self.flag
            .or(self.positional)
            .expect("clap requires one of the two forms")
    }
}
