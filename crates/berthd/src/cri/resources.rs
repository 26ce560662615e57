//! `LinuxContainerResources` checked field by field against what the kernel takes, and made
//! berth's `ResourceLimits`. Zero leaves a value unset, as the CRI says. A value the kernel
//! would refuse (or silently bend: a 2-byte memory limit becomes 0) is InvalidArgument here,
//! naming the field, rather than a runc failure after the container was half made.

use berth_cri::v1 as cri;
use tonic::Status;

use crate::spec::ResourceLimits;

/// CFS periods the kernel takes, in microseconds (1 ms to 1 s).
const CPU_PERIOD: std::ops::RangeInclusive<i64> = 1_000..=1_000_000;
/// CFS quotas the kernel takes, in microseconds (from 1 ms to its bandwidth limit).
const CPU_QUOTA: std::ops::RangeInclusive<i64> = 1_000..=17_592_186_044_415;
/// cgroup v1 `cpu.shares` (v2 weights are made from them).
const CPU_SHARES: std::ops::RangeInclusive<i64> = 2..=262_144;
/// One page: the least a memory limit can be and mean what it says.
const MEMORY_FLOOR: i64 = 4096;

pub(super) fn resource_limits(r: &cri::LinuxContainerResources) -> Result<ResourceLimits, Status> {
    let check = |field: &str, value: i64, valid: bool, wanted: &str| {
        if value == 0 || valid {
            Ok(())
        } else {
            Err(Status::invalid_argument(format!(
                "{field} {value}: {wanted} (or 0, not set)"
            )))
        }
    };
    check(
        "cpu_period",
        r.cpu_period,
        CPU_PERIOD.contains(&r.cpu_period),
        "microseconds from 1000 to 1000000 are wanted",
    )?;
    check(
        "cpu_quota",
        r.cpu_quota,
        r.cpu_quota == -1 || CPU_QUOTA.contains(&r.cpu_quota),
        "-1 (no limit) or microseconds from 1000 to 17592186044415 are wanted",
    )?;
    check(
        "cpu_shares",
        r.cpu_shares,
        CPU_SHARES.contains(&r.cpu_shares),
        "shares from 2 to 262144 are wanted",
    )?;
    check(
        "memory_limit_in_bytes",
        r.memory_limit_in_bytes,
        r.memory_limit_in_bytes >= MEMORY_FLOOR,
        "at least 4096 bytes (one page) are wanted",
    )?;
    check(
        "memory_swap_limit_in_bytes",
        r.memory_swap_limit_in_bytes,
        r.memory_swap_limit_in_bytes == -1 || r.memory_swap_limit_in_bytes >= MEMORY_FLOOR,
        "-1 (no limit) or at least 4096 bytes are wanted",
    )?;
    // The swap limit is of memory and swap together (the OCI's and cgroup v1's meaning; runc
    // makes v2's swap-only value from it), so it needs a memory limit it is not below.
    let swap = r.memory_swap_limit_in_bytes;
    if swap > 0 && (swap < r.memory_limit_in_bytes || r.memory_limit_in_bytes == 0) {
        return Err(Status::invalid_argument(format!(
            "memory_swap_limit_in_bytes {} (memory and swap together) needs a \
             memory_limit_in_bytes it is not below (that is {})",
            swap, r.memory_limit_in_bytes
        )));
    }
    if !(-1000..=1000).contains(&r.oom_score_adj) {
        return Err(Status::invalid_argument(format!(
            "oom_score_adj {}: from -1000 to 1000 is wanted",
            r.oom_score_adj
        )));
    }
    cpu_list("cpuset_cpus", &r.cpuset_cpus)?;
    cpu_list("cpuset_mems", &r.cpuset_mems)?;
    for h in &r.hugepage_limits {
        page_size(&h.page_size)?;
    }
    for key in r.unified.keys() {
        unified_key(key)?;
    }
    Ok(ResourceLimits {
        cpu_period: r.cpu_period,
        cpu_quota: r.cpu_quota,
        cpu_shares: r.cpu_shares,
        memory_limit_in_bytes: r.memory_limit_in_bytes,
        oom_score_adj: r.oom_score_adj,
        cpuset_cpus: r.cpuset_cpus.clone(),
        cpuset_mems: r.cpuset_mems.clone(),
        hugepage_limits: r
            .hugepage_limits
            .iter()
            .map(|h| (h.page_size.clone(), h.limit))
            .collect(),
        unified: r.unified.clone().into_iter().collect(),
        memory_swap_limit_in_bytes: r.memory_swap_limit_in_bytes,
    })
}

