//! The terminal view of a release (`cohort leaderboard B`): a header, the ranked table, the
//! per-dataset matrix of the primary metric for cross-product releases, and failure receipts.
//! Plain text without colour; the CLI decides the width.

use std::io::Write;

use comfy_table::{CellAlignment, ContentArrangement, Table, presets::UTF8_BORDERS_ONLY};

use crate::model::{Leaderboard, Release};
use crate::report::ReportError;

use super::{
    below_minimum_text, dataset_labels, has_ties, is_listed, mean_sd, metric_names, model_label,
    plain, policy_line, rank_text, size_heading, size_names, size_value, value,
};

/// Layout options. The default is a fixed layout that ignores the terminal, which keeps
/// snapshots and pipes stable.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Wrap columns to fit this many characters.
    pub width: Option<u16>,
}

fn new_table(header: Vec<String>, opts: Options) -> Table {
    let mut t = Table::new();
    t.load_style(UTF8_BORDERS_ONLY).set_header(header);
    if let Some(w) = opts.width {
        t.set_content_arrangement(ContentArrangement::Dynamic)
            .set_width(w);
    }
    t
}

fn right_align(t: &mut Table, from: usize) {
    let n = t.column_count();
    for i in from..n {
        if let Some(c) = t.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
}

/// Writes the terminal view with the default layout.
pub fn write(lb: &Leaderboard, w: &mut dyn Write) -> Result<(), ReportError> {
    write_with(lb, Options::default(), w)
}

pub fn write_with(lb: &Leaderboard, opts: Options, w: &mut dyn Write) -> Result<(), ReportError> {
    writeln!(
        w,
        "{} v{} · leaderboard release {} · {} · by {}",
        plain(&lb.benchmark.name),
        lb.benchmark.version,
        lb.number,
        plain(&lb.created),
        plain(&lb.by)
    )?;
    writeln!(w, "{}", plain(&policy_line(&lb.policy)))?;
    writeln!(w)?;
    if lb.entries.is_empty() {
        writeln!(w, "No results in this release.")?;
        return Ok(());
    }
    let metrics = metric_names(lb);
    let mut header: Vec<String> = ["Rank", "Model", "Owner", "Datasets"]
        .map(String::from)
        .to_vec();
    for (i, m) in metrics.iter().enumerate() {
        // Only the primary column has room for the spread; the others show means.
        header.push(if i == 0 && lb.policy.release != Release::Aggregate {
            format!("{m} (mean ± sd)")
        } else {
            m.clone()
        });
    }
    let sizes = size_names(lb);
    header.extend(sizes.iter().map(|n| size_heading(lb, n)));
    let mut t = new_table(header, opts);
    for e in &lb.entries {
        let mut name = plain(&model_label(&e.model));
        if e.reference {
            name.push_str(" (reference)");
        }
        let mut row = vec![rank_text(e), name, plain(&e.owner), e.datasets.to_string()];
        if is_listed(e) {
            for (i, m) in metrics.iter().enumerate() {
                row.push(match e.metrics.get(m) {
                    Some(s) if i == 0 => mean_sd(s),
                    Some(s) => value(s.mean),
                    None => String::new(),
                });
            }
            row.extend(sizes.iter().map(|n| size_value(lb, e, n)));
        } else {
            row.push(below_minimum_text(e, &lb.policy));
        }
        t.add_row(row);
    }
    right_align(&mut t, 3);
    writeln!(w, "{t}")?;

    if lb.policy.release == Release::CrossProduct {
        let labels = dataset_labels(lb);
        let listed: Vec<_> = lb.entries.iter().filter(|e| !e.cells.is_empty()).collect();
        if !labels.is_empty() && !listed.is_empty() {
            writeln!(w)?;
            writeln!(w, "{} per dataset:", plain(&lb.policy.primary_metric))?;
            let mut header = vec!["Model".to_string()];
            header.extend(labels.iter().map(|l| plain(l)));
            let mut m = new_table(header, opts);
            for e in listed {
                let mut row = vec![plain(&model_label(&e.model))];
                for l in &labels {
                    let cell = e.cells.iter().find(|c| &c.dataset == l);
                    row.push(
                        cell.and_then(|c| c.metrics.get(&lb.policy.primary_metric))
                            .map_or_else(|| "–".to_string(), |v| value(*v)),
                    );
                }
                m.add_row(row);
            }
            right_align(&mut m, 1);
            writeln!(w, "{m}")?;
        }
    }

    let failures: Vec<_> = lb
        .entries
        .iter()
        .flat_map(|e| e.failures.iter().map(move |f| (e, f)))
        .collect();
    if !failures.is_empty() {
        writeln!(w)?;
        writeln!(w, "Failure receipts:")?;
        for (e, f) in failures {
            let code = f
                .exit_code
                .map(|c| format!(", exit code {c}"))
                .unwrap_or_default();
            writeln!(
                w,
                "  {} on {}: {} failed{code} ({})",
                plain(&model_label(&e.model)),
                plain(super::failure_dataset(f)),
                plain(&f.stage),
                plain(&f.reason)
            )?;
        }
    }
    if !lb.excluded.is_empty() {
        writeln!(w)?;
        writeln!(w, "Left out of this release:")?;
        for x in &lb.excluded {
            writeln!(w, "  {} ({})", plain(&x.path), x.reason)?;
        }
    }
    writeln!(w)?;
    writeln!(
        w,
        "{}{} result manifest(s) covered; `--format json` lists them.",
        if has_ties(lb) {
            "Ties share a rank (1, 1, 3). "
        } else {
            ""
        },
        lb.covered_digests().len()
    )?;
    Ok(())
}
