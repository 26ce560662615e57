//! Network configurations from the CNI conf dir: the first valid `.conflist`, `.conf` or `.json`
//! file in lexical order, as libcni and the runtimes that use it pick one. A `.conf` holds a single
//! plugin and is read as a list of one.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde_json::Value;

/// What is wrong with a network config file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadConfig {
    #[error("not JSON: {0}")]
    NotJson(String),
    #[error("not a JSON object")]
    NotAnObject,
    #[error("no `name`")]
    NoName,
    #[error("no `plugins` list")]
    NoPlugins,
    #[error("plugin {0} has no valid `type`")]
    BadPluginType(usize),
    #[error("unreadable: {0}")]
    Unreadable(String),
}

/// Why the conf dir gives no network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoNetwork {
    #[error("no network config found in {0}")]
    Empty(PathBuf),
    #[error("no valid network config in {}: {}", .dir.display(), problems(.invalid))]
    AllInvalid {
        dir: PathBuf,
        invalid: Vec<(PathBuf, BadConfig)>,
    },
}

fn problems(invalid: &[(PathBuf, BadConfig)]) -> String {
    invalid
        .iter()
        .map(|(file, e)| format!("{}: {e}", file.display()))
        .collect::<Vec<_>>()
        .join("; ")
}

/// A network configuration list. Kept with a pod, so that its DEL uses the config its ADD used.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NetworkList {
    pub name: String,
    pub cni_version: String,
    pub disable_check: bool,
    /// Each plugin's configuration object, with at least `type`.
    pub plugins: Vec<Value>,
    pub file: PathBuf,
}

impl NetworkList {
    /// Parses one file's text; errors say what is wrong.
    pub fn parse(file: &Path, text: &str) -> Result<NetworkList, BadConfig> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| BadConfig::NotJson(e.to_string()))?;
        let obj = value.as_object().ok_or(BadConfig::NotAnObject)?;
        let name = obj
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .ok_or(BadConfig::NoName)?
            .to_owned();
        let cni_version = obj
            .get("cniVersion")
            .and_then(Value::as_str)
            .unwrap_or("0.1.0")
            .to_owned();
        let is_list =
            file.extension().is_some_and(|e| e == "conflist") || obj.contains_key("plugins");
        let plugins = if is_list {
            obj.get("plugins")
                .and_then(Value::as_array)
                .filter(|p| !p.is_empty())
                .ok_or(BadConfig::NoPlugins)?
                .clone()
        } else {
            vec![value.clone()]
        };
        for (i, plugin) in plugins.iter().enumerate() {
            let kind = plugin
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if kind.is_empty() || kind.contains('/') || kind.starts_with('.') {
                return Err(BadConfig::BadPluginType(i));
            }
        }
        Ok(NetworkList {
            name,
            cni_version,
            disable_check: obj
                .get("disableCheck")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            plugins,
            file: file.to_path_buf(),
        })
    }

    pub fn plugin_type(plugin: &Value) -> &str {
        plugin
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }
}

/// What the conf dir looks like, to tell whether it changed since the last read.
pub type DirStamp = Vec<(PathBuf, SystemTime, u64)>;

pub fn stamp(dir: &Path) -> DirStamp {
    let mut files: DirStamp = candidates(dir)
        .into_iter()
        .filter_map(|p| {
            let meta = std::fs::metadata(&p).ok()?;
            Some((p, meta.modified().ok()?, meta.len()))
        })
        .collect();
    files.sort();
    files
}

fn candidates(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.extension()
                .is_some_and(|e| e == "conflist" || e == "conf" || e == "json")
        })
        .collect();
    files.sort();
    files
}

/// The first valid network list in `dir`, or why there is none.
pub fn load_first(dir: &Path) -> Result<NetworkList, NoNetwork> {
    let mut invalid = Vec::new();
    for file in candidates(dir) {
        let parsed = std::fs::read_to_string(&file)
            .map_err(|e| BadConfig::Unreadable(e.to_string()))
            .and_then(|text| NetworkList::parse(&file, &text));
        match parsed {
            Ok(list) => return Ok(list),
            Err(e) => invalid.push((file, e)),
        }
    }
    if invalid.is_empty() {
        Err(NoNetwork::Empty(dir.to_path_buf()))
    } else {
        Err(NoNetwork::AllInvalid {
            dir: dir.to_path_buf(),
            invalid,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_valid_file_in_lexical_order_wins() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("05-broken.conflist"), "{not json").unwrap();
        std::fs::write(
            dir.path().join("10-net.conf"),
            r#"{"cniVersion":"1.0.0","name":"single","type":"bridge"}"#,
        )
        .unwrap();
        std::fs::write(
            dir.path().join("20-net.conflist"),
            r#"{"cniVersion":"1.0.0","name":"list","plugins":[{"type":"bridge"},{"type":"portmap"}]}"#,
        )
        .unwrap();
        std::fs::write(dir.path().join("00-ignored.txt"), "x").unwrap();
        let list = load_first(dir.path()).unwrap();
        assert_eq!(list.name, "single");
        assert_eq!(list.plugins.len(), 1);
        std::fs::remove_file(dir.path().join("10-net.conf")).unwrap();
        assert_eq!(load_first(dir.path()).unwrap().plugins.len(), 2);
    }

    #[test]
    fn invalid_configs_say_why() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            load_first(dir.path()),
            Err(NoNetwork::Empty(dir.path().to_path_buf()))
        );
        std::fs::write(
            dir.path().join("a.conflist"),
            r#"{"name":"x","plugins":[{"type":"../x"}]}"#,
        )
        .unwrap();
        let err = load_first(dir.path()).unwrap_err().to_string();
        assert!(err.contains("a.conflist") && err.contains("type"), "{err}");
    }
}
