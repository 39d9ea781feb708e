//! Who may touch a run's host folders, and when: checked and granted immediately before the
//! container is created, taken back once it is gone.
//!
//! Before: every mount is reached from the run's folder without following a link, and in
//! strict mode lies in this run's workspace or where the caller placed a parameter (never in
//! the cube's installed files when writable). Then, when the container runs as another user
//! than cohort (a root caller's containers run as nobody), that user gets what it needs for
//! this run only: the writable folders, and whatever of the inputs it could not read (private
//! data is 0700/0600, owned by the caller) is handed over. After: everything handed over goes
//! back to its owner, what the container made goes to the caller, and in strict mode what it
//! wrote is made private (group and other permission bits cleared, and setuid, setgid and
//! sticky bits: a container must not leave a setuid program on the host).

use std::collections::HashMap;
use std::ffi::OsString;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use rustix::fs::{AtFlags, FileType, Gid, Mode, Stat, Uid};

use super::error::{Error, HostPathProblem};
use super::hostfs::{self, Issue};
use super::journal::{self, Handed, Journal, TreeRecord};
use super::paths;
use super::plan::{Mode as RunMode, Plan};

/// One mounted tree: its host path, whether the container writes it, whether it is a file.
struct Tree {
    path: PathBuf,
    writable: bool,
    file: bool,
}

/// What [`grant`] handed over, to take back with [`Access::revoke`].
pub(crate) struct Access {
    cube: String,
    task: String,
    anchor: PathBuf,
    strict: bool,
    trees: Vec<Tree>,
    /// Original owners of what was handed over, by (device, inode): the walk back finds them
    /// by identity, not by a path a container could have redirected.
    saved: HashMap<(u64, u64), (u32, u32)>,
    container: (u32, u32),
    caller: (u32, u32),
    /// The run's record of what was handed over (when the caller keeps one): a run killed
    /// before it takes access back is finished by the next (`journal`).
    journal: Option<Journal>,
    /// Finishing a killed run: only what is still the container's user's is taken back.
    recovering: bool,
}

fn lexical(p: &Path) -> String {
    paths::lexical(&p.to_string_lossy())
}

/// Where a run keeps the record of its hand-over (`journal`), and its container label.
pub(crate) struct Record<'a> {
    pub dir: &'a Path,
    pub run_id: &'a str,
}

/// Checks every mount of `plan` and hands the container's user what it needs. With a
/// `record`, what is handed over is written down first (and runs killed earlier are finished:
/// their labels are returned in `leftovers` for the caller to remove their containers).
pub(crate) fn grant(
    plan: &Plan,
    record: Option<&Record<'_>>,
    leftovers: &mut Vec<String>,
) -> Result<Access, Error> {
    if let Some(r) = record {
        leftovers.extend(journal::recover(r.dir, &|rec| {
            // Best effort: what is gone or changed since is left as it is.
            let _ = Access::from_record(rec).revoke();
        })?);
    }
    let trees = check_mounts(plan)?;
    let caller = (
        rustix::process::getuid().as_raw(),
        rustix::process::getgid().as_raw(),
    );
    let mut access = Access {
        cube: plan.cube.clone(),
        task: plan.task.clone(),
        anchor: plan.run_root.clone(),
        strict: plan.mode == RunMode::Strict,
        trees,
        saved: HashMap::new(),
        container: super::hardening::container_user(),
        caller,
        journal: None,
        recovering: false,
    };
    let (cuid, cgid) = access.container;
    // What the container's user needs, written down before anything changes owner.
    let mut handed: Vec<Handed> = Vec::new();
    let mut saved = HashMap::new();
    if cuid != caller.0 {
        for t in &access.trees {
            let root_writable = t.writable;
            access.walk(t, &mut |e: &Entry, is_root: bool| {
                let key = (e.st.st_dev, e.st.st_ino);
                let needs =
                    (is_root && root_writable && e.st.st_uid != cuid) || !readable_by(&e.st, cuid);
                if needs && !saved.contains_key(&key) {
                    saved.insert(key, (e.st.st_uid, e.st.st_gid));
                    handed.push(Handed {
                        dev: key.0,
                        ino: key.1,
                        uid: e.st.st_uid,
                        gid: e.st.st_gid,
                        path: e.path.clone(),
                    });
                }
                Ok(())
            })?;
        }
    }
    if let Some(r) = record {
        let rec = journal::Record {
            run_id: r.run_id.to_string(),
            anchor: access.anchor.clone(),
            strict: access.strict,
            container: access.container,
            caller: access.caller,
            trees: access
                .trees
                .iter()
                .map(|t| TreeRecord {
                    path: t.path.clone(),
                    writable: t.writable,
                    file: t.file,
                })
                .collect(),
            saved: handed,
        };
        access.journal = Some(Journal::begin(r.dir, &rec)?);
    }
    if saved.is_empty() {
        return Ok(access);
    }
    let handed_over = access.trees.iter().try_for_each(|t| {
        access.walk(t, &mut |e: &Entry, _| {
            // The same inode, still with the owner written down.
            match saved.get(&(e.st.st_dev, e.st.st_ino)) {
                Some(&(u, _)) if e.st.st_uid == u && u != cuid => e.chown(cuid, cgid),
                _ => Ok(()),
            }
        })
    });
    if let Err(e) = handed_over {
        // Take back what was already handed over before reporting the failure.
        if restore_saved(&access, &saved).is_ok()
            && let Some(j) = access.journal.take()
        {
            let _ = j.finish();
        }
        return Err(e);
    }
    access.saved = saved;
    Ok(access)
}

