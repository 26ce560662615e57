//! The helper's command line, as berthd writes it.

pub const USAGE: &str = "usage: berth-exec native --plan FILE --pid-file FILE --result FILE [--console-socket PATH] -- COMMAND...
       berth-exec runtime --runtime PATH --runtime-root DIR --id ID --pid-file FILE --result FILE \
[--console-socket PATH] -- COMMAND...";

/// Which way the process is started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// berth's own: the plan file berthd wrote for the container.
    Native { plan: String },
    /// `<runtime> exec`, for runtimes whose state berthd cannot read.
    Runtime {
        runtime: String,
        runtime_root: String,
        id: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    pub backend: Backend,
    /// Where the process's PID (as the node sees it) goes once it exists.
    pub pid_file: String,
    pub result: String,
    /// A TTY: the pty master is sent to this socket, and the process gets the pty as stdio.
    pub console_socket: Option<String>,
    pub command: Vec<String>,
}

impl Args {
    pub fn parse(mut argv: impl Iterator<Item = String>) -> Result<Args, String> {
        let mode = argv.next().unwrap_or_default();
        let mut flags = std::collections::BTreeMap::new();
        let mut command = Vec::new();
        while let Some(flag) = argv.next() {
            if flag == "--" {
                command = argv.collect();
                break;
            }
            let known = [
                "--plan",
                "--runtime",
                "--runtime-root",
                "--id",
                "--pid-file",
                "--result",
                "--console-socket",
            ];
            if !known.contains(&flag.as_str()) {
                return Err(format!("unknown argument {flag}"));
            }
            let value = argv.next().ok_or_else(|| format!("{flag} needs a value"))?;
            flags.insert(flag, value);
        }
        let mut take = |flag: &str| {
            flags
                .remove(flag)
                .ok_or_else(|| format!("{mode} needs {flag}"))
        };
        let backend = match mode.as_str() {
            "native" => Backend::Native {
                plan: take("--plan")?,
            },
            "runtime" => Backend::Runtime {
                runtime: take("--runtime")?,
                runtime_root: take("--runtime-root")?,
                id: take("--id")?,
            },
            other => return Err(format!("unknown mode `{other}`")),
        };
        let pid_file = take("--pid-file")?;
        let result = take("--result")?;
        let console_socket = flags.remove("--console-socket");
        if let Some(extra) = flags.keys().next() {
            return Err(format!("{extra} is not for {mode}"));
        }
        if command.is_empty() {
            return Err("no command after --".into());
        }
        Ok(Args {
            backend,
            pid_file,
            result,
            console_socket,
            command,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn parse(line: &str) -> Result<Args, String> {
        Args::parse(line.split(' ').map(str::to_owned))
    }

    #[test]
    fn both_modes_parse_and_mistakes_are_named() {
        let a = parse("native --plan p --pid-file f --result r -- sh -c true").unwrap();
        assert_eq!(a.backend, Backend::Native { plan: "p".into() });
        assert_eq!(a.command, ["sh", "-c", "true"]);
        assert_eq!(a.console_socket, None);
        let a = parse(
            "runtime --runtime runc --runtime-root /r --id c --pid-file f --result r --console-socket s -- ls",
        )
        .unwrap();
        assert_eq!(
            a.backend,
            Backend::Runtime {
                runtime: "runc".into(),
                runtime_root: "/r".into(),
                id: "c".into()
            }
        );
        assert_eq!(a.console_socket.as_deref(), Some("s"));
        assert!(
            parse("native --pid-file f --result r -- ls")
                .unwrap_err()
                .contains("--plan")
        );
        assert!(
            parse("native --plan p --pid-file f --result r")
                .unwrap_err()
                .contains("command")
        );
        assert!(
            parse("native --plan p --id c --pid-file f --result r -- ls")
                .unwrap_err()
                .contains("--id")
        );
        assert!(parse("other --plan p").unwrap_err().contains("mode"));
        assert!(parse("native --bogus x").unwrap_err().contains("--bogus"));
    }
}
