//! cgroup v2: every figure in one directory.

use std::path::Path;

use super::{CgroupStats, CpuStats, MemoryStats, flat_keyed, limit, read_text, read_u64};

pub fn read(dir: &Path) -> CgroupStats {
    CgroupStats {
        cpu: cpu(dir),
        memory: memory(dir),
        pids: read_u64(&dir.join("pids.current")),
        pressure: super::read_pressure(dir),
    }
}

fn cpu(dir: &Path) -> Option<CpuStats> {
    // cpu.stat exists in every v2 cgroup, with or without the cpu controller.
    let text = read_text(dir.join("cpu.stat"))?;
    let stat = flat_keyed(&text);
    let ns = |k| stat(k).map(|us: u64| us.saturating_mul(1000));
    Some(CpuStats {
        usage_ns: ns("usage_usec")?,
        user_ns: ns("user_usec").unwrap_or(0),
        system_ns: ns("system_usec").unwrap_or(0),
        periods: stat("nr_periods").unwrap_or(0),
        throttled_periods: stat("nr_throttled").unwrap_or(0),
        throttled_ns: ns("throttled_usec").unwrap_or(0),
    })
}

fn memory(dir: &Path) -> Option<MemoryStats> {
    let usage = read_u64(&dir.join("memory.current"))?;
    let text = read_text(dir.join("memory.stat")).unwrap_or_default();
    let stat = flat_keyed(&text);
    let get = |k| stat(k).unwrap_or(0);
    let events = read_text(dir.join("memory.events")).unwrap_or_default();
    let inactive_file = get("inactive_file");
    Some(MemoryStats {
        usage,
        working_set: usage.saturating_sub(inactive_file),
        rss: get("anon"),
        cache: get("file"),
        mapped_file: get("file_mapped"),
        inactive_file,
        active_file: get("active_file"),
        page_faults: get("pgfault"),
        major_page_faults: get("pgmajfault"),
        limit: read_text(dir.join("memory.max")).and_then(|t| limit(&t)),
        max_usage: read_u64(&dir.join("memory.peak")),
        failcnt: flat_keyed(&events)("max").unwrap_or(0),
        swap: read_u64(&dir.join("memory.swap.current")),
        swap_limit: read_text(dir.join("memory.swap.max")).and_then(|t| limit(&t)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cgroup v2 directory as the kernel lays it out (file names and formats of 6.x kernels;
    /// values from a container that ran a shell and a memory hog).
    fn fixture(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        dir
    }

    const CPU_STAT: &str = "usage_usec 1520433\nuser_usec 1200100\nsystem_usec 320333\nnr_periods 210\nnr_throttled 12\nthrottled_usec 84000\nnr_bursts 0\nburst_usec 0\n";
    const MEMORY_STAT: &str = "anon 52428800\nfile 10485760\nkernel 1048576\nkernel_stack 65536\npagetables 262144\nsec_pagetables 0\npercpu 0\nsock 0\nvmalloc 0\nshmem 0\nzswap 0\nzswapped 0\nfile_mapped 4194304\nfile_dirty 0\nfile_writeback 0\nswapcached 0\nanon_thp 0\nfile_thp 0\nshmem_thp 0\ninactive_anon 52428800\nactive_anon 0\ninactive_file 6291456\nactive_file 4194304\nunevictable 0\nslab_reclaimable 0\nslab_unreclaimable 0\nslab 0\npgfault 13520\npgmajfault 7\n";

    #[test]
    fn a_limited_container_with_swap_and_psi() {
        let dir = fixture(&[
            ("cpu.stat", CPU_STAT),
            ("memory.current", "64749568\n"),
            ("memory.stat", MEMORY_STAT),
            ("memory.max", "134217728\n"),
            ("memory.peak", "70000000\n"),
            (
                "memory.events",
                "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\noom_group_kill 0\n",
            ),
            ("memory.swap.current", "1048576\n"),
            ("memory.swap.max", "8388608\n"),
            ("pids.current", "4\n"),
            (
                "cpu.pressure",
                "some avg10=1.50 avg60=0.40 avg300=0.10 total=91000\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=12000\n",
            ),
            (
                "memory.pressure",
                "some avg10=0.00 avg60=0.00 avg300=0.00 total=500\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=200\n",
            ),
        ]);
        let stats = read(dir.path());
        assert_eq!(
            stats.cpu,
            Some(CpuStats {
                usage_ns: 1_520_433_000,
                user_ns: 1_200_100_000,
                system_ns: 320_333_000,
                periods: 210,
                throttled_periods: 12,
                throttled_ns: 84_000_000,
            })
        );
        let memory = stats.memory.unwrap();
        assert_eq!(memory.usage, 64_749_568);
        assert_eq!(memory.working_set, 64_749_568 - 6_291_456);
        assert_eq!(
            (memory.rss, memory.cache, memory.mapped_file),
            (52_428_800, 10_485_760, 4_194_304)
        );
        assert_eq!((memory.page_faults, memory.major_page_faults), (13_520, 7));
        assert_eq!(memory.limit, Some(134_217_728));
        assert_eq!(
            memory.available(),
            Some(134_217_728 - (64_749_568 - 6_291_456))
        );
        assert_eq!((memory.max_usage, memory.failcnt), (Some(70_000_000), 3));
        assert_eq!(
            (memory.swap, memory.swap_available()),
            (Some(1_048_576), Some(7_340_032))
        );
        assert_eq!(stats.pids, Some(4));
        let pressure = stats.pressure.unwrap();
        let cpu = pressure.cpu.unwrap();
        assert_eq!((cpu.some.total_us, cpu.full.total_us), (91_000, 12_000));
        assert_eq!((cpu.some.avg10, cpu.some.avg60), (1.5, 0.4));
        let memory = pressure.memory.unwrap();
        assert_eq!((memory.some.total_us, memory.full.total_us), (500, 200));
        assert_eq!(pressure.io, None);
    }

    #[test]
    fn an_unlimited_cgroup_without_swap_or_psi() {
        let dir = fixture(&[
            ("cpu.stat", "usage_usec 10\nuser_usec 4\nsystem_usec 6\n"),
            ("memory.current", "4096\n"),
            ("memory.stat", "anon 4096\nfile 0\ninactive_file 8192\n"),
            ("memory.max", "max\n"),
        ]);
        let stats = read(dir.path());
        let cpu = stats.cpu.unwrap();
        assert_eq!((cpu.usage_ns, cpu.periods), (10_000, 0));
        let memory = stats.memory.unwrap();
        assert_eq!(memory.working_set, 0, "never below zero");
        assert_eq!((memory.limit, memory.available()), (None, None));
        assert_eq!((memory.swap, memory.swap_available()), (None, None));
        assert_eq!((stats.pids, stats.pressure), (None, None));
    }

    #[test]
    fn a_cgroup_that_is_gone_reads_as_nothing() {
        assert_eq!(
            read(Path::new("/nonexistent/cgroup")),
            CgroupStats::default()
        );
    }
}
