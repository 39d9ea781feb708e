//! Container configurations below the CLI: the task contract (inputs read-only whatever the
//! section), refusals that name the file, task and label, the two formats side by side, and the
//! Engine API request the site's --gpus / --shm-size make (no GPU on these machines).

use std::path::{Path, PathBuf};

use crate::mlcube::docker::container_body;
use crate::mlcube::{Config, Error, HostPath, Io, Mode, PathKind, Plan, RunRequest, prepare_host};

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

const GREEDY: &str = "container_type: DockerImage\nimage: example/greedy:1.0\ntasks:\n  prepare:\n    input_volumes:\n      labels_path: {mount_path: /in/labels, type: directory}\n    output_volumes:\n      data_path: {mount_path: /raw/data, type: directory}\n      output_path: {mount_path: /out/data, type: directory}\n      output_labels_path: {mount_path: /out/labels, type: directory}\n      report_file: {mount_path: /out/report.yaml, type: file}\n    run_args:\n      gpus: 1\n      shm_size: 1024\n      command: [\"prepare\", 7]\n      environment: {LEVEL: 3}\n";

fn placed(pairs: &[(&str, &Path)]) -> std::collections::BTreeMap<String, HostPath> {
    pairs
        .iter()
        .map(|(k, p)| {
            (
                k.to_string(),
                HostPath {
                    path: p.to_path_buf(),
                    kind: PathKind::Dir,
                },
            )
        })
        .collect()
}

fn strict_prepare(dir: &Path, gpus: Option<&str>, shm: Option<&str>) -> Result<Plan, Error> {
    let cfg = Config::load(&write(dir, "container_config.yaml", GREEDY))?;
    let mut req = RunRequest::new("prepare");
    req.mode = Mode::Strict;
    req.workspace = Some(dir.join("ws"));
    req.run_root = Some(dir.to_path_buf());
    let (raw, labels) = (dir.join("raw"), dir.join("raw_labels"));
    let (out, out_labels, report) = (
        dir.join("out"),
        dir.join("out_labels"),
        dir.join("r/report.yaml"),
    );
    req.host_paths = placed(&[
        ("data_path", &raw),
        ("labels_path", &labels),
        ("output_path", &out),
        ("output_labels_path", &out_labels),
        ("report_file", &report),
    ]);
    req.options.gpus = gpus.map(str::to_string);
    req.options.shm_size = shm.map(str::to_string);
    cfg.plan(&req, &|_| None, dir)
}

#[test]
fn a_data_owners_inputs_are_read_only_whatever_the_section() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let p = strict_prepare(d, None, None).unwrap();
    // What MedPerf would run keeps the config's :rw (Q2); cohort's mounts do not.
    let data = p.params.iter().find(|x| x.name == "data_path").unwrap();
    assert_eq!(data.io, Io::Input, "raw data must exist before prepare");
    let top = p
        .invocation
        .mounts
        .iter()
        .find(|m| m.container == "/raw/data")
        .unwrap();
    assert!(!top.read_only);
    let hardened = p
        .hardening
        .mounts
        .iter()
        .find(|m| m.container == "/raw/data")
        .unwrap();
    assert!(hardened.read_only, "{:?}", p.hardening.mounts);
    for m in p
        .hardening
        .mounts
        .iter()
        .filter(|m| m.container.starts_with("/out"))
    {
        assert!(!m.read_only, "{m:?}");
    }
    // MedPerf's run_args, typed values as text (Q5), in the neutral plan.
    assert_eq!(p.invocation.cmd, ["prepare", "7"]);
    assert_eq!(p.invocation.env, [("LEVEL".to_string(), "3".to_string())]);
    assert_eq!(
        p.invocation.extra_run_args,
        ["--gpus", "1", "--shm-size", "1024"]
    );
    assert_eq!(p.hardening.shm_size, Some(1024));

    // Missing raw data: refused before anything is created.
    let e = prepare_host(&p).unwrap_err();
    assert!(
        e.to_string().contains("input labels_path does not exist"),
        "{e}"
    );
    assert!(!d.join("out").exists() && !d.join("r").exists());
    // With the inputs there, outputs are made, the file output as an empty file.
    std::fs::create_dir_all(d.join("raw")).unwrap();
    std::fs::create_dir_all(d.join("raw_labels")).unwrap();
    prepare_host(&p).unwrap();
    assert!(d.join("out").is_dir() && d.join("r/report.yaml").is_file());
    assert!(p.hardening.create_files.contains(&d.join("r/report.yaml")));
}

