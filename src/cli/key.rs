//! `cohort key`: create and list local signing/encryption identities.

use std::time::SystemTime;

use clap::{Args, Subcommand};
use cohort::trust::keys;
use serde::Serialize;

use super::error::{CliError, CliResult};
use super::session::read_passphrase;
use super::settings::{Passphrase, Settings};

#[derive(Debug, Args)]
pub struct KeyArgs {
    #[command(subcommand)]
    command: KeyCommand,
}

#[derive(Debug, Subcommand)]
enum KeyCommand {
    /// Create a minisign signing key and an age encryption identity for a handle.
    Generate {
        /// Your handle in registries: a-z, 0-9, '_' and '-', a letter first.
        #[arg(long)]
        handle: String,
        /// Store the secrets unencrypted (automation, CI, demos). Protect the folder instead.
        #[arg(long)]
        no_passphrase: bool,
    },
    /// List local identities.
    #[command(visible_alias = "list")]
    Ls,
    /// Make the identity stored as FROM the key of HANDLE (after a root rotation listing it was
    /// merged). HANDLE's current key is kept under `keys/.retired/`, never deleted.
    Adopt {
        /// The local identity holding the new key.
        from: String,
        /// The handle it becomes.
        #[arg(long)]
        handle: String,
    },
}

#[derive(Serialize)]
struct KeyJson {
    handle: String,
    key_id: String,
    minisign: String,
    age: String,
    created: String,
    passphrase_protected: bool,
}

impl From<keys::PublicIdentity> for KeyJson {
    fn from(p: keys::PublicIdentity) -> KeyJson {
        KeyJson {
            handle: p.handle,
            key_id: p.key_id,
            minisign: p.minisign,
            age: p.age,
            created: p.created,
            passphrase_protected: p.encrypted,
        }
    }
}

pub fn run(settings: &Settings, args: KeyArgs) -> CliResult {
    let ui = &settings.ui;
    match args.command {
        KeyCommand::Generate {
            handle,
            no_passphrase,
        } => {
            let pass = if no_passphrase {
                None
            } else {
                let p = read_passphrase(&settings.passphrase, &handle, true)?;
                if matches!(settings.passphrase, Passphrase::Prompt) {
                    ui.status("deriving the key from the passphrase (a second or two)...");
                }
                Some(p)
            };
            let public =
                keys::generate(&settings.home, &handle, pass.as_deref(), SystemTime::now())
                    .map_err(|e| {
                        match e {
                cohort::trust::TrustError::Key(m) if m.contains("passphrase is empty") => {
                    CliError::user(m).hint(
                        "set COHORT_PASSPHRASE, use --passphrase-file, or pass --no-passphrase",
                    )
                }
                other => other.into(),
            }
                    })?;
            if ui.json {
                ui.json(&KeyJson::from(public));
            } else {
                ui.out(format!("{} {}", public.handle, public.key_id));
                ui.status(format!(
                    "created the keys of {} in {} (minisign key {}, age recipient {})",
                    public.handle,
                    settings.home.key_dir(&public.handle).display(),
                    public.key_id,
                    public.age
                ));
                ui.status("next: `cohort user request` in a registry clone, or `cohort registry init` to start one");
            }
        }
        KeyCommand::Adopt { from, handle } => {
            let retired = keys::adopt(&settings.home, &from, &handle)?;
            let public = keys::public(&settings.home, &handle)?;
            if ui.json {
                ui.json(&KeyJson::from(public));
            } else {
                ui.out(&public.key_id);
                ui.status(format!(
                    "{handle} now signs with key {} (was {from}); the old key is kept in {}",
                    public.key_id,
                    retired.display()
                ));
            }
        }
        KeyCommand::Ls => {
            let all = keys::list(&settings.home)?;
            if ui.json {
                ui.json(&all.into_iter().map(KeyJson::from).collect::<Vec<_>>());
            } else if all.is_empty() {
                ui.status(format!(
                    "no keys in {}; create one with `cohort key generate --handle <you>`",
                    settings.home.keys_dir().display()
                ));
            } else {
                let mut t = super::table::new(&["handle", "key id", "protected", "created"]);
                for k in all {
                    t.add_row(vec![
                        k.handle,
                        k.key_id,
                        if k.encrypted {
                            "passphrase".into()
                        } else {
                            "no".into()
                        },
                        k.created,
                    ]);
                }
                ui.out(t.to_string());
            }
        }
    }
    Ok(())
}
