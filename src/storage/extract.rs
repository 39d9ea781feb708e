//! Safe extraction of the tarballs cubes and benchmarks ship (additional files, demo
//! datasets): plain files and folders only, nothing that could escape the destination, bounded
//! in entries and bytes, and all-or-nothing: a refused archive leaves nothing behind.

use std::cell::Cell;
use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use tar::EntryType;

use super::AtomicDir;
use super::error::{Result, StorageError};

/// Bounds on what one archive may create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtractLimits {
    /// Entries in the archive (files, folders and metadata headers).
    pub max_entries: u64,
    /// Regular files, when the asset's record states how many it has.
    pub max_files: Option<u64>,
    /// Total bytes of file contents after decompression.
    pub max_total_bytes: u64,
    /// Unpacked bytes allowed per byte of the archive file (a gzip of zeros reaches ~1000:1).
    pub max_ratio: Option<u64>,
    /// Longest relative path, in bytes.
    pub max_path_len: usize,
}

/// Unpacked size allowed for an archive whose record does not state it.
pub const DEFAULT_MAX_UNPACKED: u64 = 1 << 30;
/// Unpacked-to-packed ratio allowed for an archive whose record does not state its size.
pub const DEFAULT_MAX_RATIO: u64 = 100;

impl Default for ExtractLimits {
    /// For archives whose record states nothing: 1 GiB and 100:1, which stop a bomb (a 9 MB
    /// gzip once expanded to 2 GiB under the old 16 GiB cap) and pass real cube assets.
    fn default() -> Self {
        ExtractLimits {
            max_entries: 100_000,
            max_files: None,
            max_total_bytes: DEFAULT_MAX_UNPACKED,
            max_ratio: Some(DEFAULT_MAX_RATIO),
            max_path_len: 1024,
        }
    }
}

impl ExtractLimits {
    /// The limits for an asset: exactly the unpacked size and file count its signed record
    /// states (measured at submission, and the archive's sha256 is checked before extraction,
    /// so an honest archive meets them exactly). Without them, `ceiling` (the user's
    /// `--max-unpacked-size`) replaces the 1 GiB default and the ratio rule, or the defaults
    /// apply.
    pub fn for_asset(unpacked_size: Option<u64>, files: Option<u64>, ceiling: Option<u64>) -> Self {
        let base = ExtractLimits::default();
        match (unpacked_size, ceiling) {
            (Some(size), _) => ExtractLimits {
                max_total_bytes: size,
                max_files: files,
                max_ratio: None,
                ..base
            },
            (None, Some(c)) => ExtractLimits {
                max_total_bytes: c,
                max_files: files,
                max_ratio: None,
                ..base
            },
            (None, None) => ExtractLimits {
                max_files: files,
                ..base
            },
        }
    }
}

/// What an extraction created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extracted {
    /// Relative paths of the files, in archive order.
    pub files: Vec<PathBuf>,
    /// Total bytes of their contents (what a record states as `unpacked_size`).
    pub bytes: u64,
}

/// Tar overhead allowed per entry on top of the file contents: a header block, padding and a
/// long-name block. The decompressed stream is capped at contents plus this, so entries tar
/// reads into memory or skips (pax headers, long names, a folder with a size) are bounded too.
const OVERHEAD_PER_ENTRY: u64 = 3 * 512;

/// The gzip magic number; the file name is not trusted.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Extracts the `.tar`, `.tar.gz` or `.tgz` at `archive` into `dest` and returns the
/// relative paths of the files it created, in archive order.
///
/// Only regular files and directories are accepted; `..`, absolute paths, backslashes,
/// non-UTF-8 names, symlinks, hard links, devices, fifos, sparse files, duplicate entries and
/// anything beyond `limits` refuse the whole archive, naming the entry. Contents are staged
/// beside `dest` and renamed into place at the end, replacing any previous `dest` as a whole.
/// Files are created 0644 and folders 0755 whatever the archive says: nothing from an
/// archive becomes executable or setuid.
pub fn extract_tarball(archive: &Path, dest: &Path, limits: &ExtractLimits) -> Result<Extracted> {
    let file = File::open(archive).map_err(|e| StorageError::io("open", archive, e))?;
    let packed = file
        .metadata()
        .map_err(|e| StorageError::io("read", archive, e))?
        .len();
    extract_from(Box::new(file), packed, archive, dest, limits, false)
}

/// [`extract_tarball`] from a stream (a decrypting reader: the tarball never exists as a file),
/// under the same rules and limits, and read to its end. `packed` is the archive's size for the ratio rule and
/// `archive` names it in messages.
pub fn extract_reader(
    source: Box<dyn Read>,
    packed: u64,
    archive: &Path,
    dest: &Path,
    limits: &ExtractLimits,
) -> Result<Extracted> {
    extract_from(source, packed, archive, dest, limits, true)
}

