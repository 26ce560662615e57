//! RemoveContainer: kill it if it may still run, delete the runtime's state, unmount the rootfs,
//! delete its dirs, record and name. Idempotent.

use std::time::Duration;

use super::{ContainerError, ContainerService, io_err};
use crate::events::EventKind;

/// How long a killed container's monitor may take to finish.
const MONITOR_WAIT: Duration = Duration::from_secs(10);

impl ContainerService {
    pub async fn remove(&self, id: &str) -> Result<(), ContainerError> {
        let Some(container) = self.find(id)? else {
            return Ok(());
        };
        let _op = container.op.lock().await;
        let record = container.record();
        if record.state.may_run() {
            self.kill_and_wait(&container).await?;
        }
        self.runtime(&record.runtime_handler)?
            .delete(&record.id)
            .await?;
        if let Some(pid) = record.monitor_pid {
            let _ = tokio::time::timeout(MONITOR_WAIT, crate::monitor::wait_exit(pid)).await;
        }
        let dir = self.container_dir(&record.id);
        let state_dir = self.state_dir_of(&record.id);
        tokio::task::spawn_blocking(move || -> Result<(), ContainerError> {
            crate::rootfs::unmount(&dir.join("rootfs")).map_err(io_err("unmounting the rootfs"))?;
            for d in [&dir, &state_dir] {
                match std::fs::remove_dir_all(d) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        return Err(io_err(format!("removing {}", d.display()))(e));
                    }
                    _ => {}
                }
            }
            Ok(())
        })
        .await
        .map_err(|_| ContainerError::Task)??;
        let id = record.id.clone();
        self.store
            .off_worker(move |s| s.delete::<super::ContainerRecord>(&id))
            .await?;
        self.map_mut().remove(&record.id);
        self.unclaimed.forget_id(&record.id);
        self.events
            .emit(EventKind::Deleted, &record.id, &record.pod_id);
        tracing::info!(container = %record.id, "container removed");
        Ok(())
    }

    /// Removes every container of a pod (RemovePodSandbox).
    pub async fn remove_pod_containers(&self, pod_id: &str) -> Result<(), ContainerError> {
        for id in self.of_pod(pod_id) {
            self.remove(&id).await?;
        }
        Ok(())
    }
}
