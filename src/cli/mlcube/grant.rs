//! `cohort mlcube grant`: the owner of a private model lets a dataset run it (or revokes that).

use clap::Args;
use cohort::workflow::private::{self, GrantTarget};

use crate::cohort_cli::Settings;
use crate::cohort_cli::error::CliResult;
use crate::cohort_cli::landed::{decided_json, report_landed};
use crate::cohort_cli::session::Session;

/// Grant a dataset the key of your private model (one cube version), or revoke it.
///
/// A grant seals the model key to the dataset owner's age key and lands a signed record on
/// main. A revocation makes cohort refuse to run the model for that dataset and `verify`
/// refuse new results for the pair, but it cannot unshare what was already shared: a site
/// that held the key may have kept it, and the image it decrypted.
#[derive(Debug, Args)]
pub struct GrantArgs {
    /// The private model (name or name:version); one grant covers one version.
    #[arg(short = 'm', long = "model")]
    pub model: String,
    /// The dataset (name, id or id prefix).
    #[arg(
        short = 'd',
        long = "dataset",
        required_unless_present = "benchmark",
        conflicts_with = "benchmark"
    )]
    pub dataset: Option<String>,
    /// Every dataset currently associated with this benchmark.
    #[arg(short = 'b', long = "benchmark")]
    pub benchmark: Option<String>,
    /// Revoke instead: no new runs or results for the dataset (what was shared stays shared).
    #[arg(long)]
    pub revoke: bool,
}

pub fn grant(settings: &Settings, a: GrantArgs) -> CliResult {
    let s = Session::new(settings);
    let opened = s.open()?;
    let signer = s.signer()?;
    let target = match (&a.dataset, &a.benchmark) {
        (Some(d), _) => GrantTarget::Dataset(d.clone()),
        (None, Some(b)) => GrantTarget::Benchmark(b.clone()),
        (None, None) => unreachable!("clap requires one"),
    };
    let done = private::grant(&s.ctx(), &opened, &signer, &a.model, &target, a.revoke)?;
    let ui = &settings.ui;
    let verb = if a.revoke { "revoked" } else { "granted" };
    let what = format!("{verb} {} for {} dataset(s)", a.model, done.records.len());
    // JSON: the decision object every approve/grant command prints; the records are on main.
    decided_json(&s, &what, Some(&done.landed), None);
    if !ui.json {
        for (path, _) in &done.records {
            ui.out(path);
        }
    }
    report_landed(&s, &what, &done.landed);
    if a.revoke {
        ui.warn("a revocation stops new runs and results; it cannot unshare a key or image already shared");
    }
    Ok(())
}
