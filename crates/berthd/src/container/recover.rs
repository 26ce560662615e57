//! Start-up recovery of containers: a container whose monitor still runs is watched again; one
//! whose monitor finished while berthd was down gets its recorded exit; one with neither is
//! UNKNOWN. Container dirs without a record (a crash mid-create) are torn down.

use std::sync::Arc;

use super::record::{ContainerRecord, ContainerState};
use super::{ContainerError, ContainerService, io_err, new_container};

impl ContainerService {
    pub async fn recover(self: &Arc<Self>) -> Result<(), ContainerError> {
        let records = self.store.list::<ContainerRecord>()?;
        let known: std::collections::HashSet<String> =
            records.iter().map(|r| r.id.clone()).collect();
        for record in records {
            let container = new_container(record.clone());
            self.containers.insert(record.id.clone(), container.clone());
            if !matches!(
                record.state,
                ContainerState::Created | ContainerState::Running
            ) {
                continue;
            }
            let alive = record
                .monitor_pid
                .is_some_and(|pid| crate::monitor::is_alive(pid, &record.id));
            if alive {
                self.watch_exit(container);
            } else {
                // It ended while berthd was away: its exit record says how.
                self.on_monitor_exit(&container).await;
            }
        }
        for dir in [self.paths.containers(), self.paths.container_states()] {
            let entries = match std::fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err("reading the containers dir")(e)),
            };
            for entry in entries.flatten() {
                let id = entry.file_name().to_string_lossy().into_owned();
                if !known.contains(&id) && crate::ids::is_valid(&id) {
                    tracing::warn!(container = %id, "removing a container half made before a crash");
                    self.tear_down_orphan(&id).await;
                }
            }
        }
        Ok(())
    }

    async fn tear_down_orphan(&self, id: &str) {
        for runtime in self.runtimes.values() {
            let _ = runtime.delete(id).await;
        }
        let dir = self.paths.container(id);
        let _ = crate::rootfs::unmount_all_under(&dir);
        let _ = crate::dirs::remove_all(&dir);
        let _ = crate::dirs::remove_all(&self.state_dir_of(id));
    }
}
