//! Reading and merging the configuration files.
//!
//! Each file is first checked on its own against the typed schema (so an unknown key or a bad value
//! is reported with its file and line), then its tables are merged key by key over the defaults and
//! the files before it: a later file overrides single keys and adds map entries (`[runtimes.crun]`,
//! `[registries."host"]`) without erasing the rest.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{AbsPath, Config, LogLevel, Overrides, Sources};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("config {}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
    #[error("config key `{key}`{}: {message}", from_file(.path))]
    Inconsistent {
        key: String,
        path: Option<PathBuf>,
        message: String,
    },
    #[error("flag {flag}: {source}")]
    Flag {
        flag: &'static str,
        source: super::values::BadValue,
    },
    #[error("flag {flag}: cannot resolve a relative path: {source}")]
    RelativeFlag {
        flag: &'static str,
        source: io::Error,
    },
}

fn from_file(path: &Option<PathBuf>) -> String {
    match path {
        Some(p) => format!(" (set in {})", p.display()),
        None => String::new(),
    }
}

/// Loads the effective configuration from `sources`, then applies the command-line `overrides`.
pub fn load(sources: &Sources, overrides: &Overrides) -> Result<Config, ConfigError> {
    let mut merged =
        toml::Table::try_from(Config::default()).map_err(|e| ConfigError::Invalid {
            path: PathBuf::from("<embedded defaults>"),
            message: e.to_string(),
        })?;
    let mut provenance = HashMap::new();
    for path in files(sources)? {
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        let table = check_file(&path, &text)?;
        merge(&mut merged, table, "", &path, &mut provenance);
    }
    let mut config =
        Config::deserialize(toml::Value::Table(merged)).map_err(|e| ConfigError::Inconsistent {
            key: "<merged>".into(),
            path: None,
            message: e.to_string(),
        })?;
    apply_overrides(&mut config, overrides)?;
    check_consistency(&config, &provenance)?;
    Ok(config)
}

/// The main file (if present, or required) then the drop-ins in lexical order.
fn files(sources: &Sources) -> Result<Vec<PathBuf>, ConfigError> {
    let mut files = Vec::new();
    match std::fs::metadata(&sources.file) {
        Ok(_) => files.push(sources.file.clone()),
        Err(e) if e.kind() == io::ErrorKind::NotFound && !sources.file_required => {}
        Err(source) => {
            return Err(ConfigError::Read {
                path: sources.file.clone(),
                source,
            });
        }
    }
    let entries = match std::fs::read_dir(&sources.drop_in_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(files),
        Err(source) => {
            return Err(ConfigError::Read {
                path: sources.drop_in_dir.clone(),
                source,
            });
        }
    };
    let mut drop_ins = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| ConfigError::Read {
            path: sources.drop_in_dir.clone(),
            source,
        })?;
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "toml") && path.is_file() {
            drop_ins.push(path);
        }
    }
    drop_ins.sort();
    files.extend(drop_ins);
    Ok(files)
}

/// Checks one file against the schema on its own, which gives errors with line and key.
fn check_file(path: &Path, text: &str) -> Result<toml::Table, ConfigError> {
    let invalid = |e: toml::de::Error| ConfigError::Invalid {
        path: path.to_path_buf(),
        message: e.to_string().trim_end().to_owned(),
    };
    toml::from_str::<Config>(text).map_err(invalid)?;
    toml::from_str::<toml::Table>(text).map_err(invalid)
}

/// Merges `over` into `base` key by key, recording which file set each leaf.
fn merge(
    base: &mut toml::Table,
    over: toml::Table,
    prefix: &str,
    file: &Path,
    provenance: &mut HashMap<String, PathBuf>,
) {
    for (key, value) in over {
        let dotted = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(below)), toml::Value::Table(above)) => {
                merge(below, above, &dotted, file, provenance);
            }
            (_, value) => {
                provenance.insert(dotted, file.to_path_buf());
                base.insert(key, value);
            }
        }
    }
}

