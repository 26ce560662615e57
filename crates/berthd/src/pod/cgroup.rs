//! The pod's cgroup as a cgroupfs path. kubelet sends a path with the cgroupfs driver and a slice
//! name with the systemd driver; a slice name expands to its path as systemd nests slices
//! (`kubepods-burstable-pod1.slice` → `/kubepods.slice/kubepods-burstable.slice/…`). A pod that
//! names no parent gets a cgroup of berth's own, so that its figures always exist: a directory
//! berth makes (cgroupfs driver) or a slice systemd makes on berth's word (systemd driver).

use std::sync::Arc;

use super::PodError;
use crate::spec::ResourceLimits;
use crate::systemd::Systemd;

/// Who makes, limits and removes the cgroups of pods: berth through cgroupfs, or systemd.
#[derive(Debug, Clone)]
pub enum Driver {
    Cgroupfs,
    Systemd(Arc<Systemd>),
}

impl Driver {
    pub fn is_systemd(&self) -> bool {
        matches!(self, Driver::Systemd(_))
    }

    /// Makes the cgroup at `path` (berth's own for a pod), its figures there before any
    /// container is.
    pub async fn create(&self, path: &str) -> Result<(), PodError> {
        match self {
            Driver::Cgroupfs => {
                let rel = path.to_owned();
                crate::blocking::run(move || crate::cgroups::create(&rel))
                    .await?
                    .map_err(super::io_err(format!("make the pod's cgroup {path}")))
            }
            Driver::Systemd(systemd) => Ok(systemd.start_slice(unit_of(path), &[]).await?),
        }
    }

    /// Removes the cgroup at `path` (its containers are gone: an empty cgroup).
    pub async fn remove(&self, path: &str) -> Result<(), PodError> {
        match self {
            Driver::Cgroupfs => {
                let rel = path.to_owned();
                crate::blocking::run(move || crate::cgroups::remove(&rel))
                    .await?
                    .map_err(super::io_err(format!("remove the pod's cgroup {path}")))
            }
            Driver::Systemd(systemd) => Ok(systemd.stop(unit_of(path)).await?),
        }
    }

    /// Gives the cgroup at `path` new CPU and memory limits.
    pub async fn apply(&self, path: &str, limits: &ResourceLimits) -> Result<(), PodError> {
        match self {
            Driver::Cgroupfs => {
                let (rel, limits) = (path.to_owned(), limits.clone());
                Ok(
                    crate::blocking::run(move || crate::cgroup_limits::apply(&rel, &limits))
                        .await??,
                )
            }
            Driver::Systemd(systemd) => Ok(systemd
                .set_properties(unit_of(path), &crate::systemd::limit_properties(limits))
                .await?),
        }
    }
}

/// The unit of a cgroup path under the systemd driver: its last part, a slice's name.
fn unit_of(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// A cgroup parent no cgroup can have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CgroupParentError {
    #[error("cgroup parent `{0}` may not contain `..` or NUL")]
    Climbs(String),
    #[error("systemd slice `{0}` may not contain `/`")]
    SliceWithSlash(String),
    #[error("systemd slice `{0}` has an empty part")]
    EmptySlicePart(String),
}

/// The pod's cgroup, and whether berth makes and removes it (kubelet's parents are kubelet's).
/// `own_parent` holds those berth makes with the cgroupfs driver; with systemd's they are
/// `berth-pod<id>.slice`, in `berth.slice`.
pub fn pod_cgroup(
    requested: &str,
    pod_id: &str,
    systemd: bool,
    own_parent: &str,
) -> Result<(String, bool), CgroupParentError> {
    match (requested.is_empty(), systemd) {
        (false, _) => Ok((parent_path(requested)?, false)),
        (true, true) => Ok((parent_path(&format!("berth-pod{pod_id}.slice"))?, true)),
        (true, false) => Ok((format!("{own_parent}/pod{pod_id}"), true)),
    }
}

/// A container's cgroup as the OCI spec names it (`cgroupsPath`) and as a cgroupfs path.
pub fn container_cgroup(pod_cgroup: &str, id: &str, systemd: bool) -> (String, String) {
    let pod_cgroup = pod_cgroup.trim_end_matches('/');
    if systemd {
        // runc's systemd driver: `slice:prefix:name` makes the scope `prefix-name.scope`.
        let slice = pod_cgroup.rsplit('/').next().unwrap_or_default();
        (
            format!("{slice}:berth:{id}"),
            format!("{pod_cgroup}/berth-{id}.scope"),
        )
    } else {
        let path = format!("{pod_cgroup}/{id}");
        (path.clone(), path)
    }
}

/// kubelet's cgroup parent (a path, or a slice name) as a cgroupfs path.
pub fn parent_path(parent: &str) -> Result<String, CgroupParentError> {
    if parent.contains("..") || parent.contains('\0') {
        return Err(CgroupParentError::Climbs(parent.to_owned()));
    }
    if let Some(stem) = parent.strip_suffix(".slice") {
        if parent.contains('/') {
            return Err(CgroupParentError::SliceWithSlash(parent.to_owned()));
        }
        if stem == "-" {
            return Ok("/".to_owned());
        }
        let mut path = String::new();
        let mut prefix = String::new();
        for part in stem.split('-') {
            if part.is_empty() {
                return Err(CgroupParentError::EmptySlicePart(parent.to_owned()));
            }
            prefix = if prefix.is_empty() {
                part.to_owned()
            } else {
                format!("{prefix}-{part}")
            };
            path.push_str(&format!("/{prefix}.slice"));
        }
        return Ok(path);
    }
    if !parent.starts_with('/') {
        return Ok(format!("/{parent}"));
    }
    Ok(parent.trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_expand_and_paths_stay() {
        assert_eq!(
            parent_path("kubepods-burstable-pod12.slice").unwrap(),
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod12.slice"
        );
        assert_eq!(parent_path("kubepods.slice").unwrap(), "/kubepods.slice");
        assert_eq!(
            parent_path("/kubepods/burstable/pod12").unwrap(),
            "/kubepods/burstable/pod12"
        );
        assert!(parent_path("/a/../../etc").is_err());
        assert!(parent_path("a--b.slice").is_err());
    }

    #[test]
    fn pods_without_a_parent_get_their_own_cgroup() {
        assert_eq!(
            pod_cgroup("", "ab12", false, "/berth").unwrap(),
            ("/berth/podab12".to_owned(), true)
        );
        assert_eq!(
            pod_cgroup("", "ab12", true, "/berth").unwrap(),
            ("/berth.slice/berth-podab12.slice".to_owned(), true)
        );
        assert_eq!(
            pod_cgroup("/kubepods/pod1", "ab12", false, "/berth").unwrap(),
            ("/kubepods/pod1".to_owned(), false)
        );
        assert_eq!(
            container_cgroup("/berth/podab12", "c1", false),
            (
                "/berth/podab12/c1".to_owned(),
                "/berth/podab12/c1".to_owned()
            )
        );
        assert_eq!(
            container_cgroup("/kubepods.slice/kubepods-pod1.slice", "c1", true),
            (
                "kubepods-pod1.slice:berth:c1".to_owned(),
                "/kubepods.slice/kubepods-pod1.slice/berth-c1.scope".to_owned()
            )
        );
    }
}
