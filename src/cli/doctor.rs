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
            Err(e) => Check {
                name: "registry",
                ok: false,
                detail: e.to_string(),
                fix: Some("run inside a registry clone or pass --registry".into()),
            },
        },
        Err(_) => Check {
            name: "registry",
            ok: true,
            detail: "not inside a registry clone (fine for key and mlcube commands)".into(),
            fix: None,
        },
    });
    checks.extend(super::docker_checks(settings).into_iter().map(Check::from));
    let all_ok = checks.iter().all(|c| c.ok);
    if ui.json {
        ui.json(&serde_json::json!({"ok": all_ok, "checks": checks}));
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

/// Docker checks, filled in by the MLCube engine.
pub struct DockerCheck {
    pub ok: bool,
    pub detail: String,
    pub fix: Option<String>,
}

impl From<DockerCheck> for Check {
    fn from(d: DockerCheck) -> Check {
        Check {
            name: "docker",
            ok: d.ok,
            detail: d.detail,
            fix: d.fix,
        }
    }
}