fn apply_overrides(config: &mut Config, overrides: &Overrides) -> Result<(), ConfigError> {
    let absolute = |flag: &'static str, path: &PathBuf| -> Result<AbsPath, ConfigError> {
        let path = if path.is_absolute() {
            path.clone()
        } else {
            std::env::current_dir()
                .map_err(|source| ConfigError::RelativeFlag { flag, source })?
                .join(path)
        };
        AbsPath::parse(&path).map_err(|source| ConfigError::Flag { flag, source })
    };
    if let Some(p) = &overrides.root {
        config.root = absolute("--root", p)?;
    }
    if let Some(p) = &overrides.state_dir {
        config.state_dir = absolute("--state-dir", p)?;
    }
    if let Some(p) = &overrides.socket {
        config.socket = absolute("--socket", p)?;
    }
    if let Some(level) = &overrides.log_level {
        config.log_level = LogLevel::parse(level).map_err(|source| ConfigError::Flag {
            flag: "--log-level",
            source,
        })?;
    }
    Ok(())
}

/// Rules that span several keys, reported with the file that set the offending key.
fn check_consistency(
    config: &Config,
    provenance: &HashMap<String, PathBuf>,
) -> Result<(), ConfigError> {
    let inconsistent = |key: String, message: String| ConfigError::Inconsistent {
        path: provenance.get(&key).cloned(),
        key,
        message,
    };
    for (name, handler) in &config.runtimes {
        if !is_valid_name(name) {
            return Err(inconsistent(
                format!("runtimes.{name}"),
                "a handler name of letters, digits, `-`, `_` and `.` is wanted".into(),
            ));
        }
        if handler.path.is_empty() {
            return Err(inconsistent(
                format!("runtimes.{name}.path"),
                "a binary name or an absolute path is wanted".into(),
            ));
        }
    }
    if config.default_handler().is_none() {
        let known: Vec<&str> = config.runtimes.keys().map(String::as_str).collect();
        return Err(inconsistent(
            "default_runtime".into(),
            format!(
                "`{}` is not a configured runtime handler; one of [{}] is wanted",
                config.default_runtime,
                known.join(", ")
            ),
        ));
    }
    if config.streaming.tls_cert.is_some() != config.streaming.tls_key.is_some() {
        return Err(inconsistent(
            "streaming.tls_cert".into(),
            "tls_cert and tls_key go together: both, or neither".into(),
        ));
    }
    let parent = &config.pod_cgroup_parent;
    if !parent.starts_with('/')
        || parent.len() < 2
        || parent.contains("..")
        || parent.contains('\0')
    {
        return Err(inconsistent(
            "pod_cgroup_parent".into(),
            "a cgroup path such as `/berth` is wanted".into(),
        ));
    }
    let counts = [
        (
            "streaming.max_connections",
            config.streaming.max_connections,
        ),
        (
            "images.max_concurrent_downloads",
            config.images.max_concurrent_downloads,
        ),
    ];
    if let Some((key, _)) = counts.iter().find(|(_, n)| *n == 0) {
        return Err(inconsistent(
            (*key).into(),
            "a number of at least 1 is wanted".into(),
        ));
    }
    let durations = [
        (
            "streaming.request_timeout",
            config.streaming.request_timeout.get(),
        ),
        ("images.stall_timeout", config.images.stall_timeout.get()),
    ];
    if let Some((key, _)) = durations.iter().find(|(_, d)| d.is_zero()) {
        return Err(inconsistent(
            (*key).into(),
            "a duration above zero is wanted".into(),
        ));
    }
    for host in config.registries.keys() {
        if host.is_empty() || host.contains(['/', ' ', '@']) {
            return Err(inconsistent(
                format!("registries.{host}"),
                "a registry host such as `docker.io` or `127.0.0.1:5000` is wanted".into(),
            ));
        }
    }
    Ok(())
}

fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

