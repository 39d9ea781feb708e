//! Reading mlcube.yaml and building the effective configuration MLCube 0.0.9 runs from: the
//! file, `-P` overrides, the runtime section, the docker runner defaults merged with the
//! cube's `docker:` section, every task's parameters normalised (short forms, default = name,
//! trailing-slash directories, `name=value` overrides), then all `${...}` resolved.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::error::Error;
use super::interp::Interpolator;
use super::tree::{self, Node};

/// The keys a docker runner section may hold (mlcube_docker 0.0.9 `Config.DEFAULT`, in order:
/// the order decides where `--network=` and friends land on the command line).
pub const RUNNER_KEYS: &[&str] = &[
    "runner",
    "image",
    "docker",
    "env_args",
    "gpu_args",
    "cpu_args",
    "build_args",
    "build_context",
    "build_file",
    "build_strategy",
    "--network",
    "--security-opt",
    "--gpus",
    "--memory",
    "--cpuset-cpus",
];

/// The runner flags `mlcube run` accepts and the runner keys they set (Q7).
pub const RUNNER_FLAGS: &[&str] = &[
    "--network",
    "--security-opt",
    "--gpus",
    "--memory",
    "--cpuset-cpus",
];

fn runner_defaults() -> Node {
    let s = |v: &str| Node::Str(v.to_string());
    Node::Map(vec![
        ("runner".into(), s("docker")),
        ("image".into(), s("${docker.image}")),
        ("docker".into(), s("docker")),
        ("env_args".into(), Node::Map(Vec::new())),
        ("gpu_args".into(), s("")),
        ("cpu_args".into(), s("")),
        ("build_args".into(), Node::Map(Vec::new())),
        ("build_context".into(), s(".")),
        ("build_file".into(), s("Dockerfile")),
        ("build_strategy".into(), s("pull")),
        ("--network".into(), Node::Null),
        ("--security-opt".into(), Node::Null),
        ("--gpus".into(), Node::Null),
        ("--memory".into(), Node::Null),
        ("--cpuset-cpus".into(), Node::Null),
    ])
}

/// A parsed mlcube.yaml. Cheap to clone; planning never changes it.
#[derive(Debug, Clone)]
pub struct CubeConfig {
    root: PathBuf,
    file: PathBuf,
    text: String,
    tree: Node,
    label: String,
}

impl CubeConfig {
    /// Loads `path`: an MLCube folder (holding `mlcube.yaml`) or the YAML file itself. The
    /// folder holding the file is the cube's root (`${runtime.root}`).
    pub fn load(path: &Path) -> Result<CubeConfig, Error> {
        let abs = std::path::absolute(path).map_err(|source| Error::Read {
            path: path.to_path_buf(),
            source,
        })?;
        // os.path.abspath: `..` and `.` are resolved lexically, as 0.0.9 computes the root.
        let abs = PathBuf::from(super::paths::lexical(&abs.to_string_lossy()));
        let file = if abs.is_dir() {
            abs.join("mlcube.yaml")
        } else {
            abs
        };
        // Read at most one byte over the cap: a huge (or endless) file is refused, not loaded.
        let mut bytes = Vec::new();
        std::fs::File::open(&file)
            .and_then(|f| {
                f.take(tree::MAX_YAML_BYTES as u64 + 1)
                    .read_to_end(&mut bytes)
            })
            .map_err(|source| Error::Read {
                path: file.clone(),
                source,
            })?;
        let text = String::from_utf8(bytes).map_err(|_| Error::Yaml {
            path: file.clone(),
            message: "is not UTF-8".into(),
        })?;
        CubeConfig::from_text(&text, &file)
    }

