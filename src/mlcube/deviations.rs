//! The one table of deliberate deviations from MLCube 0.0.9 (docs/mlcube.md repeats it; the
//! conformance test marks every deviating case by these ids, so no difference is silent).

/// A deliberate difference from what MLCube 0.0.9 does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deviation {
    /// Stable id the conformance test refers to.
    pub id: &'static str,
    /// The quirk of `conformance/mlcube/README.md` this fixes (`Q4`), or `-`.
    pub quirk: &'static str,
    /// What 0.0.9 does.
    pub mlcube: &'static str,
    /// What cohort does instead, and why.
    pub cohort: &'static str,
}

pub const DEVIATIONS: &[Deviation] = &[
    Deviation {
        id: "no-shell",
        quirk: "Q8",
        mlcube: "pastes cpu_args, gpu_args, string env_args, the entrypoint's arguments and the \
                 task arguments into one /bin/sh command line: words are split there, $VAR, \
                 $(...) and quotes are evaluated on the host, paths with spaces break apart",
        cohort: "no shell is involved: run args are split into words with the same quoting rules \
                 but $-expansion, backticks and shell operators are refused; paths, env values \
                 and arguments with spaces stay one argument",
    },
    Deviation {
        id: "entrypoint-words",
        quirk: "Q2",
        mlcube: "passes only the first shlex word of a multi-word entrypoint to --entrypoint and \
                 re-splits the rest through /bin/sh, losing their quoting",
        cohort: "the words after the first are passed exactly as shlex splits them",
    },
    Deviation {
        id: "missing-inputs",
        quirk: "Q4",
        mlcube: "creates every missing directory parameter, inputs included, and the parent \
                 folder of every file parameter, then runs the task without the input",
        cohort: "a missing input (file or directory) is an error naming the parameter and path; \
                 only the workspace and the outputs' folders are created",
    },
    Deviation {
        id: "dash-override",
        quirk: "Q6",
        mlcube: "silently ignores `--name=value` on the command line",
        cohort: "refuses it with the hint to write name=value",
    },
    Deviation {
        id: "unknown-override",
        quirk: "Q6",
        mlcube: "silently ignores name=value when no parameter has that name",
        cohort: "refuses a name no task of the cube has (a typo would otherwise run on the \
                 default data)",
    },
    Deviation {
        id: "override-equals",
        quirk: "Q6",
        mlcube: "truncates an override value at its second `=` (a=b=c sets a to b)",
        cohort: "keeps the whole value after the first `=`",
    },
    Deviation {
        id: "run-args-api",
        quirk: "Q7",
        mlcube: "passes any cpu_args/gpu_args to `docker run`",
        cohort: "maps --gpus, --shm-size, --runtime, --memory/-m, --cpuset-cpus, --cpus, \
                 --network, --security-opt and -e onto the Engine API; -u/--user, --rm, -i/-t \
                 are accepted but superseded by the hardening; any other flag (--privileged, \
                 -v, --ipc, --cap-add, ...) is refused. Registered cubes may only use --gpus, \
                 --shm-size and --runtime=nvidia",
    },
    Deviation {
        id: "hardening",
        quirk: "Q11",
        mlcube: "adds nothing to `docker run`: root user, default capabilities, writable root \
                 filesystem and inputs, default network, container left behind",
        cohort: "adds the hardening listed separately in the plan: calling uid:gid, cap_drop \
                 ALL, no-new-privileges, read-only root filesystem with a tmpfs /tmp and \
                 HOME=/tmp, pids limit, no network, read-only inputs, auto-removal, timeout",
    },
    Deviation {
        id: "no-links",
        quirk: "-",
        mlcube: "creates and mounts folders through any symbolic link on the way (os.makedirs, \
                 docker -v resolve it)",
        cohort: "below the run's folder (the workspace locally, COHORT_HOME for registered cubes) \
                 a link on the way to a folder it creates or mounts is refused: a container that \
                 could write there may have planted it (issue 14); pass the real path instead",
    },
    Deviation {
        id: "security-opt",
        quirk: "-",
        mlcube: "passes the runner's --security-opt (and any in cpu_args/gpu_args) to docker run",
        cohort: "drops security options from the cube's files (listed in the plan's notes); the \
                 user's --security may add confinement but is refused when it would turn off \
                 no-new-privileges, Docker's default seccomp profile, AppArmor or SELinux",
    },
    Deviation {
        id: "docker-executable",
        quirk: "-",
        mlcube: "runs the `docker:` executable of the runner section (docker, podman, sudo docker)",
        cohort: "talks to the Docker Engine API (local socket or DOCKER_HOST); the key is accepted \
                 and ignored",
    },
    Deviation {
        id: "one-task",
        quirk: "-",
        mlcube: "runs a comma-separated list of tasks given to --task",
        cohort: "runs one task per invocation (as 0.0.9, the only task of a one-task cube is the \
                 default)",
    },
    Deviation {
        id: "input-limits",
        quirk: "-",
        mlcube: "reads a configuration of any size and nesting, and resolves interpolations \
                 without bounds (a 620-byte file whose references double at each level takes \
                 minutes)",
        cohort: "refuses, naming the file or key: a configuration over 1 MiB, flow nesting \
                 deeper than 32 or too many flow collections for its size, reference chains \
                 deeper than 32, an interpolated value over 64 KiB or 1 MiB of interpolated \
                 output in all; each referenced value is resolved once",
    },
    Deviation {
        id: "site-gpus",
        quirk: "-",
        mlcube: "`--gpus` sets the runner's --gpus; gpu_args or cpu_args are chosen by \
                 platform.accelerator_count alone, so a cube asking for GPUs keeps them",
        cohort: "the site's --gpus (mlcube run and the commands that run registered cubes) \
                 replaces the cube's own request: a request selects gpu_args, 0 selects cpu_args \
                 and removes every GPU request; --shm-size likewise replaces the cube's",
    },
];

/// The deviation with this id.
pub fn deviation(id: &str) -> Option<&'static Deviation> {
    DEVIATIONS.iter().find(|d| d.id == id)
}
