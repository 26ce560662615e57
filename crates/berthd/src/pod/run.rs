//! RunPodSandbox: claim the name, pin the namespaces (with hostname and sysctls), then attach the
//! network (CNI ADD) while making the pod's cgroup, mounting its /dev/shm, writing hostname and
//! resolv.conf and starting the infra process when the pod shares a PID namespace; write hosts
//! (it names the pod's IPs), persist record and name in one commit. Every step registers its undo;
//! any failure undoes them all, so nothing (netns, veth, IP, mount, file, cgroup, claim) is left
//! behind.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use berth_net::cni::PortMapping;
use berth_net::netns::{self, NamespaceRequest, Pinned, SysctlNamespace};

use super::record::{DnsConfig, NamespaceModes, NsMode, PodNetwork, PodRecord, PodState};
use super::{Admission, Pod, PodError, PodService, cgroup, files, infra, io_err, ns_pool};
use crate::events::EventKind;
use crate::rollback::Rollback;
use crate::userns::{Holder, IdMappings};

/// What RunPodSandbox asks for, checked and converted from the CRI request.
#[derive(Debug, Clone, Default)]
pub struct PodSpec {
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub attempt: u32,
    /// Empty: the node's.
    pub hostname: String,
    pub log_directory: String,
    pub dns: Option<DnsConfig>,
    pub port_mappings: Vec<PortMapping>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub cgroup_parent: String,
    pub sysctls: BTreeMap<String, String>,
    pub namespaces: NamespaceModes,
    pub security: SecuritySpec,
    /// Empty for the default handler.
    pub runtime_handler: String,
}

#[derive(Debug, Clone, Default)]
pub struct SecuritySpec {
    pub privileged: bool,
    /// The ID mappings of a user namespace of the pod's own (None: the node's).
    pub user_namespace: Option<IdMappings>,
}

/// Where the pod's namespaces came from: pinned for it, or a spare set whose hostname is still
/// to be set (beside CNI ADD).
struct Namespaces {
    pinned: Pinned,
    configure_beside: Option<NamespaceRequest>,
}

impl PodService {
    /// Runs a pod to completion even if the caller goes away (see [`crate::detach`]).
    pub async fn run(self: &Arc<Self>, spec: PodSpec) -> Result<String, PodError> {
        let name = PodRecord::name_key(&spec.name, &spec.namespace, &spec.uid, spec.attempt);
        let this = self.clone();
        self.pods
            .create(name, async move { this.create(spec).await })
            .await
    }

    async fn create(&self, spec: PodSpec) -> Result<String, PodError> {
        let mut rb = Rollback::new();
        let created = match self.create_steps(&spec, &mut rb).await {
            Ok(id) => {
                rb.commit();
                Ok(id)
            }
            Err(e) => {
                rb.undo(&e).await;
                Err(e)
            }
        };
        self.ns_pool.fill();
        created
    }

