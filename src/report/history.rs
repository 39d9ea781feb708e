//! How a benchmark's leaderboard changed between consecutive releases
//! (`cohort leaderboard B --history`): new and dropped models, rank moves and primary-metric
//! changes. [`History`] is data (it serializes to JSON as the machine contract); text and
//! Markdown renderings are methods on it.

use std::collections::BTreeMap;
use std::io::Write;

use serde::Serialize;

use crate::model::{Entry, Leaderboard};

use super::ReportError;
use super::render::{markdown::escape, model_label, plain, value};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct History {
    pub benchmark: String,
    /// Release numbers, oldest first.
    pub releases: Vec<u32>,
    /// One step per pair of consecutive releases, oldest first.
    pub steps: Vec<HistoryStep>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryStep {
    pub from: u32,
    pub to: u32,
    /// When release `to` was made.
    pub created: String,
    /// The primary metric of release `to` (values below are of this metric).
    pub metric: String,
    /// The primary metric of release `from` when the policy changed it (values before are of
    /// that metric then).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metric_before: Option<String>,
    /// In the order of release `to`, then dropped models.
    pub changes: Vec<Change>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChangeKind {
    /// Not in the earlier release.
    New,
    /// Not in the later release.
    Dropped,
    /// Rank changed (including becoming ranked or unranked).
    Moved,
    /// Same rank (the value may still have changed).
    Unchanged,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    /// `name vN`.
    pub model: String,
    pub kind: ChangeKind,
    pub rank_before: Option<u32>,
    pub rank_after: Option<u32>,
    pub value_before: Option<f64>,
    pub value_after: Option<f64>,
}

fn primary(lb: &Leaderboard, e: &Entry) -> Option<f64> {
    e.metrics.get(&lb.policy.primary_metric).map(|s| s.mean)
}

/// The changes between consecutive releases of one benchmark (any order in; sorted by number).
pub fn history(releases: &[Leaderboard]) -> Result<History, ReportError> {
    let mut sorted: Vec<&Leaderboard> = releases.iter().collect();
    sorted.sort_by_key(|l| l.number);
    let benchmark = sorted
        .first()
        .map(|l| l.benchmark.name.clone())
        .unwrap_or_default();
    if let Some(other) = sorted.iter().find(|l| l.benchmark.name != benchmark) {
        return Err(ReportError::History(format!(
            "release {} is of benchmark {}, not {benchmark}",
            other.number, other.benchmark.name
        )));
    }
    if let Some(w) = sorted.windows(2).find(|w| w[0].number == w[1].number) {
        return Err(ReportError::History(format!(
            "release {} of {benchmark} is given twice",
            w[0].number
        )));
    }
    let steps = sorted.windows(2).map(|w| step(w[0], w[1])).collect();
    Ok(History {
        benchmark,
        releases: sorted.iter().map(|l| l.number).collect(),
        steps,
    })
}

fn step(before: &Leaderboard, after: &Leaderboard) -> HistoryStep {
    let old: BTreeMap<String, &Entry> = before
        .entries
        .iter()
        .map(|e| (model_label(&e.model), e))
        .collect();
    let mut seen = Vec::new();
    let mut changes = Vec::new();
    for e in &after.entries {
        let label = model_label(&e.model);
        let prev = old.get(&label);
        let kind = match prev {
            None => ChangeKind::New,
            Some(p) if p.rank == e.rank => ChangeKind::Unchanged,
            Some(_) => ChangeKind::Moved,
        };
        changes.push(Change {
            model: label.clone(),
            kind,
            rank_before: prev.and_then(|p| p.rank),
            rank_after: e.rank,
            value_before: prev.and_then(|p| primary(before, p)),
            value_after: primary(after, e),
        });
        seen.push(label);
    }
    for e in &before.entries {
        let label = model_label(&e.model);
        if !seen.contains(&label) {
            changes.push(Change {
                model: label,
                kind: ChangeKind::Dropped,
                rank_before: e.rank,
                rank_after: None,
                value_before: primary(before, e),
                value_after: None,
            });
        }
    }
    HistoryStep {
        from: before.number,
        to: after.number,
        created: after.created.clone(),
        metric: after.policy.primary_metric.clone(),
        metric_before: (before.policy.primary_metric != after.policy.primary_metric)
            .then(|| before.policy.primary_metric.clone()),
        changes,
    }
}

fn rank(r: Option<u32>) -> String {
    r.map_or_else(|| "–".into(), |r| r.to_string())
}

fn val(v: Option<f64>) -> String {
    v.map_or_else(|| "–".into(), value)
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::New => "new",
            ChangeKind::Dropped => "dropped",
            ChangeKind::Moved => "moved",
            ChangeKind::Unchanged => "unchanged",
        }
    }
}

