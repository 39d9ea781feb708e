//! The history walk and tree diffs on real git objects: timelines, edits and deletions
//! flagged, additions listed, and cycles refused.

use super::*;

mod tests {
    use super::*;
    use crate::registry::write::{NewFile, commit_files};

    fn repo_with(files: &[(&str, &str)]) -> (tempfile::TempDir, Repository, Oid) {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init_bare(dir.path()).unwrap();
        let tree = {
            let mut tb = repo.treebuilder(None).unwrap();
            let blob = repo.blob(b"root").unwrap();
            tb.insert("README.md", blob, 0o100644).unwrap();
            tb.write().unwrap()
        };
        let sig = git2::Signature::now("t", "t@example.org").unwrap();
        let root = repo
            .commit(
                None,
                &sig,
                &sig,
                "root",
                &repo.find_tree(tree).unwrap(),
                &[],
            )
            .unwrap();
        let files: Vec<NewFile> = files.iter().map(|(p, b)| NewFile::new(*p, *b)).collect();
        let head = commit_files(&repo, root, &files, "add", "t").unwrap();
        (dir, repo, head)
    }

    fn tree_of(repo: &Repository, c: Oid) -> Tree<'_> {
        repo.find_commit(c).unwrap().tree().unwrap()
    }

    /// A tree built by hand from (path, bytes) pairs, so edits and deletions can be made.
    fn tree_from(repo: &Repository, files: &[(&str, &str)]) -> Oid {
        let mut index = git2::Index::new().unwrap();
        for (p, b) in files {
            let oid = repo.blob(b.as_bytes()).unwrap();
            let entry = git2::IndexEntry {
                ctime: git2::IndexTime::new(0, 0),
                mtime: git2::IndexTime::new(0, 0),
                dev: 0,
                ino: 0,
                mode: 0o100644,
                uid: 0,
                gid: 0,
                file_size: b.len() as u32,
                id: oid,
                flags: p.len() as u16,
                flags_extended: 0,
                path: p.as_bytes().to_vec(),
            };
            index.add(&entry).unwrap();
        }
        index.write_tree_to(repo).unwrap()
    }

    #[test]
    fn added_files_are_all_a_tree_adds_or_nothing() {
        let (_d, repo, _) = repo_with(&[]);
        let old = tree_from(&repo, &[("a/x.toml", "1"), ("b/y.toml", "2")]);
        let grown = tree_from(
            &repo,
            &[
                ("a/x.toml", "1"),
                ("a/z.toml", "3"),
                ("b/y.toml", "2"),
                ("c/n/w.toml", "4"),
            ],
        );
        let got = added_files(&repo, old, grown).unwrap().unwrap();
        let paths: Vec<&str> = got.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["a/z.toml", "c/n/w.toml"]);
        let blob = repo.blob(b"3").unwrap();
        assert_eq!(got[0].blob, Some(blob.as_bytes().try_into().unwrap()));
        assert_eq!(got[0].mode, crate::trust::EntryMode::File);
        assert!(added_files(&repo, old, old).unwrap().unwrap().is_empty());
        // An edit or a deletion: not a tree that only adds.
        let edited = tree_from(&repo, &[("a/x.toml", "9"), ("b/y.toml", "2")]);
        assert!(added_files(&repo, old, edited).unwrap().is_none());
        let deleted = tree_from(&repo, &[("a/x.toml", "1")]);
        assert!(added_files(&repo, old, deleted).unwrap().is_none());
    }

    #[test]
    fn history_problems_are_listed_up_to_a_bound() {
        let mut tl = Timeline::default();
        let deleted: Vec<(String, Change)> = (0..MAX_HISTORY_PROBLEMS + 50)
            .map(|i| (format!("mlcubes/c{i}/v1/cube.toml"), Change::Deleted))
            .collect();
        record_changes(deleted, 1, "c1", &mut tl);
        record_changes(
            vec![("users/a/v1.toml".into(), Change::Modified)],
            2,
            "c2",
            &mut tl,
        );
        assert_eq!(tl.problems.len(), MAX_HISTORY_PROBLEMS + 1);
        let last = tl.problems.last().unwrap();
        assert!(last.message.contains("the rest are not listed"), "{last:?}");
        assert_eq!(last.code, Code::Rewritten);
    }

    #[test]
    fn tree_changes_reports_additions_edits_deletions_and_type_changes() {
        let (_d, repo, head) = repo_with(&[("a/b/one.toml", "1"), ("a/two.toml", "2")]);
        let old = tree_of(&repo, head);
        let new = tree_from(
            &repo,
            &[
                ("README.md", "root"),
                ("a/b/one.toml", "1 edited"),
                ("a/c/three.toml", "3"),
                ("a/two.toml/inner.toml", "now a folder"),
            ],
        );
        let new = repo.find_tree(new).unwrap();
        let mut got = tree_changes(&repo, Some(&old), &new).unwrap();
        got.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            got,
            vec![
                ("a/b/one.toml".to_string(), Change::Modified),
                ("a/c/three.toml".to_string(), Change::Added),
                ("a/two.toml".to_string(), Change::Deleted),
                ("a/two.toml/inner.toml".to_string(), Change::Added),
            ]
        );
        let all = tree_changes(&repo, None, &old).unwrap();
        assert_eq!(all.len(), 3);
        assert!(all.iter().all(|(_, c)| *c == Change::Added));
    }

    #[test]
    fn the_timeline_records_when_each_file_arrived_and_flags_edits() {
        let (_d, repo, first) = repo_with(&[("users/a/v1.toml", "a")]);
        let second = commit_files(
            &repo,
            first,
            &[NewFile::new("users/b/v1.toml", "b")],
            "b",
            "t",
        )
        .unwrap();
        let tl = timeline(&repo, second).unwrap();
        // A known timeline off the chain (here: of a commit not on it) is not used.
        let stray = Timeline {
            commits: vec![Oid::from_bytes(&[7; 20]).unwrap().to_string()],
            intro: [("users/x/v1.toml".to_string(), 0)].into(),
            problems: Vec::new(),
        };
        let cont = timeline_from(&repo, second, Some(stray)).unwrap();
        assert_eq!((&cont.commits, &cont.intro), (&tl.commits, &tl.intro));
        let cont = timeline_from(&repo, second, Some(timeline(&repo, first).unwrap())).unwrap();
        assert_eq!((&cont.commits, &cont.intro), (&tl.commits, &tl.intro));
        assert_eq!(tl.commits.len(), 3);
        assert_eq!(tl.intro("README.md"), 0);
        assert_eq!(tl.intro("users/a/v1.toml"), 1);
        assert_eq!(tl.intro("users/b/v1.toml"), 2);
        assert!(tl.problems.is_empty());

        // An edit of a merged file is a history problem at the commit that made it.
        let edited = tree_from(
            &repo,
            &[
                ("README.md", "root"),
                ("users/a/v1.toml", "a, rewritten"),
                ("users/b/v1.toml", "b"),
            ],
        );
        let sig = git2::Signature::now("t", "t@example.org").unwrap();
        let parent = repo.find_commit(second).unwrap();
        let third = repo
            .commit(
                None,
                &sig,
                &sig,
                "edit",
                &repo.find_tree(edited).unwrap(),
                &[&parent],
            )
            .unwrap();
        let tl = timeline(&repo, third).unwrap();
        // Continuing the timeline of an earlier commit gives the full walk's.
        let cont = timeline_from(&repo, third, Some(timeline(&repo, second).unwrap())).unwrap();
        assert_eq!((&cont.commits, &cont.intro), (&tl.commits, &tl.intro));
        assert_eq!(cont.problems, tl.problems);
        assert_eq!(tl.problems.len(), 1, "{:?}", tl.problems);
        assert_eq!(tl.problems[0].path, "users/a/v1.toml");
        assert_eq!(tl.problems[0].commit.as_deref(), Some(&*third.to_string()));
    }
}

