//! `cohort leaderboard B` and `cohort site`: render released leaderboards from any clone,
//! offline and without keys, as a terminal table, Markdown, JSON, CSV or a static HTML site.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use cohort::report;
use cohort::workflow::release;

use super::error::{CliError, CliResult};
use super::session::Session;
use super::settings::Settings;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Table,
    Markdown,
    Json,
    Csv,
    Html,
}

#[derive(Debug, Args)]
pub struct LeaderboardArgs {
    #[command(flatten)]
    benchmark: super::entity::BenchmarkRef,
    /// How to render it.
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
    /// Write to FILE instead of stdout (with --format html: a folder for the site).
    #[arg(short = 'o', long = "output", value_name = "FILE|DIR")]
    output: Option<PathBuf>,
    /// How the leaderboard changed between releases.
    #[arg(long, conflicts_with = "format")]
    history: bool,
    /// For --format html: the public clone URL shown in the "how to verify" section.
    #[arg(long, value_name = "URL")]
    clone_url: Option<String>,
    /// Committee members: open the sealed pseudonyms and the covered results with your key
    /// and check every cell of the release exactly (`verify` checks what anyone can).
    #[arg(long, conflicts_with_all = ["history", "output"])]
    check: bool,
    /// With --check: the release number (default: the latest).
    #[arg(long, value_name = "N", requires = "check")]
    release: Option<u32>,
}

#[derive(Debug, Args)]
pub struct SiteArgs {
    /// Folder to write the site to.
    #[arg(short = 'o', long = "output", value_name = "DIR")]
    output: PathBuf,
    /// The public clone URL shown in the "how to verify" section.
    #[arg(long, value_name = "URL")]
    clone_url: Option<String>,
}

fn write_site(
    settings: &Settings,
    benches: &[String],
    out: &std::path::Path,
    clone_url: Option<String>,
) -> CliResult {
    let s = Session::new(settings);
    let opened = s.open_local()?;
    let ix = opened.index()?;
    let commit = opened.view()?.to_string();
    let input = release::site_input(&ix, &commit, clone_url, benches)?;
    let files = report::write_site(&input, out).map_err(|e| CliError::user(e.to_string()))?;
    let ui = &settings.ui;
    if ui.json {
        ui.json(&super::json::Wrote {
            files: files.clone(),
            commit: Some(commit.clone()),
        });
    } else {
        for f in &files {
            ui.out(f.display().to_string());
        }
    }
    ui.status(format!(
        "wrote {} file(s) to {} (built from commit {})",
        files.len(),
        out.display(),
        &commit[..10]
    ));
    Ok(())
}

pub fn site(settings: &Settings, args: SiteArgs) -> CliResult {
    write_site(settings, &[], &args.output, args.clone_url)
}

/// `cohort leaderboard B --check`: a committee member's exact check of a release.
fn check(settings: &Settings, bench: &str, number: Option<u32>) -> CliResult {
    let s = Session::new(settings);
    let opened = s.open_local()?;
    let ix = opened.index()?;
    let releases = ix.leaderboards.get(bench);
    let path = match number {
        Some(n) => releases.and_then(|m| m.get(&n)),
        None => releases.and_then(|m| m.values().last()),
    }
    .cloned()
    .ok_or_else(|| {
        CliError::user(format!(
            "benchmark {bench} has no release{}",
            number.map(|n| format!(" {n}")).unwrap_or_default()
        ))
        .hint("`cohort leaderboard B --history` lists the releases")
    })?;
    let (Some(cohort::model::Record::Leaderboard(l)), Some(bytes)) =
        (ix.record(&path), ix.bytes(&path))
    else {
        return Err(CliError::user(format!("{path} is not a readable release")));
    };
    let signer = s.signer()?;
    let checked = release::check_release(&ix, &signer, &path, l, bytes, None)?;
    let ui = &settings.ui;
    if ui.json {
        ui.json(&super::json::ReleaseChecked {
            release: path.clone(),
            ok: true,
            results: checked.results,
            cells: checked.cells,
            mapping_opened: checked.mapping,
            recomputed: checked.recomputed,
            readable_exclusions: checked.readable_exclusions.clone(),
        });
    }
    for p in &checked.readable_exclusions {
        ui.warn(format!(
            "{p} is left out as unreadable, but opens with {}'s key (sealed to some committee members only?)",
            signer.handle
        ));
    }
    ui.status(format!(
        "{path}: {} cell(s) match the {} result(s) they come from{}{}",
        checked.cells,
        checked.results,
        if checked.mapping {
            ", through the sealed pseudonym mapping"
        } else {
            ""
        },
        if checked.recomputed {
            "; the whole record recomputes byte for byte"
        } else {
            "; an older release (layout 1): checked cell by cell"
        }
    ));
    Ok(())
}