impl Change {
    /// `1 → 2`, or one rank when it did not move.
    pub fn rank_text(&self) -> String {
        match self.kind {
            ChangeKind::New => rank(self.rank_after),
            ChangeKind::Dropped => rank(self.rank_before),
            _ if self.rank_before == self.rank_after => rank(self.rank_after),
            _ => format!("{} → {}", rank(self.rank_before), rank(self.rank_after)),
        }
    }

    /// `0.790 → 0.792`, or one value.
    pub fn value_text(&self) -> String {
        match self.kind {
            ChangeKind::New => val(self.value_after),
            ChangeKind::Dropped => val(self.value_before),
            _ if self.value_before == self.value_after => val(self.value_after),
            _ => format!("{} → {}", val(self.value_before), val(self.value_after)),
        }
    }
}

impl History {
    /// Plain text for a terminal.
    pub fn write_text(&self, w: &mut dyn Write) -> Result<(), ReportError> {
        if self.steps.is_empty() {
            writeln!(
                w,
                "{}: {} release(s), nothing to compare yet.",
                plain(&self.benchmark),
                self.releases.len()
            )?;
            return Ok(());
        }
        for (i, s) in self.steps.iter().enumerate() {
            if i > 0 {
                writeln!(w)?;
            }
            writeln!(
                w,
                "release {} → {} ({}), ranked by {}{}",
                s.from,
                s.to,
                plain(&s.created),
                plain(&s.metric),
                s.metric_before
                    .as_ref()
                    .map(|m| format!(" (was {})", plain(m)))
                    .unwrap_or_default()
            )?;
            let width = s.changes.iter().map(|c| c.model.len()).max().unwrap_or(0);
            for c in &s.changes {
                writeln!(
                    w,
                    "  {:<9}  {:<width$}  rank {:<7}  {}",
                    c.kind.as_str(),
                    plain(&c.model),
                    c.rank_text(),
                    c.value_text()
                )?;
            }
        }
        Ok(())
    }

    /// Markdown: one table per step.
    pub fn write_markdown(&self, w: &mut dyn Write) -> Result<(), ReportError> {
        writeln!(w, "## {}: leaderboard history", escape(&self.benchmark))?;
        if self.steps.is_empty() {
            writeln!(w)?;
            writeln!(
                w,
                "{} release(s), nothing to compare yet.",
                self.releases.len()
            )?;
        }
        for s in &self.steps {
            writeln!(w)?;
            writeln!(
                w,
                "### Release {} → {} ({})",
                s.from,
                s.to,
                escape(&s.created)
            )?;
            writeln!(w)?;
            writeln!(w, "| Change | Model | Rank | {} |", escape(&s.metric))?;
            writeln!(w, "|---|---|---:|---:|")?;
            for c in &s.changes {
                writeln!(
                    w,
                    "| {} | {} | {} | {} |",
                    c.kind.as_str(),
                    escape(&c.model),
                    c.rank_text(),
                    c.value_text()
                )?;
            }
        }
        Ok(())
    }
}
