//! UpdatePodSandboxResources (in-place pod resize): the pod's cgroup gets the new limits, and the
//! record keeps them. kubelet treats the call as best effort, and sizes the cgroups it made itself
//! as well; a value the kernel refuses is the caller's error.

use super::{PodError, PodService};
use crate::spec::ResourceLimits;

impl PodService {
    pub async fn update_resources(&self, id: &str, limits: ResourceLimits) -> Result<(), PodError> {
        let pod = self.get(id)?;
        let _op = pod.op.lock().await;
        let cgroup = pod.with(|r| r.cgroup_parent.clone());
        self.settings.cgroups.apply(&cgroup, &limits).await?;
        pod.update(&self.store, |r| r.resources = Some(limits))
            .await?;
        Ok(())
    }
}
