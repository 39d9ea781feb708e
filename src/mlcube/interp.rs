//! `${...}` interpolation as OmegaConf 2.1 (MLCube 0.0.9's resolver) performs it on the whole
//! configuration: `${a.b}` and relative `${.x}` references, `${oc.env:VAR,default}` (and the
//! legacy `${env:VAR}`), `\${` escapes; plus the `~` and `$VAR` expansion 0.0.9 applies to
//! parameter paths. Host environment access goes through a closure the caller passes in.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};

use super::tree::Node;

/// Why an interpolation failed, with the key whose value held it.
#[derive(Debug, Clone, PartialEq)]
pub struct InterpError {
    pub key: String,
    pub expression: String,
    pub message: String,
}

/// Marker in messages for refused host-environment lookups (strict mode); checked by callers.
pub const ENV_REFUSED: &str = "host environment interpolation is not allowed";

pub struct Interpolator<'a> {
    root: &'a Node,
    env: &'a dyn Fn(&str) -> Option<String>,
    allow_env: bool,
    /// Resolved nodes by absolute key path: a value referenced many times is resolved once,
    /// so references that double at each level cost linear time, not 2^depth.
    memo: RefCell<HashMap<Vec<String>, Node>>,
    /// Paths being resolved right now: meeting one again is a cycle.
    active: RefCell<HashSet<Vec<String>>>,
    /// Bytes produced so far, across the whole configuration.
    produced: Cell<usize>,
}

/// Longest chain of references followed to resolve one value.
pub const MAX_DEPTH: usize = 32;
/// Largest string one interpolation may produce.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;
/// Most bytes resolution may produce for a whole configuration (strings and copied values).
pub const MAX_TOTAL_BYTES: usize = 1024 * 1024;

