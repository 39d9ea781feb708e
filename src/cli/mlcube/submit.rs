//! `cohort mlcube submit|ls|view|associate`: register cube versions, list them, and ask for a
//! model's association with a benchmark.

use std::path::PathBuf;

use clap::Args;
use cohort::model::Sha256;
use cohort::workflow::{associations, cubes};

use crate::cohort_cli::Settings;
use crate::cohort_cli::error::{CliError, CliResult};
use crate::cohort_cli::session::Session;

#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// The cube's folder, its mlcube.yaml, or MedPerf's container_config.yaml (its
    /// parameters.yaml beside it).
    pub path: PathBuf,
    /// The cube's name in the registry.
    #[arg(long)]
    pub name: String,
    /// A short description shown in listings.
    #[arg(long)]
    pub description: Option<String>,
    /// The additional-files tarball, extracted into the workspace at run time: an https://
    /// URL, or a local file (at most 25 MiB) stored in the registry as a blob.
    #[arg(long, value_name = "URL_OR_PATH")]
    pub additional_files: Option<String>,
    /// The tarball's expected sha256.
    #[arg(long, value_name = "SHA256", requires = "additional_files")]
    pub additional_files_hash: Option<String>,
    /// The image as a `docker save` tarball: an https:// URL, or a local file (at most
    /// 25 MiB) stored in the registry as a blob; its sha256 is recorded.
    #[arg(long, value_name = "URL_OR_PATH", conflicts_with_all = ["pull", "build", "push", "save_image", "local_only"])]
    pub image_tarball: Option<String>,
    /// The image by digest (repo@sha256:...), pulled at run time.
    #[arg(long, value_name = "REF@sha256:DIGEST", conflicts_with_all = ["build", "push", "save_image", "local_only"])]
    pub pull: Option<String>,
    /// Push the local (or built) image to REPO (no tag) as REPO:<name>-v<N> with your Docker
    /// credentials (`docker login`), and record it by digest.
    #[arg(long, value_name = "REPO", conflicts_with_all = ["save_image", "local_only"])]
    pub push: Option<String>,
    /// Store the local (or built) image in the registry as a `docker save` blob (small
    /// images, at most 25 MiB).
    #[arg(long, conflicts_with = "local_only")]
    pub save_image: bool,
    /// Record the local image by id only (`source = "local"`): for a registry used on one
    /// machine, since no other site can get the image.
    #[arg(long)]
    pub local_only: bool,
    /// Build the image from the cube's Dockerfile when it is not on this machine yet.
    #[arg(long)]
    pub build: bool,
    /// A private model: export the local (or built) image and encrypt it under a fresh model
    /// key (sealed to you in the cube record) into FILE (-o). A ciphertext of at most 25 MiB
    /// is stored in the registry at once; a larger one is uploaded by you, then submitted with
    /// --encrypted-image URL. --additional-files (a local file) and parameters.yaml are encrypted under the same key.
    /// Only sites you grant (`mlcube grant`) can run it. Never with --push: an image registry
    /// would publish the plaintext layers.
    #[arg(long, requires = "output", conflicts_with_all = ["push", "pull", "image_tarball", "save_image", "local_only", "encrypted_image"])]
    pub encrypt: bool,
    /// Where --encrypt writes the ciphertext.
    #[arg(short = 'o', long, value_name = "FILE", requires = "encrypt")]
    pub output: Option<PathBuf>,
    /// The ciphertext `--encrypt -o FILE` wrote, uploaded to this http(s) URL: downloaded,
    /// checked against the one made here (sha256, model key) and submitted.
    #[arg(long, value_name = "URL", conflicts_with_all = ["push", "pull", "image_tarball", "save_image", "local_only", "build"])]
    pub encrypted_image: Option<String>,
}

