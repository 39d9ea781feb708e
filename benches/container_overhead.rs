//! Container task overhead against docs/design.md's target: a task run by `cohort mlcube run` within
//! 5% of a bare `docker run` of the same image, command and mounts.
//!
//! `cargo bench --bench container_overhead` (needs the Docker Engine and busybox-static). Builds a
//! busybox image `FROM scratch`, then interleaves ROUNDS (default 15, env COHORT_BENCH_RUNS) of:
//! `docker run --rm --network none --user U:G` with a read-only input and a writable output
//! mount, and `cohort mlcube run` of a cube whose task does the same. Prints medians and the
//! ratio; the whole `cohort` process is timed (start-up, planning, image check, container
//! create/start/wait/logs/remove).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_cohort");
/// The image's entrypoint: reads MLCube-style `--name=path` arguments, copies input to output.
const RUN_SH: &str = r#"for a in "$@"; do case "$a" in --data=*) i="${a#--data=}";; --result=*) o="${a#--result=}";; esac; done
rm -f "$o/copy.txt"; cat "$i/data.txt" > "$o/copy.txt" && echo done
"#;

fn busybox() -> PathBuf {
    ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .expect("busybox-static is needed (apt-get install -y busybox-static)")
}

fn run(cmd: &mut Command) -> Duration {
    let t = Instant::now();
    let out = cmd.output().expect("the command starts");
    let took = t.elapsed();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("container_overhead: run with `cargo bench --bench container_overhead`");
        return;
    }
    if !Path::new("/var/run/docker.sock").exists() {
        eprintln!("container_overhead: no Docker Engine at /var/run/docker.sock");
        return;
    }
    let rounds: usize = std::env::var("COHORT_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(15);
    let tmp = tempfile::tempdir().unwrap();
    let cube = tmp.path().join("cube");
    let build = cube.join("build");
    std::fs::create_dir_all(&build).unwrap();
    std::fs::copy(busybox(), build.join("busybox")).unwrap();
    std::fs::write(
        build.join("Dockerfile"),
        "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\nCOPY run.sh /run.sh\nENTRYPOINT [\"/bin/sh\", \"/run.sh\"]\n",
    )
    .unwrap();
    std::fs::write(build.join("run.sh"), RUN_SH).unwrap();
    let tag = format!("cohort-bench/overhead:{}", std::process::id());
    run(Command::new("docker")
        .args(["build", "-q", "-t", &tag])
        .arg(&build));
    // The cube's task gets its input and output as parameters, like any MLCube task.
    std::fs::write(
        cube.join("mlcube.yaml"),
        format!(
            "name: overhead\ndocker: {{image: '{tag}'}}\ntasks:\n  copy:\n    parameters:\n      inputs: {{data: {{type: directory, default: in}}}}\n      outputs: {{result: {{type: directory, default: out}}}}\n"
        ),
    )
    .unwrap();
    let ws = cube.join("workspace");
    std::fs::create_dir_all(ws.join("in")).unwrap();
    std::fs::create_dir_all(ws.join("out")).unwrap();
    std::fs::write(ws.join("in/data.txt"), "payload\n").unwrap();
    // A root caller's containers run as nobody: the bare run needs a writable output too. (cohort
    // gives what its runs wrote back to the caller, so the task replaces, not rewrites, its file.)
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(ws.join("out"), std::fs::Permissions::from_mode(0o777)).unwrap();
    let home = tmp.path().join("home");
    let (uid, gid) = cohort::mlcube::container_user();

    // Both start from a warm engine and page cache.
    let docker = || {
        let mut c = Command::new("docker");
        c.args(["run", "--rm", "--network", "none", "--user"])
            .arg(format!("{uid}:{gid}"))
            .arg("-v")
            .arg(format!("{}:/in:ro", ws.join("in").display()))
            .arg("-v")
            .arg(format!("{}:/out", ws.join("out").display()))
            .args([tag.as_str(), "copy", "--data=/in", "--result=/out"]);
        c
    };
    let cohort = || {
        let mut c = Command::new(BIN);
        c.args(["mlcube", "run"])
            .arg(&cube)
            .args(["--task", "copy"])
            .env("COHORT_HOME", &home);
        c
    };
    run(&mut docker());
    run(&mut cohort());
    let mut bare = Vec::new();
    let mut ours = Vec::new();
    for _ in 0..rounds {
        bare.push(run(&mut docker()));
        ours.push(run(&mut cohort()));
    }
    assert_eq!(
        std::fs::read_to_string(ws.join("out/copy.txt")).unwrap(),
        "payload\n"
    );
    let _ = Command::new("docker").args(["rmi", "-f", &tag]).output();
    let (b, o) = (median(bare), median(ours));
    println!("## container task overhead ({rounds} interleaved rounds, medians)");
    println!("| measurement | time |");
    println!("|---|---|");
    println!("| `docker run --rm --network none` (CLI) | {} |", ms(b));
    println!("| `cohort mlcube run` (whole process) | {} |", ms(o));
    println!(
        "| ratio cohort / docker run | {:.2}x |",
        o.as_secs_f64() / b.as_secs_f64()
    );
}
