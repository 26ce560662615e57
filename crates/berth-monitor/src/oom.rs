//! Whether the kernel's OOM killer ended the container: the `oom_kill` counter of its memory
//! cgroup (memory.oom_control on cgroup v1, memory.events on v2) grew while it ran.

use std::path::PathBuf;

/// The counter file of the memory cgroup `pid` is in.
pub fn counter_file(pid: u32) -> Option<PathBuf> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        if controllers.split(',').any(|c| c == "memory") {
            return Some(PathBuf::from(format!(
                "/sys/fs/cgroup/memory{path}/memory.oom_control"
            )));
        }
    }
    // A unified (v2-only) hierarchy: the "0::" line.
    let path = text.lines().find_map(|l| l.strip_prefix("0::"))?;
    Some(PathBuf::from(format!("/sys/fs/cgroup{path}/memory.events")))
}

/// The `oom_kill` count in a memory.oom_control or memory.events file.
pub fn read_count(file: &PathBuf) -> u64 {
    parse_count(&std::fs::read_to_string(file).unwrap_or_default())
}

fn parse_count(text: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn oom_kill_counts_from_v1_and_v2_files() {
        assert_eq!(
            super::parse_count("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n"),
            2
        );
        assert_eq!(
            super::parse_count("low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n"),
            1
        );
        assert_eq!(super::parse_count(""), 0);
    }
}
