//! `cohort mlcube run PATH --task T [name=value ...] [--mount LABEL=HOSTPATH ...]`: plan a task
//! of a local MLCube (as MLCube 0.0.9 would) or MedPerf container configuration (as MedPerf
//! 0.3.0 would), then run it hardened through the Docker Engine (or, with `--dry-run`, print
//! the plan).

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use cohort::mlcube::{
    self, Config, ContainerRuntime, DockerRuntime, HostPath, Mode, PathKind, Plan, RunRequest,
    RunSpec,
};
use cohort::progress::Cancel;
use serde::Serialize;

use crate::cohort_cli::Settings;
use crate::cohort_cli::error::{CliError, CliResult};

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The cube's folder, its mlcube.yaml, or MedPerf's container_config.yaml.
    #[arg(value_name = "PATH")]
    pub path: PathBuf,
    /// The task to run (may be left out when the cube has a single task).
    #[arg(long, value_name = "TASK")]
    pub task: Option<String>,
    /// Network for the container (default: none; e.g. bridge, host).
    #[arg(long, value_name = "MODE")]
    pub network: Option<String>,
    /// A Docker security option (`--security-opt`) that adds confinement, e.g.
    /// apparmor=my-profile; options that would weaken the sandbox are refused.
    #[arg(long, value_name = "OPT")]
    pub security: Option<String>,
    /// GPUs for the container: all, a count, or device=ID[,ID].
    #[arg(long, value_name = "GPUS")]
    pub gpus: Option<String>,
    /// Shared memory for the container (/dev/shm), e.g. 2g; replaces the cube's own.
    #[arg(long, value_name = "SIZE")]
    pub shm_size: Option<String>,
    /// A container configuration's volume: LABEL=HOSTPATH (container_config.yaml only;
    /// unset labels default to <folder>/workspace/<label>).
    #[arg(long = "mount", value_name = "LABEL=HOSTPATH")]
    pub mounts: Vec<String>,
    /// Memory limit, e.g. 4g.
    #[arg(long, value_name = "SIZE")]
    pub memory: Option<String>,
    /// CPUs the container may use, as a cpuset (0-3, 0,2), like `mlcube run --cpu`.
    #[arg(long, value_name = "CPUSET")]
    pub cpu: Option<String>,
    /// CPU quota, e.g. 1.5 CPUs.
    #[arg(long, value_name = "N")]
    pub cpus: Option<String>,
    /// Workspace folder (default: the cube's own `workspace/`).
    #[arg(long, value_name = "DIR")]
    pub workspace: Option<PathBuf>,
    /// Override a configuration value, e.g. -Pdocker.build_strategy=auto.
    #[arg(short = 'P', value_name = "KEY=VALUE")]
    pub platform: Vec<String>,
    /// Stop the task after this long (e.g. 30m, 2h).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub timeout: Option<Duration>,
    /// Print the plan (what MLCube 0.0.9 would run, and cohort's hardening); run nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Where the task's output goes (default: under cohort's logs folder).
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// Task parameters as name=value.
    #[arg(value_name = "NAME=VALUE")]
    pub overrides: Vec<String>,
}

