//! The OCI runtime spec of a container, from its CRI config, its image's config and its pod.

mod args;
mod caps;
mod devices;
mod mounts;
pub mod oci;
mod resources;
pub(crate) mod seccomp;
mod user;

use std::collections::BTreeMap;
use std::path::Path;

pub use mounts::{Access, BindMount, MountError, Propagation, resolve_host_path};
pub use resources::{ResourceLimits, oom_score_adj};
pub use user::ResolvedUser;

use crate::container::{AppArmorProfile, ContainerSpec, SeccompProfile, SecuritySpec};
use crate::image::ImageRecord;
use crate::pod::{NsMode, PodRecord};
use oci::{Capabilities, Linux, Namespace, Process, Root, Spec, User};

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("a privileged container needs a privileged pod sandbox")]
    PrivilegedInUnprivilegedPod,
    #[error(transparent)]
    NoCommand(#[from] args::NoCommand),
    #[error(transparent)]
    User(#[from] user::UserError),
    #[error(transparent)]
    Capability(#[from] caps::UnknownCapability),
    #[error(transparent)]
    Mount(#[from] MountError),
    #[error(transparent)]
    Device(#[from] devices::DeviceError),
    #[error(transparent)]
    Seccomp(#[from] seccomp::SeccompError),
    #[error("AppArmor profile `{0}` cannot be applied: this node has no AppArmor")]
    NoAppArmor(String),
    #[error(transparent)]
    AppArmor(#[from] crate::apparmor::AppArmorError),
    #[error("the pod shares no PID namespace to join")]
    NoPodPidNamespace,
    #[error("the target container is not running")]
    TargetNotRunning,
    #[error("environment values that are not UTF-8 cannot be given on this node")]
    EnvNotText,
}

impl SpecError {
    /// The request asks for something impossible or malformed (else: the node cannot give it
    /// now, as with a missing profile file or a dead infra process).
    pub fn is_invalid(&self) -> bool {
        use mounts::MountError as M;
        match self {
            SpecError::PrivilegedInUnprivilegedPod
            | SpecError::NoCommand(_)
            | SpecError::User(_)
            | SpecError::Capability(_)
            | SpecError::Device(_)
            | SpecError::NoAppArmor(_)
            | SpecError::AppArmor(crate::apparmor::AppArmorError::NotLoaded(_))
            | SpecError::EnvNotText => true,
            SpecError::Mount(m) => matches!(
                m,
                M::ContainerPathRelative(_) | M::ContainerPathClimbs(_) | M::HostPathRelative(_)
            ),
            SpecError::Seccomp(seccomp::SeccompError::NotAbsolute(_)) => true,
            SpecError::Seccomp(_)
            | SpecError::AppArmor(_)
            | SpecError::NoPodPidNamespace
            | SpecError::TargetNotRunning => false,
        }
    }
}

/// Everything the spec is made from.
#[derive(Debug)]
pub struct SpecInput<'a> {
    pub container: &'a ContainerSpec,
    pub image: &'a ImageRecord,
    pub pod: &'a PodRecord,
    /// The mounted overlay root.
    pub rootfs: &'a Path,
    /// The PID of the container a `pid = TARGET` container joins.
    pub target_pid: Option<u32>,
    /// The lowest OOM score this node lets berth give (None: any).
    pub oom_floor: Option<i64>,
    pub cgroups: crate::cgroups::NodeCgroups,
    /// The OCI cgroupsPath.
    pub cgroups_path: String,
    /// berth-env-exec on the node, when the container's environment needs it.
    pub env_exec: Option<&'a Path>,
    pub apparmor: &'a crate::apparmor::AppArmor,
}

/// The spec and what the container record keeps of it.
#[derive(Debug)]
pub struct Built {
    pub spec: Spec,
    pub user: ResolvedUser,
    pub mounts: Vec<BindMount>,
}

/// The spec, step by step: the user (resolved in the rootfs), the process, its confinement
/// (seccomp, AppArmor, masked paths), mounts, devices and cgroup limits, namespaces.
pub fn build(input: &SpecInput<'_>) -> Result<Built, SpecError> {
    let security = &input.container.security;
    if security.privileged && !input.pod.privileged {
        return Err(SpecError::PrivilegedInUnprivilegedPod);
    }
    let user = user::resolve(input.rootfs, &security.user, &input.image.defaults.user)?;
    let mut process = process(input, &user)?;
    let seccomp = match (security.privileged, &process.capabilities) {
        (false, Some(caps)) => seccomp_profile(&security.seccomp, &caps.permitted)?,
        _ => None,
    };
    process.apparmor_profile =
        apparmor_profile(&security.apparmor, security.privileged, input.apparmor)?;
    let Mounts {
        oci: mounts,
        binds,
        rootfs_propagation,
    } = all_mounts(input)?;
    let (devices, device_rules) = devices(input)?;
    let mut resources = input.container.resources.to_oci(input.cgroups);
    resources.devices = device_rules;
    let (masked_paths, readonly_paths) = protected_paths(security);
    let spec = Spec {
        oci_version: oci::OCI_VERSION.into(),
        process,
        root: Root {
            path: input.rootfs.display().to_string(),
            readonly: security.readonly_rootfs,
        },
        hostname: String::new(),
        mounts,
        linux: Linux {
            namespaces: namespaces(input)?,
            uid_mappings: input
                .pod
                .user_namespace
                .iter()
                .map(|m| m.uids.into())
                .collect(),
            gid_mappings: input
                .pod
                .user_namespace
                .iter()
                .map(|m| m.gids.into())
                .collect(),
            resources: Some(resources),
            cgroups_path: input.cgroups_path.clone(),
            // The pod's sysctls live in namespaces the container joins; runc sets them again.
            sysctl: input.pod.sysctls.clone(),
            devices,
            seccomp,
            masked_paths,
            readonly_paths,
            rootfs_propagation,
        },
        annotations: annotations(input),
    };
    Ok(Built {
        spec,
        user,
        mounts: binds,
    })
}

/// The process: arguments and environment by Docker's rules, working dir, user, capabilities,
/// no_new_privs, OOM score.
fn process(input: &SpecInput<'_>, user: &ResolvedUser) -> Result<Process, SpecError> {
    let (container, defaults) = (input.container, &input.image.defaults);
    let security = &container.security;
    let mut args = args::process_args(&container.command, &container.args, defaults)?;
    let env = args::environment(defaults, &container.env, &input.pod.hostname);
    if !env.bytes.is_empty() {
        if input.env_exec.is_none() {
            return Err(SpecError::EnvNotText);
        }
        let helper = [
            crate::env_exec::CONTAINER_PATH.to_owned(),
            crate::env_exec::encode(&env.bytes),
        ];
        args.splice(0..0, helper);
    }
    let cwd = [
        container.working_dir.as_str(),
        defaults.working_dir.as_str(),
    ]
    .into_iter()
    .find(|d| !d.is_empty())
    .unwrap_or("/")
    .to_owned();
    let requested = &security.capabilities;
    let caps = caps::compute(
        &requested.add,
        &requested.drop,
        security.privileged,
        caps::available(),
    )?;
    let ambient: Vec<String> = requested
        .add_ambient
        .iter()
        .map(|c| caps::normalize(c))
        .collect::<Result<_, _>>()?;
    let mut permitted = caps.clone();
    for a in &ambient {
        if !permitted.contains(a) {
            permitted.push(a.clone());
        }
    }
    Ok(Process {
        terminal: container.tty,
        user: User {
            uid: user.uid,
            gid: user.gid,
            additional_gids: user.additional_gids.clone(),
        },
        args,
        env: env.text,
        cwd,
        capabilities: Some(Capabilities {
            bounding: permitted.clone(),
            effective: caps,
            permitted,
            inheritable: ambient.clone(),
            ambient,
        }),
        no_new_privileges: security.no_new_privs,
        oom_score_adj: Some(oom_score_adj(
            container.resources.oom_score_adj,
            input.oom_floor,
        )),
        apparmor_profile: None,
    })
}

/// The container's device nodes and cgroup device rules: the defaults plus the devices asked
/// for, or every host device when privileged.
fn devices(input: &SpecInput<'_>) -> Result<(Vec<oci::Device>, Vec<oci::DeviceRule>), SpecError> {
    if input.container.security.privileged {
        return Ok((devices::host_devices(), devices::allow_all()));
    }
    let (mut nodes, mut rules) = (Vec::new(), devices::default_rules());
    for d in &input.container.devices {
        let (node, rule) = devices::device(&d.host_path, &d.container_path, &d.permissions)?;
        nodes.push(node);
        rules.push(rule);
    }
    Ok((nodes, rules))
}

/// Masked and read-only paths as the config gives them (kubelet sends its defaults for the
/// Default proc mount and none for Unmasked, as containerd takes them); none when privileged.
fn protected_paths(security: &SecuritySpec) -> (Vec<String>, Vec<String>) {
    if security.privileged {
        return (Vec::new(), Vec::new());
    }
    (
        security.masked_paths.clone(),
        security.readonly_paths.clone(),
    )
}

fn annotations(input: &SpecInput<'_>) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "io.kubernetes.cri.container-type".to_owned(),
            "container".to_owned(),
        ),
        (
            "io.kubernetes.cri.sandbox-id".to_owned(),
            input.pod.id.clone(),
        ),
        (
            "io.kubernetes.cri.container-name".to_owned(),
            input.container.name.clone(),
        ),
    ])
}

/// The namespaces: the pod's pinned network, IPC and UTS ones (unless it shares the node's), a
/// PID namespace by the container's mode, a new mount namespace, and a cgroup one on v2.
fn namespaces(input: &SpecInput<'_>) -> Result<Vec<Namespace>, SpecError> {
    let ns = |kind: &str, path: String| Namespace {
        kind: kind.into(),
        path,
    };
    let pod = input.pod;
    let mut out = vec![ns("mount", String::new())];
    for (kind, pinned) in [
        ("user", &pod.pinned.user),
        ("network", &pod.pinned.net),
        ("ipc", &pod.pinned.ipc),
        ("uts", &pod.pinned.uts),
    ] {
        if let Some(path) = pinned {
            out.push(ns(kind, path.display().to_string()));
        }
    }
    let mode = input
        .container
        .security
        .pid_mode
        .unwrap_or(pod.namespaces.pid);
    match mode {
        NsMode::Node => {}
        NsMode::Container => out.push(ns("pid", String::new())),
        NsMode::Pod => {
            // Checked now, by more than its PID: another process may have that PID by now.
            let path = pod
                .infra
                .and_then(|i| i.pid_namespace())
                .ok_or(SpecError::NoPodPidNamespace)?;
            out.push(ns("pid", path));
        }
        NsMode::Target => {
            let pid = input.target_pid.ok_or(SpecError::TargetNotRunning)?;
            out.push(ns("pid", format!("/proc/{pid}/ns/pid")));
        }
    }
    if input.cgroups.v2 {
        out.push(ns("cgroup", String::new()));
    }
    Ok(out)
}

/// Every mount of the spec, and what the record keeps of them.
struct Mounts {
    oci: Vec<oci::Mount>,
    /// The CRI mounts as made.
    binds: Vec<BindMount>,
    /// What the CRI mounts' propagation needs of the rootfs (`rslave`, `rshared` or empty).
    rootfs_propagation: String,
}

/// System mounts, the pod's files and shm, then the CRI mounts (parents before children).
fn all_mounts(input: &SpecInput<'_>) -> Result<Mounts, SpecError> {
    let mut binds = input
        .container
        .mounts
        .iter()
        .map(mounts::cri_mount)
        .collect::<Result<Vec<_>, _>>()?;
    binds.sort_by_key(|b| Path::new(&b.container_path).components().count());
    let taken = |dest: &str| binds.iter().any(|b| b.container_path == dest);
    let mut all = mounts::system_mounts(input.container.security.privileged);
    let pod = input.pod;
    for (dest, file) in [
        ("/etc/hostname", pod.hostname_file()),
        ("/etc/hosts", pod.hosts_file()),
        ("/etc/resolv.conf", pod.resolv_conf()),
    ] {
        if !taken(dest) {
            all.push(mounts::bind(
                &file,
                dest,
                Access::ReadWrite,
                Propagation::Private,
            ));
        }
    }
    if let Some(helper) = input.env_exec {
        let mut mount = mounts::bind(
            helper,
            crate::env_exec::CONTAINER_PATH,
            Access::ReadOnly,
            Propagation::Private,
        );
        mount
            .options
            .extend(["nosuid".to_owned(), "nodev".to_owned()]);
        all.push(mount);
    }
    if !taken("/dev/shm") {
        let shm = pod.shm.clone().unwrap_or_else(|| "/dev/shm".into());
        all.push(mounts::bind(
            &shm,
            "/dev/shm",
            Access::ReadWrite,
            Propagation::Private,
        ));
    }
    for b in &binds {
        all.push(mounts::bind(
            b.source.as_ref().unwrap_or(&b.host_path),
            &b.container_path,
            Access::of(b.readonly, b.recursive_read_only),
            b.propagation,
        ));
    }
    let has = |p: Propagation| binds.iter().any(|b| b.propagation == p);
    let rootfs_propagation = if has(Propagation::Bidirectional) {
        "rshared"
    } else if has(Propagation::HostToContainer) {
        "rslave"
    } else {
        ""
    }
    .to_owned();
    Ok(Mounts {
        oci: all,
        binds,
        rootfs_propagation,
    })
}

/// The AppArmor profile the process runs under (see `crate::apparmor`): a named one if it is
/// loaded, berth-default for the runtime default unless privileged, none when unconfined. On a
/// node without AppArmor a named profile cannot be honoured; the others mean none.
fn apparmor_profile(
    profile: &AppArmorProfile,
    privileged: bool,
    node: &crate::apparmor::AppArmor,
) -> Result<Option<String>, SpecError> {
    use crate::apparmor::{AppArmorError, DEFAULT_PROFILE};
    Ok(match (profile, node.enabled()) {
        (AppArmorProfile::Localhost(name), false) => {
            return Err(SpecError::NoAppArmor(name.clone()));
        }
        (AppArmorProfile::Localhost(name), true) if !node.is_loaded(name) => {
            return Err(AppArmorError::NotLoaded(name.clone()).into());
        }
        (AppArmorProfile::Localhost(name), true) => Some(name.clone()),
        (AppArmorProfile::Unconfined, _) | (AppArmorProfile::Default, false) => None,
        (AppArmorProfile::Default, true) if privileged => None,
        (AppArmorProfile::Default, true) => {
            node.ensure_default()?;
            Some(DEFAULT_PROFILE.to_owned())
        }
    })
}

fn seccomp_profile(
    profile: &SeccompProfile,
    caps: &[String],
) -> Result<Option<serde_json::Value>, SpecError> {
    Ok(match profile {
        SeccompProfile::RuntimeDefault => Some(seccomp::runtime_default(caps)),
        SeccompProfile::Localhost(path) => Some(seccomp::localhost(path)?),
        SeccompProfile::Unconfined => None,
    })
}
