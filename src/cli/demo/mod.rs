//! `cohort demo`: the whole MedPerf workflow played by every role in its own clone and home,
//! over a bare remote, by running the real `cohort` commands and printing each one, so the demo
//! doubles as a walkthrough.

mod airgap;
mod stage;

use std::path::PathBuf;

use clap::Args;

use super::error::{CliError, CliResult};
use super::settings::Settings;
use airgap::AIR_GAPPED;
use stage::{Stage, materialize};

mod fixtures {
    include!(concat!(env!("OUT_DIR"), "/fixtures.rs"));
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Keep everything in DIR (DIR/remote.git, and DIR/<role>/ with each role's clone and
    /// COHORT_HOME) instead of a temporary folder removed at the end.
    #[arg(long, value_name = "DIR")]
    keep: Option<PathBuf>,
}

const COMMITTEE: &[&str] = &["carol", "dave"];
const MODEL_OWNERS: &[&str] = &["mo", "nina"];
const HOSPITALS: &[&str] = &["hosp-a", "hosp-b"];

pub fn run(settings: &Settings, args: DemoArgs) -> CliResult {
    let _tmp;
    let root = match &args.keep {
        Some(d) => {
            let io = |e: std::io::Error| CliError::io(d, &e);
            if d.is_dir() && std::fs::read_dir(d).map_err(io)?.next().is_some() {
                return Err(CliError::user(format!("{} is not empty", d.display()))
                    .hint("give --keep a new or empty folder"));
            }
            std::fs::create_dir_all(d).map_err(io)?;
            d.canonicalize().map_err(io)?
        }
        None => {
            _tmp = tempfile::Builder::new().prefix("cohort-demo-").tempdir()?;
            _tmp.path().to_path_buf()
        }
    };
    // Ctrl-C stops the demo after the step under way; returning drops `_tmp`, which removes
    // the temporary folder (a --keep folder stays for inspection).
    let cancel = super::session::cancel_on_ctrl_c();
    let stage = Stage {
        cancel,
        root: root.clone(),
        exe: std::env::current_exe()
            .map_err(|e| CliError::env(format!("cannot find the cohort binary: {e}")))?,
        verbose: settings.ui.verbose,
        json: settings.ui.json,
        steps: Default::default(),
    };
    materialize(&stage.fixtures())?;
    let busybox = std::path::Path::new("/bin/busybox");
    if !busybox.is_file() {
        return Err(CliError::env("the demo builds its MLCube images FROM scratch with a static busybox, and /bin/busybox is missing")
            .hint("install it: apt-get install -y busybox-static"));
    }
    for entry in std::fs::read_dir(stage.fixtures().join("cubes"))? {
        let project = entry?.path().join("project");
        if project.is_dir() {
            std::fs::copy(busybox, project.join("busybox"))?;
        }
    }
    let everyone: Vec<&str> = std::iter::once("admin")
        .chain(COMMITTEE.iter().copied())
        .chain(MODEL_OWNERS.iter().copied())
        .chain(HOSPITALS.iter().copied())
        .collect();

    stage.say("Creating a user: every participant makes a key; the admin creates the registry");
    for r in &everyone {
        stage.cohort(r, &["key", "generate", "--handle", r, "--no-passphrase"])?;
    }
    let clone = stage.clone_dir("admin");
    let id = stage.cohort(
        "admin",
        &[
            "registry",
            "init",
            clone.to_str().expect("utf-8 path"),
            "--name",
            "heart-demo",
            "--admin",
            "admin",
        ],
    )?;
    let id = id.trim().to_string();
    let remote = stage.remote();
    let remote_s = remote.to_str().expect("utf-8 path");
    stage.git(
        "admin",
        &[
            "init",
            "--quiet",
            "--bare",
            "--initial-branch=main",
            remote_s,
        ],
    )?;
    stage.cohort("admin", &["registry", "install-hook", remote_s])?;
    stage.git("admin", &["remote", "add", "origin", remote_s])?;
    stage.git("admin", &["push", "--quiet", "-u", "origin", "main"])?;

    stage.say("Everyone clones the registry, pinned to its id, and asks to join");
    for r in everyone.iter().skip(1).filter(|r| **r != AIR_GAPPED) {
        let dest = stage.clone_dir(r);
        stage.cohort(
            r,
            &[
                "registry",
                "clone",
                remote_s,
                dest.to_str().expect("utf-8 path"),
                "--root",
                &id,
            ],
        )?;
        stage.cohort(
            r,
            &[
                "user",
                "request",
                "--name",
                &format!("{r} (demo)"),
                "--email",
                &format!("{r}@demo.invalid"),
            ],
        )?;
        stage.cohort(r, &["registry", "push"])?;
    }
    stage.say(&format!("{AIR_GAPPED} has no network at all: its gateway carries bundles on a disk (registry in, submissions out)"));
    stage.gateway_clone(remote_s, &id)?;
    stage.carry_registry("registry-0.bundle", &[], Some(&id))?;
    stage.cohort(
        AIR_GAPPED,
        &[
            "user",
            "request",
            "--name",
            &format!("{AIR_GAPPED} (demo)"),
            "--email",
            &format!("{AIR_GAPPED}@demo.invalid"),
        ],
    )?;
    stage.carry_submissions("submissions-0.bundle")?;
    // The air-gapped hospital syncs and pushes through bundles; everyone else directly.
    let (carried_in, carried_out) = (std::cell::Cell::new(0), std::cell::Cell::new(0));
    let sync = |role: &str| -> CliResult {
        if role == AIR_GAPPED {
            carried_in.set(carried_in.get() + 1);
            stage.carry_registry(
                &format!("registry-{}.bundle", carried_in.get()),
                &["heart"],
                None,
            )
        } else {
            stage.cohort(role, &["registry", "sync"]).map(drop)
        }
    };
    let push = |role: &str| -> CliResult {
        if role == AIR_GAPPED {
            carried_out.set(carried_out.get() + 1);
            stage.carry_submissions(&format!("submissions-{}.bundle", carried_out.get()))
        } else {
            stage.cohort(role, &["registry", "push"]).map(drop)
        }
    };

    stage.say("The admin admits everyone and lets carol own benchmarks");
    stage.cohort("admin", &["registry", "sync"])?;
    stage.cohort("admin", &["registry", "status"])?;
    for r in everyone.iter().skip(1) {
        stage.cohort("admin", &["user", "approve", r])?;
    }
    stage.cohort(
        "admin",
        &["user", "grant", "carol", "--role", "benchmark-owner"],
    )?;

    let cubes = stage.fixtures().join("cubes");
    let cube = |c: &str| cubes.join(c).display().to_string();
    let data = stage.fixtures().join("data");
    let demo_tar = data.join("demo.tar.gz").display().to_string();

    stage.say("Benchmark submission: the committee registers its three MLCubes");
    for r in everyone.iter().skip(1).filter(|r| **r != AIR_GAPPED) {
        stage.cohort(r, &["registry", "sync"])?;
    }
    for (dir, name) in [
        ("prep", "heart-prep"),
        ("model-good", "heart-logreg"),
        ("metrics", "heart-metrics"),
    ] {
        stage.cohort(
            "carol",
            &[
                "mlcube",
                "submit",
                &cube(dir),
                "--name",
                name,
                "--build",
                "--save-image",
            ],
        )?;
    }
    stage.cohort("carol", &["registry", "merge", "--all"])?;

    stage.say("carol submits the benchmark: the reference workflow runs on the demo dataset first");
    stage.cohort(
        "carol",
        &[
            "benchmark",
            "submit",
            "--name",
            "heart",
            "--description",
            "10-year cardiovascular risk from tabular patient records",
            "--data-preparator",
            "heart-prep",
            "--reference-model",
            "heart-logreg",
            "--metrics",
            "heart-metrics",
            "--demo-dataset",
            &demo_tar,
            "--committee",
            "dave",
            "--policy",
            "cross-product",
            "--min-datasets",
            "2",
            "--primary-metric",
            "auc",
        ],
    )?;
    stage.cohort("carol", &["registry", "push"])?;
    stage.cohort("admin", &["benchmark", "ls", "--pending"])?;
    stage.cohort("admin", &["benchmark", "approve", "heart"])?;

    stage.say("Model owners submit their models and ask to join (a compatibility test runs first)");
    stage.say("(sites share only the git remote: before each site acts, the demo removes every cube image from the Docker Engine; the site loads them from the tarballs stored in the registry)");
    stage.cohort("mo", &["registry", "sync"])?;
    stage.forget_images(settings, "mo")?;
    stage.cohort(
        "mo",
        &[
            "mlcube",
            "submit",
            &cube("model-weak"),
            "--name",
            "bmi-only",
            "--build",
            "--save-image",
        ],
    )?;
    stage.cohort("mo", &["registry", "merge", "--all"])?;
    stage.cohort(
        "mo",
        &["mlcube", "associate", "-b", "heart", "-m", "bmi-only"],
    )?;
    stage.cohort("mo", &["registry", "push"])?;
    stage.cohort("nina", &["registry", "sync"])?;
    stage.forget_images(settings, "nina")?;
    stage.cohort(
        "nina",
        &[
            "mlcube",
            "submit",
            &cube("model-crash"),
            "--name",
            "deep-risk",
            "--build",
            "--save-image",
        ],
    )?;
    stage.cohort("nina", &["registry", "merge", "--all"])?;
    stage.line(
        "\n(nina's model crashes on the demo data: its compatibility test refuses the request)",
    );
    if stage
        .cohort(
            "nina",
            &["mlcube", "associate", "-b", "heart", "-m", "deep-risk"],
        )
        .is_ok()
    {
        return Err(CliError::new(
            super::error::Exit::Internal,
            "the crashing model passed its compatibility test",
        ));
    }

    stage.say("The committee approves the model association and sets priorities");
    stage.cohort("dave", &["registry", "sync"])?;
    stage.cohort("dave", &["association", "ls", "--pending"])?;
    stage.cohort(
        "dave",
        &["association", "approve", "-b", "heart", "-m", "bmi-only"],
    )?;
    stage.cohort(
        "carol",
        &[
            "association",
            "set-priority",
            "-b",
            "heart",
            "-m",
            "heart-logreg",
            "-p",
            "10",
        ],
    )?;

    stage.say("Dataset preparation and association: each hospital prepares its own export locally");
    let hospital_data = [
        ("hosp-a", "hospital-a", "ward-a"),
        ("hosp-b", "hospital-b", "cardio-b"),
    ];
    for (role, folder, name) in hospital_data {
        let raw = data.join(folder);
        sync(role)?;
        stage.forget_images(settings, role)?;
        stage.cohort(
            role,
            &[
                "dataset",
                "prepare",
                "-b",
                "heart",
                "--name",
                name,
                "--data-path",
                &raw.join("data").display().to_string(),
                "--labels-path",
                &raw.join("labels").display().to_string(),
            ],
        )?;
        stage.cohort(role, &["--yes", "dataset", "submit", name])?;
        // Statistics are sealed to the committee: a committee member merges them, after
        // decrypting them (a file sealed to anyone else is refused).
        push(role)?;
        stage.cohort("carol", &["registry", "merge", "--all"])?;
        sync(role)?;
        stage.forget_images(settings, role)?;
        stage.cohort(role, &["dataset", "associate", "-d", name, "-b", "heart"])?;
        push(role)?;
    }
    stage.cohort("carol", &["registry", "sync"])?;
    for (_, _, name) in hospital_data {
        stage.cohort(
            "carol",
            &["association", "approve", "-b", "heart", "-d", name],
        )?;
    }
    stage.cohort("carol", &["association", "ls"])?;

    stage.say("Executing the benchmark: each hospital runs every approved model on its own data");
    for (role, _, name) in hospital_data {
        sync(role)?;
        stage.forget_images(settings, role)?;
        stage.cohort(role, &["benchmark", "run", "-b", "heart", "-d", name])?;
        stage.cohort(
            role,
            &["--yes", "result", "submit", "-b", "heart", "-d", name],
        )?;
        push(role)?;
        stage.cohort("carol", &["registry", "merge", "--all"])?;
    }

    stage.say("Release: the committee aggregates the results under its sharing policy and signs a leaderboard");
    stage.cohort("carol", &["registry", "sync"])?;
    stage.cohort("carol", &["result", "ls", "--registered"])?;
    stage.cohort("carol", &["result", "release", "-b", "heart"])?;

    stage.say(
        "Anyone can check everything offline; only the committee and each hospital read the values",
    );
    let observer = stage.clone_dir("observer");
    std::fs::create_dir_all(stage.role_dir("observer"))?;
    stage.cohort(
        "observer",
        &[
            "registry",
            "clone",
            remote_s,
            observer.to_str().expect("utf-8 path"),
            "--root",
            &id,
        ],
    )?;
    stage.cohort("observer", &["verify"])?;
    stage.cohort("observer", &["leaderboard", "heart"])?;
    let site = stage.root.join("site");
    stage.cohort(
        "observer",
        &["site", "-o", site.to_str().expect("utf-8 path")],
    )?;
    if stage.json {
        let board = stage.run_cohort("observer", &["leaderboard", "heart", "--json"], false)?;
        let leaderboard: serde_json::Value = serde_json::from_str(&board).map_err(|e| {
            CliError::new(
                super::error::Exit::Internal,
                format!("the leaderboard's JSON: {e}"),
            )
        })?;
        settings.ui.json(&DemoJson {
            registry_id: id.clone(),
            steps: stage.steps.take(),
            leaderboard,
            site: args.keep.as_ref().map(|_| site.join("index.html")),
            kept: args.keep.clone(),
        });
        return Ok(());
    }
    println!("\ndemo finished: registry {id}");
    if args.keep.is_some() {
        println!(
            "the public leaderboard page: {}",
            site.join("index.html").display()
        );
    }
    if let Some(d) = &args.keep {
        println!(
            "kept in {}: remote.git and one folder per role (registry clone + cohort-home)",
            d.display()
        );
    }
    Ok(())
}

/// `demo --json`: what ran, and the leaderboard it ended with (`leaderboard --json`'s shape).
#[derive(serde::Serialize)]
struct DemoJson {
    registry_id: String,
    steps: Vec<stage::DemoStep>,
    leaderboard: serde_json::Value,
    /// The static site's page, when the demo's folder is kept.
    site: Option<PathBuf>,
    kept: Option<PathBuf>,
}
