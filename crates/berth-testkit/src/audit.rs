//! The leak audit: what a test daemon's berthd left on the node once the test removed every pod
//! (and so every container). Each leak is a line saying what and where; none is the wanted
//! answer.

use std::path::Path;

use crate::cni::CniNetwork;
use crate::daemon::TestDaemon;

impl TestDaemon {
    /// Everything of this daemon's that outlived its pods: their dirs, mounts (the spare
    /// namespace sets are the daemon's own and do not count), runc containers, processes,
    /// cgroups, and what CNI gave them on `net` (IPs, veths).
    pub fn leaks(&self, net: &CniNetwork) -> Vec<String> {
        let mut leaks = Vec::new();
        for dir in [
            self.state_dir.join("pods"),
            self.root.join("containers"),
            self.state_dir.join("containers"),
        ] {
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                leaks.push(format!("dir {}", entry.path().display()));
            }
        }
        let spares = self.state_dir.join("spare-namespaces");
        for mount in crate::cni::mounts_under(self.dir()) {
            if !mount.starts_with(&spares) {
                leaks.push(format!("mount {}", mount.display()));
            }
        }
        for id in self.runtime_containers("runc") {
            leaks.push(format!("runc container {id}"));
        }
        for pid in crate::teardown::processes_of(self.dir()) {
            if Some(pid) != self.pid() {
                leaks.push(format!("process {pid} {}", command_of(pid)));
            }
        }
        for cgroup in crate::teardown::cgroups_under(&self.cgroup_parent) {
            leaks.push(format!("cgroup {}", cgroup.display()));
        }
        for ip in net.leased_ips() {
            leaks.push(format!("CNI IP {ip}"));
        }
        for veth in net.veths() {
            leaks.push(format!("veth {veth}"));
        }
        leaks
    }
}

fn command_of(pid: u32) -> String {
    let cmdline =
        std::fs::read(Path::new("/proc").join(pid.to_string()).join("cmdline")).unwrap_or_default();
    String::from_utf8_lossy(&cmdline).replace('\0', " ")
}
