//! How a run's steps are shown: one line per step (status, cube, task, duration, exit code,
//! log path), then the failing step's reason and the tail of its log.

use cohort::model::StepStatus;
use cohort::workflow::compat::Steps;

use super::ui::Ui;

pub fn print(ui: &Ui, steps: &Steps) {
    let mut t = super::table::new(&["step", "cube", "status", "time", "exit", "log"]);
    for s in &steps.steps {
        let r = &s.report;
        let status = match r.status {
            StepStatus::Ok => "ok",
            StepStatus::Failed => "FAILED",
            StepStatus::Skipped => "skipped",
        };
        t.add_row(vec![
            r.step.clone(),
            r.cube.clone(),
            status.to_string(),
            format!("{:.1}s", r.duration_ms as f64 / 1000.0),
            r.exit_code.map(|c| c.to_string()).unwrap_or_default(),
            s.log
                .as_ref()
                .map(|p| super::table::shorten_middle(&p.display().to_string(), 48))
                .unwrap_or_default(),
        ]);
    }
    eprintln!("{t}");
    if let Some(f) = steps.failed() {
        if let Some(e) = &f.error {
            ui.warn(format!("{} ({}) failed: {e}", f.report.step, f.report.cube));
        }
        if let Some(log) = &f.log
            && let Ok(text) = std::fs::read_to_string(log)
        {
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(15)..];
            if !tail.is_empty() {
                eprintln!("last lines of {}:", log.display());
                for l in tail {
                    eprintln!("  | {l}");
                }
            }
        }
    }
}
