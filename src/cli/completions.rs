//! Shell completions and manual pages, generated from the same clap definitions as `--help`,
//! so they can never disagree with the binary that prints them.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, CommandFactory};
use clap_complete::Shell;
use serde::Serialize;

use super::error::{CliError, CliResult};
use super::settings::Settings;

#[derive(Args, Debug)]
pub struct CompletionsArgs {
    /// The shell to complete for; e.g. `cohort completions bash > ~/.local/share/bash-completion/completions/cohort`.
    #[arg(value_enum)]
    shell: Shell,
}

#[derive(Args, Debug)]
pub struct ManArgs {
    /// Write one page per command (cohort.1, cohort-registry.1, cohort-registry-push.1, ...)
    /// into this folder instead of printing cohort(1) on stdout.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

/// `man --dir --json`.
#[derive(Serialize)]
struct Written {
    dir: PathBuf,
    pages: Vec<String>,
}

pub fn completions(_settings: &Settings, args: CompletionsArgs) -> CliResult {
    // From the plain definitions: there every global option is on every subcommand, so it
    // completes after any of them (the help hides those copies to explain them once).
    let mut cmd = super::Cli::command();
    let mut buf = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "cohort", &mut buf);
    stdout(&buf)
}

/// Data on stdout; a reader that stops early (`| head`) is not an error.
fn stdout(bytes: &[u8]) -> CliResult {
    match std::io::stdout().lock().write_all(bytes) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

pub fn man(settings: &Settings, args: ManArgs) -> CliResult {
    let pages = pages().map_err(|e| CliError::user(format!("rendering the manual: {e}")))?;
    let Some(dir) = args.dir else {
        return stdout(&pages[0].1);
    };
    std::fs::create_dir_all(&dir).map_err(|e| CliError::io(&dir, &e))?;
    for (name, bytes) in &pages {
        let path = dir.join(name);
        cohort::storage::write_atomic(&path, bytes).map_err(|e| CliError::io(&path, &e))?;
    }
    let ui = &settings.ui;
    if ui.json {
        ui.json(&Written {
            dir: dir.clone(),
            pages: pages.into_iter().map(|(n, _)| n).collect(),
        });
    } else {
        ui.status(format!(
            "wrote {} manual pages to {}; read them with `man -l {}/cohort.1` or add the folder to MANPATH",
            pages.len(),
            dir.display(),
            dir.display()
        ));
    }
    Ok(())
}

/// Every visible command's page, the top-level one first, as (file name, roff).
fn pages() -> std::io::Result<Vec<(String, Vec<u8>)>> {
    fn walk(cmd: &clap::Command, out: &mut Vec<(String, Vec<u8>)>) -> std::io::Result<()> {
        let man = clap_mangen::Man::new(cmd.clone());
        let mut buf = Vec::new();
        man.render(&mut buf)?;
        out.push((man.get_filename(), buf));
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            walk(sub, out)?;
        }
        Ok(())
    }
    let mut cmd = super::help::command().disable_help_subcommand(true);
    cmd.build();
    let mut out = Vec::new();
    walk(&cmd, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shell_completes_every_command() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let mut cmd = super::super::Cli::command();
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut cmd, "cohort", &mut buf);
            let text = String::from_utf8(buf).unwrap();
            // Fish spells long options `-l NAME`.
            let long = |o: &str| match shell {
                Shell::Fish => format!("-l {o}"),
                _ => format!("--{o}"),
            };
            let words = ["registry", "set-priority", "cleanup"].map(String::from);
            for word in words
                .into_iter()
                .chain([long("benchmark"), long("registry")])
            {
                assert!(text.contains(&word), "{shell:?} completions lack {word}");
            }
        }
    }

    #[test]
    fn one_page_per_visible_command_with_its_options() {
        let pages = pages().unwrap();
        assert_eq!(pages[0].0, "cohort.1");
        let names: Vec<&str> = pages.iter().map(|(n, _)| n.as_str()).collect();
        for want in [
            "cohort-registry.1",
            "cohort-registry-push.1",
            "cohort-storage-cleanup.1",
        ] {
            assert!(names.contains(&want), "no {want} in {names:?}");
        }
        assert!(
            !names.iter().any(|n| n.contains("serve")),
            "hidden commands have no page"
        );
        let top = String::from_utf8(pages[0].1.clone()).unwrap();
        assert!(top.contains(".TH cohort 1"), "{}", &top[..200]);
        assert!(top.contains("registry"), "the top page names its commands");
        let push = &pages
            .iter()
            .find(|(n, _)| n == "cohort-registry-push.1")
            .unwrap()
            .1;
        assert!(String::from_utf8_lossy(push).contains("push"));
    }
}
