//! The timeline of the last verified main, saved under COHORT_HOME next to the signature memo,
//! so that verifying a main that grew by a few commits walks those commits only. A commit id
//! names its whole first-parent history, so the timeline of one commit never changes: the
//! file is read only for the commit its header names, and only when whole (its digest checks).
//!
//! Format (`state/<registry id>.timeline`): one header line `cohort timeline 3 <last commit>
//! <commits> <sha256 of the rest>`, then the first-parent commits oldest first, one a line,
//! then one line per file, `<index of its commit>\t<path>`, sorted by path: a verification
//! looks up the paths it reads there as it needs them, without reading every line into a map.
//!
//! A main that continues the one saved adds a frame to `state/<registry id>.timeline-more`
//! instead of writing the timeline again (at 50,000 entities that is half a million paths):
//! each frame is a header line `cohort timeline more <last commit before> <last commit after>
//! <commits added> <length of the body> <sha256 of the body>`, then a body of the same shape
//! as the timeline's: the commits added, then the files they brought. Frames apply in order,
//! each only onto the timeline whose last commit it names; reading stops at the first that
//! does not apply or is not whole, so what is read is always the timeline of one commit.
//! Past [`MAX_FRAMES`], or when the frames reach a quarter of the timeline's size (and 64
//! KiB), the timeline is written whole again and the frames dropped.

use crate::model::Sha256;
use crate::trust::{Intro, SortedLines, Timeline};

/// Version 3: lines sorted by path (version 2, whose walk also refused malformed trees in
/// every commit it passed, kept them in any order; an older file is walked again once).
const MAGIC: &str = "cohort timeline 3";
const MORE: &str = "cohort timeline more";
/// Frames kept before the timeline is written whole again.
pub const MAX_FRAMES: usize = 16;

/// The file's bytes; `None` for a timeline with problems (those are walked again).
pub fn encode(tl: &Timeline) -> Option<Vec<u8>> {
    if !tl.problems.is_empty() {
        return None;
    }
    let last = tl.commits.last()?;
    let body = body(&tl.commits, &tl.intro, 0)?;
    let mut out = format!(
        "{MAGIC} {last} {} {}\n",
        tl.commits.len(),
        Sha256::of(body.as_bytes())
    )
    .into_bytes();
    out.extend_from_slice(body.as_bytes());
    Some(out)
}

/// The body of a timeline or frame: `commits`, then each path of `intro` whose commit index
/// is at least `from` (all of them, sorted by path, for a whole timeline).
fn body(commits: &[String], intro: &Intro, from: usize) -> Option<String> {
    let files = if from == 0 {
        intro.sorted()
    } else {
        // A frame: what the commits since brought, in any order.
        intro.since(from)
    };
    let mut body = String::with_capacity(commits.len() * 41 + files.len() * 48);
    for c in commits {
        body.push_str(c);
        body.push('\n');
    }
    for (p, i) in files {
        if p.contains(['\t', '\n']) {
            return None;
        }
        use std::fmt::Write;
        let _ = writeln!(body, "{i}\t{p}");
    }
    Some(body)
}

/// A frame taking the timeline of `tl.commits[..from]` to `tl`; `None` for a timeline with
/// problems, or none to add.
pub fn encode_frame(tl: &Timeline, from: usize) -> Option<Vec<u8>> {
    if !tl.problems.is_empty() || from == 0 || from >= tl.commits.len() {
        return None;
    }
    let body = body(&tl.commits[from..], &tl.intro, from)?;
    let mut out = format!(
        "{MORE} {} {} {} {} {}\n",
        tl.commits[from - 1],
        tl.commits.last()?,
        tl.commits.len() - from,
        body.len(),
        Sha256::of(body.as_bytes())
    )
    .into_bytes();
    out.extend_from_slice(body.as_bytes());
    Some(out)
}

