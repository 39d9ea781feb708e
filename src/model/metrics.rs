//! Metric and statistics payloads: the strict schema every number computed on private data
//! must follow (a flat map of metric name -> finite number, bounded in size), so a cube
//! cannot smuggle data out through its results.

use std::collections::BTreeMap;

use super::ModelError;

/// Largest metrics file accepted from a cube.
pub const MAX_METRICS_BYTES: usize = 64 * 1024;
/// Most metrics in one payload.
pub const MAX_METRICS: usize = 256;

pub type Metrics = BTreeMap<String, f64>;

fn check_key(what: &str, k: &str) -> Result<(), ModelError> {
    let ok = !k.is_empty()
        && k.len() <= 64
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(ModelError::Invalid {
            what: what.into(),
            why: format!(
                "metric name `{}` must be 1-64 characters of [A-Za-z0-9_.-]",
                k.escape_default()
            ),
        })
    }
}

/// Parses a cube's `results.yaml` / `statistics.yaml`: a flat YAML map of name -> number.
pub fn parse_yaml_metrics(what: &str, bytes: &[u8]) -> Result<Metrics, ModelError> {
    let invalid = |why: String| ModelError::Invalid {
        what: what.into(),
        why,
    };
    if bytes.len() > MAX_METRICS_BYTES {
        return Err(invalid(format!(
            "is {} bytes; metrics files are capped at {} bytes",
            bytes.len(),
            MAX_METRICS_BYTES
        )));
    }
    let text = super::prescan::check_text(
        bytes,
        super::prescan::Syntax::Yaml,
        MAX_METRICS_BYTES,
        super::prescan::MAX_FLOW_DEPTH,
    )
    .map_err(invalid)?;
    let value: serde_norway::Value =
        serde_norway::from_str(text).map_err(|e| invalid(format!("is not valid YAML: {e}")))?;
    let map = match value {
        serde_norway::Value::Mapping(m) => m,
        serde_norway::Value::Null => serde_norway::Mapping::new(),
        _ => {
            return Err(invalid(
                "must be a flat map of metric name -> number".into(),
            ));
        }
    };
    let mut out = Metrics::new();
    for (k, v) in map {
        let key = match k {
            serde_norway::Value::String(s) => s,
            other => return Err(invalid(format!("has a non-string key {other:?}"))),
        };
        check_key(what, &key)?;
        let num = match &v {
            serde_norway::Value::Number(n) => n.as_f64(),
            _ => None,
        };
        let Some(num) = num.filter(|n| n.is_finite()) else {
            return Err(invalid(format!(
                "value of `{key}` must be a finite number (nested data and text are refused)"
            )));
        };
        out.insert(key, num);
    }
    if out.len() > MAX_METRICS {
        return Err(invalid(format!(
            "has {} metrics; at most {MAX_METRICS} are allowed",
            out.len()
        )));
    }
    Ok(out)
}

/// Canonical bytes of a metrics payload (what gets sealed): sorted TOML `name = number` lines.
pub fn to_canonical(metrics: &Metrics) -> Vec<u8> {
    let mut s = String::new();
    for (k, v) in metrics {
        s.push_str(&format!("\"{k}\" = {}\n", format_number(*v)));
    }
    s.into_bytes()
}

/// Formats a finite number so it round-trips exactly and always reads as a TOML float.
pub fn format_number(v: f64) -> String {
    let s = format!("{v:?}");
    if s.contains('.') || s.contains('e') || s.contains("inf") || s.contains("NaN") {
        s
    } else {
        format!("{s}.0")
    }
}

/// Parses a canonical metrics payload back (after decryption).
pub fn from_canonical(what: &str, bytes: &[u8]) -> Result<Metrics, ModelError> {
    let invalid = |why: String| ModelError::Invalid {
        what: what.into(),
        why,
    };
    let text = super::prescan::check_text(
        bytes,
        super::prescan::Syntax::Toml,
        MAX_METRICS_BYTES,
        super::MAX_NESTING * 2,
    )
    .map_err(invalid)?;
    let table: toml::Table = toml::from_str(text).map_err(|e| invalid(format!("{e}")))?;
    let mut out = Metrics::new();
    for (k, v) in table {
        check_key(what, &k)?;
        let n = match v {
            toml::Value::Float(f) if f.is_finite() => f,
            toml::Value::Integer(i) => i as f64,
            _ => return Err(invalid(format!("value of `{k}` is not a finite number"))),
        };
        out.insert(k, n);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_yaml_round_trips() {
        let m = parse_yaml_metrics("results.yaml", b"auc: 0.875\naccuracy: 0.8\nn: 120\n").unwrap();
        assert_eq!(m["n"], 120.0);
        let bytes = to_canonical(&m);
        assert_eq!(from_canonical("x", &bytes).unwrap(), m);
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            "\"accuracy\" = 0.8\n\"auc\" = 0.875\n\"n\" = 120.0\n"
        );
    }

    #[test]
    fn refuses_nested_text_and_huge() {
        for bad in [
            &b"auc: {a: 1}\n"[..],
            b"auc: [1, 2]\n",
            b"auc: high\n",
            b"- 1\n- 2\n",
            b"auc: .nan\n",
            b"\"a b\": 1\n",
        ] {
            assert!(
                parse_yaml_metrics("results.yaml", bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let big = format!("note: 1\n#{}\n", "x".repeat(10 << 20));
        let e = parse_yaml_metrics("results.yaml", big.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(e.contains("capped"), "{e}");
    }
}
