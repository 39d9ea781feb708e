//! Sizes of what lies under COHORT_HOME and the one way cleanup removes a folder: moved into
//! `tmp/` first (one rename), then deleted, so an interrupted cleanup never leaves a
//! half-deleted run, dataset or cache entry where cohort would read it.

use std::io;
use std::path::Path;

/// Bytes of the regular files under `path` (a file: its size; links are not followed).
pub fn disk_usage(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if meta.is_file() {
        return meta.len();
    }
    let mut total = 0;
    let mut stack = vec![path.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(t) if t.is_file() => total += e.metadata().map(|m| m.len()).unwrap_or(0),
                _ => {}
            }
        }
    }
    total
}

/// Removes a file or folder: renamed into `tmp_dir` (same filesystem) in one step, then
/// deleted there. Absent is fine.
pub fn remove_via(tmp_dir: &Path, path: &Path) -> io::Result<()> {
    if std::fs::symlink_metadata(path).is_err() {
        return Ok(());
    }
    std::fs::create_dir_all(tmp_dir)?;
    let trash = tempfile::Builder::new()
        .prefix(".removing-")
        .tempdir_in(tmp_dir)?
        .keep();
    let target = trash.join("x");
    std::fs::rename(path, &target)?;
    std::fs::remove_dir_all(&trash)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_removes_whole_folders() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("runs/r1");
        std::fs::create_dir_all(run.join("out")).unwrap();
        std::fs::write(run.join("out/a"), b"12345").unwrap();
        std::fs::write(run.join("b"), b"123").unwrap();
        assert_eq!(disk_usage(&run), 8);
        remove_via(&dir.path().join("tmp"), &run).unwrap();
        assert!(!run.exists());
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );
        remove_via(&dir.path().join("tmp"), &run).unwrap();
    }
}
