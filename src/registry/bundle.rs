//! Git bundles (`# v2 git bundle`: a header of refs, then one packfile) written and read
//! through libgit2's pack builder and pack writer, so air-gapped sites need no `git` program
//! and cohort bounds the parsing itself. Only complete bundles are written and accepted (no
//! prerequisite commits): a site that receives one holds every object the refs reach.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;

use git2::{Oid, Repository, RepositoryInitOptions};

use super::{Registry, RegistryError, Result};

const SIGNATURE: &str = "# v2 git bundle";
/// The header (signature and ref lines) is small; a larger one is refused before any pack is
/// read.
const MAX_HEADER_BYTES: usize = 1 << 20;
const MAX_REFS: usize = 10_000;

fn bad(file: &Path, why: impl Into<String>) -> RegistryError {
    RegistryError::Refused(format!(
        "{}: not a usable git bundle ({})",
        file.display(),
        why.into()
    ))
}

/// Writes a complete bundle of `refs` (name, commit) to `out`: every commit reachable from
/// them, with its trees and blobs.
pub fn write_bundle(repo: &Repository, refs: &[(String, Oid)], out: &mut dyn Write) -> Result<()> {
    let io = |e: std::io::Error| RegistryError::Git(format!("writing a bundle: {e}"));
    writeln!(out, "{SIGNATURE}").map_err(io)?;
    for (name, oid) in refs {
        writeln!(out, "{oid} {name}").map_err(io)?;
    }
    writeln!(out).map_err(io)?;
    let mut walk = repo.revwalk()?;
    for (_, oid) in refs {
        walk.push(*oid)?;
    }
    let mut pb = repo.packbuilder()?;
    pb.insert_walk(&mut walk)?;
    let mut failed = None;
    pb.foreach(|chunk| match out.write_all(chunk) {
        Ok(()) => true,
        Err(e) => {
            failed = Some(e);
            false
        }
    })?;
    match failed {
        Some(e) => Err(io(e)),
        None => Ok(()),
    }
}

/// Reads the bundle at `file` into `repo`'s object database and returns its refs. The pack is
/// indexed (and so checked) by libgit2; no ref is created or moved here.
pub fn read_bundle(repo: &Repository, file: &Path) -> Result<Vec<(String, Oid)>> {
    let f = std::fs::File::open(file).map_err(|e| RegistryError::Io {
        path: file.to_path_buf(),
        source: e,
    })?;
    let mut r = BufReader::new(f);
    let mut header_bytes = 0usize;
    let mut line = Vec::new();
    let mut next_line = |r: &mut BufReader<std::fs::File>| -> Result<String> {
        line.clear();
        let n = r
            .by_ref()
            .take((MAX_HEADER_BYTES - header_bytes) as u64)
            .read_until(b'\n', &mut line)
            .map_err(|e| bad(file, e.to_string()))?;
        header_bytes += n;
        if n == 0 || line.last() != Some(&b'\n') {
            return Err(bad(file, "its header is truncated or too long"));
        }
        String::from_utf8(line[..n - 1].to_vec()).map_err(|_| bad(file, "its header is not UTF-8"))
    };
    if next_line(&mut r)? != SIGNATURE {
        return Err(bad(file, format!("it does not start with `{SIGNATURE}`")));
    }
    let mut refs = Vec::new();
    loop {
        let l = next_line(&mut r)?;
        if l.is_empty() {
            break;
        }
        if l.starts_with('-') {
            return Err(bad(
                file,
                "it needs prerequisite commits (an incremental bundle)",
            ));
        }
        let (hex, name) = l
            .split_once(' ')
            .ok_or_else(|| bad(file, format!("bad ref line `{l}`")))?;
        let oid = Oid::from_str(hex)
            .ok()
            .filter(|_| hex.len() == 40)
            .ok_or_else(|| bad(file, format!("bad object id in `{l}`")))?;
        if !git2::Reference::is_valid_name(name) || !name.starts_with("refs/heads/") {
            return Err(bad(file, format!("bad ref name `{name}`")));
        }
        if refs.len() >= MAX_REFS {
            return Err(bad(file, format!("more than {MAX_REFS} refs")));
        }
        refs.push((name.to_string(), oid));
    }
    if refs.is_empty() {
        return Err(bad(file, "it names no refs"));
    }
    let odb = repo.odb()?;
    let mut writer = odb.packwriter()?;
    std::io::copy(&mut r, &mut writer).map_err(|e| bad(file, format!("its pack: {e}")))?;
    writer
        .commit()
        .map_err(|e| bad(file, format!("its pack: {}", e.message())))?;
    for (name, oid) in &refs {
        if repo.find_commit(*oid).is_err() {
            return Err(bad(
                file,
                format!("{name} points at {oid}, which its pack does not hold"),
            ));
        }
    }
    Ok(refs)
}