pub fn submit(settings: &Settings, a: SubmitArgs) -> CliResult {
    let s = Session::new(settings);
    let opened = s.open()?;
    let signer = s.signer()?;
    let expected = match &a.additional_files_hash {
        Some(h) => Some(
            h.parse::<Sha256>()
                .map_err(|e| CliError::usage(format!("--additional-files-hash: {e}")))?,
        ),
        None => None,
    };
    let image = match (&a.image_tarball, &a.pull, &a.push) {
        _ if a.encrypt => cubes::ImageChoice::Encrypt {
            build: a.build,
            out: a.output.clone().expect("clap: --encrypt requires -o"),
        },
        _ if a.encrypted_image.is_some() => {
            cubes::ImageChoice::Encrypted(a.encrypted_image.clone().expect("checked"))
        }
        (Some(t), _, _) => cubes::ImageChoice::Tarball(t.clone()),
        (_, Some(p), _) => cubes::ImageChoice::Pull(p.clone()),
        (_, _, Some(repo)) => cubes::ImageChoice::Push {
            repo: repo.clone(),
            build: a.build,
        },
        _ if a.save_image => cubes::ImageChoice::Save { build: a.build },
        _ => cubes::ImageChoice::Local {
            build: a.build,
            local_only: a.local_only,
        },
    };
    let sub = cubes::CubeSubmission {
        path: &a.path,
        name: &a.name,
        description: a.description.clone(),
        additional_files: a.additional_files.clone().map(|u| (u, expected)),
        image,
    };
    let ui = &settings.ui;
    let (submitted, record, ciphertext) = match cubes::submit_cube(
        &s.ctx(),
        &opened,
        &signer,
        &sub,
    )? {
        cubes::CubeSubmitted::Submitted {
            submitted,
            record,
            ciphertext,
        } => (submitted, record, ciphertext),
        cubes::CubeSubmitted::Upload(ct) => {
            if ui.json {
                ui.json(&crate::cohort_cli::json::CiphertextWritten {
                    ciphertext: ct.path.clone(),
                    sha256: ct.sha256.to_string(),
                    bytes: ct.bytes,
                    submitted: false,
                });
            } else {
                ui.out(ct.sha256.to_string());
            }
            ui.status(format!(
                    "encrypted image written to {} ({} bytes, sha256 {}), too large for the registry; next: upload it, then `cohort mlcube submit {} --name {} --encrypted-image URL`",
                    ct.path.display(),
                    ct.bytes,
                    ct.sha256,
                    a.path.display(),
                    a.name
                ));
            return Ok(());
        }
    };
    if let Some(ct) = &ciphertext {
        ui.status(format!(
            "encrypted image written to {} ({} bytes, sha256 {}) and stored in the registry; only you hold its key until you grant it: `cohort mlcube grant -m {} -d DATASET`",
            ct.path.display(),
            ct.bytes,
            ct.sha256,
            record.name
        ));
    }
    if ui.json {
        ui.json(&crate::cohort_cli::json::CubeSubmitted {
            branch: submitted.branch.clone(),
            name: record.name.clone(),
            version: record.version,
            image_id: record.image.id.clone(),
            config_sha256: record.config_file().1.to_string(),
            ciphertext_sha256: ciphertext.as_ref().map(|c| c.sha256.to_string()),
        });
    } else {
        ui.out(&submitted.branch);
        ui.status(format!(
            "cube {} v{} (image {}) written on {}; next: `cohort registry push`, then a maintainer runs `cohort registry merge {}`",
            record.name, record.version, &record.image.id[..19], submitted.branch, submitted.branch
        ));
    }
    Ok(())
}

