//! The demo's stage: one folder per role (its clone and COHORT_HOME) and a bare remote, and
//! how to run `cohort` and `git` as a role while printing the walkthrough.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::super::error::{CliError, CliResult};
use super::super::settings::Settings;
use super::fixtures;

/// The demo's stage: where everything lives, and how to run a command as a role.
pub(super) struct Stage {
    /// Set on Ctrl-C: the demo stops after the step under way.
    pub(super) cancel: cohort::progress::Cancel,
    pub(super) root: PathBuf,
    pub(super) exe: PathBuf,
    pub(super) verbose: bool,
    /// `--json`: the walkthrough goes to stderr and stdout gets one document at the end.
    pub(super) json: bool,
    /// Every step run so far, for that document.
    pub(super) steps: std::cell::RefCell<Vec<DemoStep>>,
}

/// One command the demo ran as a role (`demo --json`).
#[derive(serde::Serialize)]
pub(super) struct DemoStep {
    pub role: String,
    /// The command line, shell-quoted so it can be pasted.
    pub command: String,
    pub ok: bool,
}

impl Stage {
    pub(super) fn role_dir(&self, role: &str) -> PathBuf {
        self.root.join(role)
    }
    pub(super) fn clone_dir(&self, role: &str) -> PathBuf {
        self.role_dir(role).join("registry")
    }
    pub(super) fn remote(&self) -> PathBuf {
        self.root.join("remote.git")
    }
    pub(super) fn fixtures(&self) -> PathBuf {
        self.root.join("fixtures")
    }

    pub(super) fn command(&self, program: &Path, role: &str) -> Command {
        let mut c = Command::new(program);
        let dir = self.clone_dir(role);
        let cwd = if dir.exists() {
            dir
        } else {
            self.role_dir(role)
        };
        let path = format!(
            "{}:{}",
            self.exe
                .parent()
                .expect("the binary sits in a folder")
                .display(),
            std::env::var("PATH").unwrap_or_default()
        );
        c.current_dir(cwd)
            .env("COHORT_HOME", self.role_dir(role).join("cohort-home"))
            .env("PATH", path)
            .env("GIT_AUTHOR_NAME", role)
            .env("GIT_AUTHOR_EMAIL", format!("{role}@demo.invalid"))
            .env("GIT_COMMITTER_NAME", role)
            .env("GIT_COMMITTER_EMAIL", format!("{role}@demo.invalid"))
            .env_remove("COHORT_AS")
            .env_remove("COHORT_REGISTRY")
            .env_remove("COHORT_PASSPHRASE");
        if role == super::airgap::AIR_GAPPED {
            c.env("COHORT_OFFLINE", "1");
        } else {
            c.env_remove("COHORT_OFFLINE");
        }
        c
    }

    /// Runs `cohort ARGS` as `role`, printing the command and what it printed.
    pub(super) fn cohort(&self, role: &str, args: &[&str]) -> CliResult<String> {
        self.run_cohort(role, args, true)
    }

    /// Runs cohort as `role`; `shown` prints the command and its output (the walkthrough).
    pub(super) fn run_cohort(&self, role: &str, args: &[&str], shown: bool) -> CliResult<String> {
        self.stop_if_interrupted()?;
        std::fs::create_dir_all(self.role_dir(role))?;
        if shown {
            self.line(&format!("\n[{role}] $ cohort {}", shell_line(args)));
        }
        let out = self
            .command(&self.exe, role)
            .args(args)
            .output()
            .map_err(|e| CliError::env(format!("cannot run {}: {e}", self.exe.display())))?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        for l in stdout.lines().filter(|_| shown) {
            self.line(&format!("    {l}"));
        }
        // What cohort tells the user (status, reports, hints) is part of the walkthrough.
        for l in stderr
            .lines()
            .filter(|l| shown && (self.verbose || !l.starts_with("  | ")))
        {
            self.line(&format!("    {l}"));
        }
        if shown {
            self.steps.borrow_mut().push(DemoStep {
                role: role.to_string(),
                command: format!("cohort {}", shell_line(args)),
                ok: out.status.success(),
            });
        }
        self.stop_if_interrupted()?;
        if !out.status.success() {
            return Err(CliError::user(format!(
                "the demo step `cohort {}` failed (as {role})",
                shell_line(args)
            ))
            .hint("re-run with --keep DIR to inspect every role's clone and home"));
        }
        Ok(stdout)
    }

