//! RemovePodSandbox: stop the pod if it is not stopped, unpin its namespaces, unmount its
//! /dev/shm, delete its files, its own cgroup, its record and its name reservation. Idempotent.

use berth_net::netns;

use super::{PodError, PodService, io_err};
use crate::events::EventKind;

impl PodService {
    pub async fn remove(&self, id: &str, pod_cidrs: Vec<String>) -> Result<(), PodError> {
        let Some(pod) = self.find(id)? else {
            return Ok(());
        };
        let _op = pod.op.lock().await;
        self.stop_locked(&pod, pod_cidrs).await?;
        let record = pod.record();
        let r = record.clone();
        tokio::task::spawn_blocking(move || -> Result<(), PodError> {
            netns::remove(&r.pinned)?;
            if let Some(shm) = &r.shm {
                netns::unmount_shm(shm).map_err(io_err("unmount the pod's /dev/shm"))?;
            }
            match std::fs::remove_dir_all(&r.dir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(io_err(format!("remove {}", r.dir.display()))(e));
                }
                _ => {}
            }
            // Its containers' cgroups are gone with them; one that lingers (a process runc
            // could not kill) is reported, not allowed to make the pod unremovable.
            if r.owns_cgroup {
                if let Err(e) = crate::cgroups::remove(&r.cgroup_parent) {
                    tracing::warn!(pod = %r.id, "removing the pod's cgroup: {e}");
                }
            }
            Ok(())
        })
        .await
        .map_err(|_| PodError::Task)??;
        let id = record.id.clone();
        self.store
            .off_worker(move |s| s.delete::<super::PodRecord>(&id))
            .await?;
        self.map_mut().remove(&record.id);
        self.unclaimed.forget_id(&record.id);
        self.emit(EventKind::Deleted, &record.id);
        tracing::info!(pod = %record.id, "pod sandbox removed");
        Ok(())
    }
}
