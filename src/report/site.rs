//! The static leaderboard site (`cohort site -o DIR`, `cohort leaderboard B --format html -o
//! DIR`): what it is built from ([`SiteInput`], assembled by the caller from a verified
//! registry) and the files it writes. Same input, same bytes: see docs/site.md.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::model::{Benchmark, CubeRef, Leaderboard, Mlcube, Sha256, ids};

use super::ReportError;
use super::render::{csv, html, json};

/// Everything the site shows, read from one commit of one registry.
#[derive(Debug, Clone, PartialEq)]
pub struct SiteInput {
    /// The registry's display name (from its trust root).
    pub registry_name: String,
    /// sha256 of `root/v1.toml`: what `cohort registry clone --root` pins.
    pub registry_id: String,
    /// The commit the site is built from.
    pub commit: String,
    /// Where readers can clone the registry, when it has a public address.
    pub clone_url: Option<String>,
    pub benchmarks: Vec<BenchmarkPage>,
}

/// One benchmark's page.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchmarkPage {
    /// The benchmark's current (highest approved) version.
    pub benchmark: Benchmark,
    /// Its releases, oldest first (sorted by number again when rendering).
    pub releases: Vec<ReleaseInfo>,
    /// Every cube version the page mentions (the benchmark's three cubes and each entry's
    /// model), by reference; a missing one is shown as "record not available".
    pub cubes: BTreeMap<CubeRef, Mlcube>,
}

/// One signed release.
#[derive(Debug, Clone, PartialEq)]
pub struct ReleaseInfo {
    /// `leaderboards/<bench>/<n>.toml`.
    pub path: String,
    /// sha256 of the record's bytes (what the signatures cover).
    pub sha256: Sha256,
    pub record: Leaderboard,
    /// (handle, minisign key id) of each committee member whose valid signature it carries.
    pub signers: Vec<(String, String)>,
}

impl BenchmarkPage {
    /// The newest release (highest number).
    pub fn latest(&self) -> Option<&ReleaseInfo> {
        self.releases.iter().max_by_key(|r| r.record.number)
    }

    /// Releases sorted by number, oldest first.
    pub fn sorted_releases(&self) -> Vec<&ReleaseInfo> {
        let mut v: Vec<&ReleaseInfo> = self.releases.iter().collect();
        v.sort_by_key(|r| r.record.number);
        v
    }
}

fn write_file(path: PathBuf, bytes: &[u8], out: &mut Vec<PathBuf>) -> Result<(), ReportError> {
    std::fs::write(&path, bytes).map_err(|source| ReportError::File {
        path: path.clone(),
        source,
    })?;
    out.push(path);
    Ok(())
}