#[test]
fn the_sites_gpus_and_shm_size_replace_the_containers_own() {
    let dir = tempfile::tempdir().unwrap();
    let p = strict_prepare(dir.path(), Some("device=0,1"), Some("2g")).unwrap();
    assert_eq!(
        p.invocation.extra_run_args,
        ["--gpus", "device=0,1", "--shm-size", "2g"]
    );
    let hc = container_body(&p, "sha256:abc", "r").host_config.unwrap();
    let dr = &hc.device_requests.unwrap()[0];
    assert_eq!(dr.device_ids, Some(vec!["0".to_string(), "1".to_string()]));
    assert_eq!(dr.capabilities, Some(vec![vec!["gpu".to_string()]]));
    assert_eq!(hc.shm_size, Some(2 << 30));
    let p = strict_prepare(dir.path(), Some("all"), None).unwrap();
    let dr = &container_body(&p, "sha256:abc", "r")
        .host_config
        .unwrap()
        .device_requests
        .unwrap()[0];
    assert_eq!(dr.count, Some(-1));
    // 0 removes the container's own request.
    let p = strict_prepare(dir.path(), Some("0"), None).unwrap();
    assert!(p.hardening.gpus.is_none());
    let hc = container_body(&p, "sha256:abc", "r").host_config.unwrap();
    assert!(hc.device_requests.is_none());
    let e = strict_prepare(dir.path(), Some("many"), None).unwrap_err();
    // The site's value is named as the site's, not as the config's run_args.
    assert!(e.to_string().contains("task prepare: --gpus many:"), "{e}");
}

#[test]
fn mlcube_site_gpus_select_gpu_args_or_remove_them() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "mlcube.yaml",
        "name: g\nplatform: {accelerator_count: 0}\ndocker: {image: 'x/y:1', gpu_args: '--gpus=all --shm-size=1g'}\n\
         tasks: {infer: {parameters: {outputs: {out: out/}}}}\n",
    );
    let cfg = Config::load(dir.path()).unwrap();
    let plan = |gpus: Option<&str>| {
        let mut req = RunRequest::new("infer");
        req.mode = Mode::Strict;
        req.options.gpus = gpus.map(str::to_string);
        cfg.plan(&req, &|_| None, dir.path()).unwrap()
    };
    assert!(
        plan(None).hardening.gpus.is_none(),
        "cpu_args without a request"
    );
    let p = plan(Some("2"));
    assert_eq!(p.hardening.shm_size, Some(1 << 30), "gpu_args selected");
    let dr = &container_body(&p, "sha256:abc", "r")
        .host_config
        .unwrap()
        .device_requests
        .unwrap()[0];
    assert_eq!(
        dr.count,
        Some(2),
        "the site's count replaces the cube's all"
    );
    let p = plan(Some("0"));
    assert!(p.hardening.gpus.is_none() && p.hardening.shm_size.is_none());
    assert!(
        !p.invocation
            .extra_run_args
            .iter()
            .any(|a| a.contains("gpus"))
    );
}

#[test]
fn refusals_name_the_file_the_task_and_the_label() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "container_config.yaml",
        "container_type: DockerImage\nimage: x\ntasks:\n  infer:\n    input_volumes:\n      data_path: {mount_path: /d, type: directory}\n      weights: {mount_path: /w, type: directory}\n    output_volumes:\n      output_path: {mount_path: /d, type: directory}\n  evaluate:\n    input_volumes:\n      labels: {mount_path: /l, type: directory}\n",
    );
    let cfg = Config::load(&f).unwrap();
    let mut req = RunRequest::new("infer");
    let e = cfg
        .plan(&req, &|_| None, dir.path())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&f.display().to_string())
            && e.contains("task infer")
            && e.contains("label output_path")
            && e.contains("also the mount of data_path"),
        "{e}"
    );
    // The other task still plans (MedPerf refuses every task for one bad volume, Q6)...
    req.task = "evaluate".into();
    req.host_paths = placed(&[("predictions", dir.path())]);
    let e = cfg
        .plan(&req, &|_| None, dir.path())
        .unwrap_err()
        .to_string();
    assert!(e.contains("task evaluate, label predictions: the task declares no volume predictions (declared: labels)"), "{e}");
    // ...a strict run needs every declared label placed...
    req.host_paths.clear();
    req.mode = Mode::Strict;
    let e = cfg
        .plan(&req, &|_| None, dir.path())
        .unwrap_err()
        .to_string();
    assert!(e.contains("label labels: no host path was given"), "{e}");
    // ...and submission refuses the whole file.
    let v = cfg.check_strict().unwrap_err();
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].task.as_deref(), Some("infer"));
    assert_eq!(v[0].field, "output_path");
}

#[test]
fn strict_runs_refuse_labels_medperf_does_not_supply() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "container_config.yaml",
        "container_type: DockerImage\nimage: x\ntasks:\n  infer:\n    input_volumes:\n      data_path: {mount_path: /d, type: directory}\n      labels_path: {mount_path: /l, type: directory}\n",
    );
    let cfg = Config::load(&f).unwrap();
    let mut req = RunRequest::new("infer");
    req.mode = Mode::Strict;
    req.host_paths = placed(&[("data_path", dir.path())]);
    let e = cfg
        .plan(&req, &|_| None, dir.path())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("label labels_path: MedPerf supplies no labels_path to task infer")
            && e.contains("can declare data_path, output_path"),
        "{e}"
    );
    // Submission refuses it too, rather than every site's run.
    let v = cfg.check_strict().unwrap_err();
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(
        (v[0].task.as_deref(), v[0].field.as_str()),
        (Some("infer"), "labels_path")
    );
}