mod cycle_tests {
    use super::*;
    use std::io::Write;

    /// Objects are read without re-hashing, as git reads them: a loose commit written by hand
    /// under its own id names itself as its parent. The first-parent walks must refuse it, not
    /// loop (growing the chain without bound).
    #[test]
    fn a_commit_that_is_its_own_parent_is_refused_not_walked_forever() {
        git2::opts::strict_hash_verification(false);
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init_bare(dir.path()).unwrap();
        let empty = repo.treebuilder(None).unwrap().write().unwrap();
        let id = "1111111111111111111111111111111111111111";
        let body = format!(
            "tree {empty}\nparent {id}\nauthor t <t@example.org> 0 +0000\n\
             committer t <t@example.org> 0 +0000\n\nloop\n"
        );
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(format!("commit {}\0{body}", body.len()).as_bytes())
            .unwrap();
        let obj = dir.path().join("objects").join(&id[..2]);
        std::fs::create_dir_all(&obj).unwrap();
        std::fs::write(obj.join(&id[2..]), z.finish().unwrap()).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let path = dir.path().to_path_buf();
        std::thread::spawn(move || {
            let repo = Repository::open(&path).unwrap();
            let oid = Oid::from_str(id).unwrap();
            let walked = timeline(&repo, oid).map(|t| t.commits.len());
            let zero = Oid::from_str("2222222222222222222222222222222222222222").unwrap();
            let chain = crate::registry::on_first_parent_chain(&repo, oid, zero);
            // The walk every other one goes through (submission fork points, replays): the
            // commit once, then the error.
            let steps: Vec<bool> = crate::registry::first_parents(&repo, oid)
                .map(|c| c.is_ok())
                .collect();
            let _ = tx.send((walked.is_err(), chain.ok(), steps));
        });
        let got = rx.recv_timeout(std::time::Duration::from_secs(10));
        assert_eq!(got, Ok((true, Some(false), vec![true, false])));
    }
}
