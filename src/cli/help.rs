//! What the user reads before any command runs: the clap command tree as shown (global options
//! explained once, at the top and in `cohort help options`, not under every subcommand), and
//! clap's usage errors without a "tip" that points at an unrelated flag.

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Arg, Command, CommandFactory};

use super::Cli;
use super::settings::GLOBAL;

/// The line each subcommand's help ends with instead of repeating the global options.
const POINTER: &str = "Global options (--registry, --as, --json, -q, -v, --offline, -y, ...): see `cohort help options`";

/// The command tree as parsed and shown.
pub fn command() -> Command {
    let cmd = Cli::command().after_help(
        "Global options are explained in `cohort help options`; each command accepts them.",
    );
    // Clap copies a global option into each subcommand that lacks one of that id when the tree
    // is built: give each subcommand a hidden copy first (its own subcommands inherit that).
    let hidden: Vec<Arg> = cmd
        .get_arguments()
        .filter(|a| a.is_global_set())
        .map(|a| a.clone().hide(true))
        .collect();
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .collect();
    names.into_iter().fold(cmd, |cmd, name| {
        cmd.mut_subcommand(name, |c| {
            hidden
                .iter()
                .cloned()
                .fold(c, Command::arg)
                .after_help(POINTER)
                .mut_subcommands(|sub| sub.after_help(POINTER))
        })
    })
}

/// `cohort help options`: the global options with their long help, and where each can also be
/// set from the environment.
pub fn options_topic() -> String {
    let globals: Vec<Arg> = Cli::command()
        .get_arguments()
        .filter(|a| a.is_global_set())
        .cloned()
        .collect();
    let mut topic = Command::new("options")
        .bin_name("cohort")
        .disable_help_flag(true)
        .disable_version_flag(true)
        .help_template(
            "Global options: every cohort command accepts them, before or after the command's \
             name (`cohort --json benchmark ls` = `cohort benchmark ls --json`).\n\n{all-args}",
        )
        .next_help_heading(GLOBAL);
    for a in globals {
        topic = topic.arg(a.global(false));
    }
    topic.render_long_help().to_string()
}

/// Whether argv asks for a help topic (`cohort help options`).
pub fn topic_of(argv: &[String]) -> Option<&'static str> {
    match argv.get(1..).unwrap_or_default() {
        [h, t] if h == "help" && t == "options" => Some("options"),
        _ => None,
    }
}

/// Clap suggests the most similar flag, however dissimilar (`--frobnicate` -> `--from-git-env`,
/// even one of another subcommand). Such a tip misleads; a close one (`--benchmrak`) helps. A
/// distant tip is dropped, and with it the suggested flag clap wrote into the usage line.
pub fn drop_unrelated_tip(e: clap::Error, cmd: &Command, argv: &[String]) -> clap::Error {
    if e.kind() != ErrorKind::UnknownArgument {
        return e;
    }
    let Some(ContextValue::String(invalid)) = e.get(ContextKind::InvalidArg) else {
        return e;
    };
    let invalid = invalid.clone();
    let suggested: Vec<String> = match (
        e.get(ContextKind::SuggestedArg),
        e.get(ContextKind::Suggested),
    ) {
        (Some(ContextValue::String(s)), _) => vec![s.clone()],
        (_, Some(ContextValue::StyledStrs(tips))) => tips
            .iter()
            .filter_map(|t| {
                let t = t.to_string();
                // "'SUB --flag' exists": a flag of another subcommand.
                let inner = t.strip_prefix('\'')?.strip_suffix("' exists")?.to_string();
                inner.rsplit(' ').next().map(str::to_string)
            })
            .collect(),
        _ => return e,
    };
    if suggested.is_empty() || suggested.iter().any(|s| close(&invalid, s)) {
        return e;
    }
    let sub = deepest(cmd, argv, &invalid);
    let mut fresh = clap::Error::new(ErrorKind::UnknownArgument).with_cmd(sub);
    fresh.insert(ContextKind::InvalidArg, ContextValue::String(invalid));
    fresh.insert(
        ContextKind::Usage,
        ContextValue::StyledStr(sub.clone().render_usage()),
    );
    fresh
}

