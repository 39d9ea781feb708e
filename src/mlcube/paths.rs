//! Host path arithmetic exactly as MLCube 0.0.9 does it with `pathlib` and `os.path` (strings
//! in, strings out, `..` kept), plus the lexical containment checks cohort's hardening needs.

/// `PurePosixPath(s).as_posix()`: collapses `//` and `/./`, drops a trailing `/`, keeps `..`.
pub fn pathlib(s: &str) -> String {
    if s.is_empty() {
        return ".".into();
    }
    // POSIX keeps exactly two leading slashes; one or three-plus become one.
    let prefix = if s.starts_with("//") && !s.starts_with("///") {
        "//"
    } else if s.starts_with('/') {
        "/"
    } else {
        ""
    };
    let parts: Vec<&str> = s
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    if parts.is_empty() {
        return if prefix.is_empty() {
            ".".into()
        } else {
            prefix.into()
        };
    }
    format!("{prefix}{}", parts.join("/"))
}

/// `Path(workspace) / p` as 0.0.9's `get_host_path` computes it (after `~`/`$VAR` expansion).
pub fn join_workspace(workspace: &str, p: &str) -> String {
    if p.starts_with('/') {
        pathlib(p)
    } else {
        pathlib(&format!("{workspace}/{p}"))
    }
}

/// `os.path.split` of a normalised path: (parent, file name).
pub fn split(p: &str) -> (String, String) {
    match p.rfind('/') {
        Some(pos) => {
            let head = &p[..pos + 1];
            let tail = &p[pos + 1..];
            let trimmed = head.trim_end_matches('/');
            let head = if trimmed.is_empty() { head } else { trimmed };
            (head.to_string(), tail.to_string())
        }
        None => (String::new(), p.to_string()),
    }
}

/// Resolves `.` and `..` lexically (no symlinks followed), for containment checks.
pub fn lexical(p: &str) -> String {
    let absolute = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !absolute {
                    parts.push("..");
                }
            }
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    if absolute {
        format!("/{joined}")
    } else if joined.is_empty() {
        ".".into()
    } else {
        joined
    }
}

/// The path of `inner` relative to `outer` when `inner` is strictly inside it (lexically).
pub fn strip_inside(outer: &str, inner: &str) -> Option<String> {
    let outer = lexical(outer);
    let inner = lexical(inner);
    let rest = if outer == "/" {
        inner.strip_prefix('/')?
    } else {
        inner.strip_prefix(&outer)?.strip_prefix('/')?
    };
    (!rest.is_empty()).then(|| rest.to_string())
}

/// True when `inner` is `outer` or inside it (lexically).
pub fn is_within(outer: &str, inner: &str) -> bool {
    lexical(outer) == lexical(inner) || strip_inside(outer, inner).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pathlib_rules() {
        assert_eq!(pathlib("/a//b/./c/"), "/a/b/c");
        assert_eq!(pathlib("a/../b"), "a/../b");
        assert_eq!(pathlib("//x"), "//x");
        assert_eq!(pathlib("///x"), "/x");
        assert_eq!(pathlib(""), ".");
        assert_eq!(join_workspace("/r/workspace", "data/"), "/r/workspace/data");
        assert_eq!(join_workspace("/r/workspace", "/abs/x"), "/abs/x");
        assert_eq!(
            join_workspace("/r/workspace", "../models"),
            "/r/workspace/../models"
        );
    }

    #[test]
    fn split_and_contain() {
        assert_eq!(split("/r/w/p.yaml"), ("/r/w".into(), "p.yaml".into()));
        assert_eq!(split("/p.yaml"), ("/".into(), "p.yaml".into()));
        assert_eq!(lexical("/r/w/../x/./y"), "/r/x/y");
        assert_eq!(lexical("/../x"), "/x");
        assert_eq!(strip_inside("/r/w", "/r/w/a/b"), Some("a/b".into()));
        assert_eq!(strip_inside("/r/w", "/r/w"), None);
        assert_eq!(strip_inside("/r/w", "/r/wx"), None);
        assert!(is_within("/r/w", "/r/w/../w/x"));
        assert!(!is_within("/r/w", "/r/w/../x"));
        assert_eq!(strip_inside("/", "/a"), Some("a".into()));
    }
}
