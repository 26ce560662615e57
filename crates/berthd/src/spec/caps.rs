//! Capabilities: the default set (the one containerd and Docker give), CRI add/drop with `ALL`,
//! and every capability for privileged containers.

/// Every capability Linux knows, in number order (the numbers the exec plan is written in).
pub use berth_exec::caps::NAMES as ALL;

/// What an unprivileged container gets unless its config adds or drops.
pub const DEFAULT: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown capability `{0}`")]
pub struct UnknownCapability(pub String);

/// `net_raw`, `NET_RAW` or `CAP_NET_RAW` → `CAP_NET_RAW`; `ALL` stays `ALL`.
pub fn normalize(name: &str) -> Result<String, UnknownCapability> {
    let upper = name.trim().to_ascii_uppercase();
    if upper == "ALL" {
        return Ok(upper);
    }
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    if ALL.contains(&full.as_str()) {
        Ok(full)
    } else {
        Err(UnknownCapability(name.to_owned()))
    }
}

/// The capabilities berthd itself may hand out: its bounding set (a node may withhold some,
/// CAP_SYS_RESOURCE on this one; asking runc for more fails the container).
pub fn available() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapBnd:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(u64::MAX)
}

/// Every capability in `available`.
fn all_of(available: u64) -> Vec<String> {
    ALL.iter()
        .enumerate()
        .filter(|(bit, _)| available & (1 << bit) != 0)
        .map(|(_, c)| c.to_string())
        .collect()
}

/// The capability set from the defaults and the config's add/drop lists: `ALL` in add gives every
/// available capability, `ALL` in drop starts from none; then single adds, then single drops.
/// Privileged containers get every available capability.
pub fn compute(
    add: &[String],
    drop: &[String],
    privileged: bool,
    available: u64,
) -> Result<Vec<String>, UnknownCapability> {
    if privileged {
        return Ok(all_of(available));
    }
    let add: Vec<String> = add.iter().map(|c| normalize(c)).collect::<Result<_, _>>()?;
    let drop: Vec<String> = drop
        .iter()
        .map(|c| normalize(c))
        .collect::<Result<_, _>>()?;
    let mut caps: Vec<String> = DEFAULT.iter().map(|c| c.to_string()).collect();
    if add.iter().any(|c| c == "ALL") {
        caps = all_of(available);
    }
    if drop.iter().any(|c| c == "ALL") {
        caps.clear();
    }
    for c in add.iter().filter(|c| *c != "ALL") {
        if !caps.contains(c) {
            caps.push(c.clone());
        }
    }
    caps.retain(|c| !drop.contains(c));
    Ok(caps)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn add_and_drop_with_all() {
        let every = u64::MAX;
        let d = compute(&[], &v(&["net_raw"]), false, every).unwrap();
        assert!(!d.contains(&"CAP_NET_RAW".to_string()) && d.len() == 13);
        let only = compute(&v(&["NET_ADMIN"]), &v(&["ALL"]), false, every).unwrap();
        assert_eq!(only, v(&["CAP_NET_ADMIN"]));
        let all = compute(&v(&["ALL"]), &v(&["CAP_SYS_ADMIN"]), false, every).unwrap();
        assert_eq!(all.len(), ALL.len() - 1);
        assert_eq!(
            compute(&[], &v(&["ALL"]), true, every).unwrap().len(),
            ALL.len()
        );
        let without_resource = every & !(1 << 24);
        let privileged = compute(&[], &[], true, without_resource).unwrap();
        assert!(
            !privileged.contains(&"CAP_SYS_RESOURCE".to_string())
                && privileged.len() == ALL.len() - 1
        );
        assert!(compute(&v(&["FLY"]), &[], false, every).is_err());
    }
}
