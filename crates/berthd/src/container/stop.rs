//! StopContainer: the image's stop signal (SIGTERM by default), SIGKILL once the grace period
//! is over, then wait for the monitor to record the exit. Idempotent. And the killing of a
//! stopping pod's containers, all at once.

use std::sync::Arc;
use std::time::Duration;

use super::record::{ContainerRecord, ContainerState};
use super::{Container, ContainerError, ContainerService};
use crate::monitor::MonitorClient;

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
            match self.signal(&record, signal).await {
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

    /// Sends `signal` (as runc names it) to the container's process: through its monitor's
    /// pidfd when it is a standard signal and the monitor answers, which starts no process and
    /// can never hit a recycled PID; else with `runc kill` (real-time signals, a container
    /// whose monitor is gone).
    async fn signal(&self, record: &ContainerRecord, signal: &str) -> Result<(), ContainerError> {
        if let Some(number) = crate::signals::standard_number(signal) {
            match MonitorClient::new(&self.state_dir_of(&record.id))
                .signal(number)
                .await
            {
                Ok(()) => return Ok(()),
                Err(e) => tracing::debug!(
                    container = %record.id,
                    "signal {signal} through the monitor: {e}; trying runc kill"
                ),
            }
        }
        self.runtime(&record.runtime_handler)?
            .kill(&record.id, signal)
            .await
            .map_err(ContainerError::from)
    }

    /// SIGKILL, then wait for the exit to be recorded.
    pub(super) async fn kill_and_wait(
        &self,
        container: &Arc<Container>,
    ) -> Result<(), ContainerError> {
        if self.kill(container).await? {
            wait_recorded(container).await?;
        }
        Ok(())
    }

    /// SIGKILL, then wait for the process to be dead (its exit may not be recorded yet); false
    /// when no monitor is left to record it (UNKNOWN), so there is nothing to wait for.
    async fn kill(&self, container: &Arc<Container>) -> Result<bool, ContainerError> {
        let record = container.record();
        if let Err(e) = self.signal(&record, "KILL").await {
            // Gone already: the exit watch has it (or is about to).
            tracing::debug!(container = %record.id, "SIGKILL: {e}");
        }
        if record.state == ContainerState::Unknown {
            return Ok(false);
        }
        if container.wait_dead(KILL_WAIT).await {
            Ok(true)
        } else {
            Err(ContainerError::KillTimedOut {
                id: record.id,
                after: KILL_WAIT,
            })
        }
    }

    /// Kills the containers `ids` of a stopping pod all at once (a pod stop gives no grace
    /// period) and returns once every process is dead; the containers whose exits are still to
    /// be recorded come back, for [`Self::wait_recorded`].
    pub async fn kill_all(&self, ids: &[String]) -> Result<Vec<Arc<Container>>, ContainerError> {
        let kills = ids.iter().map(|id| async move {
            let Some(container) = self.find(id)? else {
                return Ok(None);
            };
            let to_record = {
                let _op = container.op.lock().await;
                container.record().state.may_run() && self.kill(&container).await?
            };
            Ok(to_record.then_some(container))
        });
        let killed: Vec<Option<Arc<Container>>> = futures_util::future::join_all(kills)
            .await
            .into_iter()
            .collect::<Result<_, ContainerError>>()?;
        Ok(killed.into_iter().flatten().collect())
    }

    /// Waits until the exits of `containers` (dead already) are recorded.
    pub async fn wait_recorded(&self, containers: &[Arc<Container>]) -> Result<(), ContainerError> {
        for container in containers {
            wait_recorded(container).await?;
        }
        Ok(())
    }
}

async fn wait_recorded(container: &Container) -> Result<(), ContainerError> {
    if container.wait_exited(KILL_WAIT).await {
        Ok(())
    } else {
        Err(ContainerError::KillTimedOut {
            id: container.with(|r| r.id.clone()),
            after: KILL_WAIT,
        })
    }
}