fn extract_from(
    source: Box<dyn Read>,
    packed: u64,
    archive: &Path,
    dest: &Path,
    limits: &ExtractLimits,
    drain: bool,
) -> Result<Extracted> {
    let mut limits = limits.clone();
    if let Some(ratio) = limits.max_ratio {
        let by_ratio = packed.saturating_mul(ratio).max(1 << 20);
        limits.max_total_bytes = limits.max_total_bytes.min(by_ratio);
    }
    let limits = &limits;
    let mut reader = BufReader::with_capacity(256 << 10, source);
    let head = reader
        .fill_buf()
        .map_err(|e| StorageError::io("read", archive, e))?;
    let input: Box<dyn Read> = if head.starts_with(&GZIP_MAGIC) {
        // Multi-member: `cat a.gz b.gz` and pigz output are valid gzip files.
        Box::new(flate2::bufread::MultiGzDecoder::new(reader))
    } else {
        Box::new(reader)
    };
    let over = Rc::new(Cell::new(false));
    let input = Box::new(Capped {
        inner: input,
        left: limits
            .max_total_bytes
            .saturating_add(limits.max_entries.saturating_mul(OVERHEAD_PER_ENTRY)),
        over: over.clone(),
    });
    let staging = AtomicDir::new(dest).map_err(|e| StorageError::io("stage", dest, e))?;
    let files = unpack(archive, input, staging.path(), limits, drain).map_err(|e| {
        if over.get() {
            StorageError::ArchiveLimit {
                archive: archive.to_path_buf(),
                why: format!(
                    "it unpacks to more than {} bytes{}",
                    limits.max_total_bytes,
                    limit_origin(limits)
                ),
            }
        } else {
            e
        }
    })?;
    set_mode(staging.path(), 0o755).map_err(|e| StorageError::io("set permissions on", dest, e))?;
    staging
        .commit()
        .map_err(|e| StorageError::io("move into place", dest, e))?;
    Ok(files)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Made {
    File,
    Dir,
}

/// Says where a size limit came from, so the message tells the user what to change.
fn limit_origin(limits: &ExtractLimits) -> &'static str {
    if limits.max_ratio.is_some() {
        " (the default for assets whose record states no unpacked size: 1 GiB and 100 times the archive; raise it with --max-unpacked-size)"
    } else {
        ""
    }
}

/// The decompressed stream, cut off (with `over` set) past `left` bytes.
struct Capped {
    inner: Box<dyn Read>,
    left: u64,
    over: Rc<Cell<bool>>,
}

