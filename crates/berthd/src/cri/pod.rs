//! RunPodSandbox, StopPodSandbox, RemovePodSandbox, PodSandboxStatus and ListPodSandbox.

use std::collections::HashMap;

use berth_cri::v1 as cri;
use berth_net::cni::PortMapping;
use tonic::Status;

use super::Cri;
use super::enums::{ns_mode, ns_mode_to_cri, pod_state};
use super::fields::c_string;
use super::filter::{Filter, to_hash};
use super::resources::resource_limits;
use super::userns::{user_namespace, user_namespace_to_cri};
use crate::pod::{DnsConfig, NamespaceModes, NsMode, PodRecord, PodSpec, SecuritySpec};

impl Cri {
    pub(super) async fn run_pod_sandbox_of(
        &self,
        req: cri::RunPodSandboxRequest,
    ) -> Result<cri::RunPodSandboxResponse, Status> {
        let spec = pod_spec(req)?;
        let pod_sandbox_id = self.svc.sandboxes.run(spec).await?;
        Ok(cri::RunPodSandboxResponse { pod_sandbox_id })
    }

    pub(super) async fn stop_pod_sandbox_of(
        &self,
        req: cri::StopPodSandboxRequest,
    ) -> Result<cri::StopPodSandboxResponse, Status> {
        self.svc.sandboxes.stop(&req.pod_sandbox_id).await?;
        Ok(cri::StopPodSandboxResponse {})
    }

    pub(super) async fn remove_pod_sandbox_of(
        &self,
        req: cri::RemovePodSandboxRequest,
    ) -> Result<cri::RemovePodSandboxResponse, Status> {
        self.svc.sandboxes.remove(&req.pod_sandbox_id).await?;
        Ok(cri::RemovePodSandboxResponse {})
    }

    pub(super) async fn update_pod_sandbox_resources_of(
        &self,
        req: cri::UpdatePodSandboxResourcesRequest,
    ) -> Result<cri::UpdatePodSandboxResourcesResponse, Status> {
        let resources = req.resources.unwrap_or_default();
        self.svc
            .pods
            .update_resources(&req.pod_sandbox_id, resource_limits(&resources)?)
            .await?;
        Ok(cri::UpdatePodSandboxResourcesResponse {})
    }

    pub(super) async fn pod_sandbox_status_of(
        &self,
        req: cri::PodSandboxStatusRequest,
    ) -> Result<cri::PodSandboxStatusResponse, Status> {
        let record = self.svc.pods.get(&req.pod_sandbox_id)?.record();
        let mut info = HashMap::new();
        if req.verbose {
            let verbose = serde_json::json!({
                "id": record.id,
                "netnsPath": record.pinned.net,
                "usernsPath": record.pinned.user,
                "infraPid": record.infra.map(|i| i.pid),
                "cgroupParent": record.cgroup_parent,
                "cniNetwork": record.network.list.as_ref().map(|l| l.name.clone()),
                "cniResult": record.network.result,
                "runtimeHandler": record.runtime_handler,
            });
            info.insert("info".to_owned(), verbose.to_string());
        }
        Ok(cri::PodSandboxStatusResponse {
            status: Some(pod_status(&record)),
            info,
            containers_statuses: Vec::new(),
            timestamp: crate::clock::now_nanos(),
        })
    }

    pub(super) async fn list_pod_sandbox_of(
        &self,
        req: cri::ListPodSandboxRequest,
    ) -> Result<cri::ListPodSandboxResponse, Status> {
        let filter = req.filter.unwrap_or_default();
        let wanted = Filter {
            id: &filter.id,
            pod_id: "",
            state: filter.state.as_ref().map(|s| s.state),
            labels: &filter.label_selector,
        };
        let items = self.svc.pods.scan(|r| {
            let state = pod_state(r.state) as i32;
            wanted
                .matches(&r.id, "", state, &r.labels)
                .then(|| cri::PodSandbox {
                    metadata: Some(metadata(r)),
                    state,
                    created_at: r.created_at,
                    labels: to_hash(&r.labels),
                    annotations: to_hash(&r.annotations),
                    runtime_handler: r.runtime_handler.clone(),
                    id: r.id.clone(),
                })
        });
        Ok(cri::ListPodSandboxResponse { items })
    }
}

pub(super) fn metadata(r: &PodRecord) -> cri::PodSandboxMetadata {
    cri::PodSandboxMetadata {
        name: r.name.clone(),
        uid: r.uid.clone(),
        namespace: r.namespace.clone(),
        attempt: r.attempt,
    }
}

pub(super) fn pod_status(r: &PodRecord) -> cri::PodSandboxStatus {
    let network = (!r.host_network()).then(|| cri::PodSandboxNetworkStatus {
        ip: r.network.ips.first().cloned().unwrap_or_default(),
        additional_ips: r
            .network
            .ips
            .iter()
            .skip(1)
            .map(|ip| cri::PodIp { ip: ip.clone() })
            .collect(),
    });
    cri::PodSandboxStatus {
        id: r.id.clone(),
        metadata: Some(metadata(r)),
        state: pod_state(r.state) as i32,
        created_at: r.created_at,
        network,
        linux: Some(cri::LinuxPodSandboxStatus {
            namespaces: Some(cri::Namespace {
                options: Some(cri::NamespaceOption {
                    network: ns_mode_to_cri(r.namespaces.network) as i32,
                    pid: ns_mode_to_cri(r.namespaces.pid) as i32,
                    ipc: ns_mode_to_cri(r.namespaces.ipc) as i32,
                    target_id: r.namespaces.target_id.clone(),
                    userns_options: Some(user_namespace_to_cri(r.user_namespace.as_ref())),
                }),
            }),
        }),
        labels: to_hash(&r.labels),
        annotations: to_hash(&r.annotations),
        runtime_handler: r.runtime_handler.clone(),
    }
}