/// One frame of a `timeline-more` file, as read.
pub struct Frame<'a> {
    pub before: &'a str,
    pub after: &'a str,
    pub commits: usize,
    pub body: &'a str,
    /// The frame's bytes, header included.
    pub bytes: &'a [u8],
}

/// The whole frames at the start of `more`, in order (stopping at the first that is not).
pub fn frames(more: &[u8]) -> Vec<Frame<'_>> {
    let mut out = Vec::new();
    let mut rest = more;
    while let Some(f) = frame(rest) {
        rest = &rest[f.bytes.len()..];
        out.push(f);
    }
    out
}

fn frame(bytes: &[u8]) -> Option<Frame<'_>> {
    let nl = bytes.iter().position(|&b| b == b'\n')?;
    let header = std::str::from_utf8(&bytes[..nl]).ok()?;
    let mut h = header.strip_prefix(MORE)?.strip_prefix(' ')?.split(' ');
    let (before, after) = (h.next()?, h.next()?);
    let commits: usize = h.next()?.parse().ok()?;
    let len: usize = h.next()?.parse().ok()?;
    let sha = h.next()?;
    let end = (nl + 1).checked_add(len)?;
    if h.next().is_some() || commits == 0 || end > bytes.len() {
        return None;
    }
    let body = &bytes[nl + 1..end];
    if sha != Sha256::of(body).as_str() {
        return None;
    }
    Some(Frame {
        before,
        after,
        commits,
        body: std::str::from_utf8(body).ok()?,
        bytes: &bytes[..end],
    })
}

/// Applies `frame` to `tl` when it continues `tl` and is consistent; whether it did (`tl` is
/// left as it was when not).
fn apply(tl: &mut Timeline, frame: &Frame) -> bool {
    if tl.commits.last().map(String::as_str) != Some(frame.before) {
        return false;
    }
    let from = tl.commits.len();
    let n = from + frame.commits;
    let mut lines = frame.body.lines();
    let commits: Vec<&str> = lines.by_ref().take(frame.commits).collect();
    if commits.len() != frame.commits || commits.last() != Some(&frame.after) {
        return false;
    }
    tl.commits.extend(commits.into_iter().map(str::to_string));
    // Applied as read, and taken back if a line does not fit.
    let mut added: Vec<&str> = Vec::new();
    let fits = lines.all(|l| {
        let Some((i, p)) = l.split_once('\t') else {
            return false;
        };
        match i.parse::<usize>() {
            Ok(i) if (from..n).contains(&i) && !tl.intro.contains_key(p) => {
                tl.intro.insert(p.to_string(), i);
                added.push(p);
                true
            }
            _ => false,
        }
    });
    if !fits {
        for p in added {
            tl.intro.remove(p);
        }
        tl.commits.truncate(from);
    }
    fits
}

/// The timeline of `bytes` continued by the frames of `more` that apply in turn.
pub fn decode_with_more(bytes: &[u8], more: &[u8]) -> Option<Timeline> {
    let mut tl = decode(bytes)?;
    for f in frames(more) {
        if !apply(&mut tl, &f) {
            break;
        }
    }
    Some(tl)
}

/// The last commit, the number of commits and the body's sha256 a timeline's header line
/// names.
pub fn header(line: &str) -> Option<(&str, usize, &str)> {
    let mut h = line.strip_prefix(MAGIC)?.strip_prefix(' ')?.split(' ');
    let (last, n, sha) = (h.next()?, h.next()?.parse().ok()?, h.next()?);
    h.next().is_none().then_some((last, n, sha))
}

