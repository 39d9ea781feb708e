//! Planning semantics the conformance corpus does not exercise (quirks Q1-Q11 in their less
//! common forms, interpolation, overrides, hardening, strict mode), tested on small
//! configurations written to temporary folders.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::*;

struct Cube {
    dir: tempfile::TempDir,
}

impl Cube {
    fn new(yaml: &str) -> Cube {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("mlcube.yaml"), yaml).unwrap();
        Cube { dir }
    }
    fn root(&self) -> &Path {
        self.dir.path()
    }
    fn ws(&self, rel: &str) -> PathBuf {
        self.root().join("workspace").join(rel)
    }
    fn touch(&self, rel: &str) {
        let p = self.ws(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, b"").unwrap();
    }
    fn mkdir(&self, rel: &str) {
        std::fs::create_dir_all(self.ws(rel)).unwrap();
    }
    fn plan(&self, req: &RunRequest) -> Result<Plan, Error> {
        self.plan_env(req, &[])
    }
    fn plan_env(&self, req: &RunRequest, env: &[(&str, &str)]) -> Result<Plan, Error> {
        let cfg = CubeConfig::load(self.root()).unwrap();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let lookup = move |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        plan(&cfg, req, &lookup, Path::new("/home/tester"))
    }
    fn rel(&self, p: &Path) -> String {
        p.strip_prefix(self.root())
            .map(|r| r.to_string_lossy().into_owned())
            .unwrap_or_else(|_| p.to_string_lossy().into_owned())
    }
    fn mounts(&self, ms: &[Mount]) -> Vec<(String, String, bool)> {
        ms.iter()
            .map(|m| (self.rel(&m.host), m.container.clone(), m.read_only))
            .collect()
    }
}

fn req(task: &str) -> RunRequest {
    RunRequest::new(task)
}

const BASIC: &str = "name: basic\ndocker: {image: 'org/basic:1'}\ntasks:\n  \
    infer:\n    parameters:\n      inputs: {data_path: data/, parameters_file: {type: file, default: parameters.yaml}}\n      \
    outputs: {output_path: {type: directory, default: predictions}}\n  \
    other:\n    parameters: {inputs: {data_path: other/}}\n";

#[test]
fn entrypoints_q1_q2() {
    let c = Cube::new(
        "docker: {image: i}\ntasks:\n  none: {parameters: {outputs: {o: o/}}}\n  \
         one: {entrypoint: /bin/bash, parameters: {outputs: {o: o/}}}\n  \
         many: {entrypoint: \"python3 run.py --flag 'a b'\", parameters: {outputs: {o: o/}}}\n",
    );
    let p = c.plan(&req("none")).unwrap().invocation;
    assert_eq!(
        (p.entrypoint, p.cmd),
        (
            None,
            vec!["none".to_string(), "--o=/mlcube_io0".to_string()]
        )
    );
    let p = c.plan(&req("one")).unwrap().invocation;
    assert_eq!(p.entrypoint, Some(vec!["/bin/bash".to_string()]));
    assert!(p.cmd.is_empty(), "Q1 drops the parameters");
    assert_eq!(p.mounts.len(), 1, "Q1 still mounts");
    let p = c.plan(&req("many")).unwrap().invocation;
    assert_eq!(p.entrypoint, Some(vec!["python3".to_string()]));
    // `a b` stays one word: deviation entrypoint-words (0.0.9 re-split it through /bin/sh).
    assert_eq!(p.cmd, ["run.py", "--flag", "a b", "--o=/mlcube_io0"]);
}

