//! A release as GitHub-flavoured Markdown, for the registry's README or a paper's supplement:
//! a heading, the policy in words, the ranked table, the per-dataset table (cross-product) and
//! the failure receipts. Registry text is escaped so a name cannot inject links or HTML.

use std::io::Write;

use crate::model::{Leaderboard, Release};
use crate::report::ReportError;

use super::{
    below_minimum_text, dataset_labels, has_ties, is_listed, mean_sd, metric_names, model_label,
    plain, policy_line, rank_text, size_heading, size_names, size_value, value,
};

/// Escapes Markdown and inline-HTML syntax in registry text (CommonMark backslash escapes;
/// `|` too, which would split a table cell). `(`, `!` and `#` need none: links start with an
/// escaped `[`, and registry text never starts a line.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in plain(s).chars() {
        if matches!(
            c,
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '~' | '&'
        ) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn row(w: &mut dyn Write, cells: &[String]) -> std::io::Result<()> {
    writeln!(w, "| {} |", cells.join(" | "))
}

fn rule(w: &mut dyn Write, align: &[bool]) -> std::io::Result<()> {
    let parts: Vec<&str> = align
        .iter()
        .map(|right| if *right { "---:" } else { "---" })
        .collect();
    writeln!(w, "|{}|", parts.join("|"))
}

pub fn write(lb: &Leaderboard, w: &mut dyn Write) -> Result<(), ReportError> {
    writeln!(
        w,
        "## {} v{}: leaderboard release {}",
        escape(&lb.benchmark.name),
        lb.benchmark.version,
        lb.number
    )?;
    writeln!(w)?;
    writeln!(
        w,
        "Released {} by {}. {}.",
        escape(&lb.created),
        escape(&lb.by),
        escape(&policy_line(&lb.policy))
    )?;
    writeln!(w)?;
    if lb.entries.is_empty() {
        writeln!(w, "No results in this release.")?;
        return Ok(());
    }
    let metrics = metric_names(lb);
    let mut header: Vec<String> = ["Rank", "Model", "Owner", "Datasets"]
        .map(String::from)
        .to_vec();
    header.extend(metrics.iter().map(|m| escape(m)));
    let sizes = size_names(lb);
    header.extend(sizes.iter().map(|n| escape(&size_heading(lb, n))));
    row(w, &header)?;
    let mut align = vec![true, false, false, true];
    align.extend(metrics.iter().chain(&sizes).map(|_| true));
    rule(w, &align)?;
    for e in &lb.entries {
        let mut name = format!("**{}**", escape(&model_label(&e.model)));
        if e.reference {
            name.push_str(" (reference)");
        }
        let mut cells = vec![rank_text(e), name, escape(&e.owner), e.datasets.to_string()];
        for (i, m) in metrics.iter().enumerate() {
            cells.push(if is_listed(e) {
                e.metrics.get(m).map(mean_sd).unwrap_or_default()
            } else if i == 0 {
                format!("_{}_", below_minimum_text(e, &lb.policy))
            } else {
                String::new()
            });
        }
        for n in &sizes {
            cells.push(if is_listed(e) {
                size_value(lb, e, n)
            } else {
                String::new()
            });
        }
        row(w, &cells)?;
    }
    writeln!(w)?;
    let spread = if lb.policy.release != Release::Aggregate {
        "; ± is the sample standard deviation"
    } else {
        ""
    };
    let totals = if lb.has_totals() && !sizes.is_empty() {
        " Totals count the cases behind each model's values."
    } else {
        ""
    };
    let ties = if has_ties(lb) {
        " Ties share a rank (1, 1, 3)."
    } else {
        ""
    };
    writeln!(w, "Values are means across datasets{spread}.{totals}{ties}")?;

    if lb.policy.release == Release::CrossProduct {
        let labels = dataset_labels(lb);
        let listed: Vec<_> = lb.entries.iter().filter(|e| !e.cells.is_empty()).collect();
        if !labels.is_empty() && !listed.is_empty() {
            writeln!(w)?;
            writeln!(w, "### {} per dataset", escape(&lb.policy.primary_metric))?;
            writeln!(w)?;
            let mut header = vec!["Model".to_string()];
            header.extend(labels.iter().map(|l| escape(l)));
            row(w, &header)?;
            let mut align = vec![false];
            align.extend(labels.iter().map(|_| true));
            rule(w, &align)?;
            for e in listed {
                let mut cells = vec![escape(&model_label(&e.model))];
                for l in &labels {
                    cells.push(
                        e.cells
                            .iter()
                            .find(|c| &c.dataset == l)
                            .and_then(|c| c.metrics.get(&lb.policy.primary_metric))
                            .map_or_else(|| "–".to_string(), |v| value(*v)),
                    );
                }
                row(w, &cells)?;
            }
        }
    }

    let failures: Vec<_> = lb
        .entries
        .iter()
        .flat_map(|e| e.failures.iter().map(move |f| (e, f)))
        .collect();
    if !failures.is_empty() {
        writeln!(w)?;
        writeln!(w, "### Failure receipts")?;
        writeln!(w)?;
        for (e, f) in failures {
            let code = f
                .exit_code
                .map(|c| format!(", exit code {c}"))
                .unwrap_or_default();
            writeln!(
                w,
                "- {} on {}: `{}` failed{code} ({})",
                escape(&model_label(&e.model)),
                escape(super::failure_dataset(f)),
                plain(&f.stage).replace('`', "'"),
                escape(&f.reason)
            )?;
        }
    }
    if !lb.excluded.is_empty() {
        writeln!(w)?;
        writeln!(w, "### Left out of this release")?;
        writeln!(w)?;
        for x in &lb.excluded {
            writeln!(w, "- `{}` ({})", plain(&x.path).replace('`', "'"), x.reason)?;
        }
    }
    Ok(())
}
