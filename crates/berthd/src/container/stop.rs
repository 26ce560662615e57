//! StopContainer: the image's stop signal (SIGTERM by default), SIGKILL once the grace period
//! is over, then wait for the monitor to record the exit. Idempotent.

use std::sync::Arc;
use std::time::Duration;

use super::record::ContainerState;
use super::{Container, ContainerError, ContainerService};

/// How long a SIGKILLed container may take to be reported gone.
const KILL_WAIT: Duration = Duration::from_secs(30);

impl ContainerService {
    pub async fn stop(&self, id: &str, timeout: Duration) -> Result<(), ContainerError> {
        let Some(container) = self.find(id)? else {
            return Ok(());
        };
        let _op = container.op.lock().await;
        self.stop_locked(&container, timeout).await
    }

    pub(super) async fn stop_locked(
        &self,
        container: &Arc<Container>,
        timeout: Duration,
    ) -> Result<(), ContainerError> {
        let record = container.record();
        if !record.state.may_run() {
            return Ok(());
        }
        if record.state == ContainerState::Running && !timeout.is_zero() {
            let signal = if record.stop_signal.is_empty() {
                "TERM"
            } else {
                record.stop_signal.as_str()
            };
            match self
                .runtime(&record.runtime_handler)?
                .kill(&record.id, signal)
                .await
            {
                Ok(()) => {
                    if container.wait_exited(timeout).await {
                        return Ok(());
                    }
                }
                Err(e) => tracing::debug!(container = %record.id, "stop signal: {e}"),
            }
        }
        self.kill_and_wait(container).await
    }

    /// SIGKILL, then wait for the exit to be recorded.
    pub(super) async fn kill_and_wait(
        &self,
        container: &Arc<Container>,
    ) -> Result<(), ContainerError> {
        let record = container.record();
        let runtime = self.runtime(&record.runtime_handler)?;
        if let Err(e) = runtime.kill(&record.id, "KILL").await {
            // Gone already: the exit watch has it (or is about to).
            tracing::debug!(container = %record.id, "SIGKILL: {e}");
        }
        if record.state == ContainerState::Unknown {
            // No monitor is left to record the exit: nothing will flip the flag.
            return Ok(());
        }
        if container.wait_exited(KILL_WAIT).await {
            Ok(())
        } else {
            Err(ContainerError::KillTimedOut {
                id: record.id,
                after: KILL_WAIT,
            })
        }
    }
}
