//! Host folders as cohort creates and checks them for a container: component by component
//! through directory handles (`openat` with `O_NOFOLLOW`, `mkdirat`), never by a path the
//! kernel would resolve through a symbolic link. A container that could write a folder may have
//! left a link there (issue 14: a link planted by one run made the next run's `create_dir_all`
//! and `chown` act on a root-owned host folder, which Docker then mounted read-write).
//!
//! Paths below an *anchor* (the run's folder: COHORT_HOME for the workflow, the workspace for
//! local runs) are walked from the anchor down, and a link anywhere there is refused. The
//! anchor itself, and the part of a path above the deepest folder that existed before, are
//! the caller's choice and resolved normally.

use std::ffi::OsString;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, CWD, FileType, Mode, OFlags};
use rustix::io::Errno;

/// What is wrong with a host path, as a code (callers decide the wording and the error).
#[derive(Debug)]
pub(crate) enum Issue {
    /// The path, or a folder on the way to it, is a symbolic link.
    Symlink(PathBuf),
    /// A component is not a folder (or the final file is not a plain file).
    WrongKind(PathBuf),
    /// Any other failure of the system call on that path.
    Io(PathBuf, std::io::Error),
}

fn io(path: &Path, e: Errno) -> Issue {
    Issue::Io(path.to_path_buf(), e.into())
}

const DIR_FLAGS: OFlags = OFlags::DIRECTORY
    .union(OFlags::NOFOLLOW)
    .union(OFlags::RDONLY)
    .union(OFlags::CLOEXEC);

/// The components of `path` below `anchor`, when `path` is the anchor or inside it (both
/// lexically normalised absolute paths).
pub(crate) fn below(anchor: &Path, path: &Path) -> Option<Vec<OsString>> {
    let rest = path.strip_prefix(anchor).ok()?;
    let mut out = Vec::new();
    for c in rest.components() {
        match c {
            Component::Normal(n) => out.push(n.to_os_string()),
            Component::CurDir => {}
            // Lexically normalised paths have no `..`; refuse rather than guess.
            _ => return None,
        }
    }
    Some(out)
}

/// Opens the anchor (resolved normally: it is the caller's choice).
pub(crate) fn open_anchor(anchor: &Path) -> Result<OwnedFd, Issue> {
    rustix::fs::open(
        anchor,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| match e {
        Errno::NOTDIR => Issue::WrongKind(anchor.to_path_buf()),
        e => io(anchor, e),
    })
}

/// Opens the folder `name` inside `dir` without following a link; `path` names it in errors.
pub(crate) fn open_child_dir(
    dir: impl AsFd,
    name: &OsString,
    path: &Path,
) -> Result<OwnedFd, Issue> {
    match rustix::fs::openat(&dir, name.as_os_str(), DIR_FLAGS, Mode::empty()) {
        Ok(fd) => Ok(fd),
        Err(e) => Err(classify(&dir, name, path, e)),
    }
}

/// Why opening `name` failed: a link, something that is not a folder, or the errno itself.
fn classify(dir: impl AsFd, name: &OsString, path: &Path, e: Errno) -> Issue {
    match rustix::fs::statat(&dir, name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Symlink => {
            Issue::Symlink(path.to_path_buf())
        }
        Ok(st) if FileType::from_raw_mode(st.st_mode) != FileType::Directory => {
            Issue::WrongKind(path.to_path_buf())
        }
        _ => io(path, e),
    }
}

/// Opens (and with `create`, makes with that mode) the folder `path`, walking from `anchor`
/// when `path` lies below it, else from the deepest folder of `path` that exists. Every folder
/// made is appended to `created`.
pub(crate) fn open_dir(
    anchor: &Path,
    path: &Path,
    create: Option<u32>,
    created: &mut Vec<PathBuf>,
) -> Result<OwnedFd, Issue> {
    let (mut fd, mut cur, parts) = match below(anchor, path) {
        Some(parts) if anchor.exists() => (open_anchor(anchor)?, anchor.to_path_buf(), parts),
        Some(parts) if create.is_some() && !parts.is_empty() => {
            let fd = open_dir(anchor, anchor, create, created)?;
            (fd, anchor.to_path_buf(), parts)
        }
        _ => {
            // Outside the run's folder (a local run's own paths, or the anchor itself): resolve
            // what exists as the user wrote it, create the rest without following links.
            let mut start = path.to_path_buf();
            let mut parts = Vec::new();
            while !start.exists() {
                let Some(name) = start.file_name().map(|n| n.to_os_string()) else {
                    break;
                };
                parts.push(name);
                if !start.pop() {
                    break;
                }
            }
            parts.reverse();
            (open_anchor(&start)?, start, parts)
        }
    };
    for name in parts {
        cur.push(&name);
        fd = match rustix::fs::openat(&fd, name.as_os_str(), DIR_FLAGS, Mode::empty()) {
            Ok(next) => next,
            Err(Errno::NOENT) if create.is_some() => {
                let mode = Mode::from_raw_mode(create.expect("checked"));
                match rustix::fs::mkdirat(&fd, name.as_os_str(), mode) {
                    Ok(()) => created.push(cur.clone()),
                    // Made by someone else in between: fine, it is checked on opening.
                    Err(Errno::EXIST) => {}
                    Err(e) => return Err(io(&cur, e)),
                }
                open_child_dir(&fd, &name, &cur)?
            }
            Err(e) => return Err(classify(&fd, &name, &cur, e)),
        };
    }
    Ok(fd)
}

