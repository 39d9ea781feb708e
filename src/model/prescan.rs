//! Cheap, linear checks on untrusted text before a parser sees it: a size cap, UTF-8, and
//! bounded nesting. libyaml (behind serde_norway) loads every event of a document before the
//! deserializer's recursion limit can fire, and its scanner walks its stack of flow levels on
//! every token, so 200 KB of `[` took 55 s to refuse; these scans refuse that in microseconds.

/// The syntax of a text, which decides how strings and comments are skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syntax {
    Toml,
    Yaml,
    Json,
}

/// Deepest `[`/`{` nesting accepted in YAML and JSON (real configurations use a handful).
pub const MAX_FLOW_DEPTH: usize = 32;

/// Upper bound on libyaml's scanning work from flow collections: the sum, over every `[` and
/// `{` byte, of the bytes after it. The scanner's work per token is proportional to the number
/// of open flow levels, which is at most the number of opening brackets before it, and a
/// token is at least a byte; so this bounds the cost soundly, whatever quotes or comments
/// hide. The largest value in the MLCube conformance corpus is ~33,000.
pub const MAX_YAML_FLOW_WORK: u64 = 1 << 25;

/// Checks `bytes` against `max_bytes`, UTF-8 and the nesting rules of `syntax`, and returns
/// the text. `max_depth` bounds `[`/`{` nesting outside strings and comments. The error is one
/// line without the file name (callers add it).
pub fn check_text(
    bytes: &[u8],
    syntax: Syntax,
    max_bytes: usize,
    max_depth: usize,
) -> Result<&str, String> {
    if bytes.len() > max_bytes {
        return Err(format!(
            "is {} bytes, over the {max_bytes}-byte limit for this kind of file",
            bytes.len()
        ));
    }
    let text = std::str::from_utf8(bytes).map_err(|_| "is not UTF-8".to_string())?;
    let depth = match syntax {
        Syntax::Toml => toml_depth(text),
        Syntax::Yaml => {
            // The estimate first, for the clearer message on an ordinary bomb.
            let depth = yaml_depth(text);
            if depth <= max_depth {
                check_yaml_work(bytes)?;
            }
            depth
        }
        Syntax::Json => json_depth(text),
    };
    if depth > max_depth {
        return Err(format!(
            "nests `[` or `{{` deeper than {max_depth} levels; refused before parsing"
        ));
    }
    Ok(text)
}

/// The sound bound on libyaml's flow-level work (see [`MAX_YAML_FLOW_WORK`]).
fn check_yaml_work(bytes: &[u8]) -> Result<(), String> {
    let n = bytes.len() as u64;
    let mut work = 0u64;
    for (i, b) in bytes.iter().enumerate() {
        if matches!(b, b'[' | b'{') {
            work = work.saturating_add(n - i as u64);
            if work > MAX_YAML_FLOW_WORK {
                return Err(
                    "has too many `[`/`{` flow collections for its size (nested or unclosed); refused before parsing"
                        .into(),
                );
            }
        }
    }
    Ok(())
}