    /// The create, as its steps.
    async fn create_steps(&self, spec: &PodSpec, rb: &mut Rollback) -> Result<String, PodError> {
        let handler = self.check(spec)?;
        let id = crate::ids::new_id();
        let name = self.claim_name(spec, &id, rb)?;
        let dir = self.make_dir(&id, spec, rb)?;
        crate::failpoint::reached("pod-run-after-dir");
        let (cgroup_parent, owns_cgroup) = cgroup::pod_cgroup(
            &spec.cgroup_parent,
            &id,
            self.settings.cgroups.is_systemd(),
            &self.settings.own_cgroups,
        )?;
        let hostname = pod_hostname(spec);
        let namespaces = self.pin_namespaces(spec, &dir, &hostname, rb).await?;
        crate::failpoint::reached("pod-run-after-namespaces");
        let host_net = spec.namespaces.network == NsMode::Node;
        let mut record = PodRecord {
            id: id.clone(),
            name: spec.name.clone(),
            namespace: spec.namespace.clone(),
            uid: spec.uid.clone(),
            attempt: spec.attempt,
            state: PodState::Ready,
            created_at: crate::clock::now_nanos(),
            labels: spec.labels.clone(),
            annotations: spec.annotations.clone(),
            runtime_handler: handler,
            namespaces: spec.namespaces.clone(),
            hostname,
            log_directory: spec.log_directory.clone(),
            cgroup_parent,
            owns_cgroup,
            port_mappings: spec.port_mappings.clone(),
            sysctls: spec.sysctls.clone(),
            privileged: spec.security.privileged,
            dns: spec.dns.clone(),
            pinned: namespaces.pinned.clone(),
            shm: (spec.namespaces.ipc != NsMode::Node).then(|| dir.join("shm")),
            dir,
            network: PodNetwork::default(),
            infra: None,
            legacy_infra_pid: None,
            user_namespace: spec.security.user_namespace,
            resources: None,
        };
        // CNI ADD (external processes, most of the time a pod takes to start) runs while the rest
        // of the pod is put together.
        let (mut network_rb, mut local_rb) = (Rollback::new(), Rollback::new());
        let (network, infra) = tokio::join!(
            self.attach(&record, &mut network_rb),
            self.prepare_beside_network(&record, namespaces.configure_beside, &mut local_rb),
        );
        rb.absorb(network_rb);
        rb.absorb(local_rb);
        record.network = network?;
        record.infra = infra?;
        crate::failpoint::reached("pod-run-after-network");
        files::write_hosts(
            &record.hosts_file(),
            host_net,
            &record.hostname,
            &record.network.ips,
        )
        .map_err(io_err("write hosts"))?;
        if let Some(mappings) = &record.user_namespace {
            let files = [
                record.hostname_file(),
                record.hosts_file(),
                record.resolv_conf(),
            ];
            files::give_to(&files, mappings.host_root())
                .map_err(io_err("give the pod's files to its root"))?;
        }
        crate::failpoint::reached("pod-run-before-commit");
        self.persist(&name, record).await
    }

    /// The request's errors, found before anything is made; the runtime handler it gets.
    fn check(&self, spec: &PodSpec) -> Result<String, PodError> {
        let handler = self.handler_of(&spec.runtime_handler)?;
        if spec.security.user_namespace.is_some() {
            let n = &spec.namespaces;
            if let Some(kind) = [(n.network, "network"), (n.ipc, "IPC"), (n.pid, "PID")]
                .iter()
                .find_map(|(mode, kind)| (*mode == NsMode::Node).then_some(kind))
            {
                return Err(PodError::Invalid(format!(
                    "a pod with a user namespace of its own cannot share the node's {kind} namespace"
                )));
            }
        }
        for name in spec.sysctls.keys() {
            let (ns, shared_with_node) = match netns::sysctl_namespace(name) {
                Some(SysctlNamespace::Net) => ("network", spec.namespaces.network == NsMode::Node),
                Some(SysctlNamespace::Ipc) => ("IPC", spec.namespaces.ipc == NsMode::Node),
                None => {
                    return Err(PodError::Invalid(format!(
                        "sysctl {name} is not namespaced; a pod may not set it"
                    )));
                }
            };
            if shared_with_node {
                return Err(PodError::Invalid(format!(
                    "sysctl {name} would change the node: the pod shares the node's {ns} namespace"
                )));
            }
        }
        if !spec.cgroup_parent.is_empty() {
            cgroup::parent_path(&spec.cgroup_parent)?;
        }
        Ok(handler)
    }

    /// The handler a pod asking for `requested` gets (empty: the default); unknown ones are
    /// invalid.
    pub fn handler_of(&self, requested: &str) -> Result<String, PodError> {
        let handler = if requested.is_empty() {
            &self.settings.default_handler
        } else {
            requested
        };
        if !self.settings.handlers.iter().any(|h| h == handler) {
            let known: Vec<&str> = self.settings.handlers.iter().map(String::as_str).collect();
            return Err(PodError::Invalid(format!(
                "unknown runtime handler `{handler}`; configured: {}",
                known.join(", ")
            )));
        }
        Ok(handler.to_owned())
    }

    /// Claims the name `pod/<name>_<namespace>_<uid>_<attempt>` for the new ID.
    fn claim_name(&self, spec: &PodSpec, id: &str, rb: &mut Rollback) -> Result<String, PodError> {
        let name = PodRecord::name_key(&spec.name, &spec.namespace, &spec.uid, spec.attempt);
        self.store.reserve_name_undoable(&name, id, rb)?;
        Ok(name)
    }

