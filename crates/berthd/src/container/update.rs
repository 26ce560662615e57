//! UpdateContainerResources (`runc update`, the new limits kept and reported) and
//! ReopenContainerLog (the monitor reopens the log file kubelet just renamed).

use super::record::ContainerState;
use super::{ContainerError, ContainerService};
use crate::monitor::MonitorClient;
use crate::oci::OciError;
use crate::spec::ResourceLimits;

impl ContainerService {
    pub async fn update_resources(
        &self,
        id: &str,
        limits: ResourceLimits,
    ) -> Result<(), ContainerError> {
        let container = self.get(id)?;
        let _op = container.op.lock().await;
        let record = container.record();
        if !matches!(
            record.state,
            ContainerState::Created | ContainerState::Running
        ) {
            return Err(ContainerError::WrongState {
                id: record.id,
                state: record.state,
                wanted: "created or running",
            });
        }
        let json =
            serde_json::to_vec(&limits.to_oci(self.cgroups)).map_err(|e| ContainerError::Io {
                what: "encoding resources".into(),
                source: std::io::Error::other(e),
            })?;
        self.runtime(&record.runtime_handler)?
            .update(&record.id, &json)
            .await
            .map_err(|e| match e {
                // Each value passed the CRI's checks; what the kernel refuses of them it refuses
                // for this container as it is (a memory limit below its usage, a cpuset outside
                // its parent's).
                OciError::Call { .. } => ContainerError::LimitsRefused(e),
                other => other.into(),
            })?;
        self.update(&container, |r| {
            // runc cannot change the OOM score of a running process; keep the one it has.
            let oom_score_adj = r.resources.oom_score_adj;
            r.resources = limits;
            r.resources.oom_score_adj = oom_score_adj;
        })
        .await?;
        Ok(())
    }

    pub async fn reopen_log(&self, id: &str) -> Result<(), ContainerError> {
        let record = self.get(id)?.record();
        if record.state != ContainerState::Running {
            return Err(ContainerError::WrongState {
                id: record.id,
                state: record.state,
                wanted: "running (only its log is open)",
            });
        }
        MonitorClient::new(&self.state_dir_of(&record.id))
            .reopen_log()
            .await
            .map_err(ContainerError::ReopenLog)
    }
}
