//! What cohort adds on top of the MLCube-equivalent invocation (docs/design.md "Executing
//! MLCubes", docs/mlcube.md): the calling uid:gid, no capabilities, no privilege escalation, a read-only root
//! filesystem with a tmpfs /tmp, a pids limit, no network, read-only inputs (inputs inside a
//! writable mount are bound read-only on top), resource limits and the per-task timeout.

use std::path::PathBuf;
use std::time::Duration;

use super::args::{self, GpuRequest, RunArgs};
use super::error::Error;
use super::paths;
use super::plan::{Invocation, Io, Mount, ParamPlan, PathKind, RunnerOptions};

/// Default pids limit: generous for ML frameworks' thread pools, fatal to fork bombs.
pub const DEFAULT_PIDS_LIMIT: i64 = 4096;

/// The hardening part of a plan.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Hardening {
    /// `uid:gid` the container runs as.
    pub user: String,
    /// Network mode: `none` unless a local run asked for another.
    pub network: String,
    pub cap_drop: Vec<String>,
    pub security_opt: Vec<String>,
    pub read_only_rootfs: bool,
    /// tmpfs mounts: path and options.
    pub tmpfs: Vec<(String, String)>,
    pub pids_limit: i64,
    pub auto_remove: bool,
    /// The mounts actually used: the invocation's, read-only unless an output needs them,
    /// plus read-only binds of inputs that live inside a writable mount.
    pub mounts: Vec<Mount>,
    /// Environment added to the invocation's (`HOME=/tmp`, since the root is read-only).
    pub env_added: Vec<(String, String)>,
    pub memory: Option<i64>,
    pub nano_cpus: Option<i64>,
    pub cpuset_cpus: Option<String>,
    pub shm_size: Option<i64>,
    pub gpus: Option<GpuRequest>,
    pub runtime: Option<String>,
    pub timeout: Option<Duration>,
    /// Folders cohort creates before the run: the workspace and the outputs' folders. Missing
    /// inputs are never created.
    pub create_dirs: Vec<PathBuf>,
    /// Output files mounted as files, created empty before the run when missing.
    pub create_files: Vec<PathBuf>,
    /// Run args accepted but superseded, and other things worth telling the user.
    pub notes: Vec<String>,
}

pub(crate) struct HardenInputs<'a> {
    pub cube: &'a str,
    pub strict: bool,
    pub options: &'a RunnerOptions,
    pub workspace: &'a str,
    pub params: &'a [ParamPlan],
    pub invocation: &'a Invocation,
    pub run_args: &'a RunArgs,
}

