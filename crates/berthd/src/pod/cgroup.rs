//! The pod's cgroup as a cgroupfs path. kubelet sends a path with the cgroupfs driver and a slice
//! name with the systemd driver; a slice name expands to its path as systemd nests slices
//! (`kubepods-burstable-pod1.slice` → `/kubepods.slice/kubepods-burstable.slice/…`). A pod that
//! names no parent gets a cgroup of berth's own, so that its figures always exist.

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

/// The pod's cgroup, and whether berth makes and removes it (kubelet's parents are kubelet's;
/// systemd makes and collects slices itself). `own_parent` holds those berth makes.
pub fn pod_cgroup(
    requested: &str,
    pod_id: &str,
    systemd: bool,
    own_parent: &str,
) -> Result<(String, bool), CgroupParentError> {
    match (requested.is_empty(), systemd) {
        (false, _) => Ok((parent_path(requested)?, false)),
        (true, true) => Ok((parent_path(&format!("berth-pod{pod_id}.slice"))?, false)),
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
            ("/berth.slice/berth-podab12.slice".to_owned(), false)
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
