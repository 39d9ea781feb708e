//! The record of a run's hand-over, written before anything changes owner: the mounted trees,
//! which files and folders were handed to the container's user with their original owners,
//! and the run's container label. A cohort killed with SIGKILL mid-run cannot take access back
//! itself; the next run in the same home finds its record (no process holds its lock any
//! more), takes access back exactly as the run would have (`access`), and removes the
//! leftover container. Without it, a hospital's raw data handed to nobody for a run stayed
//! nobody's for good.
//!
//! One file per run in a folder only the caller can enter (a container never mounts it), one
//! item per line, paths as hex bytes (any path survives): `cohort-access 1`, `run ID`,
//! `anchor HEX`, `strict 0|1`, `container UID GID`, `caller UID GID`, then `tree W F HEX` per
//! mounted tree (writable, file: 0 or 1) and `saved DEV INO UID GID HEX` per entry handed
//! over, and `end`. It is flushed to disk before the first change of owner; a record without
//! `end` was cut short before any.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::error::Error;

/// What was handed over: an inode, its original owner, and the path it was reached by.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Handed {
    pub dev: u64,
    pub ino: u64,
    pub uid: u32,
    pub gid: u32,
    pub path: PathBuf,
}

/// A mounted tree as the record keeps it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TreeRecord {
    pub path: PathBuf,
    pub writable: bool,
    pub file: bool,
}

/// Everything a run needs to take access back.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Record {
    pub run_id: String,
    pub anchor: PathBuf,
    pub strict: bool,
    pub container: (u32, u32),
    pub caller: (u32, u32),
    pub trees: Vec<TreeRecord>,
    pub saved: Vec<Handed>,
}

/// A run's record on disk, locked for as long as the run's process lives.
pub(crate) struct Journal {
    file: File,
    path: PathBuf,
}

const MAGIC: &str = "cohort-access 1";
const SUFFIX: &str = ".access";
/// A record is at most this big (about a million entries).
const MAX_RECORD: u64 = 256 << 20;

fn io(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn hex(p: &Path) -> String {
    p.as_os_str()
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn unhex(s: &str) -> Option<PathBuf> {
    if !s.len().is_multiple_of(2) || s.is_empty() {
        return None;
    }
    let bytes = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    Some(PathBuf::from(std::ffi::OsStr::from_bytes(&bytes)))
}

/// The folder for records, private to the caller.
fn private_dir(dir: &Path) -> Result<(), Error> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| io(dir, e))?;
    let meta = std::fs::symlink_metadata(dir).map_err(|e| io(dir, e))?;
    if !meta.is_dir() {
        return Err(io(
            dir,
            std::io::Error::other("not a folder (links are refused)"),
        ));
    }
    if meta.permissions().mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| io(dir, e))?;
    }
    Ok(())
}

impl Journal {
    /// Writes and locks the record of a run before anything is handed over.
    pub(crate) fn begin(dir: &Path, r: &Record) -> Result<Journal, Error> {
        private_dir(dir)?;
        let safe: String = r
            .run_id
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let path = dir.join(format!("{safe}-{}{SUFFIX}", std::process::id()));
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(&path)
            .map_err(|e| io(&path, e))?;
        file.try_lock()
            .map_err(|e| io(&path, std::io::Error::other(e.to_string())))?;
        file.write_all(render(r).as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| io(&path, e))?;
        // The record's name must survive a crash too.
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(Journal { file, path })
    }

    /// Everything was taken back: the record goes.
    pub(crate) fn finish(self) -> Result<(), Error> {
        std::fs::remove_file(&self.path).map_err(|e| io(&self.path, e))?;
        drop(self.file);
        Ok(())
    }
}

fn render(r: &Record) -> String {
    let mut text = format!(
        "{MAGIC}\nrun {}\nanchor {}\nstrict {}\ncontainer {} {}\ncaller {} {}\n",
        r.run_id,
        hex(&r.anchor),
        u8::from(r.strict),
        r.container.0,
        r.container.1,
        r.caller.0,
        r.caller.1
    );
    for t in &r.trees {
        text.push_str(&format!(
            "tree {} {} {}\n",
            u8::from(t.writable),
            u8::from(t.file),
            hex(&t.path)
        ));
    }
    for h in &r.saved {
        text.push_str(&format!(
            "saved {} {} {} {} {}\n",
            h.dev,
            h.ino,
            h.uid,
            h.gid,
            hex(&h.path)
        ));
    }
    text.push_str("end\n");
    text
}

