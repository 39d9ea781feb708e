//! The demo's air-gapped hospital: its clone comes from a registry bundle, registry updates
//! arrive as registry bundles written by its gateway (a connected clone with no key), and its
//! submissions leave as submissions bundles the gateway imports and pushes. It runs with
//! COHORT_OFFLINE=1 and never sees the remote.

use super::super::error::CliResult;
use super::stage::Stage;

/// The hospital with no network.
pub(super) const AIR_GAPPED: &str = "hosp-b";
/// Its connected gateway machine.
pub(super) const GATEWAY: &str = "gateway-b";

impl Stage {
    fn carried(&self, name: &str) -> CliResult<String> {
        let dir = self.root.join("carried");
        std::fs::create_dir_all(&dir)?;
        Ok(dir.join(name).display().to_string())
    }

    /// The gateway clones the registry (it holds no key: it only carries files).
    pub(super) fn gateway_clone(&self, remote: &str, id: &str) -> CliResult {
        let dest = self.clone_dir(GATEWAY).display().to_string();
        self.cohort(GATEWAY, &["registry", "clone", remote, &dest, "--root", id])?;
        Ok(())
    }

    /// The gateway writes a registry bundle (with the images and artifacts of `benches`) and
    /// the hospital imports it: its first clone (pinned to `id`) or an update of it.
    pub(super) fn carry_registry(
        &self,
        name: &str,
        benches: &[&str],
        first: Option<&str>,
    ) -> CliResult {
        let file = self.carried(name)?;
        self.cohort(GATEWAY, &["registry", "sync"])?;
        let mut args = vec!["bundle", "create", "-o", &file];
        for b in benches {
            args.extend(["-b", b]);
        }
        self.cohort(GATEWAY, &args)?;
        match first {
            Some(id) => {
                let dest = self.clone_dir(AIR_GAPPED).display().to_string();
                self.cohort(
                    AIR_GAPPED,
                    &["bundle", "import", &file, &dest, "--root", id],
                )?;
            }
            None => {
                self.cohort(AIR_GAPPED, &["bundle", "import", &file])?;
            }
        }
        Ok(())
    }

    /// The hospital's new submissions travel to the gateway, which pushes them.
    pub(super) fn carry_submissions(&self, name: &str) -> CliResult {
        let file = self.carried(name)?;
        self.cohort(
            AIR_GAPPED,
            &["bundle", "create", "--submissions", "-o", &file],
        )?;
        self.cohort(GATEWAY, &["bundle", "import", &file])?;
        // With no key of its own, the gateway pushes every pending submission branch.
        self.cohort(GATEWAY, &["registry", "push"])?;
        Ok(())
    }
}
