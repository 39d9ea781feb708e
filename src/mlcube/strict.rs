//! The rules for registered cubes (docs/design.md "Executing MLCubes"): run arguments only
//! from an allowlist, parameter paths relative and inside the workspace, no host environment
//! interpolation. Checked at submission time by [`check_strict`] and again before every run.

use std::fmt;

use super::args::{parse_flags, shell_split, strict_allowed};
use super::config::{CubeConfig, EffectiveInputs, RUNNER_FLAGS};
use super::interp::{has_var_reference, uses_host_env};
use super::paths;
use super::tree::Node;

/// One broken rule, naming the task and parameter or the configuration key.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StrictViolation {
    /// The task, when the violation is in a task.
    pub task: Option<String>,
    /// The parameter or configuration key (`docker.gpu_args`, `data_path`).
    pub field: String,
    pub message: String,
}

impl fmt::Display for StrictViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.task {
            Some(task) => write!(f, "task {task}, parameter {}: {}", self.field, self.message),
            None => write!(f, "{}: {}", self.field, self.message),
        }
    }
}

/// Where [`check_strict`] places the workspace: a folder outside every cube's root, as the
/// per-run workspaces of the workflow are.
const RUN_WORKSPACE: &str = "/nonexistent-cohort-run/workspace";

/// Checks a cube against the rules for registered cubes. Every violation is reported, not
/// just the first.
pub fn check_strict(cfg: &CubeConfig) -> Result<(), Vec<StrictViolation>> {
    let mut out = Vec::new();
    let top = |field: String, message: String| StrictViolation {
        task: None,
        field,
        message,
    };

    cfg.tree().visit_strings(&mut Vec::new(), &mut |path, s| {
        if uses_host_env(s) {
            out.push(top(
                path.join("."),
                format!(
                    "{s:?} reads the host environment (oc.env), which registered cubes may not"
                ),
            ));
        }
    });

    // The rest needs the resolved configuration; host environment lookups resolve to "" so
    // one violation above does not hide the others. Registered cubes run in a fresh workspace
    // outside their own folder, so containment is judged against such a workspace, not the
    // template `<root>/workspace`: `${runtime.root}/workspace/x` is the cube's installed
    // folder, shared by every run, and must not count as inside.
    let workspace = RUN_WORKSPACE.to_string();
    let resolved = match cfg.effective(&EffectiveInputs {
        platform: &[],
        runner_flags: &[],
        overrides: &[],
        workspace: &workspace,
        env: &|_| Some(String::new()),
        allow_env: true,
    }) {
        Ok(n) => n,
        Err(e) => {
            out.push(top("mlcube.yaml".into(), e.to_string()));
            return Err(out);
        }
    };
    let runner = resolved.get("runner").expect("effective sets runner");

    for key in ["cpu_args", "gpu_args"] {
        let Some(value) = runner.get(key) else {
            continue;
        };
        let text = value.python_str();
        let field = format!("docker.{key}");
        match shell_split(&text) {
            Err(m) => out.push(top(field, m)),
            Ok(words) => out.extend(
                run_arg_violations(&words)
                    .into_iter()
                    .map(|m| top(field.clone(), m)),
            ),
        }
    }
    for flag in RUNNER_FLAGS {
        let value = runner.get(flag).filter(|v| !matches!(v, Node::Null));
        if let Some(v) = value.filter(|v| !strict_allowed(flag, Some(&v.python_str()))) {
            out.push(top(
                format!("docker.{flag}"),
                format!(
                    "run argument {flag}={v} is not allowed (allowed: --gpus, --shm-size, --runtime=nvidia)"
                ),
            ));
        }
    }
    match runner.get("env_args") {
        Some(Node::Map(env)) => {
            for (k, v) in env {
                if has_var_reference(&v.python_str()) {
                    out.push(top(
                        format!("docker.env_args.{k}"),
                        "refers to a host environment variable ($VAR), which registered cubes may not".into(),
                    ));
                }
            }
        }
        Some(Node::Str(s)) => {
            if let Err(m) = shell_split(s) {
                out.push(top("docker.env_args".into(), m));
            }
        }
        _ => {}
    }

    if let Some(tasks) = resolved.get("tasks").and_then(Node::as_map) {
        let raw_tasks = cfg.tree().get("tasks");
        for (task, def) in tasks {
            for io in ["inputs", "outputs"] {
                let Some(params) = def.lookup(&["parameters", io]).and_then(Node::as_map) else {
                    continue;
                };
                for (name, p) in params {
                    let raw = raw_tasks
                        .and_then(|t| t.lookup(&[task, "parameters", io, name]))
                        .map(|n| match n {
                            Node::Map(_) => {
                                n.get("default").map(Node::python_str).unwrap_or_default()
                            }
                            other => other.python_str(),
                        })
                        .unwrap_or_default();
                    let value = p.get("default").map(Node::python_str).unwrap_or_default();
                    if let Some(message) = path_violation(&raw, &value, &workspace) {
                        out.push(StrictViolation {
                            task: Some(task.clone()),
                            field: name.clone(),
                            message,
                        });
                    }
                }
            }
        }
    }
    if out.is_empty() { Ok(()) } else { Err(out) }
}