fn restore_saved(access: &Access, saved: &HashMap<(u64, u64), (u32, u32)>) -> Result<(), Error> {
    for t in &access.trees {
        access.walk(t, &mut |e: &Entry, _| {
            if let Some((uid, gid)) = saved.get(&(e.st.st_dev, e.st.st_ino)) {
                e.chown(*uid, *gid)?;
            }
            Ok(())
        })?;
    }
    Ok(())
}

impl Access {
    /// The access a killed run left, from its record.
    fn from_record(r: journal::Record) -> Access {
        Access {
            cube: format!("the run {} (killed)", r.run_id),
            task: String::new(),
            anchor: r.anchor,
            strict: r.strict,
            trees: r
                .trees
                .into_iter()
                .map(|t| Tree {
                    path: t.path,
                    writable: t.writable,
                    file: t.file,
                })
                .collect(),
            saved: r
                .saved
                .iter()
                .map(|h| ((h.dev, h.ino), (h.uid, h.gid)))
                .collect(),
            container: r.container,
            caller: r.caller,
            journal: None,
            recovering: true,
        }
    }

    /// Takes back what [`grant`] handed over; see the module documentation. Every tree is
    /// walked even when one fails; the first failure is returned.
    pub(crate) fn revoke(mut self) -> Result<(), Error> {
        let (cuid, _) = self.container;
        let (uid, gid) = self.caller;
        let handed_over = cuid != uid;
        let mut first = None;
        for t in &self.trees {
            // Leftovers of a run killed before it could take back (kill -9) are swept too,
            // where cohort owns the data: writable trees and the run's own folder.
            let sweep = handed_over && (t.writable || (self.strict && self.is_ours(&t.path)));
            let private = self.strict && t.writable;
            let r = self.walk(t, &mut |e: &Entry, _| {
                let still_handed = !self.recovering || e.st.st_uid == cuid;
                if let Some((u, g)) = self
                    .saved
                    .get(&(e.st.st_dev, e.st.st_ino))
                    .filter(|_| still_handed)
                {
                    e.chown(*u, *g)?;
                } else if sweep && e.st.st_uid == cuid {
                    e.chown(uid, gid)?;
                }
                if private && e.st.st_mode & 0o7077 != 0 {
                    e.chmod(e.st.st_mode & 0o700)?;
                }
                Ok(())
            });
            if let Err(e) = r {
                first.get_or_insert(e);
            }
        }
        // A failed walk keeps the record: the next run finishes the job.
        if let (None, Some(j)) = (&first, self.journal.take()) {
            j.finish()?;
        }
        first.map_or(Ok(()), Err)
    }

