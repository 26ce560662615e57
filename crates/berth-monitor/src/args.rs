//! The monitor's command line, as berthd writes it.

#[derive(Debug, Default)]
pub struct Args {
    pub id: String,
    pub bundle: String,
    /// The OCI runtime binary (runc, crun, …).
    pub runtime: String,
    pub runtime_root: String,
    /// The CRI log file, inside `log_dir`.
    pub log: String,
    pub log_dir: String,
    pub tty: bool,
    pub stdin: bool,
    pub stdin_once: bool,
    pub systemd_cgroup: bool,
    /// How long `runc create` may take before it is killed and its container deleted.
    pub create_timeout: std::time::Duration,
}

/// What `--create-timeout-ms` is when not given.
const DEFAULT_CREATE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

pub const USAGE: &str =
    "usage: berth-monitor --id ID --bundle DIR --runtime PATH --runtime-root DIR --log-dir DIR --log FILE \
[--tty] [--stdin] [--stdin-once] [--systemd-cgroup] [--create-timeout-ms N]
       (run by berthd in the container's state dir)";

impl Args {
    pub fn parse(mut argv: impl Iterator<Item = String>) -> Result<Args, String> {
        let mut args = Args {
            create_timeout: DEFAULT_CREATE_TIMEOUT,
            ..Args::default()
        };
        while let Some(flag) = argv.next() {
            let mut value = |name: &str| argv.next().ok_or_else(|| format!("{name} needs a value"));
            match flag.as_str() {
                "--id" => args.id = value("--id")?,
                "--bundle" => args.bundle = value("--bundle")?,
                "--runtime" => args.runtime = value("--runtime")?,
                "--runtime-root" => args.runtime_root = value("--runtime-root")?,
                "--log" => args.log = value("--log")?,
                "--log-dir" => args.log_dir = value("--log-dir")?,
                "--tty" => args.tty = true,
                "--stdin" => args.stdin = true,
                "--stdin-once" => args.stdin_once = true,
                "--systemd-cgroup" => args.systemd_cgroup = true,
                "--create-timeout-ms" => {
                    let ms = value("--create-timeout-ms")?;
                    let ms = ms
                        .parse()
                        .map_err(|_| format!("--create-timeout-ms {ms} is not a number"))?;
                    args.create_timeout = std::time::Duration::from_millis(ms);
                }
                "--version" => return Err(format!("berth-monitor {}", env!("CARGO_PKG_VERSION"))),
                other => return Err(format!("unknown argument {other}")),
            }
        }
        for (name, value) in [
            ("--id", &args.id),
            ("--bundle", &args.bundle),
            ("--runtime", &args.runtime),
            ("--runtime-root", &args.runtime_root),
            ("--log", &args.log),
            ("--log-dir", &args.log_dir),
        ] {
            if value.is_empty() {
                return Err(format!("{name} is required"));
            }
        }
        Ok(args)
    }
}
