//! git tree objects read from their raw bytes, for the history walk: a 1,000-commit walk reads
//! two versions of every folder a commit touches, and libgit2's tree objects cost an
//! allocation per entry and a re-parse per lookup that the walk does not need.

use git2::{ObjectType, Odb, Oid};

use super::{RegistryError, Result};

const TREE: u32 = 0o040000;

/// How deep folders may nest: registry paths are a few folders deep, and a hostile tree can
/// nest one folder in the next as deep as it likes (a ~30-byte object a level), which a
/// recursive walk would follow until the stack overflows.
pub(super) const MAX_DEPTH: usize = 32;

/// Refuses folder `dir` (a path ending in `/`) when it is nested deeper than [`MAX_DEPTH`].
pub(super) fn check_depth(dir: &str) -> Result<()> {
    if dir.bytes().filter(|&b| b == b'/').count() <= MAX_DEPTH {
        return Ok(());
    }
    let start: String = dir.chars().take(40).collect();
    Err(RegistryError::Refused(format!(
        "{start}...: folders nested more than {MAX_DEPTH} deep; registry paths are a few \
         folders deep"
    )))
}

/// One entry of a raw tree: where its name and id sit in the tree's bytes.
#[derive(Clone, Copy)]
pub(super) struct Entry {
    pub mode: u32,
    mode_len: u8,
    name: (u32, u32),
    id: u32,
}

impl Entry {
    /// A folder, by the mode's type bits, as git and libgit2 read it.
    pub fn is_tree(&self) -> bool {
        self.mode & 0o170000 == TREE
    }
    /// Where the entry's bytes start (its mode) and end (after its id).
    fn start(&self) -> usize {
        // The mode's digits and the space before the name.
        self.name.0 as usize - self.mode_len as usize - 1
    }
    fn end(&self) -> usize {
        self.id as usize + 20
    }
}

fn word(bytes: &[u8], at: usize) -> u64 {
    u64::from_ne_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len());
    let words = n / 8;
    let w = (0..words)
        .find(|&k| word(a, k * 8) != word(b, k * 8))
        .unwrap_or(words);
    w * 8
        + a[w * 8..n]
            .iter()
            .zip(&b[w * 8..n])
            .take_while(|(x, y)| x == y)
            .count()
}

fn common_suffix(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len());
    let (a, b) = (&a[a.len() - n..], &b[b.len() - n..]);
    let words = n / 8;
    let w = (0..words)
        .find(|&k| word(a, n - k * 8 - 8) != word(b, n - k * 8 - 8))
        .unwrap_or(words);
    let rest = n - w * 8;
    w * 8
        + a[..rest]
            .iter()
            .rev()
            .zip(b[..rest].iter().rev())
            .take_while(|(x, y)| x == y)
            .count()
}

/// A tree object: its bytes, its entries in stored order, and why git would never write it
/// (when it would not, worked out when first asked).
pub(super) struct RawTree {
    data: Vec<u8>,
    pub entries: Vec<Entry>,
    malformed: std::cell::OnceCell<Option<String>>,
}

impl RawTree {
    /// Reads tree `id` from `odb`.
    pub fn read(odb: &Odb, id: Oid) -> Result<RawTree> {
        let obj = odb.read(id)?;
        if obj.kind() != ObjectType::Tree {
            return Err(RegistryError::Git(format!(
                "object {id} is a {}, where a tree was expected",
                obj.kind().str()
            )));
        }
        RawTree::parse(obj.data().to_vec())
            .map_err(|why| RegistryError::Git(format!("failed to parse tree {id}: {why}")))
    }

    /// Parses a tree object's bytes (`<octal mode> <name>\0<20-byte id>`, repeated). Modes
    /// are those libgit2 accepts; anything else is refused as libgit2 refuses it.
    pub fn parse(data: Vec<u8>) -> std::result::Result<RawTree, String> {
        let mut entries = Vec::new();
        let mut at = 0usize;
        while at < data.len() {
            // Modes and names are short: a plain scan beats a vectorised search's set-up.
            let space = find(b' ', &data[at..]).ok_or("an entry has no mode")?;
            // Any octal mode parses, as libgit2 parses it; one git never writes is malformed.
            let mode = octal(&data[at..at + space]).ok_or("an entry has a bad file mode")?;
            let name_start = at + space + 1;
            let nul = find(0, &data[name_start..]).ok_or("an entry's name is not ended")?;
            let id = name_start + nul + 1;
            if id + 20 > data.len() {
                return Err("an entry's id is cut short".into());
            }
            entries.push(Entry {
                mode,
                mode_len: space as u8,
                name: (name_start as u32, (name_start + nul) as u32),
                id: id as u32,
            });
            at = id + 20;
        }
        Ok(RawTree {
            data,
            entries,
            malformed: Default::default(),
        })
    }