    /// `<state>/pods/<id>`, and the log directory kubelet named.
    fn make_dir(&self, id: &str, spec: &PodSpec, rb: &mut Rollback) -> Result<PathBuf, PodError> {
        let dir = self.settings.paths.pods().join(id);
        crate::layout::make_object_dir(&dir)
            .map_err(io_err(format!("pod dir {}", dir.display())))?;
        let made = dir.clone();
        rb.push("remove the pod dir", move || async move {
            Ok(crate::blocking::run(move || std::fs::remove_dir_all(&made)).await??)
        });
        if !spec.log_directory.is_empty() {
            std::fs::create_dir_all(&spec.log_directory)
                .map_err(io_err(format!("log directory {}", spec.log_directory)))?;
        }
        Ok(dir)
    }

    /// The pod's network, IPC and UTS namespaces. A pod that wants all three takes a set made
    /// ahead of time when one is ready (its `ns` dir then points at the set); sysctls go in
    /// before CNI ADD, which they may concern; a hostname alone is set beside it. Otherwise the
    /// namespaces are made and pinned on a throwaway thread, or, for a pod with a user namespace
    /// (which must own them), by a process made in it.
    async fn pin_namespaces(
        &self,
        spec: &PodSpec,
        dir: &std::path::Path,
        hostname: &str,
        rb: &mut Rollback,
    ) -> Result<Namespaces, PodError> {
        let host_net = spec.namespaces.network == NsMode::Node;
        let host_ipc = spec.namespaces.ipc == NsMode::Node;
        let request = NamespaceRequest {
            dir: dir.join("ns"),
            net: !host_net,
            ipc: !host_ipc,
            uts: !host_net,
            hostname: (!host_net).then(|| hostname.to_owned()),
            sysctls: spec
                .sysctls
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        };
        if let Some(mappings) = spec.security.user_namespace {
            let infra = self.settings.infra_binary.clone();
            let pinned =
                crate::blocking::run(move || pin_in_user_namespace(&infra, &request, &mappings))
                    .await??;
            let undo = pinned.clone();
            rb.push("unpin the namespaces", move || async move {
                Ok(crate::blocking::run(move || netns::remove(&undo)).await??)
            });
            return Ok(Namespaces {
                pinned,
                configure_beside: None,
            });
        }
        let spare = (!host_net && !host_ipc)
            .then(|| self.ns_pool.take())
            .flatten();
        let namespaces = match spare {
            Some(set) if request.sysctls.is_empty() => {
                ns_pool::link(&set, &request.dir).inspect_err(|_| {
                    let _ = netns::remove(&set);
                })?;
                Namespaces {
                    pinned: set,
                    configure_beside: Some(request),
                }
            }
            spare => {
                let pinned = crate::blocking::run(move || match spare {
                    Some(set) => netns::configure(&set, &request)
                        .and_then(|()| ns_pool::link(&set, &request.dir))
                        .map(|()| set.clone())
                        .inspect_err(|_| {
                            let _ = netns::remove(&set);
                        }),
                    None => netns::create(request),
                })
                .await??;
                Namespaces {
                    pinned,
                    configure_beside: None,
                }
            }
        };
        let pinned = namespaces.pinned.clone();
        rb.push("unpin the namespaces", move || async move {
            Ok(crate::blocking::run(move || netns::remove(&pinned)).await??)
        });
        Ok(namespaces)
    }

