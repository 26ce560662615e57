//! StopPodSandbox of the pod itself (its containers are stopped before, by the sandbox flow in
//! `crate::sandbox`): kill its infra process, tear down its network (CNI DEL, which releases its
//! IPs), mark it NOTREADY. Idempotent: an unknown or already stopped pod is a success.

use std::sync::Arc;

use super::record::PodState;
use super::{Pod, PodError, PodService};
use crate::events::EventKind;

impl PodService {
    pub async fn stop(&self, id: &str) -> Result<(), PodError> {
        let Some(pod) = self.find(id)? else {
            return Ok(());
        };
        let _op = pod.op.lock().await;
        self.stop_locked(&pod).await
    }

    /// Stops a pod whose operation lock the caller holds.
    pub(super) async fn stop_locked(&self, pod: &Arc<Pod>) -> Result<(), PodError> {
        let record = pod.record();
        if let Some(infra) = record.infra {
            infra.kill().await?;
            crate::failpoint::reached("pod-stop-after-infra");
        }
        if record.network.attached {
            if let (Some(list), Some(netns_path)) = (&record.network.list, &record.pinned.net) {
                let att = self.attachment(&record, netns_path.clone());
                self.cni
                    .del(list, &att, record.network.result.as_ref())
                    .await?;
                crate::failpoint::reached("pod-stop-after-cni-del");
            }
        }
        if record.state != PodState::NotReady || record.network.attached || record.infra.is_some() {
            pod.update(&self.store, |r| {
                r.state = PodState::NotReady;
                r.network.attached = false;
                r.infra = None;
            })
            .await?;
            self.emit(EventKind::Stopped, &record.id);
            tracing::info!(pod = %record.id, "pod sandbox stopped");
        }
        Ok(())
    }
}
