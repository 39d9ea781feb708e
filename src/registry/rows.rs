//! The rows `mlcube ls` and `user ls` print, precomputed when the listing index is written, so
//! that a listing of tens of thousands of cube versions reads one small file and parses
//! nothing but tab-separated fields: parsing the records themselves (and building an index of
//! them) costs several times the whole budget of a listing. Rows are derived from the same
//! verified index as the listing files and are kept and checked as they are (the listing's
//! manifest names each file with its digest, for one commit); anything else falls back to the
//! records.
//!
//! Format: one line per row, fields separated by tabs, in a field `\` written `\\`, a tab
//! `\t`, a newline `\n` and a carriage return `\r`. `cubes.rows`: path, sha256, name, version,
//! owner, image id, created, in listing order (by name, then version) within each part of the
//! file (a main grown by additions adds a part: see `listing`). `users.rows`: handle, name,
//! email, key id, admin (`1`/`0`), roles (comma-separated), key revoked (`1`/`0`), record
//! version.

use std::borrow::Cow;
use std::collections::BTreeSet;

use crate::model::{GrantAction, Record};
use crate::trust::{Index, keys};

/// File names in the listing folder (no top folder of a registry has a dot in its name).
pub const CUBES: &str = "cubes.rows";
pub const USERS: &str = "users.rows";

/// One cube version as `mlcube ls` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CubeRow<'a> {
    pub path: Cow<'a, str>,
    pub sha256: Cow<'a, str>,
    pub name: Cow<'a, str>,
    pub version: u32,
    pub owner: Cow<'a, str>,
    pub image_id: Cow<'a, str>,
    pub created: Cow<'a, str>,
}

/// One participant as `user ls` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    pub handle: String,
    pub name: String,
    pub email: String,
    pub key_id: String,
    pub admin: bool,
    pub roles: Vec<String>,
    pub revoked: bool,
    pub version: u32,
}

/// Every cube version of `ix` (the records under `mlcubes/`), borrowed from it.
pub fn cube_rows(ix: &Index) -> Vec<CubeRow<'_>> {
    ix.records_in(&ix.cubes)
        .filter_map(|(p, _)| cube_row(ix, p))
        .collect()
}

/// The row of the cube version at `p` in `ix`, when that is a cube record.
pub fn cube_row<'a>(ix: &'a Index, p: &'a str) -> Option<CubeRow<'a>> {
    match ix.record(p)? {
        Record::Mlcube(c) => Some(CubeRow {
            path: p.into(),
            sha256: ix.sha(p).map(|s| s.as_str()).unwrap_or_default().into(),
            name: c.name.as_str().into(),
            version: c.version,
            owner: c.owner.as_str().into(),
            image_id: c.image.id.as_str().into(),
            created: c.created.as_str().into(),
        }),
        _ => None,
    }
}

/// Everyone in the registry of `ix` (a verified tree, or its users, grants and root): the
/// admins of the root first, then each user with the roles and key revocations granted.
pub fn user_rows(ix: &Index) -> Vec<UserRow> {
    let mut rows = Vec::new();
    if let Some(root) = ix.root() {
        for a in &root.admins {
            rows.push(UserRow {
                handle: a.handle.clone(),
                name: String::new(),
                email: String::new(),
                key_id: keys::key_id_of(&a.minisign).unwrap_or_default(),
                admin: true,
                roles: vec!["admin".into()],
                revoked: false,
                version: root.version,
            });
        }
    }
    let admins = rows.len();
    let revocations = ix.revocations();
    for handle in ix.users.keys() {
        let Some((_, u)) = ix.user(handle) else {
            continue;
        };
        let key_id = keys::key_id_of(&u.minisign).unwrap_or_default();
        let mut roles = BTreeSet::new();
        let revoked = revocations.cover(handle, &u.minisign);
        for p in ix.grants.get(handle).into_iter().flat_map(|m| m.values()) {
            if let Some(Record::Grant(g)) = ix.record(p) {
                match (g.action, g.role) {
                    (GrantAction::GrantRole, Some(r)) => {
                        roles.insert(r.as_str().to_string());
                    }
                    (GrantAction::RevokeRole, Some(r)) => {
                        roles.remove(r.as_str());
                    }
                    _ => {}
                }
            }
        }
        // An admin with a user record too: one row, the admin's, with the user's details.
        if let Some(row) = rows[..admins].iter_mut().find(|r| &r.handle == handle) {
            row.name = u.name.clone();
            row.email = u.email.clone();
            continue;
        }
        rows.push(UserRow {
            handle: handle.clone(),
            name: u.name.clone(),
            email: u.email.clone(),
            key_id,
            admin: false,
            roles: roles.into_iter().collect(),
            revoked,
            version: u.version,
        });
    }
    rows
}

