//! The timeline of the last verified main, saved under COHORT_HOME next to the signature memo,
//! so that verifying a main that grew by a few commits walks those commits only. A commit id
//! names its whole first-parent history, so the timeline of one commit never changes: the
//! file is read only for the commit its header names, and only when whole (its digest checks).
//!
//! Format (`state/<registry id>.timeline`): one header line `cohort timeline 2 <last commit>
//! <commits> <sha256 of the rest>`, then the first-parent commits oldest first, one a line,
//! then one line per file, `<index of its commit>\t<path>`.

use std::collections::HashMap;

use crate::model::Sha256;
use crate::trust::Timeline;

/// Version 2: the walk that wrote it also refused malformed trees in every commit it passed, so
/// a version 1 file (whose walk did not) is walked again.
const MAGIC: &str = "cohort timeline 2";

/// The file's bytes; `None` for a timeline with problems (those are walked again).
pub fn encode(tl: &Timeline) -> Option<Vec<u8>> {
    if !tl.problems.is_empty() {
        return None;
    }
    let last = tl.commits.last()?;
    let mut body = String::with_capacity(tl.commits.len() * 41 + tl.intro.len() * 48);
    for c in &tl.commits {
        body.push_str(c);
        body.push('\n');
    }
    // In the map's order: the file is read back into a map, and sorting half a million
    // paths scattered over the heap cost more than writing them (a local cache, checked by
    // its digest, need not be the same bytes twice).
    for (p, i) in &tl.intro {
        if p.contains(['\t', '\n']) {
            return None;
        }
        use std::fmt::Write;
        let _ = writeln!(body, "{i}\t{p}");
    }
    let mut out = format!(
        "{MAGIC} {last} {} {}\n",
        tl.commits.len(),
        Sha256::of(body.as_bytes())
    )
    .into_bytes();
    out.extend_from_slice(body.as_bytes());
    Some(out)
}

/// The timeline in `bytes`, when they are whole and consistent.
pub fn decode(bytes: &[u8]) -> Option<Timeline> {
    let nl = bytes.iter().position(|&b| b == b'\n')?;
    let header = std::str::from_utf8(&bytes[..nl]).ok()?;
    let mut h = header.strip_prefix(MAGIC)?.strip_prefix(' ')?.split(' ');
    let (last, n, sha) = (h.next()?, h.next()?.parse::<usize>().ok()?, h.next()?);
    let body = &bytes[nl + 1..];
    if h.next().is_some() || sha != Sha256::of(body).as_str() {
        return None;
    }
    let mut lines = std::str::from_utf8(body).ok()?.lines();
    let commits: Vec<String> = lines.by_ref().take(n).map(str::to_string).collect();
    if commits.len() != n || commits.last().map(String::as_str) != Some(last) {
        return None;
    }
    // Sized once: growing a map of half a million paths rehashes it a dozen times.
    let lines_left = body
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        .saturating_sub(n);
    let mut intro = HashMap::with_capacity(lines_left);
    for l in lines {
        let (i, p) = l.split_once('\t')?;
        let i: usize = i.parse().ok()?;
        if i >= n {
            return None;
        }
        intro.insert(p.to_string(), i);
    }
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
}