#[derive(Debug)]
enum Segment<'s> {
    Text(std::borrow::Cow<'s, str>),
    Interp(&'s str),
}

/// Size of a resolved node, as charged against [`MAX_TOTAL_BYTES`].
fn weight(node: &Node) -> usize {
    match node {
        Node::Str(s) => s.len().max(1),
        Node::Seq(items) => 1 + items.iter().map(weight).sum::<usize>(),
        Node::Map(map) => 1 + map.iter().map(|(k, v)| k.len() + weight(v)).sum::<usize>(),
        _ => 1,
    }
}

impl<'a> Interpolator<'a> {
    pub fn new(root: &'a Node, env: &'a dyn Fn(&str) -> Option<String>, allow_env: bool) -> Self {
        Interpolator {
            root,
            env,
            allow_env,
            memo: RefCell::default(),
            active: RefCell::default(),
            produced: Cell::new(0),
        }
    }

    /// Resolves every string of the tree (OmegaConf.resolve).
    pub fn resolve_all(&self) -> Result<Node, InterpError> {
        let mut path = Vec::new();
        self.resolve_node(self.root, &mut path, 0)
    }

    /// Counts `n` produced bytes against the whole-configuration budget.
    fn charge(&self, n: usize, path: &[String], expression: &str) -> Result<(), InterpError> {
        let total = self.produced.get().saturating_add(n);
        self.produced.set(total);
        if total > MAX_TOTAL_BYTES {
            return Err(InterpError {
                key: path.join("."),
                expression: expression.to_string(),
                message: format!(
                    "interpolations expand the configuration beyond {MAX_TOTAL_BYTES} bytes"
                ),
            });
        }
        Ok(())
    }

    fn resolve_node(
        &self,
        node: &Node,
        path: &mut Vec<String>,
        depth: usize,
    ) -> Result<Node, InterpError> {
        if let Some(done) = self.memo.borrow().get(path.as_slice()) {
            // Charge before copying, so a copy over budget is never made.
            self.charge(weight(done), path, "")?;
            return Ok(done.clone());
        }
        if !self.active.borrow_mut().insert(path.clone()) {
            return Err(InterpError {
                key: path.join("."),
                expression: String::new(),
                message: "interpolations refer to each other in a cycle".into(),
            });
        }
        let resolved = self.resolve_fresh(node, path, depth);
        self.active.borrow_mut().remove(path.as_slice());
        let resolved = resolved?;
        self.memo
            .borrow_mut()
            .insert(path.clone(), resolved.clone());
        Ok(resolved)
    }

    fn resolve_fresh(
        &self,
        node: &Node,
        path: &mut Vec<String>,
        depth: usize,
    ) -> Result<Node, InterpError> {
        Ok(match node {
            Node::Str(s) => self.resolve_str(s, path, depth)?,
            Node::Seq(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    path.push(i.to_string());
                    let r = self.resolve_node(item, path, depth);
                    path.pop();
                    out.push(r?);
                }
                Node::Seq(out)
            }
            Node::Map(map) => {
                let mut out = Vec::with_capacity(map.len());
                for (k, v) in map {
                    path.push(k.clone());
                    let r = self.resolve_node(v, path, depth);
                    path.pop();
                    out.push((k.clone(), r?));
                }
                Node::Map(out)
            }
            other => other.clone(),
        })
    }

    /// Resolves one string found at `path`.
    fn resolve_str(&self, s: &str, path: &[String], depth: usize) -> Result<Node, InterpError> {
        if !s.contains("${") {
            return Ok(Node::Str(s.to_string()));
        }
        let err = |expression: &str, message: String| InterpError {
            key: path.join("."),
            expression: expression.to_string(),
            message,
        };
        if depth > MAX_DEPTH {
            return Err(err(
                s,
                format!("interpolations nest more than {MAX_DEPTH} references deep"),
            ));
        }
        let segments = split_segments(s).map_err(|m| err(s, m))?;
        if let [Segment::Interp(inner)] = segments.as_slice() {
            return self.evaluate(inner, path, depth);
        }
        let mut out = String::new();
        for seg in &segments {
            match seg {
                Segment::Text(t) => out.push_str(t),
                Segment::Interp(inner) => {
                    out.push_str(&self.evaluate(inner, path, depth)?.python_str())
                }
            }
            if out.len() > MAX_VALUE_BYTES {
                return Err(err(
                    s,
                    format!("the interpolated value grows beyond {MAX_VALUE_BYTES} bytes"),
                ));
            }
        }
        self.charge(out.len(), path, s)?;
        Ok(Node::Str(out))
    }

    fn evaluate(&self, inner: &str, path: &[String], depth: usize) -> Result<Node, InterpError> {
        let expression = format!("${{{inner}}}");
        let err = |message: String| InterpError {
            key: path.join("."),
            expression: expression.clone(),
            message,
        };
        let body = inner.trim();
        if let Some((name, args)) = split_resolver(body) {
            return match name {
                "oc.env" | "env" => {
                    if !self.allow_env {
                        return Err(err(format!("{ENV_REFUSED} for registered cubes")));
                    }
                    let args = split_args(args).map_err(&err)?;
                    let mut resolved = Vec::with_capacity(args.len());
                    for arg in &args {
                        resolved.push(self.resolve_str(arg, path, depth + 1)?);
                    }
                    let var = match resolved.first() {
                        Some(Node::Str(v)) if !v.is_empty() => v.clone(),
                        _ => return Err(err("oc.env needs a variable name".into())),
                    };
                    match (self.env)(&var) {
                        Some(value) => Ok(Node::Str(value)),
                        None => match resolved.get(1) {
                            Some(Node::Str(d)) if d == "null" => Ok(Node::Null),
                            Some(default) => Ok(Node::Str(default.python_str())),
                            None => Err(err(format!("environment variable {var} is not set"))),
                        },
                    }
                }
                other => Err(err(format!(
                    "resolver {other:?} is not supported (only oc.env)"
                ))),
            };
        }
        // A key reference, absolute (`docker.image`) or relative (`.x`, `..x`).
        let (base, rest): (Vec<String>, &str) = if let Some(stripped) = body.strip_prefix('.') {
            let ups = stripped.len() - stripped.trim_start_matches('.').len();
            let container_len = path.len().saturating_sub(1);
            if ups > container_len {
                return Err(err(
                    "relative reference goes above the top of the configuration".into(),
                ));
            }
            (
                path[..container_len - ups].to_vec(),
                stripped.trim_start_matches('.'),
            )
        } else {
            (Vec::new(), body)
        };
        if rest.is_empty() {
            return Err(err("empty reference".into()));
        }
        let mut target = base;
        for part in rest.replace('[', ".").replace(']', "").split('.') {
            if part.is_empty() {
                return Err(err(format!("{rest:?} is not a valid key path")));
            }
            target.push(part.to_string());
        }
        let parts: Vec<&str> = target.iter().map(String::as_str).collect();
        let node = self
            .root
            .lookup(&parts)
            .ok_or_else(|| err(format!("the configuration has no key {}", target.join("."))))?;
        let mut target_path = target.clone();
        self.resolve_node(node, &mut target_path, depth + 1)
    }
}