#[test]
fn container_types_cohort_does_not_run_are_refused_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    for (kind, hint) in [
        ("SingularityFile", "build a Docker image"),
        ("EncryptedSingularityFile", "build a Docker image"),
        ("EncryptedDockerArchive", "private model"),
    ] {
        let f = write(
            dir.path(),
            "container_config.yaml",
            &format!(
                "container_type: {kind}\nimage: x\ntasks:\n  infer:\n    input_volumes:\n      data_path: {{mount_path: /d, type: directory}}\n"
            ),
        );
        let cfg = Config::load(&f).unwrap();
        let e = cfg
            .plan(&RunRequest::new("infer"), &|_| None, dir.path())
            .unwrap_err();
        assert!(
            e.to_string()
                .contains(&format!("container_type {kind} is not run by cohort")),
            "{e}"
        );
        assert!(e.hint().unwrap().contains(hint), "{kind}: {:?}", e.hint());
        assert!(cfg.check_strict().is_err(), "{kind} cannot be submitted");
    }
    for (text, says) in [
        ("image: x\ntasks: {t: {}}\n", "no container_type"),
        (
            "container_type: mlcube\nimage: x\ntasks: {t: {}}\n",
            "\"mlcube\" is not known",
        ),
        (
            "container_type: DockerImage\ntasks: {t: {}}\n",
            "image must be",
        ),
    ] {
        let f = write(dir.path(), "container_config.yaml", text);
        let e = Config::load(&f).unwrap_err().to_string();
        assert!(
            e.contains(says) && e.contains("container_config.yaml"),
            "{e}"
        );
    }
}

#[test]
fn a_folder_holds_one_format_or_the_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let container = "container_type: DockerImage\nimage: x\ntasks:\n  infer: {}\n";
    write(d, "container_config.yaml", container);
    assert!(Config::load(d).unwrap().is_container());
    write(
        d,
        "mlcube.yaml",
        "name: m\ndocker: {image: y}\ntasks: {infer: {parameters: {}}}\n",
    );
    let e = Config::load(d).unwrap_err();
    assert!(matches!(e, Error::AmbiguousConfig { .. }), "{e}");
    assert!(e.hint().unwrap().contains("container_config.yaml"));
    assert!(
        Config::load(&d.join("container_config.yaml"))
            .unwrap()
            .is_container()
    );
    assert!(!Config::load(&d.join("mlcube.yaml")).unwrap().is_container());
    // A container configuration under another name is recognised by its container_type.
    write(d, "model.yaml", container);
    assert!(Config::load(&d.join("model.yaml")).unwrap().is_container());
}

#[test]
fn the_ipc_refusal_points_to_shm_size() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "mlcube.yaml",
        "name: i\ndocker: {image: x, cpu_args: '--ipc=host'}\ntasks: {t: {parameters: {outputs: {o: o/}}}}\n",
    );
    let cfg = Config::load(dir.path()).unwrap();
    let e = cfg
        .plan(&RunRequest::new("t"), &|_| None, dir.path())
        .unwrap_err();
    assert!(e.to_string().contains("--ipc"), "{e}");
    assert!(e.hint().unwrap().contains("--shm-size"), "{:?}", e.hint());
}

#[test]
fn a_containers_ipc_run_arg_points_to_shm_size_too() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "container_config.yaml",
        "container_type: DockerImage\nimage: x\ntasks:\n  infer:\n    run_args: {ipc: host}\n",
    );
    let e = Config::load(&f)
        .unwrap()
        .plan(&RunRequest::new("infer"), &|_| None, dir.path())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("task infer: run_args ipc not allowed") && e.contains("--shm-size"),
        "{e}"
    );
}

#[test]
fn mount_paths_stay_out_of_what_the_runtime_provides() {
    let dir = tempfile::tempdir().unwrap();
    for (mount, refused) in [
        ("/proc", true),
        ("/sys/fs/cgroup", true),
        ("//dev/shm", true),
        ("/dev", true),
        ("/a/../proc/x", true),
        ("/devices", false),
        ("/procedures/x", false),
    ] {
        let f = write(
            dir.path(),
            "container_config.yaml",
            &format!(
                "container_type: DockerImage\nimage: x\ntasks:\n  infer:\n    output_volumes:\n      output_path: {{mount_path: {mount}, type: directory}}\n"
            ),
        );
        let got = Config::load(&f)
            .unwrap()
            .plan(&RunRequest::new("infer"), &|_| None, dir.path());
        match got {
            Err(e) if refused => assert!(
                e.to_string().contains("label output_path")
                    && e.to_string().contains("which the runtime provides"),
                "{mount}: {e}"
            ),
            Ok(_) if !refused => {}
            other => panic!("{mount}: {:?}", other.map(|p| p.invocation)),
        }
    }
}