#[test]
fn mount_options_q3() {
    let c = Cube::new(
        "docker: {image: i}\ntasks:\n  \
         a: {parameters: {inputs: {x: {type: file, default: x.csv, opts: ro}}, outputs: {y: {type: file, default: y.csv}}}}\n  \
         b: {parameters: {inputs: {x: {type: file, default: x.csv, opts: ro}}, outputs: {y: {type: file, default: y.csv, opts: rw}}}}\n  \
         c: {parameters: {inputs: {x: {type: directory, default: d, opts: rw}}}}\n  \
         bad: {parameters: {inputs: {x: {type: directory, default: d, opts: rx}}}}\n",
    );
    let a = c.plan(&req("a")).unwrap();
    assert_eq!(
        c.mounts(&a.invocation.mounts),
        [("workspace".into(), "/mlcube_io0".into(), true)]
    );
    // 0.0.9 mounts the output's folder read-only here; cohort keeps that (the task cannot write).
    assert!(a.hardening.mounts.iter().all(|m| m.read_only));
    let b = c.plan(&req("b")).unwrap();
    assert_eq!(
        c.mounts(&b.invocation.mounts),
        [("workspace".into(), "/mlcube_io0".into(), false)]
    );
    let h = c.mounts(&b.hardening.mounts);
    assert_eq!(
        h,
        [
            ("workspace".into(), "/mlcube_io0".into(), false),
            ("workspace/x.csv".into(), "/mlcube_io0/x.csv".into(), true)
        ]
    );
    assert!(!c.plan(&req("c")).unwrap().invocation.mounts[0].read_only);
    let e = c.plan(&req("bad")).unwrap_err();
    assert!(
        e.to_string()
            .contains("task bad, parameter x: opts rx is invalid"),
        "{e}"
    );
}

#[test]
fn types_q5() {
    let c = Cube::new(
        "docker: {image: i}\ntasks:\n  t: {parameters: {inputs: {f: f.csv, d: dd}, outputs: {o: {type: directory, default: o}}}}\n  \
         bad_out: {parameters: {outputs: {o: out.csv}}}\n",
    );
    let e = c.plan(&req("t")).unwrap_err();
    assert!(
        e.to_string()
            .contains("parameter f: the input has no type and"),
        "{e}"
    );
    assert!(e.hint().unwrap().contains("name=PATH"));
    c.touch("f.csv");
    c.mkdir("dd");
    let p = c.plan(&req("t")).unwrap();
    assert_eq!(p.params[0].kind, PathKind::File);
    assert_eq!(p.params[1].kind, PathKind::Dir);
    assert_eq!(
        p.invocation.cmd[1..],
        [
            "--f=/mlcube_io0/f.csv",
            "--d=/mlcube_io1",
            "--o=/mlcube_io2"
        ]
    );
    let e = c.plan(&req("bad_out")).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "MLCube {}, task bad_out, parameter o: an output needs a type, and this one has no type (Q5: MLCube 0.0.9 refuses it too)",
            c.root().file_name().unwrap().to_string_lossy()
        )
    );
    assert!(e.hint().unwrap().contains("type: file"));
}

#[test]
fn overrides_q6() {
    let c = Cube::new(BASIC);
    let mut r = req("infer");
    r.overrides = vec![
        ("data_path".into(), "/abs/data".into()),
        ("output_path".into(), "out=1/".into()),
    ];
    let p = c.plan(&r).unwrap();
    assert_eq!(p.params[0].host, PathBuf::from("/abs/data"));
    // The whole value is kept (0.0.9 cut it at the second `=`), and the slash rule is applied
    // again to the new value.
    assert_eq!(p.params[2].host, c.ws("out=1"));
    let mut r = req("infer");
    r.overrides = vec![("--data_path".into(), "x".into())];
    let e = c.plan(&r).unwrap_err();
    assert!(e.to_string().contains("write data_path=x"), "{e}");
    let mut r = req("infer");
    r.overrides = vec![("dta_path".into(), "x".into())];
    let e = c.plan(&r).unwrap_err();
    assert!(
        e.to_string()
            .contains("no task of this cube has a parameter dta_path"),
        "{e}"
    );
    // A name of another task is fine: 0.0.9 replaces every parameter with that name.
    let c = Cube::new(
        "docker: {image: i}\ntasks:\n  a: {parameters: {outputs: {o: {type: directory, default: o}}}}\n  b: {parameters: {outputs: {p: p/}}}\n",
    );
    let mut r = req("a");
    r.overrides = vec![("p".into(), "elsewhere".into())];
    c.plan(&r).unwrap();
}