#[cfg(test)]
mod tests {
    #[test]
    fn fuzzed_config_files_are_checked_not_trusted() {
        let seeds: Vec<Vec<u8>> = [
            "root = \"/var/lib/berth\"\nlog_level = \"debug\"\n[runtimes.runc]\npath = \"runc\"\ncreate_timeout = \"2m\"\n",
            "[streaming]\naddress = \"127.0.0.1:0\"\nidle_timeout = \"1h30m\"\n[registries.\"docker.io\"]\nmirrors = [\"http://127.0.0.1:5000\"]\n",
            "[images]\nmax_layer_size = 1024\nstall_timeout = \"500ms\"\n",
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect();
        berth_fuzz::fuzz("config files", &seeds, |input| {
            let text = String::from_utf8_lossy(input);
            let _ = check_file(Path::new("/etc/berth/berth.toml"), &text);
        });
    }

    use super::*;
    use crate::config::CgroupDriver;

    struct Dir(tempfile::TempDir);

    impl Dir {
        /// A config dir with an empty main file.
        fn new() -> Dir {
            let d = Dir(tempfile::tempdir().unwrap());
            d.write("berth.toml", "");
            d
        }
        fn write(&self, rel: &str, text: &str) -> PathBuf {
            let path = self.0.path().join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, text).unwrap();
            path
        }
        fn load(&self) -> Result<Config, ConfigError> {
            let sources = Sources::new(Some(&self.0.path().join("berth.toml")));
            load(&sources, &Overrides::default())
        }
    }

    #[test]
    fn defaults_run_on_a_plain_host() {
        let sources = Sources {
            file: PathBuf::from("/nonexistent/berth.toml"),
            file_required: false,
            drop_in_dir: PathBuf::from("/nonexistent/berth.d"),
        };
        let c = load(&sources, &Overrides::default()).unwrap();
        assert_eq!(c.socket.as_path(), Path::new("/run/berth/berth.sock"));
        assert_eq!(c.default_runtime, "runc");
        assert_eq!(c.runtimes["runc"].path, "runc");
        assert_eq!(c.cgroup_driver, CgroupDriver::Cgroupfs);
        assert_eq!(c.cni.conf_dir.as_path(), Path::new("/etc/cni/net.d"));
        assert_eq!(c.streaming.address.to_string(), "127.0.0.1:0");
    }

    /// The config file the package installs shows every default commented out: with those lines
    /// uncommented (and the examples left alone) it must be the embedded defaults, and as a whole
    /// it must load.
    #[test]
    fn the_packaged_config_shows_the_true_defaults() {
        let packaged = include_str!("../../../../packaging/berth.toml");
        let d = Dir::new();
        d.write("berth.toml", packaged);
        let as_shipped = d.load().unwrap();
        let uncommented: String = packaged
            .lines()
            .filter_map(|l| l.strip_prefix("# "))
            .filter(|l| {
                l.starts_with('[') || l.split_once(" = ").is_some_and(|(k, _)| !k.contains(' '))
            })
            .map(|l| format!("{l}\n"))
            .collect();
        d.write("berth.toml", &uncommented);
        let defaults = Dir::new().load().unwrap();
        let shown = d.load().unwrap();
        let text = |c: &Config| toml::to_string(c).unwrap();
        assert_eq!(text(&shown), text(&defaults), "{uncommented}");
        assert_eq!(text(&as_shipped), text(&defaults));
    }

    #[test]
    fn drop_ins_override_keys_in_lexical_order_and_keep_the_rest() {
        let d = Dir::new();
        d.write(
            "berth.toml",
            "log_level = \"debug\"\n[cni]\nconf_dir = \"/a\"\n[registries.\"docker.io\"]\nmirrors = [\"http://m1\"]\n",
        );
        d.write("berth.d/20-b.toml", "[cni]\nconf_dir = \"/c\"\n");
        d.write(
            "berth.d/10-a.toml",
            "[cni]\nconf_dir = \"/b\"\n[runtimes.crun]\npath = \"crun\"\n",
        );
        d.write("berth.d/notes.txt", "this is not toml");
        let c = d.load().unwrap();
        assert_eq!(c.log_level, LogLevel::Debug);
        assert_eq!(c.cni.conf_dir.as_path(), Path::new("/c"));
        assert_eq!(
            c.cni.bin_dirs.len(),
            2,
            "untouched keys keep their defaults"
        );
        assert_eq!(c.runtimes["crun"].path, "crun");
        assert_eq!(
            c.runtimes["runc"].path, "runc",
            "map entries are added, not replaced"
        );
        assert_eq!(c.registries["docker.io"].mirrors[0].as_str(), "http://m1");
    }

