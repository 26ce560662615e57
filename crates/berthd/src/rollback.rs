//! Undo for multi-step creates: each step that succeeds pushes its undo; on failure the undos run
//! in reverse, each with its own time budget, and a failing undo is logged with the error that
//! caused the rollback; on success the create commits and the undos are dropped.

use std::fmt::Display;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// Why an undo failed: it is only logged, beside the error that caused the rollback.
pub type UndoError = Box<dyn std::error::Error + Send + Sync>;

type Undo = Pin<Box<dyn Future<Output = Result<(), UndoError>> + Send>>;
type UndoStep = Box<dyn FnOnce() -> Undo + Send>;

/// How long one undo step may take.
const STEP_BUDGET: Duration = Duration::from_secs(60);

#[must_use = "a rollback must be committed or undone"]
pub struct Rollback {
    steps: Vec<(&'static str, UndoStep)>,
}

impl std::fmt::Debug for Rollback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let labels: Vec<_> = self.steps.iter().map(|(l, _)| *l).collect();
        write!(f, "Rollback({labels:?})")
    }
}

impl Default for Rollback {
    fn default() -> Self {
        Self::new()
    }
}

impl Rollback {
    pub fn new() -> Rollback {
        Rollback { steps: Vec::new() }
    }

    /// Registers the undo of a step just taken (or about to be taken, when the step may leave
    /// something behind even if it fails, as a CNI ADD may).
    pub fn push<F, Fut>(&mut self, label: &'static str, undo: F)
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), UndoError>> + Send + 'static,
    {
        self.steps.push((label, Box::new(move || Box::pin(undo()))));
    }

    /// Takes over the undos of steps taken beside this rollback's (concurrently): they are undone
    /// first.
    pub fn absorb(&mut self, mut other: Rollback) {
        self.steps.append(&mut other.steps);
    }

    /// Runs every undo, last first.
    pub async fn undo(mut self, cause: &(dyn Display + Sync)) {
        while let Some((label, step)) = self.steps.pop() {
            match tokio::time::timeout(STEP_BUDGET, step()).await {
                Ok(Ok(())) => tracing::debug!("rolled back: {label}"),
                Ok(Err(e)) => tracing::warn!(
                    "rollback of `{label}` failed: {e} (rolling back after: {cause})"
                ),
                Err(_) => tracing::warn!(
                    "rollback of `{label}` took over {STEP_BUDGET:?} (rolling back after: {cause})"
                ),
            }
        }
    }

    /// The create succeeded: nothing is undone.
    pub fn commit(mut self) {
        self.steps.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[tokio::test]
    async fn undos_run_last_first_and_commit_runs_none() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut rb = Rollback::new();
        for n in 1..=3 {
            let log = log.clone();
            rb.push("step", move || async move {
                log.lock().unwrap().push(n);
                if n == 2 { Err("broken".into()) } else { Ok(()) }
            });
        }
        rb.undo(&"test").await;
        assert_eq!(
            *log.lock().unwrap(),
            [3, 2, 1],
            "a failing undo does not stop the others"
        );

        let mut rb = Rollback::new();
        let l = log.clone();
        rb.push("never", move || async move {
            l.lock().unwrap().push(99);
            Ok(())
        });
        rb.commit();
        assert_eq!(log.lock().unwrap().len(), 3);
    }
}