#[test]
fn run_args_q7_q8() {
    let yaml = "platform: {accelerator_count: ACC}\ndocker: {image: i, cpu_args: '-u 1:1 --shm-size=1g', gpu_args: \"--gpus all -e 'A=x y'\", \
        '--memory': 2g, env_args: {B: 'with space', C: 1}}\ntasks: {t: {parameters: {outputs: {o: o/}}}}\n";
    let c = Cube::new(&yaml.replace("ACC", "0"));
    let mut r = req("t");
    r.options.network = Some("host".into());
    r.options.cpuset = Some("0-1".into());
    r.options.security = Some("apparmor=my-profile".into());
    let p = c.plan(&r).unwrap();
    assert_eq!(
        p.invocation.extra_run_args,
        [
            "-u",
            "1:1",
            "--shm-size=1g",
            "--network=host",
            "--security-opt=apparmor=my-profile",
            "--memory=2g",
            "--cpuset-cpus=0-1"
        ]
    );
    assert_eq!(
        p.invocation.env,
        [
            ("B".to_string(), "with space".to_string()),
            ("C".to_string(), "1".to_string())
        ]
    );
    let h = &p.hardening;
    assert_eq!(h.network, "host");
    assert_eq!(h.memory, Some(2 << 30));
    assert_eq!(h.shm_size, Some(1 << 30));
    assert_eq!(h.cpuset_cpus.as_deref(), Some("0-1"));
    assert_eq!(h.security_opt, ["no-new-privileges", "apparmor=my-profile"]);
    assert!(
        h.notes.iter().any(|n| n.contains("-u 1:1 is superseded")),
        "{:?}",
        h.notes
    );

    let c = Cube::new(&yaml.replace("ACC", "2"));
    let p = c.plan(&req("t")).unwrap();
    assert_eq!(
        p.invocation.extra_run_args,
        ["--gpus", "all", "--memory=2g"]
    );
    assert_eq!(p.invocation.env[0], ("A".to_string(), "x y".to_string()));
    assert_eq!(p.hardening.gpus.as_ref().unwrap().count, -1);
    assert_eq!(p.hardening.network, "none");

    for bad in ["--privileged", "-v /:/host", "-e X=$HOME", "--ipc=host"] {
        let c = Cube::new(&format!(
            "docker: {{image: i, cpu_args: '{bad}'}}\ntasks: {{t: {{parameters: {{outputs: {{o: o/}}}}}}}}\n"
        ));
        let e = c.plan(&req("t")).unwrap_err();
        assert!(
            e.to_string().contains("run argument") || e.to_string().contains("no shell"),
            "{bad}: {e}"
        );
    }
}

#[test]
fn shared_mounts_q9_and_input_overlays() {
    let c = Cube::new(
        "docker: {image: i}\ntasks:\n  t:\n    parameters:\n      inputs: {a: {type: file, default: d/a.csv}, b: {type: directory, default: d}, c: {type: file, default: p.yaml}}\n      \
         outputs: {r: {type: file, default: d/r.csv}, s: {type: directory, default: d/sub}}\n",
    );
    let p = c.plan(&req("t")).unwrap();
    assert_eq!(
        c.mounts(&p.invocation.mounts),
        [
            ("workspace/d".into(), "/mlcube_io0".into(), false),
            ("workspace".into(), "/mlcube_io1".into(), false),
            ("workspace/d/sub".into(), "/mlcube_io2".into(), false),
        ]
    );
    assert_eq!(
        p.invocation.cmd[1..],
        [
            "--a=/mlcube_io0/a.csv",
            "--b=/mlcube_io0",
            "--c=/mlcube_io1/p.yaml",
            "--r=/mlcube_io0/r.csv",
            "--s=/mlcube_io2"
        ]
    );
    // d is written (r.csv), so it is read-write with a.csv bound read-only on top; input b
    // is d itself and cannot be read-only (noted); the workspace holds only p.yaml: read-only.
    assert_eq!(
        c.mounts(&p.hardening.mounts),
        [
            ("workspace/d".into(), "/mlcube_io0".into(), false),
            ("workspace".into(), "/mlcube_io1".into(), true),
            ("workspace/d/sub".into(), "/mlcube_io2".into(), false),
            ("workspace/d/a.csv".into(), "/mlcube_io0/a.csv".into(), true),
        ]
    );
    assert!(
        p.hardening
            .notes
            .iter()
            .any(|n| n.contains("input b is the folder an output is written to"))
    );
    assert_eq!(
        p.hardening.create_dirs,
        [c.ws(""), c.ws("d"), c.ws("d/sub")]
            .map(|p| PathBuf::from(p.to_string_lossy().trim_end_matches('/')))
    );
    assert_eq!(
        p.invocation.created_dirs,
        [c.root().join("workspace"), c.ws("d"), c.ws("d/sub")]
    );
    let mut strict = req("t");
    strict.mode = Mode::Strict;
    let e = c.plan(&strict).unwrap_err();
    assert!(e.to_string().contains("cannot be read-only"), "{e}");
}

