//! Network configurations from the CNI conf dir: the first valid `.conflist`, `.conf` or `.json`
//! file in lexical order, as libcni and the runtimes that use it pick one. A `.conf` holds a single
//! plugin and is read as a list of one.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde_json::Value;

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
    pub fn parse(file: &Path, text: &str) -> Result<NetworkList, String> {
        let value: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        let obj = value.as_object().ok_or("not a JSON object")?;
        let name = obj
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .ok_or("no `name`")?
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
                .ok_or("no `plugins` list")?
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
                return Err(format!("plugin {i} has no valid `type`"));
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
pub fn load_first(dir: &Path) -> Result<NetworkList, String> {
    let mut problems = Vec::new();
    for file in candidates(dir) {
        let parsed = std::fs::read_to_string(&file)
            .map_err(|e| e.to_string())
            .and_then(|text| NetworkList::parse(&file, &text));
        match parsed {
            Ok(list) => return Ok(list),
            Err(e) => problems.push(format!("{}: {e}", file.display())),
        }
    }
    if problems.is_empty() {
        Err(format!("no network config found in {}", dir.display()))
    } else {
        Err(format!(
            "no valid network config in {}: {}",
            dir.display(),
            problems.join("; ")
        ))
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
        assert!(
            load_first(dir.path())
                .unwrap_err()
                .contains("no network config found")
        );
        std::fs::write(
            dir.path().join("a.conflist"),
            r#"{"name":"x","plugins":[{"type":"../x"}]}"#,
        )
        .unwrap();
        let err = load_first(dir.path()).unwrap_err();
        assert!(err.contains("a.conflist") && err.contains("type"), "{err}");
    }
}
