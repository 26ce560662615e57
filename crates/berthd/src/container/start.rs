//! StartContainer: `runc start`, then RUNNING (unless the exit watch saw it end already).

use super::record::ContainerState;
use super::{ContainerError, ContainerService};

impl ContainerService {
    pub async fn start(&self, id: &str) -> Result<(), ContainerError> {
        let container = self.get(id)?;
        let _op = container.op.lock().await;
        let record = container.record();
        if !record.state.can_start() {
            return Err(ContainerError::WrongState {
                id: record.id,
                state: record.state,
                wanted: "created (a container is started once)",
            });
        }
        let started_at = crate::clock::now_nanos();
        self.runtime(&record.runtime_handler)?
            .start(&record.id)
            .await?;
        crate::failpoint::reached("container-start-before-commit");
        self.update(&container, |r| {
            r.started_at = started_at;
            // A container that exited at once was already recorded EXITED by its exit watch.
            if r.state == ContainerState::Created {
                r.state = ContainerState::Running;
            }
        })
        .await?;
        tracing::info!(container = %record.id, "container started");
        Ok(())
    }
}
