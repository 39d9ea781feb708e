//! An ordered, typed configuration tree, the shape OmegaConf gives mlcube.yaml in MLCube 0.0.9:
//! mappings keep their key order (it decides mount indices and run-arg order), scalars keep
//! their YAML type (it decides what `.endswith('/')` and `or 0` see), and `-Pa.b=c` dot-list
//! overrides are applied the way `OmegaConf.from_dotlist` + `merge` apply them.

use std::fmt;

use crate::model::prescan;

/// Largest YAML text read as a configuration (registered cube files are capped lower, at
/// [`crate::model::MAX_TEXT_BYTES`]).
pub const MAX_YAML_BYTES: usize = 1 << 20;

const MERGE_ERR: &str = "a merge key (<<) takes a mapping or a list of mappings";

/// One node of the configuration.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Null,
    Bool(bool),
    Int(i64),
    /// A float, kept as its YAML text and value.
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(String, Node)>),
}

impl Node {
    /// Parses YAML text into a tree. Keys must be scalars, as OmegaConf requires. Size and
    /// flow nesting are checked first ([`crate::model::prescan`]): libyaml's cost on hostile
    /// nesting grows with the square of the input.
    pub fn parse_yaml(text: &str) -> Result<Node, String> {
        prescan::check_text(
            text.as_bytes(),
            prescan::Syntax::Yaml,
            MAX_YAML_BYTES,
            prescan::MAX_FLOW_DEPTH,
        )?;
        let value: serde_norway::Value = serde_norway::from_str(text).map_err(|e| e.to_string())?;
        Node::from_yaml(value)
    }

