//! Typed configuration values. Each one checks its text when it is deserialized, so a bad value is
//! reported with the file and line it came from.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};

/// A value that is not of the form its key wants.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{wanted} is wanted, not `{got}`")]
pub struct BadValue {
    pub wanted: &'static str,
    pub got: String,
}

/// An absolute filesystem path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbsPath(PathBuf);

impl AbsPath {
    pub(super) fn new_static(path: &'static str) -> AbsPath {
        AbsPath(PathBuf::from(path))
    }

    pub fn parse(path: &Path) -> Result<AbsPath, BadValue> {
        if path.is_absolute() {
            Ok(AbsPath(path.to_path_buf()))
        } else {
            Err(BadValue {
                wanted: "an absolute path",
                got: path.display().to_string(),
            })
        }
    }

    pub fn as_path(&self) -> &Path {
        &self.0
    }
}

impl std::ops::Deref for AbsPath {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Serialize for AbsPath {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for AbsPath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let path = PathBuf::deserialize(d)?;
        AbsPath::parse(&path).map_err(de::Error::custom)
    }
}

/// A span of time written as `500ms`, `10s`, `5m`, `4h` or a sum such as `1h30m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Duration(std::time::Duration);

impl Duration {
    pub const fn from_secs(secs: u64) -> Duration {
        Duration(std::time::Duration::from_secs(secs))
    }

    pub fn get(self) -> std::time::Duration {
        self.0
    }

    pub fn parse(text: &str) -> Result<Duration, BadValue> {
        let wanted = || BadValue {
            wanted: "a duration such as `500ms`, `10s`, `5m` or `1h30m`",
            got: text.to_owned(),
        };
        let mut total = std::time::Duration::ZERO;
        let mut rest = text.trim();
        if rest.is_empty() {
            return Err(wanted());
        }
        while !rest.is_empty() {
            let digits = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            let number: u64 = rest[..digits].parse().map_err(|_| wanted())?;
            rest = &rest[digits..];
            let unit_len = rest
                .find(|c: char| c.is_ascii_digit())
                .unwrap_or(rest.len());
            let part = match &rest[..unit_len] {
                "ms" => std::time::Duration::from_millis(number),
                "s" => std::time::Duration::from_secs(number),
                "m" => std::time::Duration::from_secs(number.saturating_mul(60)),
                "h" => std::time::Duration::from_secs(number.saturating_mul(3600)),
                _ => return Err(wanted()),
            };
            total = total.saturating_add(part);
            rest = &rest[unit_len..];
        }
        Ok(Duration(total))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let millis = self.0.as_millis();
        if millis == 0 {
            return f.write_str("0s");
        }
        let (h, rest) = (millis / 3_600_000, millis % 3_600_000);
        let (m, rest) = (rest / 60_000, rest % 60_000);
        let (s, ms) = (rest / 1000, rest % 1000);
        for (value, unit) in [(h, "h"), (m, "m"), (s, "s"), (ms, "ms")] {
            if value > 0 {
                write!(f, "{value}{unit}")?;
            }
        }
        Ok(())
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Duration::parse(&text).map_err(de::Error::custom)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    pub fn parse(text: &str) -> Result<LogLevel, BadValue> {
        LogLevel::deserialize(de::value::StrDeserializer::<de::value::Error>::new(text)).map_err(
            |_| BadValue {
                wanted: "one of error, warn, info, debug, trace",
                got: text.to_owned(),
            },
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

/// How pod and container cgroups are named and created (kubelet must be configured the same way).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupDriver {
    Cgroupfs,
    Systemd,
}

/// A registry endpoint URL: `http://host[:port][/path]` or `https://…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryEndpoint(String);

impl RegistryEndpoint {
    pub fn parse(text: &str) -> Result<RegistryEndpoint, BadValue> {
        let bad = |wanted| BadValue {
            wanted,
            got: text.to_owned(),
        };
        let rest = text
            .strip_prefix("https://")
            .or_else(|| text.strip_prefix("http://"))
            .ok_or_else(|| bad("a URL starting with http:// or https://"))?;
        let host = rest.split('/').next().unwrap_or_default();
        if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c == '@') {
            return Err(bad("a URL with a host (and no credentials)"));
        }
        Ok(RegistryEndpoint(text.trim_end_matches('/').to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Serialize for RegistryEndpoint {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for RegistryEndpoint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        RegistryEndpoint::parse(&text).map_err(de::Error::custom)
    }
}

/// A credential. It is never printed: not by `berthd config`, `Status`, logs nor errors.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Secret {
        Secret(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_print_round_trip() {
        for (text, secs) in [("10s", 10), ("5m", 300), ("4h", 14_400), ("1h30m", 5400)] {
            let d = Duration::parse(text).unwrap();
            assert_eq!(d.get(), std::time::Duration::from_secs(secs));
            assert_eq!(d.to_string(), text);
        }
        assert_eq!(
            Duration::parse("250ms").unwrap().get(),
            std::time::Duration::from_millis(250)
        );
    }

    #[test]
    fn bad_durations_say_what_is_wanted() {
        for text in ["", "10", "s", "10x", "-5s", "1.5s"] {
            let err = Duration::parse(text).unwrap_err();
            assert!(
                err.to_string().contains("a duration such as"),
                "{text}: {err}"
            );
        }
    }

    #[test]
    fn registry_endpoints_need_a_scheme_and_host() {
        assert_eq!(
            RegistryEndpoint::parse("http://127.0.0.1:5000/")
                .unwrap()
                .as_str(),
            "http://127.0.0.1:5000"
        );
        assert!(RegistryEndpoint::parse("127.0.0.1:5000").is_err());
        assert!(RegistryEndpoint::parse("https://").is_err());
        assert!(RegistryEndpoint::parse("https://user:pw@host").is_err());
    }

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2".into());
        assert_eq!(format!("{s:?}"), "<redacted>");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"<redacted>\"");
    }
}
