//! The CNI invoker: the network configuration of the conf dir (re-read when the dir changes), and
//! ADD, DEL, CHECK and STATUS of a whole plugin list, per the CNI spec: plugins run in order for
//! ADD and CHECK (each gets the previous result), in reverse for DEL (each gets the cached ADD
//! result); capabilities the plugins declare (`portMappings`, `ipRanges`) are filled from the
//! runtime's config.

mod config;
mod exec;
mod result;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub use config::NetworkList;
pub use exec::CallContext;
pub use result::pod_ips;

#[derive(Debug, thiserror::Error)]
pub enum CniError {
    #[error(transparent)]
    NoNetwork(#[from] config::NoNetwork),
    #[error("CNI plugin `{plugin}` not found in {dirs}")]
    PluginNotFound { plugin: String, dirs: String },
    #[error("CNI plugin {plugin} failed ({command}): {message}")]
    Plugin {
        plugin: String,
        command: &'static str,
        message: String,
    },
}

/// A port the pod publishes on the node, as the `portMappings` capability carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    pub host_port: u16,
    pub container_port: u16,
    /// `tcp`, `udp` or `sctp`.
    pub protocol: String,
    #[serde(rename = "hostIP", default, skip_serializing_if = "String::is_empty")]
    pub host_ip: String,
}

/// What a pod asks of the network.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Attachment {
    pub context: CallContext,
    pub port_mappings: Vec<PortMapping>,
    /// Pod CIDRs from kubelet, offered to plugins that declare the `ipRanges` capability.
    pub pod_cidrs: Vec<String>,
}

/// The loopback network every pod with its own network namespace gets, as containerd sets it up.
fn loopback() -> NetworkList {
    NetworkList {
        name: "cni-loopback".into(),
        cni_version: "1.0.0".into(),
        disable_check: true,
        plugins: vec![json!({"type": "loopback"})],
        file: PathBuf::new(),
    }
}

#[derive(Debug)]
pub struct Cni {
    conf_dir: PathBuf,
    bin_dirs: Vec<PathBuf>,
    loaded: Mutex<Option<(config::DirStamp, Result<NetworkList, config::NoNetwork>)>>,
}

impl Cni {
    pub fn new(conf_dir: &Path, bin_dirs: &[PathBuf]) -> Cni {
        Cni {
            conf_dir: conf_dir.to_path_buf(),
            bin_dirs: bin_dirs.to_vec(),
            loaded: Mutex::new(None),
        }
    }

    /// The network to attach pods to: the first valid config of the conf dir, re-read whenever
    /// the dir's files change, so a new config is picked up without restart.
    pub fn network(&self) -> Result<NetworkList, CniError> {
        let stamp = config::stamp(&self.conf_dir);
        let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        match loaded.as_ref() {
            Some((s, result)) if *s == stamp => result.clone().map_err(CniError::NoNetwork),
            _ => {
                let result = config::load_first(&self.conf_dir);
                *loaded = Some((stamp, result.clone()));
                result.map_err(CniError::NoNetwork)
            }
        }
    }

    /// Sets up loopback, then the network; returns the network's result. On error the caller
    /// must still call [`Cni::del`]: a failed ADD may have allocated.
    pub async fn add(&self, net: &NetworkList, att: &Attachment) -> Result<Value, CniError> {
        let lo = CallContext {
            ifname: "lo".into(),
            ..att.context.clone()
        };
        let lo_att = Attachment {
            context: lo,
            port_mappings: Vec::new(),
            pod_cidrs: Vec::new(),
        };
        self.run_list("ADD", &loopback(), &lo_att, None).await?;
        self.run_list("ADD", net, att, None).await
    }

    /// Tears the network down (best effort: every plugin is called; the first error is returned).
    pub async fn del(
        &self,
        net: &NetworkList,
        att: &Attachment,
        cached: Option<&Value>,
    ) -> Result<(), CniError> {
        self.run_list("DEL", net, att, cached).await.map(|_| ())
    }

    /// Asks the plugins whether the pod's network is as ADD left it (spec 0.4.0 and later).
    pub async fn check(
        &self,
        net: &NetworkList,
        att: &Attachment,
        cached: &Value,
    ) -> Result<(), CniError> {
        if net.disable_check || version_before(&net.cni_version, "0.4.0") {
            return Ok(());
        }
        self.run_list("CHECK", net, att, Some(cached))
            .await
            .map(|_| ())
    }

    /// Asks each plugin that speaks spec 1.1.0 whether it can add pods now (STATUS).
    pub async fn status(&self, net: &NetworkList) -> Result<(), CniError> {
        if version_before(&net.cni_version, "1.1.0") {
            return Ok(());
        }
        for plugin in &net.plugins {
            let kind = NetworkList::plugin_type(plugin);
            let probe = json!({"cniVersion": net.cni_version});
            let versions = exec::call(&self.bin_dirs, kind, "VERSION", None, &probe).await?;
            let speaks_1_1 = versions
                .get("supportedVersions")
                .and_then(Value::as_array)
                .is_some_and(|v| {
                    v.iter()
                        .any(|s| s.as_str().is_some_and(|s| !version_before(s, "1.1.0")))
                });
            if speaks_1_1 {
                let conf = plugin_conf(net, plugin, None, None);
                exec::call(&self.bin_dirs, kind, "STATUS", None, &conf).await?;
            }
        }
        Ok(())
    }

