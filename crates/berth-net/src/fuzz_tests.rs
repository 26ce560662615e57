//! The CNI texts berth reads (network configurations from the conf dir, plugin results), fed
//! mutated valid input and random bytes (`berth-fuzz`).

use std::path::Path;

use crate::cni::NetworkList;
use crate::cni::pod_ips;

#[test]
fn network_lists_and_plugin_results() {
    let seeds: Vec<Vec<u8>> = [
        r#"{"cniVersion":"1.0.0","name":"pods","plugins":[{"type":"bridge","bridge":"cni0","ipam":{"type":"host-local","ranges":[[{"subnet":"10.88.0.0/16"}]]}},{"type":"portmap","capabilities":{"portMappings":true}}]}"#,
        r#"{"cniVersion":"0.4.0","name":"single","type":"bridge"}"#,
        r#"{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":"/x"}],"ips":[{"address":"10.88.0.2/16","interface":0},{"address":"fd00::2/64","interface":0}]}"#,
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    berth_fuzz::fuzz("cni", &seeds, |input| {
        let text = String::from_utf8_lossy(input);
        let _ = NetworkList::parse(Path::new("/etc/cni/net.d/fuzz.conflist"), &text);
        if let Ok(value) = serde_json::from_str::<serde_json::Value>(&text) {
            let _ = pod_ips(&value, "eth0");
        }
    });
}