/// Writes the site into `out_dir` (created if missing; other files in it are left alone):
/// `index.html`, and per benchmark `<name>/index.html` with the latest release as
/// `<name>/leaderboard.json` and `<name>/leaderboard.csv`. Returns the files written, sorted.
pub fn write_site(input: &SiteInput, out_dir: &Path) -> Result<Vec<PathBuf>, ReportError> {
    let mut names = std::collections::BTreeSet::new();
    for p in &input.benchmarks {
        // The name becomes a directory: only a valid registry id may, never `..` or `/`.
        ids::check_name("benchmark", &p.benchmark.name)
            .map_err(|e| ReportError::Site(e.to_string()))?;
        if !names.insert(p.benchmark.name.as_str()) {
            return Err(ReportError::Site(format!(
                "benchmark {} is given twice",
                p.benchmark.name
            )));
        }
        if let Some(r) = p
            .releases
            .iter()
            .find(|r| r.record.benchmark.name != p.benchmark.name)
        {
            return Err(ReportError::Site(format!(
                "{} is a release of {}, not of {}",
                r.path, r.record.benchmark.name, p.benchmark.name
            )));
        }
    }
    let mkdir = |dir: &Path| {
        std::fs::create_dir_all(dir).map_err(|source| ReportError::File {
            path: dir.to_path_buf(),
            source,
        })
    };
    mkdir(out_dir)?;
    let mut written = Vec::new();
    write_file(
        out_dir.join("index.html"),
        &html::index_page(input),
        &mut written,
    )?;
    for p in &input.benchmarks {
        let dir = out_dir.join(&p.benchmark.name);
        mkdir(&dir)?;
        write_file(
            dir.join("index.html"),
            &html::benchmark_page(input, p),
            &mut written,
        )?;
        if let Some(latest) = p.latest() {
            let mut buf = Vec::new();
            json::write(&latest.record, &mut buf)?;
            write_file(dir.join("leaderboard.json"), &buf, &mut written)?;
            let mut buf = Vec::new();
            csv::write(&latest.record, &mut buf)?;
            write_file(dir.join("leaderboard.csv"), &buf, &mut written)?;
        }
    }
    written.sort();
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{DatasetNaming as N, Release as R};
    use crate::report::testdata::*;

    fn two_releases() -> (crate::model::Policy, SiteInput) {
        let p = policy(R::CrossProduct, N::Pseudonymised, 2);
        let mut first = fixture_inputs(&p);
        first.retain(|i| i.model.name != "model-slow");
        let r1 = crate::report::testdata::release(&meta(1), &p, &first).unwrap();
        let r2 = crate::report::testdata::release(&meta(2), &p, &fixture_inputs(&p)).unwrap();
        let s = site(&p, vec![r1, r2]);
        (p, s)
    }

    #[test]
    fn same_input_same_bytes() {
        let (_, s) = two_releases();
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let fa = write_site(&s, a.path()).unwrap();
        let fb = write_site(&s, b.path()).unwrap();
        assert_eq!(fa.len(), 4);
        for (x, y) in fa.iter().zip(&fb) {
            assert_eq!(
                x.strip_prefix(a.path()).unwrap(),
                y.strip_prefix(b.path()).unwrap()
            );
            assert_eq!(
                std::fs::read(x).unwrap(),
                std::fs::read(y).unwrap(),
                "{}",
                x.display()
            );
        }
        let page = std::fs::read_to_string(a.path().join("cvd-risk/index.html")).unwrap();
        for must in [
            "Content-Security-Policy",
            "model-good",
            "site-1",
            "<svg",
            "aria-sort=\"ascending\"",
            "cohort registry clone https://git.example.org/cardio/registry.git \\\n    --root",
            "6F2A1C0D9E8B7A65",
            "From release 1 to 2",
        ] {
            assert!(page.contains(must), "page lacks {must}");
        }
        // Pseudonymised: no manifest path or dataset id anywhere near a pseudonym.
        for id in ["results/cvd-risk/", HOSPITAL_A, HOSPITAL_B] {
            assert!(!page.contains(id), "page names {id}");
        }
        // Nothing is fetched: no URL a browser would load.
        for never in [
            "src=",
            "<link rel=\"stylesheet\"",
            "@import",
            "url(",
            "http://",
            "<iframe",
        ] {
            assert!(!page.contains(never), "page contains {never}");
        }
    }

    #[test]
    fn hostile_names_are_escaped() {
        let (_, mut s) = two_releases();
        let evil = "<script>alert(1)</script>";
        let page = &mut s.benchmarks[0];
        page.benchmark.description = Some(format!("{evil}\"><img onerror=x>"));
        page.benchmark.committee.push(evil.into());
        let r = page.releases.last_mut().unwrap();
        r.record.entries[0].model.name = evil.into();
        r.record.entries[0].owner = evil.into();
        r.record.entries[0].cells[0].dataset = evil.into();
        r.record.entries[4].failures[0].reason = evil.into();
        r.signers[0].0 = evil.into();
        s.registry_name = evil.into();
        let html = String::from_utf8(crate::report::render::html::benchmark_page(
            &s,
            &s.benchmarks[0],
        ))
        .unwrap();
        // The page's own script is the only <script> element.
        assert_eq!(html.matches("<script").count(), 1, "{html}");
        assert!(!html.contains("<img"));
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        let index = String::from_utf8(crate::report::render::html::index_page(&s)).unwrap();
        assert_eq!(index.matches("<script").count(), 0);
    }

    #[test]
    fn bad_benchmark_names_never_become_paths() {
        let (_, mut s) = two_releases();
        s.benchmarks[0].benchmark.name = "../escape".into();
        let dir = tempfile::tempdir().unwrap();
        let err = write_site(&s, dir.path()).unwrap_err().to_string();
        assert!(err.contains("../escape"), "{err}");
        assert!(!dir.path().join("index.html").exists());
    }

    #[test]
    fn a_benchmark_without_releases_has_a_page() {
        let p = policy(R::PerModel, N::Shown, 1);
        let s = site(&p, vec![]);
        let dir = tempfile::tempdir().unwrap();
        let files = write_site(&s, dir.path()).unwrap();
        assert_eq!(files.len(), 2);
        let page = std::fs::read_to_string(dir.path().join("cvd-risk/index.html")).unwrap();
        assert!(page.contains("has not released results"));
        assert!(!page.contains("<script"));
    }
}