/// Splits `resolver:args` when the text before the first `:` is a resolver name.
fn split_resolver(body: &str) -> Option<(&str, &str)> {
    let (name, args) = body.split_once(':')?;
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    valid.then_some((name, args))
}

/// Splits resolver arguments on top-level commas, honouring quotes and nested `${}`.
fn split_args(args: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut chars = args.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => {
                quote = None;
            }
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') if depth == 0 && cur.trim().is_empty() => {
                cur.clear();
                quote = Some(c);
            }
            (None, '$') if chars.peek() == Some(&'{') => {
                depth += 1;
                cur.push(c);
            }
            (None, '}') if depth > 0 => {
                depth -= 1;
                cur.push(c);
            }
            (None, ',') if depth == 0 => out.push(std::mem::take(&mut cur).trim().to_string()),
            (None, c) => cur.push(c),
        }
    }
    if quote.is_some() {
        return Err("unterminated quote in resolver arguments".into());
    }
    out.push(cur.trim().to_string());
    Ok(out)
}

/// Splits a string into literal text and `${...}` bodies.
fn split_segments(s: &str) -> Result<Vec<Segment<'_>>, String> {
    let bytes = s.as_bytes();
    let mut segments = Vec::new();
    let mut text = String::new();
    let mut i = 0;
    let mut plain_start = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && bytes[i + 1..].starts_with(b"${") {
            text.push_str(&s[plain_start..i]);
            text.push_str("${");
            i += 3;
            plain_start = i;
            continue;
        }
        if bytes[i..].starts_with(b"${") {
            text.push_str(&s[plain_start..i]);
            if !text.is_empty() {
                segments.push(Segment::Text(std::mem::take(&mut text).into()));
            }
            let mut depth = 1;
            let mut j = i + 2;
            while j < bytes.len() && depth > 0 {
                if bytes[j..].starts_with(b"${") {
                    depth += 1;
                    j += 2;
                    continue;
                }
                if bytes[j] == b'}' {
                    depth -= 1;
                }
                j += 1;
            }
            if depth > 0 {
                return Err("unterminated ${ (no closing brace)".into());
            }
            segments.push(Segment::Interp(&s[i + 2..j - 1]));
            i = j;
            plain_start = i;
            continue;
        }
        i += 1;
    }
    text.push_str(&s[plain_start..]);
    if !text.is_empty() {
        segments.push(Segment::Text(text.into()));
    }
    Ok(segments)
}

/// True when the string holds an `${oc.env:...}`/`${env:...}` interpolation.
pub fn uses_host_env(s: &str) -> bool {
    split_segments(s)
        .map(|segs| {
            segs.iter().any(|seg| match seg {
                Segment::Interp(inner) => {
                    matches!(split_resolver(inner.trim()), Some(("oc.env" | "env", _)))
                        || uses_host_env(inner)
                }
                Segment::Text(_) => false,
            })
        })
        .unwrap_or(false)
}

/// `os.path.expanduser` for the forms MLCube configs use: `~` and `~/...` become the home
/// directory; `~user` is left as it is.
pub fn expand_user(s: &str, home: &str) -> String {
    if s == "~" {
        home.to_string()
    } else if let Some(rest) = s.strip_prefix("~/") {
        format!("{}/{}", home.trim_end_matches('/'), rest)
    } else {
        s.to_string()
    }
}