    async fn run_list(
        &self,
        command: &'static str,
        net: &NetworkList,
        att: &Attachment,
        cached: Option<&Value>,
    ) -> Result<Value, CniError> {
        let send_prev = !version_before(&net.cni_version, "0.4.0");
        let runtime_config = |plugin: &Value| runtime_config(plugin, att);
        match command {
            "DEL" => {
                let mut first_error = None;
                for plugin in net.plugins.iter().rev() {
                    let conf = plugin_conf(
                        net,
                        plugin,
                        cached.filter(|_| send_prev),
                        runtime_config(plugin),
                    );
                    let kind = NetworkList::plugin_type(plugin);
                    if let Err(e) =
                        exec::call(&self.bin_dirs, kind, "DEL", Some(&att.context), &conf).await
                    {
                        tracing::warn!(network = %net.name, "{e}");
                        first_error.get_or_insert(e);
                    }
                }
                first_error.map_or(Ok(Value::Null), Err)
            }
            _ => {
                let mut prev = cached.cloned();
                for plugin in &net.plugins {
                    let conf = plugin_conf(
                        net,
                        plugin,
                        prev.as_ref().filter(|_| send_prev),
                        runtime_config(plugin),
                    );
                    let kind = NetworkList::plugin_type(plugin);
                    let out = exec::call(&self.bin_dirs, kind, command, Some(&att.context), &conf)
                        .await?;
                    if command == "ADD" {
                        prev = Some(out);
                    }
                }
                Ok(prev.unwrap_or(Value::Null))
            }
        }
    }
}

/// One plugin's stdin: its config with the list's name and version, the previous result and the
/// runtime config of its declared capabilities.
fn plugin_conf(
    net: &NetworkList,
    plugin: &Value,
    prev: Option<&Value>,
    runtime: Option<Value>,
) -> Value {
    let mut conf = plugin.clone();
    if let Some(obj) = conf.as_object_mut() {
        obj.insert("name".into(), json!(net.name));
        obj.insert("cniVersion".into(), json!(net.cni_version));
        if let Some(prev) = prev {
            obj.insert("prevResult".into(), prev.clone());
        }
        if let Some(runtime) = runtime {
            obj.insert("runtimeConfig".into(), runtime);
        }
    }
    conf
}

fn runtime_config(plugin: &Value, att: &Attachment) -> Option<Value> {
    let caps = plugin.get("capabilities")?.as_object()?;
    let wants = |c: &str| caps.get(c).and_then(Value::as_bool).unwrap_or(false);
    let mut rc = serde_json::Map::new();
    if wants("portMappings") {
        rc.insert("portMappings".into(), json!(att.port_mappings));
    }
    if wants("ipRanges") && !att.pod_cidrs.is_empty() {
        let ranges: Vec<Value> = att
            .pod_cidrs
            .iter()
            .map(|c| json!([{"subnet": c}]))
            .collect();
        rc.insert("ipRanges".into(), Value::Array(ranges));
    }
    (!rc.is_empty()).then_some(Value::Object(rc))
}

/// Compares dotted versions numerically (`0.3.1` < `0.4.0` < `1.0.0`).
fn version_before(version: &str, than: &str) -> bool {
    let parse = |v: &str| -> Vec<u64> { v.split('.').map(|p| p.parse().unwrap_or(0)).collect() };
    parse(version) < parse(than)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn att() -> Attachment {
        Attachment {
            context: CallContext {
                container_id: "c".into(),
                netns: "/x".into(),
                ifname: "eth0".into(),
                args: vec![],
            },
            port_mappings: vec![PortMapping {
                host_port: 8080,
                container_port: 80,
                protocol: "tcp".into(),
                host_ip: String::new(),
            }],
            pod_cidrs: vec!["10.244.1.0/24".into()],
        }
    }

    #[test]
    fn capabilities_are_filled_only_where_declared() {
        let portmap = json!({"type": "portmap", "capabilities": {"portMappings": true}});
        assert_eq!(
            runtime_config(&portmap, &att()),
            Some(
                json!({"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]})
            )
        );
        let ipam = json!({"type": "bridge", "capabilities": {"ipRanges": true}});
        assert_eq!(
            runtime_config(&ipam, &att()),
            Some(json!({"ipRanges": [[{"subnet": "10.244.1.0/24"}]]}))
        );
        assert_eq!(runtime_config(&json!({"type": "bridge"}), &att()), None);
    }

    #[test]
    fn versions_compare_numerically() {
        assert!(version_before("0.3.1", "0.4.0"));
        assert!(!version_before("1.0.0", "0.4.0"));
        assert!(version_before("1.0.0", "1.1.0"));
        assert!(!version_before("1.10.0", "1.2.0"));
    }
}
