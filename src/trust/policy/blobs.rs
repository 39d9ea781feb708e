//! In-registry blobs (`blobs/sha256/<hex>`): each one's content hashes to its name, each is
//! referenced by a record that arrived no later than it (in the same merge or already on
//! main), and every blob a record references is there. Without these checks a blob path
//! could carry bytes nobody signed, or a registry could fill with files no record explains.
//! The same pass over every record's artifacts warns of a URL holding credentials.

use std::collections::BTreeMap;

use crate::model::{AssetLocation, RecordPath, url_has_credentials};

use super::super::index::FileInfo;
use super::super::verify::Run;
use super::super::view::Reach;
use super::super::{Code, Problem, Rule};

pub(in crate::trust) fn check_blobs(
    run: &Run,
    reach: Option<&Reach>,
    problems: &mut Vec<Problem>,
    warnings: &mut Vec<Problem>,
) {
    let ix = run.ix;
    let mut push = |path: &str, rule: Rule, code: Code, message: String| {
        problems.push(Problem {
            path: path.to_string(),
            rule,
            code,
            message,
            commit: None,
        })
    };
    // blob path -> the earliest arrival of a record referencing it (and that record).
    let mut referenced: BTreeMap<&str, (usize, &str)> = BTreeMap::new();
    // On a grown main: the records the new files reach, and the new blobs. A record of the
    // main it grew from named only blobs that were there (or it had a problem), so a new
    // blob is named by new records alone, and an older blob's earliest record stays older.
    let records: Box<dyn Iterator<Item = (&String, &crate::model::Record)>> = match reach {
        None => Box::new(ix.records.iter()),
        Some(r) => Box::new(r.records(ix).filter_map(|p| ix.records.get_key_value(p))),
    };
    for (path, record) in records {
        for (field, asset) in record.assets() {
            if asset.url.as_deref().is_some_and(url_has_credentials) {
                warnings.push(credentials(path, field));
            }
            let AssetLocation::Blob(blob) = asset.location() else {
                continue;
            };
            let t = ix.intro(path);
            ix.need_path(blob);
            let e = referenced.entry(blob).or_insert((t, path.as_str()));
            if t < e.0 {
                *e = (t, path.as_str());
            }
            match ix.files.get(blob) {
                None => push(
                    path,
                    Rule::Reference,
                    Code::MissingBlob,
                    format!("{field} names {blob}, which is not in the registry"),
                ),
                Some(info) if info.intro > t => push(
                    path,
                    Rule::Reference,
                    Code::MissingBlob,
                    format!("{field} names {blob}, which arrived only after this record"),
                ),
                Some(_) => {}
            }
        }
    }
    let files: Box<dyn Iterator<Item = (&String, &FileInfo)>> = match reach {
        None => Box::new(ix.files.iter()),
        Some(r) => Box::new(r.fresh.iter().filter_map(|p| ix.files.get_key_value(p))),
    };
    for (path, info) in files {
        let RecordPath::Blob { sha256 } = &info.rp else {
            continue;
        };
        if info.sha256.as_str() != sha256 {
            push(
                path,
                Rule::Signature,
                Code::BlobDigest,
                format!(
                    "content has sha256 {}, not the one its name says; a blob is named by its content",
                    info.sha256
                ),
            );
        }
        match referenced.get(path.as_str()) {
            None => push(
                path,
                Rule::DefaultDeny,
                Code::OrphanBlob,
                "is referenced by no record; a blob arrives with the record that names it".into(),
            ),
            Some((t, record)) if *t > info.intro => push(
                path,
                Rule::DefaultDeny,
                Code::OrphanBlob,
                format!(
                    "arrived before {record}, the first record naming it; a blob arrives with the record that names it"
                ),
            ),
            Some(_) => {}
        }
    }
}

/// The warning for an artifact URL that holds a user name or password (not repeated in the
/// message, which lands in logs and CI output). A warning, not a problem: records written
/// before cohort refused such URLs at submission stay readable, while the hook, `registry
/// sync` and `verify --range` refuse a new one as they refuse any warning.
fn credentials(path: &str, field: &str) -> Problem {
    Problem {
        path: path.to_string(),
        rule: Rule::Limits,
        code: Code::UrlCredentials,
        message: format!(
            "{field}.url holds a user name or password, which this record publishes to every clone: change that password, and host the file where sites can download it without credentials"
        ),
        commit: None,
    }
}
