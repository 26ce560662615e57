//! RemoveContainer: kill it if it may still run, delete the runtime's state (berth itself where
//! that is safe, else `runc delete`), unmount the rootfs and image volumes, delete its dirs,
//! record and name; image GC may then reclaim the snapshots of removed images. Idempotent.

use std::time::Duration;

use super::{ContainerError, ContainerRecord, ContainerService, io_err};
use crate::events::EventKind;
use crate::oci::NativeDelete;

/// How long what a removal killed may take to leave the container's cgroup.
const CGROUP_SETTLE: Duration = Duration::from_secs(5);

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
        self.delete_runtime_state(&record).await?;
        crate::failpoint::reached("container-remove-after-runtime-delete");
        if let Some(pid) = record.monitor_pid {
            let _ = tokio::time::timeout(MONITOR_WAIT, crate::monitor::wait_exit(pid)).await;
        }
        let (dir, state_dir) = (
            self.paths.container(&record.id),
            self.state_dir_of(&record.id),
        );
        crate::blocking::run(move || -> Result<(), ContainerError> {
            crate::rootfs::unmount_all_under(&dir)
                .map_err(io_err("unmounting the rootfs and image volumes"))?;
            for d in [&dir, &state_dir] {
                crate::dirs::remove_all(d).map_err(io_err(format!("removing {}", d.display())))?;
            }
            Ok(())
        })
        .await??;
        crate::failpoint::reached("container-remove-before-commit");
        let id = record.id.clone();
        self.store
            .off_worker(move |s| s.delete::<ContainerRecord>(&id))
            .await?;
        self.containers.forget(&record.id);
        self.events
            .emit(EventKind::Deleted, &record.id, &record.pod_id);
        tracing::info!(container = %record.id, "container removed");
        self.images.reclaim();
        Ok(())
    }

    /// Deletes what the runtime keeps of a dead container: without starting runc where berth
    /// reads the runtime's state and nothing but its cgroups and state dir is left to remove
    /// (see `crate::oci::delete_stopped`), else with `runc delete --force`, whose kill of what
    /// is left can still be settling when it gives up on the cgroup (a straggler reaped by its
    /// pod's infra process): berth then removes the cgroup once it is empty.
    async fn delete_runtime_state(&self, record: &ContainerRecord) -> Result<(), ContainerError> {
        let runtime = self.runtime(&record.runtime_handler)?;
        if runtime.native && !self.systemd_cgroup {
            let (native, id) = (runtime.clone(), record.id.clone());
            match crate::blocking::run(move || crate::oci::delete_stopped(&native, &id)).await? {
                NativeDelete::Done => return Ok(()),
                NativeDelete::NotSafe(why) => {
                    tracing::debug!(container = %record.id, "runc delete, since {why}");
                }
            }
        }
        runtime.delete(&record.id).await?;
        if !self.systemd_cgroup && !record.cgroup.is_empty() {
            let cgroup = record.cgroup.clone();
            let removed = crate::blocking::run(move || {
                crate::cgroups::remove_when_empty(&cgroup, CGROUP_SETTLE)
            })
            .await?;
            if let Err(e) = removed {
                tracing::warn!(container = %record.id, "removing its cgroup: {e}");
            }
        }
        Ok(())
    }
}
