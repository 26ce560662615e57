//! The container's init process, reached through a descriptor of its `/proc` directory: once that
//! is open and the start time read through it matches the plan's, every file opened beneath it
//! is that process's (a dead process's files no longer open; they never become another's).

use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};

use berth_exec::plan;
use rustix::fs::{Mode, OFlags};
use rustix::process::{Resource, Rlimit};
use rustix::thread::{LinkNameSpaceType, move_into_link_name_space};

pub struct InitProcess {
    dir: OwnedFd,
}

impl InitProcess {
    pub fn open(init: &plan::InitProcess) -> Result<InitProcess, String> {
        let gone = || "the container's process is gone (the container is not running)".to_owned();
        let dir = rustix::fs::open(
            format!("/proc/{}", init.pid),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|_| gone())?;
        let process = InitProcess { dir };
        let stat = process.read("stat").map_err(|_| gone())?;
        if start_time(&stat) != Some(init.start_time) {
            return Err(gone());
        }
        Ok(process)
    }

    /// The init's resource limits: what runc gave it (the spec's, over what runc itself ran
    /// with, which differs between runc builds: a Go runtime before 1.21 raised its soft file
    /// limit and left it raised for the container). The same reached through the same runc is
    /// what `runc exec` gives a process; the init's own are the one reliable record of them.
    pub fn limits(&self) -> Result<Vec<(Resource, Rlimit)>, String> {
        let text = self
            .read("limits")
            .map_err(|e| format!("the container's resource limits: {e}"))?;
        parse_limits(&text)
    }