fn pod_spec(req: cri::RunPodSandboxRequest) -> Result<PodSpec, Status> {
    let config = req
        .config
        .ok_or_else(|| Status::invalid_argument("RunPodSandbox needs a config"))?;
    let meta = config
        .metadata
        .ok_or_else(|| Status::invalid_argument("the pod config has no metadata"))?;
    if meta.name.is_empty() || meta.namespace.is_empty() {
        return Err(Status::invalid_argument(
            "pod metadata needs a name and a namespace",
        ));
    }
    cni_arg("metadata.name", &meta.name)?;
    cni_arg("metadata.namespace", &meta.namespace)?;
    cni_arg("metadata.uid", &meta.uid)?;
    c_string("log_directory", &config.log_directory)?;
    if !config.log_directory.is_empty() && !config.log_directory.starts_with('/') {
        return Err(Status::invalid_argument(format!(
            "log_directory `{}` is not an absolute path",
            config.log_directory
        )));
    }
    let linux = config.linux.unwrap_or_default();
    let security = linux.security_context.unwrap_or_default();
    let ns = security.namespace_options.unwrap_or_default();
    if ns_mode(ns.pid) == NsMode::Target {
        return Err(Status::invalid_argument(
            "a pod's PID namespace cannot be TARGET",
        ));
    }
    let mut port_mappings = Vec::new();
    for pm in &config.port_mappings {
        // Only ports published on the node concern the network (as containerd filters them).
        if pm.host_port <= 0 {
            continue;
        }
        let port = |p: i32, what: &str| {
            u16::try_from(p)
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| Status::invalid_argument(format!("{what} {p} is not a port number")))
        };
        port_mappings.push(PortMapping {
            host_port: port(pm.host_port, "host port")?,
            container_port: port(pm.container_port, "container port")?,
            protocol: match pm.protocol {
                1 => "udp",
                2 => "sctp",
                _ => "tcp",
            }
            .into(),
            host_ip: pm.host_ip.clone(),
        });
    }
    Ok(PodSpec {
        name: meta.name,
        namespace: meta.namespace,
        uid: meta.uid,
        attempt: meta.attempt,
        hostname: hostname(config.hostname)?,
        log_directory: config.log_directory,
        dns: match config.dns_config {
            Some(d) => Some(DnsConfig {
                servers: resolv_conf_words("dns_config.servers", d.servers)?,
                searches: resolv_conf_words("dns_config.searches", d.searches)?,
                options: resolv_conf_words("dns_config.options", d.options)?,
            }),
            None => None,
        },
        port_mappings,
        labels: config.labels.into_iter().collect(),
        annotations: config.annotations.into_iter().collect(),
        cgroup_parent: c_string("cgroup_parent", &linux.cgroup_parent)?.to_owned(),
        sysctls: linux.sysctls.into_iter().collect(),
        namespaces: NamespaceModes {
            network: ns_mode(ns.network),
            pid: ns_mode(ns.pid),
            ipc: ns_mode(ns.ipc),
            target_id: ns.target_id,
        },
        security: SecuritySpec {
            privileged: security.privileged,
            user_namespace: user_namespace(ns.userns_options.as_ref())?,
        },
        runtime_handler: req.runtime_handler,
    })
}

/// A value CNI plugins get in `CNI_ARGS` (`K8S_POD_NAME=…;K8S_POD_UID=…`): a `;` or `=` would
/// split it, a NUL or control byte end or garble it.
fn cni_arg(field: &str, value: &str) -> Result<(), Status> {
    if value
        .chars()
        .any(|c| c == ';' || c == '=' || c.is_control())
    {
        return Err(Status::invalid_argument(format!(
            "{field} `{}` holds `;`, `=` or a control byte, which CNI_ARGS cannot carry",
            value.escape_debug()
        )));
    }
    Ok(())
}

/// Words of the pod's `resolv.conf`, each written after its keyword: a space, a control byte
/// or a line break would make another word or line of it.
fn resolv_conf_words(field: &str, words: Vec<String>) -> Result<Vec<String>, Status> {
    match words
        .iter()
        .position(|w| w.chars().any(|c| c.is_whitespace() || c.is_control()))
    {
        Some(n) => Err(Status::invalid_argument(format!(
            "{field}[{n}] `{}` is not one word of resolv.conf",
            words[n].escape_debug()
        ))),
        None => Ok(words),
    }
}

/// A hostname the kernel takes (at most 64 bytes) and DNS names allow (letters, digits, `-` and
/// `.`), as kubelet makes them from pod names.
fn hostname(name: String) -> Result<String, Status> {
    let valid = name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if valid {
        Ok(name)
    } else {
        Err(Status::invalid_argument(format!(
            "hostname `{name}`: at most 64 letters, digits, `-` and `.` are wanted"
        )))
    }
}
