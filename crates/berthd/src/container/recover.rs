//! Start-up recovery of containers: a container whose monitor still runs is watched again (and
//! one recorded CREATED that runc says runs, a crash having come between `runc start` and its
//! record, is RUNNING); one whose monitor finished while berthd was down gets its recorded exit;
//! one with neither is UNKNOWN. What a crash mid-create left with no record is torn down: the
//! monitor and runc processes still working for it, the runtime's container, its mounts and
//! dirs.

use std::collections::HashSet;
use std::sync::Arc;

use super::record::{ContainerRecord, ContainerState};
use super::{ContainerError, ContainerService, io_err, new_container};
use crate::procs::Process;

impl ContainerService {
    pub async fn recover(self: &Arc<Self>) -> Result<(), ContainerError> {
        let records = self.store.list::<ContainerRecord>()?;
        let known: HashSet<String> = records.iter().map(|r| r.id.clone()).collect();
        let states = self.paths.container_states();
        let ids = known.clone();
        crate::blocking::run(move || kill_orphan_processes(&states, &ids)).await?;
        let mut running_in_runtime = HashSet::new();
        for runtime in self.runtimes.values() {
            let listed = match runtime.list().await {
                Ok(listed) => listed,
                Err(e) => {
                    tracing::warn!(handler = %runtime.handler, "listing the runtime's containers: {e}");
                    continue;
                }
            };
            for (id, status) in listed {
                if !known.contains(&id) {
                    tracing::warn!(container = %id, handler = %runtime.handler, "deleting a runtime container no record names");
                    let _ = runtime.delete(&id).await;
                } else if status == "running" {
                    running_in_runtime.insert(id);
                }
            }
        }
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
                if record.state == ContainerState::Created
                    && running_in_runtime.contains(&record.id)
                {
                    tracing::info!(container = %record.id, "started before a crash; now RUNNING");
                    let now = crate::clock::now_nanos();
                    self.update(&container, |r| {
                        r.state = ContainerState::Running;
                        r.started_at = now;
                    })
                    .await?;
                }
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

/// Kills the processes that still work for containers with no record: their monitors, and runc
/// creates with what they started (both run in the container's state dir). Blocking.
fn kill_orphan_processes(states: &std::path::Path, known: &HashSet<String>) {
    for process in Process::all() {
        let Some(cwd) = process.cwd() else { continue };
        let Ok(rest) = cwd.strip_prefix(states) else {
            continue;
        };
        let Some(id) = rest.iter().next().and_then(|c| c.to_str()) else {
            continue;
        };
        if !known.contains(id) && crate::ids::is_valid(id) {
            tracing::warn!(container = %id, pid = process.0, "killing a process of a container half made before a crash");
            process.kill();
        }
    }
}
