//! Talking to the shared remote. git2 handles path and file:// remotes in-process; everything
//! else (ssh, https, and any remote whose hooks must run) goes through the `git` program, as
//! cargo's `net.git-fetch-with-cli` does, which reuses the user's credentials, agent, known
//! hosts and proxy settings and never prompts.

use std::path::Path;
use std::process::Command;

use git2::{FetchOptions, PushOptions, RemoteCallbacks, Repository};

use super::{REMOTE, Registry, RegistryError, Result};

/// How to reach a remote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// libgit2's local transport (path and file:// remotes only; does not run server hooks).
    Libgit2,
    /// The `git` program.
    GitCli,
}

impl Transport {
    /// The transport for `url`: the git program when available (it runs the remote's hooks and
    /// knows every protocol), else libgit2 for local paths.
    pub fn for_url(url: &str, git_available: bool) -> Result<Transport> {
        if git_available {
            Ok(Transport::GitCli)
        } else if is_local(url) {
            Ok(Transport::Libgit2)
        } else {
            Err(RegistryError::Remote {
                remote: url.to_string(),
                why: "this remote needs the `git` program (ssh/https), which is not installed"
                    .into(),
            })
        }
    }
}

pub fn is_local(url: &str) -> bool {
    url.starts_with("file://")
        || url.starts_with('/')
        || url.starts_with("./")
        || url.starts_with("../")
        || !url.contains(':')
}

fn remote_err(remote: &str, why: impl Into<String>) -> RegistryError {
    RegistryError::Remote {
        remote: remote.to_string(),
        why: why.into(),
    }
}

fn git(dir: Option<&Path>, args: &[&str]) -> Result<std::process::Output> {
    let mut cmd = Command::new("git");
    if let Some(d) = dir {
        cmd.arg("-C").arg(d);
    }
    cmd.args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ASKPASS", "")
        .env("SSH_ASKPASS", "")
        .stdin(std::process::Stdio::null());
    cmd.output()
        .map_err(|e| remote_err("git", format!("cannot run git: {e}")))
}

fn stderr_line(out: &std::process::Output) -> String {
    let s = String::from_utf8_lossy(&out.stderr);
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .filter(|l| l.starts_with("fatal") || l.starts_with("error") || l.starts_with("remote:"))
        .collect::<Vec<_>>()
        .join(" / ")
        .chars()
        .take(400)
        .collect()
}

impl Registry {
    /// The URL of `origin`, if the clone has one.
    pub fn remote_url(&self) -> Option<String> {
        let r = self.repo.find_remote(REMOTE).ok()?;
        r.url().ok().map(str::to_string)
    }

    /// Fetches every branch of origin into `refs/remotes/origin/*`, pruning deleted ones.
    pub fn fetch(&self, transport: Transport) -> Result<()> {
        let url = self
            .remote_url()
            .ok_or_else(|| RegistryError::Refused("this clone has no `origin` remote".into()))?;
        match transport {
            Transport::GitCli => {
                let dir = self.repo.path();
                let out = git(
                    Some(dir),
                    &[
                        "fetch",
                        "--prune",
                        "--quiet",
                        REMOTE,
                        "+refs/heads/*:refs/remotes/origin/*",
                    ],
                )?;
                if !out.status.success() {
                    return Err(remote_err(
                        &url,
                        format!("fetch failed: {}", stderr_line(&out)),
                    ));
                }
            }
            Transport::Libgit2 => {
                let mut remote = self.repo.find_remote(REMOTE)?;
                let mut fo = FetchOptions::new();
                fo.prune(git2::FetchPrune::On);
                remote
                    .fetch(
                        &["+refs/heads/*:refs/remotes/origin/*"],
                        Some(&mut fo),
                        None,
                    )
                    .map_err(|e| remote_err(&url, format!("fetch failed: {}", e.message())))?;
            }
        }
        Ok(())
    }

    /// Pushes `refspecs`; a ref the remote refuses (not a fast-forward, declined by a hook) is
    /// an error naming the ref and the reason.
    pub fn push(&self, refspecs: &[String], transport: Transport) -> Result<()> {
        let url = self
            .remote_url()
            .ok_or_else(|| RegistryError::Refused("this clone has no `origin` remote".into()))?;
        match transport {
            Transport::GitCli => {
                let mut args = vec!["push", "--porcelain", REMOTE];
                args.extend(refspecs.iter().map(String::as_str));
                let out = git(Some(self.repo.path()), &args)?;
                let stdout = String::from_utf8_lossy(&out.stdout);
                for line in stdout.lines() {
                    if let Some(rest) = line.strip_prefix("!\t") {
                        let mut parts = rest.splitn(2, '\t');
                        let spec = parts.next().unwrap_or_default();
                        let reason = parts.next().unwrap_or_default();
                        let refname = spec.rsplit(':').next().unwrap_or(spec).to_string();
                        let hook = stderr_line(&out);
                        return Err(RegistryError::PushRejected {
                            refname,
                            reason: if hook.is_empty() {
                                reason.to_string()
                            } else {
                                format!("{reason}: {hook}")
                            },
                            non_fast_forward: reason.contains("non-fast-forward")
                                || reason.contains("fetch first"),
                        });
                    }
                }
                if !out.status.success() {
                    return Err(remote_err(
                        &url,
                        format!("push failed: {}", stderr_line(&out)),
                    ));
                }
            }
            Transport::Libgit2 => {
                let mut remote = self.repo.find_remote(REMOTE)?;
                let mut rejected: Option<(String, String)> = None;
                {
                    let mut cb = RemoteCallbacks::new();
                    cb.push_update_reference(|refname, status| {
                        if let Some(msg) = status {
                            rejected = Some((refname.to_string(), msg.to_string()));
                        }
                        Ok(())
                    });
                    let mut po = PushOptions::new();
                    po.remote_callbacks(cb);
                    let specs: Vec<&str> = refspecs.iter().map(String::as_str).collect();
                    if let Err(e) = remote.push(&specs, Some(&mut po)) {
                        let msg = e.message().to_string();
                        let nff = e.code() == git2::ErrorCode::NotFastForward
                            || msg.contains("fast-forward");
                        if nff {
                            return Err(RegistryError::PushRejected {
                                refname: specs
                                    .first()
                                    .map(|s| s.rsplit(':').next().unwrap_or(s).to_string())
                                    .unwrap_or_default(),
                                reason: msg,
                                non_fast_forward: true,
                            });
                        }
                        return Err(remote_err(&url, format!("push failed: {msg}")));
                    }
                }
                if let Some((refname, reason)) = rejected {
                    return Err(RegistryError::PushRejected {
                        non_fast_forward: reason.contains("fast-forward"),
                        refname,
                        reason,
                    });
                }
            }
        }
        Ok(())
    }

