//! When each file of a main arrived: its first-parent commit index, by path. Read from a
//! timeline kept on disk, the paths stay in the file's sorted lines and are looked up there as
//! they are asked for (half a million at 50,000 entities: building a map of them cost more
//! than a verification grown by a few commits does), with the changes since in a map.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

/// Lines `<index>\t<path>\n`, sorted by path, each index below a commit count.
#[derive(Debug)]
pub struct SortedLines {
    bytes: Vec<u8>,
    /// Every index is below this.
    commits: usize,
    /// Where each line starts, and where its tab is.
    lines: Vec<(u32, u32)>,
}

impl SortedLines {
    /// The lines of `bytes` from `from` on, when each is `<index>\t<path>` with an index below
    /// `commits`, and the paths are strictly increasing.
    pub fn new(bytes: Vec<u8>, from: usize, commits: usize) -> Option<SortedLines> {
        if bytes.len() > u32::MAX as usize {
            return None;
        }
        let mut lines = Vec::with_capacity((bytes.len() - from.min(bytes.len())) / 48);
        let mut at = from;
        let mut previous: Option<&[u8]> = None;
        while at < bytes.len() {
            let end = at + bytes[at..].iter().position(|&b| b == b'\n')?;
            let tab = at + bytes[at..end].iter().position(|&b| b == b'\t')?;
            let index: usize = std::str::from_utf8(&bytes[at..tab]).ok()?.parse().ok()?;
            let path = &bytes[tab + 1..end];
            if index >= commits || path.is_empty() || previous.is_some_and(|p| p >= path) {
                return None;
            }
            std::str::from_utf8(path).ok()?;
            previous = Some(path);
            lines.push((at as u32, tab as u32));
            at = end + 1;
        }
        Some(SortedLines {
            bytes,
            commits,
            lines,
        })
    }

    fn path(&self, k: usize) -> &[u8] {
        let (_, tab) = self.lines[k];
        let end = self
            .lines
            .get(k + 1)
            .map(|&(next, _)| next as usize - 1)
            .unwrap_or(self.bytes.len() - 1);
        &self.bytes[tab as usize + 1..end]
    }

    fn index(&self, k: usize) -> usize {
        let (start, tab) = self.lines[k];
        std::str::from_utf8(&self.bytes[start as usize..tab as usize])
            .ok()
            .and_then(|s| s.parse().ok())
            .expect("checked when read")
    }

    pub fn get(&self, path: &str) -> Option<usize> {
        let (mut lo, mut hi) = (0, self.lines.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.path(mid).cmp(path.as_bytes()) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(self.index(mid)),
            }
        }
        None
    }

    pub fn len(&self) -> usize {
        self.lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    fn iter(&self) -> impl Iterator<Item = (&str, usize)> + '_ {
        (0..self.lines.len()).map(|k| {
            let p = std::str::from_utf8(self.path(k)).expect("checked when read");
            (p, self.index(k))
        })
    }
}

/// Arrival by path: the lines of a timeline file, with the changes since.
#[derive(Debug, Clone, Default)]
pub struct Intro {
    base: Option<Arc<SortedLines>>,
    added: HashMap<String, usize>,
    /// Paths of `base` removed since.
    removed: HashSet<String>,
}

impl Intro {
    /// Arrivals read as they are asked for from `lines`.
    pub fn of_lines(lines: SortedLines) -> Intro {
        Intro {
            base: Some(Arc::new(lines)),
            ..Intro::default()
        }
    }

    pub fn get(&self, path: &str) -> Option<usize> {
        if let Some(&i) = self.added.get(path) {
            return Some(i);
        }
        if self.removed.contains(path) {
            return None;
        }
        self.base.as_ref()?.get(path)
    }

    pub fn contains_key(&self, path: &str) -> bool {
        self.get(path).is_some()
    }

    fn in_base(&self, path: &str) -> bool {
        self.base.as_ref().is_some_and(|b| b.get(path).is_some())
    }

    /// Sets when `path` arrived; what was set before.
    pub fn insert(&mut self, path: String, index: usize) -> Option<usize> {
        let old = self.get(&path);
        self.removed.remove(&path);
        self.added.insert(path, index);
        old
    }

    pub fn remove(&mut self, path: &str) -> Option<usize> {
        let old = self.get(path);
        self.added.remove(path);
        if self.in_base(path) {
            self.removed.insert(path.to_string());
        }
        old
    }

