//! Log set-up: the level comes from `--log-level`, else `RUST_LOG`, else the config.

use tracing_subscriber::EnvFilter;

use crate::config::LogLevel;

/// The HTTP/2 stack logs every frame at debug level: keep it to warnings unless RUST_LOG asks.
const QUIET_DEPENDENCIES: &str = "h2=warn,hyper=warn,hyper_util=warn,tower=warn,tonic=warn";

pub fn init(config_level: LogLevel, flag_given: bool) {
    let env = std::env::var("RUST_LOG").ok().filter(|v| !v.is_empty());
    let filter = match env {
        Some(directives) if !flag_given => {
            EnvFilter::try_new(directives).unwrap_or_else(|_| EnvFilter::new(config_level.as_str()))
        }
        _ => EnvFilter::new(format!("{},{QUIET_DEPENDENCIES}", config_level.as_str())),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}