    pub fn name(&self, e: &Entry) -> &[u8] {
        &self.data[e.name.0 as usize..e.name.1 as usize]
    }

    pub fn id_bytes(&self, e: &Entry) -> &[u8] {
        &self.data[e.id as usize..e.id as usize + 20]
    }

    pub fn id(&self, e: &Entry) -> Oid {
        Oid::from_bytes(self.id_bytes(e)).expect("20 bytes are an object id")
    }

    /// How many entries at the start, and how many at the end, `self` and `other` share
    /// byte for byte (mode, name and id): a commit changes a few entries of a folder, and the
    /// rest need no comparison. Entries past the shared leading bytes are matched from the end
    /// only while both trees have an entry starting at the same distance from their ends
    /// inside the shared trailing bytes, so each pair parsed alike.
    pub fn shared_ends(&self, other: &RawTree) -> (usize, usize) {
        let (a, b) = (&self.data, &other.data);
        let lead = common_prefix(a, b);
        let head = self
            .entries
            .iter()
            .zip(&other.entries)
            .take_while(|(x, y)| x.end() <= lead && y.end() <= lead)
            .count();
        // Both trees hold the same bytes up to the end of their shared leading entries.
        let shared = head.checked_sub(1).map_or(0, |h| self.entries[h].end());
        let trail = common_suffix(&a[shared..], &b[shared..]);
        let tail = self.entries[head..]
            .iter()
            .rev()
            .zip(other.entries[head..].iter().rev())
            .take_while(|(x, y)| {
                let (dx, dy) = (a.len() - x.start(), b.len() - y.start());
                dx == dy && dx <= trail
            })
            .count();
        (head, tail)
    }

    /// git's order of two entries: by name, a folder's name read as if it ended in `/`.
    pub fn order(&self, a: &Entry, other: &RawTree, b: &Entry) -> std::cmp::Ordering {
        git_order(self.name(a), a.is_tree(), other.name(b), b.is_tree())
    }

    /// Why git would never write this tree, if it would not: an entry name that is empty,
    /// `.`, `..` or holds a `/`, two entries of one name, or entries out of git's order. Such
    /// a tree reads differently to different readers (a lookup by name finds one of two
    /// entries, a walk sees both, a misplaced entry is missed by the lookup's binary search).
    pub fn malformed(&self) -> Option<&str> {
        self.malformed
            .get_or_init(|| (0..self.entries.len()).find_map(|i| self.entry_problem(i)))
            .as_deref()
    }

    /// [`malformed`](Self::malformed) for a tree that shares `shared_ends(old)` with `old`,
    /// a tree known to be well formed: only the entries between the shared ends, and those
    /// of the tail that could pair with them, are looked at. The answer is the full check's:
    /// the shared entries are `old`'s own, in order and of valid names, and two entries of
    /// one name both among them would make `old` malformed.
    pub fn malformed_beside(&self, old: &RawTree, (head, tail): (usize, usize)) -> Option<&str> {
        if old.malformed().is_some() {
            return self.malformed();
        }
        self.malformed
            .get_or_init(|| {
                let t0 = self.entries.len() - tail;
                if let Some(why) = (head..t0).find_map(|i| self.entry_problem(i)) {
                    return Some(why);
                }
                let first = self.entries.get(t0)?;
                // A folder `p` of the tail pairs with a file `p` before the tail only if every
                // entry between is named `p` and a byte below `/`, the tail's first included:
                // `p` is then a prefix of that name, at least its shortest such prefix.
                let name = self.name(first);
                let shortest = (1..name.len()).find(|&n| name[n] < b'/');
                let mut tail_entries = t0..self.entries.len();
                let in_reach = |k: usize| {
                    k == t0
                        || shortest
                            .is_some_and(|n| self.name(&self.entries[k]).starts_with(&name[..n]))
                };
                tail_entries.find_map(|k| {
                    if !in_reach(k) {
                        return Some(None);
                    }
                    self.entry_problem(k).map(Some)
                })?
            })
            .as_deref()
    }