    fn is_ours(&self, p: &Path) -> bool {
        hostfs::below(&self.anchor, p).is_some()
    }

    fn issue(&self, i: Issue) -> Error {
        issue_error(&self.cube, &self.task, i)
    }

    /// Visits the tree's root and everything below it, never following a link; links are
    /// visited (as themselves) but not entered.
    fn walk(
        &self,
        t: &Tree,
        f: &mut dyn FnMut(&Entry, bool) -> Result<(), Issue>,
    ) -> Result<(), Error> {
        let err = |i| self.issue(i);
        let root: Rc<OwnedFd> = if t.file {
            let parent = t.path.parent().unwrap_or(Path::new("/"));
            let name = t.path.file_name().unwrap_or_default().to_os_string();
            let dir = self.open(parent).map_err(err)?;
            let st = rustix::fs::statat(&dir, &name, AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| err(Issue::Io(t.path.clone(), e.into())))?;
            return f(
                &Entry {
                    dir: &dir,
                    name: Some(name),
                    st,
                    path: t.path.clone(),
                },
                true,
            )
            .map_err(err);
        } else {
            Rc::new(self.open(&t.path).map_err(err)?)
        };
        let st = rustix::fs::fstat(&*root).map_err(|e| err(Issue::Io(t.path.clone(), e.into())))?;
        f(
            &Entry {
                dir: &root,
                name: None,
                st,
                path: t.path.clone(),
            },
            true,
        )
        .map_err(err)?;
        let mut stack = vec![(root, t.path.clone())];
        while let Some((dir, path)) = stack.pop() {
            let mut names = Vec::new();
            let entries = rustix::fs::Dir::read_from(&*dir)
                .map_err(|e| err(Issue::Io(path.clone(), e.into())))?;
            for entry in entries {
                let entry = entry.map_err(|e| err(Issue::Io(path.clone(), e.into())))?;
                let name = entry.file_name().to_bytes();
                if name != b"." && name != b".." {
                    names.push(OsString::from(std::ffi::OsStr::from_bytes(name)));
                }
            }
            for name in names {
                let child = path.join(&name);
                let st = match rustix::fs::statat(&*dir, &name, AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) => st,
                    Err(rustix::io::Errno::NOENT) => continue,
                    Err(e) => return Err(err(Issue::Io(child, e.into()))),
                };
                f(
                    &Entry {
                        dir: &dir,
                        name: Some(name.clone()),
                        st,
                        path: child.clone(),
                    },
                    false,
                )
                .map_err(err)?;
                if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
                    let fd = hostfs::open_child_dir(&*dir, &name, &child).map_err(err)?;
                    stack.push((Rc::new(fd), child));
                }
            }
        }
        Ok(())
    }

    fn open(&self, dir: &Path) -> Result<OwnedFd, Issue> {
        hostfs::open_dir(&self.anchor, dir, None, &mut Vec::new())
    }
}

/// One thing in a mounted tree: the folder itself (`name` is `None`) or an entry of `dir`.
struct Entry<'a> {
    dir: &'a OwnedFd,
    name: Option<OsString>,
    st: Stat,
    path: PathBuf,
}

impl Entry<'_> {
    fn chown(&self, uid: u32, gid: u32) -> Result<(), Issue> {
        let (u, g) = (Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)));
        match &self.name {
            None => rustix::fs::fchown(self.dir, u, g),
            Some(n) => rustix::fs::chownat(self.dir, n, u, g, AtFlags::SYMLINK_NOFOLLOW),
        }
        .map_err(|e| Issue::Io(self.path.clone(), e.into()))
    }

    /// Links have no permissions of their own; special files are left alone.
    fn chmod(&self, mode: u32) -> Result<(), Issue> {
        let mode = Mode::from_raw_mode(mode);
        match (&self.name, FileType::from_raw_mode(self.st.st_mode)) {
            (None, _) => rustix::fs::fchmod(self.dir, mode),
            (Some(n), FileType::RegularFile | FileType::Directory) => {
                rustix::fs::chmodat(self.dir, n, mode, AtFlags::empty())
            }
            _ => Ok(()),
        }
        .map_err(|e| Issue::Io(self.path.clone(), e.into()))
    }
}

