//! The pod's cgroup parent as a cgroupfs path. kubelet sends a path with the cgroupfs driver and
//! a slice name with the systemd driver; a slice name expands to its path as systemd nests slices
//! (`kubepods-burstable-pod1.slice` → `/kubepods.slice/kubepods-burstable.slice/…`).

/// berth's own parent for pods that name none, so that every pod gets a cgroup of its own.
pub const DEFAULT_PARENT: &str = "/berth";

pub fn parent_path(parent: &str) -> Result<String, String> {
    if parent.is_empty() {
        return Ok(DEFAULT_PARENT.to_owned());
    }
    if parent.contains("..") || parent.contains('\0') {
        return Err(format!("cgroup parent `{parent}` may not contain `..`"));
    }
    if let Some(stem) = parent.strip_suffix(".slice") {
        if parent.contains('/') {
            return Err(format!("systemd slice `{parent}` may not contain `/`"));
        }
        if stem == "-" {
            return Ok("/".to_owned());
        }
        let mut path = String::new();
        let mut prefix = String::new();
        for part in stem.split('-') {
            if part.is_empty() {
                return Err(format!("systemd slice `{parent}` has an empty part"));
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
        assert_eq!(parent_path("").unwrap(), "/berth");
        assert!(parent_path("/a/../../etc").is_err());
        assert!(parent_path("a--b.slice").is_err());
    }
}