pub fn run(settings: &Settings, a: RunArgs) -> CliResult {
    crate::cohort_cli::devices::check(a.gpus.as_deref(), a.shm_size.as_deref())?;
    let cfg = Config::load(&a.path)?;
    let task = pick_task(&cfg, a.task.as_deref())?;
    let mut req = RunRequest::new(task);
    req.mode = Mode::Local;
    req.workspace = a.workspace.clone();
    for item in &a.overrides {
        req.overrides.push(parse_override(item)?);
    }
    if !a.mounts.is_empty() && !cfg.is_container() {
        return Err(CliError::usage(format!(
            "--mount is for container_config.yaml; {} is an MLCube",
            cfg.file().display()
        ))
        .hint("set an MLCube task parameter as name=value"));
    }
    for item in &a.mounts {
        let (label, path) = parse_mount(item)?;
        if req.host_paths.contains_key(&label) {
            // One label, one host path: the later one silently won.
            return Err(CliError::usage(format!(
                "--mount {label}=... is given twice; a label has one host path"
            )));
        }
        // The kind is the config's own declaration; this one is not read for containers.
        req.host_paths.insert(
            label,
            HostPath {
                path,
                kind: PathKind::Dir,
            },
        );
    }
    req.options.network = a.network.clone();
    req.options.security = a.security.clone();
    req.options.gpus = a.gpus.clone();
    req.options.shm_size = a.shm_size.clone();
    req.options.memory = a.memory.clone();
    req.options.cpuset = a.cpu.clone();
    req.options.cpus = a.cpus.clone();
    req.options.timeout = a.timeout;
    req.options.platform = a.platform.clone();

    let home = home_dir();
    let env = |name: &str| std::env::var(name).ok();
    let plan = cfg.plan(&req, &env, &home)?;
    let ui = &settings.ui;
    for note in &plan.hardening.notes {
        ui.warn(note);
    }
    if a.dry_run {
        if ui.json {
            ui.json(&DryRun::from(&plan));
        } else {
            let reference = if cfg.is_container() {
                "MedPerf 0.3.0"
            } else {
                "MLCube 0.0.9"
            };
            print_plan(settings, &plan, reference);
        }
        return Ok(());
    }

    // Missing inputs are refused before any image is built or pulled.
    mlcube::prepare_host(&plan)?;
    let docker_host = settings.docker_host.clone();
    let mut runtime = DockerRuntime::connect(docker_host.as_deref())?;
    runtime.set_scratch_dir(settings.home.tmp_dir());
    runtime.set_docker_config(settings.docker_config.clone());
    runtime.set_offline(settings.offline);
    let reporter = ui.reporter();
    let image_id = mlcube::ensure_image(&runtime, &plan, &reporter)?;

    let cancel = Cancel::new();
    let on_signal = cancel.clone();
    // A second Ctrl-C while the container stops is ignored; the run removes it either way.
    let _ = ctrlc::set_handler(move || on_signal.cancel());

    let log_path = a
        .log
        .clone()
        .unwrap_or_else(|| default_log(settings, &plan));
    let mut spec = RunSpec::new(&log_path);
    spec.image = Some(image_id);
    spec.access_records = Some(settings.home.access_dir());
    let outcome = runtime.run(&plan, &spec, &reporter, &cancel)?;
    drop(reporter);
    if ui.json {
        ui.json(&RunJson {
            exit_code: outcome.exit_code,
            duration_seconds: outcome.duration.as_secs_f64(),
            timed_out: outcome.timed_out,
            log: outcome.log_path.display().to_string(),
            log_truncated: outcome.log_truncated,
            image_id: outcome.image_id.clone(),
        });
    }
    ui.status(format!(
        "task {} of {} exited with code {} after {:.1}s; log: {}",
        plan.task,
        plan.cube,
        outcome.exit_code,
        outcome.duration.as_secs_f64(),
        outcome.log_path.display()
    ));
    if outcome.log_truncated {
        ui.warn("the task's output exceeded the log size limit and was truncated");
    }
    outcome.check()?;
    Ok(())
}

/// `cohort mlcube run ... --name=value`: clap refuses the unknown flag; say instead that a
/// task parameter is written `name=value` (MLCube 0.0.9 silently ignored `--name=value`).
pub fn dash_override_error(e: &clap::Error, argv: &[String]) -> Option<CliError> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if e.kind() != ErrorKind::UnknownArgument {
        return None;
    }
    let is_run = argv.windows(2).any(|w| w[0] == "mlcube" && w[1] == "run");
    let Some(ContextValue::String(flag)) = e.get(ContextKind::InvalidArg) else {
        return None;
    };
    let token = argv.iter().find(|a| a.starts_with(&format!("{flag}=")))?;
    is_run.then(|| parse_override(token).expect_err("a --name=value token is refused"))
}

/// `--task`, or the only task of a one-task cube (as 0.0.9 does).
fn pick_task(cfg: &Config, task: Option<&str>) -> CliResult<String> {
    let tasks = cfg.tasks();
    match task {
        Some(t) if t.contains(',') => Err(CliError::user(format!(
            "--task {t}: cohort runs one task at a time"
        ))
        .hint("run `cohort mlcube run` once per task")),
        Some(t) => Ok(t.to_string()),
        None if tasks.len() == 1 => Ok(tasks[0].clone()),
        None => Err(CliError::usage(format!(
            "{} {} has several tasks ({}); pick one with --task",
            if cfg.is_container() {
                "container"
            } else {
                "MLCube"
            },
            cfg.label(),
            tasks.join(", ")
        ))),
    }
}