/// Whether `uid` can read (and, for folders, enter) what `st` describes without a hand-over.
fn readable_by(st: &Stat, uid: u32) -> bool {
    let need = match FileType::from_raw_mode(st.st_mode) {
        FileType::Directory => 0o5,
        FileType::RegularFile => 0o4,
        _ => return true,
    };
    let bits = if st.st_uid == uid {
        st.st_mode >> 6
    } else {
        st.st_mode
    };
    bits & need == need
}

/// The error for a host path problem, in the cube's and task's name.
pub(crate) fn issue_error(cube: &str, task: &str, i: Issue) -> Error {
    let (path, problem) = match i {
        Issue::Symlink(p) => (p, HostPathProblem::Symlink),
        Issue::WrongKind(p) => (p, HostPathProblem::WrongKind),
        Issue::Io(path, source) => return Error::Io { path, source },
    };
    Error::HostPath {
        cube: cube.to_string(),
        task: task.to_string(),
        path,
        problem,
    }
}

/// The checks made immediately before the container is created (see the module docs);
/// returns the trees to hand over.
fn check_mounts(plan: &Plan) -> Result<Vec<Tree>, Error> {
    let strict = plan.mode == RunMode::Strict;
    let anchor = &plan.run_root;
    let fail = |path: &Path, problem| Error::HostPath {
        cube: plan.cube.clone(),
        task: plan.task.clone(),
        path: path.to_path_buf(),
        problem,
    };
    let issue = |i| issue_error(&plan.cube, &plan.task, i);
    if strict {
        // The real per-run workspace, after creation: reachable from the run's folder with no
        // link on the way (so what Docker resolves is what was checked).
        if hostfs::below(anchor, &plan.workspace).is_none() {
            return Err(fail(&plan.workspace, HostPathProblem::OutsideRun));
        }
        hostfs::open_dir(anchor, &plan.workspace, None, &mut Vec::new()).map_err(issue)?;
    }
    let workspace = lexical(&plan.workspace);
    let root = lexical(&plan.root);
    let mut trees = Vec::new();
    for m in &plan.hardening.mounts {
        let host = lexical(&m.host);
        let file = plan
            .params
            .iter()
            .any(|p| p.kind == super::plan::PathKind::File && lexical(&p.host) == host);
        if strict {
            if !m.read_only && paths::is_within(&root, &host) {
                return Err(fail(&m.host, HostPathProblem::CubeFolder));
            }
            let placed = plan.params.iter().filter(|p| p.placed).any(|p| {
                let h = lexical(&p.host);
                h == host || (p.kind == super::plan::PathKind::File && paths::split(&h).0 == host)
            });
            if !paths::is_within(&workspace, &host) && !placed {
                return Err(fail(&m.host, HostPathProblem::OutsideRun));
            }
            if !m.read_only && hostfs::below(anchor, Path::new(&host)).is_none() {
                return Err(fail(&m.host, HostPathProblem::OutsideRun));
            }
        }
        let path = PathBuf::from(&host);
        if hostfs::below(anchor, &path).is_some() {
            if file {
                hostfs::check_file(anchor, &path).map_err(issue)?;
            } else {
                hostfs::open_dir(anchor, &path, None, &mut Vec::new()).map_err(issue)?;
            }
        } else if !m.read_only {
            hostfs::check_not_link(&path).map_err(issue)?;
        }
        trees.push(Tree {
            path,
            writable: !m.read_only,
            file,
        });
    }
    Ok(trees)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    use super::*;
    use crate::mlcube::plan::{HostPath, PathKind, RunRequest, RunnerOptions};
    use crate::mlcube::{CubeConfig, plan, prepare_host};

    fn private(p: &Path, mode: u32) {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    /// A strict plan as the workflow makes one: private data placed under a "home", a fresh
    /// workspace and output folder for the run.
    fn strict_plan(home: &Path) -> Plan {
        std::fs::create_dir_all(home.join("cube")).unwrap();
        std::fs::write(
            home.join("cube/mlcube.yaml"),
            "name: c\ndocker: {image: i}\ntasks: {t: {parameters: {inputs: {data: data/}, outputs: {out: out/}}}}\n",
        )
        .unwrap();
        std::fs::create_dir_all(home.join("data")).unwrap();
        std::fs::write(home.join("data/x.csv"), "1\n").unwrap();
        private(&home.join("data/x.csv"), 0o600);
        private(&home.join("data"), 0o700);
        let cfg = CubeConfig::load(&home.join("cube")).unwrap();
        let mut host_paths = BTreeMap::new();
        for (name, p) in [("data", home.join("data")), ("out", home.join("run/out"))] {
            host_paths.insert(
                name.to_string(),
                HostPath {
                    path: p,
                    kind: PathKind::Dir,
                },
            );
        }
        let req = RunRequest {
            task: "t".into(),
            overrides: Vec::new(),
            host_paths,
            workspace: Some(home.join("run/ws")),
            run_root: Some(home.to_path_buf()),
            mode: RunMode::Strict,
            options: RunnerOptions::default(),
        };
        plan(&cfg, &req, &|_| None, home).unwrap()
    }

    #[test]
    fn access_is_granted_for_the_run_and_taken_back() {
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path();
        let p = strict_plan(home);
        prepare_host(&p).unwrap();
        assert_eq!(
            std::fs::metadata(home.join("run/out")).unwrap().mode() & 0o777,
            0o700
        );
        let me = rustix::process::getuid().as_raw();
        let (cuid, _) = super::super::hardening::container_user();
        let a = grant(&p, None, &mut Vec::new()).unwrap();
        let owner = |rel: &str| std::fs::symlink_metadata(home.join(rel)).unwrap().uid();
        assert_eq!(owner("run/out"), cuid, "the container may write its output");
        assert_eq!(owner("data/x.csv"), cuid, "and read the private input");
        // What the container leaves: a world-readable file, and a link out of its folder.
        std::fs::write(home.join("run/out/result.csv"), "r\n").unwrap();
        private(&home.join("run/out/result.csv"), 0o4755);
        std::os::unix::fs::symlink("/etc", home.join("run/out/link")).unwrap();
        if me == 0 {
            for f in ["run/out/result.csv", "run/out/link"] {
                rustix::fs::chownat(
                    rustix::fs::CWD,
                    home.join(f),
                    Some(Uid::from_raw(cuid)),
                    None,
                    AtFlags::SYMLINK_NOFOLLOW,
                )
                .unwrap();
            }
        }
        let etc = std::fs::metadata("/etc").unwrap();
        a.revoke().unwrap();
        for rel in [
            "run/out",
            "run/out/result.csv",
            "run/out/link",
            "data",
            "data/x.csv",
        ] {
            assert_eq!(owner(rel), me, "{rel} is the caller's again");
        }
        let mode = |rel: &str| std::fs::metadata(home.join(rel)).unwrap().mode() & 0o7777;
        assert_eq!(
            mode("run/out/result.csv"),
            0o700,
            "private, and no setuid bit"
        );
        assert_eq!((mode("data"), mode("data/x.csv")), (0o700, 0o600));
        let etc_after = std::fs::metadata("/etc").unwrap();
        assert_eq!(
            (etc.uid(), etc.mode()),
            (etc_after.uid(), etc_after.mode()),
            "links are never followed"
        );
    }

    #[test]
    fn a_link_on_the_way_to_a_mount_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path();
        let p = strict_plan(home);
        prepare_host(&p).unwrap();
        let elsewhere = home.join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        std::fs::remove_dir(home.join("run/out")).unwrap();
        std::os::unix::fs::symlink(&elsewhere, home.join("run/out")).unwrap();
        let e = grant(&p, None, &mut Vec::new()).err().expect("refused");
        assert!(
            matches!(&e, Error::HostPath { problem: HostPathProblem::Symlink, path, .. } if path == &home.join("run/out")),
            "{e}"
        );
        // prepare_host refuses it too, and creates nothing through it.
        let e = prepare_host(&p).unwrap_err();
        assert!(matches!(&e, Error::HostPath { .. }), "{e}");
        assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
    }
}
