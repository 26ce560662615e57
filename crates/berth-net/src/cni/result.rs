//! CNI results: the IPs a network gave the pod, from results of spec versions 0.2.0 to 1.x.

use serde_json::Value;

/// The pod's addresses: the primary first (IPv4 when there is one), then the others.
pub fn pod_ips(result: &Value, ifname: &str) -> Vec<String> {
    let mut ips: Vec<String> = Vec::new();
    let interfaces = result.get("interfaces").and_then(Value::as_array);
    if let Some(list) = result.get("ips").and_then(Value::as_array) {
        for ip in list {
            // An IP belongs to the pod's interface when its `interface` index names it (or when
            // the plugin gave no interfaces at all).
            let on_pod_interface = match (ip.get("interface").and_then(Value::as_u64), interfaces) {
                (Some(i), Some(ifs)) => ifs
                    .get(i as usize)
                    .and_then(|iface| iface.get("name"))
                    .and_then(Value::as_str)
                    .is_some_and(|n| n == ifname),
                _ => true,
            };
            if on_pod_interface {
                if let Some(addr) = ip.get("address").and_then(Value::as_str) {
                    ips.push(strip_prefix_len(addr));
                }
            }
        }
    }
    // Spec 0.2.0: {"ip4": {"ip": "10.0.0.2/24"}, "ip6": {...}}
    for key in ["ip4", "ip6"] {
        if let Some(addr) = result
            .get(key)
            .and_then(|v| v.get("ip"))
            .and_then(Value::as_str)
        {
            ips.push(strip_prefix_len(addr));
        }
    }
    ips.sort_by_key(|ip| !ip.contains('.'));
    ips.dedup();
    ips
}

fn strip_prefix_len(addr: &str) -> String {
    addr.split('/').next().unwrap_or(addr).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ips_of_the_pod_interface_ipv4_first() {
        let result = json!({
            "cniVersion": "1.0.0",
            "interfaces": [{"name": "cni0"}, {"name": "veth1"}, {"name": "eth0", "sandbox": "/x"}],
            "ips": [
                {"address": "fd00::5/64", "interface": 2},
                {"address": "10.1.0.1/24", "interface": 0},
                {"address": "10.1.0.5/24", "interface": 2, "gateway": "10.1.0.1"}
            ]
        });
        assert_eq!(pod_ips(&result, "eth0"), ["10.1.0.5", "fd00::5"]);
    }

    #[test]
    fn old_result_versions() {
        assert_eq!(
            pod_ips(&json!({"ip4": {"ip": "10.2.0.9/16"}}), "eth0"),
            ["10.2.0.9"]
        );
        assert_eq!(
            pod_ips(&json!({"ips": [{"address": "10.3.0.2/24"}]}), "eth0"),
            ["10.3.0.2"]
        );
    }
}