    /// What is wrong with entry `i` given the entries before it, if anything.
    fn entry_problem(&self, i: usize) -> Option<String> {
        let named = |what: &str, name: &[u8], after: &str| {
            Some(format!("{what} `{}`{after}", String::from_utf8_lossy(name)))
        };
        let e = &self.entries[i];
        let name = self.name(e);
        if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') {
            return named("holds an entry named", name, ", which git never writes");
        }
        if !matches!(e.mode, TREE | 0o100644 | 0o100755 | 0o120000 | 0o160000) {
            let after = format!(" with file mode {:o}, which git never writes", e.mode);
            return named("holds", name, &after);
        }
        let prev = &self.entries[..i];
        if let Some(p) = prev.last()
            && git_order(self.name(p), p.is_tree(), name, e.is_tree()).is_ge()
        {
            return if prev.iter().any(|p| self.name(p) == name) {
                named("holds two entries named", name, "")
            } else {
                named("lists", name, " out of git's order")
            };
        }
        // A folder and a file of one name sort apart (`x` < `x.y` < `x/`): everything between
        // them is named `x` and a byte below `/`, so the file is found by looking back over
        // those entries only (usually none).
        if e.is_tree() {
            for p in prev.iter().rev() {
                let pn = self.name(p);
                if pn == name {
                    return named("holds two entries named", name, "");
                }
                if !(pn.starts_with(name) && pn[name.len()] < b'/') {
                    break;
                }
            }
        }
        None
    }
}

/// git's tree order (`base_name_compare`): names compared bytewise, a folder's name extended
/// by `/`.
pub(super) fn git_order(a: &[u8], a_tree: bool, b: &[u8], b_tree: bool) -> std::cmp::Ordering {
    let n = a.len().min(b.len());
    // Names are short: a loop beats a call to memcmp, and this runs for every entry of every
    // tree the history walk reads.
    if let Some(k) = (0..n).find(|&k| a[k] != b[k]) {
        return a[k].cmp(&b[k]);
    }
    let end = |name: &[u8], tree: bool| match name.get(n) {
        Some(c) => *c,
        None if tree => b'/',
        None => 0,
    };
    end(a, a_tree)
        .cmp(&end(b, b_tree))
        .then(a.len().cmp(&b.len()))
}

fn find(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|c| *c == needle)
}