fn parse(text: &str) -> Option<Record> {
    let mut lines = text.lines();
    if lines.next()? != MAGIC {
        return None;
    }
    let mut field = |key: &str| -> Option<Vec<String>> {
        let line = lines.next()?.strip_prefix(key)?.strip_prefix(' ')?;
        Some(line.split(' ').map(str::to_string).collect())
    };
    let pair = |v: Vec<String>| -> Option<(u32, u32)> {
        match v.as_slice() {
            [a, b] => Some((a.parse().ok()?, b.parse().ok()?)),
            _ => None,
        }
    };
    let run_id = field("run")?.join(" ");
    let anchor = unhex(field("anchor")?.first()?)?;
    let strict = field("strict")?.first()? == "1";
    let container = pair(field("container")?)?;
    let caller = pair(field("caller")?)?;
    let mut r = Record {
        run_id,
        anchor,
        strict,
        container,
        caller,
        trees: Vec::new(),
        saved: Vec::new(),
    };
    for line in lines {
        let f: Vec<&str> = line.split(' ').collect();
        match f.as_slice() {
            ["end"] => return Some(r),
            ["tree", w, file, path] => r.trees.push(TreeRecord {
                writable: *w == "1",
                file: *file == "1",
                path: unhex(path)?,
            }),
            ["saved", dev, ino, uid, gid, path] => r.saved.push(Handed {
                dev: dev.parse().ok()?,
                ino: ino.parse().ok()?,
                uid: uid.parse().ok()?,
                gid: gid.parse().ok()?,
                path: unhex(path)?,
            }),
            _ => return None,
        }
    }
    None
}

/// Finishes runs killed before they could take access back: `finish` gets the record of every
/// run whose process is gone (records of live runs are locked and left alone), and the record
/// is removed afterwards. Returns their container labels, for the caller to remove their
/// containers.
pub(crate) fn recover(dir: &Path, finish: &dyn Fn(Record)) -> Result<Vec<String>, Error> {
    let Ok(list) = std::fs::read_dir(dir) else {
        return Ok(Vec::new());
    };
    let mut runs = Vec::new();
    for entry in list.flatten() {
        let path = entry.path();
        if !path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().ends_with(SUFFIX))
        {
            continue;
        }
        let mut file = match OpenOptions::new()
            .read(true)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(&path)
        {
            Ok(f) => f,
            Err(_) => continue,
        };
        if file.try_lock().is_err() {
            // Its run is still going.
            continue;
        }
        let mut text = String::new();
        (&mut file)
            .take(MAX_RECORD)
            .read_to_string(&mut text)
            .map_err(|e| io(&path, e))?;
        // A record cut short was cut before anything changed owner.
        if let Some(r) = parse(&text) {
            runs.push(r.run_id.clone());
            finish(r);
        }
        std::fs::remove_file(&path).map_err(|e| io(&path, e))?;
    }
    Ok(runs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_round_trips_and_a_cut_one_is_ignored() {
        let r = Record {
            run_id: "r1".into(),
            anchor: PathBuf::from("/home"),
            strict: true,
            container: (7, 8),
            caller: (0, 0),
            trees: vec![TreeRecord {
                path: PathBuf::from("/d"),
                writable: true,
                file: false,
            }],
            saved: vec![Handed {
                dev: 1,
                ino: 2,
                uid: 0,
                gid: 0,
                path: PathBuf::from(std::ffi::OsStr::from_bytes(b"/d/a b\n\xff")),
            }],
        };
        let tmp = tempfile::tempdir().unwrap();
        let j = Journal::begin(tmp.path(), &r).unwrap();
        let text = std::fs::read_to_string(&j.path).unwrap();
        assert_eq!(parse(&text).as_ref(), Some(&r));
        assert!(parse(text.trim_end_matches("end\n")).is_none());
        // A live run's record is left alone; once its process lets go, it is finished.
        let seen = std::cell::RefCell::new(Vec::new());
        let finish = |r: Record| seen.borrow_mut().push(r);
        assert!(recover(tmp.path(), &finish).unwrap().is_empty());
        drop(j);
        assert_eq!(recover(tmp.path(), &finish).unwrap(), ["r1"]);
        assert_eq!(seen.borrow().as_slice(), [r]);
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
    }
}
