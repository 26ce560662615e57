//! What a cgroup has used, read from cgroupfs: v1 (one hierarchy per controller) or v2 (one
//! tree). Both readers produce the same figures; what a kernel does not have stays `None`.

use std::path::{Path, PathBuf};

pub mod v1;
pub mod v2;

/// Where cgroupfs is mounted.
pub const ROOT: &str = "/sys/fs/cgroup";

/// A counter this large means "no limit" (v1 writes the page-rounded i64::MAX).
const UNLIMITED: u64 = 1 << 62;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct CgroupStats {
    pub cpu: Option<CpuStats>,
    pub memory: Option<MemoryStats>,
    /// Processes (tasks) in the cgroup and below.
    pub pids: Option<u64>,
    /// Pressure stall information (v2 files; on a v1 node, the unified hierarchy's).
    pub pressure: Option<Pressure>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuStats {
    /// Cumulative CPU time, nanoseconds.
    pub usage_ns: u64,
    pub user_ns: u64,
    pub system_ns: u64,
    /// CFS quota enforcement: periods elapsed, periods throttled, time throttled (ns).
    pub periods: u64,
    pub throttled_periods: u64,
    pub throttled_ns: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryStats {
    /// All memory charged to the cgroup, page cache included.
    pub usage: u64,
    /// usage − inactive file pages: what the kernel could not easily reclaim (kubelet evicts on it).
    pub working_set: u64,
    /// Anonymous memory (and swap cache).
    pub rss: u64,
    /// Page cache.
    pub cache: u64,
    pub mapped_file: u64,
    pub inactive_file: u64,
    pub active_file: u64,
    pub page_faults: u64,
    pub major_page_faults: u64,
    /// None: no limit.
    pub limit: Option<u64>,
    /// The most ever used (v1 only).
    pub max_usage: Option<u64>,
    /// Times the limit was hit (v1 failcnt, v2 `max` events).
    pub failcnt: u64,
    /// Swap in use and its limit, where the kernel accounts swap.
    pub swap: Option<u64>,
    pub swap_limit: Option<u64>,
}

impl MemoryStats {
    /// What may still be used before the limit: None without a limit.
    pub fn available(&self) -> Option<u64> {
        self.limit.map(|l| l.saturating_sub(self.working_set))
    }

    /// Swap left before its limit: None without one.
    pub fn swap_available(&self) -> Option<u64> {
        Some(self.swap_limit?.saturating_sub(self.swap.unwrap_or(0)))
    }
}

/// Pressure stall information per resource.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Pressure {
    pub cpu: Option<Stall>,
    pub memory: Option<Stall>,
    pub io: Option<Stall>,
}

/// One PSI file: the time some task waited, and the time every task stalled at once.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Stall {
    pub some: StallLine,
    pub full: StallLine,
}

/// One line of a PSI file: the cumulative stall time and its share of the last 10, 60 and 300
/// seconds (percent).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StallLine {
    pub total_us: u64,
    pub avg10: f64,
    pub avg60: f64,
    pub avg300: f64,
}

/// Reads the cgroup at `rel` (a cgroupfs path such as `/berth/<pod>/<ctr>`) on this node.
pub fn read(rel: &str) -> CgroupStats {
    let rel = rel.trim_start_matches('/');
    if crate::cgroups::is_v2() {
        v2::read(&Path::new(ROOT).join(rel))
    } else {
        v1::read(&v1::Dirs::on_node(rel))
    }
}

/// `key value` lines (memory.stat, cpu.stat, cpuacct.stat) as a lookup.
fn flat_keyed(text: &str) -> impl Fn(&str) -> Option<u64> + '_ {
    move |key| {
        text.lines().find_map(|line| {
            let (k, v) = line.split_once(' ')?;
            (k == key).then(|| v.trim().parse().ok()).flatten()
        })
    }
}

fn read_u64(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn read_text(path: PathBuf) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// A limit file's value: None when it means "unlimited" (`max`, or v1's huge number).
fn limit(text: &str) -> Option<u64> {
    let v: u64 = text.trim().parse().ok()?;
    (v < UNLIMITED).then_some(v)
}

/// A PSI file (`some avg10=… avg60=… avg300=… total=N`, then `full …`).
fn parse_pressure(text: &str) -> Option<Stall> {
    let line = |kind: &str| -> Option<StallLine> {
        let fields: Vec<&str> = text
            .lines()
            .find(|l| l.starts_with(kind))?
            .split_whitespace()
            .collect();
        let field = |key: &str| fields.iter().find_map(|f| f.strip_prefix(key));
        Some(StallLine {
            total_us: field("total=")?.parse().ok()?,
            avg10: field("avg10=").and_then(|v| v.parse().ok()).unwrap_or(0.0),
            avg60: field("avg60=").and_then(|v| v.parse().ok()).unwrap_or(0.0),
            avg300: field("avg300=").and_then(|v| v.parse().ok()).unwrap_or(0.0),
        })
    };
    Some(Stall {
        some: line("some")?,
        // cpu.pressure has no `full` line on older kernels.
        full: line("full").unwrap_or_default(),
    })
}

/// The PSI files of a v2 directory; None when the kernel has no PSI.
fn read_pressure(dir: &Path) -> Option<Pressure> {
    let one = |name: &str| read_text(dir.join(name)).and_then(|t| parse_pressure(&t));
    let pressure = Pressure {
        cpu: one("cpu.pressure"),
        memory: one("memory.pressure"),
        io: one("io.pressure"),
    };
    (pressure != Pressure::default()).then_some(pressure)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pressure_totals_and_limits() {
        let psi = "some avg10=1.25 avg60=0.50 avg300=0.10 total=4656\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=2593\n";
        assert_eq!(
            parse_pressure(psi),
            Some(Stall {
                some: StallLine {
                    total_us: 4656,
                    avg10: 1.25,
                    avg60: 0.5,
                    avg300: 0.1
                },
                full: StallLine {
                    total_us: 2593,
                    ..StallLine::default()
                },
            })
        );
        assert_eq!(parse_pressure("garbage"), None);
        assert_eq!(limit("max\n"), None);
        assert_eq!(limit("9223372036854771712\n"), None);
        assert_eq!(limit("104857600\n"), Some(104857600));
    }
}