#[test]
fn unknown_runner_keys_q10_and_tasks() {
    let c = Cube::new("docker: {image: i, shm: 1g}\ntasks: {t: {}}\n");
    let e = c.plan(&req("t")).unwrap_err();
    assert!(
        e.to_string()
            .contains("unknown keys in the docker section: shm"),
        "{e}"
    );
    let c = Cube::new(BASIC);
    let e = c.plan(&req("train")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "MLCube basic has no task \"train\" (tasks: infer, other)"
    );
    let mut r = req("infer");
    r.options.platform = vec!["docker.build_strategy=sometimes".into()];
    assert!(
        c.plan(&r)
            .unwrap_err()
            .to_string()
            .contains("build_strategy")
    );
}

#[test]
fn interpolation_and_expansion() {
    let c = Cube::new(
        "name: interp\ndocker: {image: 'org/${name}:1', env_args: {IMG: '${docker.image}', ROOT: '${runtime.root}', T: '${oc.env:TOKEN,none}'}}\n\
         tasks:\n  t:\n    parameters:\n      inputs: {a: {type: file, default: '${workspace}/a.csv'}, h: {type: directory, default: ~/cache}, \
         v: {type: directory, default: $DATA/x}, u: {type: directory, default: $UNSET/y}, w: {type: file, default: '${runtime.workspace}/../w.txt'}}\n      \
         outputs: {o: {type: directory, default: '${oc.env:OUT,results}'}}\n",
    );
    let p = c
        .plan_env(&req("t"), &[("DATA", "/data"), ("OUT", "/out")])
        .unwrap();
    assert_eq!(p.invocation.image, "org/interp:1");
    let root = c.root().to_string_lossy().into_owned();
    assert_eq!(
        p.invocation.env,
        [
            ("IMG".to_string(), "org/interp:1".to_string()),
            ("ROOT".to_string(), root.clone()),
            ("T".to_string(), "none".to_string())
        ]
    );
    let hosts: Vec<String> = p
        .params
        .iter()
        .map(|p| p.host.to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        hosts,
        [
            format!("{root}/workspace/a.csv"),
            "/home/tester/cache".into(),
            "/data/x".into(),
            format!("{root}/workspace/$UNSET/y"),
            format!("{root}/workspace/../w.txt"),
            "/out".into()
        ]
    );
    let mut r = req("t");
    r.workspace = Some(PathBuf::from("/elsewhere/ws/"));
    let p = c.plan(&r).unwrap();
    assert_eq!(p.params[0].host, PathBuf::from("/elsewhere/ws/a.csv"));
    assert_eq!(p.params[5].host, PathBuf::from("/elsewhere/ws/results"));
    let c = Cube::new("docker: {image: '${nope}'}\ntasks: {t: {}}\n");
    let e = c.plan(&req("t")).unwrap_err();
    assert!(
        e.to_string()
            .contains("cannot resolve ${nope} in docker.image"),
        "{e}"
    );
}

#[test]
fn host_paths_place_data_anywhere() {
    let c = Cube::new(BASIC);
    let mut r = req("infer");
    r.host_paths = BTreeMap::from([
        (
            "data_path".to_string(),
            HostPath {
                path: "/runs/1/data".into(),
                kind: PathKind::Dir,
            },
        ),
        (
            "output_path".to_string(),
            HostPath {
                path: "/runs/1/out".into(),
                kind: PathKind::Dir,
            },
        ),
    ]);
    r.mode = Mode::Strict;
    let p = c.plan(&r).unwrap();
    assert_eq!(p.params[0].host, PathBuf::from("/runs/1/data"));
    assert_eq!(p.params[2].host, PathBuf::from("/runs/1/out"));
    assert_eq!(p.hardening.network, "none");
    assert!(
        p.hardening
            .create_dirs
            .contains(&PathBuf::from("/runs/1/out"))
    );
    let mut bad = r.clone();
    bad.host_paths.insert(
        "parameters_file".into(),
        HostPath {
            path: "/runs/1/p".into(),
            kind: PathKind::Dir,
        },
    );
    let e = c.plan(&bad).unwrap_err();
    assert!(
        e.to_string()
            .contains("declares a file but the caller gave a directory"),
        "{e}"
    );
    let mut rel = r.clone();
    rel.host_paths.insert(
        "data_path".into(),
        HostPath {
            path: "relative".into(),
            kind: PathKind::Dir,
        },
    );
    assert!(
        c.plan(&rel)
            .unwrap_err()
            .to_string()
            .contains("not absolute")
    );
}

