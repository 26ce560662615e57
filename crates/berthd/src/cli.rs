//! The command line: `berthd [FLAGS] [config]`, `berthd --version`, `berthd --help`.

use std::ffi::OsString;
use std::path::PathBuf;

use crate::config::Overrides;

pub const USAGE: &str = "\
usage: berthd [--config FILE] [--root DIR] [--state-dir DIR] [--socket PATH] [--log-level LEVEL] [config]
       berthd --version

  --config FILE      main config file (default /etc/berth/berth.toml); drop-ins are read from
                     berth.d/*.toml beside it
  --root DIR         persistent state: metadata, images, container layers (default /var/lib/berth)
  --state-dir DIR    runtime state: namespaces, monitor sockets (default /run/berth)
  --socket PATH      CRI gRPC socket (default /run/berth/berth.sock)
  --log-level LEVEL  error, warn, info, debug or trace (else RUST_LOG, else the config)
  config             print the effective configuration as TOML and exit
";

#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Run,
    PrintConfig,
    Version,
    Help,
}

#[derive(Debug)]
pub struct Cli {
    pub command: Command,
    pub config_file: Option<PathBuf>,
    pub overrides: Overrides,
}

/// A command line berthd cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CliError {
    #[error("argument {0:?} is not UTF-8")]
    NotUtf8(OsString),
    #[error("{0} needs a value")]
    NeedsValue(String),
    #[error("unknown argument `{0}`")]
    Unknown(String),
}

pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Cli, CliError> {
    let mut cli = Cli {
        command: Command::Run,
        config_file: None,
        overrides: Overrides::default(),
    };
    let mut args = args.into_iter().skip(1);
    while let Some(arg) = args.next() {
        let arg = arg.into_string().map_err(CliError::NotUtf8)?;
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| -> Result<PathBuf, CliError> {
            match inline.clone() {
                Some(v) => Ok(PathBuf::from(v)),
                None => args
                    .next()
                    .map(PathBuf::from)
                    .ok_or_else(|| CliError::NeedsValue(name.to_owned())),
            }
        };
        match flag.as_str() {
            "--config" => cli.config_file = Some(value("--config")?),
            "--root" => cli.overrides.root = Some(value("--root")?),
            "--state-dir" => cli.overrides.state_dir = Some(value("--state-dir")?),
            "--socket" => cli.overrides.socket = Some(value("--socket")?),
            "--log-level" => {
                cli.overrides.log_level = Some(value("--log-level")?.to_string_lossy().into_owned())
            }
            "--version" | "-V" => cli.command = Command::Version,
            "--help" | "-h" => cli.command = Command::Help,
            "config" => cli.command = Command::PrintConfig,
            other => return Err(CliError::Unknown(other.to_owned())),
        }
    }
    Ok(cli)
}

#[cfg(test)]
mod tests {
    /// `--help`, the README's command line and the man page the package installs name the same
    /// flags and commands.
    #[test]
    fn the_help_the_readme_and_the_man_page_agree() {
        let readme = include_str!("../../../README.md");
        let readme = &readme[readme.find("## Command line").unwrap()..];
        let readme = &readme[..readme.find("## Configuration").unwrap()];
        let man = include_str!("../../../docs/berthd.8").replace("\\-", "-");
        let flags: Vec<&str> = USAGE
            .split(|c: char| c.is_whitespace() || c == '[' || c == ']')
            .filter(|w| w.starts_with("--"))
            .collect();
        assert!(flags.len() >= 6, "{flags:?}");
        for word in flags.iter().copied().chain(["config"]) {
            assert!(readme.contains(word), "README lacks {word}");
            assert!(man.contains(word), "berthd.8 lacks {word}");
        }
    }

    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        std::iter::once("berthd")
            .chain(list.iter().copied())
            .map(OsString::from)
            .collect()
    }

    #[test]
    fn flags_take_separate_or_inline_values() {
        let cli = parse(args(&["--root", "/r", "--socket=/s.sock", "config"])).unwrap();
        assert_eq!(cli.command, Command::PrintConfig);
        assert_eq!(cli.overrides.root, Some(PathBuf::from("/r")));
        assert_eq!(cli.overrides.socket, Some(PathBuf::from("/s.sock")));
    }

    #[test]
    fn unknown_arguments_and_missing_values_are_errors() {
        assert_eq!(
            parse(args(&["--bogus"])).err(),
            Some(CliError::Unknown("--bogus".into()))
        );
        assert!(
            parse(args(&["--root"]))
                .unwrap_err()
                .to_string()
                .contains("needs a value")
        );
    }
}