    /// Parses configuration text as if it were stored at `file` (absolute).
    pub fn from_text(text: &str, file: &Path) -> Result<CubeConfig, Error> {
        let yaml_err = |message: String| Error::Yaml {
            path: file.to_path_buf(),
            message,
        };
        let tree = Node::parse_yaml(text).map_err(|m| yaml_err(first_line(&m)))?;
        if !matches!(tree, Node::Map(_)) {
            return Err(yaml_err("the top level is not a mapping".into()));
        }
        let root = file
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("/"));
        let label = match tree.get("name") {
            Some(Node::Str(n)) if !n.trim().is_empty() => n.trim().to_string(),
            _ => root
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| file.display().to_string()),
        };
        let cfg = CubeConfig {
            root,
            file: file.to_path_buf(),
            text: text.to_string(),
            tree,
            label,
        };
        cfg.check_shape(&cfg.tree)?;
        Ok(cfg)
    }

    /// The name used in messages: the `name:` field, or the folder name.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Names the cube in messages (e.g. with its registry name).
    pub fn set_label(&mut self, label: impl Into<String>) {
        self.label = label.into();
    }

    /// The folder holding the configuration file (`${runtime.root}`).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The configuration file.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// The file's text, byte for byte.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The workspace 0.0.9 uses when none is given: `<root>/workspace`.
    pub fn default_workspace(&self) -> PathBuf {
        self.root.join("workspace")
    }

    /// Task names in file order.
    pub fn tasks(&self) -> Vec<String> {
        self.tree
            .get("tasks")
            .and_then(Node::as_map)
            .map(|m| m.iter().map(|(k, _)| k.clone()).collect())
            .unwrap_or_default()
    }

    pub(crate) fn tree(&self) -> &Node {
        &self.tree
    }

    pub(crate) fn config_err(&self, message: impl Into<String>) -> Error {
        Error::Config {
            cube: self.label.clone(),
            message: message.into(),
        }
    }

    /// Structural rules checked before any task runs: `tasks` is a mapping, the docker section
    /// has only known keys (Q10).
    fn check_shape(&self, tree: &Node) -> Result<(), Error> {
        match tree.get("tasks") {
            Some(Node::Map(_)) => {}
            Some(_) => return Err(self.config_err("`tasks` is not a mapping of task names")),
            None => return Err(self.config_err("the configuration has no `tasks`")),
        }
        match tree.get("docker") {
            None | Some(Node::Map(_)) => {}
            Some(_) => return Err(self.config_err("`docker` is not a mapping")),
        }
        Ok(())
    }

    /// Builds the effective, resolved configuration for a run (see the module docs).
    pub(crate) fn effective(&self, inputs: &EffectiveInputs<'_>) -> Result<Node, Error> {
        let mut tree = self.tree.clone();
        let mut dotlist = Vec::with_capacity(inputs.platform.len());
        for item in inputs.platform {
            let parsed = tree::parse_dotlist(item).map_err(|m| Error::Override {
                cube: self.label.clone(),
                message: m,
            })?;
            dotlist.push(parsed);
        }
        let apply = |tree: &mut Node| -> Result<(), Error> {
            for (path, value) in &dotlist {
                tree::set_path(tree, path, value.clone()).map_err(|m| Error::Override {
                    cube: self.label.clone(),
                    message: format!("-P{}: {m}", path.join(".")),
                })?;
            }
            Ok(())
        };
        apply(&mut tree)?;
        self.check_shape(&tree)?;

        let root = self.root.to_string_lossy().into_owned();
        tree.set(
            "runtime",
            Node::Map(vec![
                ("root".into(), Node::Str(root)),
                ("workspace".into(), Node::Str(inputs.workspace.to_string())),
            ]),
        );
        let mut runner = runner_defaults();
        if let Some(docker) = tree.get("docker") {
            runner.merge(docker);
        }
        for (flag, value) in inputs.runner_flags {
            runner.set(flag, Node::Str(value.clone()));
        }
        tree.set("runner", runner);
        tree.set("workspace", Node::Str(inputs.workspace.to_string()));
        apply(&mut tree)?;

        // Q10: unknown runner keys make the whole configuration invalid.
        let runner = tree.get("runner").expect("set above");
        let unknown: Vec<&str> = runner
            .as_map()
            .map(|m| {
                m.iter()
                    .map(|(k, _)| k.as_str())
                    .filter(|k| !RUNNER_KEYS.contains(k))
                    .collect()
            })
            .unwrap_or_default();
        if !unknown.is_empty() {
            return Err(self.config_err(format!(
                "unknown keys in the docker section: {} (MLCube 0.0.9 accepts {})",
                unknown.join(", "),
                RUNNER_KEYS.join(", ")
            )));
        }

        self.normalize_tasks(&mut tree, inputs.overrides)?;

        let resolved = Interpolator::new(&tree, inputs.env, inputs.allow_env)
            .resolve_all()
            .map_err(|e| Error::Interpolation {
                cube: self.label.clone(),
                key: e.key,
                expression: e.expression,
                message: e.message,
            })?;

        let runner = resolved.get("runner").expect("set above");
        match runner.get("image") {
            Some(Node::Str(s)) if !s.trim().is_empty() => {}
            _ => return Err(self.config_err("docker.image is missing or blank")),
        }
        match runner.get("build_strategy") {
            Some(Node::Str(s)) if ["pull", "auto", "always"].contains(&s.as_str()) => {}
            other => {
                return Err(self.config_err(format!(
                    "docker.build_strategy is {}, expected pull, auto or always",
                    other
                        .map(Node::python_str)
                        .unwrap_or_else(|| "missing".into())
                )));
            }
        }
        Ok(resolved)
    }

    /// `MLCubeConfig.check_parameters` for every task: short form `name: path` becomes
    /// `{default: path}`, a missing default is the parameter name, a missing type is
    /// `unknown`, and an unknown type with a value ending in `/` or `\` is a directory; a
    /// `name=value` override replaces the default of every parameter with that name (Q6).
    fn normalize_tasks(
        &self,
        tree: &mut Node,
        overrides: &[(String, String)],
    ) -> Result<(), Error> {
        let label = self.label.clone();
        let tasks = tree
            .get_mut("tasks")
            .and_then(Node::as_map_mut)
            .expect("checked shape");
        for (task_name, task) in tasks.iter_mut() {
            if matches!(task, Node::Null) {
                *task = Node::Map(Vec::new());
            }
            let Node::Map(_) = task else {
                return Err(Error::Config {
                    cube: label.clone(),
                    message: format!("task {task_name} is not a mapping"),
                });
            };
            if !matches!(task.get("parameters"), Some(Node::Map(_))) {
                if matches!(task.get("parameters"), None | Some(Node::Null)) {
                    task.set("parameters", Node::Map(Vec::new()));
                } else {
                    return Err(Error::Config {
                        cube: label.clone(),
                        message: format!("task {task_name}: `parameters` is not a mapping"),
                    });
                }
            }
            let params = task.get_mut("parameters").expect("set above");
            for io in ["inputs", "outputs"] {
                match params.get(io) {
                    None | Some(Node::Null) => params.set(io, Node::Map(Vec::new())),
                    Some(Node::Map(_)) => {}
                    Some(_) => {
                        return Err(Error::Config {
                            cube: label.clone(),
                            message: format!(
                                "task {task_name}: `parameters.{io}` is not a mapping"
                            ),
                        });
                    }
                }
                let group = params
                    .get_mut(io)
                    .and_then(Node::as_map_mut)
                    .expect("set above");
                for (name, def) in group.iter_mut() {
                    let param_err = |message: String| Error::Param {
                        cube: label.clone(),
                        task: task_name.clone(),
                        param: name.clone(),
                        message,
                    };
                    match def {
                        Node::Null => *def = Node::Map(Vec::new()),
                        Node::Str(s) => {
                            *def = Node::Map(vec![("default".into(), Node::Str(s.clone()))])
                        }
                        Node::Map(_) => {}
                        other => {
                            return Err(param_err(format!(
                                "expected a path or a mapping with type and default, found {other}"
                            )));
                        }
                    }
                    if matches!(def.get("default"), None | Some(Node::Null)) {
                        def.set("default", Node::Str(name.clone()));
                    }
                    if matches!(def.get("type"), None | Some(Node::Null)) {
                        def.set("type", Node::Str("unknown".into()));
                    }
                    let slash_rule = |def: &mut Node| -> Result<(), Error> {
                        let Some(Node::Str(default)) = def.get("default") else {
                            return Err(param_err(format!(
                                "the default {} is not a path string",
                                def.get("default").map(Node::python_str).unwrap_or_default()
                            )));
                        };
                        let is_dir = default.ends_with('/') || default.ends_with('\\');
                        if is_dir && def.get("type") == Some(&Node::Str("unknown".into())) {
                            def.set("type", Node::Str("directory".into()));
                        }
                        Ok(())
                    };
                    slash_rule(def)?;
                    if let Some((_, value)) = overrides.iter().rev().find(|(n, _)| n == name) {
                        def.set("default", Node::Str(value.clone()));
                        slash_rule(def)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// True when `task` declares a parameter called `name`.
    pub fn task_has_parameter(&self, task: &str, name: &str) -> bool {
        let Some(t) = self.tree.lookup(&["tasks", task]) else {
            return false;
        };
        ["inputs", "outputs"].iter().any(|io| {
            t.lookup(&["parameters", io])
                .and_then(Node::as_map)
                .is_some_and(|m| m.iter().any(|(k, _)| k == name))
        })
    }

    /// True when some task of the cube has a parameter called `name`.
    pub fn has_parameter(&self, name: &str) -> bool {
        let Some(tasks) = self.tree.get("tasks").and_then(Node::as_map) else {
            return false;
        };
        tasks.iter().any(|(_, task)| {
            ["inputs", "outputs"].iter().any(|io| {
                task.lookup(&["parameters", io])
                    .and_then(Node::as_map)
                    .is_some_and(|m| m.iter().any(|(k, _)| k == name))
            })
        })
    }
}

/// What [`CubeConfig::effective`] needs besides the file.
pub(crate) struct EffectiveInputs<'a> {
    pub platform: &'a [String],
    pub runner_flags: &'a [(&'static str, String)],
    pub overrides: &'a [(String, String)],
    pub workspace: &'a str,
    pub env: &'a dyn Fn(&str) -> Option<String>,
    pub allow_env: bool,
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or(s).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(yaml: &str) -> Result<CubeConfig, Error> {
        CubeConfig::from_text(yaml, Path::new("/cubes/demo/mlcube.yaml"))
    }

    fn effective(
        c: &CubeConfig,
        platform: &[String],
        overrides: &[(String, String)],
    ) -> Result<Node, Error> {
        c.effective(&EffectiveInputs {
            platform,
            runner_flags: &[],
            overrides,
            workspace: "/cubes/demo/workspace",
            env: &|_| None,
            allow_env: true,
        })
    }

    #[test]
    fn broken_yaml_names_the_file() {
        let e = cfg("name: [unclosed\n").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("/cubes/demo/mlcube.yaml is not a valid MLCube configuration"),
            "{e}"
        );
        let e = cfg("- a\n").unwrap_err();
        assert!(e.to_string().contains("not a mapping"), "{e}");
        let e = cfg("name: x\n").unwrap_err();
        assert!(e.to_string().contains("no `tasks`"), "{e}");
    }

    #[test]
    fn normalises_parameters() {
        let c = cfg(
            "name: demo\ndocker: {image: a/b:1}\ntasks:\n  t:\n    parameters:\n      inputs:\n        data: data/\n        \
             p: {type: file, default: p.yaml}\n        bare:\n      outputs: {out: {type: directory}}\n  u: {}\n",
        )
        .unwrap();
        let n = effective(&c, &[], &[("bare".into(), "x\\".into())]).unwrap();
        let inputs = n.lookup(&["tasks", "t", "parameters", "inputs"]).unwrap();
        assert_eq!(
            inputs.to_string(),
            "{data: {default: data/, type: directory}, p: {type: file, default: p.yaml}, bare: {default: x\\, type: directory}}"
        );
        assert_eq!(
            n.lookup(&["tasks", "t", "parameters", "outputs", "out", "default"])
                .unwrap()
                .as_str(),
            Some("out")
        );
        assert_eq!(
            n.lookup(&["runner", "image"]).unwrap().as_str(),
            Some("a/b:1")
        );
        assert_eq!(
            n.lookup(&["runtime", "root"]).unwrap().as_str(),
            Some("/cubes/demo")
        );
    }

    #[test]
    fn runner_keys_and_strategy_are_checked() {
        let c = cfg("docker: {image: a, bogus: 1}\ntasks: {t: {}}\n").unwrap();
        let e = effective(&c, &[], &[]).unwrap_err();
        assert!(
            e.to_string()
                .contains("unknown keys in the docker section: bogus"),
            "{e}"
        );
        let c = cfg("docker: {image: a, build_strategy: sometimes}\ntasks: {t: {}}\n").unwrap();
        assert!(
            effective(&c, &[], &[])
                .unwrap_err()
                .to_string()
                .contains("build_strategy")
        );
        let c = cfg("docker: {image: a}\ntasks: {t: {}}\n").unwrap();
        let n = effective(
            &c,
            &[
                "docker.build_strategy=always".into(),
                "runner.--gpus=all".into(),
            ],
            &[],
        )
        .unwrap();
        assert_eq!(
            n.lookup(&["runner", "build_strategy"]).unwrap().as_str(),
            Some("always")
        );
        assert_eq!(
            n.lookup(&["runner", "--gpus"]).unwrap().as_str(),
            Some("all")
        );
        let e = effective(&c, &["docker.nope=1".into()], &[]).unwrap_err();
        assert!(e.to_string().contains("nope"), "{e}");
        let c = cfg("docker: {}\ntasks: {t: {}}\n").unwrap();
        assert!(effective(&c, &[], &[]).is_err());
    }

    #[test]
    fn parameter_defaults_must_be_strings() {
        let c = cfg("docker: {image: a}\ntasks: {t: {parameters: {inputs: {n: {default: 3}}}}}\n")
            .unwrap();
        let e = effective(&c, &[], &[]).unwrap_err();
        assert!(e.to_string().contains("task t, parameter n"), "{e}");
    }
}