pub fn ls(settings: &Settings, filter: crate::cohort_cli::filter::ListFilter) -> CliResult {
    let s = Session::new(settings);
    let f = filter.resolve(&s)?;
    let opened = s.open()?;
    if f.off_main() {
        return crate::cohort_cli::filter::print_submissions(
            &s,
            &opened,
            cohort::workflow::SubmissionKind::Mlcube,
            &f,
            "cube",
        );
    }
    // The rows kept with the verified main: a listing of tens of thousands of versions reads
    // one file and copies no field.
    let mut source = cohort::workflow::CubeRowsSource::default();
    let mut rows = opened.cube_rows(&s.ctx(), &mut source)?;
    rows.retain(|r| f.keeps(&r.owner));
    let ui = &settings.ui;
    if ui.json {
        let rows: Vec<crate::cohort_cli::json::CubeRow> = rows
            .iter()
            .map(|r| crate::cohort_cli::json::CubeRow {
                name: &r.name,
                version: r.version,
                owner: &r.owner,
                image_id: &r.image_id,
                path: &r.path,
                sha256: Some(&r.sha256),
            })
            .collect();
        ui.json(&rows);
        return Ok(());
    }
    let mut t = crate::cohort_cli::table::new(&["name", "version", "owner", "image", "created"]);
    for r in &rows {
        t.add_row(vec![
            r.name.to_string(),
            r.version.to_string(),
            r.owner.to_string(),
            r.image_id.get(..19).unwrap_or(&r.image_id).to_string(),
            r.created.to_string(),
        ]);
    }
    crate::cohort_cli::table::print(ui, &t, "no cubes yet");
    Ok(())
}

pub fn view(settings: &Settings, name: &str) -> CliResult {
    let s = Session::new(settings);
    let opened = s.open()?;
    let folder = format!("mlcubes/{}/", name.split(':').next().unwrap_or(name));
    let ix = opened.index_of(&[&folder])?;
    let r = cubes::cube_ref_in(&opened, &ix, name)?;
    let (p, c) = ix.cube(&r.name, r.version).expect("resolved");
    let ui = &settings.ui;
    let local_only = c.image.source == cohort::model::ImageSource::Local;
    if ui.json {
        ui.json(&crate::cohort_cli::json::Viewed {
            path: p.to_string(),
            sha256: r.sha256.to_string(),
            record: c,
            local_only: Some(local_only),
        });
    } else {
        ui.out(format!("# {p} (sha256 {})", r.sha256));
        ui.out(String::from_utf8_lossy(ix.bytes(p).unwrap_or_default()));
    }
    if local_only {
        ui.warn(format!(
            "{} v{}: its image is local-only (submitted with --local-only): only a machine that already holds {} can run it; other sites cannot get it",
            c.name, c.version, c.image.id
        ));
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct AssociateArgs {
    /// The benchmark.
    #[arg(short = 'b', long = "benchmark")]
    pub benchmark: String,
    /// The model cube (name or name:version).
    #[arg(short = 'm', long = "model")]
    pub model: String,
    /// Per-task time limit (e.g. 10m).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub timeout: Option<std::time::Duration>,
    #[command(flatten)]
    pub devices: crate::cohort_cli::devices::DeviceArgs,
}

pub fn associate(settings: &Settings, a: AssociateArgs) -> CliResult {
    let mut s = Session::new(settings);
    s.devices = a.devices.devices()?;
    if a.timeout.is_some() {
        s.task_timeout = a.timeout;
    }
    let opened = s.open()?;
    let signer = s.signer()?;
    let (compat, submitted) =
        associations::associate_model(&s.ctx(), &opened, &signer, &a.benchmark, &a.model)?;
    let ui = &settings.ui;
    crate::cohort_cli::steps::print(ui, &compat.steps);
    match submitted {
        Some(sub) => {
            if let Some(m) = &compat.metrics {
                ui.status(format!("metrics on the demo dataset: {}", fmt_metrics(m)));
            }
            if ui.json {
                ui.json(&crate::cohort_cli::json::AssociationRequested {
                    branch: sub.branch.clone(),
                    report: &compat.report,
                });
            } else {
                ui.out(&sub.branch);
            }
            ui.status(format!("compatibility test passed; association request written on {} (push it, then the {} committee approves)", sub.branch, a.benchmark));
            Ok(())
        }
        None => Err(CliError::verdict(format!(
            "{} failed the {} compatibility test at step {}; nothing was submitted",
            a.model,
            a.benchmark,
            compat.steps.failed().map(|f| f.report.step.as_str()).unwrap_or("?")
        ))
        .hint(format!("fix the cube and try again; `cohort test run -b {} -m PATH` tests a local cube without submitting", a.benchmark))),
    }
}

pub fn fmt_metrics(m: &cohort::model::metrics::Metrics) -> String {
    m.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}
