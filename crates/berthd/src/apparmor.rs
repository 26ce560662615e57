//! AppArmor, where the node has it (Debian's and Ubuntu's kernels enable it; this project's v1 VM
//! has none): a container's profile is the one its config names (`localhost/<name>`, which must
//! be loaded), berth's own default (`berth-default`, loaded on first use with apparmor_parser,
//! as containerd and CRI-O load theirs) for RuntimeDefault and for a config that names none, or
//! none when unconfined or privileged. runc applies it at the container's exec; berth-exec at an
//! exec'd process's.
//!
//! As containerd decides, the node "has AppArmor" when the kernel has it enabled and
//! apparmor_parser is there to load profiles: without the parser no default can be loaded.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The profile of RuntimeDefault.
pub const DEFAULT_PROFILE: &str = "berth-default";

/// berth-default: what a container may do (its files, the network, signals among its own
/// processes) and what it may not touch of the node's (writes to the kernel's tunables and
/// interfaces in /proc and /sys, mounts, the kernel's security files).
const DEFAULT_POLICY: &str = r#"#include <tunables/global>

profile berth-default flags=(attach_disconnected,mediate_deleted) {
  #include <abstractions/base>

  network,
  capability,
  file,
  umount,
  signal (receive) peer=unconfined,
  signal (send,receive) peer=berth-default,
  ptrace (trace,read,tracedby,readby) peer=berth-default,

  deny mount,

  # The kernel's files in /proc are the node's: read, never written. Sysctls are set by the
  # runtime at the pod's start; only the network's, namespaced, stay writable from inside.
  deny @{PROC}/* w,
  deny @{PROC}/{acpi,bus,driver,dynamic_debug,fs,irq,pressure,scsi,sysvipc,tty}/** w,
  deny @{PROC}/sys/{abi,crypto,debug,dev,fs,kernel,user,vm}/** w,
  deny @{PROC}/sysrq-trigger rwklx,
  deny @{PROC}/kcore rwklx,
  deny @{PROC}/kallsyms rwklx,

  # The node's devices, drivers and kernel settings in /sys: not written (cgroup files are).
  deny /sys/{block,bus,class,dev,devices,hypervisor,kernel,module,power}/** wklx,
  deny /sys/fs/{bpf,btrfs,ext4,fuse,pstore,xfs}/** wklx,
  deny /sys/firmware/** rwklx,
  deny /sys/kernel/security/** rwklx,
}
"#;

#[derive(Debug, thiserror::Error)]
pub enum AppArmorError {
    #[error("AppArmor profile `{0}` is not loaded on this node")]
    NotLoaded(String),
    #[error("loading AppArmor profile {DEFAULT_PROFILE}: {0}")]
    Load(String),
}

/// The node's AppArmor.
#[derive(Debug, Clone)]
pub enum AppArmor {
    /// Enabled in the kernel, with the parser that loads profiles; berth's own profile's file is
    /// written to `profiles` before it is loaded.
    Enabled {
        parser: PathBuf,
        profiles: PathBuf,
    },
    Unavailable,
}

impl AppArmor {
    /// What this node has; berth's profile files go to `profiles` (in the state dir).
    pub fn detect(profiles: &Path) -> AppArmor {
        let enabled = std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
            .is_ok_and(|v| v.starts_with('Y'));
        let parser = ["/sbin/apparmor_parser", "/usr/sbin/apparmor_parser"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.is_file());
        match (enabled, parser) {
            (true, Some(parser)) => AppArmor::Enabled {
                parser,
                profiles: profiles.to_path_buf(),
            },
            _ => AppArmor::Unavailable,
        }
    }

    pub fn enabled(&self) -> bool {
        matches!(self, AppArmor::Enabled { .. })
    }

    /// Whether profile `name` is loaded in the kernel.
    pub fn is_loaded(&self, name: &str) -> bool {
        std::fs::read_to_string("/sys/kernel/security/apparmor/profiles").is_ok_and(|list| {
            list.lines().any(|l| {
                l.rsplit_once(" (")
                    .is_some_and(|(profile, _)| profile == name)
            })
        })
    }

    /// Loads berth-default unless it is loaded. Blocking.
    pub fn ensure_default(&self) -> Result<(), AppArmorError> {
        let AppArmor::Enabled { parser, profiles } = self else {
            return Err(AppArmorError::Load("this node has no AppArmor".into()));
        };
        if self.is_loaded(DEFAULT_PROFILE) {
            return Ok(());
        }
        let failed = |e: &dyn std::fmt::Display| AppArmorError::Load(e.to_string());
        std::fs::create_dir_all(profiles).map_err(|e| failed(&e))?;
        let file = profiles.join(DEFAULT_PROFILE);
        std::fs::File::create(&file)
            .and_then(|mut f| f.write_all(DEFAULT_POLICY.as_bytes()))
            .map_err(|e| failed(&e))?;
        // -K: no cache of ours in the system's; -r: replace a stale one.
        let out = Command::new(parser)
            .arg("-Kr")
            .arg(&file)
            .output()
            .map_err(|e| failed(&e))?;
        if !out.status.success() {
            return Err(failed(&String::from_utf8_lossy(&out.stderr).trim()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_default_policy_names_itself() {
        assert!(super::DEFAULT_POLICY.contains(&format!("profile {} ", super::DEFAULT_PROFILE)));
    }
}