/// `--mount LABEL=HOSTPATH`.
fn parse_mount(item: &str) -> CliResult<(String, PathBuf)> {
    match item.split_once('=') {
        Some((label, path)) if !label.is_empty() && !path.is_empty() => {
            Ok((label.to_string(), PathBuf::from(path)))
        }
        _ => Err(CliError::usage(format!(
            "--mount {item:?}: write LABEL=HOSTPATH"
        ))),
    }
}

/// A task parameter override. `--name=value` is refused: MLCube 0.0.9 silently ignored it.
fn parse_override(item: &str) -> CliResult<(String, String)> {
    match item.split_once('=') {
        Some((name, value)) if name.starts_with('-') => {
            let bare = name.trim_start_matches('-');
            Err(
                CliError::usage(format!("{item} is not an option of `cohort mlcube run`")).hint(
                    format!("to set the task parameter {bare}, write {bare}={value}"),
                ),
            )
        }
        Some((name, value)) if !name.is_empty() => Ok((name.to_string(), value.to_string())),
        _ if item.starts_with('-') => Err(CliError::usage(format!(
            "{item} is not an option of `cohort mlcube run`"
        ))
        .hint("options go before the name=value parameters; see --help")),
        _ => Err(CliError::usage(format!(
            "{item:?} is not a task parameter; write name=value"
        ))),
    }
}

fn home_dir() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .or_else(|| directories::BaseDirs::new().map(|d| d.home_dir().to_path_buf()))
        .unwrap_or_else(|| PathBuf::from("/"))
}

fn default_log(settings: &Settings, plan: &Plan) -> PathBuf {
    let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now())
        .to_string()
        .replace(':', "-");
    let safe = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    settings
        .home
        .logs_dir()
        .join("mlcube")
        .join(safe(&plan.cube))
        .join(format!("{}-{stamp}.log", safe(&plan.task)))
}

fn print_plan(settings: &Settings, plan: &Plan, reference: &str) {
    let ui = &settings.ui;
    let inv = &plan.invocation;
    let h = &plan.hardening;
    let quote = |s: &str| -> String {
        if !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_=./:,@%+".contains(c))
        {
            s.to_string()
        } else {
            format!("'{}'", s.replace('\'', r"'\''"))
        }
    };
    let mut words: Vec<String> = vec!["docker".into(), "run".into()];
    words.extend(inv.extra_run_args.iter().map(|s| quote(s)));
    if let Some(ep) = &inv.entrypoint {
        words.push(format!("--entrypoint={}", quote(&ep[0])));
    }
    for (k, v) in &inv.env {
        words.push("-e".into());
        words.push(quote(&format!("{k}={v}")));
    }
    for m in &inv.mounts {
        words.push("--volume".into());
        let suffix = if m.read_only { ":ro" } else { "" };
        words.push(quote(&format!(
            "{}:{}{suffix}",
            m.host.display(),
            m.container
        )));
    }
    words.push(quote(&inv.image));
    words.extend(inv.cmd.iter().map(|s| quote(s)));
    ui.out(format!(
        "# {reference} would run (task {} of {}):",
        plan.task, plan.cube
    ));
    ui.out(words.join(" "));
    ui.out("# cohort runs it with:");
    ui.out(format!(
        "#   user {}, network {}, cap_drop ALL, {}",
        h.user,
        h.network,
        h.security_opt.join(", ")
    ));
    ui.out(format!(
        "#   read-only root filesystem, tmpfs /tmp, pids limit {}, removed when done",
        h.pids_limit
    ));
    for m in &h.mounts {
        ui.out(format!(
            "#   mount {} -> {} ({})",
            m.host.display(),
            m.container,
            if m.read_only {
                "read-only"
            } else {
                "read-write"
            }
        ));
    }
    if let Some(t) = h.timeout {
        ui.out(format!("#   timeout {}", humantime::format_duration(t)));
    }
    for p in plan.missing_inputs() {
        ui.warn(format!(
            "input {} does not exist yet: {}",
            p.name,
            p.host.display()
        ));
    }
}

