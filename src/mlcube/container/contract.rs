//! MedPerf's task contract for container configurations (which labels each task is given and
//! which must exist before it runs, measured from MedPerf 0.3.0 in
//! `conformance/medperf-container/README.md`), and the deliberate differences from MedPerf.

use crate::mlcube::deviations::Deviation;

/// Whether `label` of `task` is a data owner's (or the cube's own) input: something that must
/// exist before the run and is mounted read-only whichever section the config declares it in
/// (Q2). `parameters_file` and `additional_files` are inputs of every task.
pub fn must_exist(task: &str, label: &str) -> bool {
    if matches!(label, "parameters_file" | "additional_files") {
        return true;
    }
    matches!(
        (task, label),
        ("prepare", "data_path" | "labels_path")
            | (
                "sanity_check" | "statistics",
                "data_path" | "labels_path" | "metadata_path"
            )
            | ("infer", "data_path")
            | ("evaluate", "predictions" | "labels")
            | ("run_script", "data_path" | "labels_path" | "model_files")
    )
}

/// The labels MedPerf's commands give `task` (besides `parameters_file` and
/// `additional_files`, which every task gets).
pub fn supplied(task: &str) -> &'static [&'static str] {
    match task {
        "prepare" => &[
            "data_path",
            "labels_path",
            "output_path",
            "output_labels_path",
            "metadata_path",
            "report_file",
        ],
        "sanity_check" => &["data_path", "labels_path", "metadata_path"],
        "statistics" => &["data_path", "labels_path", "output_path", "metadata_path"],
        "infer" => &["data_path", "output_path"],
        "evaluate" => &["predictions", "labels", "output_path", "local_outputs_path"],
        "run_script" => &["data_path", "labels_path", "model_files", "results_path"],
        _ => &[],
    }
}

/// Environment MedPerf adds for a task (`run_script` runs an ASSET model on the premises).
pub fn task_env(task: &str) -> &'static [(&'static str, &'static str)] {
    match task {
        "run_script" => &[("MEDPERF_ON_PREM", "1")],
        _ => &[],
    }
}

/// The deliberate differences from MedPerf 0.3.0 (docs/mlcube.md repeats the table; the
/// conformance test refers to these ids).
pub const CONTAINER_DEVIATIONS: &[Deviation] = &[
    Deviation {
        id: "mp-run-args-once",
        quirk: "Q1",
        mlcube: "mutates the config's run_args in place: a second run of a task on the same cube \
                 loses command, entrypoint, environment, gpus and shm_size, and a failed run \
                 leaves keys that make the next run fail",
        cohort: "the config is parsed once and never changed; every run of a task gets the same \
                 invocation",
    },
    Deviation {
        id: "mp-inputs-read-only",
        quirk: "Q2",
        mlcube: "mounts a label read-write when the config declares it under output_volumes, \
                 including raw data, prepared data, labels, parameters and additional files",
        cohort: "every label that must exist before the task (the data owner's inputs, \
                 parameters_file, additional_files) is an input and mounted read-only whatever \
                 section declares it; the top level of the plan keeps MedPerf's :rw, the \
                 hardening mounts it read-only",
    },
    Deviation {
        id: "mp-mount-paths",
        quirk: "Q3",
        mlcube: "accepts a label in both sections (mounted twice), duplicate mount paths, /tmp \
                 (docker then refuses), relative paths and paths with ':', and any label",
        cohort: "refuses them when reading the config, naming the task and label, and mount \
                 paths in /proc, /sys or /dev (runc fails the start or the mount hides what the \
                 runtime provides); a label must \
                 be a plain name (letters, digits, _, - and .; not . or ..), because a local run's \
                 default host path is workspace/<label>",
    },
    Deviation {
        id: "mp-empty-argument",
        quirk: "Q4",
        mlcube: "drops a trailing empty argument (shlex.join, then pexpect splits again)",
        cohort: "passes every argument as a list through the Engine API; nothing is dropped",
    },
    Deviation {
        id: "mp-typed-values",
        quirk: "Q5",
        mlcube: "crashes with TypeError on an int in a command list, an int shm_size or a null \
                 command, after creating host folders; turns env booleans into True/False and a \
                 list entrypoint into its Python repr",
        cohort: "numbers in command, environment and shm_size are their decimal text; booleans, \
                 nulls and mappings are refused with the task and key before anything is \
                 created; a list entrypoint is the entrypoint's words; gpus: true is refused \
                 (MedPerf passes --gpus True)",
    },
    Deviation {
        id: "mp-errors",
        quirk: "Q6",
        mlcube: "a declared label MedPerf does not supply is a bare KeyError; run_args keys are \
                 checked only when a task runs; `mlcube` is listed as an expected \
                 container_type",
        cohort: "every refusal names the file, the task and the label; run_args, volumes and \
                 types are checked for the whole file when it is read, and so are labels MedPerf \
                 never gives a task of the contract (so submission refuses them); unknown keys \
                 anywhere are refused",
    },
    Deviation {
        id: "mp-singularity",
        quirk: "Q7",
        mlcube: "runs Singularity types with singularity, exporting SINGULARITYENV_* into its \
                 own process environment",
        cohort: "runs only DockerImage and DockerArchive through the Docker Engine; \
                 SingularityFile and EncryptedSingularityFile are refused",
    },
    Deviation {
        id: "mp-encrypted",
        quirk: "-",
        mlcube: "runs an EncryptedDockerArchive after decrypting it with gpg and a key file \
                 handed to the site",
        cohort: "refuses it, with a hint pointing to cohort's own private models (a key file \
                 outside the registry's trust rules is not a way cohort shares a model)",
    },
    Deviation {
        id: "mp-missing-input",
        quirk: "-",
        mlcube: "creates every output folder (and an empty file for file outputs) before it \
                 finds a missing input volume",
        cohort: "checks every input first and creates nothing when one is missing",
    },
];

#[cfg(test)]
mod tests {
    use super::CONTAINER_DEVIATIONS;

    #[test]
    fn every_deviation_from_medperf_is_documented() {
        let docs = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/mlcube.md"),
        )
        .unwrap();
        for d in CONTAINER_DEVIATIONS {
            assert!(
                docs.contains(&format!("`{}`", d.id)),
                "docs/mlcube.md lacks {}",
                d.id
            );
        }
        let quirks: Vec<&str> = CONTAINER_DEVIATIONS.iter().map(|d| d.quirk).collect();
        for q in ["Q1", "Q2", "Q3", "Q4", "Q5", "Q6", "Q7"] {
            assert!(quirks.contains(&q), "MedPerf quirk {q} has no deviation");
        }
    }
}
