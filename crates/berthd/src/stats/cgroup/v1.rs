//! cgroup v1: the figures come from four hierarchies (cpuacct, cpu, memory, pids) and, on a
//! hybrid node, pressure from the unified one.

use std::path::{Path, PathBuf};

use super::{CgroupStats, CpuStats, MemoryStats, flat_keyed, limit, read_text, read_u64};

/// The cgroup's directory in each hierarchy berth reads.
#[derive(Debug, Clone)]
pub struct Dirs {
    pub cpuacct: PathBuf,
    pub cpu: PathBuf,
    pub memory: PathBuf,
    pub pids: PathBuf,
    /// The unified hierarchy of a hybrid node (PSI lives there).
    pub unified: PathBuf,
}

impl Dirs {
    /// The cgroup at `rel` (no leading slash) in this node's hierarchies.
    pub fn on_node(rel: &str) -> Dirs {
        let root = Path::new(super::ROOT);
        Dirs {
            cpuacct: root.join("cpuacct").join(rel),
            cpu: root.join("cpu").join(rel),
            memory: root.join("memory").join(rel),
            pids: root.join("pids").join(rel),
            unified: root.join("unified").join(rel),
        }
    }
}

pub fn read(dirs: &Dirs) -> CgroupStats {
    CgroupStats {
        cpu: cpu(dirs),
        memory: memory(&dirs.memory),
        pids: read_u64(&dirs.pids.join("pids.current")),
        pressure: super::read_pressure(&dirs.unified),
    }
}

fn cpu(dirs: &Dirs) -> Option<CpuStats> {
    let usage_ns = read_u64(&dirs.cpuacct.join("cpuacct.usage"))?;
    let (user_ns, system_ns) = match (
        read_u64(&dirs.cpuacct.join("cpuacct.usage_user")),
        read_u64(&dirs.cpuacct.join("cpuacct.usage_sys")),
    ) {
        (Some(u), Some(s)) => (u, s),
        // Older kernels: only cpuacct.stat, in USER_HZ ticks (100 per second on Linux).
        _ => {
            let text = read_text(dirs.cpuacct.join("cpuacct.stat")).unwrap_or_default();
            let ticks = flat_keyed(&text);
            let ns = |k| ticks(k).unwrap_or(0).saturating_mul(10_000_000);
            (ns("user"), ns("system"))
        }
    };
    let text = read_text(dirs.cpu.join("cpu.stat")).unwrap_or_default();
    let stat = flat_keyed(&text);
    Some(CpuStats {
        usage_ns,
        user_ns,
        system_ns,
        periods: stat("nr_periods").unwrap_or(0),
        throttled_periods: stat("nr_throttled").unwrap_or(0),
        throttled_ns: stat("throttled_time").unwrap_or(0),
    })
}

fn memory(dir: &Path) -> Option<MemoryStats> {
    let usage = read_u64(&dir.join("memory.usage_in_bytes"))?;
    let text = read_text(dir.join("memory.stat")).unwrap_or_default();
    // The total_ keys count the cgroup and its children (a pod's containers).
    let stat = flat_keyed(&text);
    let get = |k: &str| stat(&format!("total_{k}")).or_else(|| stat(k)).unwrap_or(0);
    let inactive_file = get("inactive_file");
    let limit_bytes = read_text(dir.join("memory.limit_in_bytes")).and_then(|t| limit(&t));
    // memsw counts memory plus swap; it exists only where swap accounting is on.
    let memsw = read_u64(&dir.join("memory.memsw.usage_in_bytes"));
    let memsw_limit = read_text(dir.join("memory.memsw.limit_in_bytes")).and_then(|t| limit(&t));
    Some(MemoryStats {
        usage,
        working_set: usage.saturating_sub(inactive_file),
        rss: get("rss"),
        cache: get("cache"),
        mapped_file: get("mapped_file"),
        inactive_file,
        active_file: get("active_file"),
        page_faults: get("pgfault"),
        major_page_faults: get("pgmajfault"),
        limit: limit_bytes,
        max_usage: read_u64(&dir.join("memory.max_usage_in_bytes")),
        failcnt: read_u64(&dir.join("memory.failcnt")).unwrap_or(0),
        swap: memsw.map(|m| m.saturating_sub(usage)),
        swap_limit: match (memsw_limit, limit_bytes) {
            (Some(both), Some(mem)) => Some(both.saturating_sub(mem)),
            _ => None,
        },
    })
}