impl Read for Capped {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = buf
            .len()
            .min(usize::try_from(self.left.saturating_add(1)).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n as u64 > self.left {
            self.over.set(true);
            return Err(io::Error::other("the archive unpacks beyond its limit"));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

fn unpack(
    archive: &Path,
    input: Box<dyn Read>,
    root: &Path,
    limits: &ExtractLimits,
    drain: bool,
) -> Result<Extracted> {
    let bad_archive = |e: io::Error| StorageError::BadArchive {
        archive: archive.to_path_buf(),
        why: e.to_string(),
    };
    let mut ar = tar::Archive::new(input);
    let mut made: HashMap<String, Made> = HashMap::new();
    let mut files = Vec::new();
    let mut entries = 0u64;
    let mut total = 0u64;
    for entry in ar.entries().map_err(bad_archive)? {
        let mut entry = entry.map_err(bad_archive)?;
        entries += 1;
        if entries > limits.max_entries {
            return Err(StorageError::ArchiveLimit {
                archive: archive.to_path_buf(),
                why: format!("it has more than {} entries", limits.max_entries),
            });
        }
        let raw = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let refuse = |why: String| StorageError::UnsafeArchive {
            archive: archive.to_path_buf(),
            entry: shown.clone(),
            why,
        };
        let kind = match entry.header().entry_type() {
            EntryType::Regular | EntryType::Continuous => Made::File,
            EntryType::Directory => Made::Dir,
            // pax global headers only carry metadata for the entries that follow.
            EntryType::XGlobalHeader => continue,
            EntryType::Symlink => {
                return Err(refuse(format!("is a symbolic link{}", link_target(&entry))));
            }
            EntryType::Link => {
                return Err(refuse(format!("is a hard link{}", link_target(&entry))));
            }
            EntryType::Char | EntryType::Block => return Err(refuse("is a device file".into())),
            EntryType::Fifo => return Err(refuse("is a fifo".into())),
            EntryType::GNUSparse => return Err(refuse("is a sparse file".into())),
            other => return Err(refuse(format!("has the unsupported type {other:?}"))),
        };
        let name =
            std::str::from_utf8(&raw).map_err(|_| refuse("has a name that is not UTF-8".into()))?;
        let parts = safe_components(name, limits).map_err(refuse)?;
        if parts.is_empty() {
            if kind == Made::Dir {
                continue; // "./" itself
            }
            return Err(refuse("has an empty name".into()));
        }
        // Parents must be folders this archive made (or implied), never one of its files.
        let mut path = root.to_path_buf();
        let mut rel = String::new();
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                rel.push('/');
            }
            rel.push_str(part);
            path.push(part);
            let last = i + 1 == parts.len();
            match (made.get(&rel).copied(), last, kind) {
                (Some(Made::File), false, _) => {
                    return Err(refuse(format!("goes through `{rel}`, which is a file")));
                }
                (Some(_), true, Made::File) | (Some(Made::File), true, Made::Dir) => {
                    return Err(refuse("appears twice in the archive".into()));
                }
                (Some(Made::Dir), _, _) => {}
                (None, false, _) | (None, true, Made::Dir) => {
                    make_dir(&path).map_err(|e| StorageError::io("create", &path, e))?;
                    made.insert(rel.clone(), Made::Dir);
                }
                (None, true, Made::File) => {}
            }
        }
        if kind == Made::Dir {
            continue;
        }
        if let Some(max) = limits.max_files.filter(|m| files.len() as u64 >= *m) {
            return Err(StorageError::ArchiveLimit {
                archive: archive.to_path_buf(),
                why: format!("it has more than the {max} files its record states (at `{shown}`)"),
            });
        }
        // entry.size() honours a pax `size` record, unlike the raw header field.
        let declared = entry.size();
        if total.saturating_add(declared) > limits.max_total_bytes {
            return Err(StorageError::ArchiveLimit {
                archive: archive.to_path_buf(),
                why: format!(
                    "its files add up to more than {} bytes (at `{shown}`){}",
                    limits.max_total_bytes,
                    limit_origin(limits)
                ),
            });
        }
        let mut out = create_file(&path).map_err(|e| StorageError::io("create", &path, e))?;
        let copied = copy(&mut entry, &mut out).map_err(|e| match e {
            CopyError::Read(e) => bad_archive(e),
            CopyError::Write(e) => StorageError::io("write", &path, e),
        })?;
        out.sync_all()
            .map_err(|e| StorageError::io("write", &path, e))?;
        total += copied;
        made.insert(rel.clone(), Made::File);
        files.push(PathBuf::from(rel));
    }
    if drain {
        // A stream is read to its end, so an authenticating reader (age) checks its last
        // chunk too, past tar's end-of-archive blocks.
        io::copy(&mut ar.into_inner(), &mut io::sink()).map_err(bad_archive)?;
    }
    Ok(Extracted {
        files,
        bytes: total,
    })
}

/// Splits a tar path into safe components, or says why it is not safe.
fn safe_components<'a>(name: &'a str, limits: &ExtractLimits) -> Result<Vec<&'a str>, String> {
    if name.starts_with('/') {
        return Err("is an absolute path".into());
    }
    if name.contains('\\') {
        return Err("contains a backslash (a Windows path separator)".into());
    }
    if name.len() > limits.max_path_len {
        return Err(format!(
            "has a path longer than {} bytes",
            limits.max_path_len
        ));
    }
    let mut parts = Vec::new();
    for part in name.split('/') {
        match part {
            "" | "." => continue,
            ".." => return Err("contains `..` (it would escape the destination)".into()),
            p if p.len() > 255 => return Err("has a path component longer than 255 bytes".into()),
            p if p.chars().any(char::is_control) => {
                return Err("has a control character in its name".into());
            }
            p => parts.push(p),
        }
    }
    if parts
        .first()
        .is_some_and(|p| p.len() == 2 && p.ends_with(':'))
    {
        return Err("starts with a drive letter".into());
    }
    Ok(parts)
}

fn link_target<R: Read>(entry: &tar::Entry<'_, R>) -> String {
    entry
        .link_name_bytes()
        .map(|t| format!(" (to `{}`)", String::from_utf8_lossy(&t)))
        .unwrap_or_default()
}

enum CopyError {
    Read(io::Error),
    Write(io::Error),
}

fn copy(r: &mut dyn Read, w: &mut File) -> std::result::Result<u64, CopyError> {
    let mut buf = vec![0u8; 256 << 10];
    let mut n_total = 0u64;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => return Ok(n_total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Read(e)),
        };
        w.write_all(&buf[..n]).map_err(CopyError::Write)?;
        n_total += n as u64;
    }
}

fn make_dir(path: &Path) -> io::Result<()> {
    let mut b = fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o755);
    }
    b.create(path)
}

fn create_file(path: &Path) -> io::Result<File> {
    let mut o = fs::OpenOptions::new();
    // create_new: the staging folder only holds what this archive made, so an existing
    // file here would mean a duplicate entry slipped through.
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o644);
    }
    o.open(path)
}

fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
    }
    #[cfg(not(unix))]
    {
        let _ = (path, mode);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn component_rules() {
        let l = ExtractLimits::default();
        assert_eq!(safe_components("./a/b/", &l).unwrap(), ["a", "b"]);
        assert_eq!(safe_components("a//./b", &l).unwrap(), ["a", "b"]);
        assert!(safe_components("", &l).unwrap().is_empty());
        for (bad, why) in [
            ("/etc/passwd", "absolute"),
            ("a/../../b", ".."),
            ("..", ".."),
            ("a\\..\\b", "backslash"),
            ("C:/x", "drive letter"),
            ("a/b\nc", "control character"),
        ] {
            let e = safe_components(bad, &l).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
        let long = "a/".repeat(600);
        assert!(safe_components(&long, &l).unwrap_err().contains("longer"));
    }
}
