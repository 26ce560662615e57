//! Capabilities by name and number. The plan carries each set as a bit mask (bit n is
//! capability n), the way the kernel takes them.

/// Every capability Linux knows, in number order (the index is the number).
pub const NAMES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// The mask of `names`, and the names that are no capability this table knows (runc skips
/// those with a warning; so does berthd).
pub fn mask<'a>(names: impl IntoIterator<Item = &'a String>) -> (u64, Vec<&'a str>) {
    let mut mask = 0u64;
    let mut unknown = Vec::new();
    for name in names {
        match NAMES.iter().position(|n| n == name) {
            Some(bit) => mask |= 1 << bit,
            None => unknown.push(name.as_str()),
        }
    }
    (mask, unknown)
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_become_their_bits() {
        let names = [
            "CAP_CHOWN".to_owned(),
            "CAP_KILL".to_owned(),
            "CAP_CHECKPOINT_RESTORE".to_owned(),
            "CAP_NONSENSE".to_owned(),
        ];
        let (mask, unknown) = super::mask(&names);
        assert_eq!(mask, 1 | 1 << 5 | 1 << 40);
        assert_eq!(unknown, ["CAP_NONSENSE"]);
    }
}