/// `os.path.expandvars`: `$NAME` and `${NAME}` are replaced when NAME is set, left alone when
/// it is not.
pub fn expand_vars(s: &str, env: &dyn Fn(&str) -> Option<String>) -> String {
    if !s.contains('$') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        let (name, consumed) = if let Some(braced) = after.strip_prefix('{') {
            match braced.find('}') {
                Some(end) => (&braced[..end], end + 2),
                None => ("", 0),
            }
        } else {
            let end = after
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], end)
        };
        match (name.is_empty(), env(name)) {
            (false, Some(value)) => {
                out.push_str(&value);
                rest = &after[consumed..];
            }
            _ => {
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// True when a path string would be changed by `$VAR` expansion given some environment.
pub fn has_var_reference(s: &str) -> bool {
    let mut rest = s;
    while let Some(pos) = rest.find('$') {
        let after = &rest[pos + 1..];
        if after.starts_with('{') || after.starts_with(|c: char| c.is_alphanumeric() || c == '_') {
            return true;
        }
        rest = after;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(yaml: &str, env: &[(&str, &str)]) -> Result<Node, InterpError> {
        let root = Node::parse_yaml(yaml).unwrap();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let lookup = move |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        Interpolator::new(&root, &lookup, true).resolve_all()
    }

    #[test]
    fn references_and_env() {
        let n = resolve(
            "name: cube\ndocker: {image: 'x/${name}:1'}\nrunner: {image: '${docker.image}'}\n\
             a: {b: '${.c}/d', c: e}\nn: '${oc.env:N,7}'\nm: '${oc.env:M}'\nk: ${x.count}\nx: {count: 3}\n\
             esc: 'a\\${name}'\n",
            &[("M", "set")],
        )
        .unwrap();
        assert_eq!(
            n.lookup(&["runner", "image"]).unwrap().as_str(),
            Some("x/cube:1")
        );
        assert_eq!(n.lookup(&["a", "b"]).unwrap().as_str(), Some("e/d"));
        assert_eq!(n.lookup(&["n"]).unwrap().as_str(), Some("7"));
        assert_eq!(n.lookup(&["m"]).unwrap().as_str(), Some("set"));
        assert_eq!(n.lookup(&["k"]), Some(&Node::Int(3)));
        assert_eq!(n.lookup(&["esc"]).unwrap().as_str(), Some("a${name}"));
    }

    #[test]
    fn errors_name_the_key() {
        let e = resolve("a: {b: '${nope.x}'}\n", &[]).unwrap_err();
        assert_eq!(e.key, "a.b");
        assert!(e.message.contains("no key nope.x"), "{e:?}");
        let e = resolve("a: '${oc.env:UNSET}'\n", &[]).unwrap_err();
        assert!(e.message.contains("UNSET is not set"), "{e:?}");
        let e = resolve("a: '${b}'\nb: '${a}'\n", &[]).unwrap_err();
        assert!(e.message.contains("cycle"), "{e:?}");
        let e = resolve("a: '${oc.decode:1}'\n", &[]).unwrap_err();
        assert!(e.message.contains("not supported"), "{e:?}");
    }

    /// Issue 14: references that double at each level took 9 s to plan (2^32 evaluations).
    #[test]
    fn doubling_references_are_bounded() {
        let mut yaml = String::from("l0: ab\n");
        for i in 1..=32 {
            yaml.push_str(&format!("l{i}: '${{l{p}}}${{l{p}}}'\n", p = i - 1));
        }
        let e = resolve(&yaml, &[]).unwrap_err();
        assert!(e.message.contains("grows beyond"), "{e:?}");
        // Values that stay small are resolved once each, however often they are referenced.
        let mut yaml = String::from("l0: [a, b]\n");
        for i in 1..=40 {
            yaml.push_str(&format!("l{i}: ['${{l{p}}}', '${{l{p}}}']\n", p = i - 1));
        }
        let e = resolve(&yaml, &[]).unwrap_err();
        assert!(e.message.contains("beyond"), "{e:?}");
        // A chain written top-down is resolved by recursion: that is where depth is bounded.
        let mut yaml = String::from("l0: x\n");
        for i in 1..=40 {
            yaml.insert_str(0, &format!("l{i}: '${{l{}}}'\n", i - 1));
        }
        let e = resolve(&yaml, &[]).unwrap_err();
        assert!(e.message.contains("32 references deep"), "{e:?}");
        let mut yaml = String::from("l0: x\n");
        for i in 1..=20 {
            yaml.push_str(&format!("l{i}: '${{l{p}}}${{l{p}}}'\n", p = i - 1));
        }
        let e = resolve(&yaml, &[]).unwrap_err();
        assert!(e.message.contains("grows beyond"), "{e:?}");
    }

    #[test]
    fn strict_refuses_env() {
        let root = Node::parse_yaml("a: '${oc.env:HOME,/x}'\n").unwrap();
        let e = Interpolator::new(&root, &|_| None, false)
            .resolve_all()
            .unwrap_err();
        assert!(e.message.contains(ENV_REFUSED));
        assert!(uses_host_env("x${oc.env:A,b}"));
        assert!(uses_host_env("${env:A}"));
        assert!(!uses_host_env("${docker.image}"));
    }

    #[test]
    fn user_and_vars() {
        assert_eq!(expand_user("~/data", "/home/u"), "/home/u/data");
        assert_eq!(expand_user("~", "/home/u"), "/home/u");
        assert_eq!(expand_user("~bob/x", "/home/u"), "~bob/x");
        let env = |k: &str| (k == "D").then(|| "/data".to_string());
        assert_eq!(
            expand_vars("$D/x/${D}/$NOPE/$", &env),
            "/data/x//data/$NOPE/$"
        );
        assert!(has_var_reference("a/$X"));
        assert!(!has_var_reference("a$"));
    }
}
