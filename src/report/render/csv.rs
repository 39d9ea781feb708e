//! A release as CSV (RFC 4180 quoting: a field holding a comma, quote or line break is quoted,
//! quotes doubled; lines end in LF) in long format, one row per fact, so a spreadsheet or
//! a data frame filters by `kind`. The columns are documented in docs/aggregation.md:
//!
//! `kind,rank,model,model_version,model_sha256,owner,reference,status,datasets,metric,mean,sd,
//! min,max,n,dataset,value,stage,exit_code,reason,result`
//!
//! - `summary`: one row per listed model x metric (`mean` .. `n`);
//! - `total`: one row per listed model x size metric of a layout-3 release (`value`: the
//!   count of cases across its datasets, `n`: how many datasets);
//! - `cell`: one row per model x dataset x metric of a cross-product release (`dataset`,
//!   `value`, `result`);
//! - `failure`: one row per failure receipt (`dataset`, `stage`, `exit_code`, `reason`,
//!   `result`);
//! - `unlisted`: one row per model below the minimum (no values).

use std::io::Write;

use crate::model::{Entry, Leaderboard};
use crate::report::ReportError;

pub const COLUMNS: [&str; 21] = [
    "kind",
    "rank",
    "model",
    "model_version",
    "model_sha256",
    "owner",
    "reference",
    "status",
    "datasets",
    "metric",
    "mean",
    "sd",
    "min",
    "max",
    "n",
    "dataset",
    "value",
    "stage",
    "exit_code",
    "reason",
    "result",
];

/// Quotes a field when needed. Text fields starting with `=`, `+`, `-`, `@` (or a tab or CR)
/// get a leading `'` so a spreadsheet never evaluates registry text as a formula.
fn field(s: &str, text: bool) -> String {
    let s = if text && s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

fn num(v: Option<f64>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

/// One row under construction, by column name.
struct Row([String; 21]);

impl Row {
    fn new(kind: &str, e: &Entry) -> Row {
        let mut r = Row(Default::default());
        r.set("kind", kind, false);
        r.set(
            "rank",
            &e.rank.map(|r| r.to_string()).unwrap_or_default(),
            false,
        );
        r.set("model", &e.model.name, true);
        r.set("model_version", &e.model.version.to_string(), false);
        r.set("model_sha256", e.model.sha256.as_str(), false);
        r.set("owner", &e.owner, true);
        r.set(
            "reference",
            if e.reference { "true" } else { "false" },
            false,
        );
        r.set("status", e.status.as_str(), false);
        r.set("datasets", &e.datasets.to_string(), false);
        r
    }

    fn set(&mut self, column: &str, value: &str, text: bool) {
        let i = COLUMNS
            .iter()
            .position(|c| *c == column)
            .expect("column names are the constants above");
        self.0[i] = field(value, text);
    }

    fn write(&self, w: &mut dyn Write) -> std::io::Result<()> {
        writeln!(w, "{}", self.0.join(","))
    }
}

pub fn write(lb: &Leaderboard, w: &mut dyn Write) -> Result<(), ReportError> {
    writeln!(w, "{}", COLUMNS.join(","))?;
    for e in &lb.entries {
        if e.metrics.is_empty() && e.totals.is_empty() && e.cells.is_empty() {
            Row::new("unlisted", e).write(w)?;
        }
        for (name, s) in &e.metrics {
            let mut r = Row::new("summary", e);
            r.set("metric", name, true);
            r.set("mean", &s.mean.to_string(), false);
            r.set("sd", &num(s.sd), false);
            r.set("min", &num(s.min), false);
            r.set("max", &num(s.max), false);
            r.set("n", &s.n.to_string(), false);
            r.write(w)?;
        }
        for (name, v) in &e.totals {
            let mut r = Row::new("total", e);
            r.set("metric", name, true);
            r.set("value", &v.to_string(), false);
            r.write(w)?;
        }
        for c in &e.cells {
            for (name, v) in &c.metrics {
                let mut r = Row::new("cell", e);
                r.set("metric", name, true);
                r.set("dataset", &c.dataset, true);
                r.set("value", &v.to_string(), false);
                r.set("result", c.result.as_deref().unwrap_or_default(), true);
                r.write(w)?;
            }
        }
        for f in &e.failures {
            let mut r = Row::new("failure", e);
            r.set("dataset", f.dataset.as_deref().unwrap_or_default(), true);
            r.set("stage", &f.stage, true);
            r.set(
                "exit_code",
                &f.exit_code.map(|c| c.to_string()).unwrap_or_default(),
                false,
            );
            r.set("reason", &f.reason, true);
            r.set("result", f.result.as_deref().unwrap_or_default(), true);
            r.write(w)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::field;

    #[test]
    fn quoting_and_formulas() {
        assert_eq!(field("plain", true), "plain");
        assert_eq!(field("a,b", true), "\"a,b\"");
        assert_eq!(field("say \"hi\"", true), "\"say \"\"hi\"\"\"");
        assert_eq!(field("two\nlines", true), "\"two\nlines\"");
        assert_eq!(field("=cmd()", true), "'=cmd()");
        assert_eq!(field("-0.5", false), "-0.5");
    }
}
