//! How core operations report progress without touching the terminal: the CLI implements
//! [`Reporter`] with indicatif bars, tests and scripts use [`Silent`] or a recording reporter.

use std::sync::atomic::{AtomicU64, Ordering};

/// Identifies one task started with [`Reporter::begin`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TaskId(pub u64);

impl TaskId {
    /// A fresh id, unique within the process.
    pub fn next() -> TaskId {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        TaskId(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

/// Progress sink for long operations. Every method has a no-op default so a reporter only
/// implements what it draws.
pub trait Reporter: Send + Sync {
    /// A unit of work began. `total` is known for byte or item counts, `None` for a spinner.
    fn begin(&self, label: &str, total: Option<u64>) -> TaskId {
        let _ = (label, total);
        TaskId::next()
    }
    /// `delta` more units of `task` are done.
    fn advance(&self, task: TaskId, delta: u64) {
        let _ = (task, delta);
    }
    /// The latest line a task printed (a container's log, a git step).
    fn line(&self, task: TaskId, line: &str) {
        let _ = (task, line);
    }
    /// The task ended; `ok` says whether it succeeded.
    fn end(&self, task: TaskId, ok: bool) {
        let _ = (task, ok);
    }
    /// A status message worth showing to the user (stderr, silenced by `-q`).
    fn note(&self, message: &str) {
        let _ = message;
    }
    /// A warning: something the user should know even with `-q`.
    fn warn(&self, message: &str) {
        let _ = message;
    }
}

/// A reporter that reports nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;

impl Reporter for Silent {}

/// A cancellation flag shared between the CLI (which sets it on Ctrl-C) and long-running core
/// operations (which poll it, stop their container and clean up).
#[derive(Debug, Clone, Default)]
pub struct Cancel(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Cancel {
    pub fn new() -> Cancel {
        Cancel::default()
    }
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}