    pub fn len(&self) -> usize {
        let base = self.base.as_ref().map(|b| b.len()).unwrap_or(0);
        let new = self.added.keys().filter(|p| !self.in_base(p)).count();
        base - self.removed.len() + new
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every path with its arrival, sorted by path.
    pub fn sorted(&self) -> Vec<(&str, usize)> {
        let mut out: BTreeMap<&str, usize> = BTreeMap::new();
        if let Some(b) = &self.base {
            out.extend(b.iter().filter(|(p, _)| !self.removed.contains(*p)));
        }
        out.extend(self.added.iter().map(|(p, &i)| (p.as_str(), i)));
        out.into_iter().collect()
    }

    /// The paths with an arrival at `from` or later, in no order: those set since the lines
    /// were read, and those of the lines (all of them, when `from` is 0).
    pub fn since(&self, from: usize) -> Vec<(&str, usize)> {
        let mut out: Vec<(&str, usize)> = self
            .added
            .iter()
            .filter(|&(_, &i)| i >= from)
            .map(|(p, &i)| (p.as_str(), i))
            .collect();
        if let Some(b) = self.base.as_ref().filter(|b| from < b.commits) {
            // The lines' commits all come before `from` when a frame is written after them.
            out.extend(b.iter().filter(|&(p, i)| {
                i >= from && !self.removed.contains(p) && !self.added.contains_key(p)
            }));
        }
        out
    }
}

impl PartialEq for Intro {
    fn eq(&self, other: &Intro) -> bool {
        self.sorted() == other.sorted()
    }
}

impl Eq for Intro {}

impl<const N: usize> From<[(String, usize); N]> for Intro {
    fn from(pairs: [(String, usize); N]) -> Intro {
        Intro {
            added: pairs.into_iter().collect(),
            ..Intro::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Looked up in the lines or in the map, every arrival is the one a map of all of them
    /// gives, through insertions and removals.
    #[test]
    fn lines_read_as_asked_agree_with_a_map() {
        let mut map: HashMap<String, usize> = HashMap::new();
        let mut body = b"c0\nc1\nc2\n".to_vec();
        let from = body.len();
        for k in 0..500 {
            let p = format!("users/u{k:03}/v1.toml");
            map.insert(p.clone(), k % 3);
        }
        let mut sorted: Vec<_> = map.iter().collect();
        sorted.sort();
        for (p, i) in &sorted {
            body.extend_from_slice(format!("{i}\t{p}\n").as_bytes());
        }
        let lines = SortedLines::new(body.clone(), from, 3).unwrap();
        let mut intro = Intro::of_lines(lines);
        for (p, i) in &map {
            assert_eq!(intro.get(p), Some(*i), "{p}");
        }
        assert_eq!(intro.get("users/zz/v1.toml"), None);
        assert_eq!(intro.get("users/u000"), None);
        assert_eq!(intro.len(), 500);
        intro.insert("users/zz/v1.toml".into(), 2);
        intro.remove("users/u001/v1.toml");
        intro.insert("users/u002/v1.toml".into(), 2);
        map.insert("users/zz/v1.toml".into(), 2);
        map.remove("users/u001/v1.toml");
        map.insert("users/u002/v1.toml".into(), 2);
        for (p, i) in &map {
            assert_eq!(intro.get(p), Some(*i), "{p}");
        }
        assert_eq!(intro.get("users/u001/v1.toml"), None);
        assert_eq!(intro.len(), map.len());
        let mut want: Vec<(&str, usize)> = map.iter().map(|(p, &i)| (p.as_str(), i)).collect();
        want.sort();
        assert_eq!(intro.sorted(), want);
        assert_eq!(
            intro.since(2).len(),
            map.values().filter(|&&i| i >= 2).count()
        );

        // Out of order, an index past the commits, or a line cut short: refused.
        let swapped =
            String::from_utf8(body.clone())
                .unwrap()
                .replacen("users/u000", "users/u999x", 1);
        assert!(SortedLines::new(swapped.into_bytes(), from, 3).is_none());
        assert!(SortedLines::new(body.clone(), from, 2).is_none());
        assert!(SortedLines::new(body[..body.len() - 1].to_vec(), from, 3).is_none());
    }
}