/// Deepest bracket nesting of TOML text outside strings (all four kinds) and comments.
fn toml_depth(text: &str) -> usize {
    let b = text.as_bytes();
    let (mut i, mut depth, mut max) = (0usize, 0usize, 0usize);
    while i < b.len() {
        match b[i] {
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            q @ (b'"' | b'\'') => {
                let triple = b[i..].starts_with(if q == b'"' { b"\"\"\"" } else { b"'''" });
                i += if triple { 3 } else { 1 };
                while i < b.len() {
                    if q == b'"' && b[i] == b'\\' {
                        i += 2;
                        continue;
                    }
                    if !triple && b[i] == b'\n' {
                        break;
                    }
                    if b[i] == q && (!triple || b[i..].starts_with(&[q, q, q])) {
                        i += if triple { 2 } else { 0 };
                        // A closing triple may be followed by up to two more quotes that
                        // belong to the string: skip them too.
                        if triple {
                            while i + 1 < b.len() && b[i + 1] == q {
                                i += 1;
                            }
                        }
                        break;
                    }
                    i += 1;
                }
            }
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    max
}

/// Deepest bracket nesting of JSON text outside strings.
fn json_depth(text: &str) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    let (mut in_str, mut escaped) = (false, false);
    for c in text.bytes() {
        if in_str {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match c {
            b'"' => in_str = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// Estimated flow nesting of YAML text: brackets outside comments and quoted scalars (which
/// start where a token may start). Only for a clear message on ordinary bombs; the sound
/// guard is [`check_yaml_work`].
fn yaml_depth(text: &str) -> usize {
    let b = text.as_bytes();
    let (mut i, mut depth, mut max) = (0usize, 0usize, 0usize);
    let token_start =
        |i: usize| i == 0 || matches!(b[i - 1], b' ' | b'\t' | b'\n' | b'\r' | b'[' | b'{' | b',');
    while i < b.len() {
        match b[i] {
            b'#' if token_start(i) => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'\'' if token_start(i) => {
                i += 1;
                while i < b.len() {
                    if b[i] == b'\'' {
                        if b.get(i + 1) == Some(&b'\'') {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
            }
            b'"' if token_start(i) => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    max
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, syntax: Syntax) -> Result<(), String> {
        check_text(text.as_bytes(), syntax, 1 << 20, 16).map(|_| ())
    }

    #[test]
    fn nesting_outside_strings_counts() {
        let deep = format!("x = {}1{}\n", "[".repeat(20), "]".repeat(20));
        assert!(
            check(&deep, Syntax::Toml)
                .unwrap_err()
                .contains("deeper than 16")
        );
        assert!(check(&format!("a: {}", "[".repeat(20)), Syntax::Yaml).is_err());
        assert!(check(&"[".repeat(20), Syntax::Json).is_err());
        // Brackets in strings and comments do not count.
        for (t, s) in [
            (
                "x = \"[[[[[[[[[[[[[[[[[[[[\"\ny = '{{{{{{{{{{{{{{{{{{{'\n# [[[[[[[[[[[[[[[[[[[[\n",
                Syntax::Toml,
            ),
            (
                "x = \"\"\"[[[[[[[[[[[[[[[[[[[[\"\"\"\ny = '''[[[[[[[[[[[[[[[[[[[['''\n",
                Syntax::Toml,
            ),
            (
                "a: '[[[[[[[[[[[[[[[[[[[['\nb: \"{{{{{{{{{{{{{{{{{{{{\"\n# [[[[[[[[[[[[[[[[[[[[\n",
                Syntax::Yaml,
            ),
            ("{\"a\": \"[[[[[[[[[[[[[[[[[[[[\\\"[[[[\"}", Syntax::Json),
        ] {
            check(t, s).unwrap_or_else(|e| panic!("{t}: {e}"));
        }
        // A multi-line TOML string does not hide what follows it.
        let hidden = format!(
            "x = \"\"\" \" \"\"\"\ny = {}1{}\n",
            "[".repeat(20),
            "]".repeat(20)
        );
        assert!(check(&hidden, Syntax::Toml).is_err());
    }

    /// Issue 14: 200 KB of `[` took 55 s in libyaml before any limit fired.
    #[test]
    fn yaml_flow_work_is_bounded_whatever_hides_it() {
        let bomb = format!("a: {}", "[".repeat(200_000));
        assert!(check_text(bomb.as_bytes(), Syntax::Yaml, 1 << 20, 32).is_err());
        // Quotes that fool the depth estimate do not fool the work bound.
        // In a flow sequence `x '` is a plain scalar and every `[` after it opens a level;
        // the estimate takes the quote for a string and sees depth 1.
        let sneaky = format!("a: [x '{}", "[".repeat(20_000));
        assert!(yaml_depth(&sneaky) <= 1);
        let e = check_text(sneaky.as_bytes(), Syntax::Yaml, 1 << 20, 32).unwrap_err();
        assert!(e.contains("too many"), "{e}");
        let big = vec![b'a'; 100];
        assert!(
            check_text(&big, Syntax::Yaml, 99, 32)
                .unwrap_err()
                .contains("over the 99-byte")
        );
        assert!(
            check_text(b"\xff", Syntax::Yaml, 99, 32)
                .unwrap_err()
                .contains("UTF-8")
        );
    }
}