    /// After Ctrl-C: stop here (the caller's return removes a temporary demo folder).
    fn stop_if_interrupted(&self) -> CliResult {
        if self.cancel.is_cancelled() {
            return Err(CliError::interrupted("the demo was interrupted").hint(
                "its temporary folder was removed; with --keep DIR the folder stays for inspection",
            ));
        }
        Ok(())
    }

    pub(super) fn git(&self, role: &str, args: &[&str]) -> CliResult {
        self.stop_if_interrupted()?;
        self.line(&format!("\n[{role}] $ git {}", shell_line(args)));
        let out = self
            .command(Path::new("git"), role)
            .args(args)
            .output()
            .map_err(|e| CliError::env(format!("cannot run git: {e}")).hint("install git"))?;
        self.steps.borrow_mut().push(DemoStep {
            role: role.to_string(),
            command: format!("git {}", shell_line(args)),
            ok: out.status.success(),
        });
        if !out.status.success() {
            return Err(CliError::user(format!(
                "`git {}` failed: {}",
                shell_line(args),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(())
    }

    /// Removes the image of every cube registered so far from the Docker Engine, so the next
    /// site gets each image the way a site on another machine would: from the registry.
    pub(super) fn forget_images(&self, settings: &Settings, role: &str) -> CliResult {
        let listed = self.run_cohort(role, &["mlcube", "ls", "--json"], false);
        let ids: Vec<String> = listed
            .ok()
            .and_then(|out| serde_json::from_str::<serde_json::Value>(&out).ok())
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|c| c["image_id"].as_str().map(str::to_string))
            .collect();
        let runtime = cohort::mlcube::DockerRuntime::connect(settings.docker_host.as_deref())?;
        for id in ids {
            // Only what the demo owns: an image that also carries someone else's tag (the
            // same fixture built elsewhere has the same id) loses the demo's tags alone.
            let tags = runtime.image_tags(&id)?;
            let (mine, theirs): (Vec<_>, Vec<_>) =
                tags.iter().partition(|t| t.starts_with("cohort-fixtures/"));
            if theirs.is_empty() {
                cohort::mlcube::ContainerRuntime::remove_image(&runtime, &id)?;
            } else {
                for t in mine {
                    cohort::mlcube::ContainerRuntime::remove_image(&runtime, t)?;
                }
            }
        }
        Ok(())
    }

    pub(super) fn say(&self, text: &str) {
        self.line(&format!("\n== {text}"));
    }

    /// One line of the walkthrough: stdout, or stderr when stdout carries the JSON document.
    pub(super) fn line(&self, text: &str) {
        if self.json {
            eprintln!("{text}");
        } else {
            println!("{text}");
        }
    }
}

/// `args` as one line a shell reads back as the same words, so a printed step can be pasted.
pub(super) fn shell_line(args: &[&str]) -> String {
    args.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" ")
}

/// One word for a POSIX shell: as is when every character is plain, else in single quotes.
fn quote(arg: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_-./:=@%+,".contains(c);
    if !arg.is_empty() && arg.chars().all(plain) {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', "'\\''"))
    }
}

/// Writes the embedded fixtures under `dir`.
pub(super) fn materialize(dir: &Path) -> CliResult {
    for (rel, bytes) in fixtures::FIXTURES {
        let p = dir.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(p, bytes)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::shell_line;

    #[test]
    fn printed_steps_paste_back_as_the_same_words() {
        assert_eq!(
            shell_line(&[
                "user",
                "request",
                "--name",
                "Carol Smith",
                "--email",
                "c@x.org"
            ]),
            "user request --name 'Carol Smith' --email c@x.org"
        );
        assert_eq!(shell_line(&["it's", "", "a;b"]), "'it'\\''s' '' 'a;b'");
        assert_eq!(
            shell_line(&["/tmp/cohort-demo-1/x.tar.gz"]),
            "/tmp/cohort-demo-1/x.tar.gz"
        );
    }
}
