//! One way to say that a named thing is not there, for every kind of entity: whether it does not
//! exist (with the nearest names, a typo being the usual cause), or exists but waits on a
//! submission branch for an approval or a merge, and what moves it on.

use crate::trust::Index;

use super::registry_ops::Opened;
use super::submission::SubmissionKind;

/// The kinds of entity looked up by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entity {
    Benchmark,
    Cube,
    Dataset,
    User,
}

impl Entity {
    pub fn noun(self) -> &'static str {
        match self {
            Entity::Benchmark => "benchmark",
            Entity::Cube => "cube",
            Entity::Dataset => "dataset",
            Entity::User => "user",
        }
    }
    fn folder(self) -> &'static str {
        match self {
            Entity::Benchmark => "benchmarks/",
            Entity::Cube => "mlcubes/",
            Entity::Dataset => "datasets/",
            Entity::User => "users/",
        }
    }
    fn kind(self) -> SubmissionKind {
        match self {
            Entity::Benchmark => SubmissionKind::Benchmark,
            Entity::Cube => SubmissionKind::Mlcube,
            Entity::Dataset => SubmissionKind::Dataset,
            Entity::User => SubmissionKind::User,
        }
    }
    fn ls(self) -> &'static str {
        match self {
            Entity::Benchmark => "cohort benchmark ls",
            Entity::Cube => "cohort mlcube ls",
            Entity::Dataset => "cohort dataset ls",
            Entity::User => "cohort user ls",
        }
    }
    /// The names on main.
    fn names(self, ix: &Index) -> Vec<String> {
        match self {
            Entity::Benchmark => ix.benchmarks.keys().cloned().collect(),
            Entity::Cube => ix.cubes.keys().cloned().collect(),
            // Datasets are named by their owners; the folder is their id.
            Entity::Dataset => ix
                .datasets
                .keys()
                .filter_map(|id| ix.dataset(id).map(|(_, d)| d.name.clone()))
                .collect(),
            Entity::User => {
                let mut all: Vec<String> = ix.users.keys().cloned().collect();
                if let Some(r) = ix.root() {
                    all.extend(r.admins.iter().map(|a| a.handle.clone()));
                }
                all
            }
        }
    }
}

/// Where a name that is not on main is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// Nowhere: the names on main nearest to it.
    Nowhere { nearest: Vec<String> },
    /// Submitted: it waits on this branch (for an approval, or a merge).
    Waiting { branch: String },
}

/// A named entity that is not on main.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.message())]
pub struct Unknown {
    pub entity: Entity,
    pub name: String,
    pub place: Place,
}

impl Unknown {
    fn message(&self) -> String {
        let (noun, name) = (self.entity.noun(), &self.name);
        match &self.place {
            Place::Nowhere { .. } => format!("no {noun} `{name}` in this registry"),
            Place::Waiting { branch } if self.entity.kind().needs_approval() => {
                format!("{noun} `{name}` is not approved yet: it waits on {branch}")
            }
            Place::Waiting { branch } => {
                format!("{noun} `{name}` is not merged yet: it waits on {branch}")
            }
        }
    }

    /// What to do about it.
    pub fn hint(&self) -> String {
        let name = &self.name;
        match &self.place {
            Place::Nowhere { nearest } if !nearest.is_empty() => format!(
                "did you mean {}?",
                nearest
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(" or ")
            ),
            Place::Nowhere { .. } => format!(
                "`{}` lists them; `cohort registry sync` fetches what others merged",
                self.entity.ls()
            ),
            Place::Waiting { .. } => match self.entity {
                Entity::Benchmark => format!(
                    "an admin approves it with `cohort benchmark approve {name}` (`cohort registry status` shows what waits)"
                ),
                Entity::User => format!("an admin admits them with `cohort user approve {name}`"),
                Entity::Cube | Entity::Dataset => {
                    "a maintainer merges it with `cohort registry merge --all` (`cohort registry status` shows what waits)".to_string()
                }
            },
        }
    }
}