pub(crate) fn harden(h: &HardenInputs<'_>) -> Result<Hardening, Error> {
    let arg_err = |arg: String, message: String| Error::RunArg {
        cube: h.cube.to_string(),
        arg,
        message,
    };
    let mut notes = Vec::new();
    let ra = h.run_args;

    let network = match (&h.options.network, h.strict) {
        (Some(n), false) => n.clone(),
        _ => "none".to_string(),
    };
    if let (Some(n), None) = (&ra.network, &h.options.network) {
        notes.push(format!(
            "--network={n} from mlcube.yaml is not applied: the container has no network unless \
             `cohort mlcube run --network` asks for one"
        ));
    }
    for s in &ra.superseded {
        notes.push(format!(
            "run argument {s} is superseded by cohort's hardening and not applied"
        ));
    }

    // Security options come from the user alone: a cube's files may not choose its own
    // confinement (issue 14: `seccomp=unconfined` from mlcube.yaml was applied). The user's
    // `--security` (local runs) may add confinement, never take it away.
    let mut security_opt = vec![NO_NEW_PRIVILEGES.to_string()];
    let user_opt = h.options.security.as_deref().filter(|_| !h.strict);
    for s in ra
        .security_opt
        .iter()
        .filter(|s| Some(s.as_str()) != user_opt)
    {
        notes.push(format!(
            "--security-opt={s} from mlcube.yaml is dropped: security options come only from \
             `cohort mlcube run --security`"
        ));
    }
    if let Some(opt) = user_opt {
        if let Err(message) = check_security_opt(opt) {
            return Err(Error::Sandbox {
                cube: h.cube.to_string(),
                arg: format!("--security-opt={opt}"),
                message,
            });
        }
        if !is_no_new_privileges(opt) {
            security_opt.push(opt.to_string());
        }
    }

    let memory = ra
        .memory
        .as_deref()
        .map(|m| args::parse_bytes(m).map_err(|e| arg_err(format!("--memory={m}"), e)))
        .transpose()?;
    // The site's --shm-size replaces the cube's own request (MedPerf's option does the same).
    let shm_size = h
        .options
        .shm_size
        .as_deref()
        .or(ra.shm_size.as_deref())
        .map(|m| args::parse_bytes(m).map_err(|e| arg_err(format!("--shm-size={m}"), e)))
        .transpose()?;
    let cpus = h.options.cpus.as_ref().or(ra.cpus.as_ref());
    let nano_cpus = cpus
        .map(|c| args::parse_cpus(c).map_err(|e| arg_err(format!("--cpus={c}"), e)))
        .transpose()?;
    let gpus = ra
        .gpus
        .as_deref()
        .map(|g| args::parse_gpus(g).map_err(|e| arg_err(format!("--gpus={g}"), e)))
        .transpose()?;

    // Which host folders the task writes: output folders and output files' parents.
    let written: Vec<String> = h
        .params
        .iter()
        .filter(|p| p.io == Io::Output)
        .map(|p| {
            let host = p.host.to_string_lossy().into_owned();
            paths::lexical(&match p.kind {
                PathKind::Dir => host,
                PathKind::File => paths::split(&host).0,
            })
        })
        .collect();
    // Output files mounted as themselves (container configurations bind the file, not its
    // folder): writable, and created empty before the run so Docker binds a file.
    let written_files: Vec<String> = h
        .params
        .iter()
        .filter(|p| p.io == Io::Output && p.kind == PathKind::File)
        .map(|p| paths::lexical(&p.host.to_string_lossy()))
        .filter(|f| {
            h.invocation
                .mounts
                .iter()
                .any(|m| paths::lexical(&m.host.to_string_lossy()) == *f)
        })
        .collect();
    let inputs: Vec<&ParamPlan> = h.params.iter().filter(|p| p.io == Io::Input).collect();

    let mut mounts = Vec::new();
    let mut overlays: Vec<Mount> = Vec::new();
    for m in &h.invocation.mounts {
        let host = paths::lexical(&m.host.to_string_lossy());
        let writable = !m.read_only && (written.contains(&host) || written_files.contains(&host));
        mounts.push(Mount {
            host: m.host.clone(),
            container: m.container.clone(),
            read_only: !writable,
        });
        if !writable || written_files.contains(&host) {
            continue;
        }
        for p in &inputs {
            let input = p.host.to_string_lossy();
            if p.kind == PathKind::Dir && paths::lexical(&input) == host {
                let message = format!(
                    "input {} is the folder an output is written to ({}), so it cannot be read-only",
                    p.name,
                    m.host.display()
                );
                if h.strict {
                    return Err(Error::Config {
                        cube: h.cube.to_string(),
                        message,
                    });
                }
                notes.push(message);
                continue;
            }
            if let Some(rel) = paths::strip_inside(&host, &input) {
                let container = format!("{}/{rel}", m.container);
                if !overlays.iter().any(|o| o.container == container) {
                    overlays.push(Mount {
                        host: p.host.clone(),
                        container,
                        read_only: true,
                    });
                }
            }
        }
    }
    mounts.extend(overlays);

    let mut create_dirs = vec![PathBuf::from(h.workspace)];
    for w in &written {
        let p = PathBuf::from(w);
        if !create_dirs.contains(&p) {
            create_dirs.push(p);
        }
    }

    let mut env_added = Vec::new();
    if !h.invocation.env.iter().any(|(k, _)| k == "HOME") {
        env_added.push(("HOME".to_string(), "/tmp".to_string()));
    }

    let (uid, gid) = container_user();
    Ok(Hardening {
        user: format!("{uid}:{gid}"),
        network,
        cap_drop: vec!["ALL".into()],
        security_opt,
        read_only_rootfs: true,
        tmpfs: vec![("/tmp".into(), "rw,nosuid,nodev,mode=1777".into())],
        pids_limit: h.options.pids_limit.unwrap_or(DEFAULT_PIDS_LIMIT),
        auto_remove: true,
        mounts,
        env_added,
        memory,
        nano_cpus,
        cpuset_cpus: ra.cpuset_cpus.clone(),
        shm_size,
        gpus,
        runtime: ra.runtime.clone(),
        timeout: h.options.timeout,
        create_dirs,
        create_files: written_files.into_iter().map(PathBuf::from).collect(),
        notes,
    })
}

const NO_NEW_PRIVILEGES: &str = "no-new-privileges";

/// `key=value` or Docker's older `key:value`.
fn split_opt(opt: &str) -> (&str, Option<&str>) {
    match opt.find(['=', ':']) {
        Some(i) => (&opt[..i], Some(&opt[i + 1..])),
        None => (opt, None),
    }
}

fn is_no_new_privileges(opt: &str) -> bool {
    matches!(split_opt(opt), (NO_NEW_PRIVILEGES, None | Some("true")))
}