#[test]
fn strict_runs_never_reach_the_cubes_own_folder() {
    // Issue 14: a registered cube's own folder is shared by all its runs.
    let c = Cube::new(
        "name: s\ndocker: {image: i}\ntasks: {t: {parameters: {outputs: {o: o/, \
         evil: {type: directory, default: '${runtime.root}/workspace/evil'}}}}}\n",
    );
    let mut r = req("t");
    r.mode = Mode::Strict;
    r.workspace = Some("/runs/1/ws".into());
    let e = c.plan(&r).unwrap_err();
    assert!(
        matches!(&e, Error::Strict { violations, .. } if violations[0].field == "evil"),
        "{e}"
    );
    // A local run of the same cube may (its own folder is the user's).
    r.mode = Mode::Local;
    c.plan(&r).unwrap();
}

#[test]
fn strict_mode_refusals() {
    let c = Cube::new(
        "name: s\nplatform: {accelerator_count: 1}\ndocker: {image: i, gpu_args: --privileged}\ntasks: {t: {parameters: {inputs: {d: /etc/}, outputs: {o: o/}}}}\n",
    );
    let mut r = req("t");
    r.mode = Mode::Strict;
    let e = c.plan(&r).unwrap_err();
    let text = e.to_string();
    assert!(text.starts_with("MLCube s is not allowed as a registered cube: docker.gpu_args: run argument --privileged is not allowed"), "{text}");
    assert!(text.contains("(and 1 more)"), "{text}");
    assert!(
        e.hint()
            .unwrap()
            .contains("task t, parameter d: \"/etc/\" is an absolute path"),
        "{:?}",
        e.hint()
    );
    assert!(!e.is_environment());

    let c = Cube::new(BASIC);
    for (what, tweak) in [
        (
            "-P",
            Box::new(|r: &mut RunRequest| r.options.platform.push("docker.image=x".into()))
                as Box<dyn Fn(&mut RunRequest)>,
        ),
        (
            "network",
            Box::new(|r: &mut RunRequest| r.options.network = Some("host".into())),
        ),
        (
            "security",
            Box::new(|r: &mut RunRequest| r.options.security = Some("x".into())),
        ),
        (
            "override",
            Box::new(|r: &mut RunRequest| r.overrides.push(("data_path".into(), "/etc".into()))),
        ),
    ] {
        let mut r = req("infer");
        r.mode = Mode::Strict;
        tweak(&mut r);
        assert!(c.plan(&r).is_err(), "{what} must be refused in strict mode");
    }
    let mut r = req("infer");
    r.mode = Mode::Strict;
    r.options.gpus = Some("all".into());
    r.options.memory = Some("4g".into());
    assert_eq!(c.plan(&r).unwrap().hardening.network, "none");
}

#[test]
fn missing_inputs_are_never_created() {
    let c = Cube::new(BASIC);
    let p = c.plan(&req("infer")).unwrap();
    let missing: Vec<&str> = p.missing_inputs().iter().map(|m| m.name.as_str()).collect();
    assert_eq!(missing, ["data_path", "parameters_file"]);
    let e = prepare_host(&p).unwrap_err();
    assert!(
        e.to_string().ends_with(&format!(
            "input data_path does not exist: {}",
            c.ws("data").display()
        )),
        "{e}"
    );
    assert!(
        !c.ws("").exists(),
        "nothing is created when an input is missing"
    );
    c.mkdir("data");
    c.touch("parameters.yaml");
    let created = prepare_host(&p).unwrap();
    assert_eq!(created, [c.ws("predictions")]);
}

#[test]
fn deviations_table_is_complete() {
    let ids: Vec<&str> = DEVIATIONS.iter().map(|d| d.id).collect();
    for id in [
        "no-shell",
        "entrypoint-words",
        "missing-inputs",
        "dash-override",
        "unknown-override",
        "override-equals",
        "run-args-api",
        "hardening",
        "input-limits",
    ] {
        assert!(ids.contains(&id), "{id}");
    }
    let docs =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/mlcube.md"))
            .unwrap();
    for d in DEVIATIONS {
        assert!(
            docs.contains(&format!("`{}`", d.id)),
            "docs/mlcube.md lacks deviation {}",
            d.id
        );
    }
}