fn octal(digits: &[u8]) -> Option<u32> {
    if digits.is_empty() || digits.len() > 7 {
        return None;
    }
    digits.iter().try_fold(0u32, |acc, d| match d {
        b'0'..=b'7' => Some(acc * 8 + u32::from(d - b'0')),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(entries: &[(&str, &str)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, (mode, name)) in entries.iter().enumerate() {
            out.extend_from_slice(format!("{mode} {name}\0").as_bytes());
            out.extend_from_slice(&[i as u8; 20]);
        }
        out
    }

    fn why(entries: &[(&str, &str)]) -> Option<String> {
        RawTree::parse(raw(entries))
            .unwrap()
            .malformed()
            .map(str::to_string)
    }

    #[test]
    fn well_formed_trees_pass_and_git_order_puts_folders_after_dotted_names() {
        assert_eq!(
            why(&[
                ("100644", "a"),
                ("40000", "a-c"),
                ("100644", "a.b"),
                ("40000", "b")
            ]),
            None
        );
        // `a.toml` (file) sorts before the folder `a` (read as `a/`).
        assert_eq!(why(&[("100644", "a.toml"), ("40000", "a")]), None);
        assert!(why(&[("40000", "a"), ("100644", "a.toml")]).is_some());
        let t = RawTree::parse(raw(&[("100644", "x"), ("40000", "y")])).unwrap();
        assert_eq!(t.name(&t.entries[1]), b"y");
        assert!(t.entries[1].is_tree() && !t.entries[0].is_tree());
        assert_eq!(t.id(&t.entries[1]), Oid::from_bytes(&[1; 20]).unwrap());
    }

    #[test]
    fn trees_git_never_writes_are_named() {
        let dup = why(&[("100644", "a"), ("100644", "a")]).unwrap();
        assert!(dup.contains("two entries named `a`"), "{dup}");
        // A file and a folder of one name, apart in the listing.
        let dup = why(&[("100644", "a"), ("100644", "a.b"), ("40000", "a")]).unwrap();
        assert!(dup.contains("two entries named `a`"), "{dup}");
        let dup = why(&[("40000", "a"), ("100644", "a")]).unwrap();
        assert!(dup.contains("two entries named `a`"), "{dup}");
        let order = why(&[("100644", "b"), ("100644", "a")]).unwrap();
        assert!(order.contains("out of git's order"), "{order}");
        for bad in ["..", ".", "", "x/y"] {
            let m = why(&[("100644", bad)]).unwrap();
            assert!(m.contains("which git never writes"), "{m}");
        }
    }

    #[test]
    fn shared_ends_cover_exactly_the_identical_entries() {
        let names = |ns: &[&str]| -> Vec<u8> {
            let mut out = Vec::new();
            for n in ns {
                out.extend_from_slice(format!("40000 {n}\0").as_bytes());
                out.extend_from_slice(&[n.len() as u8; 20]);
            }
            out
        };
        let t = |ns: &[&str]| RawTree::parse(names(ns)).unwrap();
        let old = t(&["a", "bb", "ccc", "dddd"]);
        assert_eq!(
            old.shared_ends(&t(&["a", "bb", "x", "ccc", "dddd"])),
            (2, 2)
        );
        assert_eq!(old.shared_ends(&old), (4, 0));
        assert_eq!(old.shared_ends(&t(&["a", "bb"])), (2, 0));
        assert_eq!(
            old.shared_ends(&t(&["0", "a", "bb", "ccc", "dddd"])),
            (0, 4)
        );
        assert_eq!(t(&[]).shared_ends(&old), (0, 0));
        // An entry that differs only in its id is in neither end.
        let mut changed = names(&["a", "bb", "ccc", "dddd"]);
        let at = changed.len() - 20 - 12;
        changed[at] ^= 1;
        assert_eq!(old.shared_ends(&RawTree::parse(changed).unwrap()), (2, 1));
    }

    /// The check beside a well-formed older tree gives the full check's answer, over many
    /// edits of small trees whose names collide in every way git's order allows.
    #[test]
    fn the_check_beside_an_older_tree_is_the_full_check() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let names = [
            "a", "a-", "a.b", "a0", "ab", "b", "b-c", "b.", "c", ".", "x/y",
        ];
        let (mut checked, mut malformed) = (0, 0);
        for _ in 0..4000 {
            // An old tree as git writes it: valid names, sorted, unique.
            let mut old: Vec<(bool, &str)> = (0..next(6))
                .map(|_| (next(2) == 0, names[next(9)]))
                .collect();
            old.sort_by(|a, b| git_order(a.1.as_bytes(), a.0, b.1.as_bytes(), b.0));
            old.dedup_by(|a, b| a.1 == b.1);
            let old_tree = tree_of(&old, &[]);
            if old_tree.malformed().is_some() {
                continue;
            }
            // The new one: a few entries inserted, removed or re-id'd anywhere.
            let mut new = old.clone();
            let mut ids = vec![0u8; new.len()];
            for _ in 0..1 + next(3) {
                match next(3) {
                    0 => {
                        let at = next(new.len() + 1);
                        new.insert(at, (next(2) == 0, names[next(names.len())]));
                        ids.insert(at, 0);
                    }
                    1 if !new.is_empty() => {
                        let at = next(new.len());
                        new.remove(at);
                        ids.remove(at);
                    }
                    _ if !new.is_empty() => {
                        let at = next(new.len());
                        ids[at] = 1 + next(3) as u8;
                    }
                    _ => {}
                }
            }
            let new_tree = tree_of(&new, &ids);
            let fresh = tree_of(&new, &ids);
            let ends = old_tree.shared_ends(&new_tree);
            assert_eq!(
                new_tree.malformed_beside(&old_tree, ends),
                fresh.malformed(),
                "old {old:?}, new {new:?} {ids:?}, ends {ends:?}"
            );
            checked += 1;
            malformed += usize::from(fresh.malformed().is_some());
        }
        assert!(checked > 1000, "{checked}");
        assert!(malformed > 200 && malformed < checked - 200, "{malformed}");
    }

    fn tree_of(entries: &[(bool, &str)], ids: &[u8]) -> RawTree {
        let mut out = Vec::new();
        for (i, (tree, name)) in entries.iter().enumerate() {
            let mode = if *tree { "40000" } else { "100644" };
            out.extend_from_slice(format!("{mode} {name}\0").as_bytes());
            let id = ids.get(i).copied().unwrap_or(0);
            out.extend_from_slice(&[id; 20]);
        }
        RawTree::parse(out).unwrap()
    }

    #[test]
    fn folders_nest_at_most_max_depth() {
        assert!(check_depth("").is_ok());
        assert!(check_depth(&"d/".repeat(MAX_DEPTH)).is_ok());
        assert!(check_depth(&"d/".repeat(MAX_DEPTH + 1)).is_err());
    }

    #[test]
    fn unparseable_trees_are_errors() {
        assert!(RawTree::parse(b"100644 a".to_vec()).is_err());
        assert!(RawTree::parse(b"100644 a\0short".to_vec()).is_err());
        // A mode git never writes parses (as libgit2 parses it) and is malformed.
        let odd = RawTree::parse(raw(&[("100664", "a")])).unwrap();
        assert!(odd.malformed().unwrap().contains("file mode 100664"));
        assert!(
            why(&[("040000", "a")]).is_none(),
            "zero-padded modes read as git reads them"
        );
        assert!(RawTree::parse(raw(&[("10x644", "a")])).is_err());
        assert!(RawTree::parse(Vec::new()).unwrap().entries.is_empty());
    }
}