/// Whether a `--security-opt` keeps the confinement cohort relies on: no-new-privileges and
/// Docker's default seccomp profile stay; AppArmor and SELinux may be narrowed, not disabled.
/// Anything not known to be safe is refused.
pub(crate) fn check_security_opt(opt: &str) -> Result<(), String> {
    let (key, value) = split_opt(opt);
    match (key, value) {
        _ if is_no_new_privileges(opt) => Ok(()),
        (NO_NEW_PRIVILEGES, _) => Err("would let the task gain privileges (setuid binaries); \
             cohort always sets no-new-privileges"
            .into()),
        ("seccomp", _) => Err(
            "would replace Docker's default seccomp profile, which cohort \
             keeps for every container"
                .into(),
        ),
        ("apparmor", Some("unconfined")) => Err("would turn off the AppArmor confinement".into()),
        ("apparmor", Some(p)) if !p.is_empty() => Ok(()),
        ("label", Some("disable")) => Err("would turn off the SELinux confinement".into()),
        ("label", Some(v))
            if ["user:", "role:", "type:", "level:"]
                .iter()
                .any(|p| v.starts_with(p)) =>
        {
            Ok(())
        }
        ("systempaths", _) => {
            Err("would expose the host's /proc and /sys paths Docker masks".into())
        }
        _ => Err(
            "is not a security option cohort knows to be safe (it accepts apparmor=PROFILE, \
             label=user:|role:|type:|level:..., no-new-privileges)"
                .into(),
        ),
    }
}

/// The user containers run as: the calling user, except that root is never passed on: a root
/// caller's containers run as nobody (65534:65534), who is handed what the run needs for the
/// run only (`access.rs`).
pub fn container_user() -> (u32, u32) {
    let uid = rustix::process::getuid().as_raw();
    let gid = rustix::process::getgid().as_raw();
    if uid == 0 {
        (NOBODY, NOBODY)
    } else {
        (uid, gid)
    }
}

/// nobody:nogroup on Debian and most distributions.
pub const NOBODY: u32 = 65534;

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::mlcube::{CubeConfig, Error, Plan, RunRequest, plan};

    fn cube(yaml: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("mlcube.yaml"), yaml).unwrap();
        dir
    }

    fn plan_of(dir: &tempfile::TempDir, req: &RunRequest) -> Result<Plan, Error> {
        let cfg = CubeConfig::load(dir.path()).unwrap();
        plan(&cfg, req, &|_| None, Path::new("/home/tester"))
    }

    #[test]
    fn nothing_turns_the_sandbox_off() {
        // Issue 14: a cube's own security options were applied on local runs.
        let c = cube(
            "docker: {image: i, '--security-opt': seccomp=unconfined, \
             cpu_args: '--security-opt=no-new-privileges=false --security-opt apparmor=unconfined'}\n\
             tasks: {t: {parameters: {outputs: {o: o/}}}}\n",
        );
        let p = plan_of(&c, &RunRequest::new("t")).unwrap();
        assert_eq!(p.hardening.security_opt, ["no-new-privileges"]);
        for dropped in [
            "seccomp=unconfined",
            "no-new-privileges=false",
            "apparmor=unconfined",
        ] {
            assert!(
                p.hardening.notes.iter().any(|n| n.contains(&format!(
                    "--security-opt={dropped} from mlcube.yaml is dropped"
                ))),
                "{dropped}: {:?}",
                p.hardening.notes
            );
        }
        // The user's own option adds confinement, never removes it.
        for bad in [
            "seccomp=unconfined",
            "seccomp:unconfined",
            "seccomp=/tmp/profile.json",
            "no-new-privileges=false",
            "no-new-privileges:false",
            "apparmor=unconfined",
            "label=disable",
            "label:disable",
            "systempaths=unconfined",
            "privileged",
        ] {
            let mut r = RunRequest::new("t");
            r.options.security = Some(bad.into());
            let e = plan_of(&c, &r).unwrap_err();
            assert!(matches!(&e, Error::Sandbox { .. }), "{bad}: {e}");
            assert!(e.hint().is_some());
        }
        for good in [
            "apparmor=docker-default",
            "label=type:svirt_t",
            "no-new-privileges=true",
        ] {
            let mut r = RunRequest::new("t");
            r.options.security = Some(good.into());
            let p = plan_of(&c, &r).unwrap();
            assert_eq!(p.hardening.security_opt[0], "no-new-privileges", "{good}");
            assert!(
                !p.hardening
                    .security_opt
                    .iter()
                    .any(|s| s.contains("unconfined"))
            );
        }
        // Privilege and namespace flags are refused from the cube's run args.
        for bad in [
            "--privileged",
            "--cap-add=SYS_ADMIN",
            "--pid=host",
            "--userns=host",
            "--ipc=host",
            "--uts=host",
            "--device=/dev/sda",
            "--security-opt=seccomp=unconfined --privileged",
        ] {
            let c = cube(&format!(
                "docker: {{image: i, cpu_args: '{bad}'}}\ntasks: {{t: {{parameters: {{outputs: {{o: o/}}}}}}}}\n"
            ));
            let e = plan_of(&c, &RunRequest::new("t")).unwrap_err();
            assert!(e.to_string().contains("run argument"), "{bad}: {e}");
        }
    }
}
