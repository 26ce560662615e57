//! The pod-wide flows: RunPodSandbox, with what the pod asks of its runtime handler checked
//! first; StopPodSandbox and RemovePodSandbox, a pod's containers first (the CRI says both verbs
//! end them, forcibly), all at once, then the pod. Stop and Remove are idempotent: an unknown
//! pod is a success, and a retry after a failure half-way finishes the job.

use std::sync::Arc;

use crate::container::{ContainerError, ContainerService};
use crate::pod::{PodError, PodService, PodSpec};

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error(transparent)]
    Pod(#[from] PodError),
    #[error(transparent)]
    Container(#[from] ContainerError),
}

#[derive(Debug)]
pub struct SandboxService {
    pods: Arc<PodService>,
    containers: Arc<ContainerService>,
}

impl SandboxService {
    pub fn new(pods: Arc<PodService>, containers: Arc<ContainerService>) -> SandboxService {
        SandboxService { pods, containers }
    }

    /// Runs a pod whose handler can give it what it asks for.
    pub async fn run(&self, spec: PodSpec) -> Result<String, SandboxError> {
        if spec.security.user_namespace.is_some() {
            let handler = self.pods.handler_of(&spec.runtime_handler)?;
            if !self.containers.features_of(&handler).await?.user_namespaces {
                return Err(PodError::Invalid(format!(
                    "runtime handler `{handler}` cannot give pods user namespaces on this node"
                ))
                .into());
            }
        }
        Ok(self.pods.run(spec).await?)
    }

    /// Stops the pod's containers (SIGKILL to all at once), then the pod: its infra process and
    /// network go as soon as the last container is dead, while the containers' exits are being
    /// recorded. Creates in flight finish first, and none starts until it is done.
    pub async fn stop(&self, id: &str) -> Result<(), SandboxError> {
        let Some(pod) = self.pods.find(id)? else {
            return Ok(());
        };
        let _closed = pod.extra.close().await;
        let id = pod.with(|r| r.id.clone());
        let killed = self
            .containers
            .kill_all(&self.containers.of_pod(&id))
            .await?;
        crate::failpoint::reached("pod-stop-after-containers");
        let recorded = self
            .pods
            .stop_beside(&id, self.containers.wait_recorded(&killed))
            .await?;
        Ok(recorded?)
    }

    /// Removes the pod's containers, all at once, then the pod (creates wait as for
    /// [`Self::stop`]).
    pub async fn remove(&self, id: &str) -> Result<(), SandboxError> {
        let Some(pod) = self.pods.find(id)? else {
            return Ok(());
        };
        let _closed = pod.extra.close().await;
        let id = pod.with(|r| r.id.clone());
        let containers = self.containers.of_pod(&id);
        let removals = containers.iter().map(|c| self.containers.remove(c));
        for removed in futures_util::future::join_all(removals).await {
            removed?;
        }
        crate::failpoint::reached("pod-remove-after-containers");
        Ok(self.pods.remove(&id).await?)
    }
}
