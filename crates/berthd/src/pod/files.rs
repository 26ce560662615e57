//! The files a pod's containers get as /etc/hostname, /etc/hosts and /etc/resolv.conf.

use std::io;
use std::path::{Path, PathBuf};

use super::record::DnsConfig;

pub fn write_hostname(path: &Path, hostname: &str) -> io::Result<()> {
    std::fs::write(path, format!("{hostname}\n"))
}

/// The node's own for host-network pods; else the usual localhost entries, then the pod's IPs
/// with its hostname (as kubelet's managed hosts file has them).
pub fn write_hosts(
    path: &Path,
    host_network: bool,
    hostname: &str,
    ips: &[String],
) -> io::Result<()> {
    if host_network {
        return copy_or_empty(Path::new("/etc/hosts"), path);
    }
    let mut text = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n\
         fe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n",
    );
    for ip in ips {
        text.push_str(&format!("{ip}\t{hostname}\n"));
    }
    std::fs::write(path, text)
}

/// The pod's DNS config when it has one, else the node's resolv.conf.
pub fn write_resolv_conf(path: &Path, dns: Option<&DnsConfig>) -> io::Result<()> {
    let Some(dns) = dns else {
        return copy_or_empty(Path::new("/etc/resolv.conf"), path);
    };
    let mut text = String::new();
    for server in &dns.servers {
        text.push_str(&format!("nameserver {server}\n"));
    }
    if !dns.searches.is_empty() {
        text.push_str(&format!("search {}\n", dns.searches.join(" ")));
    }
    if !dns.options.is_empty() {
        text.push_str(&format!("options {}\n", dns.options.join(" ")));
    }
    std::fs::write(path, text)
}

fn copy_or_empty(from: &Path, to: &Path) -> io::Result<()> {
    match std::fs::read(from) {
        Ok(bytes) => std::fs::write(to, bytes),
        Err(e) if e.kind() == io::ErrorKind::NotFound => std::fs::write(to, b""),
        Err(e) => Err(e),
    }
}

/// Gives the pod's files to the root of its user namespace (node IDs `uid`, `gid`), which
/// would otherwise see them owned by an unmapped user.
pub fn give_to(files: &[PathBuf], (uid, gid): (u32, u32)) -> io::Result<()> {
    for file in files {
        rustix::fs::chown(
            file,
            Some(rustix::fs::Uid::from_raw(uid)),
            Some(rustix::fs::Gid::from_raw(gid)),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_from_dns_config() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("resolv.conf");
        let dns = DnsConfig {
            servers: vec!["10.96.0.10".into()],
            searches: vec![
                "default.svc.cluster.local".into(),
                "svc.cluster.local".into(),
            ],
            options: vec!["ndots:5".into()],
        };
        write_resolv_conf(&path, Some(&dns)).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "nameserver 10.96.0.10\nsearch default.svc.cluster.local svc.cluster.local\noptions ndots:5\n"
        );
    }

    #[test]
    fn hosts_name_the_pod_ip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hosts");
        write_hosts(&path, false, "web-0", &["10.1.0.5".into()]).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("127.0.0.1\tlocalhost\n"));
        assert!(text.ends_with("10.1.0.5\tweb-0\n"));
    }
}
