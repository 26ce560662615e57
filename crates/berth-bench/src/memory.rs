//! Resident (RSS) and proportional (PSS: shared pages split among their users) memory of a
//! runtime's daemon and of its per-pod helpers, from /proc.

use crate::runtime::Processes;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub rss: u64,
    pub pss: u64,
}

impl std::ops::Add for Usage {
    type Output = Usage;
    fn add(self, o: Usage) -> Usage {
        Usage {
            rss: self.rss + o.rss,
            pss: self.pss + o.pss,
        }
    }
}

/// A process's usage, from `smaps_rollup` (kB figures); None when it is gone.
pub fn of_pid(pid: u32) -> Option<Usage> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    let kib = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|k| k * 1024)
    };
    Some(Usage {
        rss: kib("Rss:")?,
        pss: kib("Pss:")?,
    })
}

/// The helpers of a runtime: their count and total usage.
pub fn of_helpers(p: &Processes) -> (usize, Usage) {
    let mut count = 0;
    let mut total = Usage::default();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return (0, total);
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim() != p.helper_comm {
            continue;
        }
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if !String::from_utf8_lossy(&cmdline).contains(&p.helper_marker) {
            continue;
        }
        if let Some(u) = of_pid(pid) {
            count += 1;
            total = total + u;
        }
    }
    (count, total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_memory() {
        let me = of_pid(std::process::id()).unwrap();
        assert!(me.rss > 0 && me.pss > 0 && me.pss <= me.rss, "{me:?}");
        assert_eq!(of_pid(u32::MAX), None);
    }
}