    #[test]
    fn unknown_keys_name_the_file_and_key() {
        let d = Dir::new();
        d.write("berth.d/50-x.toml", "[cni]\nconf_dirr = \"/x\"\n");
        let msg = d.load().unwrap_err().to_string();
        assert!(msg.contains("50-x.toml"), "{msg}");
        assert!(msg.contains("conf_dirr"), "{msg}");
        assert!(msg.contains("expected `conf_dir`"), "{msg}");
    }

    #[test]
    fn bad_values_say_what_is_wanted() {
        for (text, wanted) in [
            ("shutdown_timeout = \"soon\"", "a duration such as"),
            ("root = \"relative/dir\"", "an absolute path is wanted"),
            ("cgroup_driver = \"cgroupfs2\"", "cgroupfs"),
            ("[streaming]\naddress = \"localhost\"", "address"),
            (
                "[registries.\"docker.io\"]\nmirrors = [\"ftp://x\"]",
                "http:// or https://",
            ),
            ("log_level = \"loud\"", "error"),
            ("root = 5", "string"),
        ] {
            let d = Dir::new();
            d.write("berth.toml", text);
            let msg = d.load().unwrap_err().to_string();
            assert!(msg.contains("berth.toml"), "{text}: {msg}");
            assert!(msg.contains(wanted), "{text}: {msg}");
        }
    }

    #[test]
    fn default_runtime_must_name_a_handler() {
        let d = Dir::new();
        let file = d.write("berth.d/1.toml", "default_runtime = \"kata\"\n");
        let msg = d.load().unwrap_err().to_string();
        assert!(msg.contains("default_runtime"), "{msg}");
        assert!(msg.contains(&file.display().to_string()), "{msg}");
        assert!(msg.contains("runc"), "{msg}");
    }

    #[test]
    fn syntax_errors_name_the_file_and_line() {
        let d = Dir::new();
        d.write("berth.toml", "root = \"/x\"\n[cni\n");
        let msg = d.load().unwrap_err().to_string();
        assert!(
            msg.contains("berth.toml") && msg.contains("line 2"),
            "{msg}"
        );
    }

    #[test]
    fn an_explicit_config_file_must_exist() {
        let d = Dir::new();
        std::fs::remove_file(d.0.path().join("berth.toml")).unwrap();
        let msg = d.load().unwrap_err().to_string();
        assert!(msg.contains("cannot read config"), "{msg}");
    }

    #[test]
    fn flags_override_files() {
        let d = Dir::new();
        d.write("berth.toml", "root = \"/from/file\"\n");
        let sources = Sources::new(Some(&d.0.path().join("berth.toml")));
        let overrides = Overrides {
            root: Some("/from/flag".into()),
            log_level: Some("trace".into()),
            ..Overrides::default()
        };
        let c = load(&sources, &overrides).unwrap();
        assert_eq!(c.root.as_path(), Path::new("/from/flag"));
        assert_eq!(c.log_level, LogLevel::Trace);
        let bad = Overrides {
            log_level: Some("chatty".into()),
            ..Overrides::default()
        };
        let msg = load(&sources, &bad).unwrap_err().to_string();
        assert!(msg.contains("--log-level"), "{msg}");
    }

    #[test]
    fn printed_config_parses_back_to_the_same_config() {
        let c = Config::default();
        let again: Config = toml::from_str(&c.to_toml()).unwrap();
        assert_eq!(again.to_toml(), c.to_toml());
    }
}
