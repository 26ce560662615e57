//! Traffic counters of a network namespace's interfaces, read from inside it.

use std::path::Path;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InterfaceCounters {
    pub name: String,
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_dropped: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_dropped: u64,
}

/// The counters of every interface but loopback in the namespace pinned at `netns`.
pub fn read(netns: &Path) -> std::io::Result<Vec<InterfaceCounters>> {
    crate::netns::in_netns(netns, || {
        // thread-self: /proc/net follows the process's first thread, not this one.
        let text = std::fs::read_to_string("/proc/thread-self/net/dev")?;
        Ok(parse(&text))
    })
}

/// `/proc/net/dev`: two header lines, then `name: 8 receive fields 8 transmit fields`.
fn parse(text: &str) -> Vec<InterfaceCounters> {
    text.lines()
        .skip(2)
        .filter_map(|line| {
            let (name, fields) = line.split_once(':')?;
            let name = name.trim();
            if name == "lo" {
                return None;
            }
            let f: Vec<u64> = fields
                .split_whitespace()
                .map(|v| v.parse().ok())
                .collect::<Option<_>>()?;
            (f.len() >= 16).then(|| InterfaceCounters {
                name: name.to_owned(),
                rx_bytes: f[0],
                rx_packets: f[1],
                rx_errors: f[2],
                rx_dropped: f[3],
                tx_bytes: f[8],
                tx_packets: f[9],
                tx_errors: f[10],
                tx_dropped: f[11],
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interfaces_but_loopback() {
        let text = "Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     120       2    0    0    0     0          0         0      120       2    0    0    0     0       0          0
  eth0:  904216     612    1    3    0     0          0         0    31342     310    2    4    0     0       0          0
";
        assert_eq!(
            parse(text),
            vec![InterfaceCounters {
                name: "eth0".into(),
                rx_bytes: 904216,
                rx_packets: 612,
                rx_errors: 1,
                rx_dropped: 3,
                tx_bytes: 31342,
                tx_packets: 310,
                tx_errors: 2,
                tx_dropped: 4,
            }]
        );
        assert!(parse("").is_empty());
    }
}