    /// What RunPodSandbox does while CNI ADD runs: the hostname of a taken namespace set (with
    /// `configure`), the pod's own cgroup, its /dev/shm, hostname and resolv.conf files, and its
    /// infra process (which it returns) when it shares one PID namespace. cgroup and mount
    /// changes wait for kernel locks a burst contends for: not on an async worker.
    async fn prepare_beside_network(
        &self,
        record: &PodRecord,
        configure: Option<NamespaceRequest>,
        rb: &mut Rollback,
    ) -> Result<Option<infra::InfraProcess>, PodError> {
        if let Some(request) = configure {
            let set = record.pinned.clone();
            crate::blocking::run(move || netns::configure(&set, &request)).await??;
        }
        if record.owns_cgroup {
            let cgroup = record.cgroup_parent.clone();
            self.settings.cgroups.create(&cgroup).await?;
            let driver = self.settings.cgroups.clone();
            rb.push("remove the pod's cgroup", move || async move {
                Ok(driver.remove(&cgroup).await?)
            });
        }
        if let Some(shm) = record.shm.clone() {
            let target = shm.clone();
            crate::blocking::run(move || netns::mount_shm(&target))
                .await?
                .map_err(io_err("mount the pod's /dev/shm"))?;
            rb.push("unmount the pod's /dev/shm", move || async move {
                Ok(netns::unmount_shm(&shm)?)
            });
        }
        files::write_hostname(&record.hostname_file(), &record.hostname)
            .map_err(io_err("write hostname"))?;
        files::write_resolv_conf(&record.resolv_conf(), record.dns.as_ref())
            .map_err(io_err("write resolv.conf"))?;
        if record.namespaces.pid != NsMode::Pod {
            return Ok(None);
        }
        let infra = infra::start(&self.settings.infra_binary, &record.dir, &record.pinned).await?;
        crate::failpoint::reached("pod-run-after-infra");
        rb.push("kill the infra process", move || async move {
            Ok(infra.kill().await?)
        });
        Ok(Some(infra))
    }

    /// CNI ADD for the pod (none on the node's network); the DEL is registered first, since a
    /// failed ADD may have allocated.
    async fn attach(&self, record: &PodRecord, rb: &mut Rollback) -> Result<PodNetwork, PodError> {
        let Some(netns_path) = record.pinned.net.clone() else {
            return Ok(PodNetwork::default());
        };
        let list = self.cni.network().map_err(PodError::NetworkNotReady)?;
        let att = self.attachment(record, netns_path);
        // Written before ADD, so that a crash between ADD and the pod's record still lets the
        // next start tear the network down (see recover.rs).
        super::recover::write_pending_network(&record.dir, &list, &att)?;
        crate::failpoint::reached("pod-run-before-cni-add");
        let (cni, added_list, added) = (self.cni.clone(), list.clone(), att.clone());
        rb.push("CNI DEL", move || async move {
            Ok(cni.del(&added_list, &added, None).await?)
        });
        let result = self.cni.add(&list, &att).await?;
        let ips = berth_net::cni::pod_ips(&result, &att.context.ifname);
        Ok(PodNetwork {
            list: Some(list),
            result: Some(result),
            ips,
            attached: true,
        })
    }

    /// The record and its name in one commit; then the pod is live.
    async fn persist(&self, name: &str, record: PodRecord) -> Result<String, PodError> {
        let (written, name) = (record.clone(), name.to_owned());
        self.store
            .off_worker(move |s| s.put_named(&name, &written))
            .await?;
        let id = record.id.clone();
        tracing::info!(pod = %id, name = %record.name, namespace = %record.namespace, "pod sandbox ready");
        self.pods
            .insert(id.clone(), Pod::new(record, Admission::default()));
        self.emit(EventKind::Created, &id);
        self.emit(EventKind::Started, &id);
        Ok(id)
    }
}

/// A user namespace with `mappings` and the namespaces `req` asks for, which it owns (so that the
/// pod's root may configure them), pinned with hostname and sysctls set. Blocking.
fn pin_in_user_namespace(
    infra_binary: &std::path::Path,
    req: &NamespaceRequest,
    mappings: &IdMappings,
) -> Result<Pinned, PodError> {
    use rustix::thread::UnshareFlags;
    let mut owned = UnshareFlags::empty();
    owned.set(UnshareFlags::NEWNET, req.net);
    owned.set(UnshareFlags::NEWIPC, req.ipc);
    owned.set(UnshareFlags::NEWUTS, req.uts);
    let holder = Holder::spawn(infra_binary, owned, mappings)
        .map_err(io_err("make the pod's user namespace"))?;
    let pinned = netns::pin_process(holder.pid(), req)?;
    netns::configure(&pinned, req).inspect_err(|_| {
        let _ = netns::remove(&pinned);
    })?;
    Ok(pinned)
}

/// A pod on the node's network shares the node's UTS namespace and so its hostname; one that
/// names no hostname gets the node's too (as containerd and CRI-O give it).
fn pod_hostname(spec: &PodSpec) -> String {
    if spec.namespaces.network == NsMode::Node || spec.hostname.is_empty() {
        rustix::system::uname()
            .nodename()
            .to_string_lossy()
            .into_owned()
    } else {
        spec.hostname.clone()
    }
}
