//! `--gpus` and `--shm-size` for the commands that run registered cubes (dataset prepare and
//! associate, mlcube associate, test run, benchmark run): the site's choice replaces each cube's
//! own request, for every container the command runs.

use clap::Args;
use cohort::workflow::Devices;

use super::error::{CliError, CliResult};

#[derive(Debug, Clone, Default, Args)]
pub struct DeviceArgs {
    /// GPUs for every container: all, a count, or device=ID[,ID]; 0 runs without GPUs.
    /// Replaces the cubes' own GPU requests.
    #[arg(long, value_name = "GPUS")]
    pub gpus: Option<String>,
    /// Shared memory (/dev/shm) for every container, e.g. 2g (data loaders need it).
    #[arg(long, value_name = "SIZE")]
    pub shm_size: Option<String>,
}

impl DeviceArgs {
    /// Checked now, so a typo fails before any cube is fetched or run.
    pub fn devices(&self) -> CliResult<Devices> {
        check(self.gpus.as_deref(), self.shm_size.as_deref())?;
        Ok(Devices {
            gpus: self.gpus.clone(),
            shm_size: self.shm_size.clone(),
        })
    }
}

/// The site's `--gpus` and `--shm-size`, checked by the one rule every planner applies (so
/// `mlcube run` and the workflow commands accept the same values): a usage error otherwise.
pub fn check(gpus: Option<&str>, shm_size: Option<&str>) -> CliResult<()> {
    if let Some(g) = gpus {
        cohort::mlcube::site_gpus(g).map_err(|e| {
            CliError::usage(format!("--gpus {g}: {e}"))
                .hint("write all, a count (2), device=0,1, or 0 for none")
        })?;
    }
    if let Some(s) = shm_size {
        cohort::mlcube::parse_bytes(s).map_err(|e| {
            CliError::usage(format!("--shm-size {s}: {e}")).hint("write a size such as 512m or 2g")
        })?;
    }
    Ok(())
}
