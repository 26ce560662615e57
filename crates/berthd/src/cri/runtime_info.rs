//! Version, Status, RuntimeConfig and UpdateRuntimeConfig.

use std::collections::HashMap;

use berth_cri::v1 as cri;
use tonic::Status;

use super::Cri;
use crate::config::CgroupDriver;
use crate::health::Condition;

/// The version of the kubelet runtime API this server speaks, as containerd and CRI-O answer it.
const KUBELET_API_VERSION: &str = "0.1.0";

impl Cri {
    pub(super) async fn version_of(
        &self,
        _req: cri::VersionRequest,
    ) -> Result<cri::VersionResponse, Status> {
        Ok(cri::VersionResponse {
            version: KUBELET_API_VERSION.into(),
            runtime_name: "berth".into(),
            runtime_version: env!("CARGO_PKG_VERSION").into(),
            runtime_api_version: "v1".into(),
        })
    }

    pub(super) async fn status_of(
        &self,
        req: cri::StatusRequest,
    ) -> Result<cri::StatusResponse, Status> {
        let svc = &self.svc;
        let runtime = match svc.default_runtime() {
            Some(r) => svc.health.runtime(r, &svc.paths.root).await,
            None => Condition::not_ready("NoDefaultRuntime", "no default runtime handler".into()),
        };
        let network = match svc.pods.network_status().await {
            Ok(()) => Condition::ready(),
            Err(e) => Condition::not_ready("NetworkPluginNotReady", e.to_string()),
        };
        let condition = |kind: &str, c: Condition| cri::RuntimeCondition {
            r#type: kind.into(),
            status: c.ready,
            reason: c.reason,
            message: c.message,
        };
        let mut info = HashMap::new();
        // Info values are JSON, as the CRI API asks.
        if req.verbose {
            info.insert("config".to_owned(), svc.config.to_json());
            if let Some(cidr) = svc.pods.pod_cidr()? {
                info.insert(
                    "podCIDR".to_owned(),
                    serde_json::Value::from(cidr).to_string(),
                );
            }
        }
        let mut runtime_handlers = Vec::new();
        for (name, runtime) in &svc.runtimes {
            let features = svc.containers.handler_features(runtime).await;
            let features = Some(cri::RuntimeHandlerFeatures {
                recursive_read_only_mounts: features.recursive_read_only,
                user_namespaces: features.user_namespaces,
            });
            // The empty name stands for the default handler (CRI API comment on
            // RuntimeHandler.name).
            if *name == svc.config.default_runtime {
                runtime_handlers.push(cri::RuntimeHandler {
                    name: String::new(),
                    features,
                });
            }
            runtime_handlers.push(cri::RuntimeHandler {
                name: name.clone(),
                features,
            });
        }
        Ok(cri::StatusResponse {
            status: Some(cri::RuntimeStatus {
                conditions: vec![
                    condition("RuntimeReady", runtime),
                    condition("NetworkReady", network),
                ],
            }),
            info,
            runtime_handlers,
            features: Some(cri::RuntimeFeatures {
                // The image's groups are merged or not as the policy says (spec/user.rs), and
                // ContainerStatus.user reports the groups the process was given.
                supplemental_groups_policy: true,
                user_namespaces_host_network: false,
            }),
        })
    }

    pub(super) async fn runtime_config_of(
        &self,
        _req: cri::RuntimeConfigRequest,
    ) -> Result<cri::RuntimeConfigResponse, Status> {
        let cgroup_driver = match self.svc.config.cgroup_driver {
            CgroupDriver::Cgroupfs => cri::CgroupDriver::Cgroupfs,
            CgroupDriver::Systemd => cri::CgroupDriver::Systemd,
        };
        Ok(cri::RuntimeConfigResponse {
            linux: Some(cri::LinuxRuntimeConfiguration {
                cgroup_driver: cgroup_driver as i32,
            }),
        })
    }

    pub(super) async fn update_runtime_config_of(
        &self,
        req: cri::UpdateRuntimeConfigRequest,
    ) -> Result<cri::UpdateRuntimeConfigResponse, Status> {
        let cidr = req
            .runtime_config
            .and_then(|c| c.network_config)
            .map(|n| n.pod_cidr)
            .unwrap_or_default();
        // An empty CIDR means "no change" (kubelet sends the full config each time).
        if !cidr.is_empty() {
            validate_cidrs(&cidr)?;
            self.svc.pods.set_pod_cidr(cidr).await?;
        }
        Ok(cri::UpdateRuntimeConfigResponse {})
    }
}

/// kubelet sends one CIDR, or a comma-separated pair for dual stack.
fn validate_cidrs(text: &str) -> Result<(), Status> {
    for cidr in text.split(',') {
        let bad =
            || Status::invalid_argument(format!("pod CIDR `{cidr}` is not an address/prefix"));
        let (addr, prefix) = cidr.trim().split_once('/').ok_or_else(bad)?;
        let addr: std::net::IpAddr = addr.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(bad());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn pod_cidrs_single_and_dual_stack() {
        assert!(super::validate_cidrs("10.244.0.0/16").is_ok());
        assert!(super::validate_cidrs("10.244.0.0/16,fd00::/64").is_ok());
        for bad in ["10.244.0.0", "10.244.0.0/33", "x/8", "fd00::/129"] {
            assert!(super::validate_cidrs(bad).is_err(), "{bad}");
        }
    }
}
