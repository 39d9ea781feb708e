//! The per-task log file: everything the container prints, up to a size cap (a flooding task
//! must not fill the disk), with a note where it was cut, and the last complete line for the
//! progress display.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Default cap on a task's log file.
pub const DEFAULT_LOG_LIMIT: u64 = 64 * 1024 * 1024;

/// Longest line kept for the progress display.
const MAX_LINE: usize = 4096;

pub struct LogSink {
    file: File,
    path: PathBuf,
    limit: u64,
    written: u64,
    truncated: bool,
    partial: Vec<u8>,
}

impl LogSink {
    pub fn create(path: &Path, limit: u64) -> std::io::Result<LogSink> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::os::unix::fs::DirBuilderExt::mode(
                std::fs::DirBuilder::new().recursive(true),
                0o700,
            )
            .create(parent)?;
        }
        // Logs show what a task printed about private data: the caller's alone.
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)?;
        file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
        Ok(LogSink {
            file,
            path: path.to_path_buf(),
            limit,
            written: 0,
            truncated: false,
            partial: Vec::new(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// Appends output; returns the complete lines it finished (for the display). Bytes past
    /// the cap are dropped, and a note says so once.
    pub fn write(&mut self, bytes: &[u8]) -> std::io::Result<Vec<String>> {
        if !self.truncated {
            let room = self.limit.saturating_sub(self.written) as usize;
            if bytes.len() <= room {
                self.file.write_all(bytes)?;
                self.written += bytes.len() as u64;
            } else {
                self.file.write_all(&bytes[..room])?;
                self.written += room as u64;
                writeln!(
                    self.file,
                    "\n[cohort: log truncated at {} bytes; the rest of the task's output was discarded]",
                    self.limit
                )?;
                self.truncated = true;
            }
        }
        let mut lines = Vec::new();
        for chunk in bytes.split_inclusive(|b| *b == b'\n') {
            if chunk.ends_with(b"\n") {
                if self.partial.len() < MAX_LINE {
                    let take = (MAX_LINE - self.partial.len()).min(chunk.len() - 1);
                    self.partial.extend_from_slice(&chunk[..take]);
                }
                let line = String::from_utf8_lossy(&self.partial)
                    .trim_end_matches('\r')
                    .to_string();
                self.partial.clear();
                lines.push(line);
            } else if self.partial.len() < MAX_LINE {
                let take = (MAX_LINE - self.partial.len()).min(chunk.len());
                self.partial.extend_from_slice(&chunk[..take]);
            }
        }
        Ok(lines)
    }

    /// The unfinished last line, if any.
    pub fn pending_line(&self) -> Option<String> {
        (!self.partial.is_empty()).then(|| String::from_utf8_lossy(&self.partial).to_string())
    }

    pub fn finish(mut self) -> std::io::Result<()> {
        self.file.flush()?;
        self.file.sync_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_and_notes_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("logs/t.log");
        let mut sink = LogSink::create(&p, 10).unwrap();
        assert_eq!(sink.write(b"abc\nde").unwrap(), ["abc"]);
        assert_eq!(
            sink.write(b"f\n0123456789\n").unwrap(),
            ["def", "0123456789"]
        );
        assert!(sink.truncated());
        sink.write(b"more\n").unwrap();
        sink.finish().unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(
            text.starts_with("abc\ndef\n01\n[cohort: log truncated at 10 bytes"),
            "{text:?}"
        );
        assert!(!text.contains("more"));
    }
}