/// Why `name` is not on main: the branch it waits on, else the nearest names there.
pub fn unknown(opened: &Opened, ix: &Index, entity: Entity, name: &str) -> Unknown {
    let prefix = format!("{}{name}/", entity.folder());
    let waiting = super::benchmarks::pending(opened, entity.kind())
        .unwrap_or_default()
        .into_iter()
        .find(|(s, _)| s.subject.starts_with(&prefix))
        .map(|(s, _)| s.branch);
    let place = match waiting {
        Some(branch) => Place::Waiting { branch },
        None => {
            // `ix` may hold only the folder of the name asked for: list the whole kind.
            let records = |p: &str| !p.starts_with("mlcubes/") || p.ends_with("/cube.toml");
            let names = opened
                .index_of_files(&[entity.folder()], &records)
                .map(|all| entity.names(&all))
                .unwrap_or_else(|_| entity.names(ix));
            Place::Nowhere {
                nearest: nearest(name, &names),
            }
        }
    };
    Unknown {
        entity,
        name: name.to_string(),
        place,
    }
}

/// [`unknown`] knowing only main (no branches to look at), and any `more` names known here.
pub fn unknown_on_main(ix: &Index, entity: Entity, name: &str) -> Unknown {
    unknown_among(ix, entity, name, &[])
}

/// [`unknown_on_main`], suggesting also from `more` (e.g. datasets prepared on this machine).
pub fn unknown_among(ix: &Index, entity: Entity, name: &str, more: &[String]) -> Unknown {
    let mut names = entity.names(ix);
    names.extend(more.iter().cloned());
    Unknown {
        entity,
        name: name.to_string(),
        place: Place::Nowhere {
            nearest: nearest(name, &names),
        },
    }
}

/// The candidates closest to `name` (at most three, equally close): a typo is a few edits away,
/// so anything further than a third of the name is no suggestion, and a closer name hides the
/// others (names sharing a prefix are all a few edits apart).
pub fn nearest(name: &str, candidates: &[String]) -> Vec<String> {
    let limit = (name.chars().count() / 3).max(1);
    let mut scored: Vec<(usize, &String)> = candidates
        .iter()
        .filter(|c| c.as_str() != name)
        .map(|c| (distance(name, c), c))
        .filter(|(d, c)| *d <= limit || c.starts_with(name) || name.starts_with(c.as_str()))
        .collect();
    scored.sort();
    scored.dedup_by(|a, b| a.1 == b.1);
    let best = scored.first().map(|(d, _)| *d);
    scored
        .into_iter()
        .take_while(|(d, _)| Some(*d) == best)
        .take(3)
        .map(|(_, c)| c.clone())
        .collect()
}

/// Edit distance over chars where swapping two neighbours counts as one edit (optimal string
/// alignment): `mai` is one typo away from `mia`.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j - 1] + cost)
                .min(d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn nearest_names_are_a_few_edits_away() {
        let all = names(&["heart", "lungs", "heart-v2", "brain"]);
        assert_eq!(nearest("hart", &all), names(&["heart"]));
        assert_eq!(nearest("hearts", &all), names(&["heart"]));
        assert_eq!(nearest("heart-", &all), names(&["heart"]));
        assert_eq!(
            nearest("heart-logreq", &names(&["heart-logreg", "heart-prep"])),
            names(&["heart-logreg"])
        );
        assert_eq!(
            nearest("lung", &names(&["lunge", "lungs"])),
            names(&["lunge", "lungs"])
        );
        assert_eq!(nearest("hea", &names(&["heart-v2"])), names(&["heart-v2"]));
        assert_eq!(nearest("lung", &all), names(&["lungs"]));
        assert!(nearest("kidney", &all).is_empty());
        assert!(nearest("heart", &names(&["heart"])).is_empty());
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("mai", "mia"), 1);
        assert_eq!(nearest("mai", &names(&["mia", "admin"])), names(&["mia"]));
    }

    #[test]
    fn messages_say_where_a_name_is() {
        let typo = Unknown {
            entity: Entity::Benchmark,
            name: "hart".into(),
            place: Place::Nowhere {
                nearest: names(&["heart"]),
            },
        };
        assert_eq!(typo.to_string(), "no benchmark `hart` in this registry");
        assert_eq!(typo.hint(), "did you mean `heart`?");
        let waiting = Unknown {
            entity: Entity::Benchmark,
            name: "lungs".into(),
            place: Place::Waiting {
                branch: "submit/carol/benchmark-lungs-v1".into(),
            },
        };
        assert_eq!(
            waiting.to_string(),
            "benchmark `lungs` is not approved yet: it waits on submit/carol/benchmark-lungs-v1"
        );
        assert!(waiting.hint().contains("cohort benchmark approve lungs"));
        let cube = Unknown {
            entity: Entity::Cube,
            name: "m".into(),
            place: Place::Waiting {
                branch: "submit/mo/mlcube-m-v1".into(),
            },
        };
        assert!(cube.to_string().contains("is not merged yet"));
    }
}