/// One line of `fields`, tab-separated, each escaped (see the module).
fn push_line(out: &mut String, fields: &[&str]) {
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            out.push('\t');
        }
        if !field.contains(['\\', '\t', '\n', '\r']) {
            out.push_str(field);
            continue;
        }
        for c in field.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\t' => out.push_str("\\t"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                c => out.push(c),
            }
        }
    }
    out.push('\n');
}

/// A field as written by [`push_line`]; borrowed unless it holds an escape.
fn field(raw: &str) -> Option<Cow<'_, str>> {
    if !raw.contains('\\') {
        return Some(raw.into());
    }
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        out.push(match c {
            '\\' => match chars.next()? {
                '\\' => '\\',
                't' => '\t',
                'n' => '\n',
                'r' => '\r',
                _ => return None,
            },
            c => c,
        });
    }
    Some(out.into())
}

fn flag(raw: &str) -> Option<bool> {
    match raw {
        "1" => Some(true),
        "0" => Some(false),
        _ => None,
    }
}

/// The fields of each line of `body`, exactly `N` per line.
fn lines<const N: usize>(body: &str) -> impl Iterator<Item = Option<[&str; N]>> {
    body.lines().map(|l| {
        let mut parts = l.split('\t');
        let mut f = [""; N];
        for slot in &mut f {
            *slot = parts.next()?;
        }
        parts.next().is_none().then_some(f)
    })
}

/// The `cubes.rows` file of `rows`.
pub fn encode_cubes(rows: &[CubeRow]) -> Vec<u8> {
    let mut body = String::with_capacity(rows.len() * 220);
    for r in rows {
        let version = r.version.to_string();
        push_line(
            &mut body,
            &[
                &r.path,
                &r.sha256,
                &r.name,
                &version,
                &r.owner,
                &r.image_id,
                &r.created,
            ],
        );
    }
    body.into_bytes()
}

/// The rows of a `cubes.rows` file, borrowed from `bytes`, in listing order; `None` when it
/// holds a line this cohort cannot read.
pub fn decode_cubes(bytes: &[u8]) -> Option<Vec<CubeRow<'_>>> {
    let mut rows: Vec<CubeRow> = lines::<7>(std::str::from_utf8(bytes).ok()?)
        .map(|f| {
            let f = f?;
            Some(CubeRow {
                path: field(f[0])?,
                sha256: field(f[1])?,
                name: field(f[2])?,
                version: f[3].parse().ok()?,
                owner: field(f[4])?,
                image_id: field(f[5])?,
                created: field(f[6])?,
            })
        })
        .collect::<Option<_>>()?;
    // Parts added by later mains follow the first: merged (runs already sorted are cheap).
    let order = |a: &CubeRow, b: &CubeRow| (&a.name, a.version).cmp(&(&b.name, b.version));
    if !rows.is_sorted_by(|a, b| order(a, b).is_le()) {
        rows.sort_by(order);
    }
    Some(rows)
}

/// The `users.rows` file of `rows`; `None` when a role would not come back whole (roles are
/// names from a fixed list: none is empty or holds a comma).
pub fn encode_users(rows: &[UserRow]) -> Option<Vec<u8>> {
    let whole = |r: &String| !r.is_empty() && !r.contains(',');
    if !rows.iter().all(|u| u.roles.iter().all(whole)) {
        return None;
    }
    let mut body = String::new();
    for r in rows {
        let roles = r.roles.join(",");
        let version = r.version.to_string();
        let flag = |b: bool| if b { "1" } else { "0" };
        push_line(
            &mut body,
            &[
                &r.handle,
                &r.name,
                &r.email,
                &r.key_id,
                flag(r.admin),
                &roles,
                flag(r.revoked),
                &version,
            ],
        );
    }
    Some(body.into_bytes())
}

/// The rows of a `users.rows` file (see [`decode_cubes`]).
pub fn decode_users(bytes: &[u8]) -> Option<Vec<UserRow>> {
    lines::<8>(std::str::from_utf8(bytes).ok()?)
        .map(|f| {
            let f = f?;
            let roles = field(f[5])?;
            Some(UserRow {
                handle: field(f[0])?.into_owned(),
                name: field(f[1])?.into_owned(),
                email: field(f[2])?.into_owned(),
                key_id: field(f[3])?.into_owned(),
                admin: flag(f[4])?,
                roles: roles
                    .split(',')
                    .filter(|r| !r.is_empty())
                    .map(str::to_string)
                    .collect(),
                revoked: flag(f[6])?,
                version: f[7].parse().ok()?,
            })
        })
        .collect()
}