/// A cpuset list as the kernel reads it: `0-3,8,10-11`, each range ascending.
fn cpu_list(field: &str, list: &str) -> Result<(), Status> {
    if list.is_empty() {
        return Ok(());
    }
    let bad = || {
        Status::invalid_argument(format!(
            "{field} `{list}`: a list of numbers and ranges such as `0-3,8` is wanted"
        ))
    };
    for part in list.split(',') {
        let (low, high) = part.split_once('-').unwrap_or((part, part));
        let number = |s: &str| {
            (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse::<u32>().ok())
                .flatten()
        };
        match (number(low), number(high)) {
            (Some(low), Some(high)) if low <= high => {}
            _ => return Err(bad()),
        }
    }
    Ok(())
}

/// A huge page size as the kernel names its cgroup files: `2MB`, `1GB`, `64KB`.
fn page_size(size: &str) -> Result<(), Status> {
    let digits = size.trim_end_matches(['K', 'M', 'G', 'B']);
    let unit = &size[digits.len()..];
    if !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && ["KB", "MB", "GB"].contains(&unit)
    {
        Ok(())
    } else {
        Err(Status::invalid_argument(format!(
            "hugepage_limits page_size `{size}`: a size such as `2MB` or `1GB` is wanted"
        )))
    }
}

/// A cgroup v2 file name (`memory.high`): it names a file in the container's cgroup, so it may
/// name nothing else.
fn unified_key(key: &str) -> Result<(), Status> {
    let valid = key.contains('.')
        && !key.starts_with('.')
        && !key.contains("..")
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(Status::invalid_argument(format!(
            "unified key `{key}`: a cgroup v2 file name such as `memory.high` is wanted"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_the_kernel_refuses_is_invalid_and_names_the_field() {
        let ok = cri::LinuxContainerResources {
            cpu_period: 100_000,
            cpu_quota: 50_000,
            cpu_shares: 1024,
            memory_limit_in_bytes: 64 << 20,
            cpuset_cpus: "0-1,3".into(),
            ..cri::LinuxContainerResources::default()
        };
        assert!(resource_limits(&ok).is_ok());
        assert!(resource_limits(&cri::LinuxContainerResources::default()).is_ok());
        let bad: Vec<(&str, cri::LinuxContainerResources)> = vec![
            (
                "cpu_period",
                cri::LinuxContainerResources {
                    cpu_period: 1 << 62,
                    ..ok.clone()
                },
            ),
            (
                "cpu_quota",
                cri::LinuxContainerResources {
                    cpu_quota: 999,
                    ..ok.clone()
                },
            ),
            (
                "memory_limit_in_bytes",
                cri::LinuxContainerResources {
                    memory_limit_in_bytes: 2,
                    ..ok.clone()
                },
            ),
            (
                "cpuset_cpus",
                cri::LinuxContainerResources {
                    cpuset_cpus: "/dev/null".into(),
                    ..ok.clone()
                },
            ),
            (
                "cpuset_mems",
                cri::LinuxContainerResources {
                    cpuset_mems: "NaN".into(),
                    ..ok.clone()
                },
            ),
            (
                "cpuset_cpus",
                cri::LinuxContainerResources {
                    cpuset_cpus: "3-1".into(),
                    ..ok.clone()
                },
            ),
            (
                "oom_score_adj",
                cri::LinuxContainerResources {
                    oom_score_adj: 1001,
                    ..ok.clone()
                },
            ),
            (
                "unified",
                cri::LinuxContainerResources {
                    unified: [("../../x".to_string(), "1".to_string())].into(),
                    ..ok.clone()
                },
            ),
        ];
        for (field, resources) in bad {
            let err = resource_limits(&resources).unwrap_err();
            assert_eq!(err.code(), tonic::Code::InvalidArgument);
            assert!(err.message().contains(field), "{field}: {err:?}");
        }
    }
}