    fn read(&self, name: &str) -> std::io::Result<String> {
        let fd = rustix::fs::openat(
            &self.dir,
            name,
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let mut text = String::new();
        std::fs::File::from(fd).read_to_string(&mut text)?;
        Ok(text)
    }

    /// The init's namespaces that are not the helper's own (joining one's own user namespace is
    /// an error; the others would be no-ops).
    pub fn namespaces(&self) -> Result<Namespaces, String> {
        let mut differing = Vec::new();
        for kind in KINDS {
            let path = format!("ns/{}", kind.proc_name);
            let theirs = match rustix::fs::openat(
                &self.dir,
                path.as_str(),
                OFlags::RDONLY | OFlags::CLOEXEC,
                Mode::empty(),
            ) {
                Ok(fd) => fd,
                // A kind of namespace this kernel does not have.
                Err(rustix::io::Errno::NOENT) => continue,
                Err(e) => return Err(format!("the container's {} namespace: {e}", kind.proc_name)),
            };
            let ours = rustix::fs::stat(format!("/proc/self/{path}"))
                .map_err(|e| format!("the helper's {} namespace: {e}", kind.proc_name))?;
            let their_stat = rustix::fs::fstat(&theirs)
                .map_err(|e| format!("the container's {} namespace: {e}", kind.proc_name))?;
            if (their_stat.st_dev, their_stat.st_ino) != (ours.st_dev, ours.st_ino) {
                differing.push((kind, theirs));
            }
        }
        Ok(Namespaces { differing })
    }
}

/// `/proc/<pid>/limits`, by the kernel's names for each limit (`fs/proc/base.c`).
const LIMIT_NAMES: [(&str, Resource); 16] = [
    ("Max cpu time", Resource::Cpu),
    ("Max file size", Resource::Fsize),
    ("Max data size", Resource::Data),
    ("Max stack size", Resource::Stack),
    ("Max core file size", Resource::Core),
    ("Max resident set", Resource::Rss),
    ("Max processes", Resource::Nproc),
    ("Max open files", Resource::Nofile),
    ("Max locked memory", Resource::Memlock),
    ("Max address space", Resource::As),
    ("Max file locks", Resource::Locks),
    ("Max pending signals", Resource::Sigpending),
    ("Max msgqueue size", Resource::Msgqueue),
    ("Max nice priority", Resource::Nice),
    ("Max realtime priority", Resource::Rtprio),
    ("Max realtime timeout", Resource::Rttime),
];

fn parse_limits(text: &str) -> Result<Vec<(Resource, Rlimit)>, String> {
    let value = |word: Option<&str>, line: &str| match word {
        Some("unlimited") => Ok(None),
        Some(n) => n
            .parse::<u64>()
            .map(Some)
            .map_err(|_| format!("unreadable resource limit: {line}")),
        None => Err(format!("unreadable resource limit: {line}")),
    };
    let mut limits = Vec::new();
    for line in text.lines() {
        let Some((rest, resource)) = LIMIT_NAMES
            .iter()
            .find_map(|(name, r)| line.strip_prefix(name).map(|rest| (rest, *r)))
        else {
            continue;
        };
        let mut words = rest.split_whitespace();
        let current = value(words.next(), line)?;
        let maximum = value(words.next(), line)?;
        limits.push((resource, Rlimit { current, maximum }));
    }
    Ok(limits)
}

/// Field 22 of `/proc/<pid>/stat`, counted after the command name (which may hold anything).
pub fn start_time(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(") ")?;
    // `rest` starts at field 3 (state).
    rest.split_whitespace().nth(22 - 3)?.parse().ok()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Kind {
    proc_name: &'static str,
    link_type: LinkNameSpaceType,
    /// setns() of this kind moves only the children made afterwards, so the helper joins it
    /// before forking.
    for_children: bool,
}

/// The user namespace first: the others belong to it, and joining it first is what runc does.
const KINDS: [Kind; 8] = [
    Kind {
        proc_name: "user",
        link_type: LinkNameSpaceType::User,
        for_children: false,
    },
    Kind {
        proc_name: "mnt",
        link_type: LinkNameSpaceType::Mount,
        for_children: false,
    },
    Kind {
        proc_name: "net",
        link_type: LinkNameSpaceType::Network,
        for_children: false,
    },
    Kind {
        proc_name: "ipc",
        link_type: LinkNameSpaceType::InterProcessCommunication,
        for_children: false,
    },
    Kind {
        proc_name: "uts",
        link_type: LinkNameSpaceType::HostNameAndNISDomainName,
        for_children: false,
    },
    Kind {
        proc_name: "cgroup",
        link_type: LinkNameSpaceType::ControlGroup,
        for_children: false,
    },
    Kind {
        proc_name: "pid",
        link_type: LinkNameSpaceType::ProcessID,
        for_children: true,
    },
    Kind {
        proc_name: "time",
        link_type: LinkNameSpaceType::Time,
        for_children: true,
    },
];

/// Descriptors of the init's namespaces that differ from the helper's.
pub struct Namespaces {
    differing: Vec<(Kind, OwnedFd)>,
}

impl Namespaces {
    /// Joins the PID and time namespaces, which only the helper's children then live in.
    pub fn enter_for_children(&self) -> Result<(), String> {
        self.enter(|kind| kind.for_children)
    }

    /// Joins the rest (the child does), the user namespace first.
    pub fn enter_rest(&self) -> Result<(), String> {
        self.enter(|kind| !kind.for_children)
    }

    fn enter(&self, which: impl Fn(&Kind) -> bool) -> Result<(), String> {
        for (kind, fd) in self.differing.iter().filter(|(k, _)| which(k)) {
            move_into_link_name_space(fd.as_fd(), Some(kind.link_type)).map_err(|e| {
                format!("joining the container's {} namespace: {e}", kind.proc_name)
            })?;
        }
        Ok(())
    }

    /// Whether the container has a user namespace of its own.
    pub fn has_user(&self) -> bool {
        self.differing.iter().any(|(k, _)| k.proc_name == "user")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_start_time_is_counted_after_the_command_name() {
        let stat =
            "42 (a) b (c) ) S 1 42 42 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(super::start_time(stat), Some(987654));
        let own = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        assert!(super::start_time(&own).is_some());
        assert_eq!(super::start_time("42 (x) S 1"), None);
    }

    #[test]
    fn every_limit_of_a_process_is_read() {
        let own = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
        let limits = super::parse_limits(&own).unwrap_or_default();
        assert_eq!(limits.len(), super::LIMIT_NAMES.len(), "{own}");
        let nofile = rustix::process::getrlimit(super::Resource::Nofile);
        assert!(limits.contains(&(super::Resource::Nofile, nofile)));
        // Names that begin alike are told apart; "unlimited" is no limit.
        let text = "Max file size             unlimited            unlimited            bytes\n\
                    Max file locks            10                   20                   locks\n";
        let limits = super::parse_limits(text).unwrap_or_default();
        assert_eq!(limits.len(), 2);
        assert_eq!(limits[0].1.current, None);
        assert_eq!(limits[1].0, super::Resource::Locks);
        assert_eq!(limits[1].1.maximum, Some(20));
        assert!(super::parse_limits("Max open files  lots  20").is_err());
    }
}
