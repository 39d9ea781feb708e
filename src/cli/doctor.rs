//! `cohort doctor`: what is missing on this machine (git, keys, Docker Engine, a registry) and
//! how to fix it.

use serde::Serialize;

use super::error::{CliError, CliResult};
use super::session::Session;
use super::settings::Settings;

#[derive(Serialize)]
struct Check {
    name: &'static str,
    ok: bool,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    fix: Option<String>,
}

pub fn run(settings: &Settings) -> CliResult {
    let ui = &settings.ui;
    let s = Session::new(settings);
    let mut checks = Vec::new();
    let git = std::process::Command::new("git").arg("--version").output();
    checks.push(match git {
        Ok(o) if o.status.success() => Check { name: "git", ok: true, detail: String::from_utf8_lossy(&o.stdout).trim().to_string(), fix: None },
        _ => Check { name: "git", ok: false, detail: "the git program is not installed".into(), fix: Some("install git (apt-get install git); cohort uses it for ssh/https remotes and server hooks".into()) },
    });
    let keys = cohort::trust::keys::list(&settings.home).unwrap_or_default();
    checks.push(if keys.is_empty() {
        Check {
            name: "keys",
            ok: false,
            detail: format!("no keys in {}", settings.home.keys_dir().display()),
            fix: Some("cohort key generate --handle <you>".into()),
        }
    } else {
        Check {
            name: "keys",
            ok: true,
            detail: keys
                .iter()
                .map(|k| k.handle.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            fix: None,
        }
    });
    checks.push(match s.registry() {
        Ok(reg) => match reg.read_commit().and_then(|c| reg.registry_id(c)) {
            Ok(id) => Check {
                name: "registry",
                ok: true,
                detail: format!("{} (id {})", reg.display_path().display(), id.short()),
                fix: None,
            },
            // A git repository that is not a registry (e.g. a cube's own repository).
            Err(_) if settings.registry.is_none() => Check {
                name: "registry",
                ok: true,
                detail: format!(
                    "{} is not a cohort registry (fine for key and mlcube commands)",
                    reg.display_path().display()
                ),
                fix: None,
            },
            Err(e) => Check {
                name: "registry",
                ok: false,
                detail: e.to_string(),
                fix: Some("pass --registry the folder of a registry clone".into()),
            },
        },
        Err(_) => Check {
            name: "registry",
            ok: true,
            detail: "not inside a registry clone (fine for key and mlcube commands)".into(),
            fix: None,
        },
    });
    checks.push(
        match cohort::mlcube::docker::probe(settings.docker_host.as_deref()) {
            Ok(info) => Check {
                name: "docker",
                ok: true,
                detail: format!(
                    "Docker Engine {} (API {}, {}/{}) at {}; can create containers",
                    info.version, info.api_version, info.os, info.arch, info.host
                ),
                fix: None,
            },
            Err(e) => Check {
                name: "docker",
                ok: false,
                detail: e.to_string(),
                fix: Some(e.hint().unwrap_or_else(|| {
                    "start the Docker Engine (systemctl start docker) or set DOCKER_HOST".into()
                })),
            },
        },
    );
    let busybox = std::path::Path::new("/bin/busybox").exists();
    checks.push(Check {
        name: "busybox",
        ok: true,
        detail: if busybox {
            "/bin/busybox present (for `cohort demo` and the fixture cubes)".into()
        } else {
            "no /bin/busybox: only `cohort demo` needs it (apt-get install busybox-static)".into()
        },
        fix: None,
    });
    let all_ok = checks.iter().all(|c| c.ok);
    if ui.json {
        ui.json(&super::json::Doctor {
            ok: all_ok,
            checks: checks.iter().collect(),
        });
    } else {
        for c in &checks {
            let mark = if c.ok {
                ui.paint("ok  ", "32")
            } else {
                ui.paint("FAIL", "31")
            };
            ui.out(format!("{mark} {:<10} {}", c.name, c.detail));
            if let Some(f) = &c.fix {
                ui.out(format!("     {:<10} fix: {f}", ""));
            }
        }
    }
    if all_ok {
        Ok(())
    } else {
        Err(CliError::env("some checks failed (see above)"))
    }
}