/// The `--dry-run --json` contract: the invocation fields in the format of the conformance
/// corpus's expected.json (absolute host paths), plus the hardening.
#[derive(Serialize)]
struct DryRun {
    image: String,
    entrypoint: Option<Vec<String>>,
    cmd: Vec<String>,
    mounts: Vec<MountJson>,
    env: serde_json::Map<String, serde_json::Value>,
    extra_run_args: Vec<String>,
    hardening: HardeningJson,
}

#[derive(Serialize)]
struct MountJson {
    host: String,
    container: String,
    read_only: bool,
}

#[derive(Serialize)]
struct HardeningJson {
    user: String,
    network: String,
    cap_drop: Vec<String>,
    security_opt: Vec<String>,
    read_only_rootfs: bool,
    tmpfs: serde_json::Map<String, serde_json::Value>,
    pids_limit: i64,
    auto_remove: bool,
    mounts: Vec<MountJson>,
    env: serde_json::Map<String, serde_json::Value>,
    memory: Option<i64>,
    nano_cpus: Option<i64>,
    cpuset_cpus: Option<String>,
    shm_size: Option<i64>,
    gpus: Option<GpusJson>,
    runtime: Option<String>,
    timeout_seconds: Option<f64>,
    create_dirs: Vec<String>,
    create_files: Vec<String>,
    missing_inputs: Vec<MissingJson>,
    notes: Vec<String>,
}

#[derive(Serialize)]
struct GpusJson {
    driver: Option<String>,
    count: i64,
    device_ids: Vec<String>,
    capabilities: Vec<Vec<String>>,
}

#[derive(Serialize)]
struct MissingJson {
    name: String,
    path: String,
}

#[derive(Serialize)]
struct RunJson {
    exit_code: i64,
    duration_seconds: f64,
    timed_out: bool,
    log: String,
    log_truncated: bool,
    image_id: String,
}

fn map(pairs: &[(String, String)]) -> serde_json::Map<String, serde_json::Value> {
    pairs
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect()
}

fn mounts(ms: &[mlcube::Mount]) -> Vec<MountJson> {
    ms.iter()
        .map(|m| MountJson {
            host: path_str(&m.host),
            container: m.container.clone(),
            read_only: m.read_only,
        })
        .collect()
}

fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

impl From<&Plan> for DryRun {
    fn from(p: &Plan) -> DryRun {
        let inv = &p.invocation;
        let h = &p.hardening;
        DryRun {
            image: inv.image.clone(),
            entrypoint: inv.entrypoint.clone(),
            cmd: inv.cmd.clone(),
            mounts: mounts(&inv.mounts),
            env: map(&inv.env),
            extra_run_args: inv.extra_run_args.clone(),
            hardening: HardeningJson {
                user: h.user.clone(),
                network: h.network.clone(),
                cap_drop: h.cap_drop.clone(),
                security_opt: h.security_opt.clone(),
                read_only_rootfs: h.read_only_rootfs,
                tmpfs: map(&h.tmpfs),
                pids_limit: h.pids_limit,
                auto_remove: h.auto_remove,
                mounts: mounts(&h.mounts),
                env: map(&h.env_added),
                memory: h.memory,
                nano_cpus: h.nano_cpus,
                cpuset_cpus: h.cpuset_cpus.clone(),
                shm_size: h.shm_size,
                gpus: h.gpus.as_ref().map(|g| GpusJson {
                    driver: g.driver.clone(),
                    count: g.count,
                    device_ids: g.device_ids.clone(),
                    capabilities: g.capabilities.clone(),
                }),
                runtime: h.runtime.clone(),
                timeout_seconds: h.timeout.map(|t| t.as_secs_f64()),
                create_dirs: h.create_dirs.iter().map(|d| path_str(d)).collect(),
                create_files: h.create_files.iter().map(|d| path_str(d)).collect(),
                missing_inputs: p
                    .missing_inputs()
                    .iter()
                    .map(|m| MissingJson {
                        name: m.name.clone(),
                        path: path_str(&m.host),
                    })
                    .collect(),
                notes: h.notes.clone(),
            },
        }
    }
}