pub fn run(settings: &Settings, args: LeaderboardArgs) -> CliResult {
    let benchmark = args.benchmark.clone().name();
    if args.check {
        return check(settings, &benchmark, args.release);
    }
    if let Format::Html = args.format {
        let out = args
            .output
            .clone()
            .ok_or_else(|| CliError::usage("--format html needs -o DIR (the site's folder)"))?;
        return write_site(
            settings,
            std::slice::from_ref(&benchmark),
            &out,
            args.clone_url,
        );
    }
    let s = Session::new(settings);
    let opened = s.open_local()?;
    let ix = opened.index()?;
    let mut buf: Vec<u8> = Vec::new();
    let err = |e: report::ReportError| CliError::user(e.to_string());
    if args.history {
        let all: Vec<_> = release::all(&ix, &benchmark)
            .into_iter()
            .map(|(_, l)| l)
            .collect();
        if all.is_empty() {
            return Err(no_release(&opened, &ix, &benchmark));
        }
        let h = report::history(&all).map_err(err)?;
        if settings.ui.json {
            buf = serde_json::to_vec_pretty(&h).expect("history serializes");
            buf.push(b'\n');
        } else {
            h.write_text(&mut buf).map_err(err)?;
        }
    } else {
        let (_, l) =
            release::latest(&ix, &benchmark).ok_or_else(|| no_release(&opened, &ix, &benchmark))?;
        let format = if settings.ui.json {
            Format::Json
        } else {
            args.format
        };
        match format {
            Format::Table => report::render::table::write(l, &mut buf),
            Format::Markdown => report::render::markdown::write(l, &mut buf),
            Format::Json => report::render::json::write(l, &mut buf),
            Format::Csv => report::render::csv::write(l, &mut buf),
            Format::Html => unreachable!("handled above"),
        }
        .map_err(err)?;
    }
    match &args.output {
        Some(p) => {
            cohort::storage::write_atomic(p, &buf)?;
            if settings.ui.json {
                settings.ui.json(&super::json::Wrote {
                    files: vec![p.clone()],
                    commit: None,
                });
            }
            settings.ui.status(format!("wrote {}", p.display()));
        }
        None => {
            std::io::stdout().write_all(&buf)?;
        }
    }
    Ok(())
}

/// Why there is no leaderboard of `bench`: no such benchmark (nearest names, or waiting for
/// approval), a release waiting for co-signatures, or none made yet.
fn no_release(
    opened: &cohort::workflow::registry_ops::Opened,
    ix: &cohort::trust::Index,
    bench: &str,
) -> CliError {
    if let Err(e) = cohort::workflow::benchmarks::approved_in(opened, ix, bench) {
        return e.into();
    }
    let err = CliError::user(format!("benchmark {bench} has no release yet"));
    match release::waiting_release(opened, bench) {
        Some(branch) => err.hint(format!(
            "a release waits on {branch} for co-signatures: committee members run `cohort registry cosign {branch}`"
        )),
        None => err.hint("the committee releases results with `cohort result release`"),
    }
}