/// The subcommand argv reaches (by names and aliases) before the unknown flag.
fn deepest<'c>(cmd: &'c Command, argv: &[String], invalid: &str) -> &'c Command {
    let mut at = cmd;
    for word in argv.iter().skip(1) {
        if word.starts_with(invalid) {
            break;
        }
        if let Some(sub) = at.find_subcommand(word) {
            at = sub;
        }
    }
    at
}

/// A typo, not another word: at most a third of the letters differ (two for short flags).
fn close(typed: &str, suggested: &str) -> bool {
    let a: Vec<char> = typed.trim_start_matches('-').chars().collect();
    let b: Vec<char> = suggested.trim_start_matches('-').chars().collect();
    osa_distance(&a, &b) <= (a.len().max(b.len()) / 3).max(2)
}

/// Edit distance counting a swap of neighbours as one edit.
fn osa_distance(a: &[char], b: &[char]) -> usize {
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every argument of every command says what it is: a user reading `--help` never meets
    /// a bare `--name <NAME>`.
    #[test]
    fn every_argument_has_a_description() {
        fn walk(cmd: &Command, path: &str, missing: &mut Vec<String>) {
            for a in cmd.get_arguments() {
                if a.is_hide_set() {
                    continue;
                }
                let empty = a
                    .get_help()
                    .map(|h| h.to_string().trim().is_empty())
                    .unwrap_or(true);
                if empty {
                    missing.push(format!("{path} {}", a.get_id()));
                }
            }
            for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&command(), "cohort", &mut missing);
        assert!(missing.is_empty(), "arguments without help: {missing:#?}");
    }

    #[test]
    fn global_options_are_shown_once() {
        let mut cmd = command();
        let top = cmd.render_help().to_string();
        assert!(top.contains("--registry"), "{top}");
        let sub = cmd
            .find_subcommand_mut("user")
            .and_then(|u| u.find_subcommand_mut("approve"))
            .expect("user approve exists")
            .render_help()
            .to_string();
        assert!(!sub.contains("--registry <PATH>"), "{sub}");
        assert!(sub.contains("cohort help options"), "{sub}");
        let topic = options_topic();
        for flag in ["--registry", "--as", "--json", "--offline", "COHORT_HOME"] {
            assert!(topic.contains(flag), "{flag} missing from:\n{topic}");
        }
    }

    /// One grammar: kebab-case names, `list` beside every `ls`, and the listing filters on
    /// every listing of registry records (local keys and local storage have no owner or state).
    #[test]
    fn names_aliases_and_filters_are_uniform() {
        fn walk(cmd: &Command, path: &str, problems: &mut Vec<String>) {
            for sub in cmd.get_subcommands() {
                let name = sub.get_name();
                let here = format!("{path} {name}");
                if name.contains('_') || name.chars().any(|c| c.is_ascii_uppercase()) {
                    problems.push(format!("{here}: not kebab-case"));
                }
                if name == "ls" {
                    if !sub.get_all_aliases().any(|a| a == "list") {
                        problems.push(format!("{here}: no `list` alias"));
                    }
                    let longs: Vec<&str> =
                        sub.get_arguments().filter_map(|a| a.get_long()).collect();
                    for f in ["mine", "owner", "state"] {
                        let local = ["cohort key", "cohort storage"].contains(&path);
                        if !local && !longs.contains(&f) {
                            problems.push(format!("{here}: no --{f}"));
                        }
                    }
                }
                walk(sub, &here, problems);
            }
        }
        let mut problems = Vec::new();
        walk(&command(), "cohort", &mut problems);
        assert!(problems.is_empty(), "{problems:#?}");
    }

    #[test]
    fn the_command_tree_is_consistent() {
        command().debug_assert();
    }

    #[test]
    fn typos_are_close_and_other_words_are_not() {
        assert!(close("--benchmrak", "--benchmark"));
        assert!(close("--jsno", "--json"));
        assert!(!close("--frobnicate", "--from-git-env"));
        assert!(!close("--xyz", "--yes"));
    }
}