/// The timeline in `bytes`, when they are whole and consistent.
pub fn decode(bytes: &[u8]) -> Option<Timeline> {
    let nl = bytes.iter().position(|&b| b == b'\n')?;
    let (last, n, sha) = header(std::str::from_utf8(&bytes[..nl]).ok()?)?;
    let body = &bytes[nl + 1..];
    if sha != Sha256::of(body).as_str() {
        return None;
    }
    // The commits, then the files' lines, kept as they are: looked up when asked for.
    let mut commits = Vec::with_capacity(n);
    let mut at = 0;
    while commits.len() < n {
        let end = at + body[at..].iter().position(|&b| b == b'\n')?;
        commits.push(std::str::from_utf8(&body[at..end]).ok()?.to_string());
        at = end + 1;
    }
    if commits.last().map(String::as_str) != Some(last) {
        return None;
    }
    let from = nl + 1 + at;
    let intro = Intro::of_lines(SortedLines::new(bytes.to_vec(), from, n)?);
    Some(Timeline {
        commits,
        intro,
        problems: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Timeline {
        Timeline {
            commits: vec!["a".repeat(40), "b".repeat(40)],
            intro: [("root/v1.toml".into(), 0), ("users/u/v1.toml".into(), 1)].into(),
            problems: Vec::new(),
        }
    }

    #[test]
    fn a_timeline_comes_back_whole_or_not_at_all() {
        let tl = sample();
        let bytes = encode(&tl).unwrap();
        let back = decode(&bytes).unwrap();
        assert_eq!((back.commits, back.intro), (tl.commits, tl.intro));
        for cut in [0, 5, bytes.len() / 2, bytes.len() - 1] {
            assert!(decode(&bytes[..cut]).is_none(), "cut at {cut}");
        }
        let mut altered = bytes.clone();
        let at = altered.len() - 3;
        altered[at] ^= 1;
        assert!(decode(&altered).is_none());
    }

    #[test]
    fn a_timeline_with_problems_is_not_kept() {
        let mut tl = sample();
        tl.problems.push(crate::trust::Problem {
            path: "users/u/v1.toml".into(),
            rule: crate::trust::Rule::History,
            code: crate::trust::Code::Rewritten,
            message: "edited".into(),
            commit: None,
        });
        assert!(encode(&tl).is_none());
    }

    /// `n` commits, the `i`th bringing `i/` files `f0` and `f1`.
    fn chain(n: usize) -> Timeline {
        let mut tl = Timeline::default();
        for i in 0..n {
            tl.commits.push(format!("{i:040x}"));
            for f in ["f0", "f1"] {
                tl.intro.insert(format!("{i}/{f}"), i);
            }
        }
        tl
    }

    fn same(a: &Timeline, b: &Timeline) {
        assert_eq!((&a.commits, &a.intro), (&b.commits, &b.intro));
    }

    #[test]
    fn frames_continue_a_timeline_as_if_written_whole() {
        let base = encode(&chain(3)).unwrap();
        let mut more = encode_frame(&chain(5), 3).unwrap();
        more.extend(encode_frame(&chain(6), 5).unwrap());
        same(&decode_with_more(&base, &more).unwrap(), &chain(6));
        same(&decode_with_more(&base, b"").unwrap(), &chain(3));
        assert!(encode_frame(&chain(3), 3).is_none(), "nothing to add");
        // Cut short or altered, a frame and those after it are not applied: what is read is
        // the timeline of the last commit reached.
        let first = encode_frame(&chain(5), 3).unwrap().len();
        for cut in [first - 1, first + 10, more.len() - 1] {
            let tl = decode_with_more(&base, &more[..cut]).unwrap();
            same(&tl, &chain(if cut < first { 3 } else { 5 }));
        }
        let mut altered = more.clone();
        altered[first + 60] ^= 1;
        same(&decode_with_more(&base, &altered).unwrap(), &chain(5));
        // A frame of another chain (it continues a commit this timeline does not end with).
        let other = encode_frame(&chain(6), 5).unwrap();
        same(&decode_with_more(&base, &other).unwrap(), &chain(3));
    }

    #[test]
    fn a_frame_naming_a_file_twice_or_outside_its_commits_is_not_applied() {
        let base = encode(&chain(2)).unwrap();
        let mut tl = chain(3);
        tl.intro.insert("0/f0".into(), 2);
        let twice = encode_frame(&tl, 2).unwrap();
        same(&decode_with_more(&base, &twice).unwrap(), &chain(2));
    }

    fn store() -> (tempfile::TempDir, super::super::StateStore, Sha256) {
        let dir = tempfile::tempdir().unwrap();
        let home = crate::storage::Home::new(dir.path());
        std::fs::create_dir_all(home.state_dir()).unwrap();
        (dir, super::super::StateStore::new(&home), Sha256::of(b"r"))
    }

    #[test]
    fn a_continued_main_adds_a_frame_until_the_timeline_is_written_whole() {
        let (dir, store, id) = store();
        let state = dir.path().join("state");
        let base = state.join(format!("{id}.timeline"));
        let more = state.join(format!("{id}.timeline-more"));
        store.save_timeline(&id, &chain(400), None).unwrap();
        let whole = std::fs::read(&base).unwrap();
        let mut n = 400;
        for step in 1..=MAX_FRAMES + 1 {
            let loaded = store.timeline(&id).unwrap();
            same(&loaded, &chain(n));
            store
                .save_timeline(&id, &chain(n + 1), Some(loaded.commits.len()))
                .unwrap();
            n += 1;
            same(&store.timeline(&id).unwrap(), &chain(n));
            if step <= MAX_FRAMES {
                assert!(std::fs::read(&base).unwrap() == whole, "step {step}");
                assert_eq!(frames(&std::fs::read(&more).unwrap()).len(), step);
            } else {
                assert!(!more.exists(), "folded into the timeline");
            }
        }
        // The same main saved again (nothing added): nothing written.
        let before = (std::fs::read(&base).unwrap(), more.exists());
        store.save_timeline(&id, &chain(n), Some(n)).unwrap();
        assert!((std::fs::read(&base).unwrap(), more.exists()) == before);
        // A timeline not read this run, or not continuing what is kept: written whole.
        store.save_timeline(&id, &chain(n + 1), None).unwrap();
        store
            .save_timeline(&id, &chain(n + 2), Some(n + 1))
            .unwrap();
        assert_eq!(frames(&std::fs::read(&more).unwrap()).len(), 1);
        // (A commit id names its whole history: another main differs at the last commit kept.)
        let mut other = chain(n + 3);
        other.commits[n] = "f".repeat(40);
        store.save_timeline(&id, &other, Some(n + 2)).unwrap();
        assert!(!more.exists());
        same(&store.timeline(&id).unwrap(), &other);
        // A first continuation far larger than what is kept (a long history met once): whole.
        store.save_timeline(&id, &chain(5), None).unwrap();
        store.save_timeline(&id, &chain(5000), Some(5)).unwrap();
        assert!(!more.exists());
        same(&store.timeline(&id).unwrap(), &chain(5000));
    }

    #[test]
    fn frames_after_the_commit_read_are_replaced() {
        let (dir, store, id) = store();
        let more = dir.path().join("state").join(format!("{id}.timeline-more"));
        store.save_timeline(&id, &chain(40), None).unwrap();
        store.save_timeline(&id, &chain(41), Some(40)).unwrap();
        store.save_timeline(&id, &chain(42), Some(41)).unwrap();
        // A run that read the timeline at 41 commits (before another saved 42) and verified a
        // main of 43: its frame follows the one it read.
        store.save_timeline(&id, &chain(43), Some(41)).unwrap();
        assert_eq!(frames(&std::fs::read(&more).unwrap()).len(), 2);
        same(&store.timeline(&id).unwrap(), &chain(43));
        // A damaged frame: the next save continues from what was read before it.
        let bytes = std::fs::read(&more).unwrap();
        std::fs::write(&more, &bytes[..bytes.len() - 1]).unwrap();
        let read = store.timeline(&id).unwrap();
        same(&read, &chain(41));
        store.save_timeline(&id, &chain(44), Some(41)).unwrap();
        same(&store.timeline(&id).unwrap(), &chain(44));
    }
}
