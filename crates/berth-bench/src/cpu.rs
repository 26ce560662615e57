//! CPU time the whole machine spent, every process of every runtime (daemons, shims, runc,
//! helpers) and the bench client alike: the root cgroup's usage counter, in nanoseconds where
//! the kernel keeps one, else the busy jiffies of /proc/stat.

use std::time::Duration;

/// The machine's CPU time so far; None when neither source can be read.
pub fn used() -> Option<Duration> {
    from_cgroup_v1()
        .or_else(from_cgroup_v2)
        .or_else(from_proc_stat)
}

fn from_cgroup_v1() -> Option<Duration> {
    let ns = std::fs::read_to_string("/sys/fs/cgroup/cpuacct/cpuacct.usage").ok()?;
    Some(Duration::from_nanos(ns.trim().parse().ok()?))
}

fn from_cgroup_v2() -> Option<Duration> {
    let stat = std::fs::read_to_string("/sys/fs/cgroup/cpu.stat").ok()?;
    let usec = stat
        .lines()
        .find_map(|l| l.strip_prefix("usage_usec "))?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_micros(usec))
}

/// user + nice + system + irq + softirq of the `cpu` line, at 100 ticks a second (USER_HZ).
fn from_proc_stat() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<u64> = stat
        .lines()
        .find_map(|l| l.strip_prefix("cpu "))?
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    let busy: u64 = [0, 1, 2, 5, 6].iter().filter_map(|&i| fields.get(i)).sum();
    Some(Duration::from_millis(busy * 10))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_counter_moves_with_work() {
        let before = super::used().unwrap_or_default();
        let mut x = 0u64;
        let start = std::time::Instant::now();
        while start.elapsed() < std::time::Duration::from_millis(50) {
            x = x.wrapping_mul(31).wrapping_add(1);
        }
        assert!(x != 1);
        let after = super::used().unwrap_or_default();
        assert!(after > before, "{before:?} → {after:?}");
    }
}