/// Creates an empty repository at `dest` (absent or an empty folder) whose HEAD will be
/// `main`, for a clone made from a bundle.
pub fn init_for_bundle(dest: &Path) -> Result<Registry> {
    if dest.exists()
        && std::fs::read_dir(dest)
            .map_err(|e| RegistryError::Io {
                path: dest.to_path_buf(),
                source: e,
            })?
            .next()
            .is_some()
    {
        return Err(RegistryError::Refused(format!(
            "{} already exists and is not empty; choose a new folder",
            dest.display()
        )));
    }
    let mut opts = RepositoryInitOptions::new();
    opts.initial_head("main").mkpath(true);
    let repo = Repository::init_opts(dest, &opts)?;
    Ok(Registry::from_repo(repo))
}

/// Points `main` at `commit` in a repository made by [`init_for_bundle`] and checks it out.
pub fn start_main(reg: &Registry, commit: Oid) -> Result<()> {
    let repo = reg.repo();
    repo.reference(super::MAIN_REF, commit, true, "cohort bundle import")?;
    repo.set_head(super::MAIN_REF)?;
    let mut co = git2::build::CheckoutBuilder::new();
    co.force();
    repo.checkout_head(Some(&mut co))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{NewFile, create};

    fn source() -> (tempfile::TempDir, Registry) {
        let dir = tempfile::tempdir().unwrap();
        let reg = create(
            &dir.path().join("src"),
            &[NewFile::new("README.md", b"hello".to_vec())],
            "first",
            "tester",
        )
        .unwrap();
        (dir, reg)
    }

    #[test]
    fn a_written_bundle_reads_back_into_an_empty_repository() {
        let (dir, reg) = source();
        let main = reg.main().unwrap();
        let mut bytes = Vec::new();
        write_bundle(
            reg.repo(),
            &[(super::super::MAIN_REF.into(), main)],
            &mut bytes,
        )
        .unwrap();
        assert!(bytes.starts_with(b"# v2 git bundle\n"));
        let file = dir.path().join("b.bundle");
        std::fs::write(&file, &bytes).unwrap();
        let dest = init_for_bundle(&dir.path().join("dest")).unwrap();
        let refs = read_bundle(dest.repo(), &file).unwrap();
        assert_eq!(refs, vec![(super::super::MAIN_REF.to_string(), main)]);
        start_main(&dest, main).unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("dest/README.md")).unwrap(),
            b"hello"
        );
        assert!(
            init_for_bundle(&dir.path().join("dest")).is_err(),
            "not empty"
        );
    }

    #[test]
    fn damaged_bundles_are_refused_without_panicking() {
        let (dir, reg) = source();
        let main = reg.main().unwrap();
        let mut good = Vec::new();
        write_bundle(
            reg.repo(),
            &[(super::super::MAIN_REF.into(), main)],
            &mut good,
        )
        .unwrap();
        let header_end = good.windows(2).position(|w| w == b"\n\n").unwrap() + 2;
        let mut flipped = good.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("empty", Vec::new()),
            ("no signature", b"hello\n\n".to_vec()),
            ("header only", good[..header_end].to_vec()),
            ("truncated pack", good[..header_end + 20].to_vec()),
            ("flipped byte", flipped),
            (
                "prerequisite",
                format!("# v2 git bundle\n-{main} x\n{main} refs/heads/main\n\n").into_bytes(),
            ),
            (
                "bad ref",
                format!("# v2 git bundle\n{main} refs/heads/../x\n\n").into_bytes(),
            ),
            (
                "long line",
                [b"# v2 git bundle\n".as_slice(), &vec![b'a'; 2 << 20]].concat(),
            ),
        ];
        for (what, bytes) in cases {
            let file = dir.path().join("bad.bundle");
            std::fs::write(&file, &bytes).unwrap();
            let dest = tempfile::tempdir().unwrap();
            let repo = Repository::init(dest.path()).unwrap();
            let r = read_bundle(&repo, &file);
            assert!(r.is_err(), "{what} was accepted");
            assert!(
                r.unwrap_err()
                    .to_string()
                    .contains("not a usable git bundle"),
                "{what}"
            );
        }
    }
}
