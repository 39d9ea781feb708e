//! Operating-system errors in words: `File exists (os error 17)` tells a user less than
//! "already exists", so every message that carries an I/O error shows it through [`plain_io`].

use std::io::{self, ErrorKind};

/// An I/O error as a short phrase, without the OS error number.
pub fn plain_io(e: &io::Error) -> String {
    let words = match e.kind() {
        ErrorKind::NotFound => "does not exist",
        ErrorKind::PermissionDenied => "permission denied",
        ErrorKind::AlreadyExists => "already exists",
        ErrorKind::NotADirectory => "is not a folder (a file is in the way)",
        ErrorKind::IsADirectory => "is a folder, not a file",
        ErrorKind::DirectoryNotEmpty => "is a folder that is not empty",
        ErrorKind::ReadOnlyFilesystem => "is on a read-only file system",
        ErrorKind::StorageFull => "no space left on the device",
        ErrorKind::QuotaExceeded => "the disk quota is exceeded",
        ErrorKind::CrossesDevices => "cannot be moved across file systems",
        ErrorKind::InvalidFilename => "is not a valid file name",
        ErrorKind::ConnectionRefused => "connection refused (nothing listens there)",
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted => "the connection was cut",
        ErrorKind::TimedOut => "timed out",
        ErrorKind::BrokenPipe => "the other side closed the connection",
        ErrorKind::AddrNotAvailable
        | ErrorKind::HostUnreachable
        | ErrorKind::NetworkUnreachable => "the address cannot be reached",
        ErrorKind::Interrupted => "interrupted",
        ErrorKind::UnexpectedEof => "ends early (truncated)",
        ErrorKind::InvalidData => "holds data that is not what was expected",
        _ => return strip_code(&e.to_string()),
    };
    words.to_string()
}

/// What to do about an I/O error on a path.
pub fn io_hint(e: &io::Error) -> &'static str {
    match e.kind() {
        ErrorKind::PermissionDenied => {
            "check who owns that path and its permissions (`ls -l`); cohort never needs root"
        }
        ErrorKind::AlreadyExists | ErrorKind::DirectoryNotEmpty => {
            "choose another path, or move what is there out of the way"
        }
        ErrorKind::NotADirectory => "a file stands where a folder is needed: choose another path",
        ErrorKind::NotFound => "check the path (relative paths start from the current folder)",
        ErrorKind::StorageFull | ErrorKind::QuotaExceeded => {
            "free some disk space (COHORT_HOME holds cohort's caches), then run the command again"
        }
        ErrorKind::ReadOnlyFilesystem => "choose a path on a writable file system",
        _ => "check the path and its permissions; `cohort doctor` checks this machine",
    }
}

/// `Some text (os error 5)` -> `some text`.
fn strip_code(text: &str) -> String {
    let t = match text.find(" (os error ") {
        Some(i) => &text[..i],
        None => text,
    };
    let mut c = t.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

/// The innermost I/O error in a chain of sources, if any (libraries wrap it several levels deep).
pub fn innermost_io<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a io::Error> {
    let mut found = None;
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<io::Error>() {
            found = Some(io);
        }
        cur = err.source();
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_errors_read_as_words() {
        let e = io::Error::from_raw_os_error(17);
        assert_eq!(plain_io(&e), "already exists");
        assert_eq!(
            plain_io(&io::Error::from_raw_os_error(20)),
            "is not a folder (a file is in the way)"
        );
        assert_eq!(
            plain_io(&io::Error::from_raw_os_error(111)),
            "connection refused (nothing listens there)"
        );
        assert_eq!(strip_code("Bad address (os error 14)"), "bad address");
        assert!(!plain_io(&io::Error::from_raw_os_error(14)).contains("os error"));
    }
}