/// Checks that `path` is a plain file reached without links (from `anchor` when below it).
pub(crate) fn check_file(anchor: &Path, path: &Path) -> Result<(), Issue> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(Issue::WrongKind(path.to_path_buf()));
    };
    let dir = if below(anchor, parent).is_some() {
        open_dir(anchor, parent, None, &mut Vec::new())?
    } else {
        open_anchor(parent)?
    };
    let st = rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW).map_err(|e| io(path, e))?;
    match FileType::from_raw_mode(st.st_mode) {
        FileType::RegularFile => Ok(()),
        FileType::Symlink => Err(Issue::Symlink(path.to_path_buf())),
        _ => Err(Issue::WrongKind(path.to_path_buf())),
    }
}

/// Creates `path` as an empty plain file with `mode` when missing (its folder exists), without
/// following a link at any step; an existing plain file is kept as it is.
pub(crate) fn ensure_file(anchor: &Path, path: &Path, mode: u32) -> Result<(), Issue> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(Issue::WrongKind(path.to_path_buf()));
    };
    let dir = open_dir(anchor, parent, None, &mut Vec::new())?;
    let flags = OFlags::CREATE | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    match rustix::fs::openat(&dir, name, flags, Mode::from_raw_mode(mode)) {
        Ok(_) => check_file(anchor, path),
        Err(Errno::LOOP) => Err(Issue::Symlink(path.to_path_buf())),
        Err(Errno::ISDIR) => Err(Issue::WrongKind(path.to_path_buf())),
        Err(e) => Err(io(path, e)),
    }
}

/// Checks that the last component of `path` is not a link (for paths the user chose outside
/// the run's folder).
pub(crate) fn check_not_link(path: &Path) -> Result<(), Issue> {
    match rustix::fs::statat(CWD, path, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Symlink => {
            Err(Issue::Symlink(path.to_path_buf()))
        }
        Ok(_) => Ok(()),
        Err(e) => Err(io(path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_below_the_anchor_and_refuses_links() {
        let tmp = tempfile::tempdir().unwrap();
        let anchor = tmp.path().join("run");
        std::fs::create_dir(&anchor).unwrap();
        let target = tmp.path().join("target");
        std::fs::create_dir(&target).unwrap();
        let mut created = Vec::new();
        open_dir(&anchor, &anchor.join("a/b"), Some(0o700), &mut created).unwrap();
        assert_eq!(created, [anchor.join("a"), anchor.join("a/b")]);
        std::os::unix::fs::symlink(&target, anchor.join("a/link")).unwrap();
        for p in [anchor.join("a/link"), anchor.join("a/link/deeper")] {
            let e = open_dir(&anchor, &p, Some(0o700), &mut Vec::new()).unwrap_err();
            assert!(
                matches!(&e, Issue::Symlink(l) if l == &anchor.join("a/link")),
                "{e:?}"
            );
        }
        assert!(
            !target.join("deeper").exists(),
            "nothing is made through the link"
        );
        std::fs::write(anchor.join("a/f"), "x").unwrap();
        check_file(&anchor, &anchor.join("a/f")).unwrap();
        std::os::unix::fs::symlink(anchor.join("a/f"), anchor.join("a/fl")).unwrap();
        assert!(matches!(
            check_file(&anchor, &anchor.join("a/fl")),
            Err(Issue::Symlink(_))
        ));
        assert!(matches!(
            open_dir(&anchor, &anchor.join("a/f"), None, &mut Vec::new()),
            Err(Issue::WrongKind(_))
        ));
    }
}
