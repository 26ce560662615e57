//! RemovePodSandbox of the pod itself (its containers are removed before, by the sandbox flow in
//! `crate::sandbox`): stop it if it is not stopped, unpin its namespaces, unmount its /dev/shm,
//! delete its files, its own cgroup, its record and its name reservation. Idempotent.

use berth_net::netns;

use super::{PodError, PodRecord, PodService, io_err};
use crate::events::EventKind;

impl PodService {
    pub async fn remove(&self, id: &str) -> Result<(), PodError> {
        let Some(pod) = self.find(id)? else {
            return Ok(());
        };
        let _op = pod.op.lock().await;
        self.stop_locked(&pod, std::future::ready(())).await?;
        let record = pod.record();
        let r = record.clone();
        crate::blocking::run(move || -> Result<(), PodError> {
            netns::remove(&r.pinned)?;
            if let Some(shm) = &r.shm {
                netns::unmount_shm(shm).map_err(io_err("unmount the pod's /dev/shm"))?;
            }
            crate::dirs::remove_all(&r.dir)
                .map_err(io_err(format!("remove {}", r.dir.display())))?;
            Ok(())
        })
        .await??;
        // Its containers' cgroups are gone with them; one that lingers (a process runc could
        // not kill) is reported, not allowed to make the pod unremovable.
        if record.owns_cgroup {
            if let Err(e) = self.settings.cgroups.remove(&record.cgroup_parent).await {
                tracing::warn!(pod = %record.id, "removing the pod's cgroup: {e}");
            }
        }
        crate::failpoint::reached("pod-remove-before-commit");
        let id = record.id.clone();
        self.store
            .off_worker(move |s| s.delete::<PodRecord>(&id))
            .await?;
        self.pods.forget(&record.id);
        self.emit(EventKind::Deleted, &record.id);
        tracing::info!(pod = %record.id, "pod sandbox removed");
        Ok(())
    }
}