    /// Deletes a branch on origin (after its submission was merged or rejected).
    pub fn delete_remote_branch(&self, branch: &str, transport: Transport) -> Result<()> {
        self.push(&[format!(":refs/heads/{branch}")], transport)
    }
}

/// Clones `url` into `dest` with `main` checked out.
pub fn clone(url: &str, dest: &Path, transport: Transport) -> Result<Registry> {
    match transport {
        Transport::GitCli => {
            let d = dest.to_string_lossy();
            let out = git(
                None,
                &[
                    "clone", "--quiet", "--origin", REMOTE, "--branch", "main", url, &d,
                ],
            )?;
            if !out.status.success() {
                return Err(remote_err(
                    url,
                    format!("clone failed: {}", stderr_line(&out)),
                ));
            }
        }
        Transport::Libgit2 => {
            let mut b = git2::build::RepoBuilder::new();
            b.branch("main");
            b.clone(url, dest)
                .map_err(|e| remote_err(url, format!("clone failed: {}", e.message())))?;
        }
    }
    let repo = Repository::open(dest)?;
    Ok(Registry::from_repo(repo))
}

/// The web page that opens a pull/merge request for `branch`, for remotes on GitHub, GitLab or
/// Gitea/Forgejo hosts.
pub fn forge_compare_url(remote_url: &str, branch: &str) -> Option<String> {
    let (host, path) = if let Some(rest) = remote_url
        .strip_prefix("https://")
        .or_else(|| remote_url.strip_prefix("http://"))
    {
        let rest = rest.split_once('@').map(|(_, r)| r).unwrap_or(rest);
        rest.split_once('/')?
    } else if let Some(rest) = remote_url.strip_prefix("ssh://") {
        let rest = rest.split_once('@').map(|(_, r)| r).unwrap_or(rest);
        let (host, path) = rest.split_once('/')?;
        (host.split(':').next().unwrap_or(host), path)
    } else if let Some((user_host, path)) = remote_url.split_once(':') {
        if remote_url.contains("://") || !user_host.contains('@') {
            return None;
        }
        (
            user_host
                .split_once('@')
                .map(|(_, h)| h)
                .unwrap_or(user_host),
            path,
        )
    } else {
        return None;
    };
    let path = path.trim_end_matches('/').trim_end_matches(".git");
    if path.split('/').count() < 2 {
        return None;
    }
    if host == "github.com" || host.starts_with("github.") {
        Some(format!(
            "https://{host}/{path}/compare/main...{branch}?expand=1"
        ))
    } else if host == "gitlab.com" || host.starts_with("gitlab.") {
        Some(format!(
            "https://{host}/{path}/-/merge_requests/new?merge_request%5Bsource_branch%5D={branch}&merge_request%5Btarget_branch%5D=main"
        ))
    } else if host.contains("gitea") || host.contains("forgejo") || host == "codeberg.org" {
        Some(format!("https://{host}/{path}/compare/main...{branch}"))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare_urls() {
        let b = "submit/alice/user-alice";
        assert_eq!(
            forge_compare_url("https://github.com/org/reg.git", b).unwrap(),
            "https://github.com/org/reg/compare/main...submit/alice/user-alice?expand=1"
        );
        assert_eq!(
            forge_compare_url("git@github.com:org/reg.git", b).unwrap(),
            "https://github.com/org/reg/compare/main...submit/alice/user-alice?expand=1"
        );
        assert!(
            forge_compare_url("ssh://git@gitlab.com/group/sub/reg.git", b)
                .unwrap()
                .starts_with("https://gitlab.com/group/sub/reg/-/merge_requests/new?")
        );
        assert_eq!(
            forge_compare_url("https://codeberg.org/o/r", b).unwrap(),
            "https://codeberg.org/o/r/compare/main...submit/alice/user-alice"
        );
        assert_eq!(forge_compare_url("/srv/git/reg.git", b), None);
        assert_eq!(forge_compare_url("file:///srv/reg.git", b), None);
        assert_eq!(forge_compare_url("https://example.org/o/r.git", b), None);
    }

    #[test]
    fn transport_choice() {
        assert_eq!(
            Transport::for_url("/srv/reg.git", false).unwrap(),
            Transport::Libgit2
        );
        assert_eq!(
            Transport::for_url("/srv/reg.git", true).unwrap(),
            Transport::GitCli
        );
        assert!(Transport::for_url("git@github.com:o/r.git", false).is_err());
    }
}