    fn from_yaml(value: serde_norway::Value) -> Result<Node, String> {
        use serde_norway::Value;
        Ok(match value {
            Value::Null => Node::Null,
            Value::Bool(b) => Node::Bool(b),
            Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    Node::Int(i)
                } else {
                    Node::Float(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            Value::String(s) => Node::Str(s),
            Value::Sequence(items) => Node::Seq(
                items
                    .into_iter()
                    .map(Node::from_yaml)
                    .collect::<Result<_, _>>()?,
            ),
            Value::Mapping(map) => {
                // PyYAML's merge keys (`<<: *base`, `<<: [*a, *b]`), which both MLCube
                // (OmegaConf) and MedPerf read: the merged entries come first (of a list, the
                // last mapping first), then the mapping's own; a later key wins in the first
                // one's position.
                let mut merged: Vec<(String, Node)> = Vec::new();
                let mut own = Vec::with_capacity(map.len());
                for (k, v) in map {
                    if matches!(&k, Value::String(s) if s == "<<") {
                        let sources = match Node::from_yaml(v)? {
                            Node::Map(m) => vec![m],
                            Node::Seq(items) => items
                                .into_iter()
                                .rev()
                                .map(|n| match n {
                                    Node::Map(m) => Ok(m),
                                    _ => Err(MERGE_ERR.to_string()),
                                })
                                .collect::<Result<_, _>>()?,
                            _ => return Err(MERGE_ERR.to_string()),
                        };
                        merged.extend(sources.into_iter().flatten());
                    } else {
                        own.push((k, v));
                    }
                }
                let mut out: Vec<(String, Node)> = Vec::with_capacity(merged.len() + own.len());
                let mut put = |key: String, value: Node| {
                    // PyYAML keeps the last of duplicate keys, in the first key's position.
                    if let Some(slot) = out.iter_mut().find(|(k, _)| *k == key) {
                        slot.1 = value;
                    } else {
                        out.push((key, value));
                    }
                };
                for (k, v) in merged {
                    put(k, v);
                }
                for (k, v) in own {
                    let key = match Node::from_yaml(k)? {
                        Node::Str(s) => s,
                        Node::Int(i) => i.to_string(),
                        Node::Bool(b) => b.to_string(),
                        Node::Float(f) => f.to_string(),
                        Node::Null => "null".to_string(),
                        Node::Seq(_) | Node::Map(_) => {
                            return Err("found unhashable key (a mapping or list used as a key; \
                                 is this an unrendered cookiecutter template?)"
                                .to_string());
                        }
                    };
                    put(key, Node::from_yaml(v)?);
                }
                Node::Map(out)
            }
            Value::Tagged(tagged) => Node::from_yaml(tagged.value)?,
        })
    }

    #[cfg(test)]
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Node::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<&[(String, Node)]> {
        match self {
            Node::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_map_mut(&mut self) -> Option<&mut Vec<(String, Node)>> {
        match self {
            Node::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The value under `key` of a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut Node> {
        self.as_map_mut()?
            .iter_mut()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// Sets `key` in a mapping, keeping its position when it exists (OmegaConf merge order).
    pub fn set(&mut self, key: &str, value: Node) {
        if let Some(map) = self.as_map_mut() {
            if let Some(slot) = map.iter_mut().find(|(k, _)| k == key) {
                slot.1 = value;
            } else {
                map.push((key.to_string(), value));
            }
        }
    }

    /// The node at a dotted path (`docker.image`, `tasks.infer.parameters`).
    pub fn lookup(&self, path: &[&str]) -> Option<&Node> {
        let mut node = self;
        for part in path {
            node = match node {
                Node::Map(_) => node.get(part)?,
                Node::Seq(items) => items.get(part.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(node)
    }

    /// Deep-merges `other` into `self` as `OmegaConf.merge` does: mappings merge key by key
    /// (existing keys keep their position), anything else replaces.
    pub fn merge(&mut self, other: &Node) {
        match (self.as_map_mut(), other) {
            (Some(_), Node::Map(theirs)) => {
                for (k, v) in theirs {
                    match self.get_mut(k) {
                        Some(mine @ Node::Map(_)) if matches!(v, Node::Map(_)) => mine.merge(v),
                        _ => self.set(k, v.clone()),
                    }
                }
            }
            _ => *self = other.clone(),
        }
    }

    /// Python's `str()` of the value, which is what OmegaConf pastes into a string when an
    /// interpolation is part of a longer string.
    pub fn python_str(&self) -> String {
        match self {
            Node::Null => "None".into(),
            Node::Bool(true) => "True".into(),
            Node::Bool(false) => "False".into(),
            Node::Int(i) => i.to_string(),
            Node::Float(f) => python_float(*f),
            Node::Str(s) => s.clone(),
            Node::Seq(_) | Node::Map(_) => self.to_string(),
        }
    }

    /// Truthiness as Python sees it (`x or 0`).
    pub fn truthy(&self) -> bool {
        match self {
            Node::Null => false,
            Node::Bool(b) => *b,
            Node::Int(i) => *i != 0,
            Node::Float(f) => *f != 0.0,
            Node::Str(s) => !s.is_empty(),
            Node::Seq(v) => !v.is_empty(),
            Node::Map(m) => !m.is_empty(),
        }
    }

    /// Calls `f` on every string in the tree with its dotted key path.
    pub fn visit_strings<'a>(
        &'a self,
        path: &mut Vec<String>,
        f: &mut dyn FnMut(&[String], &'a str),
    ) {
        match self {
            Node::Str(s) => f(path, s),
            Node::Seq(items) => {
                for (i, item) in items.iter().enumerate() {
                    path.push(i.to_string());
                    item.visit_strings(path, f);
                    path.pop();
                }
            }
            Node::Map(map) => {
                for (k, v) in map {
                    path.push(k.clone());
                    v.visit_strings(path, f);
                    path.pop();
                }
            }
            _ => {}
        }
    }
}

fn python_float(f: f64) -> String {
    if f.is_nan() {
        "nan".into()
    } else if f.is_infinite() {
        if f > 0.0 { "inf".into() } else { "-inf".into() }
    } else if f.fract() == 0.0 && f.abs() < 1e16 {
        format!("{f:.1}")
    } else {
        format!("{f}")
    }
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Node::Seq(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("]")
            }
            Node::Map(map) => {
                f.write_str("{")?;
                for (i, (k, v)) in map.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k}: {v}")?;
                }
                f.write_str("}")
            }
            other => f.write_str(&other.python_str()),
        }
    }
}

/// Parses one `-Pdotted.key=value` override as `OmegaConf.from_dotlist` does: the key path is
/// split on dots, the value is read as a YAML scalar (`1` is an int, `true` a bool).
pub fn parse_dotlist(item: &str) -> Result<(Vec<String>, Node), String> {
    let (key, value) = item
        .split_once('=')
        .ok_or_else(|| format!("-P{item}: expected -Pdotted.key=value"))?;
    if key.is_empty() || key.split('.').any(str::is_empty) {
        return Err(format!("-P{item}: the key {key:?} is not a dotted path"));
    }
    let node = if value.trim().is_empty() {
        Node::Null
    } else {
        Node::parse_yaml(value).unwrap_or_else(|_| Node::Str(value.to_string()))
    };
    Ok((key.split('.').map(str::to_string).collect(), node))
}

/// Sets `path` to `value` in `root`, creating mappings on the way.
pub fn set_path(root: &mut Node, path: &[String], value: Node) -> Result<(), String> {
    let (last, parents) = path.split_last().expect("dot-list paths are never empty");
    let mut node = root;
    for (depth, part) in parents.iter().enumerate() {
        match node.get(part) {
            Some(Node::Map(_)) => {}
            None | Some(Node::Null) => node.set(part, Node::Map(Vec::new())),
            Some(_) => {
                return Err(format!(
                    "{} is not a mapping, so {} cannot be set",
                    parents[..=depth].join("."),
                    path.join(".")
                ));
            }
        }
        node = node.get_mut(part).expect("a mapping now");
    }
    match node {
        Node::Map(_) => {
            node.set(last, value);
            Ok(())
        }
        _ => Err(format!("cannot set {}", path.join("."))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_key_order_and_types() {
        let n = Node::parse_yaml("b: 1\na: x/\nc: [1, 2]\nd: 1.5\ne: null\n").unwrap();
        let keys: Vec<&str> = n
            .as_map()
            .unwrap()
            .iter()
            .map(|(k, _)| k.as_str())
            .collect();
        assert_eq!(keys, ["b", "a", "c", "d", "e"]);
        assert_eq!(n.get("b"), Some(&Node::Int(1)));
        assert_eq!(n.get("d").unwrap().python_str(), "1.5");
        assert_eq!(n.get("e").unwrap().python_str(), "None");
    }

    #[test]
    fn merge_keys_are_applied_as_pyyaml_does() {
        // What PyYAML's safe_load gives for the same text (MLCube and MedPerf read it so).
        let n = Node::parse_yaml(
            "a: &v {x: 1, y: 2}\nb:\n  z: 0\n  <<: *v\n  y: 3\nc: {z: 0, y: 9, <<: [*v, {w: 5, x: 7}]}\n",
        )
        .unwrap();
        assert_eq!(n.get("b").unwrap().to_string(), "{x: 1, y: 3, z: 0}");
        assert_eq!(n.get("c").unwrap().to_string(), "{w: 5, x: 1, y: 9, z: 0}");
        assert!(
            Node::parse_yaml("a: {<<: 1}\n")
                .unwrap_err()
                .contains("merge key")
        );
    }

    #[test]
    fn cookiecutter_keys_are_refused() {
        let err = Node::parse_yaml("name: {{ cookiecutter.project_name }}\n").unwrap_err();
        assert!(err.contains("unhashable"), "{err}");
    }

    #[test]
    fn dotlist_creates_and_types() {
        let mut n = Node::parse_yaml("docker: {image: a}\n").unwrap();
        let (p, v) = parse_dotlist("docker.build_strategy=always").unwrap();
        set_path(&mut n, &p, v).unwrap();
        let (p, v) = parse_dotlist("platform.accelerator_count=2").unwrap();
        set_path(&mut n, &p, v).unwrap();
        assert_eq!(
            n.lookup(&["docker", "build_strategy"]),
            Some(&Node::Str("always".into()))
        );
        assert_eq!(
            n.lookup(&["platform", "accelerator_count"]),
            Some(&Node::Int(2))
        );
        assert!(parse_dotlist("novalue").is_err());
        let (p, v) = parse_dotlist("docker.image.x=1").unwrap();
        assert!(set_path(&mut n, &p, v).is_err());
    }

    #[test]
    fn merge_keeps_positions() {
        let mut a = Node::parse_yaml("x: 1\ny: {p: 1, q: 2}\n").unwrap();
        let b = Node::parse_yaml("y: {q: 3, r: 4}\nz: 5\n").unwrap();
        a.merge(&b);
        assert_eq!(a.to_string(), "{x: 1, y: {p: 1, q: 3, r: 4}, z: 5}");
    }
}
