//! The one gate for output: data to stdout, status and warnings to stderr, progress bars only
//! on a terminal, `-q` silences status, NO_COLOR honoured.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Duration;

use cohort::progress::{Reporter, TaskId};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Debug, Clone, Copy)]
pub struct Ui {
    pub quiet: bool,
    pub verbose: bool,
    pub json: bool,
    pub color: bool,
    pub progress: bool,
}

impl Ui {
    pub fn new(quiet: bool, verbose: bool, json: bool) -> Ui {
        let tty = std::io::stderr().is_terminal();
        Ui {
            quiet,
            verbose,
            json,
            color: tty && std::env::var_os("NO_COLOR").is_none(),
            progress: tty && !quiet,
        }
    }

    /// A status line on stderr (silenced by `-q`).
    pub fn status(&self, msg: impl AsRef<str>) {
        if !self.quiet {
            eprintln!("{}", msg.as_ref());
        }
    }

    /// A warning on stderr, even with `-q`.
    pub fn warn(&self, msg: impl AsRef<str>) {
        eprintln!("{} {}", self.paint("warning:", "33"), msg.as_ref());
    }

    /// Data on stdout.
    pub fn out(&self, msg: impl AsRef<str>) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", msg.as_ref());
    }

    /// JSON data on stdout, pretty-printed.
    pub fn json<T: serde::Serialize>(&self, value: &T) {
        // Straight to stdout: a listing of tens of thousands of rows is never held as text.
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        match serde_json::to_writer_pretty(&mut out, value) {
            // Like `out`: a closed stdout (`| head`) is not an error of the command.
            Err(e) if !e.is_io() => panic!("json output structs serialize: {e}"),
            _ => {
                let _ = writeln!(out);
                let _ = out.flush();
            }
        }
    }

    pub fn paint(&self, text: &str, ansi: &str) -> String {
        if self.color {
            format!("\x1b[{ansi}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    /// A reporter drawing indicatif bars on stderr (or plain notes when not a terminal).
    pub fn reporter(&self) -> BarReporter {
        BarReporter::new(*self)
    }
}

/// indicatif implementation of the core's [`Reporter`].
pub struct BarReporter {
    ui: Ui,
    multi: MultiProgress,
    bars: Mutex<HashMap<TaskId, ProgressBar>>,
}

impl BarReporter {
    fn new(ui: Ui) -> BarReporter {
        let target = if ui.progress {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        BarReporter {
            ui,
            multi: MultiProgress::with_draw_target(target),
            bars: Mutex::new(HashMap::new()),
        }
    }
}

impl Reporter for BarReporter {
    fn begin(&self, label: &str, total: Option<u64>) -> TaskId {
        let id = TaskId::next();
        let bar = match total {
            Some(n) => {
                let pb = ProgressBar::new(n);
                pb.set_style(
                    ProgressStyle::with_template(
                        "{spinner} {prefix} [{bar:30}] {bytes}/{total_bytes} {msg}",
                    )
                    .expect("static template")
                    .progress_chars("=> "),
                );
                pb
            }
            None => {
                let pb = ProgressBar::new_spinner();
                pb.set_style(
                    ProgressStyle::with_template("{spinner} {prefix} [{elapsed}] {wide_msg}")
                        .expect("static template"),
                );
                pb.enable_steady_tick(Duration::from_millis(120));
                pb
            }
        };
        let bar = self.multi.add(bar);
        bar.set_prefix(label.to_string());
        self.bars.lock().expect("bars lock").insert(id, bar);
        id
    }

    fn advance(&self, task: TaskId, delta: u64) {
        if let Some(b) = self.bars.lock().expect("bars lock").get(&task) {
            b.inc(delta);
        }
    }

    fn line(&self, task: TaskId, line: &str) {
        if self.ui.verbose {
            if self.ui.progress {
                let _ = self.multi.println(format!("  | {line}"));
            } else {
                // indicatif prints nothing through a hidden draw target (no terminal, or
                // --quiet): logs asked for with -v still reach stderr, e.g. in CI logs.
                eprintln!("  | {line}");
            }
        }
        if let Some(b) = self.bars.lock().expect("bars lock").get(&task) {
            b.set_message(line.chars().take(120).collect::<String>());
        }
    }

    fn end(&self, task: TaskId, ok: bool) {
        if let Some(b) = self.bars.lock().expect("bars lock").remove(&task) {
            let label = b.prefix();
            let elapsed = b.elapsed();
            b.finish_and_clear();
            self.multi.remove(&b);
            // Quick steps stay silent; slow ones leave a line saying how long they took.
            if !self.ui.quiet && ok && elapsed.as_secs_f64() >= 1.0 {
                let line = format!(
                    "{} {label} ({:.1}s)",
                    self.ui.paint("done", "32"),
                    elapsed.as_secs_f64()
                );
                if self.ui.progress {
                    let _ = self.multi.println(line);
                } else {
                    eprintln!("{line}");
                }
            }
        }
    }

    fn note(&self, message: &str) {
        if !self.ui.quiet {
            if self.ui.progress {
                let _ = self.multi.println(message);
            } else {
                eprintln!("{message}");
            }
        }
    }

    fn warn(&self, message: &str) {
        let text = format!("{} {message}", self.ui.paint("warning:", "33"));
        if self.ui.progress {
            let _ = self.multi.println(text);
        } else {
            eprintln!("{text}");
        }
    }
}