/// Messages for every run argument outside the allowlist.
pub(crate) fn run_arg_violations(words: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    match parse_flags(words) {
        Err(tok) => out.push(format!(
            "run argument {tok} is not allowed (allowed: --gpus, --shm-size, --runtime=nvidia)"
        )),
        Ok(flags) => {
            for f in flags {
                if !strict_allowed(f.name, f.value.as_deref()) {
                    out.push(format!(
                        "run argument {} is not allowed (allowed: --gpus, --shm-size, --runtime=nvidia)",
                        f.text()
                    ));
                }
            }
        }
    }
    out
}

/// Why a parameter path breaks the strict rules, if it does. `raw` is the value as written
/// (before interpolation), `value` after.
pub(crate) fn path_violation(raw: &str, value: &str, workspace: &str) -> Option<String> {
    if raw.starts_with('/') || value.starts_with("~") || raw.starts_with('~') {
        return Some(format!(
            "{raw:?} is an absolute path; registered cubes use paths relative to the workspace"
        ));
    }
    if has_var_reference(value) {
        return Some(format!(
            "{raw:?} refers to a host environment variable ($VAR), which registered cubes may not"
        ));
    }
    let host = paths::join_workspace(workspace, value);
    if !paths::is_within(workspace, &host) {
        if raw.contains("runtime.root") {
            return Some(format!(
                "{raw:?} points into the cube's own folder (${{runtime.root}}), which every run \
                 shares; registered cubes use paths inside the run's workspace (${{workspace}})"
            ));
        }
        return Some(format!("{raw:?} points outside the workspace"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn check(yaml: &str) -> Result<(), Vec<StrictViolation>> {
        let cfg = CubeConfig::from_text(yaml, Path::new("/c/x/mlcube.yaml")).unwrap();
        check_strict(&cfg)
    }

    #[test]
    fn clean_cube_passes() {
        check(
            "name: m\nplatform: {accelerator_count: 1}\ndocker: {image: a, gpu_args: --gpus all --shm-size=1g --runtime=nvidia}\n\
             tasks: {infer: {parameters: {inputs: {data_path: data/, p: '${workspace}/p.yaml'}, outputs: {out: {type: directory, default: out}}}}}\n",
        )
        .unwrap();
    }

    #[test]
    fn the_cubes_own_folder_is_not_its_workspace() {
        // Issue 14: `${runtime.root}/workspace/...` passed when containment was judged against
        // the template workspace; every run shares that folder.
        let v = check(
            "name: m\ndocker: {image: a}\n\
             tasks: {infer: {parameters: {inputs: {data_path: data/}, outputs: {out: out/, \
             evil: {type: directory, default: '${runtime.root}/workspace/evil'}, \
             w: {type: file, default: '${runtime.workspace}/w.txt'}}}}}\n",
        )
        .unwrap_err();
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].field, "evil");
        assert!(v[0].message.contains("cube's own folder"), "{v:?}");
    }

    #[test]
    fn every_violation_is_named() {
        let v = check(
            "name: m\ndocker: {image: a, gpu_args: --privileged --gpus all, cpu_args: --network=host, --security-opt: seccomp=unconfined, \
             env_args: {T: $HOME}}\n\
             tasks: {infer: {parameters: {inputs: {data_path: /data, up: ../x, e: '${oc.env:D,/x}', v: $D/x, h: ~/x}, outputs: {out: out/}}}}\n",
        )
        .unwrap_err();
        let text: Vec<String> = v.iter().map(|v| v.to_string()).collect();
        let all = text.join("\n");
        for needle in [
            "docker.gpu_args: run argument --privileged is not allowed",
            "docker.cpu_args: run argument --network=host is not allowed",
            "docker.--security-opt: run argument --security-opt=seccomp=unconfined",
            "docker.env_args.T: refers to a host environment variable",
            "tasks.infer.parameters.inputs.e: \"${oc.env:D,/x}\" reads the host environment",
            "task infer, parameter data_path: \"/data\" is an absolute path",
            "task infer, parameter up: \"../x\" points outside the workspace",
            "task infer, parameter v: \"$D/x\" refers to a host environment variable",
            "task infer, parameter h: \"~/x\" is an absolute path",
        ] {
            assert!(all.contains(needle), "missing {needle:?} in\n{all}");
        }
    }
}
